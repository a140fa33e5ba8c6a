//! `backend: "kube"` for `cluster::simulate`: KWOK-style fake nodes and pods created through a real
//! kube-apiserver with kube-rs. Without a KWOK controller scen itself creates the node leases and
//! marks nodes Ready and pods Running (status subresource). Every call's latency is kept per
//! resource and verb, with ClusterLoader2's SLO classes (single object, namespaced list,
//! cluster-wide list).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};

use super::objects::{Kind, Shape};
use super::templates::{Rendered, Renderer};
use super::{progress_ticker, KindRecord, SimulateOptions, SimulateRecord};
use crate::actions::{ms, Error, ProgressFn, Result};
use crate::exit::{ErrorKind, FailCode};
use crate::measure::book::Book;
use crate::measure::latency::{Distribution, Recorder};

/// Whether a KWOK controller keeps the fake nodes and pods alive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kwok {
    /// Look for the `kwok-controller` deployment in kube-system.
    #[default]
    Auto,
    /// A KWOK controller runs: leave leases and status to it.
    Present,
    /// None runs: scen creates the leases and sets node and pod status itself.
    Absent,
}

/// Calls of one verb on one resource.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ApiCallRecord {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Latency of each call (ms).
    pub latency: Distribution,
}

/// The worst p99 of each of ClusterLoader2's API call latency SLO classes (`null` when no call of the class).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ApiSloRecord {
    /// Single-object calls (create, get, patch, delete): SLO p99 ≤ 1 s.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub single_object_p99: Option<f64>,
    /// Lists within a namespace: SLO p99 ≤ 5 s.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub namespaced_list_p99: Option<f64>,
    /// Cluster-wide lists: SLO p99 ≤ 30 s.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub cluster_list_p99: Option<f64>,
}

/// What a kube-backend simulation leaves for heartbeats and cleanup.
#[derive(Clone)]
pub struct Created {
    /// The client it used.
    pub client: kube::Client,
    /// Whether a KWOK controller looks after the objects.
    pub kwok: bool,
    /// Objects that already existed (`<resource>/<namespace>/<name>`): never deleted.
    pub existing: HashSet<String>,
    /// Objects this simulation created (same form): what a later simulation of the run may find
    /// and still call its own.
    pub created: HashSet<String>,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("kwok", &self.kwok)
            .field("existing", &self.existing)
            .finish_non_exhaustive()
    }
}

/// The client for a kube-backend action: the embedded control plane's when the run has one and
/// the options name no kubeconfig or context; otherwise [`connect`]. Also what the embedded
/// control plane runs (scheduler, KWOK), when it is the one used.
pub async fn connect_for(
    target: &crate::target::Target,
    path: Option<&str>,
    context: Option<&str>,
) -> Result<(kube::Client, String, Option<crate::target::KubeTarget>)> {
    let own =
        path.filter(|p| !p.is_empty()).is_some() || context.filter(|c| !c.is_empty()).is_some();
    match (&target.kube, own) {
        (Some(k), false) => {
            let (c, url) = connect(k.kubeconfig.to_str(), None).await?;
            Ok((c, url, Some(k.clone())))
        }
        _ => {
            let (c, url) = connect(path, context).await?;
            Ok((c, url, None))
        }
    }
}

/// On the run's own control plane only: registers the CustomResourceDefinition of
/// `apiVersion`/`kind` served as `plural` (any fields kept, a status subresource) unless it
/// exists, and waits until it is Established. A user's cluster gets no CRD from scen: there the
/// resource must be installed already.
pub async fn ensure_crd(
    client: &kube::Client,
    sample: &serde_json::Value,
    plural: &str,
    namespaced: bool,
) -> Result<()> {
    let api_version = sample["apiVersion"].as_str().unwrap_or_default();
    let kind = sample["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').ok_or_else(|| {
        Error::Options(format!(
            "`{api_version}` has no API group: a custom resource needs one"
        ))
    })?;
    let name = format!("{plural}.{group}");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let crd: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "scen" } },
        "spec": {
            "group": group,
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": { "plural": plural, "kind": kind, "singular": kind.to_lowercase(), "listKind": format!("{kind}List") },
            "versions": [{ "name": version, "served": true, "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }],
        },
    }))
    .map_err(|e| Error::Internal(e.to_string()))?;
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(source) => {
            return Err(Error::Kube {
                op: format!("register the CRD {name}"),
                source,
            })
        }
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let c = api.get(&name).await.map_err(|source| Error::Kube {
            op: format!("read the CRD {name}"),
            source,
        })?;
        let established = c.data["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["type"] == "Established" && x["status"] == "True")
        });
        if established {
            // The first writes of a new resource wait about 2 s while the API server builds
            // what its create path needs (reads are served at once): one dry-run create of a
            // sample now, so the scenario's first writes do not time that.
            let cr = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, kind),
                plural,
            );
            let (mut body, _) = for_create(sample.clone());
            body["metadata"]["name"] = serde_json::json!("scen-warm-up");
            let ns = body["metadata"]["namespace"]
                .as_str()
                .filter(|_| namespaced)
                .map(String::from);
            let api: Api<DynamicObject> = match &ns {
                Some(ns) => {
                    ensure_namespaces(client, std::slice::from_ref(ns)).await?;
                    Api::namespaced_with(client.clone(), ns, &cr)
                }
                None => Api::all_with(client.clone(), &cr),
            };
            let obj: DynamicObject =
                serde_json::from_value(body).map_err(|e| Error::Internal(e.to_string()))?;
            let dry = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            match api.create(&dry, &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        op: format!("a dry-run create of {name} once it was Established"),
                        source,
                    })
                }
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Failed {
                kind: crate::exit::ErrorKind::Infrastructure,
                message: format!("the CRD {name} was not Established within 30s"),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// On the run's own control plane only: creates the namespaces (an existing one is fine).
pub async fn ensure_namespaces(client: &kube::Client, names: &[String]) -> Result<()> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "Namespace"),
        "namespaces",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    for n in names {
        let ns: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": n },
        }))
        .map_err(|e| Error::Internal(e.to_string()))?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => {
                return Err(Error::Kube {
                    op: format!("create namespace {n}"),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// A kube-rs client from the kubeconfig: `path` (default `$KUBECONFIG`, then `~/.kube/config`)
/// and `context` (default: the current one), and the API server's URL.
pub async fn connect(path: Option<&str>, context: Option<&str>) -> Result<(kube::Client, String)> {
    let options = KubeConfigOptions {
        context: context.filter(|c| !c.is_empty()).map(String::from),
        ..KubeConfigOptions::default()
    };
    let config = match path.filter(|p| !p.is_empty()) {
        Some(p) => {
            let kc =
                Kubeconfig::read_from(p).map_err(|e| {
                    Error::KubeConfig(format!(
                        "{p}: {e}; check the path, or leave `kubeconfig` empty to use $KUBECONFIG or ~/.kube/config"
                    ))
                })?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| {
        Error::KubeConfig(format!(
            "{e}; set KUBECONFIG or pass `kubeconfig` (and `context`) to cluster::simulate"
        ))
    })?;
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| Error::KubeConfig(e.to_string()))?;
    Ok((client, url))
}

/// The book of every call, by (resource, verb), shared by the workers.
struct Calls {
    start: Instant,
    book: Mutex<Book<(String, String)>>,
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            start: Instant::now(),
            book: Mutex::new(Book::default()),
        }
    }
}

impl Calls {
    /// Times `f` as one `verb` call on `resource`.
    async fn time<T>(
        &self,
        resource: &str,
        verb: &str,
        f: impl std::future::Future<Output = kube::Result<T>>,
    ) -> kube::Result<T> {
        let t0 = Instant::now();
        let r = f.await;
        let d = t0.elapsed();
        let sec = t0.duration_since(self.start).as_secs();
        let op = (resource.to_string(), verb.to_string());
        let mut book = self.book.lock().expect("calls lock");
        // "Already exists" and "not found" are answers (timed), not failed calls.
        match &r {
            Ok(_) => book.ok(op, sec, d),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => book.ok(op, sec, d),
            Err(kube::Error::Api(s)) => {
                // The kind by its status, as for any API answer (4xx the scenario's, 5xx and 429
                // the cluster's); the code by its reason, as records name it.
                let kind = FailCode::Http(s.code).kind();
                book.fail(op, sec, &FailCode::Api(s.reason.clone()), kind, &s.message);
            }
            Err(e) => book.fail(
                op,
                sec,
                &FailCode::Other,
                ErrorKind::Infrastructure,
                &e.to_string(),
            ),
        }
        r
    }

    fn records(
        &self,
    ) -> (
        BTreeMap<String, BTreeMap<String, ApiCallRecord>>,
        ApiSloRecord,
    ) {
        let book = self.book.lock().expect("calls lock");
        let mut out: BTreeMap<String, BTreeMap<String, ApiCallRecord>> = BTreeMap::new();
        let mut slo = ApiSloRecord::default();
        for ((resource, verb), tally) in book.ops() {
            let latency = tally.latency.summary();
            let class = match verb.as_str() {
                "list" => &mut slo.namespaced_list_p99,
                "list_all" => &mut slo.cluster_list_p99,
                _ => &mut slo.single_object_p99,
            };
            if let Some(p99) = latency.p99 {
                *class = Some(class.map_or(p99, |c| c.max(p99)));
            }
            out.entry(resource.clone()).or_default().insert(
                verb.clone(),
                ApiCallRecord {
                    calls: tally.ok + tally.failed,
                    errors: tally.failed,
                    latency,
                },
            );
        }
        (out, slo)
    }
}

/// The API plural of a built-in kind.
fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Namespace => "namespaces",
        Kind::Node => "nodes",
        Kind::Lease => "leases",
        Kind::Deployment => "deployments",
        Kind::ReplicaSet => "replicasets",
        Kind::Service => "services",
        Kind::Pod => "pods",
        Kind::ConfigMap => "configmaps",
        Kind::Secret => "secrets",
        Kind::Event => "events",
        Kind::Custom => "",
    }
}

/// What the API server sets itself, or would act on wrongly for fake objects: dropped from the
/// create request. Owner references are dropped too: the owners do not exist through this path,
/// and the garbage collector would delete the objects.
fn for_create(mut object: serde_json::Value) -> (serde_json::Value, Option<serde_json::Value>) {
    let is_service = object_kind_is(&object, "Service");
    let status = object.as_object_mut().and_then(|o| o.remove("status"));
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for k in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
            "ownerReferences",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    if is_service {
        // The API server allocates service IPs.
        if let Some(spec) = object.get_mut("spec").and_then(|m| m.as_object_mut()) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    (object, status)
}

fn object_kind_is(object: &serde_json::Value, kind: &str) -> bool {
    object.get("kind").and_then(|k| k.as_str()) == Some(kind)
}

/// Whether the `kwok-controller` deployment exists in kube-system.
async fn kwok_present(client: &kube::Client, calls: &Calls) -> Result<bool> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps", "v1", "Deployment"),
        "deployments",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "kube-system", &ar);
    match calls
        .time("deployments", "get", api.get("kwok-controller"))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => Ok(false),
        Err(source) => Err(Error::Kube {
            op: "look for the kwok-controller deployment in kube-system".into(),
            source,
        }),
    }
}

/// One object ready for a request.
pub(crate) struct Prepared {
    /// The create body (no status, no server-owned metadata).
    pub body: serde_json::Value,
    /// The rendered status, set through the status subresource.
    pub status: Option<serde_json::Value>,
    /// The API plural (`pods`).
    pub resource: String,
    /// Its namespace, for namespaced resources.
    pub ns: Option<String>,
    /// Its name.
    pub name: String,
    /// The template it came from.
    pub template: String,
}

impl Prepared {
    /// The object at global index `i` as a create request.
    pub fn at(r: &Renderer, i: u64) -> Result<Prepared> {
        Ok(Prepared::from(r, r.render(i)?))
    }

    /// The `i`-th object of a built-in `kind`, rendered now (a heartbeat's fresh copy).
    pub fn now(r: &Renderer, kind: Kind, i: u64) -> Result<Prepared> {
        Ok(Prepared::from(r, r.render_now(kind, i)?))
    }

    fn from(r: &Renderer, o: Rendered) -> Prepared {
        let (body, status) = for_create(o.value);
        let (resource, namespaced) = match o.kind {
            Kind::Custom => {
                let c = &r.shape.custom[o.custom];
                (c.plural.clone(), c.namespaced)
            }
            Kind::Namespace | Kind::Node => (plural(o.kind).to_string(), false),
            k => (plural(k).to_string(), true),
        };
        let ns = body["metadata"]["namespace"]
            .as_str()
            .filter(|_| namespaced)
            .map(String::from);
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Prepared {
            body,
            status,
            resource,
            ns,
            name,
            template: o.template,
        }
    }

    /// The API handle for this object's resource and namespace.
    pub fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        let api_version = self.body["apiVersion"].as_str().unwrap_or_default();
        let kind = self.body["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            &self.resource,
        );
        match &self.ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        }
    }

    /// `<resource>/<namespace>/<name>`, as `Created::existing` keeps it.
    pub fn identity(&self) -> String {
        format!(
            "{}/{}/{}",
            self.resource,
            self.ns.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// `pods scen-ns-0/pod-1`, for error messages.
    pub fn describe(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{} {ns}/{}", self.resource, self.name),
            None => format!("{} {}", self.resource, self.name),
        }
    }

    /// The create body as kube-rs sends it.
    pub fn object(&self) -> Result<DynamicObject> {
        serde_json::from_value(self.body.clone())
            .map_err(|e| Error::Options(format!("template `{}`: {e}", self.template)))
    }
}

/// What happened to one object.
enum Did {
    /// Written: its bytes, and its identity when it was created (not rewritten).
    Created(u64, Option<String>),
    Existed(String),
    Deleted,
    Kept,
}

/// Per-task tallies of [`Did`], merged.
#[derive(Default)]
struct Tally {
    created: u64,
    bytes: u64,
    created_ids: Vec<String>,
    existing: Vec<String>,
    deleted: u64,
    kept: u64,
}

impl Tally {
    fn add(&mut self, did: Did) {
        match did {
            Did::Created(bytes, id) => {
                self.created += 1;
                self.bytes += bytes;
                self.created_ids.extend(id);
            }
            Did::Existed(id) => self.existing.push(id),
            Did::Deleted => self.deleted += 1,
            Did::Kept => self.kept += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.created += other.created;
        self.bytes += other.bytes;
        self.existing.extend(other.existing);
        self.created_ids.extend(other.created_ids);
        self.deleted += other.deleted;
        self.kept += other.kept;
    }
}

/// Runs `f` on every index in `start..start + n`, `concurrency` at a time.
async fn each_object<F, Fut>(
    start: u64,
    n: u64,
    concurrency: u64,
    done: &Arc<AtomicU64>,
    f: F,
) -> Result<Tally>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Did>> + Send,
{
    let next = Arc::new(AtomicU64::new(start));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (next, done, f) = (next.clone(), done.clone(), f.clone());
        set.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= start + n {
                    return Ok::<_, Error>(tally);
                }
                tally.add(f(i).await?);
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut all = Tally::default();
    while let Some(r) = set.join_next().await {
        all.merge(r.map_err(|e| Error::Internal(format!("a worker panicked: {e}")))??);
    }
    Ok(all)
}

/// Writes object `i` again, as a controller's update does (a background scan rewriting its
/// reports): a merge patch of its rendered body. An object that existed before this run
/// (`existing`) is never touched; one that is gone is not created again.
async fn rewrite_one(
    client: &kube::Client,
    calls: &Calls,
    r: &Renderer,
    i: u64,
    existing: &HashSet<String>,
) -> Result<Did> {
    let mut p = Prepared::at(r, i)?;
    if existing.contains(&p.identity()) {
        return Ok(Did::Kept);
    }
    // A controller's update changes the object: without a change the API server would skip the
    // write to etcd (a no-op update), and nothing would be measured.
    p.body["metadata"]["annotations"]["scen.dev/rewritten-at"] =
        serde_json::json!(chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string());
    let api = p.api(client);
    let bytes = serde_json::to_vec(&p.body).map_or(0, |v| v.len() as u64);
    match calls
        .time(
            &p.resource,
            "patch",
            api.patch(&p.name, &PatchParams::default(), &Patch::Merge(&p.body)),
        )
        .await
    {
        Ok(_) => Ok(Did::Created(bytes, None)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Did::Kept),
        Err(source) => Err(Error::Kube {
            op: format!("rewrite {}", p.describe()),
            source,
        }),
    }
}

/// Creates one object and, without KWOK, sets its status as kubelet would. With a scheduler,
/// pods are created unbound (no `spec.nodeName`): binding them is the scheduler's job.
async fn create_one(
    client: &kube::Client,
    calls: &Calls,
    r: &Renderer,
    i: u64,
    env: Env,
) -> Result<Did> {
    let kwok = env.kwok;
    let mut p = Prepared::at(r, i)?;
    if env.scheduler && p.resource == "pods" {
        if let Some(spec) = p.body.get_mut("spec").and_then(|s| s.as_object_mut()) {
            spec.remove("nodeName");
        }
    }
    let api = p.api(client);
    let bytes = serde_json::to_vec(&p.body).map_or(0, |v| v.len() as u64);
    match calls
        .time(
            &p.resource,
            "create",
            api.create(&PostParams::default(), &p.object()?),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Did::Existed(p.identity())),
        Err(source) => {
            return Err(Error::Kube {
                op: format!("create {}", p.describe()),
                source,
            })
        }
    }
    // Without KWOK, nothing else makes the node Ready or the pod Running (and an unbound pod
    // cannot run before the scheduler placed it).
    let unbound = env.scheduler && p.resource == "pods";
    if let (false, false, Some(status), "nodes" | "pods") =
        (kwok, unbound, &p.status, p.resource.as_str())
    {
        let patch = serde_json::json!({ "status": status });
        calls
            .time(
                &p.resource,
                "patch_status",
                api.patch_status(&p.name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await
            .map_err(|source| Error::Kube {
                op: format!("set the status of {}", p.describe()),
                source,
            })?;
    }
    Ok(Did::Created(bytes, Some(p.identity())))
}

/// What runs beside the API server, as one simulation sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env {
    /// A KWOK controller keeps the nodes and pods alive.
    pub kwok: bool,
    /// kube-scheduler binds the pods.
    pub scheduler: bool,
}

/// Creates the objects `opts` describe through the API server `client` talks to. `embedded`
/// says what the run's own control plane runs, when `client` reaches it.
pub async fn simulate(
    client: kube::Client,
    server: &str,
    opts: &SimulateOptions,
    shape: Shape,
    progress: Option<ProgressFn>,
    embedded: Option<&crate::target::KubeTarget>,
    rewrite: Option<&HashSet<String>>,
) -> Result<(SimulateRecord, Created)> {
    if opts.rewrite && rewrite.is_none() {
        return Err(Error::Options(
            "rewrite: true rewrites objects this run created through this API server: call cluster::simulate without it first"
                .into(),
        ));
    }
    // Deployments go through the real deployment and replicaset controllers: scen creates the
    // deployments, the controllers their replica sets and pods.
    let controllers = embedded.is_some_and(|e| e.controller_manager);
    if shape.deployments > 0 && !controllers {
        return Err(Error::Options(
            "backend \"kube\" creates bare pods placed on the fake nodes; deployments need the deployment and \
             replicaset controllers: declare kube_control_plane(#{ controller_manager: true }), or set \
             `deployments: 0` (or use the etcd backend)"
                .into(),
        ));
    }
    let calls = Arc::new(Calls::default());
    let kwok = match (opts.kwok, embedded) {
        (Kwok::Auto, Some(e)) => e.kwok,
        (Kwok::Auto, None) => kwok_present(&client, &calls).await?,
        (Kwok::Present, _) => true,
        (Kwok::Absent, _) => false,
    };
    let env = Env {
        kwok,
        scheduler: embedded.is_some_and(|e| e.scheduler),
    };
    let r = Arc::new(Renderer::new(opts, shape)?);
    if embedded.is_some() {
        for (kind, custom, n) in r.shape.segments() {
            if kind == Kind::Custom && n > 0 {
                let first = r
                    .shape
                    .segments()
                    .into_iter()
                    .take_while(|s| !(s.0 == Kind::Custom && s.1 == custom))
                    .map(|s| s.2)
                    .sum::<u64>();
                let sample = r.render(first)?.value;
                let c = &r.shape.custom[custom];
                ensure_crd(&client, &sample, &c.plural, c.namespaced).await?;
            }
        }
    }
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let _ticker = progress_ticker(
        progress,
        &done,
        r.shape.total(),
        "created through the API server",
    );
    let mut by_kind: BTreeMap<String, KindRecord> = BTreeMap::new();
    let mut all = Tally::default();
    // Pods' progress as the scheduler and KWOK move them, seen on a watch begun before the first
    // create (only when something other than scen moves them).
    let namespaces: HashSet<String> = (0..r.shape.namespaces)
        .filter_map(|i| {
            r.shape.object_of(Kind::Namespace, i).vars["name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    // On the run's own control plane, where scen knows a scheduler and KWOK act.
    let watch =
        (r.shape.pods > 0 && !opts.rewrite && embedded.is_some() && (env.scheduler || env.kwok))
            .then(|| super::pod_watch::PodWatch::start(client.clone(), namespaces));
    // Kind by kind, so namespaces exist before what lives in them.
    let mut offset = 0;
    for (kind, custom, n) in r.shape.segments() {
        let start = offset;
        offset += n;
        if n == 0 || (kind == Kind::Lease && kwok) {
            continue;
        }
        if (r.shape.deployments > 0 && matches!(kind, Kind::ReplicaSet | Kind::Pod))
            || (opts.rewrite && kind == Kind::Namespace)
        {
            // The controllers make these from the deployments.
            done.fetch_add(n, Ordering::Relaxed);
            continue;
        }
        let (c, k, rr) = (client.clone(), calls.clone(), r.clone());
        let skip = rewrite.map(|s| Arc::new(s.clone()));
        let t = each_object(start, n, opts.clients, &done, move |i| {
            let (c, k, rr, skip) = (c.clone(), k.clone(), rr.clone(), skip.clone());
            async move {
                match skip {
                    Some(existing) => rewrite_one(&c, &k, &rr, i, &existing).await,
                    None => create_one(&c, &k, &rr, i, env).await,
                }
            }
        })
        .await?;
        let entry = by_kind.entry(r.shape.kind_label(kind, custom)).or_default();
        entry.count += t.created;
        entry.bytes += t.bytes;
        entry.avg_size = if entry.count > 0 {
            entry.bytes as f64 / entry.count as f64
        } else {
            0.0
        };
        entry.encoding = Some(super::Encoding::Json);
        all.merge(t);
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    // KWOK moves the nodes to Ready (and starts their leases): how long until every one was.
    let nodes_ready_ms = if env.kwok && embedded.is_some() && r.shape.nodes > 0 && !opts.rewrite {
        Some(nodes_ready(&client, &r.shape, started, opts.wait_timeout()).await?)
    } else {
        None
    };
    // Pods the controllers make from the deployments count as the deployments' replicas.
    let created_pods = if r.shape.deployments > 0 {
        r.shape.pods
    } else {
        by_kind.get("pod").map_or(0, |k| k.count)
    };
    let pods = match watch {
        Some(w) => Some(
            w.wait_for(created_pods, env, started, opts.wait_timeout())
                .await?,
        ),
        None => None,
    };
    if opts.probe {
        probe(&client, &r.shape, &calls).await?;
    }
    let (api, api_slo) = calls.records();
    let record = SimulateRecord {
        backend: super::Backend::Kube,
        root: server.to_string(),
        encoding: super::Encoding::Json,
        objects: all.created,
        existing: all.existing.len() as u64,
        rewrite: opts.rewrite,
        bytes: all.bytes,
        duration_ms: ms(started.elapsed()),
        throughput: all.created as f64 / secs,
        bytes_per_s: all.bytes as f64 / secs,
        by_kind,
        txn_latency: Recorder::default().summary(),
        revisions: (0, 0),
        kwok_controller: Some(kwok),
        api,
        api_slo,
        pods,
        nodes_ready_ms,
    };
    let created = Created {
        client,
        kwok,
        existing: all.existing.into_iter().collect(),
        created: all.created_ids.into_iter().collect(),
    };
    Ok((record, created))
}

/// Deletes what a kube-backend simulation created — last kind first, namespaces last — and never
/// an object that already existed. Returns (deleted, kept).
pub async fn cleanup(
    created: &Created,
    opts: &SimulateOptions,
    shape: &Shape,
) -> Result<(u64, u64)> {
    let r = Arc::new(Renderer::new(opts, shape.clone())?);
    let existing = Arc::new(created.existing.clone());
    let done = Arc::new(AtomicU64::new(0));
    let mut all = Tally::default();
    let mut segments = Vec::new();
    let mut offset = 0;
    for (kind, _, n) in shape.segments() {
        segments.push((kind, offset, n));
        offset += n;
    }
    for (kind, start, n) in segments.into_iter().rev() {
        if n == 0 || (kind == Kind::Lease && created.kwok) {
            continue;
        }
        let (c, rr, ex) = (created.client.clone(), r.clone(), existing.clone());
        let t = each_object(start, n, opts.clients, &done, move |i| {
            let (c, rr, ex) = (c.clone(), rr.clone(), ex.clone());
            async move {
                let p = Prepared::at(&rr, i)?;
                if ex.contains(&p.identity()) {
                    return Ok(Did::Kept);
                }
                match p.api(&c).delete(&p.name, &DeleteParams::default()).await {
                    Ok(_) => Ok(Did::Deleted),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Did::Kept),
                    Err(source) => Err(Error::Kube {
                        op: format!("delete {}", p.describe()),
                        source,
                    }),
                }
            }
        })
        .await?;
        all.merge(t);
    }
    Ok((all.deleted, all.kept))
}

/// ClusterLoader2-style read calls on what was created: single GETs of a sample of nodes and pods,
/// pod lists per namespace, and cluster-wide node and pod lists (pages of 500).
async fn probe(client: &kube::Client, shape: &Shape, calls: &Calls) -> Result<()> {
    let fail = |op: String| move |source| Error::Kube { op, source };
    let gvk = |kind: &str| GroupVersionKind::gvk("", "v1", kind);
    let nodes_ar = ApiResource::from_gvk_with_plural(&gvk("Node"), "nodes");
    let pods_ar = ApiResource::from_gvk_with_plural(&gvk("Pod"), "pods");
    let nodes: Api<DynamicObject> = Api::all_with(client.clone(), &nodes_ar);
    for i in sample(shape.nodes, 20) {
        let name = shape.object_of(Kind::Node, i).vars["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        calls
            .time("nodes", "get", nodes.get(&name))
            .await
            .map_err(fail(format!("get node {name}")))?;
    }
    for i in sample(shape.pods, 20) {
        let o = shape.object_of(Kind::Pod, i);
        let (ns, name) = (
            o.vars["namespace"].as_str().unwrap_or_default(),
            o.vars["name"].as_str().unwrap_or_default(),
        );
        let pods: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &pods_ar);
        calls
            .time("pods", "get", pods.get(name))
            .await
            .map_err(fail(format!("get pod {ns}/{name}")))?;
    }
    if shape.pods > 0 {
        for i in 0..shape.namespaces.min(10) {
            let ns = shape.object_of(Kind::Namespace, i).vars["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let pods: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &pods_ar);
            list_pages(&pods, "pods", "list", calls)
                .await
                .map_err(fail(format!("list pods in {ns}")))?;
        }
        let pods: Api<DynamicObject> = Api::all_with(client.clone(), &pods_ar);
        list_pages(&pods, "pods", "list_all", calls)
            .await
            .map_err(fail("list all pods".into()))?;
    }
    if shape.nodes > 0 {
        list_pages(&nodes, "nodes", "list_all", calls)
            .await
            .map_err(fail("list all nodes".into()))?;
    }
    Ok(())
}

/// Waits until every node of `shape` reports Ready (as KWOK sets it), listing the nodes every
/// 250 ms; the time from `started` (ms). Not all Ready within `timeout` fails the step.
async fn nodes_ready(
    client: &kube::Client,
    shape: &Shape,
    started: Instant,
    timeout: std::time::Duration,
) -> Result<f64> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Node"), "nodes");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let ours: HashSet<String> = (0..shape.nodes)
        .filter_map(|i| {
            shape.object_of(Kind::Node, i).vars["name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let mut ready = 0u64;
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.map_err(|source| Error::Kube {
                op: "list nodes".into(),
                source,
            })?;
            ready += page
                .items
                .iter()
                .filter(|n| n.metadata.name.as_ref().is_some_and(|x| ours.contains(x)))
                .filter(|n| {
                    n.data["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count() as u64;
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => params = params.continue_token(&c),
                _ => break,
            }
        }
        if ready >= shape.nodes {
            return Ok(started.elapsed().as_secs_f64() * 1e3);
        }
        if Instant::now() >= deadline {
            return Err(Error::Failed {
                kind: crate::exit::ErrorKind::Infrastructure,
                message: format!(
                    "after {timeout:?}, {ready} of {} nodes were Ready: KWOK did not keep up (raise `wait`, or check kwok's log)",
                    shape.nodes
                ),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Every page of a list (500 items a page), each page one timed call.
async fn list_pages(
    api: &Api<DynamicObject>,
    resource: &str,
    verb: &str,
    calls: &Calls,
) -> kube::Result<u64> {
    let mut params = ListParams::default().limit(500);
    let mut items = 0;
    loop {
        let page = calls.time(resource, verb, api.list(&params)).await?;
        items += page.items.len() as u64;
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => params = params.continue_token(&c),
            _ => return Ok(items),
        }
    }
}

/// Up to `k` indices spread evenly over `0..n`.
fn sample(n: u64, k: u64) -> impl Iterator<Item = u64> {
    let k = k.min(n);
    (0..k).map(move |j| j * n / k)
}

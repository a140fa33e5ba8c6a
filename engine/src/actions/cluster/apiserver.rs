//! `backend: "kube"` for `cluster::simulate`: KWOK-style fake nodes and pods created through a real
//! kube-apiserver with kube-rs. Without a KWOK controller scen itself creates the node leases and
//! marks nodes Ready and pods Running (status subresource). Every call's latency is kept per
//! resource and verb, with ClusterLoader2's SLO classes (single object, namespaced list,
//! cluster-wide list).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};

use super::objects::{Kind, Shape};
use super::templates::Templates;
use super::{common_vars, AbortOnDrop, KindRecord, SimulateOptions, SimulateRecord};
use crate::actions::latency::{LatencySummary, Recorder};
use crate::actions::{ms, Error, ProgressFn, Result};

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
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ApiCallRecord {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Latency of each call (ms).
    pub latency: LatencySummary,
}

/// The worst p99 of each of ClusterLoader2's API call latency SLO classes (ms; 0 when no call).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ApiSloRecord {
    /// Single-object calls (create, get, patch, delete): SLO p99 ≤ 1 s.
    pub single_object_p99: f64,
    /// Lists within a namespace: SLO p99 ≤ 5 s.
    pub namespaced_list_p99: f64,
    /// Cluster-wide lists: SLO p99 ≤ 30 s.
    pub cluster_list_p99: f64,
}

/// A kube-rs client from the kubeconfig: `path` (default `$KUBECONFIG`, then `~/.kube/config`)
/// and `context` (default: the current one), and the API server's URL.
pub async fn connect(path: Option<&str>, context: Option<&str>) -> Result<(kube::Client, String)> {
    let options = KubeConfigOptions {
        context: context.map(String::from),
        ..KubeConfigOptions::default()
    };
    let config = match path {
        Some(p) => {
            let kc =
                Kubeconfig::read_from(p).map_err(|e| Error::KubeConfig(format!("{p}: {e}")))?;
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

/// Latencies by (resource, verb), shared by the workers.
#[derive(Default)]
struct Calls(Mutex<BTreeMap<(String, String), (u64, u64, Recorder)>>);

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
        let mut m = self.0.lock().expect("calls lock");
        let e = m
            .entry((resource.to_string(), verb.to_string()))
            .or_insert_with(|| (0, 0, Recorder::default()));
        e.0 += 1;
        // "Already exists" and "not found" are answers (timed), not failed calls.
        let answered = match &r {
            Ok(_) => true,
            Err(kube::Error::Api(s)) => s.code == 409 || s.code == 404,
            Err(_) => false,
        };
        if answered {
            e.2.record(d);
        } else {
            e.1 += 1;
        }
        r
    }

    fn records(
        &self,
    ) -> (
        BTreeMap<String, BTreeMap<String, ApiCallRecord>>,
        ApiSloRecord,
    ) {
        let m = self.0.lock().expect("calls lock");
        let mut out: BTreeMap<String, BTreeMap<String, ApiCallRecord>> = BTreeMap::new();
        let mut slo = ApiSloRecord::default();
        for ((resource, verb), (calls, errors, rec)) in m.iter() {
            let latency = rec.summary();
            let class = match verb.as_str() {
                "list" => &mut slo.namespaced_list_p99,
                "list_all" => &mut slo.cluster_list_p99,
                _ => &mut slo.single_object_p99,
            };
            *class = class.max(latency.p99);
            out.entry(resource.clone()).or_default().insert(
                verb.clone(),
                ApiCallRecord {
                    calls: *calls,
                    errors: *errors,
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

/// The API handle for an object of `resource` in `ns` (cluster-scoped when `None`).
fn api_for(
    client: &kube::Client,
    object: &serde_json::Value,
    resource: &str,
    ns: Option<&str>,
) -> Result<Api<DynamicObject>> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), resource);
    Ok(match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    })
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

/// Creates the objects `opts` describe through the API server `client` talks to.
pub async fn simulate(
    client: kube::Client,
    server: &str,
    opts: &SimulateOptions,
    shape: Shape,
    progress: Option<ProgressFn>,
) -> Result<SimulateRecord> {
    if shape.deployments > 0 {
        return Err(Error::Options(
            "backend \"kube\" creates bare pods placed on the fake nodes; deployments need a scheduler and \
             controllers acting on them: set `deployments: 0` (or use the etcd backend)"
                .into(),
        ));
    }
    let calls = Arc::new(Calls::default());
    let kwok = match opts.kwok {
        Kwok::Auto => kwok_present(&client, &calls).await?,
        Kwok::Present => true,
        Kwok::Absent => false,
    };
    let tpl = Arc::new(Templates::new(&opts.templates, &opts.base_dir)?);
    let common = Arc::new(common_vars(opts)?);
    let shape = Arc::new(shape);
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let total = shape.total();
    let _ticker = progress.map(|p| {
        let done = done.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                p(format!(
                    "{}/{total} objects through the API server",
                    done.load(Ordering::Relaxed)
                ));
            }
        }))
    });
    let mut by_kind: BTreeMap<String, KindRecord> = BTreeMap::new();
    let (mut objects, mut existing) = (0u64, 0u64);
    // Kind by kind, so namespaces exist before what lives in them.
    let mut offset = 0;
    for (kind, custom, n) in shape.segments() {
        let start = offset;
        offset += n;
        if n == 0 || (kind == Kind::Lease && kwok) {
            continue;
        }
        let next = Arc::new(AtomicU64::new(start));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..opts.concurrency.min(n) {
            let (client, calls, tpl, common, shape, next, done) = (
                client.clone(),
                calls.clone(),
                tpl.clone(),
                common.clone(),
                shape.clone(),
                next.clone(),
                done.clone(),
            );
            let end = start + n;
            set.spawn(async move {
                let mut tally = (KindRecord::default(), 0u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return Ok::<_, Error>(tally);
                    }
                    let o = shape.object(i);
                    let template = match kind {
                        Kind::Custom => shape.custom[custom].template.as_str(),
                        k => k.name(),
                    };
                    let mut vars = (*common).clone();
                    vars.extend(o.vars);
                    let (body, status) = for_create(tpl.render(template, &vars)?);
                    let ns = body["metadata"]["namespace"].as_str().map(String::from);
                    let name = body["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let (resource, namespaced) = match kind {
                        Kind::Custom => (
                            shape.custom[custom].plural.as_str(),
                            shape.custom[custom].namespaced,
                        ),
                        Kind::Namespace | Kind::Node => (plural(kind), false),
                        k => (plural(k), true),
                    };
                    let api = api_for(
                        &client,
                        &body,
                        resource,
                        if namespaced { ns.as_deref() } else { None },
                    )?;
                    let bytes = serde_json::to_vec(&body).map_or(0, |v| v.len() as u64);
                    let obj: DynamicObject = serde_json::from_value(body)
                        .map_err(|e| Error::Options(format!("template `{template}`: {e}")))?;
                    let what = || {
                        format!(
                            "create {kind:?} {}{name}",
                            ns.as_deref().map_or(String::new(), |n| format!("{n}/"))
                        )
                    };
                    match calls
                        .time(resource, "create", api.create(&PostParams::default(), &obj))
                        .await
                    {
                        Ok(_) => {
                            tally.0.count += 1;
                            tally.0.bytes += bytes;
                        }
                        Err(kube::Error::Api(s)) if s.code == 409 => {
                            tally.1 += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(source) => return Err(Error::Kube { op: what(), source }),
                    }
                    // Without KWOK, nothing else makes the node Ready or the pod Running.
                    if let (false, Some(status), Kind::Node | Kind::Pod) = (kwok, status, kind) {
                        let patch = serde_json::json!({ "status": status });
                        calls
                            .time(
                                resource,
                                "patch_status",
                                api.patch_status(
                                    &name,
                                    &PatchParams::default(),
                                    &Patch::Merge(&patch),
                                ),
                            )
                            .await
                            .map_err(|source| Error::Kube {
                                op: format!("set the status of {name}"),
                                source,
                            })?;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let label = shape.kind_label(kind, custom);
        while let Some(r) = set.join_next().await {
            let (k, e) = r.map_err(|e| Error::Options(format!("a writer panicked: {e}")))??;
            let entry = by_kind.entry(label.clone()).or_default();
            entry.count += k.count;
            entry.bytes += k.bytes;
            entry.encoding = Some(super::Encoding::Json);
            objects += k.count;
            existing += e;
        }
    }
    for v in by_kind.values_mut() {
        v.avg_size = if v.count > 0 {
            v.bytes as f64 / v.count as f64
        } else {
            0.0
        };
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if opts.probe {
        probe(&client, &shape, &calls).await?;
    }
    let (api, api_slo) = calls.records();
    let bytes = by_kind.values().map(|k| k.bytes).sum();
    Ok(SimulateRecord {
        backend: super::Backend::Kube,
        root: server.to_string(),
        encoding: super::Encoding::Json,
        objects,
        existing,
        bytes,
        duration_ms: ms(started.elapsed()),
        objects_per_s: objects as f64 / secs,
        bytes_per_s: bytes as f64 / secs,
        by_kind,
        txn_latency: Recorder::default().summary(),
        revisions: (0, 0),
        kwok_controller: Some(kwok),
        api,
        api_slo,
    })
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

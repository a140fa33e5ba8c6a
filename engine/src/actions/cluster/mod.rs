//! `cluster::`: a KWOK-style simulated cluster written straight into etcd where kube-apiserver
//! keeps it (`/registry/...`), what is stored there (`inventory`), and removing exactly what a run
//! wrote (`cleanup`).

pub mod apiserver;
mod heartbeat;
mod inventory;
mod lifecycle;
mod objects;
pub mod places;
pub mod pod_watch;
pub mod protobuf;
mod templates;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

pub use heartbeat::{heartbeat, heartbeat_through, FlowRecord, HeartbeatOptions, HeartbeatRecord};
pub use inventory::{cleanup, inventory, CleanupRecord, InventoryOptions, InventoryRecord};
pub use lifecycle::{
    lifecycle, lifecycle_through, phases_of, LifecycleOptions, LifecycleRecord, ObjectAddress,
    PhaseRecord, Placement, ResourceSpec, PHASES,
};
pub use objects::{CustomSpec, Kind, Shape};
pub use places::Places;

use super::{Error, ProgressFn, Result, SizeValue, Watch};
use crate::measure::latency::{Distribution, Recorder};
use crate::target::Target;

/// What this run's `simulate` calls wrote: enough to regenerate every key without keeping them.
#[derive(Debug, Clone)]
pub struct Written {
    /// The storage root written under (`/registry` or `<run prefix>registry`).
    pub root: String,
    /// The shape written.
    pub shape: Shape,
    /// Keys created at revisions in this range belong to the run (heartbeat churn extends it).
    pub revisions: (i64, i64),
    /// The options it was simulated with (templates, variables, encoding), for heartbeats.
    pub options: SimulateOptions,
    /// Kube backend: the API server the objects went through.
    pub kube: Option<apiserver::Created>,
}

/// The run's record of simulated objects, shared by every clone of the target.
pub type Ledger = Arc<Mutex<Vec<Written>>>;

/// What `cluster::simulate` wrote in this run, so `cluster::cleanup` removes exactly that (kept
/// in the target's run ledger).
pub(crate) fn simulated(target: &Target) -> Ledger {
    target.ledger.get()
}

/// Where this run's simulated and lifecycle objects are, so an empty range there fails.
pub(crate) fn places_of(target: &Target) -> Places {
    target.ledger.get()
}

/// Options of `cluster::simulate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateOptions {
    /// Fake nodes (each with a lease in kube-node-lease).
    #[serde(default)]
    pub nodes: u64,
    /// Pods per node (default 0); or give `pods`.
    #[serde(default)]
    pub pods_per_node: u64,
    /// Total pods (instead of `pods_per_node`).
    pub pods: Option<u64>,
    /// Namespaces the namespaced objects spread over (default 10).
    #[serde(default = "ten")]
    pub namespaces: u64,
    /// Deployments, each with a replicaset owning its share of the pods (default 0: bare pods).
    #[serde(default)]
    pub deployments: u64,
    /// Services.
    #[serde(default)]
    pub services: u64,
    /// Configmaps.
    #[serde(default)]
    pub configmaps: u64,
    /// Secrets.
    #[serde(default)]
    pub secrets: u64,
    /// Size of each configmap's and secret's data (default `"1KiB"`).
    pub value_size: Option<SizeValue>,
    /// Events.
    #[serde(default)]
    pub events: u64,
    /// Images each node reports (default 20: a node object of about 8 KB, as in real clusters).
    #[serde(default = "twenty")]
    pub node_images: u64,
    /// Custom resources: `[#{ group, plural, count, template, namespaced, vars }]`.
    #[serde(default)]
    pub custom: Vec<CustomSpec>,
    /// Template files replacing the stdlib's (`#{ pod: "templates/pod.yaml.j2" }`), or naming new ones.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// Extra variables for every template.
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// Name prefix of namespaces, nodes... (default `"scen-"`).
    pub name_prefix: Option<String>,
    /// Storage root (default `/registry`; under the run prefix on an etcd scen did not start
    /// unless `--allow-registry-writes`).
    pub root: Option<String>,
    /// How values are stored: `"protobuf"` (default: built-in kinds as kube-apiserver stores them,
    /// custom resources as JSON) or `"json"` (everything as JSON).
    #[serde(default)]
    pub encoding: Encoding,
    /// Concurrent writers (default 8; formerly `concurrency`).
    #[serde(default = "eight")]
    pub clients: u64,
    /// Objects per transaction (default 32; etcd allows 128 operations).
    #[serde(default = "thirty_two")]
    pub batch: u64,
    /// Write every object again instead of creating it: a controller's update (a background scan
    /// rewriting its reports). Only objects this run created are rewritten; each rewrite is a new
    /// revision kept in etcd's history until compaction.
    #[serde(default)]
    pub rewrite: bool,
    /// An object at a name scen would create that this run did not create (someone else's) is
    /// left exactly as it is either way; without this the step then fails naming it, with it the
    /// object is counted in `existing` and used as it is (never rewritten, heartbeated or
    /// deleted). Namespaces are containers: an existing one is always used.
    #[serde(default)]
    pub adopt_existing: bool,
    /// Where to write: `"etcd"` (default: straight into etcd) or `"kube"` (through the API server of
    /// the kubeconfig, with kube-rs).
    #[serde(default)]
    pub backend: Backend,
    /// `backend: "kube"`: the kubeconfig file (default `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<String>,
    /// `backend: "kube"`: the kubeconfig context (default: the current one).
    pub context: Option<String>,
    /// `backend: "kube"`: `"auto"` (default: look for the kwok-controller deployment), `"present"`
    /// or `"absent"` (scen creates node leases and sets node and pod status itself).
    #[serde(default)]
    pub kwok: apiserver::Kwok,
    /// `backend: "kube"`: after creating, time GETs and namespaced and cluster-wide LISTs (default true).
    #[serde(default = "yes")]
    pub probe: bool,
    /// `backend: "kube"` with a scheduler or KWOK at work: how long to wait for every pod to be
    /// bound and Running (default `"5m"`).
    pub wait: Option<String>,
    /// Set by the binding: the scenario's directory, for relative template paths.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl SimulateOptions {
    /// `wait`, or its default.
    pub fn wait_timeout(&self) -> std::time::Duration {
        self.wait
            .as_deref()
            .and_then(|w| crate::units::parse_duration(w).ok())
            .unwrap_or(std::time::Duration::from_secs(300))
    }
}

/// How simulated objects are stored.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Built-in kinds as protobuf in the `k8s\0` envelope, custom resources as JSON (kube-apiserver's default).
    #[default]
    Protobuf,
    /// Everything as JSON.
    Json,
}

impl Encoding {
    /// The stored bytes of `object` (rendered from template `template`), and how they are encoded.
    pub fn encode(self, object: &serde_json::Value, template: &str) -> Result<(Vec<u8>, Encoding)> {
        if self == Encoding::Protobuf {
            if let Some(r) = protobuf::schema().encode(object) {
                return r.map(|v| (v, Encoding::Protobuf)).map_err(|e| {
                    Error::Options(format!(
                        "template `{template}`: {e}; fix the template or use encoding: \"json\""
                    ))
                });
            }
        }
        // kube-apiserver's JSON serializer ends each object with a newline.
        let mut v = serde_json::to_vec(object).map_err(|e| Error::Options(e.to_string()))?;
        v.push(b'\n');
        Ok((v, Encoding::Json))
    }
}

/// Where `cluster::simulate` writes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Straight into etcd, where kube-apiserver stores objects.
    #[default]
    Etcd,
    /// Through a Kubernetes API server, with kube-rs.
    Kube,
}

fn yes() -> bool {
    true
}

fn ten() -> u64 {
    10
}
fn twenty() -> u64 {
    20
}
fn eight() -> u64 {
    8
}
fn thirty_two() -> u64 {
    32
}

/// Per kind, in a simulate record.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct KindRecord {
    /// Objects written.
    pub count: u64,
    /// Value bytes written.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes: u64,
    /// Mean value size.
    #[schemars(with = "crate::measure::Bytes")]
    pub avg_size: f64,
    /// How the values are stored.
    pub encoding: Option<Encoding>,
}

/// The record of `cluster::simulate`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SimulateRecord {
    /// Where the objects went: `etcd` or `kube`.
    pub backend: Backend,
    /// The storage root written under (etcd backend), or the API server's URL (kube backend).
    pub root: String,
    /// The requested encoding (custom resources are JSON either way; see `by_kind`).
    pub encoding: Encoding,
    /// Objects written.
    pub objects: u64,
    /// Objects skipped: their key already existed (never overwritten); with `rewrite`, keys this
    /// run did not create.
    pub existing: u64,
    /// Whether the objects were rewritten (`rewrite: true`) rather than created.
    pub rewrite: bool,
    /// Value bytes written.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes: u64,
    /// Wall time, ms.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
    /// Objects written per second. It rests on the transactions (`txn_latency.count`), not the
    /// objects: the objects of one transaction commit together.
    #[schemars(with = "crate::measure::PerSecond", extend("x-better" = "higher", "x-samples" = "txn_latency.count"))]
    pub throughput: f64,
    /// Value bytes written per second.
    #[schemars(with = "crate::measure::BytesPerSecond")]
    pub bytes_per_s: f64,
    /// By kind (`node`, `pod`... and `group/plural` for custom resources).
    pub by_kind: BTreeMap<String, KindRecord>,
    /// Latency of each write transaction.
    pub txn_latency: Distribution,
    /// Revision after the first and the last write (etcd backend).
    pub revisions: (i64, i64),
    /// Kube backend: whether a KWOK controller kept the objects alive (else scen set their status).
    pub kwok_controller: Option<bool>,
    /// Kube backend: API calls by resource and verb (`create`, `patch_status`, `get`, `list` in a
    /// namespace, `list_all` cluster-wide).
    pub api: BTreeMap<String, BTreeMap<String, apiserver::ApiCallRecord>>,
    /// Kube backend: the worst p99 of each ClusterLoader2 SLO class.
    pub api_slo: apiserver::ApiSloRecord,
    /// Kube backend on the run's embedded control plane with a scheduler or KWOK at work: when
    /// the pods were bound and Running, seen on a watch (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<pod_watch::PodsRecord>,
    /// Kube backend on the run's own control plane with KWOK: from the step's start until every
    /// node was Ready (polled every 250 ms), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub nodes_ready_ms: Option<f64>,
}

/// The root simulated objects go under: the real one on an etcd scen started (or with
/// `--allow-registry-writes`), otherwise the same path under the run prefix.
pub fn effective_root(target: &Target, root: Option<&str>) -> String {
    let root = root.unwrap_or("/registry").trim_end_matches('/');
    // `--allow-registry-writes` opens the real `/registry` and nothing else (`check_root`
    // refuses other roots before a run on an etcd scen did not start).
    let registry = root == "/registry" || root.starts_with("/registry/");
    if target.info.embedded
        || (target.allow_registry_writes && registry)
        || root.starts_with(&target.info.prefix)
    {
        root.to_string()
    } else {
        format!("{}{}", target.info.prefix, root.trim_start_matches('/'))
    }
}

/// Per-writer tallies, merged at the end.
#[derive(Default)]
struct Tally {
    objects: u64,
    existing: u64,
    /// Existing objects this run did not create (namespaces aside), and the first few keys.
    foreign: u64,
    foreign_keys: Vec<String>,
    by_kind: BTreeMap<String, KindRecord>,
    latency: Recorder,
    first_rev: Option<i64>,
    last_rev: i64,
}

/// Writes the objects `opts` describe, create-only, with bounded concurrency and batching.
pub async fn simulate(
    target: &Target,
    opts: &SimulateOptions,
    observers: Watch,
) -> Result<SimulateRecord> {
    let progress = observers.line.clone();
    if opts.backend == Backend::Kube {
        let (client, server, embedded) =
            apiserver::connect_for(target, opts.kubeconfig.as_deref(), opts.context.as_deref())
                .await?;
        let shape = shape_of(opts)?;
        // A rewrite touches only what an earlier simulation of this run created there.
        let before: Option<std::collections::HashSet<String>> = opts
            .rewrite
            .then(|| {
                simulated(target)
                    .lock()
                    .expect("ledger lock")
                    .iter()
                    .rev()
                    .find(|w| w.root == server)
                    .and_then(|w| w.kube.as_ref().map(|k| k.existing.clone()))
            })
            .flatten();
        let (record, created) = apiserver::simulate(
            client,
            &server,
            opts,
            shape.clone(),
            observers.line,
            embedded.as_ref(),
            before.as_ref(),
        )
        .await?;
        let (count, foreign) = {
            let book = simulated(target);
            let ledger = book.lock().expect("ledger lock");
            kube_foreign(&created, &ledger, &server)
        };
        let written = Written {
            root: server.to_string(),
            shape,
            revisions: (0, 0),
            options: opts.clone(),
            kube: Some(created),
        };
        if count > 0 && !opts.adopt_existing && !opts.rewrite {
            // Leave nothing behind: what this step created goes again.
            let (removed, _) =
                inventory::remove(&mut crate::target::kv(&target.client), &written).await?;
            return Err(not_ours(count, &foreign, removed, &record));
        }
        simulated(target).lock().expect("ledger lock").push(written);
        return Ok(record);
    }
    let shape = shape_of(opts)?;
    let renderer = templates::Renderer::new(opts, shape.clone())?;
    let root = effective_root(target, opts.root.as_deref());
    // A rewrite touches only what this run created under this root.
    let rewrite_from = if opts.rewrite {
        let first = simulated(target)
            .lock()
            .expect("ledger lock")
            .iter()
            .filter(|w| w.root == root && w.kube.is_none())
            .map(|w| w.revisions.0)
            .min();
        match first {
            Some(f) if f > 0 => Some(f),
            _ => {
                return Err(Error::Options(
                    "rewrite: true rewrites objects this run created: call cluster::simulate without it first".into(),
                ))
            }
        }
    } else {
        None
    };
    // What earlier simulations of this run created under this root.
    let ours: Arc<Vec<(i64, i64)>> = Arc::new(
        simulated(target)
            .lock()
            .expect("ledger lock")
            .iter()
            .filter(|w| w.root == root && w.kube.is_none())
            .map(|w| w.revisions)
            .collect(),
    );
    let total = shape.total();
    let next = Arc::new(AtomicU64::new(0));
    let shared = Arc::new((renderer, root.clone()));
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let _ticker = progress_ticker(progress, &done, total, "written");
    let mut set: tokio::task::JoinSet<Result<Tally>> = tokio::task::JoinSet::new();
    for _ in 0..opts.clients.min(total.div_ceil(opts.batch).max(1)) {
        let (next, shared, batch, encoding, done, rewrite_from, ours) = (
            next.clone(),
            shared.clone(),
            opts.batch,
            opts.encoding,
            done.clone(),
            rewrite_from,
            ours.clone(),
        );
        let mut kv = crate::target::kv(&target.client);
        set.spawn(async move {
            let (renderer, root) = &*shared;
            let mut tally = Tally::default();
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= total {
                    return Ok(tally);
                }
                let end = (start + batch).min(total);
                let mut items = Vec::with_capacity((end - start) as usize);
                for i in start..end {
                    let o = renderer.render(i)?;
                    let (value, stored) = encoding.encode(&o.value, &o.template)?;
                    items.push(Item {
                        label: renderer.shape.kind_label(o.kind, o.custom),
                        key: format!("{root}/{}", o.key),
                        value,
                        encoding: stored,
                    });
                }
                write_batch(&mut kv, items, &mut tally, rewrite_from, &ours).await?;
                done.fetch_add(end - start, Ordering::Relaxed);
            }
        });
    }
    let mut all = Tally::default();
    while let Some(r) = set.join_next().await {
        let t: Tally = r.map_err(|e| Error::Internal(format!("a writer panicked: {e}")))??;
        all.objects += t.objects;
        all.existing += t.existing;
        all.foreign += t.foreign;
        all.foreign_keys.extend(t.foreign_keys);
        all.latency.merge(&t.latency);
        for (k, v) in t.by_kind {
            let e = all.by_kind.entry(k).or_default();
            e.count += v.count;
            e.bytes += v.bytes;
            e.encoding = e.encoding.or(v.encoding);
        }
        all.first_rev = match (all.first_rev, t.first_rev) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.last_rev = all.last_rev.max(t.last_rev);
    }
    for v in all.by_kind.values_mut() {
        v.avg_size = if v.count > 0 {
            v.bytes as f64 / v.count as f64
        } else {
            0.0
        };
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let bytes: u64 = all.by_kind.values().map(|k| k.bytes).sum();
    let revisions = (all.first_rev.unwrap_or(0), all.last_rev);
    all.foreign_keys.sort();
    all.foreign_keys.truncate(5);
    let record = SimulateRecord {
        backend: Backend::Etcd,
        root: root.clone(),
        encoding: opts.encoding,
        objects: all.objects,
        existing: all.existing,
        rewrite: opts.rewrite,
        bytes,
        duration_ms: secs * 1e3,
        throughput: all.objects as f64 / secs,
        bytes_per_s: bytes as f64 / secs,
        by_kind: all.by_kind,
        txn_latency: all.latency.summary(),
        revisions,
        kwok_controller: None,
        pods: None,
        nodes_ready_ms: None,
        api: BTreeMap::new(),
        api_slo: apiserver::ApiSloRecord::default(),
    };
    if all.foreign > 0 && !opts.adopt_existing {
        // Leave nothing behind: what this step created goes again.
        let written = Written {
            root: root.clone(),
            shape,
            revisions,
            options: opts.clone(),
            kube: None,
        };
        let mut kv = crate::target::kv(&target.client);
        let (removed, _) = inventory::remove(&mut kv, &written).await?;
        return Err(not_ours(all.foreign, &all.foreign_keys, removed, &record));
    }
    {
        let book = simulated(target);
        let mut ledger = book.lock().expect("ledger lock");
        match ledger
            .iter_mut()
            .find(|w| opts.rewrite && w.root == root && w.kube.is_none())
        {
            // Rewritten keys keep their create revision: the first entry still finds them.
            Some(w) => w.revisions.1 = w.revisions.1.max(revisions.1),
            None => {
                places::add(&places_of(target), places::of_shape(&shape, &root));
                ledger.push(Written {
                    root: root.clone(),
                    shape,
                    revisions,
                    options: opts.clone(),
                    kube: None,
                })
            }
        }
    }
    Ok(record)
}

/// `simulate` with `backend: "kube"` through a client of your own (a `tower-test` mock in tests);
/// the ledger entry of what it created, for `cleanup` and `heartbeat`.
pub async fn simulate_through(
    client: kube::Client,
    server: &str,
    opts: &SimulateOptions,
    observers: Watch,
) -> Result<(SimulateRecord, Written)> {
    let shape = shape_of(opts)?;
    let (record, created) = apiserver::simulate(
        client,
        server,
        opts,
        shape.clone(),
        observers.line,
        None,
        None,
    )
    .await?;
    let (count, foreign) = kube_foreign(&created, &[], server);
    if count > 0 && !opts.adopt_existing && !opts.rewrite {
        // Leave nothing behind: what this step created goes again.
        let (removed, _) = apiserver::cleanup(&created, opts, &shape).await?;
        return Err(not_ours(count, &foreign, removed, &record));
    }
    Ok((
        record,
        Written {
            root: server.to_string(),
            shape,
            revisions: (0, 0),
            options: opts.clone(),
            kube: Some(created),
        },
    ))
}

/// The most objects one simulation may write.
const MAX_OBJECTS: u64 = 100_000_000;

/// A storage root as a script may give it: absolute, no empty, `.` or `..` segment.
pub fn check_root(root: &str) -> Result<()> {
    let bad = !root.starts_with('/')
        || root.len() < 2
        || root
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Error::Options(format!(
            "root `{}`: give an absolute key path without empty, `.` or `..` segments (default \"/registry\")",
            crate::quote::quote(root)
        )));
    }
    Ok(())
}

/// A Kubernetes name as a script may give it (a name prefix, a namespace, a custom resource's
/// group and plural): lowercase letters, digits, `-` and `.`, starting and ending alphanumeric
/// (DNS-1123), at most 253 characters. Nothing a key path could be escaped with.
pub fn check_k8s_name(what: &str, name: &str, allow_trailing_dash: bool) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let last_ok = name
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric() || (allow_trailing_dash && c == '-'));
    if name.is_empty()
        || name.len() > 253
        || !name.chars().all(ok_char)
        || !first_ok
        || !last_ok
        || name.contains("..")
    {
        return Err(Error::Options(format!(
            "{what} `{}` is not a Kubernetes name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
            crate::quote::quote(name)
        )));
    }
    Ok(())
}

impl crate::actions::CheckOptions for SimulateOptions {
    fn check(&self) -> Result<()> {
        if let Some(r) = &self.root {
            check_root(r)?;
        }
        if let Some(p) = &self.name_prefix {
            if !p.is_empty() {
                check_k8s_name("name_prefix", p, true)?;
            }
        }
        for c in &self.custom {
            check_k8s_name("custom resource group", &c.group, false)?;
            check_k8s_name("custom resource plural", &c.plural, false)?;
            if !c.group.contains('.') {
                return Err(Error::Options(format!(
                    "custom resource group `{}` needs a dot (`example.com`): Kubernetes reserves dotless groups",
                    c.group
                )));
            }
        }
        if let Some(w) = &self.wait {
            match crate::units::parse_duration(w) {
                Ok(d)
                    if d > std::time::Duration::ZERO
                        && d <= std::time::Duration::from_secs(3600) => {}
                _ => {
                    return Err(Error::Options(format!(
                        "wait `{w}`: give a duration from 1s to 1h (\"5m\")"
                    )))
                }
            }
            if self.backend != Backend::Kube {
                return Err(Error::Options(
                    "wait is for backend \"kube\" (pods moved by the scheduler and KWOK)".into(),
                ));
            }
        }
        shape_of(self).map(|_| ())
    }
}

/// Checks what `opts` need besides their values: the templates they name exist and compile
/// (files are relative to `opts.base_dir`, the scenario's directory).
pub fn check_templates(opts: &SimulateOptions) -> Result<()> {
    templates::Renderer::new(opts, shape_of(opts)?).map(|_| ())
}

crate::no_option_checks!(inventory::InventoryOptions);

/// The cluster `opts` describe, after checking the options.
fn shape_of(opts: &SimulateOptions) -> Result<Shape> {
    if opts.batch == 0 || opts.batch > 128 || opts.clients == 0 || opts.clients > 256 {
        return Err(Error::Options(
            "batch must be 1..=128 (etcd's --max-txn-ops) and clients 1..=256".into(),
        ));
    }
    let pods = opts
        .pods
        .unwrap_or(opts.nodes.saturating_mul(opts.pods_per_node));
    let total = [
        opts.nodes.saturating_mul(2), // and their leases
        pods,
        opts.deployments.saturating_mul(2),
        opts.services,
        opts.configmaps,
        opts.secrets,
        opts.events,
    ]
    .into_iter()
    .chain(opts.custom.iter().map(|c| c.count))
    .fold(0u64, u64::saturating_add);
    if total > MAX_OBJECTS {
        return Err(Error::Options(format!(
            "{total} objects is more than {MAX_OBJECTS} (a typo?): the largest Kubernetes clusters hold a few million"
        )));
    }
    if pods > 0 && opts.nodes == 0 {
        return Err(Error::Options(
            "pods need nodes to run on: set `nodes`".into(),
        ));
    }
    Ok(Shape {
        namespaces: opts.namespaces.max(1),
        nodes: opts.nodes,
        pods,
        deployments: opts.deployments,
        services: opts.services,
        configmaps: opts.configmaps,
        secrets: opts.secrets,
        events: opts.events,
        custom: opts.custom.clone(),
        name_prefix: opts.name_prefix.clone().unwrap_or_else(|| "scen-".into()),
    })
}

/// A progress line a second while it lives: `done` of `total` objects `what`, and the rate.
pub(crate) fn progress_ticker(
    progress: Option<ProgressFn>,
    done: &Arc<AtomicU64>,
    total: u64,
    what: &'static str,
) -> Option<tokio_util::task::AbortOnDropHandle<()>> {
    progress.map(|p| {
        let done = done.clone();
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            let mut last = (0u64, Instant::now());
            loop {
                tick.tick().await;
                let n = done.load(Ordering::Relaxed);
                let rate = (n - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
                last = (n, Instant::now());
                p(format!("{n}/{total} objects {what}, {rate:.0}/s"));
            }
        }))
    })
}

/// Variables every template sees: times, payloads, node images and the scenario's own `vars`.
fn common_vars(opts: &SimulateOptions) -> Result<serde_json::Map<String, serde_json::Value>> {
    use serde_json::json;
    let now = chrono::Utc::now();
    let size = opts
        .value_size
        .as_ref()
        .map_or(Ok(1024), SizeValue::bytes)? as usize;
    if size > 1 << 20 {
        return Err(Error::Options("value_size must be at most 1MiB".into()));
    }
    // Secret data is base64 in the API: `size` bytes of data.
    let raw: Vec<u8> = (0..size)
        .map(|i| (objects::splitmix(i as u64) & 0xff) as u8)
        .collect();
    let mut m = serde_json::Map::new();
    m.insert(
        "created".into(),
        json!(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    );
    m.insert(
        "now".into(),
        json!(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    );
    m.insert(
        "now_micro".into(),
        json!(now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    );
    m.insert("images".into(), json!(opts.node_images));
    m.insert("results".into(), json!(10));
    m.insert("payload".into(), json!("x".repeat(size)));
    m.insert(
        "payload_base64".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(&raw)),
    );
    m.extend(opts.vars.clone());
    Ok(m)
}

/// One object ready to write.
struct Item {
    label: String,
    key: String,
    value: Vec<u8>,
    encoding: Encoding,
}

/// One transaction creating every key that does not exist yet; when one does, each key alone.
///
/// With `rewrite_from`, the transaction instead rewrites keys created at or after that revision
/// (by this run), and leaves every other key alone.
async fn write_batch(
    kv: &mut etcd_client::KvClient,
    items: Vec<Item>,
    tally: &mut Tally,
    rewrite_from: Option<i64>,
    ours: &[(i64, i64)],
) -> Result<()> {
    let etcd = |source| Error::Etcd { op: "txn", source };
    let guard = |key: &str| match rewrite_from {
        None => Compare::create_revision(key, CompareOp::Equal, 0),
        Some(first) => Compare::create_revision(key, CompareOp::Greater, first - 1),
    };
    let create = |items: &[Item]| {
        Txn::new()
            .when(items.iter().map(|i| guard(&i.key)).collect::<Vec<_>>())
            .and_then(
                items
                    .iter()
                    .map(|i| TxnOp::put(i.key.as_str(), i.value.clone(), None))
                    .collect::<Vec<_>>(),
            )
    };
    let t0 = Instant::now();
    let r = kv.txn(create(&items)).await.map_err(etcd)?;
    tally.latency.record(t0.elapsed());
    if r.succeeded() {
        let rev = r.header().map_or(0, |h| h.revision());
        for item in &items {
            tally.note(rev, item);
        }
        return Ok(());
    }
    for item in items.chunks(1) {
        let t0 = Instant::now();
        let key = item[0].key.as_str();
        let txn = create(item).or_else([TxnOp::get(key, None)]);
        let r = kv.txn(txn).await.map_err(etcd)?;
        tally.latency.record(t0.elapsed());
        if r.succeeded() {
            tally.note(r.header().map_or(0, |h| h.revision()), &item[0]);
            continue;
        }
        tally.existing += 1;
        // Whose is it? A create revision inside one of this run's simulations is the run's own.
        let created = r.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.create_revision()),
            _ => None,
        });
        let own = created.is_some_and(|c| ours.iter().any(|(a, b)| (*a..=*b).contains(&c)));
        if rewrite_from.is_none() && !own && !is_namespace(key) {
            tally.foreign += 1;
            if tally.foreign_keys.len() < 5 {
                tally.foreign_keys.push(key.to_string());
            }
        }
    }
    Ok(())
}

/// Whether `key` holds a namespace (`<root>/namespaces/<name>`): a container an existing one of
/// which is used as it is.
fn is_namespace(key: &str) -> bool {
    key.rsplit_once('/')
        .is_some_and(|(dir, _)| dir.ends_with("/namespaces"))
}

/// The existing objects of a kube-backend simulation that no earlier simulation of this run
/// (`earlier`, through `server`) created, namespaces aside: how many, and the first few.
fn kube_foreign(
    created: &apiserver::Created,
    earlier: &[Written],
    server: &str,
) -> (u64, Vec<String>) {
    let mut foreign: Vec<String> = created
        .existing
        .iter()
        .filter(|id| !id.starts_with("namespaces/"))
        .filter(|id| {
            !earlier.iter().any(|w| {
                w.root == server && w.kube.as_ref().is_some_and(|k| k.created.contains(*id))
            })
        })
        // `nodes//scen-node-1` (cluster-scoped) reads `nodes/scen-node-1`.
        .map(|id| id.replace("//", "/"))
        .collect();
    foreign.sort();
    let count = foreign.len() as u64;
    foreign.truncate(5);
    (count, foreign)
}

/// The error of a simulation that found objects at its names which this run did not create
/// (`count` of them, `examples` the first few), after it removed the `removed` objects it had
/// created itself.
fn not_ours(count: u64, examples: &[String], removed: u64, record: &SimulateRecord) -> Error {
    Error::WithRecord {
        source: Box::new(Error::NotOurs {
            count,
            examples: examples.join(", "),
            removed,
        }),
        record: Box::new(serde_json::to_value(record).unwrap_or_default()),
    }
}

impl Tally {
    /// Counts one object written at revision `rev`.
    fn note(&mut self, rev: i64, item: &Item) {
        self.objects += 1;
        let e = self.by_kind.entry(item.label.clone()).or_default();
        e.count += 1;
        e.bytes += item.value.len() as u64;
        e.encoding = Some(item.encoding);
        self.first_rev = Some(self.first_rev.map_or(rev, |f| f.min(rev)));
        self.last_rev = self.last_rev.max(rev);
    }
}

//! `cluster::lifecycle`: objects driven through the phases a controller and a node agent put them
//! through — create, schedule, run, monitor, delete — written into etcd as kube-apiserver writes
//! them (create-only, then compare-and-swap on the object's revision for every status update),
//! and measured per phase: writes, latency, conflicts, errors, and the time for the population to
//! reach the phase from each object's creation (the "VMI startup latency" KubeVirt and
//! ClusterLoader2 report for pods).
//!
//! Objects are named `<name>-<i>` in the namespaces `<name_prefix>ns-<i % namespaces>` (the
//! simulated cluster's: `scen-ns-0`...), scheduled round robin on the simulated nodes.

mod options;
mod record;
mod sink;
mod through_kube;

pub use options::{
    phases_of, LifecycleOptions, Mode, ObjectAddress, Placement, ResourceSpec, PHASES,
};
pub use record::{LifecycleRecord, PhaseRecord};

use options::*;
use record::*;
use sink::*;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::objects::Kind;
use super::templates::Renderer;
use super::{effective_root, Backend, Encoding};
use crate::actions::{duration_option as duration, Error, Result, Watch};
use crate::exit::FailCode;
use crate::measure::book::Book;
use crate::measure::latency::Recorder;
use crate::target::Target;
use through_kube as kube_api;

/// What a phase counts beside its book (entries, their latency and failures are in the book).
#[derive(Default)]
struct PhaseExtra {
    conflicts: u64,
    since_created: Recorder,
    /// The first and the last entry into the phase.
    span: Option<(Instant, Instant)>,
}

/// The lifecycle's book (by phase: an entry into a phase is its success) and each phase's extras.
#[derive(Default)]
struct Tallies {
    book: Book<&'static str>,
    extra: BTreeMap<&'static str, PhaseExtra>,
}

struct Shared {
    sink: Sink,
    /// The kind's plural, for the kube backend's API paths.
    plural: String,
    renderer: Renderer,
    layout: Layout,
    root: String,
    name: String,
    nodes: Vec<String>,
    permits: tokio::sync::Semaphore,
    timeout: Duration,
    phases: Vec<&'static str>,
    monitor: Duration,
    monitor_interval: Duration,
    finalizer: bool,
    /// When the lifecycle started (second 0 of its book).
    start: Instant,
    tallies: Mutex<Tallies>,
    /// `mode: "waves"`: each phase's wall-clock time.
    walls: Mutex<BTreeMap<&'static str, Duration>>,
    /// Whether a failure was the cluster's (exit 3) rather than the scenario's.
    infra: std::sync::atomic::AtomicBool,
    completed: std::sync::atomic::AtomicU64,
    /// What the embedded control plane runs: a scheduler binds the pods, KWOK runs them; scen
    /// then waits for each on `watch` instead of writing for them.
    env: super::apiserver::Env,
    watch: Option<super::pod_watch::PodWatch>,
}

/// How long a pod may wait for the scheduler to bind it or KWOK to run it.
const CONTROLLER_WAIT: Duration = Duration::from_secs(120);

/// The `i`-th object: its key and its body as created (phase Pending, not scheduled).
fn created(sh: &Shared, i: u64) -> Result<(String, Value)> {
    let o = sh.renderer.render_now(render_kind(&sh.layout), i)?;
    let mut v = o.value;
    // Named `<name>-<i>` in its namespace, with a uid of its own.
    let ns = v["metadata"]["namespace"].as_str().map(String::from);
    let name = format!("{}-{i}", sh.name);
    v["metadata"]["name"] = json!(name);
    v["metadata"]["uid"] = json!(super::objects::uid(
        &sh.layout.label,
        ns.as_deref().unwrap_or(""),
        &name
    ));
    let key = match (&ns, sh.layout.namespaced) {
        (Some(ns), true) => format!("{}/{}/{ns}/{name}", sh.root, sh.layout.resource),
        _ => format!("{}/{}/{name}", sh.root, sh.layout.resource),
    };
    if sh.layout.pod() {
        if let Some(spec) = v["spec"].as_object_mut() {
            spec.remove("nodeName");
        }
        v["status"] = json!({ "phase": "Pending", "qosClass": "Burstable" });
    } else if sh.layout.builtin == Some(Kind::Deployment) {
        v["status"] = json!({ "observedGeneration": 1 });
    } else {
        v["status"] = json!({ "phase": "Pending" });
    }
    Ok((key, v))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The object's body for `phase` (and a second, intermediate write for a custom kind's schedule:
/// `Scheduling`, then `Scheduled`).
fn bodies(sh: &Shared, i: u64, base: &Value, phase: &str) -> Result<Vec<Value>> {
    let node = sh.nodes[(i % sh.nodes.len() as u64) as usize].clone();
    let mut v = base.clone();
    let stamp = now();
    let ready = |t: &str| json!({ "type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": stamp });
    let deployment = sh.layout.builtin == Some(Kind::Deployment);
    Ok(match (phase, sh.layout.pod()) {
        // A deployment's controller: replicas created, not yet available; then the template's
        // available status.
        ("schedule", _) if deployment => {
            v["status"] = json!({ "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                "unavailableReplicas": 1, "conditions": [{ "type": "Progressing", "status": "True",
                "reason": "NewReplicaSetAvailable", "lastUpdateTime": stamp, "lastTransitionTime": stamp }] });
            vec![v]
        }
        ("run", _) if deployment => {
            v["status"] = sh.renderer.render_now(Kind::Deployment, i)?.value["status"].clone();
            vec![v]
        }
        ("monitor", _) if deployment => {
            if let Some(c) = v["status"]["conditions"].as_array_mut() {
                for c in c {
                    c["lastUpdateTime"] = json!(stamp);
                }
            }
            vec![v]
        }
        ("schedule", true) => {
            v["spec"]["nodeName"] = json!(node);
            v["status"]["conditions"] = json!([ready("PodScheduled")]);
            vec![v]
        }
        ("schedule", false) => {
            v["status"]["phase"] = json!("Scheduling");
            let first = v.clone();
            v["status"]["phase"] = json!("Scheduled");
            v["status"]["nodeName"] = json!(node);
            v["status"]["conditions"] = json!([ready("PodScheduled")]);
            vec![first, v]
        }
        ("run", true) => {
            // The template's running pod, on this node.
            let full = sh.renderer.render_now(Kind::Pod, i)?.value;
            v["spec"]["nodeName"] = json!(node);
            v["status"] = full["status"].clone();
            vec![v]
        }
        ("run", false) => {
            v["status"]["phase"] = json!("Running");
            v["status"]["nodeName"] = json!(node);
            v["status"]["conditions"] = json!([ready("PodScheduled"), ready("Ready")]);
            vec![v]
        }
        ("monitor", _) => {
            if let Some(c) = v["status"]["conditions"].as_array_mut() {
                for c in c {
                    c["lastProbeTime"] = json!(stamp);
                }
            }
            vec![v]
        }
        ("delete", _) => {
            v["metadata"]["deletionTimestamp"] = json!(stamp);
            v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            vec![v]
        }
        _ => vec![v],
    })
}

fn fail(sh: &Shared, phase: &'static str, e: &Error) {
    let code = match e {
        Error::Etcd { source, .. } => FailCode::of(source),
        Error::Failed { .. } => FailCode::Timeout,
        Error::Kube {
            source: kube::Error::Api(s),
            ..
        } => FailCode::Http(s.code),
        Error::Kube { .. } => FailCode::Grpc(tonic::Code::Unavailable),
        _ => FailCode::Other,
    };
    // etcd's failures and timeouts are the cluster's; the API server's are when it says so
    // (5xx, 429, no answer), not when it refuses an object (4xx).
    let infra = match e {
        Error::Etcd { .. } | Error::Failed { .. } => true,
        Error::Kube { .. } => !matches!(
            e.kind(),
            crate::exit::ErrorKind::Script | crate::exit::ErrorKind::Usage
        ),
        _ => false,
    };
    if infra {
        sh.infra.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let sec = sh.start.elapsed().as_secs();
    sh.tallies.lock().expect("tally lock").book.fail(
        phase,
        sec,
        &code,
        e.kind(),
        &format!("{phase}: {e}"),
    );
}

/// The writes of one round of `phase` from the state `body` (compact JSON): each encoded as
/// stored, with the state it leaves. Objects keep only this text between writes, not a parsed tree:
/// thousands of them are alive at once while monitored.
fn next_writes(sh: &Shared, i: u64, body: &str, phase: &str) -> Result<Vec<(Vec<u8>, String)>> {
    let base: Value = serde_json::from_str(body).map_err(|e| Error::Internal(e.to_string()))?;
    let values = match (phase, &sh.sink) {
        ("create", _) => vec![base],
        // The API server sets deletionTimestamp itself; into etcd, only a finalizer's first step.
        ("delete", Sink::Kube(_)) => vec![base],
        ("delete", Sink::Etcd(_)) if !sh.finalizer => Vec::new(),
        (p, _) => bodies(sh, i, &base, p)?,
    };
    values
        .into_iter()
        .map(|v| {
            let bytes = match sh.sink {
                Sink::Etcd(_) => encode(sh, &v)?,
                Sink::Kube(_) => Vec::new(),
            };
            Ok((bytes, v.to_string()))
        })
        .collect()
}

/// One round of `phase`'s writes of object `i` at `key`; the conflicts met.
async fn apply(
    sh: &Shared,
    phase: &str,
    key: &str,
    writes: &[(Vec<u8>, String)],
    ver: &mut Ver,
) -> Result<u64> {
    let mut conflicts = 0;
    match (&sh.sink, ver) {
        (Sink::Etcd(_), Ver::Etcd(rev)) => {
            for (bytes, _) in writes {
                let o = write(sh, key, Some(bytes.clone()), *rev).await?;
                *rev = o.revision;
                conflicts += o.conflicts;
            }
            if phase == "delete" {
                conflicts += write(sh, key, None, *rev).await?.conflicts;
            }
        }
        (Sink::Kube(client), Ver::Kube(rv)) => {
            let _permit = sh.permits.acquire().await.expect("never closed");
            for (_, state) in writes {
                let v: Value =
                    serde_json::from_str(state).map_err(|e| Error::Internal(e.to_string()))?;
                let api = kube_api::api(client, &v, &sh.plural);
                let go = async {
                    match phase {
                        "create" => *rv = kube_api::create(&api, &v, sh.finalizer).await?,
                        "delete" => kube_api::delete(&api, &v, sh.finalizer).await?,
                        "schedule" | "run" if sh.layout.pod() && waits_for(sh, phase) => {
                            // The real scheduler binds it, KWOK runs it: wait to see it happen.
                            let name = v["metadata"]["name"].as_str().unwrap_or_default();
                            let ns = v["metadata"]["namespace"].as_str().unwrap_or_default();
                            let watch = sh.watch.as_ref().expect("a watch when controllers act");
                            watch
                                .wait_pod(&format!("{ns}/{name}"), phase == "run", CONTROLLER_WAIT)
                                .await?;
                            let now = api.get(name).await.map_err(|source| Error::Kube {
                                op: format!("read {name}"),
                                source,
                            })?;
                            *rv = now.metadata.resource_version.unwrap_or_default();
                        }
                        "schedule" if sh.layout.pod() => {
                            let node = v["spec"]["nodeName"].as_str().unwrap_or_default();
                            kube_api::bind(&api, &v, node).await?;
                            // The binding moved the pod on: learn where it is now.
                            let name = v["metadata"]["name"].as_str().unwrap_or_default();
                            let now = api.get(name).await.map_err(|source| Error::Kube {
                                op: format!("read {name}"),
                                source,
                            })?;
                            *rv = now.metadata.resource_version.unwrap_or_default();
                        }
                        _ => {
                            let (new, c) = kube_api::status(&api, &v, rv).await?;
                            *rv = new;
                            conflicts += c;
                        }
                    }
                    Ok::<(), Error>(())
                };
                let limit = if waits_for(sh, phase) {
                    CONTROLLER_WAIT + sh.timeout
                } else {
                    sh.timeout
                };
                tokio::time::timeout(limit, go)
                    .await
                    .map_err(|_| Error::Failed {
                        kind: crate::exit::ErrorKind::RequestTimeout,
                        message: format!("no answer in {:?} writing {key}", sh.timeout),
                    })??;
            }
        }
        _ => unreachable!("a sink's own version"),
    }
    Ok(conflicts)
}

/// Whether scen waits for a controller in `phase` instead of writing: the scheduler's binding, or
/// KWOK's Running.
fn waits_for(sh: &Shared, phase: &str) -> bool {
    sh.watch.is_some()
        && ((phase == "schedule" && sh.env.scheduler) || (phase == "run" && sh.env.kwok))
}

/// One object between phases: its index, key, last state, the version it was written at, and
/// when it was made.
struct Obj {
    i: u64,
    key: String,
    body: String,
    ver: Ver,
    born: Instant,
}

/// Object `i` before its creation; `None` (a failure noted) when it cannot be rendered.
fn new_obj(sh: &Shared, i: u64) -> Option<Obj> {
    let (key, body) = match created(sh, i) {
        Ok((k, v)) => (k, v.to_string()),
        Err(e) => {
            fail(sh, "create", &e);
            return None;
        }
    };
    Some(Obj {
        i,
        key,
        body,
        ver: match sh.sink {
            Sink::Etcd(_) => Ver::Etcd(0),
            Sink::Kube(_) => Ver::Kube(String::new()),
        },
        born: Instant::now(),
    })
}

/// Takes object `o` through `phase` (a monitored one for `monitor`); false when it failed, and
/// then it takes no further phase.
async fn run_phase(sh: &Shared, o: &mut Obj, phase: &'static str, monitor: Duration) -> bool {
    let started = Instant::now();
    let mut conflicts = 0;
    // A monitored object keeps updating its status until its time is up.
    let until = started + monitor;
    let mut first = true;
    loop {
        let writes = match next_writes(sh, o.i, &o.body, phase) {
            Ok(w) => w,
            Err(e) => {
                fail(sh, phase, &e);
                return false;
            }
        };
        match apply(sh, phase, &o.key, &writes, &mut o.ver).await {
            Ok(c) => conflicts += c,
            Err(e) => {
                fail(sh, phase, &e);
                return false;
            }
        }
        if let Some((_, state)) = writes.into_iter().last() {
            o.body = state;
        }
        if first {
            let mut t = sh.tallies.lock().expect("tally lock");
            let sec = started.duration_since(sh.start).as_secs();
            t.book.ok(phase, sec, started.elapsed());
            let extra = t.extra.entry(phase).or_default();
            extra.since_created.record(o.born.elapsed());
            let at = Instant::now();
            extra.span = Some(extra.span.map_or((at, at), |(a, b)| (a.min(at), b.max(at))));
            first = false;
        }
        if phase != "monitor" {
            break;
        }
        // Running: a status update every interval until the object's time is up.
        let next = Instant::now() + sh.monitor_interval;
        if next >= until {
            tokio::time::sleep_until(until.into()).await;
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    sh.tallies
        .lock()
        .expect("tally lock")
        .extra
        .entry(phase)
        .or_default()
        .conflicts += conflicts;
    true
}

/// Drives object `i` through the phases (a pipeline).
async fn object(sh: Arc<Shared>, i: u64) {
    let Some(mut o) = new_obj(&sh, i) else {
        return;
    };
    for phase in sh.phases.clone() {
        if !run_phase(&sh, &mut o, phase, sh.monitor).await {
            return;
        }
    }
    sh.completed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Drives every object through one phase before any enters the next: `count` created (`rate`
/// apart), all scheduled, all running, all held for `hold`, all deleted. Returns the most objects
/// that existed at once.
async fn waves(
    sh: &Arc<Shared>,
    count: u64,
    rate: Option<f64>,
    concurrency: u64,
    hold: Duration,
) -> u64 {
    let mut alive: Vec<Obj> = Vec::new();
    let mut peak = 0u64;
    for phase in sh.phases.clone() {
        let began = Instant::now();
        // A held population is held all at once; other phases keep `concurrency` objects moving.
        let in_flight = if phase == "monitor" {
            usize::MAX
        } else {
            concurrency.max(1) as usize
        };
        let mut set: tokio::task::JoinSet<Option<Obj>> = tokio::task::JoinSet::new();
        let mut next: Vec<Obj> = Vec::new();
        let mut todo: Box<dyn Iterator<Item = Result<Obj, u64>> + Send> = if phase == "create" {
            Box::new((0..count).map(Err))
        } else {
            Box::new(std::mem::take(&mut alive).into_iter().map(Ok))
        };
        let mut n = 0u64;
        loop {
            while set.len() >= in_flight {
                if let Some(Ok(Some(o))) = set.join_next().await {
                    next.push(o);
                }
            }
            let Some(item) = todo.next() else { break };
            if let (Some(rate), "create") = (rate, phase) {
                tokio::time::sleep_until((began + Duration::from_secs_f64(n as f64 / rate)).into())
                    .await;
            }
            n += 1;
            let sh = sh.clone();
            set.spawn(async move {
                let mut o = match item {
                    Ok(o) => o,
                    Err(i) => new_obj(&sh, i)?,
                };
                run_phase(&sh, &mut o, phase, hold).await.then_some(o)
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Some(o)) = r {
                next.push(o);
            }
        }
        sh.walls
            .lock()
            .expect("walls lock")
            .insert(phase, began.elapsed());
        if phase != "delete" {
            peak = peak.max(next.len() as u64);
        }
        alive = next;
    }
    sh.completed
        .fetch_add(alive.len() as u64, std::sync::atomic::Ordering::Relaxed);
    peak
}

/// Runs the lifecycle of `opts.count` objects on the cluster `target` reaches.
pub async fn lifecycle(
    target: &Target,
    opts: &LifecycleOptions,
    observers: Watch,
) -> Result<LifecycleRecord> {
    opts.check()?;
    if opts.backend == Backend::Kube {
        let (client, _, embedded) = super::apiserver::connect_for(
            target,
            opts.kubeconfig.as_deref(),
            opts.context.as_deref(),
        )
        .await?;
        if embedded.is_some() {
            // The run's own control plane: what the objects need is scen's to provide.
            let l = layout(opts)?;
            let prefix = opts.name_prefix.clone().unwrap_or_else(|| "scen-".into());
            let namespaces: Vec<String> = (0..opts.namespaces.min(opts.count))
                .map(|n| format!("{prefix}ns-{n}"))
                .collect();
            if l.namespaced {
                super::apiserver::ensure_namespaces(&client, &namespaces).await?;
            }
            if l.builtin.is_none() {
                let r = renderer(opts, &l, opts.nodes.unwrap_or(1).max(1))?;
                let sample = r.render_now(render_kind(&l), 0)?.value;
                let plural = l.resource.rsplit('/').next().unwrap_or_default();
                super::apiserver::ensure_crd(&client, &sample, plural, l.namespaced).await?;
            }
        }
        let env = embedded
            .map(|k| super::apiserver::Env {
                kwok: k.kwok,
                scheduler: k.scheduler,
            })
            .unwrap_or_default();
        return lifecycle_env(client, opts, observers, env).await;
    }
    let phases = phases_of(opts)?;
    // The nodes: the simulated cluster's, or `nodes` of them by the same names.
    let simulated = super::simulated(target)
        .lock()
        .expect("ledger lock")
        .iter()
        .rev()
        .find(|w| w.shape.nodes > 0 && w.kube.is_none())
        .map(|w| (w.shape.nodes, w.shape.name_prefix.clone(), w.root.clone()));
    let prefix = opts.name_prefix.clone().unwrap_or_else(|| "scen-".into());
    let nodes = match (opts.nodes, &simulated) {
        (Some(n), _) if n > 0 => n,
        (None, Some((n, _, _))) => *n,
        _ if !phases.contains(&"schedule") => 1,
        _ => {
            return Err(Error::Options(
                "no nodes to schedule on: run cluster::simulate first, or give `nodes`".into(),
            ))
        }
    };
    let node_prefix = simulated
        .as_ref()
        .map_or(prefix.clone(), |(_, p, _)| p.clone());
    let root = effective_root(target, opts.root.as_deref());
    let sink = Sink::Etcd(crate::target::kv(&target.client));
    let record = drive(
        sink,
        opts,
        nodes,
        &node_prefix,
        root,
        observers,
        Default::default(),
    )
    .await?;
    super::places::add(
        &super::places_of(target),
        vec![super::places::Place {
            dir: record.prefix.clone(),
            kind: record.kind.clone(),
            objects: record.remaining,
            namespaces: if record.namespaced {
                record.namespaces.clone()
            } else {
                Vec::new()
            },
            simulated: false,
            emptied: Vec::new(),
        }],
    );
    Ok(record)
}

/// `lifecycle` with `backend: "kube"` through a client of your own (a `tower-test` mock in
/// tests): the objects are scheduled on `nodes` nodes named as the simulated cluster's.
pub async fn lifecycle_through(
    client: kube::Client,
    opts: &LifecycleOptions,
    observers: Watch,
) -> Result<LifecycleRecord> {
    lifecycle_env(client, opts, observers, Default::default()).await
}

/// [`lifecycle_through`] with a scheduler and KWOK at work as `env` says.
async fn lifecycle_env(
    client: kube::Client,
    opts: &LifecycleOptions,
    observers: Watch,
    env: super::apiserver::Env,
) -> Result<LifecycleRecord> {
    opts.check()?;
    let phases = phases_of(opts)?;
    let prefix = opts.name_prefix.clone().unwrap_or_else(|| "scen-".into());
    let nodes = match opts.nodes {
        Some(n) if n > 0 => n,
        _ if !phases.contains(&"schedule") => 1,
        _ => {
            return Err(Error::Options(
                "backend \"kube\": give `nodes`, the nodes to schedule on".into(),
            ))
        }
    };
    drive(
        Sink::Kube(client),
        opts,
        nodes,
        &prefix,
        String::new(),
        observers,
        env,
    )
    .await
}

/// Drives the objects through `sink` and builds the record.
async fn drive(
    sink: Sink,
    opts: &LifecycleOptions,
    nodes: u64,
    node_prefix: &str,
    root: String,
    observers: Watch,
    env: super::apiserver::Env,
) -> Result<LifecycleRecord> {
    let l = layout(opts)?;
    let phases = phases_of(opts)?;
    let prefix = opts.name_prefix.clone().unwrap_or_else(|| "scen-".into());
    let renderer = renderer(opts, &l, nodes)?;
    let name = opts.name.clone().unwrap_or_else(|| l.label.clone());
    let namespaces: Vec<String> = (0..opts.namespaces.min(opts.count))
        .map(|n| format!("{prefix}ns-{n}"))
        .collect();
    let plural = l
        .resource
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let sink_client = match &sink {
        Sink::Kube(c) => Some(c.clone()),
        Sink::Etcd(_) => None,
    };
    let sh = Arc::new(Shared {
        sink,
        plural,
        renderer,
        root: root.clone(),
        name: name.clone(),
        nodes: (0..nodes)
            .map(|n| format!("{node_prefix}node-{n}"))
            .collect(),
        permits: tokio::sync::Semaphore::new(opts.concurrency as usize),
        timeout: duration(opts.request_timeout.as_deref(), "5s", "request_timeout")?,
        phases: phases.clone(),
        monitor: duration(opts.monitor.as_deref(), "0s", "monitor")?,
        monitor_interval: duration(opts.monitor_interval.as_deref(), "5s", "monitor_interval")?
            .max(Duration::from_millis(10)),
        finalizer: opts.finalizer,
        start: Instant::now(),
        tallies: Mutex::new(Tallies::default()),
        walls: Mutex::new(BTreeMap::new()),
        infra: Default::default(),
        completed: Default::default(),
        watch: match (&sink_client, l.pod() && (env.scheduler || env.kwok)) {
            (Some(c), true) => Some(super::pod_watch::PodWatch::start(
                c.clone(),
                namespaces.iter().cloned().collect(),
            )),
            _ => None,
        },
        env,
        layout: l,
    });
    let start = Instant::now();
    let ticker = observers.line.map(|p| {
        let sh = sh.clone();
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = sh.tallies.lock().expect("tally lock");
                let line: Vec<String> = sh
                    .phases
                    .iter()
                    .map(|p| format!("{p} {}", t.book.op(p).ok))
                    .collect();
                drop(t);
                p(line.join(", "));
            }
        }))
    });
    let peak = match opts.mode {
        Mode::Waves => {
            let hold = duration(
                opts.hold.as_deref().or(opts.monitor.as_deref()),
                "0s",
                "hold",
            )?;
            Some(waves(&sh, opts.count, opts.rate, opts.concurrency, hold).await)
        }
        Mode::Pipeline => {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..opts.count {
                if let Some(rate) = opts.rate {
                    tokio::time::sleep_until(
                        (start + Duration::from_secs_f64(i as f64 / rate)).into(),
                    )
                    .await;
                }
                // Bounded: at most 64 objects per write in flight are alive at once (a monitored
                // population stays alive for its `monitor`, so the bound is wide).
                while set.len() as u64 >= opts.concurrency.max(1) * 64 {
                    set.join_next().await;
                }
                set.spawn(object(sh.clone(), i));
                while set.try_join_next().is_some() {}
            }
            while set.join_next().await.is_some() {}
            None
        }
    };
    drop(ticker);
    let elapsed = start.elapsed();
    // What is left under the prefix: nothing after a delete; every object otherwise.
    let dir = match (namespaces.len(), sh.layout.namespaced) {
        (_, true) => format!("{root}/{}/", sh.layout.resource),
        _ => format!("{root}/{}/", sh.layout.resource),
    };
    let remaining = remaining(&sh, &dir, &name, &namespaces).await?;
    let secs = elapsed.as_secs_f64().max(1e-9);
    record(
        &sh,
        opts,
        phases,
        (elapsed, secs),
        (dir, name, namespaces),
        (remaining, peak),
    )
}

/// Objects of this lifecycle found at the end: under the prefix in etcd, or listed by the API
/// server in each namespace.
async fn remaining(sh: &Shared, dir: &str, name: &str, namespaces: &[String]) -> Result<u64> {
    let mut remaining = 0u64;
    if let Sink::Kube(client) = &sh.sink {
        let sample = sh.renderer.render_now(render_kind(&sh.layout), 0)?.value;
        for ns in namespaces {
            let mut probe = json!({ "apiVersion": sample["apiVersion"], "kind": sample["kind"], "metadata": {} });
            if sh.layout.namespaced {
                probe["metadata"]["namespace"] = json!(ns);
            }
            let api = kube_api::api(client, &probe, &sh.plural);
            remaining += tokio::time::timeout(sh.timeout, kube_api::count(&api, name))
                .await
                .map_err(|_| Error::Failed {
                    kind: crate::exit::ErrorKind::RequestTimeout,
                    message: format!(
                        "the API server did not answer the list of {name} objects within {:?}",
                        sh.timeout
                    ),
                })??;
            if !sh.layout.namespaced {
                break;
            }
        }
        return Ok(remaining);
    }
    let Sink::Etcd(kv) = &sh.sink else {
        unreachable!()
    };
    let mut kv = kv.clone();
    for ns in namespaces {
        let p = if sh.layout.namespaced {
            format!("{dir}{ns}/{name}-")
        } else {
            format!("{dir}{name}-")
        };
        let r = kv
            .get(
                p.as_str(),
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .map_err(|source| Error::Etcd {
                op: "range",
                source,
            })?;
        remaining += r.count() as u64;
        if !sh.layout.namespaced {
            break;
        }
    }
    Ok(remaining)
}

//! `cluster::heartbeat`: the steady-state writes of a live cluster replayed against the simulated
//! one at their intended rates — node lease renewals, node status updates and pod churn — written
//! the way kube-apiserver writes them (compare-and-swap on the key's mod revision).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use super::apiserver::Prepared;
use super::objects::{Kind, Shape};
use super::templates::Renderer;
use super::{effective_root, Encoding, SimulateOptions, Written};
use crate::actions::{duration_option as duration, ms, Error, Result, Watch};
use crate::exit::{ErrorKind, FailCode};
use crate::measure::book::Book;
use crate::measure::latency::Distribution;
use crate::target::Target;

/// Options of `cluster::heartbeat`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatOptions {
    /// How long to keep the cluster alive (`"60s"`).
    pub duration: String,
    /// Each node renews its lease this often (default `"10s"`, kubelet's).
    pub lease_interval: Option<String>,
    /// Each node writes its status this often (default `"1m"`; `"0s"`: never).
    pub status_interval: Option<String>,
    /// Percent of the pods deleted and created again per `churn_interval` (default 0).
    #[serde(default, deserialize_with = "crate::actions::de_f64")]
    pub pod_churn: f64,
    /// The churn period (default `"1m"`).
    pub churn_interval: Option<String>,
    /// Writes in flight at most (default 64; formerly `concurrency`).
    #[serde(default = "sixty_four")]
    pub clients: u64,
    /// Per-write timeout (default `"5s"`).
    pub request_timeout: Option<String>,
    /// Nodes to keep alive: default all the nodes this run simulated; with no simulation in this
    /// run, the nodes an earlier run left (with `name_prefix` and `root`).
    pub nodes: Option<u64>,
    /// Pods of that earlier cluster (for churn).
    pub pods: Option<u64>,
    /// Name prefix of that earlier cluster (default `"scen-"`).
    pub name_prefix: Option<String>,
    /// Storage root of that earlier cluster (default as `simulate`).
    pub root: Option<String>,
}

fn sixty_four() -> u64 {
    64
}

/// One kind of heartbeat write.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct FlowRecord {
    /// Writes scheduled in the step (none to adopted objects).
    pub intended: u64,
    /// Writes that succeeded.
    pub ok: u64,
    /// Writes that failed.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Writes not made because the object was adopted (`adopt_existing`: it existed before
    /// this run, which never writes it).
    pub adopted: u64,
    /// Writes due in the step but never sent: every client was still busy when the window
    /// ended (an open loop that fell behind, as `etcd::stress`'s `dropped`). Each is in `latency`
    /// with the time it had waited by then, a lower bound. `null` when no write of this flow was
    /// due (nothing could be dropped: no data, never a pass).
    #[schemars(extend("x-better" = "lower"))]
    pub dropped: Option<u64>,
    /// Writes retried because the stored object had changed since the heartbeats last saw it (a
    /// stale resourceVersion: another writer, real contention).
    pub conflicts: u64,
    /// The intended rate, writes/s (as `etcd::stress`'s `target_rate`).
    #[schemars(with = "crate::measure::PerSecond")]
    pub target_rate: f64,
    /// The achieved rate, successful writes/s.
    #[schemars(with = "crate::measure::PerSecond", extend("x-better" = "higher", "x-samples" = "ok"))]
    pub throughput: f64,
    /// How far the achieved rate fell short of the intended one, a ratio (`shortfall < 1%`);
    /// `null` when no write of this flow was due.
    #[schemars(with = "Option<crate::measure::Ratio>", extend("x-better" = "lower", "x-samples" = "intended"))]
    pub shortfall: Option<f64>,
    /// Latency from the moment each write was due (ms).
    pub latency: Distribution,
}

/// The record of `cluster::heartbeat`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HeartbeatRecord {
    /// The storage root written under.
    pub root: String,
    /// Nodes kept alive.
    pub nodes: u64,
    /// Pods (churned ones among them).
    pub pods: u64,
    /// Wall time, ms.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
    /// Node lease renewals (`/registry/leases/kube-node-lease/<node>`).
    pub leases: FlowRecord,
    /// Node status updates (`/registry/minions/<node>`).
    pub node_status: FlowRecord,
    /// Pods deleted and created again (each counts once, for its two writes). Absent when no
    /// churn was asked for (`pod_churn: 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_churn: Option<FlowRecord>,
    /// All heartbeat writes intended per second.
    #[schemars(with = "crate::measure::PerSecond")]
    pub target_rate: f64,
    /// All successful heartbeat writes per second.
    #[schemars(with = "crate::measure::PerSecond")]
    pub throughput: f64,
    /// Value bytes written.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes: u64,
    /// scen's own CPU time (user + system) while the flows ran, ms: the whole scen process, so
    /// a background step running beside it counts too.
    #[schemars(with = "crate::measure::Ms")]
    pub client_cpu_ms: f64,
    /// scen's CPU per successful renewal, status update or churned pod, ms (`null` when none
    /// succeeded).
    #[schemars(with = "Option<crate::measure::Ms>", extend("x-better" = "lower"))]
    pub client_cpu_per_write: Option<f64>,
    /// Failed writes by gRPC status code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// The first few error messages.
    pub error_messages: Vec<String>,
    /// Per second: writes and p99 latency.
    pub series: Vec<crate::measure::book::Second>,
}

impl crate::actions::CheckOptions for HeartbeatOptions {
    fn check(&self) -> Result<()> {
        duration(Some(&self.duration), "", "duration")?;
        for (text, default, what) in [
            (&self.lease_interval, "10s", "lease_interval"),
            (&self.status_interval, "1m", "status_interval"),
            (&self.churn_interval, "1m", "churn_interval"),
            (&self.request_timeout, "5s", "request_timeout"),
        ] {
            duration(text.as_deref(), default, what)?;
        }
        if !(0.0..=100.0).contains(&self.pod_churn) {
            return Err(Error::Options("pod_churn is a percentage: 0 to 100".into()));
        }
        if self.clients == 0 || self.clients > 4096 {
            return Err(Error::Options("clients must be 1..=4096".into()));
        }
        Ok(())
    }
}

/// The three periodic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Lease = 0,
    Status = 1,
    Churn = 2,
}

/// A flow's schedule: `n` writes per `period`, spread evenly, walking round robin through
/// `population` objects (churn: `n` of the pods per period, the next ones each time).
#[derive(Debug, Clone, Copy)]
struct Periodic {
    flow: Flow,
    n: u64,
    period: Duration,
    population: u64,
}

impl Periodic {
    /// When the `k`-th event is due, from the start.
    fn due(&self, k: u64) -> Duration {
        Duration::from_secs_f64(self.period.as_secs_f64() * k as f64 / self.n as f64)
    }

    /// Events due before `length`.
    fn count(&self, length: Duration) -> u64 {
        if self.n == 0 || self.period.is_zero() {
            return 0;
        }
        (length.as_secs_f64() * self.n as f64 / self.period.as_secs_f64()).ceil() as u64
    }
}

/// Tallies shared by the writes in flight: the loop's book (by flow), and what only heartbeats
/// count beside it.
#[derive(Default)]
struct Stats {
    book: Book<usize>,
    /// Each flow's writes left alone because the object was adopted (`adopt_existing`).
    adopted: [u64; 3],
    /// Each flow's compare-and-swap conflicts retried.
    conflicts: [u64; 3],
    bytes: u64,
    last_rev: i64,
    /// The simulation adopted existing objects (`adopt_existing`): a write refused because the
    /// object is not this run's is an adopted object left alone, not an error.
    adopting: bool,
    /// Writes sent and not yet answered, by the second they were due in.
    in_flight: BTreeMap<u64, u64>,
    /// The second the last write sent was due in: writes are sent in due order, so no later one
    /// is due before it.
    sent_up_to: u64,
}

impl Stats {
    /// A write due in second `sec` is sent.
    fn issue(&mut self, sec: u64) {
        *self.in_flight.entry(sec).or_default() += 1;
        self.sent_up_to = sec;
    }

    /// A write of `flow` due in second `sec` was answered (or timed out) after `latency`. The
    /// seconds no write can still be answered for close into the series.
    fn done(&mut self, flow: Flow, sec: u64, outcome: &Outcome, latency: Duration) {
        if let Some(n) = self.in_flight.get_mut(&sec) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&sec);
            }
        }
        self.record(flow, sec, outcome, latency);
        let open_from = self
            .in_flight
            .keys()
            .next()
            .map_or(self.sent_up_to, |s| (*s).min(self.sent_up_to));
        self.book.fold(open_from);
    }

    fn record(&mut self, flow: Flow, sec: u64, outcome: &Outcome, latency: Duration) {
        let i = flow as usize;
        self.conflicts[i] += outcome.conflicts;
        match &outcome.error {
            Some((FailCode::NotOwned, _, _)) if self.adopting => {
                // Due, but not written: the second is in the series, with nothing done in it.
                self.book.due(sec);
                self.adopted[i] += 1;
            }
            None => {
                self.book.ok(i, sec, latency);
                self.bytes += outcome.bytes;
                self.last_rev = self.last_rev.max(outcome.revision);
            }
            Some((code, kind, message)) => self.book.fail(i, sec, code, *kind, message),
        }
    }
}

/// How one heartbeat write went.
#[derive(Default)]
struct Outcome {
    /// A failure: its code, its kind and its message.
    error: Option<(FailCode, ErrorKind, String)>,
    conflicts: u64,
    bytes: u64,
    revision: i64,
}

/// Where heartbeat writes go.
#[allow(clippy::large_enum_variant)] // one per step, in an Arc
enum Sink {
    /// Straight into etcd.
    Etcd(etcd_client::Client),
    /// Through the API server, as kubelet and controllers write.
    Kube {
        client: kube::Client,
        kwok: bool,
        /// Objects that existed before the simulation (`<resource>/<namespace>/<name>`): never
        /// written.
        existing: Arc<std::collections::HashSet<String>>,
    },
}

/// What every write needs.
struct Ctx {
    sink: Sink,
    root: String,
    renderer: Renderer,
    encoding: Encoding,
    timeout: Duration,
    /// Last known mod revision of each node's lease, node and pod key (0: unknown); leases and
    /// nodes are read when the heartbeats start.
    lease_revs: Vec<AtomicI64>,
    node_revs: Vec<AtomicI64>,
    pod_revs: Vec<AtomicI64>,
    /// The first revision this run's simulation wrote: a key created before it is not this
    /// run's, and is never modified or deleted (etcd checks it in the same transaction).
    owned_from: i64,
}

/// Keeps the simulated cluster alive for `duration`: lease renewals, node status and pod churn.
pub async fn heartbeat(
    target: &Target,
    opts: &HeartbeatOptions,
    observers: Watch,
) -> Result<HeartbeatRecord> {
    let w = cluster_of(target, opts)?;
    if w.kube.is_none() && w.revisions.0 == 0 && !target.info.embedded {
        // An earlier run's cluster on an etcd scen did not start: not this run's to modify.
        return Err(Error::Options(format!(
            "heartbeats modify only objects this run created, and this run simulated none under {}: \
             run cluster::simulate first in this run (scen never modifies what it did not create)",
            w.root
        )));
    }
    let (record, last_rev) = keep_alive(&w, Some(target.client.clone()), opts, observers).await?;
    if record.pod_churn.as_ref().is_some_and(|c| c.ok > 0) && w.kube.is_none() {
        extend_ledger(target, &w.root, last_rev);
    }
    Ok(record)
}

/// `heartbeat` for a kube-backend simulation (`simulate_through`'s ledger entry): through the API
/// server, tested with a `tower-test` mock.
pub async fn heartbeat_through(
    written: &Written,
    opts: &HeartbeatOptions,
    observers: Watch,
) -> Result<HeartbeatRecord> {
    Ok(keep_alive(written, None, opts, observers).await?.0)
}

/// Runs the flows against `w` (through its API server, or `etcd`); the record and the last
/// revision written.
async fn keep_alive(
    w: &Written,
    etcd: Option<etcd_client::Client>,
    opts: &HeartbeatOptions,
    observers: Watch,
) -> Result<(HeartbeatRecord, i64)> {
    let length = duration(Some(&opts.duration), "", "duration")?;
    let lease_interval = duration(opts.lease_interval.as_deref(), "10s", "lease_interval")?;
    let status_interval = duration(opts.status_interval.as_deref(), "1m", "status_interval")?;
    let churn_interval = duration(opts.churn_interval.as_deref(), "1m", "churn_interval")?;
    let timeout = duration(opts.request_timeout.as_deref(), "5s", "request_timeout")?;
    if lease_interval.is_zero() || churn_interval.is_zero() {
        return Err(Error::Options(
            "lease_interval and churn_interval must be longer than 0s".into(),
        ));
    }
    crate::actions::CheckOptions::check(opts)?;
    let (root, mut shape, sim) = (w.root.clone(), w.shape.clone(), &w.options);
    if let Some(n) = opts.nodes {
        shape.nodes = shape.nodes.min(n);
    }
    if shape.nodes == 0 {
        return Err(Error::Options(
            "no nodes to keep alive: run cluster::simulate first, or give `nodes`".into(),
        ));
    }
    let churned = (shape.pods as f64 * opts.pod_churn / 100.0).round() as u64;
    let flows = [
        Periodic {
            flow: Flow::Lease,
            n: shape.nodes,
            period: lease_interval,
            population: shape.nodes,
        },
        Periodic {
            flow: Flow::Status,
            n: if status_interval.is_zero() {
                0
            } else {
                shape.nodes
            },
            period: status_interval,
            population: shape.nodes,
        },
        Periodic {
            flow: Flow::Churn,
            n: churned,
            period: churn_interval,
            population: shape.pods,
        },
    ];
    let revs = |n: u64| (0..n).map(|_| AtomicI64::new(0)).collect::<Vec<_>>();
    let sink = match (&w.kube, etcd) {
        (Some(k), _) => Sink::Kube {
            client: k.client.clone(),
            kwok: k.kwok,
            existing: Arc::new(k.existing.clone()),
        },
        (None, Some(etcd)) => Sink::Etcd(etcd),
        (None, None) => {
            return Err(Error::Options(
                "no etcd and no API server to send heartbeats to".into(),
            ))
        }
    };
    let ctx = Arc::new(Ctx {
        sink,
        // The full shape: pods render on the nodes they were created on.
        renderer: Renderer::new(sim, w.shape.clone())?,
        encoding: sim.encoding,
        timeout,
        lease_revs: revs(shape.nodes),
        node_revs: revs(shape.nodes),
        pod_revs: revs(if churned > 0 { shape.pods } else { 0 }),
        root: root.clone(),
        owned_from: w.revisions.0,
    });
    if let Sink::Etcd(client) = &ctx.sink {
        // Like kube-apiserver's watch cache, know every object's revision before the first
        // update: no compare-and-swap fails for want of it.
        let mut kv = crate::target::kv(client);
        prime(&ctx, &mut kv, Kind::Lease, &ctx.lease_revs).await?;
        if flows[Flow::Status as usize].n > 0 {
            prime(&ctx, &mut kv, Kind::Node, &ctx.node_revs).await?;
        }
    }
    if let Some(feed) = &observers.live {
        feed.intended_rate(Some(intended_rate(&flows)));
    }
    let book = Book::new(
        observers.live.as_ref(),
        ["leases", "node_status", "pod_churn"]
            .into_iter()
            .enumerate(),
    );
    let stats = Arc::new(Mutex::new(Stats {
        book,
        adopting: w.options.adopt_existing,
        ..Stats::default()
    }));
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.clients as usize));
    let start = Instant::now();
    let cpu0 = crate::measure::process::self_cpu();
    // The progress line, stopped before the book is taken at the end (it would read a book
    // emptied under it).
    let ticker = observers.line.map(|p| {
        let (stats, intended) = (stats.clone(), intended_rate(&flows));
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = (0u64, Instant::now());
            loop {
                tick.tick().await;
                let s = stats.lock().expect("stats lock");
                let (ok, errors) = (s.book.total_ok(), s.book.total_failed());
                let rate =
                    ok.saturating_sub(last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
                // The last finished second's p99, shown only when it has one.
                let p99 = s
                    .book
                    .series()
                    .last()
                    .and_then(|x| x.p99)
                    .map(|v| format!(", p99 {}", crate::measure::Unit::Ms.format(Some(v))))
                    .unwrap_or_default();
                drop(s);
                last = (ok, Instant::now());
                p(format!(
                    "{rate:.0} writes/s of {intended:.0}/s{p99}, errors {errors}"
                ));
            }
        }))
    });
    // Merge the three schedules by due time.
    let mut next = [0u64; 3];
    let mut set = tokio::task::JoinSet::new();
    loop {
        let pick = flows
            .iter()
            .filter(|f| f.n > 0)
            .map(|f| (f.due(next[f.flow as usize]), *f))
            .filter(|(due, _)| *due < length)
            .min_by_key(|(due, _)| *due);
        let Some((due, flow)) = pick else { break };
        tokio::time::sleep_until((start + due).into()).await;
        // Every client busy: the write waits for one, but not past the window. What is still
        // due then is never sent (k6's dropped iterations): the loop ends on time however far
        // behind it fell.
        let acquire = permits.clone().acquire_owned();
        let Ok(permit) = tokio::time::timeout_at((start + length).into(), acquire).await else {
            break;
        };
        let permit = permit.expect("the semaphore is never closed");
        let k = next[flow.flow as usize];
        next[flow.flow as usize] += 1;
        stats.lock().expect("stats lock").issue(due.as_secs());
        let (ctx, stats) = (ctx.clone(), stats.clone());
        set.spawn(async move {
            let item = k % flow.population;
            let outcome =
                match tokio::time::timeout(ctx.timeout, write(&ctx, flow.flow, item)).await {
                    Ok(o) => o,
                    Err(_) => Outcome {
                        error: Some((
                            FailCode::Timeout,
                            ErrorKind::RequestTimeout,
                            format!("no answer in {:?}", ctx.timeout),
                        )),
                        ..Outcome::default()
                    },
                };
            let latency = (start + due).elapsed();
            let mut s = stats.lock().expect("stats lock");
            s.done(flow.flow, due.as_secs(), &outcome, latency);
            drop(permit);
        });
        while set.try_join_next().is_some() {}
    }
    let stopped = start.elapsed();
    while set.join_next().await.is_some() {}
    drop(ticker);
    let cpu = crate::measure::process::self_cpu().saturating_sub(cpu0);
    let elapsed = start.elapsed().max(length);
    let mut s = std::mem::take(&mut *stats.lock().expect("stats lock"));
    // The writes due in the window but never sent waited at least until the loop stopped.
    let mut dropped = [0u64; 3];
    for f in flows.iter().filter(|f| f.n > 0) {
        let i = f.flow as usize;
        for k in next[i]..f.count(length) {
            let due = f.due(k);
            s.book.unsent(i, due.as_secs(), stopped.saturating_sub(due));
            dropped[i] += 1;
        }
    }
    let (ok, errors, main_kind) = (s.book.total_ok(), s.book.total_failed(), s.book.main_kind());
    let done = s.book.finish();
    let secs = elapsed.as_secs_f64();
    let flow_record = |i: usize| {
        let f = done.ops.get(&i).cloned().unwrap_or_default();
        // Writes to adopted objects are never due: scen does not write what is not its own.
        let intended = flows[i].count(length).saturating_sub(s.adopted[i]);
        let intended_per_s = intended as f64 / length.as_secs_f64().max(1e-9);
        let achieved_per_s = f.ok as f64 / secs;
        FlowRecord {
            intended,
            ok: f.ok,
            errors: f.failed,
            adopted: s.adopted[i],
            dropped: (flows[i].count(length) > 0).then_some(dropped[i]),
            conflicts: s.conflicts[i],
            target_rate: intended_per_s,
            throughput: achieved_per_s,
            shortfall: (intended_per_s > 0.0)
                .then(|| (1.0 - achieved_per_s / intended_per_s).max(0.0)),
            latency: f.latency.summary(),
        }
    };
    let (leases, node_status, pod_churn) = (flow_record(0), flow_record(1), flow_record(2));
    if ok == 0 && errors > 0 {
        // The kind most writes failed with decides the exit code (auth, connection lost...).
        let kind = main_kind.unwrap_or(ErrorKind::Infrastructure);
        return Err(Error::Failed {
            kind,
            message: format!(
                "every heartbeat write failed ({errors} errors, mostly {kind}): {}",
                done.messages.first().cloned().unwrap_or_default()
            ),
        });
    }
    let last_rev = s.last_rev;
    let record = HeartbeatRecord {
        root,
        nodes: shape.nodes,
        pods: shape.pods,
        duration_ms: ms(elapsed),
        target_rate: intended_rate(&flows),
        throughput: (leases.ok + node_status.ok + 2 * pod_churn.ok) as f64 / secs,
        leases,
        node_status,
        pod_churn: (opts.pod_churn > 0.0).then_some(pod_churn),
        bytes: s.bytes,
        client_cpu_ms: ms(cpu),
        client_cpu_per_write: (ok > 0).then(|| ms(cpu) / ok as f64),
        errors_by_code: done.codes,
        error_messages: done.messages,
        series: done.series,
    };
    Ok((record, last_rev))
}

/// Writes per second the flows intend (churn: a delete and a create per pod).
fn intended_rate(flows: &[Periodic; 3]) -> f64 {
    flows
        .iter()
        .filter(|f| f.n > 0 && !f.period.is_zero())
        .map(|f| {
            let per = if f.flow == Flow::Churn { 2.0 } else { 1.0 };
            per * f.n as f64 / f.period.as_secs_f64()
        })
        .sum()
}

/// The cluster to keep alive: the last one this run simulated, or the one the options describe.
fn cluster_of(target: &Target, opts: &HeartbeatOptions) -> Result<Written> {
    let last = super::simulated(target)
        .lock()
        .expect("ledger lock")
        .iter()
        .rev()
        .find(|w| w.shape.nodes > 0)
        .cloned();
    match last {
        Some(w) if opts.root.is_none() && opts.name_prefix.is_none() => Ok(w),
        _ => {
            let options: SimulateOptions = serde_json::from_value(serde_json::json!({}))
                .map_err(|e| Error::Options(e.to_string()))?;
            let shape = Shape {
                namespaces: options.namespaces,
                nodes: opts.nodes.unwrap_or(0),
                pods: opts.pods.unwrap_or(0),
                deployments: 0,
                services: 0,
                configmaps: 0,
                secrets: 0,
                events: 0,
                custom: Vec::new(),
                name_prefix: opts.name_prefix.clone().unwrap_or_else(|| "scen-".into()),
            };
            Ok(Written {
                root: effective_root(target, opts.root.as_deref()),
                shape,
                revisions: (0, 0),
                options,
                kube: None,
            })
        }
    }
}

/// Lets `cleanup` find the pods churn created again.
fn extend_ledger(target: &Target, root: &str, last_rev: i64) {
    let book = super::simulated(target);
    let mut ledger = book.lock().expect("ledger lock");
    if let Some(w) = ledger
        .iter_mut()
        .rev()
        .find(|w: &&mut Written| w.root == root)
    {
        w.revisions.1 = w.revisions.1.max(last_rev);
    }
}

/// One heartbeat write, as kube-apiserver writes it to etcd, or through the API server.
async fn write(ctx: &Ctx, flow: Flow, item: u64) -> Outcome {
    let r = match &ctx.sink {
        Sink::Etcd(client) => write_etcd(ctx, &mut crate::target::kv(client), flow, item).await,
        Sink::Kube {
            client,
            kwok,
            existing,
        } => write_kube(client, &ctx.renderer, *kwok, existing, flow, item).await,
    };
    r.unwrap_or_else(|e: Error| Outcome {
        error: Some((
            match &e {
                Error::Etcd { source, .. } => FailCode::of(source),
                Error::Kube {
                    source: kube::Error::Api(s),
                    ..
                } => FailCode::Api(s.reason.clone()),
                _ => FailCode::Other,
            },
            e.kind(),
            e.to_string(),
        )),
        ..Outcome::default()
    })
}

/// A heartbeat write straight into etcd: render, encode, compare-and-swap.
async fn write_etcd(ctx: &Ctx, kv: &mut KvClient, flow: Flow, item: u64) -> Result<Outcome> {
    {
        match flow {
            Flow::Lease => {
                let (key, value) = render(ctx, Kind::Lease, item)?;
                update(
                    kv,
                    &key,
                    value,
                    &ctx.lease_revs[item as usize],
                    ctx.owned_from,
                )
                .await
            }
            Flow::Status => {
                let (key, value) = render(ctx, Kind::Node, item)?;
                update(
                    kv,
                    &key,
                    value,
                    &ctx.node_revs[item as usize],
                    ctx.owned_from,
                )
                .await
            }
            Flow::Churn => {
                let (key, value) = render(ctx, Kind::Pod, item)?;
                let known = &ctx.pod_revs[item as usize];
                // Delete (compare-and-swap like the apiserver's), then create the pod again.
                let mut o = Outcome::default();
                // Only a pod this run created (no earlier than its simulation) is deleted.
                let del = Txn::new()
                    .when([Compare::create_revision(
                        key.as_str(),
                        CompareOp::Greater,
                        (ctx.owned_from - 1).max(0),
                    )])
                    .and_then([TxnOp::delete(key.as_str(), None)])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                let r = kv.txn(del).await.map_err(etcd)?;
                if !r.succeeded() && exists(&r) {
                    o.error = Some((
                        FailCode::NotOwned,
                        ErrorKind::Script,
                        format!("{key} was not created by this run: scen never deletes it"),
                    ));
                    return Ok(o);
                }
                let create = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.as_str(), value.clone(), None)]);
                let r = kv.txn(create).await.map_err(etcd)?;
                o.conflicts = u64::from(!r.succeeded());
                o.revision = r.header().map_or(0, |h| h.revision());
                o.bytes = value.len() as u64;
                known.store(o.revision, Ordering::Relaxed);
                Ok(o)
            }
        }
    }
}

/// A heartbeat write through the API server: what kubelet sends (lease renewal, node status), or
/// a controller's pod churn (delete, create, and the status KWOK would set).
async fn write_kube(
    client: &kube::Client,
    renderer: &Renderer,
    kwok: bool,
    existing: &std::collections::HashSet<String>,
    flow: Flow,
    item: u64,
) -> Result<Outcome> {
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    // What existed before this run's simulation is never written, through the API either.
    let kind = match flow {
        Flow::Lease => Kind::Lease,
        Flow::Status => Kind::Node,
        Flow::Churn => Kind::Pod,
    };
    let p = Prepared::now(renderer, kind, item)?;
    if existing.contains(&p.identity()) {
        return Ok(Outcome {
            error: Some((
                FailCode::NotOwned,
                ErrorKind::Script,
                format!(
                    "{} existed before this run: scen never writes it",
                    p.describe()
                ),
            )),
            ..Outcome::default()
        });
    }
    let now = chrono::Utc::now();
    let fail = |what: String| move |source| Error::Kube { op: what, source };
    let mut o = Outcome::default();
    match flow {
        Flow::Lease => {
            let p = Prepared::now(renderer, Kind::Lease, item)?;
            let patch = serde_json::json!({ "spec": {
                "holderIdentity": p.name, "renewTime": now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            } });
            o.bytes = patch.to_string().len() as u64;
            p.api(client)
                .patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(fail(format!("renew lease {}", p.describe())))?;
        }
        Flow::Status => {
            let p = Prepared::now(renderer, Kind::Node, item)?;
            let stamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            // Strategic merge: conditions merge by type, as kubelet's status patch does.
            let patch = serde_json::json!({ "status": { "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
            }] } });
            o.bytes = patch.to_string().len() as u64;
            p.api(client)
                .patch_status(&p.name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(fail(format!("update the status of {}", p.describe())))?;
        }
        Flow::Churn => {
            let p = Prepared::now(renderer, Kind::Pod, item)?;
            let api = p.api(client);
            match api
                .delete(&p.name, &DeleteParams::default().grace_period(0))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => o.conflicts += 1,
                Err(e) => return Err(fail(format!("delete {}", p.describe()))(e)),
            }
            o.bytes = p.body.to_string().len() as u64;
            match api.create(&PostParams::default(), &p.object()?).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => o.conflicts += 1,
                Err(e) => return Err(fail(format!("create {}", p.describe()))(e)),
            }
            if let (false, Some(status)) = (kwok, &p.status) {
                let patch = serde_json::json!({ "status": status });
                api.patch_status(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(fail(format!("set the status of {}", p.describe())))?;
            }
        }
    }
    Ok(o)
}

fn etcd(source: etcd_client::Error) -> Error {
    Error::Etcd { op: "txn", source }
}

/// The key and the freshly rendered value of the `item`-th object of `kind`.
fn render(ctx: &Ctx, kind: Kind, item: u64) -> Result<(String, Vec<u8>)> {
    let o = ctx.renderer.render_now(kind, item)?;
    let (value, _) = ctx.encoding.encode(&o.value, &o.template)?;
    Ok((format!("{}/{}", ctx.root, o.key), value))
}

/// Learns the mod revision of each object of `kind` the heartbeats update, with one keys-only
/// range over their directory; objects not found keep 0 (their update reports them missing).
async fn prime(ctx: &Ctx, kv: &mut KvClient, kind: Kind, revs: &[AtomicI64]) -> Result<()> {
    let keys = (0..revs.len() as u64)
        .map(|i| {
            Ok(format!(
                "{}/{}",
                ctx.root,
                ctx.renderer.render_now(kind, i)?.key
            ))
        })
        .collect::<Result<Vec<String>>>()?;
    let Some(dir) = keys
        .first()
        .and_then(|k| k.rsplit_once('/'))
        .map(|(d, _)| format!("{d}/"))
    else {
        return Ok(());
    };
    let opts = etcd_client::GetOptions::new()
        .with_prefix()
        .with_keys_only();
    let r = kv.get(dir.as_str(), Some(opts)).await.map_err(etcd)?;
    let by_key: std::collections::HashMap<&[u8], i64> = r
        .kvs()
        .iter()
        .map(|kv| (kv.key(), kv.mod_revision()))
        .collect();
    for (key, slot) in keys.iter().zip(revs) {
        if let Some(rev) = by_key.get(key.as_bytes()) {
            slot.store(*rev, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// kube-apiserver's GuaranteedUpdate: put if the key is still at the revision we last saw,
/// otherwise learn its revision from the same transaction and try again.
/// Whether a failed transaction's `get` found the key.
fn exists(r: &etcd_client::TxnResponse) -> bool {
    r.op_responses().into_iter().any(|op| match op {
        TxnOpResponse::Get(g) => !g.kvs().is_empty(),
        _ => false,
    })
}

async fn update(
    kv: &mut KvClient,
    key: &str,
    value: Vec<u8>,
    known: &AtomicI64,
    owned_from: i64,
) -> Result<Outcome> {
    let mut o = Outcome {
        bytes: value.len() as u64,
        ..Outcome::default()
    };
    for _ in 0..3 {
        // Compare-and-swap on the revision last seen, and only on a key this run created.
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, known.load(Ordering::Relaxed)),
                Compare::create_revision(key, CompareOp::Greater, (owned_from - 1).max(0)),
            ])
            .and_then([TxnOp::put(key, value.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let r = kv.txn(txn).await.map_err(etcd)?;
        if r.succeeded() {
            o.revision = r.header().map_or(0, |h| h.revision());
            known.store(o.revision, Ordering::Relaxed);
            return Ok(o);
        }
        let current = r.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => Some(
                g.kvs()
                    .first()
                    .map(|kv| (kv.mod_revision(), kv.create_revision())),
            ),
            _ => None,
        });
        match current.flatten() {
            Some((_, created)) if created < owned_from => {
                o.error = Some((
                    FailCode::NotOwned,
                    ErrorKind::Script,
                    format!("{key} was not created by this run: scen never overwrites it"),
                ));
                return Ok(o);
            }
            Some((rev, _)) => known.store(rev, Ordering::Relaxed),
            None => {
                // An object the heartbeats were told to keep alive is not there: the scenario's doing.
                o.error = Some((
                    FailCode::NotFound,
                    ErrorKind::Script,
                    format!("{key} does not exist"),
                ));
                return Ok(o);
            }
        }
        o.conflicts += 1;
    }
    o.error = Some((
        FailCode::Conflict,
        ErrorKind::Infrastructure,
        format!("{key} kept changing under the update"),
    ));
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_spreads_its_items_evenly_over_the_period() {
        let f = Periodic {
            flow: Flow::Lease,
            n: 4,
            period: Duration::from_secs(10),
            population: 4,
        };
        assert_eq!(f.due(0), Duration::ZERO);
        assert_eq!(f.due(1), Duration::from_millis(2500));
        assert_eq!(f.due(4), Duration::from_secs(10));
        // 60 s of 10,000 nodes renewing every 10 s: 60,000 renewals, 1,000/s.
        let big = Periodic {
            flow: Flow::Lease,
            n: 10_000,
            period: Duration::from_secs(10),
            population: 10_000,
        };
        assert_eq!(big.count(Duration::from_secs(60)), 60_000);
        let status = Periodic {
            flow: Flow::Status,
            n: 10_000,
            period: Duration::from_secs(60),
            population: 10_000,
        };
        let churn = Periodic {
            flow: Flow::Churn,
            n: 300,
            period: Duration::from_secs(60),
            population: 30_000,
        };
        let rate = intended_rate(&[big, status, churn]);
        assert!(
            (rate - (1000.0 + 10_000.0 / 60.0 + 10.0)).abs() < 1e-6,
            "{rate}"
        );
    }
}

//! `etcd::stress`: closed- and open-loop load with put, get, range, delete and transactions (alone
//! or mixed by weight), optional watchers measuring event delay, HDR latency per operation, errors
//! by gRPC code, a per-second series and the client's (and an embedded server's) CPU per request.

pub mod history;
mod keys;
mod lease;
mod record;
mod schedule;
mod watch;
mod worker;

use crate::transport::wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use serde::Deserialize;

pub use keys::Pattern;
pub use record::{CpuRecord, OpRecord, StressRecord, WatchRecord};
pub use schedule::{Schedule, Stage};

use super::etcd::full_key;
use super::{Error, Result, SizeValue};
use crate::target::Target;
use worker::{AckRing, Op, Shared};

/// A value size: a fixed size (`256`, `"1KiB"`) or a range (`#{ min: 100, max: "4KiB" }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    /// Bytes, or a size with a unit.
    Fixed(SizeValue),
    /// Uniformly between two sizes.
    Range {
        /// Smallest.
        min: SizeValue,
        /// Largest.
        max: SizeValue,
    },
}

/// A stage of an open-loop ramp as scripts write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Target requests per second at the end of the stage.
    #[serde(deserialize_with = "crate::actions::de_f64")]
    pub rate: f64,
    /// How long the stage lasts (`"30s"`).
    pub duration: String,
}

/// Options of `etcd::stress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressOptions {
    /// One operation: put, get, range, delete, txn_cas, txn_mixed.
    pub op: Option<String>,
    /// Or a weighted mix: `#{ range: 70, put: 30 }`.
    pub mix: Option<BTreeMap<String, u32>>,
    /// Concurrent workers (closed loop: requests in flight; open loop: most in flight).
    #[serde(default = "default_clients")]
    pub clients: u64,
    /// gRPC connections the workers share (round robin).
    #[serde(default = "default_connections")]
    pub connections: u64,
    /// Stop after this many requests.
    pub count: Option<u64>,
    /// Stop after this long (`"30s"`).
    pub duration: Option<String>,
    /// Open loop at this rate (requests/s) for `duration` (or `count / rate`).
    #[serde(default, deserialize_with = "crate::actions::de_opt_f64")]
    pub rate: Option<f64>,
    /// Open loop through ramping stages.
    pub stages: Option<Vec<StageSpec>>,
    /// Open loop: the rate the first stage ramps from (default: the first stage's rate).
    #[serde(default, deserialize_with = "crate::actions::de_opt_f64")]
    pub start_rate: Option<f64>,
    /// Total key length in bytes (default: prefix plus the index digits).
    #[serde(default)]
    pub key_size: usize,
    /// Distinct keys (default 10000).
    #[serde(default = "default_key_space")]
    pub key_space: u64,
    /// sequential, uniform or zipfian.
    #[serde(default)]
    pub key_pattern: Pattern,
    /// Zipf exponent (default 0.99).
    #[serde(default = "default_zipf", deserialize_with = "crate::actions::de_f64")]
    pub zipf_s: f64,
    /// Key prefix under the run prefix (default `"stress/"`).
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Value size (default 256 bytes).
    pub value_size: Option<SizeSpec>,
    /// Reads served by the local member without a quorum round.
    #[serde(default)]
    pub serializable: bool,
    /// Keys per range request (default 100).
    #[serde(default = "default_range_limit")]
    pub range_limit: i64,
    /// Operations per mixed transaction (default 4).
    #[serde(default = "default_txn_ops")]
    pub txn_ops: usize,
    /// Share of reads in mixed transactions (default 0.5).
    #[serde(
        default = "default_read_ratio",
        deserialize_with = "crate::actions::de_f64"
    )]
    pub read_ratio: f64,
    /// Watchers on the key prefix while the load runs; their event delay is recorded.
    #[serde(default)]
    pub watchers: u64,
    /// Per-request timeout (default `"5s"`).
    pub request_timeout: Option<String>,
    /// Fail the step (etcd unavailable) when nothing succeeded for this long (default `"5s"`).
    pub abort_after: Option<String>,
    /// The scenario expects requests to fail (a fault is injected): a step whose requests all
    /// failed, or whose etcd stopped answering, still passes; errors are counted and shown.
    #[serde(default)]
    pub expect_errors: bool,
    /// Record every put and get (through etcd-client, values numbered) and check the history
    /// against etcd's guarantees at the end: the record's `safety`.
    #[serde(default)]
    pub history: bool,
    /// Upper bound on the step's length when only `count` is given (default `"10m"`).
    pub max_duration: Option<String>,
    /// `auto` (default): put, get, range and delete go over scen's lean HTTP/2 gRPC path on
    /// plaintext connections without auth; `etcd-client`: everything through etcd-client.
    pub transport: Option<String>,
    /// `op: "lease"`: leases kept alive (default 100).
    #[serde(default = "default_leases")]
    pub leases: u64,
    /// `op: "lease"`: lease TTL (default `"40s"`, a node lease's duration).
    pub lease_ttl: Option<String>,
    /// `op: "lease"`: time between renewals of one lease (default `"10s"`, as kubelet).
    pub renew_interval: Option<String>,
    /// `op: "lease"`: share of leases revoked and granted anew at each renewal (default 0).
    #[serde(default, deserialize_with = "crate::actions::de_f64")]
    pub churn: f64,
}

fn default_leases() -> u64 {
    100
}

fn default_clients() -> u64 {
    16
}
fn default_connections() -> u64 {
    1
}
fn default_key_space() -> u64 {
    10_000
}
fn default_zipf() -> f64 {
    0.99
}
fn default_prefix() -> String {
    "stress/".into()
}
fn default_range_limit() -> i64 {
    100
}
fn default_txn_ops() -> usize {
    4
}
fn default_read_ratio() -> f64 {
    0.5
}

fn duration(text: &Option<String>, default: &str, what: &str) -> Result<Duration> {
    crate::actions::duration_option(text.as_deref(), default, what)
}

/// A request operation workers send (`put`, `range`...). Lease operations are measured together
/// by `op: "lease"`, not one by one.
fn op_from(name: &str) -> Result<Op> {
    let sent = |o: &Op| !matches!(o, Op::LeaseGrant | Op::LeaseKeepAlive | Op::LeaseRevoke);
    match Op::ALL.iter().copied().find(|o| o.name() == name) {
        Some(o) if sent(&o) => Ok(o),
        Some(_) => Err(Error::Options(format!(
            "`{name}` is not an operation of its own: grants, renewals and revocations are measured together by op: \"lease\" (see `leases`, `lease_ttl`, `renew_interval`, `churn`)"
        ))),
        None => {
            let mut names: Vec<_> = Op::ALL.iter().filter(|o| sent(o)).map(|o| o.name()).collect();
            names.push("lease");
            Err(Error::Options(format!(
                "unknown operation `{name}`: use {}",
                names.join(", ")
            )))
        }
    }
}

pub use crate::actions::{ProgressFn, Watch};

/// The step's connections: etcd-client channels (leases, watches, transactions) and, for plaintext
/// connections without auth, the lean wire for put/range/delete.
pub(crate) struct Connections {
    /// One etcd-client per connection.
    pub clients: Vec<etcd_client::Client>,
    /// One lean HTTP/2 connection per connection, when usable.
    pub wires: Vec<wire::Wire>,
}

impl Connections {
    /// The worker handle for worker `id` (round robin over the connections).
    fn worker(&self, id: u64) -> worker::Conn {
        let i = id as usize % self.clients.len();
        worker::Conn {
            kv: crate::target::kv(&self.clients[i]),
            wire: self.wires.get(i).cloned(),
        }
    }

    /// `lean` or `etcd-client`, for the record.
    fn transport(&self) -> &'static str {
        if self.wires.is_empty() {
            "etcd-client"
        } else {
            "lean"
        }
    }
}

/// Opens `n` connections with the step's request timeout, each dialled before the clock starts;
/// `kv_load` also opens the lean wires when the transport allows.
async fn connect(
    target: &Target,
    opts: &StressOptions,
    n: u64,
    warm_key: &str,
    kv_load: bool,
) -> Result<Connections> {
    let mut settings = target.settings.clone();
    let timeout = duration(&opts.request_timeout, "5s", "request_timeout")?;
    settings.request_timeout = Some(timeout);
    let urls = settings.urls();
    let lean = match opts.transport.as_deref().unwrap_or("auto") {
        "auto" => {
            kv_load && settings.user.is_none() && urls.iter().all(|u| u.starts_with("http://"))
        }
        "etcd-client" => false,
        other => {
            return Err(Error::Options(format!(
                "transport `{other}`: use \"auto\" (the lean wire on plaintext connections without auth) or \"etcd-client\""
            )))
        }
    };
    let mut out = Connections {
        clients: Vec::new(),
        wires: Vec::new(),
    };
    for i in 0..n {
        let c = settings.connect_to(&urls).await?;
        // Dial before the clock starts: connections open lazily, and the handshake is not load.
        crate::target::kv(&c)
            .get(
                warm_key,
                Some(etcd_client::GetOptions::new().with_count_only()),
            )
            .await
            .map_err(|source| Error::Etcd {
                op: "warm-up",
                source,
            })?;
        out.clients.push(c);
        if lean {
            let url = &urls[i as usize % urls.len()];
            let w = wire::Wire::connect(url, timeout)
                .await
                .map_err(|source| Error::Etcd {
                    op: "connect",
                    source,
                })?;
            w.range(
                warm_key.as_bytes(),
                &wire::RangeArgs {
                    end: &[],
                    limit: 1,
                    serializable: true,
                },
            )
            .await
            .map_err(|source| Error::Etcd {
                op: "warm-up",
                source,
            })?;
            out.wires.push(w);
        }
    }
    Ok(out)
}

/// The workers' shared state; its `start` is the load's time zero, so create it just before them.
/// `ops` are the operations the load runs, for its live totals (when it has a live feed).
fn new_shared(
    acks: Option<Arc<AckRing>>,
    live: Option<&crate::measure::totals::SharedFeed>,
    ops: &[Op],
) -> Arc<Shared> {
    Arc::new(Shared {
        next: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        last_ok_ns: AtomicU64::new(0),
        longest_gap_ns: AtomicU64::new(0),
        fatal: Mutex::new(None),
        series: Mutex::new(Vec::new()),
        acks,
        live: live.cloned(),
        live_ops: ops.to_vec(),
        start: Instant::now(),
    })
}

/// Joins the workers, with a progress line a second (and the open loop's intended rate for live
/// outputs), measuring client and server CPU.
async fn drive(
    target: &Target,
    shared: &Arc<Shared>,
    mut set: tokio::task::JoinSet<worker::WorkerResult>,
    observers: Watch,
    schedule: Option<&Schedule>,
    cpu0: (Duration, Option<crate::measure::process::CpuMark>),
) -> Result<(
    Vec<worker::WorkerResult>,
    Duration,
    Duration,
    Option<Duration>,
)> {
    if let (Some(feed), Some(s)) = (&observers.live, schedule) {
        feed.intended_rate(Some(s.rate_at(Duration::ZERO)));
    }
    let rates = observers
        .live
        .clone()
        .zip(schedule.cloned())
        .map(|(feed, s)| {
            let start = shared.start;
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    feed.intended_rate(Some(s.rate_at(start.elapsed())));
                }
            }))
        });
    let ticker = observers.line.map(|p| {
        let shared = shared.clone();
        tokio::spawn(async move {
            // The first report a second in: an interval's first tick is immediate.
            let mut tick = tokio::time::interval_at(
                (Instant::now() + Duration::from_secs(1)).into(),
                Duration::from_secs(1),
            );
            let mut last = record::Progress::new();
            loop {
                tick.tick().await;
                if let Some(line) = record::progress_line(&shared, &mut last) {
                    p(line);
                }
            }
        })
    });
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r.map_err(|e| Error::Internal(format!("a stress worker panicked: {e}")))?);
    }
    if let Some(t) = ticker {
        t.abort();
    }
    drop(rates);
    let elapsed = shared.start.elapsed();
    let cpu = crate::measure::process::self_cpu().saturating_sub(cpu0.0);
    let server_cpu = cpu0.1.map(|m| m.since(&target.server_pids()));
    Ok((results, elapsed, cpu, server_cpu))
}

/// The record, or the failure that carries it: etcd stopped answering, a member scen started
/// died, or every request failed — unless the scenario said it expects errors.
fn finish(
    target: &Target,
    shared: &Shared,
    rec: StressRecord,
    expect_errors: bool,
) -> Result<StressRecord> {
    let failure = verdict(shared, &rec, &target.died());
    match failure {
        Some(source) if !expect_errors => Err(Error::WithRecord {
            record: Box::new(serde_json::to_value(&rec).unwrap_or_default()),
            source: Box::new(source),
        }),
        _ => Ok(rec),
    }
}

/// Why a load step failed, if it did: the target died or stopped answering, or no request
/// succeeded. Errors among successes are figures for thresholds, not a failure.
fn verdict(shared: &Shared, rec: &StressRecord, died: &[String]) -> Option<Error> {
    use crate::exit::ErrorKind;
    if !died.is_empty() {
        return Some(Error::Failed {
            kind: ErrorKind::EtcdDied,
            message: format!(
                "etcd died during the load: {} ({} of {} requests failed); if a fault kills it on purpose, use fault::kill, or set expect_errors: true",
                died.join(", "),
                rec.errors,
                rec.ops
            ),
        });
    }
    if let Some(why) = shared.fatal.lock().expect("fatal lock").clone() {
        return Some(Error::Unavailable(why));
    }
    if rec.ok == 0 && rec.errors > 0 {
        // The kind most requests failed with decides: no user on an auth-enabled etcd is `auth`.
        let (kind, n) = rec
            .errors_by_kind
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (*k, *n))
            .unwrap_or((ErrorKind::Infrastructure, rec.errors));
        return Some(Error::Failed {
            kind,
            message: format!(
                "every request failed ({} errors, {n} of them {kind}): {}; set expect_errors: true if the scenario means it",
                rec.errors,
                rec.error_messages.first().map_or("", String::as_str)
            ),
        });
    }
    None
}

/// `op: "lease"`: leases granted, renewed on a staggered schedule, churned and revoked.
async fn lease_stress(
    target: &Target,
    opts: &StressOptions,
    observers: Watch,
) -> Result<StressRecord> {
    if opts.duration.is_none()
        || opts.rate.is_some()
        || opts.stages.is_some()
        || opts.count.is_some()
    {
        return Err(Error::Options(
            "`op: \"lease\"` runs for a `duration` (no count, rate or stages)".into(),
        ));
    }
    let length = duration(&opts.duration, "", "duration")?;
    let ttl = duration(&opts.lease_ttl, "40s", "lease_ttl")?
        .as_secs()
        .max(1) as i64;
    let interval = duration(&opts.renew_interval, "10s", "renew_interval")?;
    if interval.is_zero() || opts.leases == 0 {
        return Err(Error::Options(
            "`leases` and `renew_interval` must be positive".into(),
        ));
    }
    let clients_n = opts.clients.clamp(1, opts.leases);
    let connections = opts.connections.clamp(1, clients_n);
    let base = full_key(target, &opts.key_prefix, false, true)?;
    let clients = connect(target, opts, connections, &base, false)
        .await?
        .clients;
    let shared = new_shared(
        None,
        observers.live.as_ref(),
        &[Op::LeaseGrant, Op::LeaseKeepAlive, Op::LeaseRevoke],
    );
    let cpu0 = (
        crate::measure::process::self_cpu(),
        target.server_cpu_mark(),
    );
    let mut set = tokio::task::JoinSet::new();
    let per = opts.leases / clients_n;
    let mut first = 0;
    for id in 0..clients_n {
        let leases = per + u64::from(id < opts.leases % clients_n);
        let plan = lease::LeasePlan {
            leases,
            first,
            total: opts.leases,
            ttl,
            interval,
            churn: opts.churn,
            end: shared.start + length,
            abort_after: duration(&opts.abort_after, "5s", "abort_after")?,
            request_timeout: duration(&opts.request_timeout, "5s", "request_timeout")?,
        };
        first += leases;
        let client = clients[(id % connections) as usize].lease_client();
        set.spawn(lease::run(id, client, plan, shared.clone()));
    }
    let (results, elapsed, cpu, server_cpu) =
        drive(target, &shared, set, observers, None, cpu0).await?;
    let renewed = results.iter().map(|r| r.renewals).sum::<u64>() as f64;
    let mut rec = record::build(record::Inputs {
        results,
        shared: &shared,
        elapsed,
        clients: clients_n,
        connections,
        transport: "etcd-client",
        schedule: None,
        cpu,
        server_cpu,
        watch: None,
    });
    rec.model = "lease".into();
    // Intended vs achieved renewals: every lease once per interval after its staggered first renewal.
    let target_rate = opts.leases as f64 / interval.as_secs_f64();
    let window = length.saturating_sub(interval).as_secs_f64();
    rec.target_rate = Some(target_rate);
    rec.shortfall = (window > 0.0).then(|| (1.0 - renewed / (target_rate * window)).max(0.0));
    finish(target, &shared, rec, opts.expect_errors)
}

/// What a load's options ask for, checked without etcd: the operations and their weights, the
/// connections, the open-loop schedule and how long the load may run.
struct LoadShape {
    cumulative: Vec<(Op, u32)>,
    total: u32,
    connections: u64,
    schedule: Option<Schedule>,
    length: Duration,
}

impl crate::actions::CheckOptions for StressOptions {
    fn check(&self) -> Result<()> {
        if self.op.as_deref() == Some("lease") {
            for (text, what) in [
                (&self.duration, "duration"),
                (&self.lease_ttl, "lease_ttl"),
                (&self.renew_interval, "renew_interval"),
            ] {
                if text.is_some() {
                    duration(text, "", what)?;
                }
            }
            return Ok(());
        }
        load_shape(self).map(|_| ())
    }
}

/// The highest open-loop rate one load may be asked for, per second.
const MAX_RATE: f64 = 10_000_000.0;

/// The most requests one load may be asked for (a bound, not a target).
const MAX_COUNT: u64 = 1_000_000_000;

fn load_shape(opts: &StressOptions) -> Result<LoadShape> {
    let rates = opts
        .rate
        .iter()
        .chain(opts.start_rate.iter())
        .chain(opts.stages.iter().flatten().map(|s| &s.rate));
    for r in rates {
        if !(0.0..=MAX_RATE).contains(r) {
            return Err(Error::Options(format!(
                "rate {r}/s is outside 0..{MAX_RATE}/s (a typo?)"
            )));
        }
    }
    if opts.count.is_some_and(|c| c > MAX_COUNT) {
        return Err(Error::Options(format!(
            "count above {MAX_COUNT} is refused (a typo?): for a longer load give a `duration`"
        )));
    }
    // Which operations, with which weights.
    let mut cumulative = Vec::new();
    let mut total = 0u32;
    match (&opts.op, &opts.mix) {
        (Some(op), None) => {
            total = 1;
            cumulative.push((op_from(op)?, 1));
        }
        (None, Some(mix)) if !mix.is_empty() => {
            for (name, w) in mix {
                total += w;
                cumulative.push((op_from(name)?, total));
            }
            if total == 0 {
                return Err(Error::Options("mix weights add up to 0".into()));
            }
        }
        _ => {
            return Err(Error::Options(
                "give exactly one of `op` (\"put\") or `mix` (#{ range: 70, put: 30 })".into(),
            ))
        }
    }
    if opts.watchers > 0 && !cumulative.iter().any(|(o, _)| o.writes()) {
        return Err(Error::Options(
            "`watchers` need writes in the load (put, delete or a transaction)".into(),
        ));
    }
    if opts.clients == 0 || opts.clients > 100_000 {
        return Err(Error::Options(
            "clients must be between 1 and 100000".into(),
        ));
    }
    let connections = opts.connections.clamp(1, opts.clients);

    // Bounds: every load is bounded in count and time.
    let schedule = match (&opts.rate, &opts.stages) {
        (Some(_), Some(_)) => {
            return Err(Error::Options("give `rate` or `stages`, not both".into()))
        }
        (Some(rate), None) => {
            let d = match (&opts.duration, opts.count) {
                (Some(_), _) => duration(&opts.duration, "", "duration")?,
                (None, Some(c)) => Duration::try_from_secs_f64(c as f64 / rate.max(1e-9))
                    .ok()
                    .filter(|d| *d <= crate::units::MAX_DURATION)
                    .ok_or_else(|| {
                        Error::Options(format!(
                            "{c} requests at {rate}/s take more than 7 days: give a `duration`"
                        ))
                    })?,
                (None, None) => {
                    return Err(Error::Options(
                        "an open-loop `rate` needs a `duration` or a `count`".into(),
                    ))
                }
            };
            Some(Schedule::new(
                *rate,
                &[Stage {
                    rate: *rate,
                    duration: d,
                }],
            ))
        }
        (None, Some(stages)) => {
            let stages: Vec<Stage> = stages
                .iter()
                .map(|s| {
                    Ok(Stage {
                        rate: s.rate,
                        duration: duration(&Some(s.duration.clone()), "", "stage duration")?,
                    })
                })
                .collect::<Result<_>>()?;
            let first = stages
                .first()
                .ok_or_else(|| Error::Options("`stages` is empty".into()))?
                .rate;
            Some(Schedule::new(opts.start_rate.unwrap_or(first), &stages))
        }
        (None, None) => None,
    };
    if let Some(s) = &schedule {
        if s.total() == 0 {
            return Err(Error::Options(
                "the open-loop schedule asks for no requests".into(),
            ));
        }
    }
    let length = match (&schedule, &opts.duration, opts.count) {
        (Some(s), _, _) => s.length() + Duration::from_secs(1), // grace for the last requests
        (None, Some(_), _) => duration(&opts.duration, "", "duration")?,
        (None, None, Some(_)) => duration(&opts.max_duration, "10m", "max_duration")?,
        (None, None, None) => {
            return Err(Error::Options(
                "give a `count` or a `duration`: every load is bounded".into(),
            ))
        }
    };

    Ok(LoadShape {
        cumulative,
        total,
        connections,
        schedule,
        length,
    })
}

/// Runs a stress step on its own single-threaded runtime and OS thread.
///
/// A load generator's cost is mostly wake-ups, not work: on the shared multi-threaded runtime each
/// timer and socket event hops between threads (futex wake-ups) on the cores etcd needs. On one
/// current-thread runtime, timers, sockets and workers share one epoll loop, and the connections
/// are dialled inside it so no wake-up crosses runtimes. Dropping this future (Ctrl-C, a step
/// deadline) stops the load thread, which drops its workers.
pub async fn stress(
    target: &Target,
    opts: &StressOptions,
    observers: Watch,
) -> Result<StressRecord> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let (target, opts) = (target.clone(), opts.clone());
    std::thread::Builder::new()
        .name("scen-load".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(Error::Internal(format!(
                        "cannot start the load runtime: {e}"
                    ))));
                    return;
                }
            };
            let r = rt.block_on(async {
                tokio::select! {
                    r = stress_here(&target, &opts, observers) => r,
                    _ = stop.cancelled() => Err(Error::Stopped(crate::actions::StopReason::Interrupted)),
                }
            });
            let _ = tx.send(r);
        })
        .map_err(|e| Error::Internal(format!("cannot start the load thread: {e}")))?;
    rx.await
        .unwrap_or_else(|_| Err(Error::Internal("the load thread panicked".into())))
}

/// Runs a stress step on the current runtime.
async fn stress_here(
    target: &Target,
    opts: &StressOptions,
    observers: Watch,
) -> Result<StressRecord> {
    if opts.op.as_deref() == Some("lease") {
        return lease_stress(target, opts, observers).await;
    }
    let LoadShape {
        cumulative,
        total,
        connections,
        schedule,
        length,
    } = load_shape(opts)?;

    // Keys and values.
    let base = full_key(target, &opts.key_prefix, false, true)?;
    let keys = keys::KeyModel::new(
        base.clone(),
        opts.key_size,
        opts.key_space,
        opts.key_pattern,
        opts.zipf_s,
    )?;
    let (vmin, vmax) = match &opts.value_size {
        None => (256, 256),
        Some(SizeSpec::Fixed(v)) => (v.bytes()?, v.bytes()?),
        Some(SizeSpec::Range { min, max }) => (min.bytes()?, max.bytes()?),
    };
    if vmin > vmax || vmax > 1_500_000 {
        return Err(Error::Options(
            "value_size must be at most 1.5 MB (etcd's request limit) with min <= max".into(),
        ));
    }
    let mut pool = vec![0u8; vmax as usize];
    rand::rngs::SmallRng::seed_from_u64(42).fill_bytes(&mut pool);
    let mut range_end = base.clone().into_bytes();
    // The end of the prefix: the prefix with its last byte incremented ('/' + 1 = '0').
    if let Some(last) = range_end.last_mut() {
        *last += 1;
    }

    let clients = connect(target, opts, connections, &base, true).await?;

    // Watchers first, so they see every write.
    let acks = (opts.watchers > 0).then(|| Arc::new(AckRing::new(1 << 20)));
    let watchers = match &acks {
        Some(a) => Some(watch::start(&clients.clients[0], &base, opts.watchers, a.clone()).await?),
        None => None,
    };
    let ops: Vec<Op> = cumulative.iter().map(|(o, _)| *o).collect();
    let shared = new_shared(acks, observers.live.as_ref(), &ops);
    let plan = Arc::new(worker::Plan {
        cumulative,
        total,
        count: opts.count,
        end: shared.start + length,
        schedule: schedule.clone(),
        keys,
        values: keys::ValueModel {
            min: vmin as usize,
            max: vmax as usize,
        },
        serializable: opts.serializable,
        range_limit: opts.range_limit.max(1),
        range_end,
        txn_ops: opts.txn_ops.clamp(1, 128),
        read_ratio: opts.read_ratio,
        abort_after: duration(&opts.abort_after, "5s", "abort_after")?,
        history: opts.history,
    });

    let cpu0 = (
        crate::measure::process::self_cpu(),
        target.server_cpu_mark(),
    );
    let pool = Arc::new(pool);
    // A JoinSet aborts every worker if this future is dropped (Ctrl-C, step timeout).
    let mut set = tokio::task::JoinSet::new();
    for id in 0..opts.clients {
        set.spawn(worker::run(
            id,
            clients.worker(id),
            plan.clone(),
            shared.clone(),
            pool.clone(),
        ));
    }
    let (mut results, elapsed, cpu, server_cpu) =
        drive(target, &shared, set, observers, schedule.as_ref(), cpu0).await?;
    let ops: Vec<history::Op> = results
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.history))
        .collect();
    let expected_events: u64 = results.iter().map(|r| r.events).sum();
    let watch = match watchers {
        Some(w) => Some(w.finish(expected_events).await),
        None => None,
    };
    let rec = record::build(record::Inputs {
        results,
        shared: &shared,
        elapsed,
        clients: opts.clients,
        connections,
        transport: clients.transport(),
        schedule: schedule.as_ref(),
        cpu,
        server_cpu,
        watch,
    });
    let mut rec = rec;
    if opts.history {
        rec.safety = Some(verify(target, &ops, &base).await);
    }
    finish(target, &shared, rec, opts.expect_errors)
}

/// Every change under `prefix` between revisions `from` and `to`, replayed by a watch from `from`
/// (`None`: compacted, or not replayed within 10 s). Once the watch has caught up, etcd answers a
/// progress request with an empty response at its current revision: that ends the replay.
async fn replay(target: &Target, prefix: &str, from: i64, to: i64) -> Option<Vec<history::Change>> {
    use etcd_client::{EventType, WatchOptions};
    let work = async {
        let (mut watcher, mut stream) = crate::target::watch(&target.client)
            .watch(
                prefix,
                Some(WatchOptions::new().with_prefix().with_start_revision(from)),
            )
            .await
            .ok()?;
        let mut out = Vec::new();
        // A progress request is ignored while the watch still catches up: ask again until
        // answered.
        let mut ask = tokio::time::interval(Duration::from_millis(100));
        loop {
            let resp = tokio::select! {
                m = stream.message() => m.ok()??,
                _ = ask.tick() => {
                    watcher.request_progress().await.ok()?;
                    continue;
                }
            };
            if resp.compact_revision() > 0 || resp.canceled() {
                return None;
            }
            if resp.events().is_empty() && !resp.created() {
                if resp.header().is_some_and(|h| h.revision() >= to) {
                    return Some(out);
                }
                continue;
            }
            for ev in resp.events() {
                let kv = ev.kv()?;
                if kv.mod_revision() > to {
                    return Some(out);
                }
                out.push(history::Change {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    revision: kv.mod_revision(),
                    put: (ev.event_type() == EventType::Put).then(|| {
                        std::str::from_utf8(&kv.value()[..kv.value().len().min(16)])
                            .ok()
                            .and_then(|h| u64::from_str_radix(h, 16).ok())
                            .unwrap_or(u64::MAX)
                    }),
                });
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .ok()
        .flatten()
}

/// Reads every acknowledged put back at its revision (16 at a time), replays the prefix's
/// changes during the load, and checks the history.
async fn verify(target: &Target, ops: &[history::Op], prefix: &str) -> history::SafetyRecord {
    use futures_util::StreamExt as _;
    let kv = crate::target::kv(&target.client);
    let reads = futures_util::stream::iter(history::to_read_back(ops))
        .map(|(key, rev)| {
            let mut kv = kv.clone();
            async move {
                let r = kv
                    .get(
                        key.as_str(),
                        Some(etcd_client::GetOptions::new().with_revision(rev)),
                    )
                    .await;
                let found = match r {
                    Ok(resp) => Ok(resp.kvs().first().map(|kv| {
                        let n = std::str::from_utf8(&kv.value()[..kv.value().len().min(16)])
                            .ok()
                            .and_then(|h| u64::from_str_radix(h, 16).ok())
                            .unwrap_or(u64::MAX);
                        (n, kv.mod_revision())
                    })),
                    Err(_) => Err(()),
                };
                ((key, rev), found)
            }
        })
        .buffer_unordered(16)
        .collect::<history::AtRevision>()
        .await;
    let changes = match history::replay_range(ops) {
        Some((from, to)) => replay(target, prefix, from, to).await,
        None => None,
    };
    history::check(ops, &reads, changes.as_deref())
}

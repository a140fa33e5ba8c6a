//! Folding the workers' measurements into a stress step's record, and the live progress line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::schedule::Schedule;
use super::worker::{Shared, WorkerResult};
use crate::actions::ms;
use crate::measure::book::{Book, Second};
use crate::measure::latency::{Distribution, Recorder};

/// One operation's figures.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct OpRecord {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Successful requests per second.
    #[schemars(with = "crate::measure::PerSecond", extend("x-better" = "higher", "x-samples" = "ok"))]
    pub throughput: f64,
    /// Latency of successful requests (ms).
    pub latency: Distribution,
}

/// CPU used, in total and per successful request.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CpuRecord {
    /// scen's own CPU time (user + system) during the load, ms.
    #[schemars(with = "crate::measure::Ms")]
    pub client_ms: f64,
    /// scen's CPU per successful request, ms (`null` when no request succeeded).
    #[schemars(with = "Option<crate::measure::Ms>", extend("x-better" = "lower"))]
    pub client_per_op: Option<f64>,
    /// The embedded etcd's CPU time during the load, ms (absent for clusters scen did not start).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub server_ms: Option<f64>,
    /// The embedded etcd's CPU per successful request, ms.
    #[schemars(with = "Option<crate::measure::Ms>", extend("x-better" = "lower"))]
    pub server_per_op: Option<f64>,
}

/// What the watchers saw.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct WatchRecord {
    /// Watchers on the key prefix.
    pub watchers: u64,
    /// Events each watcher should have received (one per key changed by a successful write).
    pub expected_per_watcher: u64,
    /// Events received, all watchers together.
    pub received: u64,
    /// Events not received, all watchers together.
    #[schemars(extend("x-better" = "lower"))]
    pub missed: u64,
    /// Events that arrived with a lower revision than an event before them on the same watch
    /// (etcd promises revision order).
    #[schemars(extend("x-better" = "lower"))]
    pub out_of_order: u64,
    /// Delay from a write's acknowledgement to its event arriving (ms; 0 when the event came first).
    pub delay: Distribution,
}

/// The record of `etcd::stress`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StressRecord {
    /// `closed` (clients send back to back) or `open` (requests at a target rate).
    pub model: String,
    /// Concurrent workers.
    pub clients: u64,
    /// gRPC connections.
    pub connections: u64,
    /// The client path that served the requests: `lean` (scen's own HTTP/2 calls for
    /// put/get/range/delete), `etcd-client`, or `mixed` (see `by_transport`).
    pub transport: String,
    /// Requests each path served (`lean`, `etcd-client`): transactions always go through
    /// etcd-client, and a worker whose lean connection is lost carries on through etcd-client
    /// (the record says how many did, in `error_messages`).
    pub by_transport: BTreeMap<String, u64>,
    /// Requests sent.
    pub ops: u64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Failed share of requests (0..1).
    #[schemars(with = "crate::measure::Ratio", extend("x-better" = "lower", "x-samples" = "ops"))]
    pub error_rate: f64,
    /// Failures by gRPC status code (`Unavailable`, `DeadlineExceeded`, `ResourceExhausted`...).
    pub errors_by_code: BTreeMap<String, u64>,
    /// Failures by kind (`connection_lost`, `auth`, `permission`, `request_timeout`...): what a
    /// step whose requests all failed fails with.
    pub errors_by_kind: BTreeMap<crate::exit::ErrorKind, u64>,
    /// The first few error messages.
    pub error_messages: Vec<String>,
    /// Wall time of the load, ms.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
    /// Successful requests per second.
    #[schemars(with = "crate::measure::PerSecond", extend("x-better" = "higher", "x-samples" = "ok"))]
    pub throughput: f64,
    /// Open loop: the mean target rate.
    #[schemars(with = "Option<crate::measure::PerSecond>")]
    pub target_rate: Option<f64>,
    /// Open loop: how far the requests completed within the schedule, per second, fell short of
    /// the target (0..1; 0 when it kept up). A backlog that drains after the schedule ends does
    /// not count as served.
    #[schemars(with = "Option<crate::measure::Ratio>")]
    pub shortfall: Option<f64>,
    /// Open loop: scheduled requests never sent because the clients could not keep up (timed in
    /// `latency` as waiting until the end of the load). Absent for a closed loop, where nothing
    /// is scheduled and so nothing can be dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-better" = "lower"))]
    pub dropped: Option<u64>,
    /// Latency of all successful requests (ms; open loop: from each request's scheduled time, and
    /// requests due but never sent (`dropped`) count with the time from their slot to the end of
    /// the load, a lower bound). `by_op` latencies are over sent requests only.
    pub latency: Distribution,
    /// Per operation.
    pub by_op: BTreeMap<String, OpRecord>,
    /// Compare-and-swap transactions whose compare failed (contention, not errors). Absent when
    /// the mix has no `txn_cas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_conflicts: Option<u64>,
    /// Per second: throughput and p99, for plots and time-window thresholds.
    pub series: Vec<Second>,
    /// CPU per request.
    pub cpu: CpuRecord,
    /// Watch delay and missed events, when `watchers` were set.
    pub watch: Option<WatchRecord>,
    /// The safety verdict of the load's history (`history: true`): lost writes, stale reads,
    /// revisions against real time.
    pub safety: Option<super::history::SafetyRecord>,
    /// The longest time no request succeeded (ms): an outage or a stall as the clients saw it,
    /// including one still going on when the load ended.
    #[schemars(with = "crate::measure::Ms")]
    pub longest_gap_ms: f64,
}

/// Everything [`build`] needs.
pub struct Inputs<'a> {
    pub results: Vec<WorkerResult>,
    pub shared: &'a Shared,
    pub elapsed: Duration,
    pub clients: u64,
    pub connections: u64,
    pub transport: &'a str,
    pub schedule: Option<&'a Schedule>,
    pub cpu: Duration,
    pub server_cpu: Option<Duration>,
    pub watch: Option<WatchRecord>,
}

/// Merges worker results into the record.
pub fn build(i: Inputs<'_>) -> StressRecord {
    let secs = i.elapsed.as_secs_f64().max(1e-9);
    let mut book = Book::default();
    let mut conflicts = 0;
    let mut served = [0u64; 2];
    let mut switched = 0;
    for r in i.results {
        book.merge(r.book);
        conflicts += r.conflicts;
        served[0] += r.by_transport[0];
        served[1] += r.by_transport[1];
        switched += usize::from(r.switched);
    }
    let done = book.finish();
    let mut all = Recorder::default();
    let mut by_op = BTreeMap::new();
    for (op, o) in &done.ops {
        all.merge(&o.latency);
        by_op.insert(
            op.name().to_string(),
            OpRecord {
                ok: o.ok,
                errors: o.failed,
                throughput: o.ok as f64 / secs,
                latency: o.latency.summary(),
            },
        );
    }
    let (codes, mut samples) = (done.codes, done.messages);
    let kinds = done.kinds;
    if switched > 0 {
        samples.insert(
            0,
            format!("{switched} client(s) lost their lean connection and carried on through etcd-client"),
        );
    }
    samples.truncate(5);
    let transport = match served {
        [0, 0] => i.transport.to_string(),
        [_, 0] => "lean".to_string(),
        [0, _] => "etcd-client".to_string(),
        _ => "mixed".to_string(),
    };
    let by_transport = [("lean", served[0]), ("etcd-client", served[1])]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let ok = all.count();
    let errors: u64 = codes.values().sum();
    let ops = ok + errors;
    let throughput = ok as f64 / secs;
    let series: Vec<Second> = i
        .shared
        .series
        .lock()
        .expect("series lock")
        .iter()
        .enumerate()
        .map(|(t, s)| Second {
            t: t as u64,
            ok: s.ok,
            errors: s.errors,
            p50: (!s.hist.is_empty()).then(|| s.hist.value_at_quantile(0.5) as f64 / 1e3),
            p99: (!s.hist.is_empty()).then(|| s.hist.value_at_quantile(0.99) as f64 / 1e3),
            max: (!s.hist.is_empty()).then(|| s.hist.max() as f64 / 1e3),
        })
        .collect();
    let cas = by_op.contains_key("txn_cas");
    let (target_rate, shortfall, dropped) = match i.schedule {
        Some(s) => {
            let target = s.mean_rate();
            // What etcd completed within the schedule's whole seconds, per second: requests
            // that finish after it (a backlog draining at the end) were not served at the rate.
            let window = s.length().as_secs_f64();
            let whole = window.floor() as u64;
            let achieved = if whole >= 1 {
                series
                    .iter()
                    .filter(|p| p.t < whole)
                    .map(|p| p.ok)
                    .sum::<u64>() as f64
                    / whole as f64
            } else {
                ok as f64 / window.max(1e-9)
            };
            let dropped = s.total().saturating_sub(ops);
            time_dropped(&mut all, s, dropped, i.elapsed);
            (
                Some(target),
                Some((1.0 - achieved / target).max(0.0)),
                Some(dropped),
            )
        }
        None => (None, None, None),
    };
    let per_op = |d: Duration| (ok > 0).then(|| ms(d) / ok as f64);
    StressRecord {
        model: if i.schedule.is_some() {
            "open"
        } else {
            "closed"
        }
        .into(),
        clients: i.clients,
        connections: i.connections,
        transport,
        by_transport,
        ops,
        ok,
        errors,
        error_rate: if ops > 0 {
            errors as f64 / ops as f64
        } else {
            0.0
        },
        errors_by_code: codes,
        errors_by_kind: kinds,
        error_messages: samples,
        duration_ms: ms(i.elapsed),
        throughput,
        target_rate,
        shortfall,
        dropped,
        latency: all.summary(),
        by_op,
        txn_conflicts: cas.then_some(conflicts),
        series,
        cpu: CpuRecord {
            client_ms: ms(i.cpu),
            client_per_op: per_op(i.cpu),
            server_ms: i.server_cpu.map(ms),
            server_per_op: i.server_cpu.and_then(per_op),
        },
        watch: i.watch,
        safety: None,
        longest_gap_ms: {
            use std::sync::atomic::Ordering;
            let last = i.shared.last_ok_ns.load(Ordering::Relaxed);
            let tail = (i.elapsed.as_nanos() as u64).saturating_sub(last);
            i.shared.longest_gap_ns.load(Ordering::Relaxed).max(tail) as f64 / 1e6
        },
    }
}

/// Open loop: a request that was due but never sent waited at least from its slot to the end of
/// the load; it enters the latency distribution with that lower bound (so a slowdown that lasts
/// to the end shows in the percentiles, not only in `dropped`). Which slots were dropped is not
/// known; the latest ones are taken, which gives the smallest bounds.
fn time_dropped(all: &mut Recorder, schedule: &Schedule, dropped: u64, elapsed: Duration) {
    let total = schedule.total();
    // At most 100,000 slots are timed; each stands for its share of the dropped requests.
    let step = dropped.div_ceil(100_000).max(1);
    let mut seq = total.saturating_sub(dropped);
    while seq < total {
        let n = step.min(total - seq);
        if let Some(due) = schedule.due(seq) {
            all.record_n(elapsed.saturating_sub(due), n);
        }
        seq += n;
    }
}

/// The live line: requests completed per second since the last call (exact, from a counter), and
/// p99 and errors of the second before last (workers fold a second into the series when their next
/// request completes, so the latest second is still filling).
pub fn progress_line(shared: &Shared, last: &mut Progress) -> Option<String> {
    use std::sync::atomic::Ordering;
    let now = std::time::Instant::now();
    let completed = shared.completed.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let secs = now.duration_since(last.at).as_secs_f64().max(1e-3);
    let rate = (completed.saturating_sub(last.completed)) as f64 / secs;
    // Errors as they happen, all of the step's so far (not the series, which lags, and a line
    // printed every few seconds must not lose those in between).
    let errors = failed;
    *last = Progress { completed, at: now };
    let series = shared.series.lock().ok()?;
    let sec = (shared.start.elapsed().as_secs() as usize).checked_sub(2);
    // A p99 only when that second has one: no placeholder figures on the terminal.
    let p99 = match sec.and_then(|s| series.get(s)) {
        Some(s) if !s.hist.is_empty() => format!(
            " p99 {}",
            crate::measure::Unit::Ms.format(Some(s.hist.value_at_quantile(0.99) as f64 / 1e3))
        ),
        _ => String::new(),
    };
    Some(format!("{rate:.0}/s{p99} errors {errors}"))
}

/// What the progress line saw at its last tick.
pub struct Progress {
    completed: u64,
    at: std::time::Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Progress {
            completed: 0,
            at: std::time::Instant::now(),
        }
    }
}

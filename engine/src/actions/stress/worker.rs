//! The hot loop of a stress worker. Each worker owns its histograms, error counts and RNG; the
//! only shared writes per request are one atomic sequence number, and once per second a worker
//! folds its per-second slot into the shared time series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::keys::{KeyModel, ValueModel};
use super::schedule::Schedule;
use crate::exit::FailCode;
use crate::measure::book::Book;
use crate::measure::totals::SharedFeed;
use crate::transport::wire::{RangeArgs, Wire};

/// The operations a worker can issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Write a key.
    Put,
    /// Read one key.
    Get,
    /// Read a page of keys from the chosen key on.
    Range,
    /// Delete a key.
    Delete,
    /// Compare-and-swap on the key's mod revision.
    TxnCas,
    /// A transaction of several reads and writes.
    TxnMixed,
    /// Grant a lease.
    LeaseGrant,
    /// Renew a lease (one keep-alive round trip).
    LeaseKeepAlive,
    /// Revoke a lease.
    LeaseRevoke,
}

impl Op {
    /// All operations, in report order.
    pub const ALL: [Op; 9] = [
        Op::Put,
        Op::Get,
        Op::Range,
        Op::Delete,
        Op::TxnCas,
        Op::TxnMixed,
        Op::LeaseGrant,
        Op::LeaseKeepAlive,
        Op::LeaseRevoke,
    ];

    /// The name used in options and records.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Range => "range",
            Op::Delete => "delete",
            Op::TxnCas => "txn_cas",
            Op::TxnMixed => "txn_mixed",
            Op::LeaseGrant => "lease_grant",
            Op::LeaseKeepAlive => "lease_keepalive",
            Op::LeaseRevoke => "lease_revoke",
        }
    }

    /// Whether the operation writes.
    pub fn writes(self) -> bool {
        matches!(self, Op::Put | Op::Delete | Op::TxnCas | Op::TxnMixed)
    }
}

/// What every worker of one step shares.
pub struct Shared {
    /// Next request sequence number (count bound, schedule slot, sequential keys).
    pub next: AtomicU64,
    /// Requests completed (ok or failed), for the live progress line.
    pub completed: AtomicU64,
    /// Requests failed, as they fail: the progress line's errors (the per-second series only
    /// gets a second once its requests are flushed).
    pub failed: AtomicU64,
    /// Set to stop all workers (deadline, abort, or etcd gone).
    pub stop: AtomicBool,
    /// Nanoseconds after `start` of the latest successful request.
    pub last_ok_ns: AtomicU64,
    /// The longest time between two successes (or from the start to the first), ns.
    pub longest_gap_ns: AtomicU64,
    /// Why the step ended early, if it did.
    pub fatal: Mutex<Option<String>>,
    /// Per-second slots, merged from workers once per second each.
    pub series: Mutex<Vec<Slot>>,
    /// Revision and acknowledgement time of writes, for watch delay (ring indexed by revision).
    pub acks: Option<Arc<AckRing>>,
    /// The run's live outputs, when it has them.
    pub live: Option<SharedFeed>,
    /// The operations the load runs: those with live totals.
    pub live_ops: Vec<Op>,
    /// When the step's load started.
    pub start: Instant,
}

/// Acknowledgement times of writes by revision, lock-free: a ring of (revision, nanos) pairs.
pub struct AckRing {
    slots: Vec<(AtomicU64, AtomicU64)>,
    /// Times are nanoseconds since this instant (shared by writers and watchers).
    pub epoch: Instant,
}

impl AckRing {
    /// A ring holding the last `n` acknowledgements.
    pub fn new(n: usize) -> Self {
        AckRing {
            slots: (0..n.max(1))
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            epoch: Instant::now(),
        }
    }
    /// Records that the write at `revision` was acknowledged `ns` after start.
    pub fn record(&self, revision: i64, ns: u64) {
        let s = &self.slots[revision as usize % self.slots.len()];
        s.1.store(ns, Ordering::Relaxed);
        s.0.store(revision as u64, Ordering::Release);
    }
    /// The acknowledgement time of `revision`, if still in the ring.
    pub fn get(&self, revision: i64) -> Option<u64> {
        let s = &self.slots[revision as usize % self.slots.len()];
        (s.0.load(Ordering::Acquire) == revision as u64).then(|| s.1.load(Ordering::Relaxed))
    }
}

/// One second of the time series, all workers' requests that completed in it.
#[derive(Clone)]
pub struct Slot {
    /// Successful requests completed in this second.
    pub ok: u64,
    /// Failed requests completed in this second.
    pub errors: u64,
    /// Their latencies (µs, 2 significant figures: enough for a per-second p99).
    pub hist: Histogram<u64>,
}

impl Slot {
    /// An empty second.
    pub fn new() -> Self {
        Slot {
            ok: 0,
            errors: 0,
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

/// A worker's book and the second it is filling: each request's outcome is told once, to
/// [`Tally::done`], which keeps the operation's counts and latency, the failures by code, the
/// worker's share of the per-second series and of the live totals, and the step's liveness.
pub struct Tally {
    book: Book<Op>,
    sec: u64,
}

impl Tally {
    /// An empty tally for one of `shared`'s workers.
    pub fn new(shared: &Shared) -> Self {
        let ops = shared.live_ops.iter().map(|o| (*o, o.name()));
        Tally {
            book: Book::buffered(shared.live.as_ref(), ops),
            sec: 0,
        }
    }

    /// Records a request of `op` that ended `ns` after the load's start and took `took` (from
    /// when it was due). A failure with etcd unavailable for longer than `abort_after` since the
    /// last success stops the load.
    pub fn done(
        &mut self,
        shared: &Shared,
        op: Op,
        ns: u64,
        took: Duration,
        result: Result<(), &etcd_client::Error>,
        abort_after: Duration,
    ) {
        shared.completed.fetch_add(1, Ordering::Relaxed);
        let sec = ns / 1_000_000_000;
        if sec != self.sec {
            self.flush(shared);
            self.sec = sec;
        }
        match result {
            Ok(()) => {
                self.book.ok(op, sec, took);
                let before = shared.last_ok_ns.fetch_max(ns, Ordering::Relaxed);
                if ns > before {
                    shared
                        .longest_gap_ns
                        .fetch_max(ns - before, Ordering::Relaxed);
                }
            }
            Err(e) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let code = FailCode::of(e);
                // No text formatted per failure once the book has its first messages (an
                // outage fails thousands of requests a second).
                let message = if self.book.wants_message() {
                    format!("{}: {}", op.name(), crate::actions::etcd_message(e))
                } else {
                    String::new()
                };
                self.book.fail(op, sec, &code, code.kind(), &message);
                let since_ok = ns.saturating_sub(shared.last_ok_ns.load(Ordering::Relaxed));
                if is_unavailable(e) && since_ok > abort_after.as_nanos() as u64 {
                    shared.fatal.lock().expect("fatal lock").get_or_insert_with(|| {
                        format!("etcd stopped answering: no request succeeded for {abort_after:?} (last error: {e})")
                    });
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Adds the worker's seconds so far to the shared series (and its live totals to the
    /// step's).
    pub fn flush(&mut self, shared: &Shared) {
        let seconds = self.book.take_open(u64::MAX);
        if seconds.is_empty() {
            return;
        }
        let mut series = shared.series.lock().expect("series lock");
        for (t, o) in seconds {
            let i = t as usize;
            if series.len() <= i {
                series.resize_with(i + 1, Slot::new);
            }
            let s = &mut series[i];
            s.ok += o.ok;
            s.errors += o.failed;
            o.latency.add_to(&mut s.hist);
        }
    }

    /// The worker's book, its last second added to the shared series.
    pub fn finish(mut self, shared: &Shared) -> Book<Op> {
        self.flush(shared);
        self.book
    }
}

/// What a worker measured.
pub struct WorkerResult {
    /// Each operation's successes with their latency, failures by code and the first messages.
    pub book: Book<Op>,
    /// CAS transactions whose compare failed (a conflict, not an error).
    pub conflicts: u64,
    /// Watch events the successful writes should produce (one per changed key).
    pub events: u64,
    /// Lease load: renewal slots served (a keep-alive, or a churn's revoke and new grant).
    pub renewals: u64,
    /// Requests served by each path: `[lean, etcd-client]`.
    pub by_transport: [u64; 2],
    /// Whether the worker's lean connection was lost and it carried on through etcd-client.
    pub switched: bool,
    /// Its puts and gets, for the safety checks (`history: true`).
    pub history: Vec<super::history::Op>,
}

/// How a worker decides what to do next.
pub struct Plan {
    /// Cumulative weights over `Op::ALL` (out of `total`).
    pub cumulative: Vec<(Op, u32)>,
    /// Sum of weights.
    pub total: u32,
    /// Stop after this many requests in total.
    pub count: Option<u64>,
    /// Stop at this instant.
    pub end: Instant,
    /// Open loop: when each request is due.
    pub schedule: Option<Schedule>,
    /// Keys.
    pub keys: KeyModel,
    /// Values.
    pub values: ValueModel,
    /// Serve reads locally.
    pub serializable: bool,
    /// Keys per range request.
    pub range_limit: i64,
    /// The end of the key prefix, for ranges.
    pub range_end: Vec<u8>,
    /// Operations per mixed transaction.
    pub txn_ops: usize,
    /// Share of reads in mixed transactions.
    pub read_ratio: f64,
    /// Fail the step when no request has succeeded for this long.
    pub abort_after: Duration,
    /// Record every put and get for the safety checks (through etcd-client, values numbered).
    pub history: bool,
}

impl Plan {
    fn pick(&self, rng: &mut SmallRng) -> Op {
        if self.cumulative.len() == 1 {
            return self.cumulative[0].0;
        }
        let x = rng.random_range(0..self.total);
        self.cumulative
            .iter()
            .find(|(_, c)| x < *c)
            .map_or(self.cumulative[0].0, |(o, _)| *o)
    }
}

pub(crate) fn is_unavailable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// A worker's way to etcd: etcd-client for transactions, the lean wire (when open) for the rest.
pub struct Conn {
    /// etcd-client's KV handle.
    pub kv: KvClient,
    /// The lean HTTP/2 path for put, get, range and delete.
    pub wire: Option<Wire>,
}

/// Runs one worker until the plan's bounds are reached or `shared.stop` is set.
pub async fn run(
    id: u64,
    Conn { mut kv, mut wire }: Conn,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    value_pool: Arc<Vec<u8>>,
) -> WorkerResult {
    let mut rng = SmallRng::seed_from_u64(0x5ce0_0000 + id);
    let mut tally = Tally::new(&shared);
    let mut conflicts = 0;
    let mut events = 0u64;
    let mut revisions: HashMap<u64, i64> = HashMap::new();
    let mut key = Vec::with_capacity(64);
    let (mut by_transport, mut switched) = ([0u64; 2], false);
    let mut history: Vec<super::history::Op> = Vec::new();
    if plan.history {
        // The safety checks need what each read returned: etcd-client's responses.
        wire = None;
    }

    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let seq = shared.next.fetch_add(1, Ordering::Relaxed);
        if plan.count.is_some_and(|c| seq >= c) {
            break;
        }
        // Open loop: wait for the request's slot; latency counts from the slot, not from now.
        let intended = match &plan.schedule {
            Some(s) => match s.due(seq) {
                Some(d) => {
                    let at = shared.start + d;
                    let now = Instant::now();
                    if at > plan.end || now > plan.end {
                        break;
                    }
                    if at > now {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    at
                }
                None => break,
            },
            None => {
                let now = Instant::now();
                if now >= plan.end {
                    break;
                }
                now
            }
        };
        let op = plan.pick(&mut rng);
        let k = plan.keys.pick(seq, &mut rng);
        plan.keys.key(k, &mut key);
        let vlen = plan.values.size(&mut rng);
        // With a history, each put's value starts with its number, so reads say whose it was.
        let numbered;
        let value: &[u8] = if plan.history {
            let mut v = format!("{seq:016x}").into_bytes();
            v.extend_from_slice(&value_pool[..vlen.saturating_sub(16)]);
            numbered = v;
            &numbered
        } else {
            &value_pool[..vlen]
        };
        let mut read: Option<(u64, i64)> = None;

        // Each arm yields the write's revision (for watch delay) and the keys it changed.
        // A request that never left (a dead endpoint: etcd-client's balancer still picks it) is
        // tried again at once, as etcd's Go client does; its latency counts from the first try.
        let lean = wire.is_some() && matches!(op, Op::Put | Op::Get | Op::Range | Op::Delete);
        by_transport[usize::from(!lean)] += 1;
        let mut tries = 0;
        let sent_ns = Instant::now().duration_since(shared.start).as_nanos() as u64;
        let result = loop {
            let r: Result<(Option<i64>, u64), etcd_client::Error> = match op {
                Op::Put => match &wire {
                    Some(w) => w.put(&key, value).await.map(|a| (a.revision, 1)),
                    None => kv
                        .put(key.clone(), value.to_vec(), None)
                        .await
                        .map(|r| (r.header().map(|h| h.revision()), 1)),
                },
                Op::Get if wire.is_some() => {
                    let args = RangeArgs {
                        end: &[],
                        limit: 0,
                        serializable: plan.serializable,
                    };
                    let w = wire.as_ref().expect("checked");
                    w.range(&key, &args).await.map(|_| (None, 0))
                }
                Op::Range if wire.is_some() => {
                    let args = RangeArgs {
                        end: &plan.range_end,
                        limit: plan.range_limit,
                        serializable: plan.serializable,
                    };
                    let w = wire.as_ref().expect("checked");
                    w.range(&key, &args).await.map(|_| (None, 0))
                }
                Op::Delete if wire.is_some() => {
                    let w = wire.as_ref().expect("checked");
                    w.delete(&key)
                        .await
                        .map(|a| (a.revision, a.deleted.max(0) as u64))
                }
                Op::Get => {
                    let o = if plan.serializable {
                        Some(GetOptions::new().with_serializable())
                    } else {
                        None
                    };
                    kv.get(key.clone(), o).await.map(|r| {
                        read = r.kvs().first().map(|kv| {
                            let n = std::str::from_utf8(&kv.value()[..kv.value().len().min(16)])
                                .ok()
                                .and_then(|h| u64::from_str_radix(h, 16).ok())
                                .unwrap_or(u64::MAX);
                            (n, kv.mod_revision())
                        });
                        (r.header().map(|h| h.revision()), 0)
                    })
                }
                Op::Range => {
                    let mut o = GetOptions::new()
                        .with_range(plan.range_end.clone())
                        .with_limit(plan.range_limit);
                    if plan.serializable {
                        o = o.with_serializable();
                    }
                    kv.get(key.clone(), Some(o)).await.map(|_| (None, 0))
                }
                Op::Delete => kv
                    .delete(key.clone(), None)
                    .await
                    .map(|r| (r.header().map(|h| h.revision()), r.deleted().max(0) as u64)),
                Op::TxnCas => {
                    let seen = revisions.get(&k).copied().unwrap_or(0);
                    let txn = Txn::new()
                        .when([Compare::mod_revision(key.clone(), CompareOp::Equal, seen)])
                        .and_then([TxnOp::put(key.clone(), value.to_vec(), None)])
                        .or_else([TxnOp::get(key.clone(), None)]);
                    kv.txn(txn).await.map(|r| {
                        let rev = r.header().map(|h| h.revision());
                        if r.succeeded() {
                            revisions.insert(k, rev.unwrap_or(0));
                            (rev, 1)
                        } else {
                            conflicts += 1;
                            let current = r.op_responses().into_iter().find_map(|o| match o {
                                TxnOpResponse::Get(g) => {
                                    Some(g.kvs().first().map_or(0, |kv| kv.mod_revision()))
                                }
                                _ => None,
                            });
                            revisions.insert(k, current.unwrap_or(0));
                            (None, 0)
                        }
                    })
                }
                Op::LeaseGrant | Op::LeaseKeepAlive | Op::LeaseRevoke => {
                    unreachable!("leases run in lease::run")
                }
                Op::TxnMixed => {
                    // Distinct keys: etcd rejects a transaction that writes one key twice.
                    let mut picked: Vec<u64> = Vec::with_capacity(plan.txn_ops);
                    for _ in 0..plan.txn_ops * 4 {
                        let k2 = plan
                            .keys
                            .pick(seq.wrapping_add(picked.len() as u64), &mut rng);
                        if !picked.contains(&k2) {
                            picked.push(k2);
                        }
                        if picked.len() == plan.txn_ops {
                            break;
                        }
                    }
                    let mut writes = 0;
                    let ops: Vec<TxnOp> = picked
                        .iter()
                        .map(|k2| {
                            let mut kb = Vec::new();
                            plan.keys.key(*k2, &mut kb);
                            if rng.random_bool(plan.read_ratio.clamp(0.0, 1.0)) {
                                TxnOp::get(kb, None)
                            } else {
                                writes += 1;
                                TxnOp::put(kb, value.to_vec(), None)
                            }
                        })
                        .collect();
                    kv.txn(Txn::new().and_then(ops))
                        .await
                        .map(|r| (r.header().map(|h| h.revision()), writes))
                }
            };
            match &r {
                Err(e) if crate::actions::not_sent(e) && tries < 3 => tries += 1,
                _ => break r,
            }
        };
        let done = Instant::now();
        let took = done.saturating_duration_since(intended);
        let ns = done.duration_since(shared.start).as_nanos() as u64;
        tally.done(
            &shared,
            op,
            ns,
            took,
            result.as_ref().map(|_| ()),
            plan.abort_after,
        );
        if plan.history
            && matches!(op, Op::Put | Op::Get | Op::Delete)
            && history.len() < HISTORY_CAP
        {
            use super::history::{Kind, Outcome};
            history.push(super::history::Op {
                client: id as u32,
                key: String::from_utf8_lossy(&key).into_owned(),
                kind: match op {
                    Op::Put => Kind::Put { value: seq },
                    Op::Delete => Kind::Delete,
                    _ => Kind::Get {
                        linearizable: !plan.serializable,
                        read,
                    },
                },
                revision: result.as_ref().ok().and_then(|(r, _)| *r),
                sent: sent_ns,
                done: ns,
                outcome: match &result {
                    Ok(_) => Outcome::Ok,
                    Err(e) if is_unavailable(e) => Outcome::Unknown,
                    Err(_) => Outcome::Failed,
                },
            });
        }
        match result {
            Ok((rev, changed)) => {
                events += changed;
                if let (Some(acks), Some(rev), true) = (&shared.acks, rev, changed > 0) {
                    acks.record(rev, done.duration_since(acks.epoch).as_nanos() as u64);
                }
            }
            // A lean connection to a member that died stays dead: carry on through
            // etcd-client, which fails over to the other endpoints, as clients do. Only a lost
            // connection switches (a timeout does not), and the record says so.
            Err(_) if wire.as_ref().is_some_and(Wire::is_closed) => {
                wire = None;
                switched = true;
            }
            Err(_) => {}
        }
    }
    WorkerResult {
        book: tally.finish(&shared),
        conflicts,
        events,
        renewals: 0,
        by_transport,
        switched,
        history,
    }
}

/// Operations a worker records at most for the safety checks.
pub const HISTORY_CAP: usize = 200_000;

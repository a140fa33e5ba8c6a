//! Lease load: N leases kept alive the way kubelets keep node leases — each renewed every
//! `renew_interval` on a staggered schedule — with optional churn (revoke and grant anew), every
//! lease revoked at the end. Renewal latency counts from when the renewal was due.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{LeaseClient, LeaseKeepAliveStream, LeaseKeeper};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::worker::{flush, is_unavailable, Op, Shared, Slot, WorkerResult};
use crate::measure::latency::Recorder;

/// What one lease worker does.
pub struct LeasePlan {
    /// Leases this worker owns.
    pub leases: u64,
    /// Index of this worker's first lease among all leases (for staggering).
    pub first: u64,
    /// All leases of the step.
    pub total: u64,
    /// Lease TTL in seconds.
    pub ttl: i64,
    /// Time between renewals of one lease.
    pub interval: Duration,
    /// Share of leases revoked and granted anew at each renewal (0..1).
    pub churn: f64,
    /// When to stop.
    pub end: Instant,
    /// Fail when nothing succeeded for this long.
    pub abort_after: Duration,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
}

struct Held {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

struct Acc {
    latency: Vec<Recorder>,
    errors: Vec<u64>,
    codes: HashMap<crate::actions::FailCode, u64>,
    samples: Vec<String>,
    sec: u64,
    slot: Slot,
}

impl Acc {
    fn done(
        &mut self,
        shared: &Shared,
        op: Op,
        due: Instant,
        r: Result<(), etcd_client::Error>,
        abort_after: Duration,
    ) {
        let now = Instant::now();
        shared.completed.fetch_add(1, Ordering::Relaxed);
        let ns = now.duration_since(shared.start).as_nanos() as u64;
        if ns / 1_000_000_000 != self.sec {
            flush(shared, self.sec, &mut self.slot);
            self.sec = ns / 1_000_000_000;
        }
        let took = now.saturating_duration_since(due);
        match r {
            Ok(()) => {
                self.latency[op.index()].record(took);
                self.slot.ok(op, took);
                let before = shared.last_ok_ns.fetch_max(ns, Ordering::Relaxed);
                if ns > before {
                    shared
                        .longest_gap_ns
                        .fetch_max(ns - before, Ordering::Relaxed);
                }
            }
            Err(e) => {
                self.errors[op.index()] += 1;
                let code = crate::actions::FailCode::of(&e);
                self.slot.error(op, &code);
                *self.codes.entry(code).or_default() += 1;
                if self.samples.len() < 3 {
                    self.samples.push(format!(
                        "{}: {}",
                        op.name(),
                        crate::actions::etcd_message(&e)
                    ));
                }
                let since_ok = ns.saturating_sub(shared.last_ok_ns.load(Ordering::Relaxed));
                if is_unavailable(&e) && since_ok > abort_after.as_nanos() as u64 {
                    shared.fatal.lock().expect("fatal lock").get_or_insert_with(|| {
                        format!("etcd stopped answering: no lease request succeeded for {abort_after:?} (last error: {e})")
                    });
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn grant(client: &mut LeaseClient, ttl: i64) -> Result<Held, etcd_client::Error> {
    let id = client.grant(ttl, None).await?.id();
    // keep_alive sends a first renewal and reads its answer before it returns.
    let (keeper, stream) = client.keep_alive(id).await?;
    Ok(Held { id, keeper, stream })
}

/// One keep-alive round trip, bounded: a stream message has no per-request timeout of its own.
async fn renew(h: &mut Held, timeout: Duration) -> Result<(), etcd_client::Error> {
    let round_trip = async {
        h.keeper.keep_alive().await?;
        h.stream.message().await
    };
    match tokio::time::timeout(timeout, round_trip).await {
        Ok(Ok(Some(r))) if r.ttl() > 0 => Ok(()),
        Ok(Ok(Some(_))) => Err(etcd_client::Error::LeaseKeepAliveError(format!(
            "lease {:x} expired",
            h.id
        ))),
        Ok(Ok(None)) => Err(etcd_client::Error::LeaseKeepAliveError(
            "keep-alive stream closed".into(),
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(etcd_client::Error::LeaseKeepAliveError(format!(
            "no keep-alive answer within {timeout:?}"
        ))),
    }
}

/// Runs one lease worker.
pub async fn run(
    id: u64,
    mut client: LeaseClient,
    plan: LeasePlan,
    shared: Arc<Shared>,
) -> WorkerResult {
    let mut rng = SmallRng::seed_from_u64(0x1ea5e + id);
    let mut acc = Acc {
        latency: Op::ALL.iter().map(|_| Recorder::default()).collect(),
        errors: vec![0; Op::ALL.len()],
        codes: HashMap::new(),
        samples: Vec::new(),
        sec: 0,
        slot: Slot::for_worker(&shared),
    };
    // Grant, each lease's renewals offset so all leases' renewals spread over the interval.
    let mut held: Vec<(Held, Instant)> = Vec::new();
    for j in 0..plan.leases {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= plan.end {
            break;
        }
        let t = Instant::now();
        match grant(&mut client, plan.ttl).await {
            Ok(h) => {
                acc.done(&shared, Op::LeaseGrant, t, Ok(()), plan.abort_after);
                let offset = plan
                    .interval
                    .mul_f64((plan.first + j) as f64 / plan.total.max(1) as f64);
                held.push((h, shared.start + offset + plan.interval));
            }
            Err(e) => acc.done(&shared, Op::LeaseGrant, t, Err(e), plan.abort_after),
        }
    }
    held.sort_by_key(|(_, due)| *due);
    let mut queue: std::collections::VecDeque<(Held, Instant)> = held.into();
    let mut renewals = 0u64;
    while let Some((mut h, due)) = queue.pop_front() {
        if shared.stop.load(Ordering::Relaxed) || due >= plan.end {
            queue.push_front((h, due));
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        if plan.churn > 0.0 && rng.random_bool(plan.churn.clamp(0.0, 1.0)) {
            let t = Instant::now();
            let r = client.revoke(h.id).await.map(|_| ());
            acc.done(&shared, Op::LeaseRevoke, t, r, plan.abort_after);
            let t = Instant::now();
            match grant(&mut client, plan.ttl).await {
                Ok(n) => {
                    acc.done(&shared, Op::LeaseGrant, t, Ok(()), plan.abort_after);
                    renewals += 1;
                    queue.push_back((n, due + plan.interval));
                }
                Err(e) => acc.done(&shared, Op::LeaseGrant, t, Err(e), plan.abort_after),
            }
            continue;
        }
        let r = renew(&mut h, plan.request_timeout).await;
        renewals += u64::from(r.is_ok());
        acc.done(&shared, Op::LeaseKeepAlive, due, r, plan.abort_after);
        queue.push_back((h, due + plan.interval));
    }
    // Leave nothing behind (unless etcd is gone).
    if !shared.stop.load(Ordering::Relaxed) {
        for (h, _) in queue {
            let t = Instant::now();
            let r = client.revoke(h.id).await.map(|_| ());
            acc.done(&shared, Op::LeaseRevoke, t, r, plan.abort_after);
        }
    }
    flush(&shared, acc.sec, &mut acc.slot);
    WorkerResult {
        latency: acc.latency,
        errors: acc.errors,
        codes: acc.codes,
        samples: acc.samples,
        conflicts: 0,
        events: 0,
        renewals,
        by_transport: [0, 0],
        switched: false,
        history: Vec::new(),
    }
}

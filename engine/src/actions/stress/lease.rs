//! Lease load: N leases kept alive the way kubelets keep node leases — each renewed every
//! `renew_interval` on a staggered schedule — with optional churn (revoke and grant anew), every
//! lease revoked at the end. Renewal latency counts from when the renewal was due.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{LeaseClient, LeaseKeepAliveStream, LeaseKeeper};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::worker::{Op, Shared, Tally, WorkerResult};

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

/// A lease worker's tally: requests timed from when they were due.
struct Acc {
    tally: Tally,
    abort_after: Duration,
}

impl Acc {
    fn done(&mut self, shared: &Shared, op: Op, due: Instant, r: Result<(), etcd_client::Error>) {
        let now = Instant::now();
        let ns = now.duration_since(shared.start).as_nanos() as u64;
        let took = now.saturating_duration_since(due);
        self.tally.done(
            shared,
            op,
            ns,
            took,
            r.as_ref().map(|_| ()),
            self.abort_after,
        );
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
        tally: Tally::new(&shared),
        abort_after: plan.abort_after,
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
                acc.done(&shared, Op::LeaseGrant, t, Ok(()));
                let offset = plan
                    .interval
                    .mul_f64((plan.first + j) as f64 / plan.total.max(1) as f64);
                held.push((h, shared.start + offset + plan.interval));
            }
            Err(e) => acc.done(&shared, Op::LeaseGrant, t, Err(e)),
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
            acc.done(&shared, Op::LeaseRevoke, t, r);
            let t = Instant::now();
            match grant(&mut client, plan.ttl).await {
                Ok(n) => {
                    acc.done(&shared, Op::LeaseGrant, t, Ok(()));
                    renewals += 1;
                    queue.push_back((n, due + plan.interval));
                }
                Err(e) => acc.done(&shared, Op::LeaseGrant, t, Err(e)),
            }
            continue;
        }
        let r = renew(&mut h, plan.request_timeout).await;
        renewals += u64::from(r.is_ok());
        acc.done(&shared, Op::LeaseKeepAlive, due, r);
        queue.push_back((h, due + plan.interval));
    }
    // Leave nothing behind (unless etcd is gone).
    if !shared.stop.load(Ordering::Relaxed) {
        for (h, _) in queue {
            let t = Instant::now();
            let r = client.revoke(h.id).await.map(|_| ());
            acc.done(&shared, Op::LeaseRevoke, t, r);
        }
    }
    WorkerResult {
        book: acc.tally.finish(&shared),
        conflicts: 0,
        events: 0,
        renewals,
        by_transport: [0, 0],
        switched: false,
        history: Vec::new(),
    }
}

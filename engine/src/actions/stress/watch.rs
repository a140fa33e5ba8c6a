//! Watchers during a stress step: N watches on the load's key prefix, each measuring the delay
//! from a write's acknowledgement (recorded by the writers in a lock-free ring) to its event.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions};

use super::record::WatchRecord;
use super::worker::AckRing;
use crate::actions::{Error, Result};
use crate::measure::latency::Recorder;

/// Running watchers.
pub struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<(Recorder, u64, u64)>>,
    counts: Vec<Arc<std::sync::atomic::AtomicU64>>,
    watchers: u64,
    done: tokio_util::sync::CancellationToken,
}

/// Opens `n` watches on `prefix` (they are established before this returns).
pub async fn start(client: &Client, prefix: &str, n: u64, acks: Arc<AckRing>) -> Result<Watchers> {
    let mut tasks = Vec::new();
    let mut counts = Vec::new();
    let done = tokio_util::sync::CancellationToken::new();
    for _ in 0..n {
        let (watcher, mut stream) = crate::target::watch(client)
            .watch(prefix, Some(WatchOptions::new().with_prefix()))
            .await
            .map_err(|source| Error::Etcd {
                op: "watch",
                source,
            })?;
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        counts.push(count.clone());
        let acks = acks.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let _keep = watcher; // dropping the watcher would cancel the watch
            let mut delay = Recorder::default();
            let (mut received, mut last_rev, mut out_of_order) = (0u64, 0i64, 0u64);
            loop {
                let resp = tokio::select! {
                    m = stream.message() => match m {
                        Ok(Some(resp)) => resp,
                        _ => break,
                    },
                    _ = done.cancelled() => break,
                };
                let now = acks.epoch.elapsed().as_nanos() as u64;
                for ev in resp.events() {
                    received += 1;
                    if let Some(kv) = ev.kv() {
                        // One transaction's events share a revision: never lower than the last.
                        if kv.mod_revision() < last_rev {
                            out_of_order += 1;
                        }
                        last_rev = last_rev.max(kv.mod_revision());
                        if let Some(acked) = acks.get(kv.mod_revision()) {
                            delay.record(Duration::from_nanos(now.saturating_sub(acked)));
                        } else {
                            // The event beat the acknowledgement to us: no delay at all.
                            delay.record(Duration::ZERO);
                        }
                    }
                }
                count.store(received, Ordering::Relaxed);
            }
            (delay, received, out_of_order)
        }));
    }
    Ok(Watchers {
        tasks,
        counts,
        watchers: n,
        done,
    })
}

impl Watchers {
    /// Waits (at most 5 s) for every watcher to see `expected` events, then closes them.
    pub async fn finish(self, expected: u64) -> WatchRecord {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && self
                .counts
                .iter()
                .any(|c| c.load(Ordering::Relaxed) < expected)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.done.cancel();
        let mut delay = Recorder::default();
        let (mut received, mut out_of_order) = (0, 0);
        for (t, count) in self.tasks.into_iter().zip(&self.counts) {
            match t.await {
                Ok((d, r, o)) => {
                    delay.merge(&d);
                    received += r;
                    out_of_order += o;
                }
                Err(_) => received += count.load(Ordering::Relaxed),
            }
        }
        WatchRecord {
            watchers: self.watchers,
            expected_per_watcher: expected,
            received,
            missed: (expected * self.watchers).saturating_sub(received),
            out_of_order,
            delay: delay.summary(),
        }
    }
}

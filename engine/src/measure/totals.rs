//! What a running step's load loops hand to the run's live outputs: per-operation totals
//! ([`OpTotals`]) and the rate an open loop is asked for, through the [`LiveFeed`] the run gives
//! them. Actions see only this trait, never the outputs behind it (`crate::live`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::latency::Recorder;

/// One operation's totals in one step (or a worker's share of them between two flushes).
#[derive(Debug, Default, Clone)]
pub struct OpTotals {
    /// Requests that succeeded.
    pub ok: u64,
    /// Failed requests by code (`Unavailable`, `DeadlineExceeded`, `Transport`...).
    pub errors: BTreeMap<String, u64>,
    /// Latency of the successful requests.
    pub latency: Recorder,
    /// Their sum, in seconds.
    pub latency_sum: f64,
}

impl OpTotals {
    /// Records a success that took `took`.
    pub fn ok(&mut self, took: std::time::Duration) {
        self.ok += 1;
        self.latency.record(took);
        self.latency_sum += took.as_secs_f64();
    }

    /// Records a failure with `code`.
    pub fn error(&mut self, code: &str) {
        match self.errors.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(code.to_string(), 1);
            }
        }
    }

    /// Adds `delta` to these totals and empties it.
    pub fn absorb(&mut self, delta: &mut OpTotals) {
        self.ok += std::mem::take(&mut delta.ok);
        for (code, n) in std::mem::take(&mut delta.errors) {
            *self.errors.entry(code).or_default() += n;
        }
        self.latency.merge(&delta.latency);
        delta.latency.clear();
        self.latency_sum += std::mem::take(&mut delta.latency_sum);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ok == 0 && self.errors.is_empty()
    }
}

/// Where one step's load loops put their live totals; the run's live outputs implement it.
pub trait LiveFeed: Send + Sync + std::fmt::Debug {
    /// The totals of operation `op` in this step, created empty on first use. Loops keep a delta
    /// of their own and [`OpTotals::absorb`] it about once a second: no lock per request.
    fn op(&self, op: &str) -> Arc<Mutex<OpTotals>>;

    /// The rate an open-loop load is asked for now (`None`: a closed loop).
    fn intended_rate(&self, rate: Option<f64>);
}

/// A step's live feed, shared by its loops.
pub type SharedFeed = Arc<dyn LiveFeed>;

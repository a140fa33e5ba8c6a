//! Latency recording: an HDR histogram in microseconds, summarised in milliseconds for reports.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency recorder; one per worker, merged at the end (no shared lock on the hot path).
/// The histogram (about 180 KB) is allocated on the first sample, so an unused recorder is free
/// and a thousand workers do not zero hundreds of megabytes before their first request.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    hist: Option<Box<Histogram<u64>>>,
}

/// 1 µs .. 1 h at 3 significant figures: p99.9 stays meaningful at millions of samples.
fn new_histogram() -> Box<Histogram<u64>> {
    Box::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
}

impl Recorder {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let h = self.hist.get_or_insert_with(new_histogram);
        let us = (d.as_micros() as u64).clamp(1, h.high());
        h.saturating_record(us);
    }

    /// Adds another recorder's samples.
    pub fn merge(&mut self, other: &Recorder) {
        if let Some(o) = &other.hist {
            // Same bounds on both sides, so this cannot fail.
            let _ = self.hist.get_or_insert_with(new_histogram).add(o.as_ref());
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len())
    }

    /// The summary written into reports.
    pub fn summary(&self) -> LatencySummary {
        let Some(h) = self.hist.as_deref().filter(|h| !h.is_empty()) else {
            return LatencySummary::default();
        };
        let ms = |us: u64| us as f64 / 1e3;
        LatencySummary {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1e3,
            stddev: h.stdev() / 1e3,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Fastest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_summarises() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 1..=900 {
            a.record(Duration::from_micros(i));
        }
        for _ in 0..100 {
            b.record(Duration::from_millis(50));
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 0.5).abs() < 0.01, "{s:?}");
        assert!((s.p99 - 50.0).abs() < 0.1, "{s:?}");
        assert!(s.max >= 50.0 && s.min <= 0.001);
    }
}

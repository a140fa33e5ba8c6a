//! Latency recording: an HDR histogram in microseconds, summarised in milliseconds for reports.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency recorder; one per worker, merged at the end (no shared lock on the hot path).
/// The first [`PENDING`] samples are kept raw (at most 32 KB); the histogram (about 180 KB) is
/// allocated only when they overflow, so the hundreds of workers of a moderate-rate load never
/// zero hundreds of megabytes, and merging folds raw samples straight into the total.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    hist: Option<Box<Histogram<u64>>>,
    pending: Vec<u64>,
}

/// Raw samples a recorder keeps before it allocates its histogram.
pub const PENDING: usize = 4096;

/// The largest latency recorded, in µs (1 h); longer ones count as 1 h.
const HIGH: u64 = 3_600_000_000;

/// 1 µs .. 1 h at 3 significant figures: p99.9 stays meaningful at millions of samples.
fn new_histogram() -> Box<Histogram<u64>> {
    Box::new(Histogram::new_with_bounds(1, HIGH, 3).expect("valid histogram bounds"))
}

impl Recorder {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, HIGH);
        match &mut self.hist {
            Some(h) => h.saturating_record(us),
            None if self.pending.len() < PENDING => self.pending.push(us),
            None => {
                let h = self.histogram();
                h.saturating_record(us);
            }
        }
    }

    /// The histogram, allocated on first use with the raw samples folded in.
    fn histogram(&mut self) -> &mut Histogram<u64> {
        let pending = std::mem::take(&mut self.pending);
        let h = self.hist.get_or_insert_with(new_histogram);
        for us in pending {
            h.saturating_record(us);
        }
        h
    }

    /// Adds another recorder's samples.
    pub fn merge(&mut self, other: &Recorder) {
        if other.count() == 0 {
            return;
        }
        let h = self.histogram();
        if let Some(o) = &other.hist {
            // Same bounds on both sides, so this cannot fail.
            let _ = h.add(o.as_ref());
        }
        for &us in &other.pending {
            h.saturating_record(us);
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len()) + self.pending.len() as u64
    }

    /// The summary written into reports.
    pub fn summary(&self) -> LatencySummary {
        if self.count() == 0 {
            return LatencySummary::default();
        }
        let mut folded;
        let h: &Histogram<u64> = match (&self.hist, self.pending.is_empty()) {
            (Some(h), true) => h,
            _ => {
                folded = self.clone();
                folded.histogram()
            }
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

    #[test]
    fn raw_samples_and_histograms_give_the_same_summary() {
        // One recorder overflows into its histogram, the other stays raw; both agree.
        let mut big = Recorder::default();
        let mut raw = Recorder::default();
        for i in 0..(PENDING as u64 * 3) {
            big.record(Duration::from_micros(1 + i % 5000));
        }
        for i in 0..(PENDING as u64 - 1) {
            raw.record(Duration::from_micros(1 + (i * 7) % 5000));
        }
        assert!(big.hist.is_some() && big.pending.is_empty());
        assert!(raw.hist.is_none());
        let mut both = Recorder::default();
        both.merge(&big);
        both.merge(&raw);
        assert_eq!(both.count(), big.count() + raw.count());
        let mut reference = new_histogram();
        for i in 0..(PENDING as u64 * 3) {
            reference.record(1 + i % 5000).unwrap();
        }
        for i in 0..(PENDING as u64 - 1) {
            reference.record(1 + (i * 7) % 5000).unwrap();
        }
        let s = both.summary();
        assert_eq!(s.p99, reference.value_at_quantile(0.99) as f64 / 1e3);
        assert_eq!(s.max, reference.max() as f64 / 1e3);
        assert_eq!(raw.summary().count, PENDING as u64 - 1);
    }
}

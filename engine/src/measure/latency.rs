//! Latency recording: an HDR histogram in microseconds per worker, merged, and kept in the report
//! as a [`Distribution`] (quantiles in milliseconds plus the compressed histogram, so any quantile
//! can be asked later). A distribution with no samples has `null` figures, never 0.

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

    /// Records `n` samples of one latency at once.
    pub fn record_n(&mut self, d: Duration, n: u64) {
        let us = (d.as_micros() as u64).clamp(1, HIGH);
        if n == 1 {
            return self.record(d);
        }
        let _ = self.histogram().record_n(us, n);
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

    /// Adds every sample of this recorder (µs) to `h`, a histogram of another precision: a
    /// second of a load's series, kept coarser than the whole step's distribution.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        if let Some(o) = &self.hist {
            // Bounds within `h`'s (1 µs to an hour), so this cannot fail.
            let _ = h.add(o.as_ref());
        }
        for &us in &self.pending {
            h.saturating_record(us);
        }
    }

    /// Forgets every sample (keeping the histogram's memory for the next ones).
    pub fn clear(&mut self) {
        self.pending.clear();
        if let Some(h) = &mut self.hist {
            h.reset();
        }
    }

    /// For each bound (µs, ascending), how many samples are at most that long — the cumulative
    /// buckets of a Prometheus histogram. A sample counts at the low edge of its histogram slot
    /// (3 significant figures), so one of exactly a bound's length is inside it, as in a client
    /// library's histogram.
    pub fn count_le(&self, bounds_us: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; bounds_us.len()];
        let mut add = |us: u64, n: u64| {
            for (i, b) in bounds_us.iter().enumerate() {
                if us <= *b {
                    out[i] += n;
                }
            }
        };
        if let Some(h) = &self.hist {
            for v in h.iter_recorded() {
                add(
                    h.lowest_equivalent(v.value_iterated_to()),
                    v.count_at_value(),
                );
            }
        }
        for &us in &self.pending {
            add(us, 1);
        }
        out
    }

    /// The quantiles `qs` in ms (`None` each when there are no samples): the same values
    /// [`Recorder::summary`] gives, without encoding the histogram.
    pub fn quantiles_ms(&self, qs: &[f64]) -> Vec<Option<f64>> {
        if self.count() == 0 {
            return vec![None; qs.len()];
        }
        self.with_histogram(|h| {
            qs.iter()
                .map(|q| Some(h.value_at_quantile(*q) as f64 / 1e3))
                .collect()
        })
    }

    /// Calls `f` with every sample in one histogram (the raw ones folded into a copy).
    fn with_histogram<R>(&self, f: impl FnOnce(&Histogram<u64>) -> R) -> R {
        match (&self.hist, self.pending.is_empty()) {
            (Some(h), true) => f(h),
            _ => {
                let mut folded = self.clone();
                f(folded.histogram())
            }
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len()) + self.pending.len() as u64
    }

    /// The distribution written into reports: `null` figures when there are no samples.
    pub fn summary(&self) -> Distribution {
        if self.count() == 0 {
            return Distribution::default();
        }
        self.with_histogram(Self::distribution)
    }

    /// The distribution of a histogram with samples.
    fn distribution(h: &Histogram<u64>) -> Distribution {
        let ms = |us: u64| Some(us as f64 / 1e3);
        Distribution {
            count: h.len(),
            min: ms(h.min()),
            mean: Some(h.mean() / 1e3),
            stddev: Some(h.stdev() / 1e3),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            hist: encode(h),
            buckets: None,
        }
    }
}

/// The histogram as base64 of HdrHistogram's V2 deflate encoding (what HdrHistogram's own tools read).
fn encode(h: &Histogram<u64>) -> Option<String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Serializer as _;
    let mut out = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(out))
}

/// Decodes [`encode`]'s text.
fn decode(text: &str) -> Option<Histogram<u64>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .ok()
}

/// A latency distribution in milliseconds. Every figure is `null` when `count` is 0. It has no
/// other fields: a map that reads as one is one (what a threshold asks any quantile of).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-kind" = "distribution"))]
pub struct Distribution {
    /// Samples.
    #[schemars(with = "crate::measure::Count")]
    pub count: u64,
    /// Fastest.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub min: Option<f64>,
    /// Mean.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub mean: Option<f64>,
    /// Standard deviation.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub stddev: Option<f64>,
    /// Median.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p50: Option<f64>,
    /// 90th percentile.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p90: Option<f64>,
    /// 99th percentile.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p99: Option<f64>,
    /// 99.9th percentile.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p999: Option<f64>,
    /// Slowest.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub max: Option<f64>,
    /// The whole HDR histogram (µs, 3 significant figures): base64 of HdrHistogram's V2 deflate
    /// encoding. Thresholds and `scen compare` read any quantile from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hist: Option<String>,
    /// For distributions etcd measured: its cumulative histogram buckets over the window,
    /// `[upper bound in ms (null for +Inf), count]`; quantiles are interpolated as PromQL's
    /// `histogram_quantile` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<(Option<f64>, f64)>>,
}

impl Distribution {
    /// Quantile `q` (0..=1) in ms, from its HDR histogram or its buckets. `None` when it has no
    /// samples or keeps neither.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if let Some(h) = self.hist.as_deref().and_then(decode) {
            return (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e3);
        }
        let cumulative: Vec<(f64, f64)> = self
            .buckets
            .as_ref()?
            .iter()
            .map(|(le, c)| (le.unwrap_or(f64::INFINITY), *c))
            .collect();
        bucket_quantile(q, &cumulative)
    }
}

/// The quantile a field name asks for: `p95` is 0.95, `p999` 0.999, `p9999` 0.9999, `p100` 1.
pub fn quantile_key(key: &str) -> Option<f64> {
    let digits = key.strip_prefix('p')?;
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits == "100" {
        return Some(1.0);
    }
    format!("0.{digits}").parse().ok()
}

/// `histogram_quantile` on cumulative buckets `(upper bound, count)` sorted by bound; `None`
/// when the buckets hold no observations.
pub fn bucket_quantile(q: f64, cumulative: &[(f64, f64)]) -> Option<f64> {
    let &(_, total) = cumulative.last()?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in cumulative {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0); // like Prometheus: the highest finite bound
            }
            let in_bucket = c - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                0.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    Some(prev.0)
}

/// The bounds of the bucket that holds quantile `q` of cumulative buckets: the values the
/// histogram cannot tell apart from its interpolated quantile. `None` without observations.
pub fn bucket_bounds(q: f64, cumulative: &[(f64, f64)]) -> Option<(f64, f64)> {
    let &(_, total) = cumulative.last()?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    for &(le, c) in cumulative {
        if c >= rank && c > 0.0 {
            return Some((lower, le));
        }
        lower = le;
    }
    Some((lower, f64::INFINITY))
}

/// The cumulative buckets a distribution keeps (`None` for a client distribution, which keeps its
/// HDR histogram instead).
pub fn buckets_of(dist: &serde_json::Value) -> Option<Vec<(f64, f64)>> {
    if dist
        .get("hist")
        .and_then(serde_json::Value::as_str)
        .is_some()
    {
        return None;
    }
    let buckets: Vec<(Option<f64>, f64)> =
        serde_json::from_value(dist.get("buckets")?.clone()).ok()?;
    Some(
        buckets
            .into_iter()
            .map(|(le, c)| (le.unwrap_or(f64::INFINITY), c))
            .collect(),
    )
}

/// Quantile `q` (0..=1) of a distribution as it stands in a report (JSON), in ms: from its HDR
/// histogram or its buckets. `None` when it has no samples or keeps neither.
pub fn quantile_of(dist: &serde_json::Value, q: f64) -> Option<f64> {
    if let Some(h) = dist
        .get("hist")
        .and_then(serde_json::Value::as_str)
        .and_then(decode)
    {
        return (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e3);
    }
    bucket_quantile(q, &buckets_of(dist)?)
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
        assert!((s.p50.unwrap() - 0.5).abs() < 0.01, "{s:?}");
        assert!((s.p99.unwrap() - 50.0).abs() < 0.1, "{s:?}");
        assert!(s.max.unwrap() >= 50.0 && s.min.unwrap() <= 0.001);
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
        assert_eq!(s.p99, Some(reference.value_at_quantile(0.99) as f64 / 1e3));
        assert_eq!(s.max, Some(reference.max() as f64 / 1e3));
        assert_eq!(raw.summary().count, PENDING as u64 - 1);
    }

    #[test]
    fn no_samples_is_null_not_zero() {
        let d = Recorder::default().summary();
        assert_eq!(d.count, 0);
        assert_eq!(
            (d.p50, d.p99, d.max, d.hist.clone()),
            (None, None, None, None)
        );
        let json = serde_json::to_value(&d).unwrap();
        assert!(json["p99"].is_null(), "{json}");
        assert_eq!(quantile_of(&json, 0.95), None);
    }

    #[test]
    fn any_quantile_comes_back_from_the_kept_histogram() {
        let mut r = Recorder::default();
        for i in 1..=10_000u64 {
            r.record(Duration::from_micros(i * 10)); // 10 µs .. 100 ms, uniform
        }
        let json = serde_json::to_value(r.summary()).unwrap();
        let p95 = quantile_of(&json, 0.95).unwrap();
        assert!((p95 - 95.0).abs() < 0.1, "{p95}");
        let p999 = quantile_of(&json, 0.999).unwrap();
        assert_eq!(Some(p999), json["p999"].as_f64());
        // Compact: far smaller than the samples.
        assert!(
            json["hist"].as_str().unwrap().len() < 8_000,
            "{}",
            json["hist"]
        );
        assert_eq!(quantile_key("p95"), Some(0.95));
        assert_eq!(quantile_key("p999"), Some(0.999));
        assert_eq!(quantile_key("p100"), Some(1.0));
        assert_eq!(quantile_key("p9"), None);
        assert_eq!(quantile_key("max"), None);
    }

    #[test]
    fn bucket_quantiles_match_prometheus() {
        let cum = [
            (1.0, 50.0),
            (10.0, 90.0),
            (100.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(bucket_quantile(0.5, &cum), Some(1.0));
        assert_eq!(bucket_quantile(0.9, &cum), Some(10.0));
        assert!((bucket_quantile(0.95, &cum).unwrap() - 55.0).abs() < 1e-9);
        assert_eq!(
            bucket_quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
        assert_eq!(
            bucket_quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        let json = serde_json::json!({ "count": 100, "buckets": [[1.0, 50.0], [10.0, 90.0], [100.0, 100.0], [null, 100.0]] });
        assert!((quantile_of(&json, 0.95).unwrap() - 55.0).abs() < 1e-9);
    }
}

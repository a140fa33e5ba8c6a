//! How far a figure could move by chance: a 95% confidence interval from what the figure rests on
//! ([`Basis`]), so `scen compare` calls a change a regression only when the two runs' intervals do
//! not overlap.
//!
//! - A quantile: the distribution-free interval of order statistics. Of `n` samples, the ranks
//!   `n·q ± z·√(n·q·(1−q))` bracket the true quantile with 95% confidence whatever the
//!   distribution; their values are read from the kept histogram (HDR or etcd's buckets, widened
//!   to the buckets' bounds). A rank outside the samples leaves that side unbounded (p99 of 300
//!   samples has no upper bound: the largest sample bounds nothing).
//! - A mean: `mean ± z·sd/√n`.
//! - A count of events: Poisson, the score interval `c + z²/2 ± z·√(c + z²/4)` (0 events: 0..3.8).
//! - A share of `n` trials: Wilson's score interval.
//! - A rate of `n` events: the rate scaled by the Poisson interval of `n`.
//! - A search's answer (a capacity): its own bracket, from the rate that held to the one that failed.

use super::figures::Basis;
use super::latency::{bucket_bounds, buckets_of, quantile_of};

/// The normal quantile of a two-sided 95% interval.
pub const Z: f64 = 1.96;

/// Why a figure has no interval.
#[derive(Debug, Clone, PartialEq)]
pub enum NoInterval {
    /// It rests on fewer samples than asked for, or than its quantile needs.
    TooFewSamples(String),
    /// Nothing is known about its noise.
    Unknown,
}

/// The 95% interval of `value`, given its basis and the minimum number of samples a sample
/// statistic must rest on.
pub fn interval(value: f64, basis: &Basis, min_samples: u64) -> Result<(f64, f64), NoInterval> {
    if let Some(n) = basis.samples() {
        if n < min_samples {
            let what = match basis {
                Basis::Quantile { .. } | Basis::Mean { .. } => "independent samples",
                _ => "events",
            };
            return Err(NoInterval::TooFewSamples(format!(
                "{n} {what}, fewer than {min_samples}"
            )));
        }
    }
    match basis {
        Basis::Unknown => Err(NoInterval::Unknown),
        Basis::Quantile { q, n, dist } => quantile_interval(*q, *n, dist),
        Basis::Mean { n, sd } => {
            let half = Z * sd / (*n as f64).sqrt();
            Ok((value - half, value + half))
        }
        Basis::Events => Ok(poisson(value)),
        Basis::Bracket { upper } => Ok((value, upper.unwrap_or(f64::INFINITY))),
        Basis::Share { n } => Ok(wilson(value, *n as f64)),
        Basis::RateOf { n } => {
            let n = *n as f64;
            if n == 0.0 {
                return Err(NoInterval::TooFewSamples("no events".into()));
            }
            let (lo, hi) = poisson(n);
            Ok((value * lo / n, value * hi / n))
        }
    }
}

/// The order-statistic interval of quantile `q` over `n` samples, read from the distribution;
/// a side whose rank falls outside the samples is infinite.
fn quantile_interval(q: f64, n: u64, dist: &serde_json::Value) -> Result<(f64, f64), NoInterval> {
    let nf = n as f64;
    let half = Z * (q * (1.0 - q) / nf).sqrt();
    let (qlo, qhi) = (q - half, q + half);
    let lo_ok = qlo * nf >= 1.0;
    let hi_ok = qhi * nf <= nf - 1.0;
    if !lo_ok && !hi_ok {
        return Err(NoInterval::TooFewSamples(too_few(q, n)));
    }
    // etcd's buckets cannot tell values within one bucket apart: the interval spans from the
    // bucket of the lower rank to the bucket of the upper one.
    let (lo, hi) = if let Some(cum) = buckets_of(dist) {
        (
            bucket_bounds(qlo, &cum).map(|b| b.0),
            bucket_bounds(qhi, &cum).map(|b| b.1),
        )
    } else {
        (quantile_of(dist, qlo), quantile_of(dist, qhi))
    };
    match (lo, hi) {
        // No histogram kept (a report of schema version 1).
        (None, _) | (_, None) => Err(NoInterval::Unknown),
        (Some(lo), Some(hi)) => Ok((
            if lo_ok { lo } else { f64::NEG_INFINITY },
            if hi_ok { hi } else { f64::INFINITY },
        )),
    }
}

/// Why quantile `q` of `n` samples cannot be bounded.
pub fn too_few(q: f64, n: u64) -> String {
    format!(
        "{n} independent samples cannot bound p{}: about {} needed",
        crate::units::format_number(q * 100.0),
        needed_samples(q)
    )
}

/// The smallest sample count whose interval for quantile `q` stays inside the samples.
pub fn needed_samples(q: f64) -> u64 {
    (1..=10_000_000u64)
        .find(|&n| {
            let nf = n as f64;
            let half = Z * (q * (1.0 - q) / nf).sqrt();
            (q - half) * nf >= 1.0 && (q + half) * nf <= nf - 1.0
        })
        .unwrap_or(u64::MAX)
}

/// The score interval of a Poisson count.
fn poisson(c: f64) -> (f64, f64) {
    let mid = c + Z * Z / 2.0;
    let half = Z * (c + Z * Z / 4.0).sqrt();
    ((mid - half).max(0.0), mid + half)
}

/// Wilson's score interval of a share `p` of `n` trials.
fn wilson(p: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let mid = (p + z2 / (2.0 * n)) / denom;
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((mid - half).max(0.0), (mid + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::latency::Recorder;
    use std::time::Duration;

    fn dist(samples: impl IntoIterator<Item = u64>) -> (u64, serde_json::Value) {
        let mut r = Recorder::default();
        for us in samples {
            r.record(Duration::from_micros(us));
        }
        (r.count(), serde_json::to_value(r.summary()).unwrap())
    }

    #[test]
    fn quantile_intervals_narrow_with_samples_and_need_enough_of_them() {
        let (n, d) = dist((1..=10_000).map(|i| i * 10)); // uniform 10 µs .. 100 ms
        let q = Basis::Quantile {
            q: 0.99,
            n,
            dist: d,
        };
        let (lo, hi) = interval(99.0, &q, 1).unwrap();
        assert!(lo < 99.0 && hi > 99.0 && hi - lo < 1.0, "{lo}..{hi}");
        let (n, d) = dist((1..=300).map(|i| i * 10));
        // p99 of 300 samples has a lower bound but no upper one.
        let few = Basis::Quantile {
            q: 0.99,
            n,
            dist: d.clone(),
        };
        let (lo, hi) = interval(2.97, &few, 1).unwrap();
        assert!(lo > 2.0 && lo < 2.97 && hi.is_infinite(), "{lo}..{hi}");
        let median = Basis::Quantile { q: 0.5, n, dist: d };
        let (lo, hi) = interval(1.5, &median, 1).unwrap();
        assert!(lo < 1.5 && hi > 1.5 && hi - lo < 0.5, "{lo}..{hi}");
        // Two samples bound no median at all.
        let (n, d) = dist([10, 20]);
        let two = Basis::Quantile { q: 0.5, n, dist: d };
        assert!(matches!(
            interval(0.015, &two, 1),
            Err(NoInterval::TooFewSamples(_))
        ));
        assert!(
            (500..700).contains(&needed_samples(0.99)),
            "{}",
            needed_samples(0.99)
        );
        assert!(needed_samples(0.999) > 5000);
    }

    #[test]
    fn counts_shares_and_rates() {
        let (lo, hi) = poisson(0.0);
        assert!(lo == 0.0 && (3.0..4.0).contains(&hi));
        // 0 → 3 errors is noise; 0 → 10 is not.
        assert!(poisson(3.0).0 < poisson(0.0).1);
        assert!(poisson(10.0).0 > poisson(0.0).1);
        let (lo, hi) = wilson(0.01, 1000.0);
        assert!(lo > 0.004 && hi < 0.02, "{lo}..{hi}");
        let (lo, hi) = interval(500.0, &Basis::RateOf { n: 10_000 }, 30).unwrap();
        assert!(lo > 485.0 && hi < 515.0, "{lo}..{hi}");
        assert!(matches!(
            interval(500.0, &Basis::RateOf { n: 10 }, 30),
            Err(NoInterval::TooFewSamples(_))
        ));
        let (lo, hi) = interval(2.0, &Basis::Mean { n: 400, sd: 1.0 }, 30).unwrap();
        assert!((lo - 1.902).abs() < 1e-3 && (hi - 2.098).abs() < 1e-3);
        assert_eq!(interval(1.0, &Basis::Unknown, 0), Err(NoInterval::Unknown));
    }
}

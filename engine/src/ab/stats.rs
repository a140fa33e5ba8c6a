//! The change B vs A of one figure across interleaved rounds, with a confidence interval.
//!
//! Each round runs A and B back to back, so the machine's drift touches both: the round is the
//! unit. Per round `d = ln(B / A)`; the estimate is the mean of `d` and its interval the paired
//! Student-t interval `mean ± t·sd/√n` (n − 1 degrees of freedom), reported as a relative change
//! `e^x − 1`. The log scale makes ×1.2 and ×0.83 symmetric and suits figures that vary by ratios
//! (latencies, rates). With `k` figures compared at once, each interval is at the Bonferroni level
//! `1 − α/k`, so the chance that *any* figure of an A/A comparison shows a change stays below α.
//!
//! What could have been seen: a change is detected with 80% power when it exceeds
//! `(t₁₋α/2k + t₀.₈)·sd/√n` — said as "a change smaller than ±x% would not show".

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The change of one figure, B vs A.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// The estimate, relative (`0.1`: B is 10% higher).
    pub estimate: f64,
    /// The interval, relative.
    pub low: f64,
    /// The interval's upper end, relative.
    pub high: f64,
    /// The smallest change these rounds would detect with 80% power, relative (±).
    pub detectable: f64,
    /// The standard deviation of the rounds' log ratios (the noise per round; 0: identical).
    pub sd: f64,
}

impl Change {
    /// Whether the interval leaves out "no change".
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The two-sided critical value of Student's t with `df` degrees of freedom at level `1 − alpha`.
pub fn t_critical(alpha: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df)
        .map(|t| t.inverse_cdf(1.0 - alpha / 2.0))
        .unwrap_or(f64::INFINITY)
}

/// The change of paired rounds `a[i]`, `b[i]` (all positive, at least 2) at family level `alpha`
/// over `figures` compared at once; `None` when a value is missing, zero or negative.
pub fn paired_change(a: &[f64], b: &[f64], alpha: f64, figures: usize) -> Option<Change> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    if a.iter().chain(b).any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (y / x).ln()).collect();
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let se = var.sqrt() / n.sqrt();
    let level = alpha / figures.max(1) as f64;
    let t = t_critical(level, n - 1.0);
    // One-sided 80% power: the t value leaving 20% in one tail.
    let power = StudentsT::new(0.0, 1.0, n - 1.0)
        .map(|s| s.inverse_cdf(0.8))
        .unwrap_or(0.0);
    let rel = |x: f64| x.exp() - 1.0;
    if var == 0.0 && mean != 0.0 {
        // Identical ratios every round: a quantized figure (CPU in clock ticks), not a noiseless
        // one. Its noise cannot be estimated, so no change can be called significant.
        return Some(Change {
            estimate: rel(mean),
            low: -1.0,
            high: f64::INFINITY,
            detectable: f64::INFINITY,
            sd: f64::INFINITY,
        });
    }
    Some(Change {
        estimate: rel(mean),
        low: rel(mean - t * se),
        high: rel(mean + t * se),
        detectable: rel((t + power) * se),
        sd: var.sqrt(),
    })
}

/// The smallest number of rounds (2 to 100) whose detectable change, with the per-round noise
/// `sd` (of the log ratios) at family level `alpha` over `figures`, is at most `detect`
/// (relative); `None` when even 100 rounds would not do, or the noise is unknown.
pub fn rounds_needed(sd: f64, detect: f64, alpha: f64, figures: usize) -> Option<usize> {
    if !sd.is_finite() || detect <= 0.0 {
        return None;
    }
    let goal = (1.0 + detect).ln();
    let level = alpha / figures.max(1) as f64;
    (2..=100).find(|&n| {
        let df = (n - 1) as f64;
        let power = StudentsT::new(0.0, 1.0, df)
            .map(|s| s.inverse_cdf(0.8))
            .unwrap_or(0.0);
        (t_critical(level, df) + power) * sd / (n as f64).sqrt() <= goal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_critical_values_match_the_tables() {
        assert!((t_critical(0.05, 5.0) - 2.5706).abs() < 1e-3);
        assert!((t_critical(0.05, 1.0) - 12.706).abs() < 1e-2);
        assert!((t_critical(0.01, 10.0) - 3.1693).abs() < 1e-3);
    }

    #[test]
    fn a_clear_shift_is_inside_its_interval_and_identical_sides_are_no_change() {
        let a = [10.0, 10.5, 9.8, 10.2, 10.1, 9.9];
        let wobble = [1.01, 0.99, 1.02, 0.98, 1.0, 1.0];
        let b: Vec<f64> = a.iter().zip(wobble).map(|(x, w)| x * 1.2 * w).collect();
        let c = paired_change(&a, &b, 0.05, 1).unwrap();
        assert!((c.estimate - 0.2).abs() < 0.01, "{c:?}");
        assert!(c.low < 0.2 && c.high > 0.2 && c.excludes_zero(), "{c:?}");
        // Noise both ways: no change.
        let b2 = [10.3, 10.2, 9.7, 10.4, 9.9, 10.0];
        let c2 = paired_change(&a, &b2, 0.05, 1).unwrap();
        assert!(!c2.excludes_zero(), "{c2:?}");
        assert!(c2.detectable > 0.0);
        // More figures at once: wider intervals.
        let c8 = paired_change(&a, &b2, 0.05, 8).unwrap();
        assert!(c8.high - c8.low > c2.high - c2.low);
    }

    #[test]
    fn the_rounds_needed_shrink_the_detectable_change_to_the_goal() {
        // Rounds whose ratios scatter by 10% (sd of the logs ≈ 0.1).
        let a = [100.0; 6];
        let b = [110.0, 90.0, 112.0, 91.0, 105.0, 95.0];
        let c = paired_change(&a, &b, 0.05, 1).unwrap();
        let n = rounds_needed(c.sd, 0.05, 0.05, 1).unwrap();
        assert!(c.detectable > 0.05, "six rounds cannot see 5%: {c:?}");
        assert!(n > 6, "{n}");
        // At the rounds it names, the same noise would detect 5%; one round fewer would not.
        let detect_at = |n: usize| {
            let df = (n - 1) as f64;
            let p = StudentsT::new(0.0, 1.0, df).unwrap().inverse_cdf(0.8);
            ((t_critical(0.05, df) + p) * c.sd / (n as f64).sqrt()).exp() - 1.0
        };
        assert!(detect_at(n) <= 0.05 && detect_at(n - 1) > 0.05);
        // Noise that no round count can beat, and noise that is unknown.
        assert_eq!(rounds_needed(5.0, 0.01, 0.05, 1), None);
        assert_eq!(rounds_needed(f64::INFINITY, 0.05, 0.05, 1), None);
        // More figures at once need more rounds for the same change.
        assert!(rounds_needed(c.sd, 0.05, 0.05, 10).unwrap() > n);
    }

    #[test]
    fn missing_or_zero_values_have_no_change() {
        assert_eq!(paired_change(&[1.0], &[1.0], 0.05, 1), None);
        assert_eq!(paired_change(&[1.0, 0.0], &[1.0, 1.0], 0.05, 1), None);
        assert_eq!(paired_change(&[1.0, 2.0], &[1.0], 0.05, 1), None);
    }
}

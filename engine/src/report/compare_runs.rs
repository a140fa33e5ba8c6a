//! Comparing several runs per side (`scen compare A1 A2 A3 -- B1 B2 B3`), the runs as the
//! samples: Welch's t-interval of each figure's change, and `inconclusive` where the runs could
//! not have detected a change of the tolerance's size.

use super::compare::{compare, typed, warnings, Comparison, Options, Row, Verdict};
use super::Report;
use crate::measure::figures::{Better, Figure};

/// Compares several runs per side with the runs as the samples, as benchstat does: within one run
/// requests are correlated (a slow second slows all of its requests), so the run, not the request,
/// is the unit whose variation is estimated. For each figure, Welch's t-interval (95%) of the
/// difference of the two sides' means: a regression is worse by more than the tolerance with an
/// interval that excludes no change; a figure whose interval is wider than the tolerance is
/// `inconclusive`, with the change these runs could have detected. One run per side is
/// [`compare`].
pub fn compare_runs(olds: &[Report], news: &[Report], opts: Options) -> Comparison {
    if let ([a], [b]) = (olds, news) {
        return compare(a, b, opts);
    }
    let side = |rs: &[Report]| -> Vec<Vec<Figure>> { rs.iter().map(typed).collect() };
    let (a, b) = (side(olds), side(news));
    let mut paths: Vec<&Figure> = Vec::new();
    for f in a.iter().chain(&b).flatten() {
        if !paths.iter().any(|p| p.path == f.path) {
            paths.push(f);
        }
    }
    let mut rows: Vec<Row> = paths
        .into_iter()
        .map(|f| runs_row(f, &a, &b, opts))
        .collect();
    rows.sort_by(|x, y| x.path.cmp(&y.path));
    let mut w = warnings(&olds[0], &news[0]);
    for (which, rs) in [("old", olds), ("new", news)] {
        for r in &rs[1..] {
            if r.scenario.name != rs[0].scenario.name || r.params != rs[0].params {
                w.push(format!(
                    "the {which} runs differ among themselves (scenario or parameters): they are not repetitions of one run"
                ));
                break;
            }
        }
    }
    Comparison { rows, warnings: w }
}

/// The fewest runs per side a regression or an improvement rests on: with two, the spread between
/// runs is a guess (two runs that happen to agree make any difference look significant).
pub const MIN_RUNS: usize = 3;

/// The union of the buckets the quantile `path` falls in over a side's runs, when it is a quantile
/// of bucketed histograms in every run.
fn side_buckets(path: &str, side: &[Vec<Figure>]) -> Option<(f64, f64)> {
    use crate::measure::figures::Basis;
    use crate::measure::latency::{bucket_bounds, buckets_of};
    let mut out: Option<(f64, f64)> = None;
    for run in side {
        let f = run.iter().find(|x| x.path == path)?;
        let Basis::Quantile { q, dist, .. } = &f.basis else {
            return None;
        };
        let (lo, hi) = bucket_bounds(*q, &buckets_of(dist)?)?;
        out = Some(out.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    out
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t95(df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    StudentsT::new(0.0, 1.0, df.max(1.0))
        .map_or(crate::measure::interval::Z, |t| t.inverse_cdf(0.975))
}

/// One figure over several runs per side.
fn runs_row(f: &Figure, a: &[Vec<Figure>], b: &[Vec<Figure>], opts: Options) -> Row {
    // Each side's values, and the most samples one of its runs rests on (for a side that lost
    // its data: a loss only from data enough to judge).
    let values = |side: &[Vec<Figure>]| -> (Vec<f64>, usize, u64) {
        let mut absent = 0;
        let mut most = 0;
        let mut v = Vec::new();
        for run in side {
            let fig = run.iter().find(|x| x.path == f.path);
            most = most.max(fig.and_then(|x| x.basis.samples()).unwrap_or(0));
            match fig.and_then(|x| x.value) {
                Some(x) => v.push(x),
                None => absent += 1,
            }
        }
        (v, absent, most)
    };
    let ((va, absent_a, most_a), (vb, absent_b, most_b)) = (values(a), values(b));
    let mut row = Row {
        path: f.path.clone(),
        unit: f.unit,
        old: (!va.is_empty()).then(|| mean_sd(&va).0),
        new: (!vb.is_empty()).then(|| mean_sd(&vb).0),
        change: None,
        better: f.better,
        verdict: Verdict::Info,
        why: None,
    };
    let Some(better) = f.better else {
        return row;
    };
    if va.is_empty() && vb.is_empty() {
        // No data on either side: nothing changed, and nothing is claimed.
        row.verdict = Verdict::NoData;
        return row;
    }
    if absent_a > 0 || absent_b > 0 {
        let (n, of, which) = if absent_a > 0 {
            (absent_a, a.len(), "old")
        } else {
            (absent_b, b.len(), "new")
        };
        // From a handful of incidental samples to none is no loss; from enough to judge it is.
        if most_a.max(most_b) < opts.min_samples {
            row.verdict = Verdict::NoData;
            return row;
        }
        row.verdict = Verdict::Missing;
        row.why = Some(format!(
            "absent or without data in {n} of the {of} {which} runs"
        ));
        return row;
    }
    if va.len() < 2 || vb.len() < 2 {
        row.verdict = Verdict::TooFewSamples;
        row.why = Some(format!(
            "{} old and {} new runs: runs as samples need 2 per side at least",
            va.len(),
            vb.len()
        ));
        return row;
    }
    let ((ma, sa), (mb, sb)) = (mean_sd(&va), mean_sd(&vb));
    let (na, nb) = (va.len() as f64, vb.len() as f64);
    let diff = mb - ma;
    row.change = Some(if ma == mb {
        0.0
    } else if ma == 0.0 {
        f64::INFINITY.copysign(diff)
    } else {
        diff / ma.abs()
    });
    let change = row.change.unwrap_or(0.0);
    let (ea, eb) = (sa * sa / na, sb * sb / nb);
    let se = (ea + eb).sqrt();
    let df = if se > 0.0 {
        (ea + eb).powi(2) / (ea * ea / (na - 1.0) + eb * eb / (nb - 1.0)).max(f64::MIN_POSITIVE)
    } else {
        na + nb - 2.0
    };
    let half = t95(df) * se;
    if se == 0.0 {
        // Every run of each side alike (a count that stayed 0): the change is what it is.
        let beyond = change.abs() > opts.tolerance;
        let worse = match better {
            Better::Lower => diff > 0.0,
            Better::Higher => diff < 0.0,
        };
        row.verdict = match (beyond, worse) {
            (false, _) => Verdict::Same,
            (true, true) => Verdict::Regressed,
            (true, false) => Verdict::Improved,
        };
        row.why = Some(format!(
            "{} vs {} runs, every run of each side alike",
            va.len(),
            vb.len()
        ));
        return row;
    }
    let worse = match better {
        Better::Lower => diff > 0.0,
        Better::Higher => diff < 0.0,
    };
    let significant = diff - half > 0.0 || diff + half < 0.0;
    let beyond = change.abs() > opts.tolerance;
    // The smallest change these runs could tell from none, relative to the old mean.
    let detectable = if ma != 0.0 {
        half / ma.abs()
    } else {
        f64::INFINITY
    };
    let pct = |x: f64| format!("{:+.1}%", x * 100.0);
    let interval = if ma != 0.0 {
        format!(
            "{}..{}",
            pct((diff - half) / ma.abs()),
            pct((diff + half) / ma.abs())
        )
    } else {
        "unbounded".into()
    };
    let runs = format!("{} vs {} runs", va.len(), vb.len());
    // A quantile of etcd's buckets is known only to its bucket: the sides differ only when the
    // buckets their runs' quantiles fall in do not overlap.
    let (ba, bb) = (side_buckets(&f.path, a), side_buckets(&f.path, b));
    let overlapping = match (ba, bb) {
        (Some(x), Some(y)) => (y.0 < x.1 && x.0 < y.1).then(|| {
            let unit = f.unit.unwrap_or(crate::measure::Unit::Count);
            let show = |(lo, hi): (f64, f64)| {
                format!("{}..{}", unit.format(Some(lo)), unit.format(Some(hi)))
            };
            format!(
                "{runs}; within the histogram's buckets: old in {}, new in {}",
                show(x),
                show(y)
            )
        }),
        _ => None,
    };
    (row.verdict, row.why) = if significant && beyond && va.len().min(vb.len()) < MIN_RUNS {
        (
            Verdict::Inconclusive,
            Some(format!(
                "{runs}; 95% interval of the change {interval}, but {} runs cannot estimate the noise between runs: give {MIN_RUNS} or more per side",
                va.len().min(vb.len())
            )),
        )
    } else if let (true, true, Some(why)) = (significant, beyond, overlapping) {
        (Verdict::Noise, Some(why))
    } else if significant && beyond {
        (
            if worse {
                Verdict::Regressed
            } else {
                Verdict::Improved
            },
            Some(format!("{runs}; 95% interval of the change {interval}")),
        )
    } else if detectable <= opts.tolerance {
        (
            if beyond {
                Verdict::Noise
            } else {
                Verdict::Same
            },
            Some(format!("{runs}; 95% interval of the change {interval}")),
        )
    } else if !detectable.is_finite() {
        (
            Verdict::Inconclusive,
            Some(format!(
                "{runs}; the old runs average 0, so a change relative to them has no size"
            )),
        )
    } else {
        // Runs needed for the interval to shrink to the tolerance (it narrows as 1/√n).
        let n = ((na.max(nb)) * (detectable / opts.tolerance.max(1e-9)).powi(2)).ceil();
        (
            Verdict::Inconclusive,
            Some(format!(
                "{runs}; 95% interval of the change {interval}: these runs could detect only ±{:.1}%, more than the tolerance; about {n} runs per side would detect ±{:.0}%",
                detectable * 100.0,
                opts.tolerance * 100.0
            )),
        )
    };
    row
}

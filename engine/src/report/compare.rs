//! Comparing two reports figure by figure (`scen compare old.json new.json`), in the spirit of Go's
//! benchstat: a figure regresses only when it got worse by more than the tolerance *and* the two
//! runs' 95% confidence intervals do not overlap (see [`crate::measure::interval`]). Which way is
//! worse, the unit and what a figure rests on come from the record's type
//! ([`super::typed::step_figures`]), never from its name. Figures resting on too few samples are
//! reported as such, never as regressions. Several runs per side: [`super::compare_runs`].

use serde::Serialize;

use super::typed::step_figures;
use super::Report;
use crate::measure::figures::Spread;
use crate::measure::figures::{Basis, Better, Figure};
use crate::measure::interval::{interval, too_few, NoInterval};
use crate::measure::Unit;

/// What the comparison says about one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse beyond the tolerance and beyond what its samples allow: fails the comparison.
    Regressed,
    /// Better beyond the tolerance and beyond what its samples allow.
    Improved,
    /// Changed by more than the tolerance, but within the noise its samples allow.
    Noise,
    /// Changed by more than the tolerance, but it rests on too few samples to tell.
    TooFewSamples,
    /// One run has no samples for it.
    NoData,
    /// One report has the figure and the other does not (a step that failed or was skipped, a
    /// figure renamed), or has no data where the other rests on enough samples to count: fails
    /// the comparison unless `--allow-missing`.
    Missing,
    /// Several runs per side, and the 95% interval of the change is wider than the tolerance:
    /// the runs could not have detected a change of that size either way.
    Inconclusive,
    /// Within the tolerance.
    Same,
    /// No verdict: neither direction is worse (a configured value, a workload size), or nothing is
    /// known about its noise.
    Info,
}

impl Verdict {
    /// How the verdict is printed.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::Noise => "noise",
            Verdict::TooFewSamples => "too few samples",
            Verdict::NoData => "no data",
            Verdict::Missing => "MISSING",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Same => "ok",
            Verdict::Info => "",
        }
    }

    /// Whether the figure is shown without `--all`: it changed, or lost its data.
    pub fn changed(self) -> bool {
        !matches!(self, Verdict::Same | Verdict::Info)
    }
}

/// One figure of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `step.field.path`.
    pub path: String,
    /// The figure's unit, when its record is typed.
    pub unit: Option<Unit>,
    /// The old value (`None`: no samples).
    pub old: Option<f64>,
    /// The new value (`None`: no samples).
    pub new: Option<f64>,
    /// Relative change (new − old) / |old|; infinite when old is 0 and new is not.
    pub change: Option<f64>,
    /// Which way is better, from the record's type.
    pub better: Option<Better>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, for noise and too few samples: the intervals or the sample counts.
    pub why: Option<String>,
}

impl Row {
    /// A value of this row for people, in its unit (`—` for no samples).
    pub fn display(&self, v: Option<f64>) -> String {
        crate::measure::show(self.unit, v)
    }

    /// The change for people: `+12.5%`, `new`, or empty.
    pub fn change_text(&self) -> String {
        match self.change {
            Some(c) if c.is_infinite() => "new".into(),
            Some(c) => format!("{:+.1}%", c * 100.0),
            None => String::new(),
        }
    }
}

/// How to compare.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How much worse a figure may get (a fraction: 0.1 is 10%) before it can count as a
    /// regression.
    pub tolerance: f64,
    /// Sample statistics resting on fewer samples than this are never regressions.
    pub min_samples: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tolerance: 0.1,
            min_samples: 100,
        }
    }
}

/// The comparison of two reports.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Every figure both reports have, in path order.
    pub rows: Vec<Row>,
    /// What makes the two reports less comparable (different scenarios, parameters, clusters).
    pub warnings: Vec<String>,
}

impl Comparison {
    /// Rows with this verdict.
    pub fn count(&self, v: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == v).count()
    }
}

/// The typed figures of a report's passed steps.
pub(super) fn typed(r: &Report) -> Vec<Figure> {
    r.steps
        .iter()
        .filter(|s| s.status == super::StepStatus::Passed)
        .flat_map(step_figures)
        .collect()
}

/// Compares every figure both reports have.
pub fn compare(old: &Report, new: &Report, opts: Options) -> Comparison {
    let (a, b) = (typed(old), typed(new));
    let mut rows: Vec<Row> = b
        .iter()
        .map(|n| match a.iter().find(|o| o.path == n.path) {
            Some(o) => row(o, n, opts),
            None => missing(n, false),
        })
        .collect();
    // What only the old report has: lost in the new one.
    rows.extend(
        a.iter()
            .filter(|o| !b.iter().any(|n| n.path == o.path))
            .map(|o| missing(o, true)),
    );
    rows.sort_by(|x, y| x.path.cmp(&y.path));
    Comparison {
        rows,
        warnings: warnings(old, new),
    }
}

/// The independent samples a figure rests on, when its basis says.
fn samples(b: &crate::measure::figures::Basis) -> Option<u64> {
    use crate::measure::figures::Basis;
    match b {
        Basis::Quantile { n, .. }
        | Basis::Mean { n, .. }
        | Basis::Share { n, .. }
        | Basis::RateOf { n } => Some(*n),
        _ => None,
    }
}

/// A figure only one report has (`old_only`: the old one).
fn missing(f: &Figure, old_only: bool) -> Row {
    Row {
        path: f.path.clone(),
        unit: f.unit,
        old: if old_only { f.value } else { None },
        new: if old_only { None } else { f.value },
        change: None,
        better: f.better,
        verdict: if f.better.is_some() {
            Verdict::Missing
        } else {
            Verdict::Info
        },
        why: Some(if old_only {
            "absent from the new report".into()
        } else {
            "absent from the old report".into()
        }),
    }
}

/// Why `report` cannot be compared at all: its run did not finish.
pub fn unfinished(report: &Report) -> Option<String> {
    match report.outcome {
        super::Outcome::Passed | super::Outcome::ThresholdsFailed => None,
        other => Some(format!(
            "its run did not finish ({}){}",
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            report
                .error
                .as_ref()
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default()
        )),
    }
}

fn row(o: &Figure, n: &Figure, opts: Options) -> Row {
    let change = match (o.value, n.value) {
        (Some(a), Some(b)) if a == b => Some(0.0),
        (Some(0.0), Some(b)) => Some(f64::INFINITY.copysign(b)),
        (Some(a), Some(b)) => Some((b - a) / a.abs()),
        _ => None,
    };
    // The record types must agree on direction and unit: a renamed or retyped field has none.
    let better = if o.better == n.better && o.unit == n.unit {
        n.better
    } else {
        None
    };
    let (verdict, why) = match (o.value, n.value, change, better) {
        (_, _, _, None) => (Verdict::Info, None),
        (None, None, _, _) => (Verdict::Same, None),
        (None, _, _, _) | (_, None, _, _) => {
            // From data enough to judge to none at all is a loss; from a handful of incidental
            // samples (a backend commit in a step that did not write) it is not.
            let (with, side) = if o.value.is_some() {
                (o, "new")
            } else {
                (n, "old")
            };
            match samples(&with.basis) {
                Some(k) if k >= opts.min_samples => (
                    Verdict::Missing,
                    Some(format!(
                        "no data in the {side} report, where the other has {k} samples"
                    )),
                ),
                _ => (Verdict::NoData, None),
            }
        }
        (Some(a), Some(b), Some(c), Some(better)) => judge(a, b, c, better, o, n, opts),
        _ => (Verdict::Info, None),
    };
    Row {
        path: n.path.clone(),
        unit: n.unit,
        old: o.value,
        new: n.value,
        change,
        better,
        verdict,
        why,
    }
}

fn judge(
    a: f64,
    b: f64,
    change: f64,
    better: Better,
    o: &Figure,
    n: &Figure,
    opts: Options,
) -> (Verdict, Option<String>) {
    let worse = match better {
        Better::Lower => change > opts.tolerance,
        Better::Higher => change < -opts.tolerance,
    };
    let improved = match better {
        Better::Lower => change < -opts.tolerance,
        Better::Higher => change > opts.tolerance,
    };
    if !worse && !improved {
        return (Verdict::Same, None);
    }
    let (ia, ib) = match (
        interval(a, &o.basis, opts.min_samples),
        interval(b, &n.basis, opts.min_samples),
    ) {
        // At least as wide as each run's own second-to-second spread (batch means).
        (Ok(ia), Ok(ib)) => (
            Spread::widen(o.spread, a, ia),
            Spread::widen(n.spread, b, ib),
        ),
        (Err(NoInterval::TooFewSamples(why)), _) => {
            return (Verdict::TooFewSamples, Some(format!("old: {why}")))
        }
        (_, Err(NoInterval::TooFewSamples(why))) => {
            return (Verdict::TooFewSamples, Some(format!("new: {why}")))
        }
        _ => return (Verdict::Info, Some("no noise model for this figure".into())),
    };
    // Apart: every value the new run allows is on the other side of every value the old allows.
    let apart = ib.0 > ia.1 || ib.1 < ia.0;
    if apart {
        return if worse {
            (Verdict::Regressed, None)
        } else {
            (Verdict::Improved, None)
        };
    }
    // Not apart because a side could not be bounded: too few samples to tell, not noise.
    let unbounded = |(lo, hi): (f64, f64)| lo.is_infinite() || hi.is_infinite();
    if unbounded(ia) || unbounded(ib) {
        let (which, basis) = if unbounded(ia) {
            ("old", &o.basis)
        } else {
            ("new", &n.basis)
        };
        let why = match basis {
            Basis::Quantile { q, n, .. } => too_few(*q, *n),
            _ => "unbounded interval".into(),
        };
        return (Verdict::TooFewSamples, Some(format!("{which}: {why}")));
    }
    let unit = n.unit.unwrap_or(Unit::Count);
    let shown =
        |(lo, hi): (f64, f64)| format!("{}..{}", unit.format(Some(lo)), unit.format(Some(hi)));
    let why = format!(
        "95% intervals overlap: old {}, new {}",
        shown(ia),
        shown(ib)
    );
    (Verdict::Noise, Some(why))
}

/// What differs between the runs besides the code or cluster under test.
pub(super) fn warnings(old: &Report, new: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if old.scenario.name != new.scenario.name {
        w.push(format!(
            "the reports come from different scenarios: `{}` and `{}`",
            old.scenario.name, new.scenario.name
        ));
    }
    let keys: std::collections::BTreeSet<&String> =
        old.params.keys().chain(new.params.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| old.params.get(*k) != new.params.get(*k))
        .map(|k| {
            let v = |r: &Report| r.params.get(k).map_or("unset".into(), |v| v.to_string());
            format!("{k} {} → {}", v(old), v(new))
        })
        .collect();
    if !differ.is_empty() {
        w.push(format!("the parameters differ: {}", differ.join(", ")));
    }
    let version = |r: &Report| r.target.as_ref().map(|t| t.etcd_version.clone());
    if version(old) != version(new) {
        w.push(format!(
            "the runs used different etcd versions: {} and {}",
            version(old).unwrap_or_else(|| "?".into()),
            version(new).unwrap_or_else(|| "?".into())
        ));
    }
    let mut untyped: Vec<&str> = [old, new]
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| s.action.is_none() && s.record.is_script_map())
        .map(|s| s.name.as_str())
        .collect();
    untyped.sort_unstable();
    untyped.dedup();
    if !untyped.is_empty() {
        w.push(format!(
            "no record type for step {}: its figures get no verdict (the step's closure does more \
             than call one action, or the report predates typed records); their server view is compared",
            untyped.join(", ")
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(value: f64, better: Better, basis: Basis) -> Figure {
        Figure {
            path: "w.x".into(),
            value: Some(value),
            unit: Some(Unit::Count),
            better: Some(better),
            basis,
            spread: None,
        }
    }

    #[test]
    fn a_run_whose_seconds_disagree_cannot_call_a_small_change() {
        // Thousands of requests a side: their order statistics alone call +15% a regression.
        let dist = |v: f64| {
            let mut r = crate::measure::latency::Recorder::default();
            for i in 0..5000u64 {
                r.record(std::time::Duration::from_micros(
                    (v * 1000.0) as u64 + i % 50,
                ));
            }
            serde_json::to_value(r.summary()).unwrap()
        };
        let q = |v: f64, spread: Option<f64>| Figure {
            spread,
            ..fig(
                v,
                Better::Lower,
                Basis::Quantile {
                    q: 0.5,
                    n: 5000,
                    dist: dist(v),
                },
            )
        };
        let opts = Options::default();
        assert_eq!(
            row(&q(10.0, None), &q(11.5, None), opts).verdict,
            Verdict::Regressed
        );
        // Each run's medians moved by 12% from second to second (a busy box): that much is noise.
        let s = Some(0.12 / 6f64.sqrt());
        let r = row(&q(10.0, s), &q(11.5, s), opts);
        assert_eq!(r.verdict, Verdict::Noise, "{:?}", r.why);
        // A change far beyond that spread is still a regression.
        assert_eq!(
            row(&q(10.0, s), &q(20.0, s), opts).verdict,
            Verdict::Regressed
        );
    }

    #[test]
    fn a_regression_must_beat_tolerance_and_noise() {
        let opts = Options::default();
        let r = |a, b| {
            row(
                &fig(a, Better::Lower, Basis::Events),
                &fig(b, Better::Lower, Basis::Events),
                opts,
            )
        };
        assert_eq!(r(0.0, 3.0).verdict, Verdict::Noise);
        assert_eq!(r(0.0, 20.0).verdict, Verdict::Regressed);
        assert_eq!(r(100.0, 105.0).verdict, Verdict::Same);
        assert_eq!(r(100.0, 40.0).verdict, Verdict::Improved);
        let t = |a, n, b, m| {
            row(
                &fig(a, Better::Higher, Basis::RateOf { n }),
                &fig(b, Better::Higher, Basis::RateOf { n: m }),
                opts,
            )
        };
        assert_eq!(t(1000.0, 10_000, 500.0, 5_000).verdict, Verdict::Regressed);
        assert_eq!(t(1000.0, 20, 500.0, 10).verdict, Verdict::TooFewSamples);
        let mut untyped = fig(1.0, Better::Lower, Basis::Events);
        untyped.better = None;
        assert_eq!(row(&untyped, &untyped, opts).verdict, Verdict::Info);
        // A capacity: its own bracket is its interval.
        let cap =
            |v: f64, upper: f64| fig(v, Better::Higher, Basis::Bracket { upper: Some(upper) });
        assert_eq!(
            row(&cap(5000.0, 5500.0), &cap(4000.0, 4400.0), opts).verdict,
            Verdict::Regressed
        );
        assert_eq!(
            row(&cap(5000.0, 5500.0), &cap(4400.0, 5100.0), opts).verdict,
            Verdict::Noise
        );
        assert_eq!(
            row(&cap(4000.0, 4400.0), &cap(5000.0, 5500.0), opts).verdict,
            Verdict::Improved
        );
        let mut none = fig(1.0, Better::Lower, Basis::Events);
        none.value = None;
        assert_eq!(
            row(&fig(1.0, Better::Lower, Basis::Events), &none, opts).verdict,
            Verdict::NoData
        );
    }
}

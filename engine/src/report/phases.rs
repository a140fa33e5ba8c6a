//! Phases side by side (`report(#{ compare: ["baseline", "slow"] })`): the chosen steps' latency
//! distributions as percentile curves on one log axis (from the HDR histograms the report keeps),
//! their per-second series on shared axes from each step's start, and the ratios written out.

use std::fmt::Write as _;

use super::records::{points, Latencies, Load, PerSecond};
use super::svg::{self, esc, Line};
use super::timeline::rate_points;
use super::{Report, StepReport};
use crate::measure::latency::Distribution;

/// Colours of the steps compared, in order.
const COLORS: [&str; 6] = [
    "#1e88e5", "#e53935", "#43a047", "#8e24aa", "#fb8c00", "#00897b",
];

/// Quantiles drawn as a curve.
const CURVE: [f64; 12] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995,
];

/// One group of steps drawn side by side: its charts and the ratio table, as HTML.
pub fn group(report: &Report, names: &[String]) -> String {
    let steps: Vec<&StepReport> = names
        .iter()
        .filter_map(|n| report.steps.iter().find(|s| &s.name == n))
        .collect();
    let title = names.join(" vs ");
    let mut out = format!(
        r#"<section class="phases" data-compare="{}"><h3>{}</h3><div class="charts">"#,
        esc(&title),
        esc(&title)
    );
    // Percentile curves, one per step.
    let curves: Vec<Line<'_>> = steps
        .iter()
        .zip(COLORS.iter().cycle())
        .filter_map(|(s, c)| {
            let d = Latencies::main(s)?;
            Some(Line {
                label: &s.name,
                color: c,
                points: CURVE
                    .iter()
                    .filter_map(|q| Some((*q, d.quantile(*q)?)))
                    .collect(),
            })
        })
        .collect();
    if !curves.is_empty() {
        out.push_str(&svg::percentiles(
            &format!("{title}: latency by percentile"),
            &curves,
        ));
    }
    // Per-second series from each step's start, on shared axes.
    for (field, what, unit) in [
        (PerSecond::Ok, "requests per second", "per second"),
        (PerSecond::P99, "p99 per second", "ms"),
    ] {
        let lines: Vec<Line<'_>> = steps
            .iter()
            .zip(COLORS.iter().cycle())
            .filter_map(|(s, c)| {
                let series = Load::of(s).series?;
                let points = if field == PerSecond::Ok {
                    rate_points(&series, field, s.duration_ms / 1e3)
                } else {
                    points(&series, field)
                };
                Some(Line {
                    label: &s.name,
                    color: c,
                    points,
                })
            })
            .collect();
        if lines.iter().any(|l| !l.points.is_empty()) {
            out.push_str(&svg::lines(
                &format!("{title}: {what}, from each step's start"),
                "seconds since the step started",
                unit,
                &lines,
                &[],
            ));
        }
    }
    out.push_str("</div>");
    out.push_str(&ratios(&steps));
    out.push_str("</section>");
    out
}

/// The figures of each step and their ratio to the first step's.
fn ratios(steps: &[&StepReport]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let rows: [(&str, &str); 7] = [
        ("p50", "latency p50"),
        ("p90", "latency p90"),
        ("p99", "latency p99"),
        ("p999", "latency p99.9"),
        ("max", "latency max"),
        ("mean", "latency mean"),
        ("throughput", "throughput"),
    ];
    // Each step's distribution and throughput, read once.
    let read: Vec<(Option<Distribution>, Option<f64>)> = steps
        .iter()
        .map(|s| (Latencies::main(s), Load::of(s).throughput))
        .collect();
    let value = |i: usize, k: &str| -> Option<f64> {
        let (d, throughput) = &read[i];
        let d = d.as_ref();
        match k {
            "throughput" => *throughput,
            "p50" => d?.p50,
            "p90" => d?.p90,
            "p99" => d?.p99,
            "p999" => d?.p999,
            "max" => d?.max,
            "mean" => d?.mean,
            _ => None,
        }
    };
    let mut t = String::from(r#"<table class="fig ratios"><thead><tr><th>figure</th>"#);
    for s in steps {
        let _ = write!(t, "<th>{}</th>", esc(&s.name));
    }
    t.push_str("</tr></thead><tbody>");
    for (k, label) in rows {
        let base = value(0, k);
        if (0..steps.len()).all(|i| value(i, k).is_none()) {
            continue;
        }
        let unit = if k == "throughput" {
            crate::measure::Unit::PerSecond
        } else {
            crate::measure::Unit::Ms
        };
        let _ = write!(t, "<tr><td>{label}</td>");
        for i in 0..steps.len() {
            let v = value(i, k);
            let ratio = match (i, base, v) {
                (0, _, _) => String::new(),
                (_, Some(b), Some(v)) if b > 0.0 => format!(" <b>×{:.2}</b>", v / b),
                _ => String::new(),
            };
            let _ = write!(
                t,
                r#"<td class="num">{}{}</td>"#,
                esc(&unit.format(v)),
                ratio
            );
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

//! A self-contained HTML report: verdict, thresholds, and per step the charts a table hides —
//! throughput and p99 over time with the other steps' moments marked (a fault, a defrag), latency
//! percentiles, etcd's own view — plus database size across the run. Inline CSS and SVG only: no
//! network fetches, so it works offline and as a CI artifact.

use minijinja::{AutoEscape, Environment, Value};

use super::compare::{Comparison, Verdict};
use super::records::{points, Capacity, DbSizes, Latencies, Load, PerSecond};
use super::svg::{self, Line, Mark};
use super::{Error, Report, Result, StepReport};
use crate::actions::capacity::Trial;
use crate::measure::latency::Distribution;
use crate::units::{format_quantity, Dimension};

const TEMPLATE: &str = include_str!("templates/report.html.j2");
const COMPARE: &str = include_str!("templates/compare.html.j2");
const CSS: &str = include_str!("templates/report.css");

/// The template environment both pages use.
fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_filter("ms", |v: f64| format_quantity(v, Dimension::Duration));
    env.add_template("report", TEMPLATE)
        .map_err(|e| render_err(&e))?;
    env.add_template("compare", COMPARE)
        .map_err(|e| render_err(&e))?;
    Ok(env)
}

/// Renders the report as one HTML page.
pub fn to_html(report: &Report) -> Result<String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_filter("ms", |v: f64| format_quantity(v, Dimension::Duration));
    env.add_template("report", TEMPLATE)
        .map_err(|e| render_err(&e))?;
    let tmpl = env.get_template("report").map_err(|e| render_err(&e))?;
    let (passed, failed) = report.threshold_counts();
    let steps: Vec<Value> = report.steps.iter().map(|s| step_view(report, s)).collect();
    tmpl.render(minijinja::context! {
        css => safe(CSS.to_string()),
        r => Value::from_serialize(report),
        passed => passed,
        failed => failed,
        verdict => match report.outcome {
            super::Outcome::Passed => "PASSED",
            super::Outcome::ThresholdsFailed => "THRESHOLDS FAILED",
            super::Outcome::ScriptError => "SCENARIO ERROR",
            super::Outcome::InfrastructureError => "INFRASTRUCTURE ERROR",
            super::Outcome::Interrupted => "INTERRUPTED",
        },
        steps => steps,
        overview => overview(report),
        timeline => super::timeline::timeline(report)
            .unwrap_or_default()
            .into_iter()
            .map(safe)
            .collect::<Vec<_>>(),
        phases => report
            .compare_steps
            .iter()
            .map(|g| safe(super::phases::group(report, g)))
            .collect::<Vec<_>>(),
        script => safe(super::tables::SORT_SCRIPT.to_string()),
    })
    .map_err(|e| render_err(&e))
}

/// `scen compare` as a page: the figures table and, for every step both runs have a per-second
/// series for, the two runs overlaid.
pub fn to_compare_html(
    old: &Report,
    new: &Report,
    cmp: &Comparison,
    tolerance: &str,
    all: bool,
) -> Result<String> {
    let env = environment()?;
    let tmpl = env.get_template("compare").map_err(|e| render_err(&e))?;
    let regressed = cmp.count(Verdict::Regressed);
    let series = |r: &Report, step: &str, field: PerSecond| -> Vec<(f64, f64)> {
        r.steps
            .iter()
            .find(|s| s.name == step)
            .and_then(|s| Load::of(s).series)
            .map_or_else(Vec::new, |a| points(&a, field))
    };
    // A figure's verdict in a chart's title: "p99 REGRESSED +31%".
    let verdict_of = |path: String, what: &str| -> String {
        cmp.rows
            .iter()
            .find(|r| r.path == path)
            .map(|r| format!(" — {what} {} {}", r.verdict.label(), r.change_text()))
            .unwrap_or_default()
    };
    let mut charts = Vec::new();
    for s in &new.steps {
        // The two latency distributions as percentile curves on one log axis.
        let dist = |r: &Report| -> Option<Distribution> {
            let step = r.steps.iter().find(|x| x.name == s.name)?;
            Latencies::of(step).latency.filter(|d| d.count > 0)
        };
        if let (Some(a), Some(b)) = (dist(old), dist(new)) {
            let curve = |d: &Distribution| -> Vec<(f64, f64)> {
                [
                    0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
                ]
                .iter()
                .filter_map(|q| Some((*q, d.quantile(*q)?)))
                .collect()
            };
            charts.push(safe(svg::percentiles(
                &format!(
                    "{}: latency by percentile, old and new{}",
                    s.name,
                    verdict_of(format!("{}.latency.p99", s.name), "p99")
                ),
                &[
                    Line {
                        label: "old",
                        color: "#9e9e9e",
                        points: curve(&a),
                    },
                    Line {
                        label: "new",
                        color: "#1e88e5",
                        points: curve(&b),
                    },
                ],
            )));
        }
        for (field, what, unit) in [
            (PerSecond::Ok, "requests per second", "per second"),
            (PerSecond::P99, "p99 per second", "ms"),
        ] {
            let (a, b) = (series(old, &s.name, field), series(new, &s.name, field));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let verdict = if field == PerSecond::Ok {
                verdict_of(format!("{}.throughput", s.name), "throughput")
            } else {
                verdict_of(format!("{}.latency.p99", s.name), "p99")
            };
            charts.push(safe(svg::lines(
                &format!("{}: {what}, old and new{verdict}", s.name),
                "seconds",
                unit,
                &[
                    Line {
                        label: "old",
                        color: "#9e9e9e",
                        points: a,
                    },
                    Line {
                        label: "new",
                        color: "#1e88e5",
                        points: b,
                    },
                ],
                &[],
            )));
        }
    }
    let view: Vec<Value> = cmp
        .rows
        .iter()
        .filter(|r| all || r.verdict.changed())
        .map(|r| {
            let class = match r.verdict {
                Verdict::Regressed => "st-failed",
                Verdict::Improved | Verdict::Same => "st-passed",
                _ => "",
            };
            minijinja::context! {
                path => r.path,
                old => r.display(r.old),
                new => r.display(r.new),
                change => r.change_text(),
                verdict => r.verdict.label(),
                why => r.why,
                class => class,
            }
        })
        .collect();
    tmpl.render(minijinja::context! {
        css => safe(CSS.to_string()),
        old => Value::from_serialize(old),
        new => Value::from_serialize(new),
        rows => view,
        compared => cmp.rows.len(),
        warnings => cmp.warnings,
        all => all,
        regressed => regressed,
        tolerance => tolerance,
        charts => charts,
        outcome => if regressed > 0 { "thresholds_failed" } else { "passed" },
        verdict => if regressed > 0 { format!("{regressed} REGRESSED") } else { "NO REGRESSION".to_string() },
    })
    .map_err(|e| render_err(&e))
}

fn render_err(e: &minijinja::Error) -> Error {
    Error::Render {
        format: "html",
        reason: e.to_string(),
    }
}

use super::timeline::{offset_s, rate_points};

fn step_view(report: &Report, s: &StepReport) -> Value {
    let mut charts: Vec<Value> = Vec::new();
    if let Some(series) = Load::seconds(s) {
        // The other steps that started within this one: spans to mark, from start to end.
        let me = offset_s(report, s).unwrap_or(0.0);
        let marks: Vec<Mark> = report
            .steps
            .iter()
            .filter(|o| o.name != s.name)
            .filter_map(|o| {
                let x = offset_s(report, o)? - me;
                (x > 0.0 && x < s.duration_ms / 1e3).then(|| Mark {
                    x,
                    end: Some(x + o.duration_ms / 1e3),
                    label: o.name.clone(),
                })
            })
            .collect();
        let point = |field: PerSecond| points(&series, field);
        let rate = |field: PerSecond| rate_points(&series, field, s.duration_ms / 1e3);
        charts.push(safe(svg::lines(
            &format!("{}: requests per second", s.name),
            "seconds",
            "per second",
            &[
                Line {
                    label: "ok",
                    color: "#1e88e5",
                    points: rate(PerSecond::Ok),
                },
                Line {
                    label: "errors",
                    color: "#e53935",
                    points: rate(PerSecond::Errors),
                },
            ],
            &marks,
        )));
        charts.push(safe(svg::lines(
            &format!("{}: latency per second", s.name),
            "seconds",
            "ms",
            &[
                Line {
                    label: "p99",
                    color: "#8e24aa",
                    points: point(PerSecond::P99),
                },
                Line {
                    label: "max",
                    color: "#fb8c00",
                    points: point(PerSecond::Max),
                },
            ],
            &marks,
        )));
    }
    if let Some(chart) = capacity_chart(s) {
        charts.push(safe(chart));
    }
    let latencies = Latencies::of(s);
    for (dist, title) in [
        (latencies.latency, "latency percentiles"),
        (latencies.txn_latency, "transaction latency percentiles"),
    ] {
        if let Some(l) = dist.filter(|l| l.count > 0) {
            let values: Vec<(String, f64)> = [
                ("p50", l.p50),
                ("p90", l.p90),
                ("p99", l.p99),
                ("p999", l.p999),
                ("max", l.max),
            ]
            .into_iter()
            .filter_map(|(q, v)| Some((q.to_string(), v?)))
            .collect();
            charts.push(safe(svg::bars(
                &format!("{}: {title}", s.name),
                "ms",
                &values,
                "#43a047",
            )));
        }
    }
    minijinja::context! {
        name => s.name,
        background => s.background,
        status => Value::from_serialize(s.status),
        offset => offset_s(report, s).map_or(String::new(), |o| format!("+{o:.1}s")),
        duration => format_quantity(s.duration_ms, Dimension::Duration),
        error => s.error.as_ref().map(|e| e.message.clone()),
        charts => charts,
        tables => safe(super::tables::record_tables(s)),
    }
}

/// A capacity search as a chart: each trial's achieved rate against its p99 (and p50), the rate
/// that held and the one that failed marked: the knee between them.
fn capacity_chart(s: &StepReport) -> Option<String> {
    let c = Capacity::of(s)?;
    let pts = |field: fn(&Trial) -> Option<f64>| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = c
            .trials
            .iter()
            .filter_map(|t| Some((t.achieved, field(t)?)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let (p99, p50) = (pts(|t| t.p99), pts(|t| t.p50));
    if p99.is_empty() {
        return None;
    }
    // The SLO's limit as a line, when it is one bound on the p99 (`p99 < 25ms`).
    let slo_line: Vec<(f64, f64)> = match (c.p99_limit_ms(), p99.first(), p99.last()) {
        (Some(l), Some(a), Some(b)) => vec![(a.0, l), (b.0, l)],
        _ => Vec::new(),
    };
    // "held (p99 < 25ms)" at the sustained rate, "broke (p99 < 25ms)" at the failed one: the label
    // never reads as if the SLO held where it did not.
    let marks: Vec<Mark> = [(c.sustained_rate, "held"), (c.failed_rate, "broke")]
        .into_iter()
        .filter_map(|(x, verb)| {
            Some(Mark {
                x: x?,
                end: None,
                label: format!("{verb} ({})", c.slo),
            })
        })
        .collect();
    Some(svg::lines(
        &format!("{}: the capacity search, p99 by achieved rate", s.name),
        "requests per second",
        "ms",
        &[
            Line {
                label: "p99",
                color: "#8e24aa",
                points: p99,
            },
            Line {
                label: "p50",
                color: "#1e88e5",
                points: p50,
            },
            Line {
                label: "SLO",
                color: "#e53935",
                points: slo_line,
            },
        ],
        &marks,
    ))
}

/// Database size across the run: every status step's size and in-use size, and each
/// defragmentation's before and after.
fn overview(report: &Report) -> Vec<Value> {
    let mib = |v: Option<f64>| v.map(|b| b / (1024.0 * 1024.0));
    let mut sizes = Vec::new();
    let mut in_use = Vec::new();
    for s in &report.steps {
        let r = DbSizes::of(s);
        if let (Some(a), Some(b)) = (mib(r.db_size_before), mib(r.db_size_after)) {
            sizes.push((format!("{} before", s.name), a));
            sizes.push((format!("{} after", s.name), b));
        } else if let Some(v) = mib(r.db_size) {
            sizes.push((s.name.clone(), v));
            if let Some(u) = mib(r.db_size_in_use) {
                in_use.push((s.name.clone(), u));
            }
        }
    }
    let mut out = Vec::new();
    if !sizes.is_empty() {
        out.push(safe(svg::bars(
            "database size by step (MiB)",
            "MiB",
            &sizes,
            "#3949ab",
        )));
    }
    if !in_use.is_empty() {
        out.push(safe(svg::bars(
            "database size in use (MiB)",
            "MiB",
            &in_use,
            "#00897b",
        )));
    }
    out
}

fn safe(s: String) -> Value {
    Value::from_safe_string(s)
}

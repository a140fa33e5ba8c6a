//! The run as a whole, at the top of the HTML report: steps as bars on one time axis (background
//! steps in lanes of their own), faults, maintenance and failed thresholds marked; under it, on
//! the same axis, the load's requests per second and p99 across all steps and etcd's own view
//! (WAL fsync and backend commit p99, database size, leader) sampled during the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::records::{points, Fault, Load, PerSecond};
use super::svg::{self, esc, Line, Mark, LEFT, RIGHT, W};
use super::{Report, StepReport};
use crate::actions::registry::RecordType;
use crate::measure::book::Second;

/// What a step does to the cluster, for marking: a fault or maintenance.
pub fn kind(s: &StepReport) -> Option<&'static str> {
    match RecordType::of_action(s.action.as_deref()?)? {
        RecordType::Fault | RecordType::Network => Some("fault"),
        RecordType::Compact
        | RecordType::Defrag
        | RecordType::Disarm
        | RecordType::Snapshot
        | RecordType::Restore => Some("maintenance"),
        _ => None,
    }
}

/// Seconds from the run's start to a step's start.
pub fn offset_s(report: &Report, s: &StepReport) -> Option<f64> {
    let start = s.started_at?;
    Some((start - report.started_at).num_milliseconds() as f64 / 1e3)
}

/// A rate field (`ok`, `errors`) of a per-second series with its last, partial second scaled to
/// the part the step covered (dropped under a fifth of a second): `(t, per second)`.
pub fn rate_points(series: &[Second], f: PerSecond, span_s: f64) -> Vec<(f64, f64)> {
    series
        .iter()
        .filter_map(|p| {
            let t = p.t as f64;
            let v = f.of(p)?;
            let covered = (span_s - t).clamp(0.0, 1.0);
            if span_s > 0.0 && covered < 0.2 {
                return None;
            }
            let covered = if span_s > 0.0 { covered } else { 1.0 };
            Some((t, v / covered))
        })
        .collect()
}

/// The run's length in seconds: its wall time, or the last step's end.
fn length(report: &Report) -> f64 {
    let ends = report
        .steps
        .iter()
        .filter_map(|s| Some(offset_s(report, s)? + s.duration_ms / 1e3));
    ends.fold(report.duration_ms / 1e3, f64::max).max(1.0)
}

/// The lane of each started step: 0 for the steps that run in turn, one more per background step.
fn lanes(report: &Report) -> Vec<(usize, &StepReport, f64)> {
    let mut next = 1;
    let mut out = Vec::new();
    for s in &report.steps {
        let Some(off) = offset_s(report, s) else {
            continue;
        };
        let lane = if s.background {
            next += 1;
            next - 1
        } else {
            0
        };
        out.push((lane, s, off));
    }
    out
}

/// A fault step that ends another's window (`heal`, `resume`, a `slow_disk` of 0), and is not
/// marked itself when it did.
fn undoing(s: &StepReport) -> bool {
    Fault::of(s).is_some_and(|f| {
        matches!(f.action.as_str(), "heal" | "resume")
            || (f.action == "slow_disk" && f.delay_ms == Some(0.0))
    })
}

/// Faults and maintenance as marks (spans from start to end), and failed thresholds at the end of
/// the last step they read.
fn marks(report: &Report) -> Vec<Mark> {
    let mut out = Vec::new();
    // A fault is shaded from its injection to the step that undid it (the run's end when none
    // did); the steps that undo one are part of that span, not marks of their own.
    let windows = super::outage::fault_windows(report);
    let run_end = length(report);
    for (i, s) in report.steps.iter().enumerate() {
        let (Some(k), Some(off)) = (kind(s), offset_s(report, s)) else {
            continue;
        };
        let end = match windows.iter().find(|w| w.step == i) {
            Some(w) => w.end.unwrap_or(run_end),
            None if k == "fault" && undoing(s) => continue,
            None => off + s.duration_ms / 1e3,
        };
        let label = match windows.iter().find(|w| w.step == i) {
            Some(w) if w.end.is_none() => format!("{} ({k}, not undone)", s.name),
            Some(_) if end > off + s.duration_ms / 1e3 + 0.05 => {
                format!("{} ({k}, until undone +{:.1}s)", s.name, end)
            }
            _ => format!("{} ({k})", s.name),
        };
        out.push(Mark {
            x: off,
            end: Some(end),
            label,
        });
    }
    for t in report.thresholds.iter().filter(|t| t.status.is_failure()) {
        let at = crate::threshold::Threshold::parse(&t.expression, false)
            .ok()
            .and_then(|th| {
                th.steps()
                    .iter()
                    .filter_map(|n| {
                        let s = report.steps.iter().find(|s| &s.name == n)?;
                        Some(offset_s(report, s)? + s.duration_ms / 1e3)
                    })
                    .reduce(f64::max)
            });
        if let Some(x) = at {
            out.push(Mark {
                x,
                end: None,
                label: format!("✗ {}", t.expression),
            });
        }
    }
    out
}

/// `name` cut to `width` (viewBox units) with an ellipsis; `None` when not even two characters
/// fit.
fn fit(name: &str, width: f64) -> Option<String> {
    let room = (width / svg::CHAR_W).floor().max(0.0) as usize;
    let n = name.chars().count();
    if n <= room {
        Some(name.to_string())
    } else if room >= 2 {
        Some(name.chars().take(room - 1).chain(['…']).collect())
    } else {
        None
    }
}

/// The steps as bars in lanes on the run's time axis, with faults, maintenance and failed
/// thresholds marked; `data-step` and `data-lane` on each bar.
fn lanes_svg(report: &Report, length: f64) -> String {
    let placed = lanes(report);
    let n = placed.iter().map(|(l, _, _)| *l).max().unwrap_or(0) + 1;
    let (top, row) = (22.0, 24.0);
    let h = top + row * n as f64 + 26.0;
    let px = |t: f64| LEFT + t / length * (W - LEFT - RIGHT);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart wide timeline" viewBox="0 0 {W} {h}" role="img" aria-label="the run's steps over time"><title>the run's steps over time</title><text x="{LEFT}" y="15" class="ct">steps over time (background steps in their own lanes)</text>"#
    );
    for lane in 0..n {
        let y = top + row * lane as f64;
        let label = if lane == 0 { "steps" } else { "bg" };
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" class="tk" text-anchor="end">{label}</text>"#,
            LEFT - 4.0,
            y + 15.0
        );
    }
    for (lane, step, off) in &placed {
        let y = top + row * *lane as f64;
        let (x0, x1) = (
            px(*off),
            px(off + step.duration_ms / 1e3).max(px(*off) + 2.0),
        );
        let status = serde_json::to_value(step.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let class = kind(step).unwrap_or("step");
        // The label fits its bar (bars in a lane never overlap, so neither do labels): cut
        // with an ellipsis, or left out; the bar's tooltip has the whole name.
        let label = fit(&step.name, x1 - x0 - 6.0)
            .map(|l| {
                format!(
                    r#"<text x="{:.1}" y="{:.1}" class="bl">{}</text>"#,
                    x0 + 3.0,
                    y + 15.5,
                    esc(&l)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<g data-step="{name}" data-lane="{lane}"><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" class="bar {class} bar-{status}"><title>{name}: {status}, +{off:.1}s for {dur}</title></rect>{label}</g>"#,
            y + 3.0,
            x1 - x0,
            row - 6.0,
            name = esc(&step.name),
            dur =
                crate::units::format_quantity(step.duration_ms, crate::units::Dimension::Duration),
        );
    }
    let bottom = top + row * n as f64;
    for m in marks(report) {
        let x = px(m.x);
        let class = if m.label.starts_with('✗') {
            "fail"
        } else {
            "mark"
        };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{bottom}" class="{class}"><title>{}</title></line>"#,
            esc(&m.label)
        );
    }
    for t in svg::nice_ticks(0.0, length) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tk" text-anchor="middle">{t}s</text>"#,
            px(t),
            bottom + 14.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// Points of a chart line: `(seconds, value)`.
type Points = Vec<(f64, f64)>;

/// Requests per second (all steps together: ok, errors) and p99 (the slowest step in each
/// second) across the run, from the steps' per-second series.
fn load(report: &Report) -> (Points, Points, Points) {
    let mut bins: BTreeMap<i64, (f64, f64, Option<f64>)> = BTreeMap::new();
    for s in &report.steps {
        let (Some(off), Some(series)) = (offset_s(report, s), Load::seconds(s)) else {
            continue;
        };
        let span = s.duration_ms / 1e3;
        let ok = rate_points(&series, PerSecond::Ok, span);
        let errors = rate_points(&series, PerSecond::Errors, span);
        for (t, v) in ok {
            bins.entry((off + t).floor() as i64).or_default().0 += v;
        }
        for (t, v) in errors {
            bins.entry((off + t).floor() as i64).or_default().1 += v;
        }
        for (t, p99) in points(&series, PerSecond::P99) {
            {
                let b = bins.entry((off + t).floor() as i64).or_default();
                b.2 = Some(b.2.map_or(p99, |x: f64| x.max(p99)));
            }
        }
    }
    let mid = |k: i64| k as f64 + 0.5;
    (
        bins.iter().map(|(k, b)| (mid(*k), b.0)).collect(),
        bins.iter().map(|(k, b)| (mid(*k), b.1)).collect(),
        bins.iter()
            .filter_map(|(k, b)| Some((mid(*k), b.2?)))
            .collect(),
    )
}

/// The timeline: the lanes, then the charts on the same time axis. `None` when no step ran.
pub fn timeline(report: &Report) -> Option<Vec<String>> {
    if report.steps.iter().all(|s| s.started_at.is_none()) {
        return None;
    }
    let length = length(report);
    let range = Some((0.0, length));
    let marks = marks(report);
    let mut out = vec![lanes_svg(report, length)];
    let (ok, errors, p99) = load(report);
    if !ok.is_empty() {
        out.push(svg::chart(
            "the load: requests per second, all steps",
            "seconds since the run started",
            "per second",
            &[
                Line {
                    label: "ok",
                    color: "#1e88e5",
                    points: ok,
                },
                Line {
                    label: "errors",
                    color: "#e53935",
                    points: errors.into_iter().filter(|(_, v)| *v > 0.0).collect(),
                },
            ],
            &marks,
            range,
            160.0,
        ));
        out.push(svg::chart(
            "the load: p99 per second (slowest step)",
            "seconds since the run started",
            "ms",
            &[Line {
                label: "p99",
                color: "#8e24aa",
                points: p99,
            }],
            &marks,
            range,
            160.0,
        ));
    }
    let tl = &report.server_timeline;
    if !tl.is_empty() {
        let pts = |f: fn(&crate::actions::timeline::ServerPoint) -> Option<f64>| {
            tl.iter()
                .filter_map(|p| Some((p.t, f(p)?)))
                .collect::<Vec<_>>()
        };
        // Leader changes as marks.
        let mut leader_marks: Vec<Mark> = Vec::new();
        for w in tl.windows(2) {
            if w[0].leader != w[1].leader {
                leader_marks.push(Mark {
                    x: w[1].t,
                    end: None,
                    label: match &w[1].leader {
                        Some(l) => format!("leader → {l}"),
                        None => "no leader".into(),
                    },
                });
            }
        }
        let mut etcd_marks: Vec<Mark> = marks
            .iter()
            .map(|m| Mark {
                x: m.x,
                end: m.end,
                label: m.label.clone(),
            })
            .collect();
        etcd_marks.extend(leader_marks);
        out.push(svg::chart(
            "etcd: WAL fsync and backend commit p99 (every 2 s)",
            "seconds since the run started",
            "ms",
            &[
                Line {
                    label: "WAL fsync p99",
                    color: "#00897b",
                    points: pts(|p| p.wal_fsync_p99),
                },
                Line {
                    label: "backend commit p99",
                    color: "#fb8c00",
                    points: pts(|p| p.backend_commit_p99),
                },
            ],
            &etcd_marks,
            range,
            160.0,
        ));
        out.push(svg::chart(
            "etcd: database size",
            "seconds since the run started",
            "MiB",
            &[Line {
                label: "db size",
                color: "#3949ab",
                points: pts(|p| p.db_size.map(|b| b / (1024.0 * 1024.0))),
            }],
            &marks,
            range,
            160.0,
        ));
    }
    Some(out)
}

//! Faults as the clients saw them: each fault's window (from its injection to the step that undid
//! it) and, from the per-second series of a load that ran across it, how long the load took to be
//! back to 90% of its intended rate with p99 within twice its pre-fault level (a second's p99 on a
//! shared machine moves that much by itself), and what it lost meanwhile.

use super::records::{Fault, Load};
use super::{Report, StepReport};

/// Share of the intended rate a second must complete to count as recovered.
pub const RECOVERED_RATE: f64 = 0.9;
/// Consecutive good seconds that end an outage (fewer when the load ends first).
pub const HELD_SECONDS: usize = 3;
/// How far over the worst pre-fault second a recovered second's p99 may be: a second's p99 on a
/// shared machine moves by that much without any fault.
pub const P99_SLACK: f64 = 2.0;

pub use crate::actions::fault::ClientOutage;

/// A fault step and when it was undone, in seconds since the run started.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    /// Index of the fault's step in the report.
    pub step: usize,
    /// The fault's injection (its step's start).
    pub start: f64,
    /// The end of the step that undid it; `None`: never undone in this run. A `restart` undoes
    /// itself: its window is its own step.
    pub end: Option<f64>,
}

/// Whether the fault `later` (a later step's) undoes the fault `fault`.
fn undoes(fault: &Fault, later: &Fault) -> bool {
    let same = fault.member == later.member;
    match fault.action.as_str() {
        "partition" | "link" => later.action == "heal",
        "kill" => later.action == "restart" && same,
        "pause" => later.action == "resume" && same,
        "slow_disk" => later.action == "slow_disk" && same && later.delay_ms == Some(0.0),
        _ => false,
    }
}

/// Every fault's window, in step order. Undoing steps (`heal`, `resume`, a `slow_disk` of 0)
/// start none; a `slow_disk` with a delay, `kill`, `pause`, `partition` and `link` do.
pub fn fault_windows(report: &Report) -> Vec<FaultWindow> {
    let start_of = |s: &StepReport| super::timeline::offset_s(report, s);
    let mut out = Vec::new();
    for (i, s) in report.steps.iter().enumerate() {
        let (Some(f), Some(start)) = (Fault::of(s), start_of(s)) else {
            continue;
        };
        let starts = match f.action.as_str() {
            "partition" | "link" | "kill" | "pause" => true,
            "slow_disk" => f.delay_ms != Some(0.0),
            "restart" => {
                out.push(FaultWindow {
                    step: i,
                    start,
                    end: Some(start + s.duration_ms / 1e3),
                });
                false
            }
            _ => false,
        };
        if !starts {
            continue;
        }
        let end = report.steps[i + 1..].iter().find_map(|l| {
            let lf = Fault::of(l)?;
            undoes(&f, &lf).then(|| Some(start_of(l)? + l.duration_ms / 1e3))?
        });
        out.push(FaultWindow {
            step: i,
            start,
            end,
        });
    }
    out
}

/// One second of a load's series, rates scaled to the part of the second the load covered.
struct Second {
    /// Start, seconds since the run started.
    at: f64,
    ok: f64,
    errors: f64,
    p99: Option<f64>,
    /// The part of the second the load covered (0..1].
    covered: f64,
}

/// A load's per-second series on the run's clock.
fn seconds(report: &Report, s: &StepReport) -> Option<Vec<Second>> {
    let off = super::timeline::offset_s(report, s)?;
    let span = s.duration_ms / 1e3;
    let series = Load::seconds(s)?;
    let out: Vec<Second> = series
        .iter()
        .filter_map(|p| {
            let t = p.t as f64;
            let covered = (span - t).clamp(0.0, 1.0);
            (covered >= 0.2).then_some(Second {
                at: off + t,
                ok: p.ok as f64,
                errors: p.errors as f64,
                p99: p.p99,
                covered,
            })
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// The outage of the fault `w` as the load `load` saw it; `None` when the load has neither a
/// target rate nor a second before the fault to measure recovery against.
pub fn measure(report: &Report, w: &FaultWindow, load: &StepReport) -> Option<ClientOutage> {
    let secs = seconds(report, load)?;
    let before: Vec<&Second> = secs.iter().filter(|s| s.at + 1.0 <= w.start).collect();
    let settled: Vec<&Second> = if before.len() > 1 {
        before[1..].to_vec()
    } else {
        before.clone()
    };
    let pre_fault_p99 = settled.iter().filter_map(|s| s.p99).reduce(f64::max);
    let target = Load::of(load).target_rate;
    let (intended, from) = match target {
        Some(t) if t > 0.0 => (t, "target_rate"),
        _ => {
            let mut rates: Vec<f64> = settled.iter().map(|s| s.ok / s.covered).collect();
            rates.sort_by(f64::total_cmp);
            let median = *rates.get(rates.len() / 2)?;
            (median, "pre_fault")
        }
    };
    let good = |s: &Second| {
        s.ok / s.covered >= RECOVERED_RATE * intended
            && match (s.p99, pre_fault_p99) {
                (Some(p), Some(limit)) => p <= P99_SLACK * limit,
                (None, _) => false,
                (Some(_), None) => true,
            }
    };
    let during: Vec<&Second> = secs.iter().filter(|s| s.at + 1.0 > w.start).collect();
    let recovered = (0..during.len()).find(|&i| {
        let held = &during[i..during.len().min(i + HELD_SECONDS)];
        held.iter().all(|s| good(s))
    });
    let window = &during[..recovered.unwrap_or(during.len())];
    let load_end = super::timeline::offset_s(report, load)? + load.duration_ms / 1e3;
    let window_end = match recovered {
        Some(i) => during[i].at.max(w.start),
        None => load_end.max(w.start),
    };
    let window_s = window_end - w.start;
    let completed: f64 = window.iter().map(|s| s.ok).sum();
    let errors: f64 = window.iter().map(|s| s.errors).sum();
    let covered: f64 = window.iter().map(|s| s.covered).sum();
    Some(ClientOutage {
        load: load.name.clone(),
        outage_ms: recovered.map(|_| window_s * 1e3),
        fault_ms: w.end.map(|e| (e - w.start).max(0.0) * 1e3),
        window_ms: window_s * 1e3,
        errors: errors as u64,
        completed: completed as u64,
        degraded_throughput: (covered > 0.0).then(|| completed / covered),
        throughput_ratio: (covered > 0.0).then(|| (completed / (intended * covered)).min(1.0)),
        worst_p99_ms: window.iter().filter_map(|s| s.p99).reduce(f64::max),
        intended_rate: intended,
        intended_from: from.into(),
        pre_fault_p99_ms: pre_fault_p99,
        resolution_ms: 1000.0,
    })
}

/// The busiest load (most requests) whose run covers the moment `at`.
fn load_at(report: &Report, at: f64, fault: usize) -> Option<&StepReport> {
    report
        .steps
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            *i != fault
                && super::timeline::offset_s(report, s)
                    .is_some_and(|o| o <= at && at < o + s.duration_ms / 1e3)
        })
        .filter_map(|(_, s)| {
            let load = Load::of(s);
            load.series
                .is_some()
                .then(|| (s, load.ops.unwrap_or(0.0) as u64))
        })
        .max_by_key(|(_, ops)| *ops)
        .map(|(s, _)| s)
}

/// Fills each fault step's `outage` from the load that ran across it, once the run's steps have
/// finished (a load outlives the fault it measures).
pub fn attach(report: &mut Report) {
    let found: Vec<(usize, ClientOutage)> = fault_windows(report)
        .iter()
        .filter_map(|w| {
            let load = load_at(report, w.start, w.step)?;
            Some((w.step, measure(report, w, load)?))
        })
        .collect();
    for (i, o) in found {
        if let Ok(v) = serde_json::to_value(&o) {
            report.steps[i].record.set_added("outage", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Record;
    use serde_json::{json, Value};

    /// A run with a 20 s open-loop load at 100/s from t = 0 and a partition from 5 s healed at
    /// 10 s; `series` gives each second's (ok, errors, p99).
    fn run(series: &[(u64, u64, f64)], closed: bool) -> Report {
        let points: Vec<Value> = series
            .iter()
            .enumerate()
            .map(|(t, (ok, e, p))| json!({"t": t, "ok": ok, "errors": e, "p99": p, "max": p}))
            .collect();
        let at = |s: f64| format!("2026-01-01T00:00:{:06.3}Z", s);
        let target = if closed { json!(null) } else { json!(100.0) };
        serde_json::from_value(json!({
            "schema_version": 2, "scen_version": "0", "run_id": "r",
            "scenario": { "name": "s", "description": "", "file": "s.rhai", "sha256": "" },
            "params": {}, "param_sources": {}, "target": null,
            "started_at": at(0.0), "finished_at": at(20.0), "duration_ms": 20000.0,
            "outcome": "passed", "exit_code": 0, "stopped_early": null,
            "baseline": null, "error": null, "thresholds": [], "server_timeline": [],
            "compare_steps": [], "outputs": [],
            "steps": [
                {"name": "load", "background": true, "status": "passed", "started_at": at(0.0),
                 "duration_ms": series.len() as f64 * 1000.0, "error": null, "action": "etcd::stress",
                 "record": {"ops": 2000, "target_rate": target, "series": points}},
                {"name": "cut", "background": false, "status": "passed", "started_at": at(5.0),
                 "duration_ms": 500.0, "error": null, "action": "fault::partition",
                 "record": {"action": "partition"}},
                {"name": "heal", "background": false, "status": "passed", "started_at": at(10.0),
                 "duration_ms": 200.0, "error": null, "action": "fault::heal",
                 "record": {"action": "heal"}},
            ]
        }))
        .unwrap()
    }

    fn steady_then(bad: usize, then_good: usize) -> Vec<(u64, u64, f64)> {
        let mut s = vec![(100, 0, 5.0); 5];
        s.extend(std::iter::repeat_n((3, 9, 2000.0), bad));
        s.extend(std::iter::repeat_n((100, 0, 4.0), then_good));
        s
    }

    #[test]
    fn the_outage_lasts_until_the_rate_and_p99_are_back_and_held() {
        // Degraded for 8 s from the fault (5 s), although the heal came at 10.2 s.
        let mut r = run(&steady_then(8, 7), false);
        attach(&mut r);
        let o: ClientOutage =
            serde_json::from_value(r.steps[1].record.to_value()["outage"].clone()).unwrap();
        assert_eq!(o.load, "load");
        assert_eq!(o.outage_ms, Some(8000.0));
        assert_eq!(o.fault_ms.map(f64::round), Some(5200.0));
        assert_eq!((o.errors, o.completed), (72, 24));
        assert_eq!(o.throughput_ratio, Some(0.03));
        assert_eq!(o.worst_p99_ms, Some(2000.0));
        assert_eq!(o.intended_from, "target_rate");
        assert_eq!(o.pre_fault_p99_ms, Some(5.0));
        assert!(
            r.steps[2].record.field("outage").is_none(),
            "heal starts no window"
        );
    }

    #[test]
    fn one_good_second_in_the_middle_does_not_end_the_outage() {
        let mut s = steady_then(2, 0);
        s.push((100, 0, 4.0));
        s.extend([(3, 9, 2000.0), (3, 9, 2000.0)]);
        s.extend(std::iter::repeat_n((100, 0, 4.0), 5));
        let mut r = run(&s, false);
        attach(&mut r);
        assert_eq!(
            r.steps[1].record.to_value()["outage"]["outage_ms"],
            json!(5000.0)
        );
    }

    #[test]
    fn p99_above_the_pre_fault_level_is_not_recovered_though_the_rate_is() {
        let mut s = vec![(100, 0, 5.0); 5];
        s.extend(std::iter::repeat_n((100, 0, 50.0), 4));
        s.extend(std::iter::repeat_n((100, 0, 5.0), 4));
        let mut r = run(&s, false);
        attach(&mut r);
        assert_eq!(
            r.steps[1].record.to_value()["outage"]["outage_ms"],
            json!(4000.0)
        );
    }

    #[test]
    fn a_load_that_never_recovers_has_no_outage_figure_only_its_window() {
        let mut r = run(&steady_then(6, 0), false);
        attach(&mut r);
        let o = &r.steps[1].record.to_value()["outage"];
        assert_eq!(o["outage_ms"], json!(null));
        assert_eq!(o["window_ms"], json!(6000.0));
    }

    #[test]
    fn a_closed_loop_is_measured_against_its_pre_fault_rate() {
        let mut s = vec![
            (400, 0, 5.0),
            (200, 0, 5.0),
            (210, 0, 5.0),
            (190, 0, 5.0),
            (200, 0, 5.0),
        ];
        s.extend([
            (100, 3, 90.0),
            (170, 0, 5.0),
            (200, 0, 5.0),
            (200, 0, 5.0),
            (200, 0, 5.0),
        ]);
        let mut r = run(&s, true);
        attach(&mut r);
        let o = &r.steps[1].record.to_value()["outage"];
        assert_eq!(o["intended_from"], json!("pre_fault"));
        assert_eq!(o["intended_rate"], json!(200.0));
        // 170 < 90% of 200: the second after the dip still counts.
        assert_eq!(o["outage_ms"], json!(2000.0));
    }

    #[test]
    fn a_fault_the_clients_did_not_notice_has_no_outage() {
        let mut r = run(&vec![(100, 0, 5.0); 15], false);
        attach(&mut r);
        assert_eq!(
            r.steps[1].record.to_value()["outage"]["outage_ms"],
            json!(0.0)
        );
        assert_eq!(r.steps[1].record.to_value()["outage"]["errors"], json!(0));
    }

    #[test]
    fn windows_pair_each_fault_with_what_undid_it() {
        let mut r = run(&steady_then(1, 1), false);
        r.steps[1].record = Record::of(
            Some("fault::kill"),
            json!({"action": "kill", "member": "m1"}),
        );
        r.steps[1].action = Some("fault::kill".into());
        r.steps[2].record = Record::of(
            Some("fault::restart"),
            json!({"action": "restart", "member": "m2"}),
        );
        r.steps[2].action = Some("fault::restart".into());
        let w = fault_windows(&r);
        assert_eq!(
            w.len(),
            2,
            "the restart of another member is a window of its own"
        );
        assert_eq!(w[0].end, None, "m1 was never restarted");
        r.steps[2].record = Record::of(
            Some("fault::restart"),
            json!({"action": "restart", "member": "m1"}),
        );
        let w = fault_windows(&r);
        assert_eq!(w[0].end.map(|e| (e * 10.0).round()), Some(102.0));
    }
}

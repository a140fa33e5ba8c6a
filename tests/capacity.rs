//! End-to-end: `etcd::capacity` against real etcd, with small budgets.

mod common;

use common::*;

#[test]
fn the_search_brackets_the_knee_and_an_impossible_slo_passes_no_rate() {
    let r = run(&fixture("capacity-small.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let c = &step(&report, "healthy")["record"];
    let trials = c["trials"].as_array().unwrap();
    let sustained = c["sustained_rate"].as_f64().unwrap();
    // Every passed trial is at or below the answer (or was refuted by its repeat), every failed
    // one above it.
    let refuted = |rate: f64| {
        trials
            .iter()
            .any(|t| t["repeat"] == true && t["passed"] == false && t["rate"] == rate)
    };
    // A failed trial at or below the answer was tried again (the failed end is rechecked) and
    // held then.
    let held_again = |rate: f64| {
        trials
            .iter()
            .any(|t| t["repeat"] == true && t["passed"] == true && t["rate"] == rate)
    };
    for t in trials {
        let rate = t["rate"].as_f64().unwrap();
        if t["passed"] == true {
            assert!(rate <= sustained || refuted(rate), "{t}");
        } else {
            assert!(rate > sustained || held_again(rate), "{t}");
            assert!(t["failed_on"].is_string(), "{t}");
        }
        assert!(
            !t["wal_fsync_p99"].is_null(),
            "each trial has etcd's own view: {t}"
        );
    }
    // The answer was run twice before it was trusted, when the budget left room.
    match c["confirmed"].as_bool() {
        Some(true) => {
            // The repeat at the answer held (the failed end may have been rechecked after it).
            assert!(held_again(sustained), "{c}");
        }
        Some(false) => assert!(trials.iter().any(|t| t["repeat"] == true)),
        // Not confirmed: no repeat confirmed the answer. A repeat at it ran only as the recheck
        // of a failed end (a first trial at that rate failed, the repeat held and moved the
        // answer up, and no budget was left to run it once more).
        None => {
            let repeated = trials
                .iter()
                .any(|t| t["repeat"] == true && t["rate"] == sustained);
            let failed_first = trials
                .iter()
                .any(|t| t["repeat"] == false && t["passed"] == false && t["rate"] == sustained);
            assert!(!repeated || failed_first, "{c}");
        }
    }
    match c["failed_rate"].as_f64() {
        Some(failed) => {
            assert!(failed > sustained);
            let bracket = (failed - sustained) / sustained;
            assert!((c["bracket"].as_f64().unwrap() - bracket).abs() < 1e-9);
            // Converged within the precision, or said it ran out of budget.
            assert_eq!(c["converged"], bracket <= 0.25, "{c}");
            assert!(c["limited_by"].is_string(), "{c}");
        }
        None => assert_eq!(sustained, 32000.0, "nothing failed: the highest rate held"),
    }
    assert!(c["compacted"] == true && c["defragmented"] == true);
    assert!(c["db_size_after"].as_f64().unwrap() > 0.0);
    // The HTML report draws the search: p99 and p50 by achieved rate, the held rate marked.
    let html = r.dir.path().join("r.html");
    scen_ok(&[
        "report".as_ref(),
        "render".as_ref(),
        r.dir.path().join("r.json").as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    let text = std::fs::read_to_string(&html).unwrap();
    let doc = html_doc(&text);
    let chart = doc
        .descendants()
        .find(|n| {
            n.attribute("aria-label")
                .is_some_and(|l| l.contains("the capacity search"))
        })
        .expect("a capacity chart");
    assert_eq!(
        chart
            .descendants()
            .filter(|n| n.tag_name().name() == "polyline")
            .count(),
        3,
        "p99, p50 and the SLO's limit"
    );
    assert!(chart
        .descendants()
        .filter_map(|n| n.text())
        .any(|t| t.starts_with("held (p99 < 25ms)")));

    // No rate can hold p99 under a microsecond: "no rate passed", a threshold failure (exit 1).
    let r = run(&fixture("capacity-small.rhai"), &["--set", "slo=p99 < 1us"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    let c = &step(&report, "healthy")["record"];
    assert!(c["sustained_rate"].is_null(), "{c}");
    // The search went below `from` (250/s), halving, before it said no rate held.
    let rates: Vec<f64> = c["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rate"].as_f64().unwrap())
        .collect();
    assert!(rates.len() >= 2 && rates[0] == 250.0, "{rates:?}");
    for w in rates.windows(2) {
        assert_eq!(w[1], w[0] / 2.0, "{rates:?}");
    }
    assert_eq!(c["failed_rate"].as_f64(), rates.last().copied());
    assert_eq!(c["limited_by"], "latency");
    assert_eq!(
        threshold(&report, "healthy.sustained_rate > 0/s")["status"],
        "no_data"
    );
}

#[test]
fn a_slow_disk_lowers_the_sustained_rate() {
    let r = run(
        &fixture("capacity-small.rhai"),
        &[
            "--set",
            "compare=true",
            "--set",
            "delay=10ms",
            "--set",
            "slo=p99 < 50ms",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let rate = |s: &str| step(&report, s)["record"]["sustained_rate"].as_f64();
    assert!(
        rate("slowed").unwrap_or(0.0) < rate("healthy").unwrap(),
        "{:?} {:?}",
        rate("slowed"),
        rate("healthy")
    );
}

#[test]
fn the_shipped_capacity_scenario_runs_small() {
    let r = run(
        &root().join("scenarios/capacity.rhai"),
        &[
            "--set",
            "step_duration=1s",
            "--set",
            "budget=20s",
            "--set",
            "precision=50%",
            "--set",
            "from=2000",
            "--set",
            "prefill_keys=2000",
        ],
    );
    assert!(matches!(r.code, 0 | 1), "{}", r.stderr);
    let report = r.report.unwrap();
    let c = &step(&report, "capacity")["record"];
    // The search ran on a store of a stated size, and the record says what it held.
    let store = &c["store"];
    assert_eq!(store["prefilled_keys"], 2000, "{store}");
    assert_eq!(store["prefilled_bytes"], 2000 * 1024, "{store}");
    assert!(store["keys"].as_u64().unwrap() >= 2000, "{store}");
    // (The backend file grows in steps and commits in batches: about the prefill's size.)
    assert!(
        store["db_size"].as_f64().unwrap() >= 2000.0 * 1024.0 / 2.0,
        "the backend holds the prefill: {store}"
    );
    // The answer may lie below `from` on a busy machine, and the repeat may refute the rate that
    // held once (after overloaded trials, etcd is slower for a while): then no rate held for
    // sure, and the record says which trial refuted it.
    match c["sustained_rate"].as_f64() {
        Some(sustained) => {
            assert!(
                c["failed_rate"].as_f64().is_none_or(|f| f > sustained),
                "{c}"
            );
            assert_eq!(
                threshold(&report, "capacity.sustained_rate > 0/s")["status"],
                "passed"
            );
        }
        None => {
            // Nothing held, or what held was refuted by its repeat and every trial after that
            // searched below it.
            let trials = c["trials"].as_array().unwrap();
            if trials.iter().any(|t| t["passed"] == true) {
                assert!(c["refuted"].as_u64().unwrap() >= 1, "{c}");
                let first = trials
                    .iter()
                    .position(|t| t["repeat"] == true && t["passed"] == false)
                    .unwrap();
                let refuted = trials[first]["rate"].as_f64().unwrap();
                assert!(
                    trials[first + 1..]
                        .iter()
                        .all(|t| t["rate"].as_f64().unwrap() < refuted),
                    "{c}"
                );
            }
            assert_eq!(
                threshold(&report, "capacity.sustained_rate > 0/s")["status"],
                "no_data"
            );
        }
    }
}

#[test]
fn on_an_external_etcd_the_search_stays_under_the_run_prefix_and_does_not_compact() {
    let (_rt, _etcd, url) = external();
    etcdctl(&url, &["put", "/registry/keep", "me"]);
    let r = run(
        &fixture("capacity-small.rhai"),
        &[
            "--endpoints",
            &url,
            "--set",
            "budget=6s",
            "--set",
            "precision=90%",
        ],
    );
    assert!(matches!(r.code, 0 | 1), "{}", r.stderr);
    let report = r.report.unwrap();
    let c = &step(&report, "healthy")["record"];
    assert_eq!(
        c["compacted"], false,
        "no compaction without --allow-maintenance"
    );
    assert_eq!(c["defragmented"], false);
    assert!(!c["trials"].as_array().unwrap().is_empty());
    // The run's keys are gone; what was there before is untouched.
    let keys = etcdctl(&url, &["get", "", "--from-key", "--keys-only"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert_eq!(keys, ["/registry/keep"]);
}

//! End-to-end: `scen ab` on real embedded etcds — an A/A of one binary says "no significant
//! change" and exits 0, in ABBA order, leaving no member behind; a real difference fails its gate
//! with exit 1; bad specs are usage errors before anything runs.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Runs `scen ab ARGS` to the end, collecting the etcd processes it starts meanwhile; the exit
/// code, stderr, the JSON report and every etcd pid seen.
fn ab(args: &[&str]) -> (i32, String, String, Option<Value>, BTreeSet<u32>) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ab.json");
    let mut child = scen()
        .arg("ab")
        .args(args)
        .args(["--report", json.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Drain the pipes in threads so the child never blocks on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out_pipe, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err_pipe, &mut s).unwrap();
        s
    });
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    let status = loop {
        seen.extend(etcd_children(pid));
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "scen ab did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
        report,
        seen,
    )
}

#[test]
fn an_ab_of_one_binary_against_itself_is_no_significant_change_in_abba_order() {
    let html = tempfile::NamedTempFile::new().unwrap();
    let etcd = which_etcd();
    let (code, stdout, stderr, report, pids) = ab(&[
        "tests/fixtures/ab-tiny.rhai",
        "--a",
        &format!("etcd-bin={etcd}"),
        "--b",
        &format!("etcd-bin={etcd}"),
        "--rounds",
        "4",
        "--html",
        html.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = report.unwrap();
    assert_eq!(r["outcome"], "passed");
    assert_eq!(r["completed_rounds"], 4);
    // ABBA: round 1 A then B, round 2 B then A, and again.
    assert_eq!(
        r["sequence"],
        serde_json::json!(["A", "B", "B", "A", "A", "B", "B", "A"])
    );
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8);
    let rounds: Vec<(u64, &str)> = runs
        .iter()
        .map(|e| (e["round"].as_u64().unwrap(), e["side"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rounds,
        [
            (0, "A"),
            (0, "B"),
            (1, "B"),
            (1, "A"),
            (2, "A"),
            (2, "B"),
            (3, "B"),
            (3, "A")
        ]
    );
    for e in runs {
        assert_eq!(
            e["report"]["outcome"], "passed",
            "every round's report is kept"
        );
        assert_eq!(e["report"]["target"]["embedded"], true);
    }
    let figures = r["figures"].as_array().unwrap();
    let paths: Vec<&str> = figures
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in ["load.throughput", "load.latency.p50", "load.latency.p99"] {
        assert!(paths.contains(&want), "{want} compared: {paths:?}");
    }
    for f in figures {
        // No change seen; where four rounds could not have seen ±10% (--detect), the verdict
        // says so rather than "no change", with the rounds that would.
        // (A quantile whose every round lies in one bucket of etcd's histogram is no change
        // at the histogram's resolution, whatever the rounds.)
        // (`null`: infinite, a figure with the same ratio every round, whose noise is unknown.)
        let detectable = f["detectable"].as_f64().unwrap_or(f64::INFINITY);
        let one_bucket = f["note"].as_str().is_some_and(|n| n.contains("one bucket"));
        // (Rounds whose buckets overlap differ only by interpolation inside them: at most
        // inconclusive, never a change.)
        let resolution = f["note"]
            .as_str()
            .is_some_and(|n| n.contains("resolution of etcd's histogram"));
        if detectable > 0.10 && !one_bucket {
            assert_eq!(f["verdict"], "inconclusive", "{f}");
            assert!(
                f["note"].as_str().unwrap().contains("could detect only")
                    || f["note"].as_str().unwrap().contains("cannot be estimated")
                    || resolution,
                "{f}"
            );
            assert!(
                resolution || f["rounds_needed"].as_u64().is_none_or(|n| n > 4),
                "{f}"
            );
        } else {
            assert_eq!(f["verdict"], "no_change", "{f}");
        }
        assert_eq!(f["a"].as_array().unwrap().len(), 4);
        let [lo, hi] = [
            f["interval"][0].as_f64().unwrap(),
            f["interval"][1].as_f64().unwrap(),
        ];
        assert!(lo <= 0.0 && hi >= 0.0, "the interval holds no change: {f}");
    }
    // The scenario's threshold gates its figure.
    let gate = &r["gates"][0];
    assert_eq!(gate["path"], "load.latency.p99");
    assert_eq!(gate["failed"], false);
    assert!(
        stdout.contains("no significant change") || stdout.contains("inconclusive"),
        "{stdout}"
    );
    assert!(stdout.contains("to detect ±10% (--detect)"), "{stdout}");
    assert!(
        stdout.contains("would not show"),
        "the power statement: {stdout}"
    );
    // The page draws A and B per figure.
    let page = std::fs::read_to_string(html.path()).unwrap();
    assert_eq!(page.matches("<svg").count(), figures.len());
    assert!(page.contains("round 2"));
    // Every member of every round is gone.
    assert!(pids.len() >= 4, "one etcd per run at least: {pids:?}");
    let pids: Vec<u32> = pids.into_iter().collect();
    assert!(gone(&pids), "etcd processes left behind: {pids:?}");

    // The same number of rounds sees a planted change: the leader's fsyncs delayed by 20 ms in B
    // (the healthy p99 of this load is a few ms). A scen that found nothing anywhere, or called
    // everything "no change", fails here. (Two rounds could not: with eight figures at once,
    // their simultaneous interval of a latency ratio spans ±100x.)
    let (code, stdout, stderr, report, _) = ab(&[
        "tests/fixtures/ab-disk.rhai",
        "--a",
        "delay=0ms",
        "--b",
        "delay=20ms",
        "--rounds",
        "4",
    ]);
    assert_eq!(code, 1, "the gate on p99 regressed: {stdout}\n{stderr}");
    let r = report.unwrap();
    assert_eq!(r["completed_rounds"], 4);
    let p99 = r["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "load.latency.p99")
        .unwrap();
    assert_eq!(p99["verdict"], "regressed", "{p99}");
    assert!(
        p99["interval"][0].as_f64().unwrap() > 0.0,
        "the interval excludes no change: {p99}"
    );
}

#[test]
fn rounds_auto_says_after_the_pilot_what_the_noise_needs_and_runs_that_many() {
    // A/A: the pilot measures the noise; auto then runs the rounds it needs to see ±50%, at
    // most five.
    let (code, stdout, stderr, report, _) = ab(&[
        "tests/fixtures/ab-tiny.rhai",
        "--rounds",
        "auto",
        "--max-rounds",
        "5",
        "--detect",
        "50%",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = report.unwrap();
    assert_eq!(r["auto_rounds"], true);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("after 3 rounds: detecting ±50% (--detect)"))
        .unwrap_or_else(|| panic!("the pilot's plan is said: {stderr}"));
    let done = r["completed_rounds"].as_u64().unwrap();
    // What the pilot said it would run is what ran (auto may stop later only when the noise
    // measured in later rounds asks for more).
    let will: u64 = line
        .rsplit("running ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=5).contains(&done), "{done}");
    match r["rounds_needed"].as_u64() {
        Some(n) if n <= 5 => assert_eq!(done, n.max(3), "stopped once the noise was covered"),
        _ => assert_eq!(done, 5, "ran to --max-rounds"),
    }
    assert!((3..=5).contains(&will), "{line}");
    // The deciding figures (the threshold's gate) could detect ±50% when the rounds sufficed.
    let gated: Vec<&Value> = r["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["path"])
        .collect();
    assert!(!gated.is_empty(), "the scenario's threshold gates");
    if r["rounds_needed"].as_u64().is_some_and(|n| n <= done) {
        for f in r["figures"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| gated.contains(&&f["path"]))
        {
            if f["detectable"].as_f64().is_some_and(f64::is_finite) {
                assert!(f["detectable"].as_f64().unwrap() <= 0.5, "{f}");
                assert_ne!(f["verdict"], "inconclusive", "{f}");
            }
        }
    }
}

#[test]
fn a_real_difference_fails_its_gate_with_exit_1() {
    // B asks for half A's rate: its throughput is significantly lower, beyond -5%.
    let (code, stdout, stderr, report, _) = ab(&[
        "tests/fixtures/ab-tiny.rhai",
        "--a",
        "rate=400",
        "--b",
        "rate=200",
        "--rounds",
        "3",
        "--gate",
        "load.throughput:-5%",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let r = report.unwrap();
    assert_eq!(r["outcome"], "thresholds_failed");
    let tp = r["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "load.throughput")
        .unwrap();
    assert_eq!(tp["verdict"], "regressed", "{tp}");
    let [lo, hi] = [
        tp["interval"][0].as_f64().unwrap(),
        tp["interval"][1].as_f64().unwrap(),
    ];
    assert!(
        lo <= -0.5 + 0.05 && hi >= -0.5 - 0.05,
        "the -50% is inside the interval: {tp}"
    );
    let gate = r["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["path"] == "load.throughput")
        .unwrap();
    assert_eq!(gate["failed"], true, "{gate}");
    assert!(stderr.contains("GATE REGRESSED"), "{stderr}");
}

#[test]
fn bad_specs_are_usage_errors_before_anything_runs() {
    for (args, says) in [
        (vec!["--a", "nosuch=1"], "nosuch"),
        (
            vec!["--b", "etcd-bin=/nonexistent/etcd"],
            "/nonexistent/etcd",
        ),
        (vec!["--rounds", "1"], "--rounds 1"),
        (vec!["--a", "member.bogus=1"], "bogus"),
        (vec!["--a", "novalue"], "expected key=value"),
        (vec!["--order", "zigzag"], "--order zigzag"),
        (vec!["--gate", "nosuch.latency.p99"], "no step `nosuch`"),
        (vec!["--gate", "load.latency.p99:5"], "percentage"),
        (vec!["--min-change", "lots"], "--min-change"),
        (vec!["--rounds", "many"], "--rounds many"),
        (vec!["--detect", "0%"], "--detect 0%"),
    ] {
        let mut all = vec!["tests/fixtures/ab-tiny.rhai"];
        all.extend(&args);
        let (code, _, stderr, report, pids) = ab(&all);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("run 1/"),
            "{args:?}: nothing ran: {stderr}"
        );
        assert!(report.is_none() && pids.is_empty(), "{args:?}");
    }
}

/// The etcd on PATH.
fn which_etcd() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v etcd"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

//! End-to-end: thresholds against a --baseline report, and `scen compare`.

mod common;

use common::*;

fn compare(old: &std::path::Path, new: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = scen()
        .arg("compare")
        .arg(old)
        .arg(new)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned()
            + String::from_utf8_lossy(&out.stderr).as_ref(),
    )
}

#[test]
fn thresholds_compare_with_the_baseline_report() {
    let first = run(&fixture("keys.rhai"), &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let base = first.dir.path().join("r.json");

    let r = run(
        &fixture("baseline.rhai"),
        &["--baseline", base.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    assert_eq!(report["baseline"], base.to_str().unwrap());
    let t = &report["thresholds"][0];
    assert_eq!(t["status"], "passed");
    assert!(t["message"].as_str().unwrap().contains("baseline"), "{t}");

    let r = run(
        &fixture("baseline.rhai"),
        &[
            "--baseline",
            base.to_str().unwrap(),
            "--set",
            "factor=0.000001",
        ],
    );
    assert_eq!(
        r.code, 1,
        "far below the baseline is impossible: {}",
        r.stderr
    );

    let r = run(&fixture("baseline.rhai"), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let t = r.report.unwrap()["thresholds"][0].clone();
    assert_eq!(t["status"], "error");
    assert!(t["message"].as_str().unwrap().contains("--baseline"), "{t}");

    let r = run(
        &fixture("baseline.rhai"),
        &["--baseline", "/nonexistent/report.json"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn compare_flags_regressions_beyond_the_tolerance() {
    let first = run(&fixture("keys.rhai"), &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let a = first.dir.path().join("r.json");
    let (code, out) = compare(&a, &a, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 regressed"), "{out}");

    // The same run, three times slower at p99 and half the throughput.
    let mut slow: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    let w = slow["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == "write")
        .unwrap();
    let p99 = w["record"]["latency"]["p99"].as_f64().unwrap();
    w["record"]["latency"]["p99"] = (p99 * 3.0).into();
    let tput = w["record"]["throughput"].as_f64().unwrap();
    w["record"]["throughput"] = (tput / 2.0).into();
    let b = first.dir.path().join("slow.json");
    std::fs::write(&b, serde_json::to_string(&slow).unwrap()).unwrap();

    let (code, out) = compare(&a, &b, &["--tolerance", "10%"]);
    assert_eq!(code, 1, "{out}");
    let line = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in\n{out}"))
            .to_string()
    };
    assert!(
        line("write.latency.p99 ").contains("REGRESSED")
            && line("write.latency.p99 ").contains("+200.0%"),
        "{out}"
    );
    assert!(line("write.throughput").contains("REGRESSED"), "{out}");
    assert!(out.contains("2 regressed"), "{out}");
    // The other way round it is an improvement.
    let (code, out) = compare(&b, &a, &[]);
    assert_eq!(code, 0, "{out}");
    // A generous tolerance forgives it.
    let (code, _) = compare(&a, &b, &["--tolerance", "300%"]);
    assert_eq!(code, 0);
    let (code, out) = compare(&a, &b, &["--tolerance", "fast"]);
    assert_eq!(code, 2, "{out}");
}

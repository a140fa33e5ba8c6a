//! End-to-end: the per-step server view (`<step>.server`) against real etcd, checked with a quantile
//! the test computes itself from two raw scrapes of /metrics.

mod common;

use common::*;

/// Raw `/metrics` text over plain HTTP.
fn scrape(url: &str) -> String {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .and_then(|c| c.get(format!("{url}/metrics")).send())
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("GET {url}/metrics: {e}"))
}

/// `(le, cumulative count)` of a histogram's buckets, parsed by hand.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (le, count) = rest.split_once("\"} ").unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, count.trim().parse().unwrap())
        })
        .collect()
}

/// PromQL's histogram_quantile over the difference of two scrapes, written independently.
fn window_quantile(q: f64, before: &[(f64, f64)], after: &[(f64, f64)]) -> (f64, f64) {
    let d: Vec<(f64, f64)> = after
        .iter()
        .zip(before)
        .map(|(a, b)| (a.0, a.1 - b.1))
        .collect();
    let total = d.last().unwrap().1;
    let rank = q * total;
    let i = d.iter().position(|(_, c)| *c >= rank).unwrap();
    let (lo, below) = if i == 0 { (0.0, 0.0) } else { d[i - 1] };
    let (hi, upto) = d[i];
    let v = if hi.is_infinite() {
        lo
    } else {
        lo + (hi - lo) * (rank - below) / (upto - below)
    };
    (total, v * 1e3)
}

#[test]
fn step_server_quantiles_match_an_independent_computation() {
    let (_rt, etcd, url) = external();
    let metrics = etcd.metrics_url().to_string();
    let before = scrape(&metrics);
    // --keep-keys: no clean-up delete after the step, so every write between the scrapes is the step's.
    let r = run(
        &fixture("one-write-step.rhai"),
        &[
            "--endpoints",
            &url,
            "--metrics-urls",
            &metrics,
            "--keep-keys",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = scrape(&metrics);
    let server = step(r.report.as_ref().unwrap(), "load")["record"]["server"].clone();
    for (field, metric) in [
        ("wal_fsync", "etcd_disk_wal_fsync_duration_seconds"),
        (
            "backend_commit",
            "etcd_disk_backend_commit_duration_seconds",
        ),
    ] {
        let (b, a) = (buckets(&before, metric), buckets(&after, metric));
        for q in ["p50", "p90", "p99"] {
            let (count, expected) = window_quantile(q[1..].parse::<f64>().unwrap() / 100.0, &b, &a);
            assert_eq!(
                server[field]["count"].as_f64().unwrap(),
                count,
                "{field} count"
            );
            let got = server[field][q].as_f64().unwrap();
            assert!(
                (got - expected).abs() < 1e-6,
                "{field}.{q}: scen {got} ms, independent {expected} ms"
            );
        }
    }
    assert!(server["wal_fsync"]["count"].as_f64().unwrap() > 0.0);
    assert_eq!(
        server["proposals_committed"], 3000.0,
        "one proposal per put"
    );
    assert_eq!(server["leader_changes"], 0.0);
    assert_eq!(server["has_leader"], true);
    assert!(server["db_size"].as_f64().unwrap() > 0.0);
    assert!(
        server["process"].is_null(),
        "no process view of an etcd scen did not start"
    );
}

#[test]
fn server_fields_are_checked_when_the_plan_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.rhai");
    std::fs::write(
        &f,
        "step(\"s\", |p| etcd::status());\nthreshold(\"s.server.wal_fsynk.p99 < 10ms\");\n",
    )
    .unwrap();
    let out = scen()
        .args(["check", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server view of a step does not have") && err.contains("wal_fsync"),
        "{err}"
    );
    std::fs::write(
        &f,
        "step(\"s\", |p| etcd::status());\nthreshold(\"s.server.wal_fsync.p99 < 10ms\");\n",
    )
    .unwrap();
    let out = scen()
        .args(["check", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_slo_module_passes_and_fails_when_it_should() {
    let r = run(&fixture("slo-db.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&fixture("slo-db.rhai"), &["--set", "quota=1KiB"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    let t = threshold(&report, "status.db_size < 1024 * 0.95"); // size parameters reach scripts as bytes
    assert_eq!(t["status"], "failed");
    assert!(
        t["location"].as_str().unwrap().contains("slo"),
        "declared inside the stdlib module: {t}"
    );
}

#[test]
fn scrape_returns_every_members_samples_filtered() {
    let r = run(&fixture("scrape.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let h = &step(&report, "h")["record"]["members"][0];
    assert_eq!(h["ok"], true);
    let fsync = &h["metrics"]["etcd_disk_wal_fsync_duration_seconds"][0];
    assert_eq!(fsync["kind"], "histogram");
    let buckets = fsync["buckets"].as_array().unwrap();
    assert!(buckets.len() > 5);
    assert!(buckets.last().unwrap()["le"].is_null(), "+Inf is null");
    assert_eq!(buckets.last().unwrap()["count"], fsync["value"]);
}

#[test]
fn the_slo_module_holds_api_latencies_to_cluster_loader2s_limits() {
    // Latencies are milliseconds in records: 400 ms single-object, 12 s cluster-wide lists pass.
    let r = run(&fixture("slo-api.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(
        threshold(&report, "sim.api_slo.cluster_list_p99 <= 30s")["status"],
        "passed"
    );
    // 1.5 s for a single-object call breaks the 1 s SLO; 31 s for a cluster list breaks 30 s.
    let r = run(
        &fixture("slo-api.rhai"),
        &["--set", "single=1500.0", "--set", "list_all=31000.0"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(
        threshold(&report, "sim.api_slo.single_object_p99 <= 1s")["status"],
        "failed"
    );
    assert_eq!(
        threshold(&report, "sim.api_slo.namespaced_list_p99 <= 5s")["status"],
        "passed"
    );
    assert_eq!(
        threshold(&report, "sim.api_slo.cluster_list_p99 <= 30s")["status"],
        "failed"
    );
}

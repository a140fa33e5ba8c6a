//! End-to-end: compaction, defragmentation, disarming and snapshots against real etcd, checked
//! from outside with etcdctl, and refused on a cluster scen did not start without the flag.

mod common;

use common::*;

#[test]
fn maintenance_is_measured_and_really_happens() {
    let (_rt, _etcd, url) = external();
    // A key with history: its first revision must become unreadable after compaction.
    etcdctl(&url, &["put", "/outside/k", "v1"]);
    let old_rev = serde_json::from_str::<serde_json::Value>(&etcdctl(
        &url,
        &["get", "/outside/k", "-w", "json"],
    ))
    .unwrap()["header"]["revision"]
        .as_i64()
        .unwrap();
    etcdctl(&url, &["put", "/outside/k", "v2"]);
    assert_eq!(
        etcdctl(
            &url,
            &[
                "get",
                "/outside/k",
                "--print-value-only",
                &format!("--rev={old_rev}")
            ]
        )
        .trim(),
        "v1"
    );

    let artifacts = tempfile::tempdir().unwrap();
    let r = run(
        &fixture("maintenance.rhai"),
        &[
            "--endpoints",
            &url,
            "--allow-maintenance",
            "--artifacts",
            artifacts.path().to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);

    // Compaction: the old revision is gone (etcdctl's view).
    let out = std::process::Command::new("etcdctl")
        .args([
            &format!("--endpoints={url}"),
            "get",
            "/outside/k",
            &format!("--rev={old_rev}"),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("compacted"),
        "{out:?}"
    );

    // Defrag: the db shrank, and etcdctl endpoint status agrees with the record.
    let d = &step(&report, "defrag")["record"];
    let after = d["db_size_after"].as_i64().unwrap();
    assert!(d["freed_bytes"].as_i64().unwrap() > 1 << 20, "{d}");
    let st: serde_json::Value =
        serde_json::from_str(&etcdctl(&url, &["endpoint", "status", "-w", "json"])).unwrap();
    let db_now = st[0]["Status"]["dbSize"].as_i64().unwrap();
    assert!(
        (db_now - after).abs() < 256 * 1024,
        "etcdctl says {db_now}, scen said {after}"
    );
    assert_eq!(d["members"][0]["was_leader"], true);

    // Snapshot: written where asked, verified by etcdutl, holding the revision we reached.
    let s = &step(&report, "snap")["record"];
    let file = artifacts.path().join("backup/etcd.db");
    assert!(file.exists());
    assert_eq!(
        s["size"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    assert!(
        s["revision"].as_i64().unwrap()
            >= step(&report, "empty")["record"]["revision"]
                .as_i64()
                .unwrap()
    );
    assert_eq!(s["live_keys"], 1, "only /outside/k is left");
    // Restore: a fresh member from the snapshot holds the same keys at the same revision.
    let restored = &step(&report, "restore")["record"];
    assert_eq!(restored["keys"], 1, "{restored}");
    assert_eq!(restored["revision"], s["revision"], "{restored}");
    for t in report["thresholds"].as_array().unwrap() {
        assert_eq!(t["status"], "passed", "{t}");
    }
}

#[test]
fn maintenance_needs_the_flag_on_a_cluster_scen_did_not_start() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("maintenance.rhai"),
        &["--endpoints", &url, "--set", "keys=10"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--allow-maintenance"), "{}", r.stderr);
    assert!(r.stderr.contains("etcd::compact (line"), "{}", r.stderr);
    // Refused before the first step: nothing was written or loaded first.
    let report = r.report.unwrap();
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] != "passed" && s["status"] != "failed"),
        "{}",
        report["steps"]
    );
    assert!(etcdctl(&url, &["get", "", "--from-key", "--keys-only"])
        .trim()
        .is_empty());
}

#[test]
fn snapshot_paths_stay_inside_the_artifacts_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("escape.rhai");
    std::fs::write(
        &f,
        "step(\"s\", |p| etcd::snapshot(\"../../etc/evil.db\"));\n",
    )
    .unwrap();
    let r = run(&f, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("must be relative, inside the artifacts directory"),
        "{}",
        r.stderr
    );
}

#[test]
fn defrag_under_load_shows_the_load_across_the_defrag_window() {
    let r = run(
        &root().join("scenarios/defrag-under-load.rhai"),
        &[
            "--set",
            "garbage=2000",
            "--set",
            "load_duration=5s",
            "--set",
            "rate=200",
        ],
    );
    assert_page_renders(&r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let load = step(&report, "load");
    let defrag = step(&report, "defrag");
    assert_eq!(load["background"], true);
    let t = |s: &serde_json::Value| chrono_ms(s["started_at"].as_str().unwrap());
    let (load_start, defrag_start) = (t(load), t(defrag));
    let load_end = load_start + load["duration_ms"].as_f64().unwrap();
    let defrag_end = defrag_start + defrag["duration_ms"].as_f64().unwrap();
    assert!(
        load_start < defrag_start && defrag_end < load_end,
        "the load spans the defrag"
    );
    let series = load["record"]["series"].as_array().unwrap();
    assert!(series.len() >= 5, "one point a second: {series:?}");
    assert!(defrag["record"]["freed_bytes"].as_i64().unwrap() > 0);
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (UTC, as reports write them).
fn chrono_ms(ts: &str) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-d", ts, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .unwrap()
        * 1e3
}

#[test]
fn backup_restore_scenario_brings_every_key_back() {
    let artifacts = tempfile::tempdir().unwrap();
    let r = run(
        &root().join("scenarios/backup-restore.rhai"),
        &[
            "--set",
            "secrets=200",
            "--artifacts",
            artifacts.path().to_str().unwrap(),
        ],
    );
    assert_page_renders(&r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert!(
        step(&report, "snap")["record"]["live_keys"]
            .as_i64()
            .unwrap()
            >= 200
    );
    assert!(artifacts.path().join("backup.db").exists());
}

#[test]
fn restore_uses_the_etcd_binary_given_on_the_command_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = external_etcd(&rt);
    let artifacts = tempfile::tempdir().unwrap();
    let r = run(
        &root().join("scenarios/backup-restore.rhai"),
        &[
            "--endpoints",
            etcd.client_url(),
            "--set",
            "secrets=10",
            "--artifacts",
            artifacts.path().to_str().unwrap(),
            "--etcd-bin",
            "/nonexistent/etcd-for-restore",
        ],
    );
    let report = r.report.unwrap();
    assert_eq!(step(&report, "snap")["status"], "passed", "{}", r.stderr);
    let restore = step(&report, "restore");
    assert_eq!(restore["status"], "failed");
    assert!(
        restore["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/etcd-for-restore"),
        "{restore}"
    );
}

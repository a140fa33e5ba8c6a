//! End-to-end: a verdict CI can trust. No data is never a pass, units are checked before a run,
//! any quantile can be asked, and a step whose etcd died or refused every request fails with its
//! infrastructure kind (exit 3) — against real etcd processes.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn any_quantile_and_the_server_view_over_real_load() {
    let r = run(&fixture("verdict-load.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let p95 = threshold(&report, "load.latency.p95 < 10s");
    let rec = &step(&report, "load")["record"];
    // p95 sits between the recorded p50 and p99, and comes from the kept histogram.
    let (p50, p99) = (
        rec["latency"]["p50"].as_f64().unwrap(),
        rec["latency"]["p99"].as_f64().unwrap(),
    );
    let observed = p95["observed"].as_f64().unwrap();
    assert!(
        p50 <= observed && observed <= p99,
        "{p50} <= {observed} <= {p99}"
    );
    assert!(rec["latency"]["hist"]
        .as_str()
        .is_some_and(|h| h.len() > 10));
    let server = &rec["server"];
    assert!(server["no_data"].is_null(), "{server}");
    assert!(
        server["wal_fsync"]["count"].as_u64().unwrap() > 0,
        "{server}"
    );
    assert!(server["wal_fsync"]["buckets"].is_array(), "{server}");
    // One member: no peers, so no round trips — null, not 0.
    assert!(server["peer_rtt"]["p99"].is_null(), "{server}");
    assert_eq!(server["peer_rtt"]["count"], 0);
}

#[test]
fn a_figure_with_no_samples_fails_as_no_data_unless_the_threshold_allows_it() {
    let r = run(&fixture("verdict-nodata.rhai"), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let t = &report["thresholds"];
    assert_eq!(t[0]["status"], "passed", "{}", t[0]);
    assert_eq!(t[1]["status"], "no_data", "{}", t[1]);
    assert!(
        t[1]["message"].as_str().unwrap().starts_with("no data"),
        "{}",
        t[1]
    );
    assert_eq!(t[2]["status"], "passed", "{}", t[2]);
    assert!(
        t[2]["message"].as_str().unwrap().contains("no_data"),
        "{}",
        t[2]
    );
    assert!(r.junit.unwrap().contains("threshold had no data"));
}

#[test]
fn an_unscraped_member_fails_server_thresholds_with_the_reason() {
    let r = run(
        &fixture("verdict-load.rhai"),
        &[
            "--metrics-urls",
            "http://127.0.0.1:1",
            "--set",
            "duration=1s",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    let t = threshold(&report, "load.server.wal_fsync.p99 < 10s");
    assert_eq!(t["status"], "no_data", "{t}");
    let msg = t["message"].as_str().unwrap();
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("could not be scraped"),
        "{msg}"
    );
    let server = &step(&report, "load")["record"]["server"];
    assert!(server["wal_fsync"]["p99"].is_null(), "{server}");
    assert!(server["no_data"].as_str().unwrap().contains("127.0.0.1:1"));
    // Client-side figures are still there and still pass.
    assert_eq!(
        threshold(&report, "load.latency.p95 < 10s")["status"],
        "passed"
    );
}

#[test]
fn units_and_renamed_fields_are_checked_before_a_run() {
    let out = scen()
        .arg("check")
        .arg(fixture("verdict-units.rhai"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`w.latency.p99` is a duration (ms)") && err.contains("size"),
        "{err}"
    );
    assert!(
        err.contains("verdict-units.rhai:3"),
        "names file and line: {err}"
    );

    let out = scen()
        .arg("check")
        .arg(fixture("verdict-renamed.rhai"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("renamed to `hb.leases.shortfall`"), "{err}");
}

#[test]
fn etcd_killed_during_a_single_load_step_is_an_infrastructure_failure() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut watched = spawn_watched(&fixture("verdict-long-load.rhai"), &json, &[]);
    // The load's first progress line ("step load: 2345/s errors 0"): it has been under way for a
    // second and has done work.
    watched.wait_for(&["step load: ", "/s", " errors "], Duration::from_secs(60));
    let member = *etcd_children(watched.child.id())
        .first()
        .expect("the embedded etcd runs under the load");
    // SAFETY: kill(2) on the etcd scen started for this test.
    unsafe { libc::kill(member as i32, libc::SIGKILL) };
    let (code, stderr) = watched.finish();
    assert_eq!(code, Some(3), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let load = step(&report, "load");
    assert_eq!(load["status"], "failed", "{load}");
    assert_eq!(load["error"]["kind"], "etcd_died", "{load}");
    // What the load measured before etcd died is kept.
    assert!(load["record"]["ok"].as_u64().unwrap() > 0, "{load}");
    assert_eq!(report["exit_code"], 3);
}

#[test]
fn auth_enabled_without_a_user_is_an_auth_failure_exit_3() {
    let (_rt, _etcd, url) = external();
    etcdctl(&url, &["user", "add", "root", "--new-user-password=s3cret"]);
    etcdctl(&url, &["auth", "enable"]);
    let r = run(
        &fixture("verdict-load.rhai"),
        &["--endpoints", &url, "--set", "duration=1s"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let report = r.report.unwrap();
    let load = step(&report, "load");
    assert_eq!(load["error"]["kind"], "auth", "{load}");
    let msg = load["error"]["message"].as_str().unwrap();
    assert!(msg.contains("user name is empty"), "{msg}");
    assert!(
        !msg.contains("MetadataMap"),
        "no debug text reaches a user: {msg}"
    );
}

#[test]
fn put_many_whose_every_put_fails_is_a_failed_step_of_that_kind() {
    let (_rt, _etcd, url) = external();
    etcdctl(&url, &["user", "add", "root", "--new-user-password=s3cret"]);
    etcdctl(&url, &["auth", "enable"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("puts.rhai");
    std::fs::write(&f, "step(\"puts\", |p| etcd::put_many(#{ count: 10 }));\n").unwrap();
    let r = run(&f, &["--endpoints", &url]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let report = r.report.unwrap();
    let puts = step(&report, "puts");
    assert_eq!(puts["status"], "failed", "{puts}");
    assert_eq!(puts["error"]["kind"], "auth", "{puts}");
    // The record is kept: 10 attempted, none ok.
    assert_eq!(puts["record"]["errors"], 10, "{puts}");
    assert_eq!(puts["record"]["ok"], 0);
    // A scenario that means it (a permission test) says so.
    std::fs::write(&f, "step(\"puts\", |p| etcd::put_many(#{ count: 10, expect_errors: true }));\nthreshold(\"puts.errors == 10\");\n").unwrap();
    let r = run(&f, &["--endpoints", &url]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn reports_of_schema_version_1_still_render() {
    let dir = tempfile::tempdir().unwrap();
    let (html, md, xml) = (
        dir.path().join("r.html"),
        dir.path().join("r.md"),
        dir.path().join("r.xml"),
    );
    let out = scen()
        .args(["report", "render"])
        .arg(fixture("report-v1.json"))
        .arg("--html")
        .arg(&html)
        .arg("--markdown")
        .arg(&md)
        .arg("--junit")
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("etcd stopped answering"), "{md}");
    let xml = std::fs::read_to_string(xml).unwrap();
    assert!(xml.contains("infrastructure"), "{xml}");
    html_doc(&std::fs::read_to_string(html).unwrap());
}

#[test]
fn keys_another_client_deletes_are_foreign_writes_not_stale_reads() {
    let r = run(&fixture("foreign-deletes.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let safety = &step(&report, "load")["record"]["safety"];
    let deleted = step(&report, "theirs")["record"]["deleted"]
        .as_u64()
        .unwrap();
    assert!(deleted > 0, "the other client deleted keys");
    // Replayed from etcd's history: every key the other client deleted is one foreign write,
    // and nothing the load did itself is.
    assert_eq!(safety["foreign_writes"].as_u64(), Some(deleted), "{safety}");
    // Reads that found a key gone because it was deleted are correct, not stale.
    assert_eq!(safety["stale_reads"], 0, "{safety}");
    assert!(
        safety["reads_after_deletes"].as_u64().unwrap() > 0,
        "{safety}"
    );
    assert_eq!(safety["passed"], true, "{safety}");
}

#[test]
fn a_record_keeps_its_units_through_a_fn_a_map_and_result() {
    // Before the run: a wrong unit on a field reached through a `fn`, inside a script's map.
    let out = scen()
        .arg("check")
        .arg(fixture("typed-through-bad.rhai"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`mapped.load.latency.p99` is a duration (ms)")
            && err.contains("typed-through-bad.rhai:7"),
        "{err}"
    );

    let r = run(&fixture("typed-through.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    assert_eq!(step(&report, "wrapped")["action"], "etcd::stress");
    assert_eq!(step(&report, "again")["action"], "etcd::stress");
    let mapped = step(&report, "mapped");
    assert!(mapped["action"].is_null(), "{mapped}");
    assert_eq!(mapped["field_actions"]["load"], "etcd::stress");
    // Each verdict is shown in its field's unit: the run knew the record's type.
    for (expr, unit) in [
        ("wrapped.latency.p99 < 10s", "ms"),
        ("mapped.load.throughput > 1/s", "/s"),
        ("again.latency.p50 < 10s", "ms"),
    ] {
        let t = threshold(&report, expr);
        assert_eq!(t["status"], "passed", "{t}");
        let msg = t["message"].as_str().unwrap();
        let observed = msg.split(", limit").next().unwrap();
        assert!(
            observed.starts_with("observed ") && observed.ends_with(unit),
            "{expr}: {msg}"
        );
    }
}

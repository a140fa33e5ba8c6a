//! End-to-end: `etcd::stress` against real etcd — operation counts, keys under the run prefix,
//! open-loop accuracy and honest shortfall, watch delay, and etcd dying mid-step.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn every_operation_runs_its_count_without_errors_under_the_prefix() {
    let (_rt, _etcd, url) = external();
    // Both client paths: scen's lean HTTP/2 calls (the default on plaintext) and etcd-client.
    let other = run(
        &fixture("stress-ops.rhai"),
        &["--endpoints", &url, "--set", "transport=etcd-client"],
    );
    assert_eq!(other.code, 0, "{}", other.stderr);
    let other = other.report.unwrap();
    assert_eq!(step(&other, "put")["record"]["transport"], "etcd-client");
    let r = run(
        &fixture("stress-ops.rhai"),
        &["--endpoints", &url, "--keep-keys"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    assert_eq!(step(&report, "put")["record"]["transport"], "lean");
    assert_eq!(
        step(&report, "cas")["record"]["transport"],
        "etcd-client",
        "transactions always go through etcd-client"
    );
    assert_eq!(step(&report, "put")["record"]["by_transport"]["lean"], 200);
    assert_eq!(
        step(&report, "cas")["record"]["by_transport"]["etcd-client"],
        200
    );
    for name in ["put", "get", "range", "cas", "txn", "mix", "delete"] {
        assert_eq!(
            step(&other, name)["record"]["ok"],
            200,
            "{name} via etcd-client"
        );
        let rec = &step(&report, name)["record"];
        assert_eq!(rec["ok"], 200, "{name}: {rec}");
        assert_eq!(rec["errors"], 0, "{name}");
        assert!(rec["latency"]["p99"].as_f64().unwrap() > 0.0, "{name}");
        assert!(
            rec["cpu"]["client_per_op"].as_f64().unwrap() > 0.0,
            "{name}"
        );
        assert!(!rec["series"].as_array().unwrap().is_empty(), "{name}");
    }
    assert!(
        step(&report, "cas")["record"]["txn_conflicts"]
            .as_u64()
            .unwrap()
            > 0,
        "20 keys, 4 clients: some CAS lose"
    );
    // Figures that cannot apply are absent, not 0: closed loops schedule nothing to drop, and
    // only compare-and-swap has conflicts.
    for name in ["put", "get", "range", "cas", "txn", "mix", "delete"] {
        let rec = step(&report, name)["record"].as_object().unwrap();
        assert!(
            !rec.contains_key("dropped"),
            "{name}: a closed loop drops nothing"
        );
        assert_eq!(rec.contains_key("txn_conflicts"), name == "cas", "{name}");
    }
    assert!(
        step(&report, "put")["record"]["cpu"]["server_ms"].is_null(),
        "no server CPU for a cluster scen did not start"
    );
    // Outside view: everything under the run prefix; the deletes emptied stress/, cas/ and txn/ remain.
    let prefix = report["target"]["prefix"].as_str().unwrap();
    let keys = etcdctl(&url, &["get", "", "--from-key", "--keys-only"]);
    let keys: Vec<_> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with(prefix)),
        "a key outside {prefix}: {keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with(&format!("{prefix}cas/"))));
    assert!(!keys
        .iter()
        .any(|k| k.starts_with(&format!("{prefix}stress/"))));
}

#[test]
fn megabyte_values_and_multi_megabyte_ranges_arrive_intact() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("stress-large.rhai"),
        &["--endpoints", &url, "--keep-keys"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(step(&report, "put")["record"]["transport"], "lean");
    // Outside view: eight whole 1 MiB values.
    let prefix = report["target"]["prefix"].as_str().unwrap();
    let out = etcdctl(
        &url,
        &["get", &format!("{prefix}stress/"), "--prefix", "-w", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kvs = v["kvs"].as_array().expect("keys");
    assert_eq!(kvs.len(), 8);
    for kv in kvs {
        let value = base64_len(kv["value"].as_str().unwrap());
        assert_eq!(value, 1 << 20, "{}", kv["key"]);
    }
}

/// The decoded length of a base64 string.
fn base64_len(s: &str) -> usize {
    s.len() / 4 * 3 - s.bytes().rev().take_while(|b| *b == b'=').count()
}

#[test]
fn open_loop_holds_a_modest_rate_and_reports_an_impossible_one_honestly() {
    let r = run(&fixture("stress-load.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let rec = &step(&report, "load")["record"];
    assert_eq!(rec["model"], "open");
    assert_eq!(rec["target_rate"], 200.0);
    let tput = rec["throughput"].as_f64().unwrap();
    assert!(
        (180.0..=220.0).contains(&tput),
        "200/s target, got {tput}/s"
    );
    assert!(rec["shortfall"].as_f64().unwrap() < 0.05, "{rec}");
    assert_eq!(rec["ok"], 400);

    // One client cannot send 100,000 requests a second: the record says how far it fell short.
    let r = run(
        &fixture("stress-load.rhai"),
        &["--set", "rate=100000", "--set", "clients=1"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rec = step(r.report.as_ref().unwrap(), "load")["record"].clone();
    assert!(rec["shortfall"].as_f64().unwrap() > 0.5, "{rec}");
    assert!(rec["dropped"].as_u64().unwrap() > 100_000, "{rec}");
    // Coordinated omission: queued requests count their wait, so p99 is far above a put's cost.
    assert!(rec["latency"]["p99"].as_f64().unwrap() > 100.0, "{rec}");
}

#[test]
fn ramping_stages_follow_the_schedule() {
    let r = run(&fixture("stress-load.rhai"), &["--set", "mode=stages"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rec = step(r.report.as_ref().unwrap(), "load")["record"].clone();
    // 1 s at 100/s, then a ramp 100 -> 300/s over 1 s: 100 + 200 requests, mean 150/s.
    assert_eq!(rec["ok"], 300, "{rec}");
    assert_eq!(rec["target_rate"], 150.0);
    let series = rec["series"].as_array().unwrap();
    let first = series[0]["ok"].as_u64().unwrap();
    let second = series[1]["ok"].as_u64().unwrap();
    assert!(
        second > first + 50,
        "the second second ramps up: {first} then {second}"
    );
}

#[test]
fn watchers_record_delay_and_miss_nothing() {
    let r = run(&fixture("stress-load.rhai"), &["--set", "mode=watch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let w = step(r.report.as_ref().unwrap(), "load")["record"]["watch"].clone();
    assert_eq!(w["watchers"], 2);
    assert_eq!(w["expected_per_watcher"], 500);
    assert_eq!(w["received"], 1000);
    assert_eq!(w["missed"], 0);
    assert_eq!(w["out_of_order"], 0, "events in revision order");
    assert_eq!(w["delay"]["count"], 1000);
    assert!(w["delay"]["max"].as_f64().unwrap() >= w["delay"]["p50"].as_f64().unwrap());
}

#[test]
fn leases_are_kept_alive_churned_and_all_revoked() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("stress-load.rhai"),
        &["--set", "mode=lease", "--endpoints", &url],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rec = step(r.report.as_ref().unwrap(), "load")["record"].clone();
    assert_eq!(rec["model"], "lease");
    assert_eq!(rec["errors"], 0, "{rec}");
    let ok = |op: &str| rec["by_op"][op]["ok"].as_u64().unwrap_or(0);
    assert!(ok("lease_grant") >= 50, "{rec}");
    assert!(ok("lease_keepalive") > 50, "{rec}");
    assert_eq!(
        ok("lease_revoke"),
        ok("lease_grant"),
        "every granted lease is revoked: {rec}"
    );
    assert_eq!(rec["target_rate"], 100.0, "50 leases every 500 ms");
    assert!(rec["shortfall"].as_f64().unwrap() < 0.1, "{rec}");
    let leases = etcdctl(&url, &["lease", "list"]);
    assert!(
        leases.contains("found 0 leases"),
        "nothing left behind: {leases}"
    );
}

#[test]
fn etcd_dying_mid_step_fails_with_exit_3_and_keeps_the_measurements() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = external_etcd(&rt);
    let url = etcd.client_url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut watched = spawn_watched(
        &fixture("stress-load.rhai"),
        &json,
        &["--set", "mode=long", "--endpoints", &url],
    );
    // Stopped under the load: after its first progress line, a second into it.
    watched.wait_for(&["step load: ", "/s", " errors "], Duration::from_secs(60));
    etcd.stop();
    let (code, stderr) = watched.finish();
    assert_eq!(code, Some(3), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_schema_valid(&report);
    assert_eq!(report["outcome"], "infrastructure_error");
    let load = step(&report, "load");
    assert_eq!(load["status"], "failed");
    // The external etcd went away: its clients lost the connection (exit 3).
    assert_eq!(load["error"]["kind"], "connection_lost");
    assert!(
        load["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{load}"
    );
    let rec = &load["record"];
    assert!(
        rec["ok"].as_u64().unwrap() > 100,
        "what ran before etcd died is kept: {rec}"
    );
    assert!(rec["errors"].as_u64().unwrap() > 0, "{rec}");
    assert!(
        !rec["errors_by_code"].as_object().unwrap().is_empty(),
        "{rec}"
    );
    assert!(
        load["duration_ms"].as_f64().unwrap() < 15_000.0,
        "gave up well before the 30 s duration"
    );
}

#[test]
fn check_perf_passes_profile_s_briefly() {
    let r = run(
        &root().join("scenarios/check-perf.rhai"),
        &["--set", "duration=2s"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let rec = &step(&report, "perf")["record"];
    assert_eq!(rec["clients"], 50);
    assert_eq!(rec["target_rate"], 150.0);
    assert_eq!(rec["ok"], 300);
    let r = run(
        &root().join("scenarios/check-perf.rhai"),
        &["--set", "load=xxl"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown load \"xxl\""), "{}", r.stderr);
}

#[test]
fn open_loop_requests_never_sent_count_in_the_latency() {
    let r = run(&fixture("open-loop-slowdown.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let load = &step(&report, "load")["record"];
    let (ok, dropped) = (
        load["ok"].as_u64().unwrap(),
        load["dropped"].as_u64().unwrap(),
    );
    // 4 clients cannot put 1000/s on a disk that takes 50 ms per fsync: the second half is
    // mostly never sent.
    assert!(dropped > 500, "{load}");
    assert_eq!(load["latency"]["count"].as_u64().unwrap(), ok + dropped);
    // The requests that were sent are mostly from the healthy half; with the dropped ones timed
    // as waiting until the end, the p90 shows the slowdown.
    let p90 = load["latency"]["p90"].as_f64().unwrap();
    let sent_p50 = load["by_op"]["put"]["latency"]["p50"].as_f64().unwrap();
    assert!(p90 >= 50.0, "p90 {p90} ms");
    assert!(sent_p50 < 50.0, "sent requests' p50 {sent_p50} ms");
}

#[test]
fn both_transports_write_the_same_keys_and_values_and_count_alike() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("differential.rhai"),
        &["--endpoints", &url, "--keep-keys"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let prefix = report["target"]["prefix"].as_str().unwrap().to_string();
    for (name, path) in [("lean", "lean"), ("client", "etcd-client")] {
        let put = &step(&report, &format!("{name}_put"))["record"];
        assert_eq!(
            (put["ok"].as_u64(), put["errors"].as_u64()),
            (Some(300), Some(0)),
            "{name}"
        );
        assert_eq!(put["transport"], path, "{name}");
        assert_eq!(put["by_transport"][path], 300, "{name}");
        let range = &step(&report, &format!("{name}_range"))["record"];
        assert_eq!(range["ok"], 40, "{name}");
        assert_eq!(
            step(&report, &format!("{name}_count"))["record"]["count"],
            300
        );
    }
    // From outside: the same keys (under each prefix) with the same values.
    let kvs = |sub: &str| -> std::collections::BTreeMap<String, String> {
        let out = etcdctl(
            &url,
            &["get", &format!("{prefix}{sub}/"), "--prefix", "-w", "json"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                use base64::Engine as _;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(kv["key"].as_str().unwrap())
                    .unwrap();
                let key = String::from_utf8_lossy(&key).into_owned();
                let suffix = key.rsplit_once(&format!("{sub}/")).unwrap().1.to_string();
                (suffix, kv["value"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let (lean, client) = (kvs("lean"), kvs("client"));
    assert_eq!(lean.len(), 300);
    let differ: Vec<&String> = lean
        .keys()
        .filter(|k| lean.get(*k) != client.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "{} keys differ, e.g. {:?}",
        differ.len(),
        differ.first()
    );
    assert_eq!(
        lean.keys().collect::<Vec<_>>(),
        client.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_progress_line_counts_errors_as_they_happen() {
    let r = run(&fixture("live-errors.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let errors = step(&report, "load")["record"]["errors"].as_u64().unwrap();
    // The first progress line comes a second in, before the step ends; the quota was full by
    // then, so it already counts failed puts (the per-second series it used to read lags by two
    // seconds and said "errors 0").
    let lines: Vec<&str> = r.stderr.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("step load: passed"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let live = lines[..end]
        .iter()
        .find_map(|l| {
            l.strip_prefix("step load: ")?
                .split("errors ")
                .nth(1)?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("a progress line: {}", r.stderr));
    assert!(
        live >= 1 && live <= errors,
        "live {live}, in the record {errors}"
    );
}

//! End-to-end: `scen run` with the real binary against real etcd — exit codes, reports, etcd state.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn flagship_passes_with_valid_reports() {
    let r = run(
        &root().join("scenarios/etcd-stress.rhai"),
        &[
            "--set",
            "nodes=30",
            "--set",
            "load_duration=1s",
            "--set",
            "write_p99=1s",
            "--set",
            "load_p99=1s",
            // This test checks the pipeline, not this machine's disk: generous server limits.
            "--set",
            "fsync_p99=1s",
            "--set",
            "commit_p99=1s",
        ],
    );
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    let report = r.report.as_ref().expect("json report written");
    assert_schema_valid(report);
    assert_eq!(report["outcome"], "passed");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["params"]["nodes"], 30);
    assert_eq!(report["param_sources"]["nodes"], "set");
    assert_eq!(
        report["params"]["secret_size"], 2048,
        "sizes reach scripts as bytes"
    );
    assert_eq!(report["scenario"]["sha256"].as_str().unwrap().len(), 64);
    assert!(report["target"]["embedded"].as_bool().unwrap());
    assert!(report["target"]["etcd_version"]
        .as_str()
        .unwrap()
        .starts_with('3'));
    let cluster = &step(report, "cluster")["record"];
    assert_eq!(
        cluster["root"], "/registry",
        "the real layout on an etcd scen started"
    );
    assert_eq!(cluster["by_kind"]["pod"]["count"], 300);
    assert_eq!(cluster["by_kind"]["node"]["count"], 30);
    assert_eq!(cluster["by_kind"]["secret"]["count"], 200);
    assert!(cluster["txn_latency"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(step(report, "list_pods")["record"]["count"], 300);
    assert_eq!(
        step(report, "inventory")["record"]["resources"]["minions"]["keys"],
        30
    );
    let beats = &step(report, "heartbeats")["record"];
    assert!(beats["leases"]["ok"].as_u64().unwrap() > 0, "{beats}");
    assert!(
        step(report, "defrag")["record"]["db_size_after"]
            .as_i64()
            .unwrap()
            > 0
    );
    let load = &step(report, "load")["record"];
    let proc_view = &load["server"]["process"];
    assert!(
        proc_view["cpu"].as_f64().unwrap() > 0.0,
        "the embedded etcd worked: {proc_view}"
    );
    assert!(
        proc_view["rss_bytes"].as_u64().unwrap() > 1 << 20,
        "{proc_view}"
    );
    assert!(
        load["by_op"]["range"]["ok"].as_u64().unwrap()
            > load["by_op"]["put"]["ok"].as_u64().unwrap(),
        "70/30 mix: {load}"
    );
    let status = &step(report, "status")["record"];
    assert_eq!(status["member_count"], 1);
    assert!(status["members"][0]["is_leader"].as_bool().unwrap());
    assert!(status["members"][0]["raft_index"].as_u64().unwrap() > 0);
    for t in report["thresholds"].as_array().unwrap() {
        assert_eq!(t["status"], "passed", "{t}");
    }

    let xml = r.junit.as_ref().expect("junit written");
    let doc = roxmltree::Document::parse(xml).expect("junit parses");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(
        cases,
        report["steps"].as_array().unwrap().len() + report["thresholds"].as_array().unwrap().len()
    );
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
            .count(),
        0
    );
    let md = r.markdown.as_ref().unwrap();
    assert!(
        md.contains("PASSED") && md.contains("`list_pods.count == cluster.by_kind.pod.count`"),
        "{md}"
    );
}

#[test]
fn a_failed_threshold_exits_1_with_observed_and_limit() {
    let r = run(
        &root().join("scenarios/etcd-stress.rhai"),
        &[
            "--set",
            "nodes=5",
            "--set",
            "write_p99=1us",
            "--set",
            "load_duration=1s",
            // Only the write p99 thresholds may fail here, whatever the machine's speed.
            "--set",
            "load_p99=10s",
            "--set",
            "fsync_p99=10s",
            "--set",
            "commit_p99=10s",
        ],
    );
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    assert_eq!(report["outcome"], "thresholds_failed");
    let t = threshold(&report, "cluster.txn_latency.p99 < 1us");
    assert_eq!(t["status"], "failed");
    assert!(t["observed"].as_f64().unwrap() > t["limit"].as_f64().unwrap());
    assert!(
        t["message"].as_str().unwrap().contains("limit < 1us"),
        "{t}"
    );
    assert!(r.stderr.contains("THRESHOLDS FAILED"), "{}", r.stderr);
    let xml = r.junit.unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase") && n.children().any(|c| c.has_tag_name("failure")))
        .map(|n| n.attribute("name").unwrap().to_string())
        .collect();
    assert_eq!(failed, vec!["cluster.txn_latency.p99 < 1us".to_string()]);
}

#[test]
fn a_syntax_error_exits_2_showing_the_position() {
    let r = run(&fixture("syntax-error.rhai"), &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("syntax-error.rhai:4:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("step(\"two\", |p| etcd::status() +);"),
        "source line shown:\n{}",
        r.stderr
    );
    assert!(r.stderr.contains('^'), "caret shown:\n{}", r.stderr);
    let report = r.report.expect("a report even when nothing ran");
    assert_schema_valid(&report);
    assert_eq!(report["outcome"], "script_error");
    assert!(report["target"].is_null(), "no etcd was started");
}

#[test]
fn an_unknown_parameter_exits_2() {
    let r = run(
        &root().join("scenarios/etcd-stress.rhai"),
        &["--set", "nodez=5"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown parameter `nodez`") && r.stderr.contains("pods_per_node"),
        "{}",
        r.stderr
    );
    let r = run(
        &root().join("scenarios/etcd-stress.rhai"),
        &["--set", "nodes=lots"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`nodes`"), "{}", r.stderr);
}

#[test]
fn unreachable_endpoints_exit_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run(
        &root().join("scenarios/etcd-stress.rhai"),
        &["--endpoints", &format!("127.0.0.1:{port}")],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    assert_eq!(report["outcome"], "infrastructure_error");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach etcd"),
        "{report}"
    );
}

/// Starts `scen run slow.rhai`, waits until its long step started (the quick one ended before
/// it), and returns the run and its embedded etcd.
fn start_slow_run(json: &std::path::Path) -> (Watched, u32) {
    let mut watched = spawn_watched(&fixture("slow.rhai"), json, &[]);
    watched.wait_for(&["step long: started"], Duration::from_secs(60));
    let etcd_pid = *etcd_children(watched.child.id())
        .first()
        .expect("the embedded etcd runs while a step does");
    (watched, etcd_pid)
}

#[test]
fn sigint_and_sigterm_exit_130_with_a_partial_report_and_no_etcd_left() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.json");
        let (run, etcd_pid) = start_slow_run(&json);
        unsafe { libc::kill(run.child.id() as i32, signal) };
        let (code, stderr) = run.finish();
        assert_eq!(code, Some(130), "signal {signal}: {stderr}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_schema_valid(&report);
        assert_eq!(report["outcome"], "interrupted");
        assert_eq!(step(&report, "quick")["status"], "passed");
        assert_eq!(step(&report, "long")["status"], "interrupted");
        assert_eq!(step(&report, "never")["status"], "skipped");
        assert_eq!(report["stopped_early"]["step"], "long");
        assert_eq!(
            threshold(&report, "quick.revision > 0")["status"],
            "passed",
            "finished steps are still judged"
        );
        assert!(
            !alive(etcd_pid),
            "embedded etcd {etcd_pid} still running after signal {signal}"
        );
    }
}

/// The directory scen made for the etcd member `pid` (its data directory's parent).
fn run_dir_of(pid: u32) -> std::path::PathBuf {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let data = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .find_map(|a| a.strip_prefix("--data-dir=").map(std::path::PathBuf::from))
        .unwrap();
    data.parent().unwrap().to_path_buf()
}

#[test]
fn kill_9_of_scen_takes_its_etcd_down_and_the_next_run_removes_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut watched, etcd_pid) = start_slow_run(&dir.path().join("r.json"));
    let child = &mut watched.child;
    let run_dir = run_dir_of(etcd_pid);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(gone(&[etcd_pid]), "etcd {etcd_pid} survived scen's SIGKILL");
    assert!(run_dir.exists(), "nothing of scen ran after SIGKILL");
    // The next run that starts an etcd removes what the killed one left.
    let r = run(&fixture("keys.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!run_dir.exists(), "{} is still there", run_dir.display());
}

#[test]
fn on_an_external_etcd_writes_stay_under_the_run_prefix() {
    let (_rt, _etcd, url) = external();
    etcdctl(&url, &["put", "/registry/pods/default/existing", "keep-me"]);

    let r = run(&fixture("keys.rhai"), &["--endpoints", &url, "--keep-keys"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert!(!report["target"]["embedded"].as_bool().unwrap());
    let prefix = report["target"]["prefix"].as_str().unwrap().to_string();
    assert!(prefix.starts_with("/scen/") && prefix.ends_with('/'));
    let under = etcdctl(
        &url,
        &[
            "get",
            &prefix,
            "--prefix",
            "--count-only",
            "--write-out=fields",
        ],
    );
    assert!(
        under.contains("\"Count\" : 26"),
        "26 keys under {prefix}: {under}"
    );
    let all = etcdctl(&url, &["get", "", "--from-key", "--keys-only"]);
    let outside: Vec<_> = all
        .lines()
        .filter(|k| !k.is_empty() && !k.starts_with(&prefix))
        .collect();
    assert_eq!(
        outside,
        vec!["/registry/pods/default/existing"],
        "nothing written outside the prefix"
    );

    // Without --keep-keys the prefix is removed at the end.
    let r = run(&fixture("keys.rhai"), &["--endpoints", &url]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(report["target"]["cleaned_up_keys"], 26);
    let prefix = report["target"]["prefix"].as_str().unwrap();
    assert!(etcdctl(&url, &["get", prefix, "--prefix", "--keys-only"])
        .trim()
        .is_empty());

    // An absolute write outside the prefix is refused on a cluster scen did not start.
    let r = run(
        &fixture("keys.rhai"),
        &["--endpoints", &url, "--set", "outside=true"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("refusing to write `/registry/pods/x`"),
        "{}",
        r.stderr
    );
    assert_eq!(etcdctl(&url, &["get", "/registry/pods/x"]).trim(), "");
    assert_eq!(
        etcdctl(
            &url,
            &[
                "get",
                "/registry/pods/default/existing",
                "--print-value-only"
            ]
        )
        .trim(),
        "keep-me"
    );
}

#[test]
fn an_absolute_write_is_allowed_on_the_embedded_etcd() {
    let r = run(&fixture("keys.rhai"), &["--set", "outside=true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        step(r.report.as_ref().unwrap(), "outside")["record"]["key"],
        "/registry/pods/x"
    );
}

#[test]
fn background_steps_joins_results_imports_and_values_files() {
    let r = run(
        &fixture("flow.rhai"),
        &[
            "--values",
            fixture("values.yaml").to_str().unwrap(),
            "--set",
            "tier=small",
        ],
    );
    // batch=7 from the values file makes `after.doubled == 20` fail: exit 1, but every step ran.
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    assert_eq!(
        report["params"]["tier"], "small",
        "--set wins over the values file"
    );
    assert_eq!(
        report["params"]["batch"], 7,
        "values file wins over the default"
    );
    assert_eq!(report["param_sources"]["batch"], "values");
    assert_eq!(report["param_sources"]["label"], "default");
    assert_eq!(step(&report, "load")["background"], true);
    assert_eq!(step(&report, "after")["record"]["seen"], 200);
    assert_eq!(step(&report, "after")["record"]["doubled"], 14);
    assert_eq!(
        threshold(&report, "after.doubled == 20")["status"],
        "failed"
    );
    // Thresholds failing without abort_on_fail do not stop the run.
    assert_eq!(step(&report, "last")["status"], "passed");
}

#[test]
fn abort_on_fail_stops_the_run_early() {
    let r = run(
        &fixture("flow.rhai"),
        &["--set", "fail_fast=true", "--set", "batch=10"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(threshold(&report, "check.bad == 0")["status"], "failed");
    assert_eq!(step(&report, "last")["status"], "skipped");
    assert!(report["stopped_early"]["reason"]
        .as_str()
        .unwrap()
        .contains("abort_on_fail"));
}

#[test]
fn script_errors_in_steps_exit_2_with_location_and_skip_the_rest() {
    let r = run(&fixture("errors.rhai"), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let boom = step(&report, "boom");
    assert_eq!(boom["status"], "failed");
    assert!(boom["error"]["message"]
        .as_str()
        .unwrap()
        .contains("the disk is on fire"));
    assert!(
        boom["error"]["location"]
            .as_str()
            .unwrap()
            .contains("errors.rhai:6:"),
        "{boom}"
    );
    assert_eq!(step(&report, "after")["status"], "skipped");
    assert_eq!(threshold(&report, "first.ok == true")["status"], "passed");

    let r = run(&fixture("errors.rhai"), &["--set", "mode=options"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("invalid options for etcd::put_many") && r.stderr.contains("cuont"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_sandbox_refuses_actions_at_top_level_endless_loops_and_eval() {
    let r = run(&fixture("errors.rhai"), &["--set", "mode=toplevel"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("etcd::put can only run inside a step"),
        "{}",
        r.stderr
    );
    assert!(
        r.report.unwrap()["target"].is_null(),
        "no etcd started for a plan error"
    );

    let r = run(
        &fixture("errors.rhai"),
        &["--set", "mode=loop", "--max-operations", "100000"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("operation limit"), "{}", r.stderr);

    let r = run(&fixture("eval.rhai"), &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("'eval' is disabled") && r.stderr.contains("eval.rhai:2:"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_second_signal_leaves_at_once_and_still_writes_the_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (mut watched, etcd_pid) = start_slow_run(&json);
    let child = &mut watched.child;
    // Two different signals do not merge into one: the second arrives while the first is handled.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_schema_valid(&report);
    assert_eq!(report["outcome"], "interrupted");
    assert_eq!(report["exit_code"], 130);
    assert!(
        report["stopped_early"]["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted twice"),
        "{}",
        report["stopped_early"]
    );
    assert_eq!(step(&report, "quick")["status"], "passed");
    assert_eq!(step(&report, "long")["status"], "interrupted");
    assert!(gone(&[etcd_pid]), "etcd {etcd_pid} outlived scen");
}

#[test]
fn a_binary_that_is_not_etcd_and_a_tiny_quota_are_usage_errors() {
    let r = run(&fixture("keys.rhai"), &["--etcd-bin", "/bin/true"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("`/bin/true` is not etcd"), "{}", r.stderr);
    assert_eq!(r.report.unwrap()["error"]["kind"], "usage");
    let r = run(&fixture("keys.rhai"), &["--etcd-quota", "1KiB"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("give 16MiB to 64GiB"), "{}", r.stderr);
}

/// A second signal ends scen within a second even when an output blocks (a FIFO nobody reads, on
/// which a write waits up to 2 s), and the data directory it had no time to remove is removed by
/// the next run.
#[test]
fn a_second_signal_exits_at_once_whatever_blocks_and_the_next_run_reaps_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (mut watched, etcd_pid) = start_slow_run(&fifo);
    let child = &mut watched.child;
    let run_dir = run_dir_of(etcd_pid);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let signalled = Instant::now();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(
        took < Duration::from_millis(1500),
        "the second signal took {took:?} (a FIFO write waits 2 s)"
    );
    assert!(gone(&[etcd_pid]), "etcd {etcd_pid} outlived scen");
    // Whatever the exit left, the next run that starts an etcd removes.
    let r = run(&fixture("keys.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!run_dir.exists(), "{} is still there", run_dir.display());
}

#[test]
fn a_step_past_its_timeout_fails_with_the_timeout_kind_in_an_action_or_in_script_code() {
    for which in ["action", "script"] {
        let r = run(
            &fixture("step-timeout.rhai"),
            &["--set", &format!("which={which}")],
        );
        assert_eq!(r.code, 2, "{which}: {}", r.stderr);
        let report = r.report.unwrap();
        let slow = step(&report, "slow");
        assert_eq!(slow["status"], "failed", "{which}: {slow}");
        assert_eq!(slow["error"]["kind"], "timeout", "{which}: {slow}");
        assert!(
            slow["error"]["message"]
                .as_str()
                .unwrap()
                .contains("past its timeout"),
            "{which}: {slow}"
        );
        // Well before the 60 s sleep: the deadline stopped it.
        assert!(
            slow["duration_ms"].as_f64().unwrap() < 30_000.0,
            "{which}: {slow}"
        );
        assert_eq!(step(&report, "after")["status"], "skipped", "{which}");
    }
}

//! End-to-end: live metrics while a scenario runs — `--out prometheus-rw=URL` into a real
//! Prometheus (its remote-write receiver), `--metrics-listen` scraped by it, and the Grafana
//! dashboard's every PromQL expression run against what arrived. Totals must equal the JSON
//! report's; a receiver that is down or hangs must fail no run.

mod common;

use std::time::{Duration, Instant};

use common::prometheus::{free_port, Prometheus};
use common::*;
use serde_json::Value;

/// The one value of an instant query, by the labels it must have.
fn value(prom: &Prometheus, promql: &str) -> Option<f64> {
    let r = prom.query(promql);
    assert!(r.len() <= 1, "{promql}: more than one series: {r:?}");
    r.first()
        .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
}

/// Requests, errors by code and the p99 of each step's operations, as the report has them.
fn report_totals(report: &Value) -> Vec<(String, String, u64, Value, f64)> {
    let mut out = Vec::new();
    for s in report["steps"].as_array().unwrap() {
        let step = s["name"].as_str().unwrap();
        for (op, r) in s["record"]["by_op"].as_object().unwrap() {
            let requests = r["ok"].as_u64().unwrap() + r["errors"].as_u64().unwrap();
            let p99 = r["latency"]["p99"].as_f64().unwrap_or(f64::NAN);
            let codes = if s["record"]["by_op"].as_object().unwrap().len() == 1 {
                s["record"]["errors_by_code"].clone()
            } else {
                Value::Null
            };
            out.push((step.to_string(), op.clone(), requests, codes, p99));
        }
    }
    out
}

/// The totals Prometheus holds for the run equal the report's: requests per step and operation,
/// errors by code, and the exact p99.
fn assert_totals_match(prom: &Prometheus, report: &Value) {
    let run_id = report["run_id"].as_str().unwrap();
    let totals = report_totals(report);
    assert!(
        totals.len() >= 4,
        "three steps, one with two ops: {totals:?}"
    );
    for (step, op, requests, codes, p99) in totals {
        let sel = format!("run_id=\"{run_id}\",step=\"{step}\",op=\"{op}\"");
        let got = value(
            prom,
            &format!("last_over_time(scen_requests_total{{{sel}}}[10m])"),
        );
        assert_eq!(got, Some(requests as f64), "{step} {op} requests");
        if let Some(codes) = codes.as_object() {
            for (code, n) in codes {
                let got = value(
                    prom,
                    &format!(
                        "last_over_time(scen_request_errors_total{{{sel},code=\"{code}\"}}[10m])"
                    ),
                );
                assert_eq!(got, n.as_f64(), "{step} {op} errors {code}");
            }
            let all = value(
                prom,
                &format!(
                    "sum(last_over_time(scen_request_errors_total{{{sel}}}[10m])) or vector(0)"
                ),
            );
            let want: f64 = codes.values().map(|n| n.as_f64().unwrap()).sum();
            assert_eq!(all, Some(want), "{step} {op}: no other error codes");
        }
        let q = value(
            prom,
            &format!(
                "last_over_time(scen_request_duration_quantile_seconds{{{sel},quantile=\"0.99\"}}[10m])"
            ),
        )
        .unwrap();
        assert!(
            (q * 1e3 - p99).abs() < 1e-6,
            "{step} {op}: live p99 {q}s, report {p99}ms"
        );
        // PromQL's estimate from the buckets falls in the bucket holding the exact p99.
        let est = value(
            prom,
            &format!(
                "histogram_quantile(0.99, last_over_time(scen_request_duration_seconds_bucket{{{sel}}}[10m]))"
            ),
        )
        .unwrap();
        let bounds = [0.0]
            .into_iter()
            .chain(scen_engine::live::BUCKETS)
            .collect::<Vec<_>>();
        // The report's p99 is an HDR value (3 significant figures: up to 0.1% above the latency it
        // stands for), so near a bucket bound it may stand for a latency in the bucket below.
        let bucket = |v: f64| bounds.iter().rposition(|b| *b < v).expect("p99 above 0");
        let (i_low, i) = (bucket(p99 / 1e3 * (1.0 - 1e-3)), bucket(p99 / 1e3));
        let (lo, hi) = (
            bounds[i_low],
            bounds.get(i + 1).copied().unwrap_or(f64::MAX),
        );
        assert!(
            est >= lo - 1e-9 && est <= hi + 1e-9,
            "{step} {op}: histogram_quantile {est}s outside ({lo}, {hi}] that holds p99 {p99}ms"
        );
    }
}

/// Every `expr` in the Grafana dashboard (panels, annotations) and its run_id variable's query.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("examples/grafana/scen.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        out.push((
            format!("annotation {}", a["name"]),
            a["expr"].as_str().unwrap().to_string(),
        ));
    }
    out
}

/// Runs the dashboard's queries over the run's window: each must be valid and return data.
fn assert_dashboard_has_data(prom: &Prometheus, report: &Value, started: f64) {
    let run_id = report["run_id"].as_str().unwrap();
    let end = chrono_now() + 5.0;
    let queries = dashboard_queries();
    assert!(queries.len() >= 12, "{queries:?}");
    for (title, expr) in queries {
        let promql = expr
            .replace("$run_id", run_id)
            .replace("$__rate_interval", "5s")
            .replace("$__range", "10m");
        assert!(
            !promql.contains('$'),
            "{title}: a variable left in {promql}"
        );
        let v = prom.api(
            "/api/v1/query_range",
            &[
                ("query", &promql),
                ("start", &format!("{}", started - 5.0)),
                ("end", &format!("{end}")),
                ("step", "1"),
            ],
        );
        assert_eq!(v["status"], "success", "{title}: {promql}: {v}");
        let series = v["data"]["result"].as_array().unwrap();
        assert!(
            !series.is_empty(),
            "{title}: `{promql}` returned nothing for run {run_id}"
        );
    }
    let v = prom.api(
        "/api/v1/label/run_id/values",
        &[("match[]", "scen_requests_total")],
    );
    assert!(
        v["data"].as_array().unwrap().iter().any(|x| x == run_id),
        "the run_id variable lists the run: {v}"
    );
}

fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn remote_write_into_real_prometheus_matches_the_report_and_feeds_the_dashboard() {
    let prom = Prometheus::start("none", &[]);
    let started = chrono_now();
    let r = run(
        &fixture("live.rhai"),
        &[
            "--out",
            &format!("prometheus-rw={}", prom.write_url()),
            "--out-interval",
            "1s",
            "--out-label",
            "team=storage",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let out = &report["outputs"][0];
    assert_eq!(out["kind"], "prometheus-rw");
    assert_eq!(out["dropped_samples"], 0, "{out}");
    assert!(out["sent_samples"].as_u64().unwrap() > 100, "{out}");
    assert!(
        out["requests"].as_u64().unwrap() >= 3,
        "a push a second: {out}"
    );

    assert_totals_match(&prom, &report);
    let run_id = report["run_id"].as_str().unwrap();
    let sel = format!("run_id=\"{run_id}\",scenario=\"live\",team=\"storage\"");
    // Step boundaries: every step ran and ended, after it started.
    for s in ["load", "mixed", "full"] {
        let at = |name: &str| {
            value(
                &prom,
                &format!("last_over_time({name}{{{sel},step=\"{s}\"}}[10m])"),
            )
            .unwrap_or_else(|| panic!("{name} for {s}"))
        };
        assert_eq!(at("scen_step_running"), 0.0, "{s} ended");
        assert_eq!(at("scen_step_passed"), 1.0, "{s} passed");
        assert!(at("scen_step_end_timestamp_seconds") >= at("scen_step_start_timestamp_seconds"));
    }
    // The open loop's intended rate went out while it ran.
    let intended = value(
        &prom,
        &format!("max_over_time(scen_intended_rate_per_second{{{sel},step=\"load\"}}[10m])"),
    );
    assert_eq!(intended, Some(300.0));
    // Verdicts: each threshold and the exit code.
    let passed = prom.query(&format!(
        "last_over_time(scen_threshold_passed{{{sel},status=\"passed\"}}[10m]) == 1"
    ));
    assert_eq!(passed.len(), 3, "{passed:?}");
    assert_eq!(
        value(
            &prom,
            &format!("last_over_time(scen_run_exit_code{{{sel}}}[10m])")
        ),
        Some(0.0)
    );
    // etcd's own view rode along.
    let fsyncs = value(
        &prom,
        &format!("max(last_over_time(etcd_disk_wal_fsync_duration_seconds_count{{{sel}}}[10m]))"),
    )
    .unwrap();
    assert!(fsyncs > 0.0);
    // Each ended step's typed figures went out in base units: its p99 in seconds, the server
    // view scen computed for the step (etcd's WAL fsync p99 over the step), its throughput.
    let figure = |family: &str, step: &str, path: &str| {
        value(
            &prom,
            &format!("last_over_time({family}{{{sel},step=\"{step}\",figure=\"{path}\"}}[10m])"),
        )
    };
    let load = &step(&report, "load")["record"];
    let p99 = figure("scen_step_figure_seconds", "load", "latency.p99").unwrap();
    assert!(
        (p99 - load["latency"]["p99"].as_f64().unwrap() / 1e3).abs() < 1e-9,
        "{p99} vs {}",
        load["latency"]["p99"]
    );
    let fsync = figure("scen_step_figure_seconds", "load", "server.wal_fsync.p99").unwrap();
    assert!(
        (fsync - load["server"]["wal_fsync"]["p99"].as_f64().unwrap() / 1e3).abs() < 1e-9,
        "{fsync} vs {}",
        load["server"]["wal_fsync"]
    );
    let rate = figure("scen_step_figure_per_second", "mixed", "throughput").unwrap();
    let want = step(&report, "mixed")["record"]["throughput"]
        .as_f64()
        .unwrap();
    assert!((rate - want).abs() < 1e-6 * want, "{rate} vs {want}");
    assert_eq!(
        figure("scen_step_figure", "full", "errors"),
        step(&report, "full")["record"]["errors"].as_f64()
    );

    assert_dashboard_has_data(&prom, &report, started);
}

#[test]
fn metrics_listen_is_scraped_by_prometheus_through_the_end_of_the_run() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let prom = Prometheus::start("scen", &[&addr]);
    let r = run(
        &fixture("live.rhai"),
        &["--metrics-listen", &addr, "--set", "seconds=4"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("http://{addr}/metrics")),
        "{}",
        r.stderr
    );
    let report = r.report.unwrap();
    let out = &report["outputs"][0];
    assert_eq!(out["kind"], "metrics-listen");
    assert!(out["requests"].as_u64().unwrap() >= 3, "{out}");
    let up = value(&prom, "max_over_time(up{job=\"scen\"}[10m])");
    assert_eq!(up, Some(1.0), "Prometheus parsed the OpenMetrics text");
    // It stayed up for a scrape after the last step, so the final totals are there.
    assert_totals_match(&prom, &report);
    assert_eq!(
        value(
            &prom,
            &format!(
                "last_over_time(scen_run_exit_code{{run_id=\"{}\"}}[10m])",
                report["run_id"].as_str().unwrap()
            )
        ),
        Some(0.0)
    );
}

#[test]
fn a_receiver_that_is_down_or_hangs_fails_no_run_and_the_drops_are_counted() {
    // One port nothing listens on; one that accepts connections and never answers.
    let down = free_port();
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hung.incoming().take(64) {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let started = Instant::now();
    let mut child = scen()
        .args(["run", "tests/fixtures/live.rhai", "--set", "seconds=1"])
        .args(["--report", json.to_str().unwrap(), "--out-interval", "1s"])
        .arg("--out")
        .arg(format!(
            "prometheus-rw=http://127.0.0.1:{down}/api/v1/write"
        ))
        .arg("--out")
        .arg(format!(
            "prometheus-rw=http://127.0.0.1:{hung_port}/api/v1/write"
        ))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("scen hung on a receiver that is down or hangs");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let outs = report["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 2);
    for o in outs {
        assert_eq!(o["sent_samples"], 0, "{o}");
        assert!(o["dropped_samples"].as_u64().unwrap() > 0, "{o}");
        assert!(o["last_error"].is_string(), "{o}");
    }
    assert!(
        outs[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("onnection refused"),
        "{}",
        outs[0]
    );
    assert!(stderr.contains("warning: --out"), "{stderr}");
    drop(keep);
}

#[test]
fn bad_live_flags_are_usage_errors_before_anything_runs() {
    for (args, says) in [
        (
            vec!["--out", "influxdb=http://x"],
            "expected prometheus-rw=URL",
        ),
        (vec!["--out", "prometheus-rw=ftp://h/w"], "http(s) URL"),
        (vec!["--out-label", "step=x"], "--out-label step=x"),
        (vec!["--out-interval", "10ms"], "--out-interval 10ms"),
    ] {
        let r = run(&fixture("live.rhai"), &args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("step load"), "nothing ran: {}", r.stderr);
    }
    // A port taken by someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = run(&fixture("live.rhai"), &["--metrics-listen", &addr]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--metrics-listen"), "{}", r.stderr);
}

#[test]
fn heartbeat_flows_go_out_live_as_operations_of_their_step() {
    let prom = Prometheus::start("none", &[]);
    let r = run(
        &fixture("heartbeat.rhai"),
        &[
            "--out",
            &format!("prometheus-rw={}", prom.write_url()),
            "--out-interval",
            "1s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let run_id = report["run_id"].as_str().unwrap();
    let hb = &step(&report, "hb")["record"];
    for flow in ["leases", "node_status", "pod_churn"] {
        let want = hb[flow]["ok"].as_u64().unwrap() + hb[flow]["errors"].as_u64().unwrap();
        assert!(want > 0, "{flow}: {hb}");
        let sel = format!("run_id=\"{run_id}\",step=\"hb\",op=\"{flow}\"");
        assert_eq!(
            value(
                &prom,
                &format!("last_over_time(scen_requests_total{{{sel}}}[10m])")
            ),
            Some(want as f64),
            "{flow}"
        );
        let p99 = value(
            &prom,
            &format!(
                "last_over_time(scen_request_duration_quantile_seconds{{{sel},quantile=\"0.99\"}}[10m])"
            ),
        )
        .unwrap();
        let want_p99 = hb[flow]["latency"]["p99"].as_f64().unwrap();
        assert!(
            (p99 * 1e3 - want_p99).abs() < 1e-6,
            "{flow}: {p99}s vs {want_p99}ms"
        );
    }
    let intended = value(
        &prom,
        &format!(
            "max_over_time(scen_intended_rate_per_second{{run_id=\"{run_id}\",step=\"hb\"}}[10m])"
        ),
    )
    .unwrap();
    assert!(intended > 0.0);
}

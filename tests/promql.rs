//! End-to-end: `metrics::query` against a real Prometheus (Debian's package, installed by
//! scripts/setup.sh) that the test starts, scraping an etcd every second.

mod common;

use common::prometheus::{free_port, Prometheus};
use common::*;

#[test]
fn instant_and_range_queries_against_real_prometheus() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = external_etcd(&rt);
    let target = etcd.metrics_url().trim_start_matches("http://").to_string();
    let prom = Prometheus::start("etcd", &[&target]);
    let r = run(
        &fixture("promql.rhai"),
        &[
            "--endpoints",
            etcd.client_url(),
            "--set",
            &format!("prometheus={}", prom.url),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);

    let seen = &step(&report, "seen")["record"];
    assert_eq!(seen["kind"], "vector");
    assert!(seen["value"].as_f64().unwrap() >= 400.0, "{seen}");

    let up = &step(&report, "up")["record"]["series"][0];
    assert_eq!(up["labels"]["job"], "etcd");
    assert_eq!(up["labels"]["instance"], target.as_str());

    let leader = &step(&report, "leader")["record"];
    assert_eq!(leader["kind"], "matrix");
    let points = leader["series"][0]["points"].as_array().unwrap();
    assert!(
        (2..=11).contains(&points.len()),
        "10s at 1s steps, from when scraping began: {} points",
        points.len()
    );
    let times: Vec<f64> = points.iter().map(|p| p["time"].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 1e-6),
        "{times:?}"
    );

    let bad = &step(&report, "bad")["record"];
    let message = bad["message"].as_str().unwrap();
    assert!(
        message.contains("bad_data") && message.contains("parse error"),
        "Prometheus's own error is passed on: {message}"
    );
}

#[test]
fn an_unreachable_prometheus_is_an_infrastructure_failure() {
    let port = free_port();
    let r = run(
        &fixture("promql.rhai"),
        &[
            "--set",
            &format!("prometheus=http://127.0.0.1:{port}"),
            "--set",
            "writes=1",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("Prometheus at http://127.0.0.1:{port}"))
            && r.stderr.contains("onnection refused"),
        "{}",
        r.stderr
    );
    let report = r.report.expect("a partial report");
    assert_eq!(step(&report, "load")["status"], "passed");
}

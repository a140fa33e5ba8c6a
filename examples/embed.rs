//! Embedding `scen-engine`: run a scenario from your own Rust program and act on its report —
//! here, print every threshold and exit with scen's exit code.
//!
//! ```sh
//! cargo run --example embed -- scenarios/etcd-health-lab.rhai secrets=200
//! ```
//!
//! The arguments after the file are `--set` overrides. With no `connect` settings, the engine
//! starts (and afterwards removes) its own etcd, exactly as `scen run` does.

use std::sync::Arc;

use scen_engine::params::Overrides;
use scen_engine::run::Quiet;
use scen_engine::RunConfig;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .unwrap_or_else(|| "scenarios/etcd-health-lab.rhai".to_string());
    let mut overrides = Overrides::default();
    overrides.set.extend(args);
    let cfg = RunConfig {
        scenario: scenario.into(),
        overrides,
        ..Default::default()
    };
    // Cancel the token (from a signal handler, a timeout...) to stop the run cleanly.
    let report = scen_engine::run(&cfg, CancellationToken::new(), Arc::new(Quiet)).await;

    println!(
        "{}: {:?} in {:.1}s",
        report.scenario.name,
        report.outcome,
        report.duration_ms / 1e3
    );
    for t in &report.thresholds {
        println!("  {:?} {} — {}", t.status, t.expression, t.message);
    }
    // The same JSON `scen run --report` writes.
    let json = serde_json::to_string(&report).expect("the report serializes");
    println!("report: {} bytes of JSON", json.len());
    std::process::exit(report.exit_code);
}

//! `scen run`: the scenario file found (a path or a shipped name), its parameters merged, the run
//! started with its live outputs and progress, its reports written and its outcome mapped.

use std::sync::Arc;

use scen_engine::params::Overrides;
use scen_engine::report::{self, StepStatus};
use scen_engine::script::Limits;
use scen_engine::Exit;
use scen_engine::RunConfig;
use tokio_util::sync::CancellationToken;

use crate::cli::*;
use crate::progress::*;

/// The `--values`/`--set` parameter overrides of the command line.
pub(crate) fn overrides(p: &ParamArgs) -> Overrides {
    Overrides {
        values_file: p.values.clone(),
        set: p.set.clone(),
    }
}

/// `scen run FILE|NAME`: runs the scenario and returns the exit code of its outcome.
pub(crate) fn run(mut args: RunArgs, quiet: bool) -> Exit {
    let _shipped = match scenario_file(&args.file, quiet) {
        Ok((file, guard)) => {
            args.file = file;
            guard
        }
        Err(code) => return code,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let connect = args.connect.settings();
    if connect.is_some() && (args.members.is_some() || args.etcd_quota.is_some()) {
        say!("error: --members and --etcd-quota set up the embedded etcd; they cannot go with --endpoints");
        return Exit::Usage;
    }
    if let Some(plain) = args
        .connect
        .endpoints
        .iter()
        .find(|e| e.starts_with("http://"))
        .filter(|_| {
            let c = &args.connect;
            c.cacert.is_some() || c.cert.is_some() || c.key.is_some()
        })
    {
        say!("error: --cacert/--cert/--key set up TLS, but {plain} is plain http: give https:// endpoints (or drop the TLS flags)");
        return Exit::Usage;
    }
    let c = &args.connect;
    if connect.is_none() && (c.cacert.is_some() || c.cert.is_some() || c.user.is_some()) {
        say!("error: --cacert/--cert/--key/--user need --endpoints (the embedded etcd uses plain loopback)");
        return Exit::Usage;
    }
    let mut cfg = RunConfig {
        scenario: args.file.clone(),
        overrides: overrides(&args.params),
        connect,
        keep_keys: args.keep_keys,
        allow_maintenance: args.allow_maintenance,
        allow_registry_writes: args.allow_registry_writes,
        artifacts: args.artifacts.clone(),
        metrics_urls: args.metrics_urls.clone(),
        baseline: args.baseline.clone(),
        limits: Limits {
            max_operations: args.max_operations,
            ..Limits::default()
        },
        ..Default::default()
    };
    // Command-line settings win over the scenario's embedded_etcd().
    cfg.embedded_overrides.etcd_bin = args.etcd_bin.clone();
    cfg.embedded_overrides.members = args.members.as_deref().and_then(|m| m.parse().ok());
    if let Some(q) = &args.etcd_quota {
        match scen_engine::units::parse_size(q) {
            Ok(bytes) => match scen_engine::embedded::check_quota(bytes) {
                Ok(b) => cfg.embedded_overrides.settings.quota_backend_bytes = Some(b),
                Err(why) => {
                    say!("error: --etcd-quota {q}: {why}");
                    return Exit::Usage;
                }
            },
            Err(e) => {
                say!("error: --etcd-quota {q}: {e} (write a size such as 8GiB)");
                return Exit::Usage;
            }
        }
    }
    let live = match scen_engine::live::outputs::Spec::parse(
        &args.outs,
        &args.out_labels,
        args.out_interval.as_deref(),
        args.metrics_listen.as_deref(),
    ) {
        Ok(l) => l,
        Err(e) => {
            say!("error: {e}");
            return Exit::Usage;
        }
    };
    let progress = Arc::new(Progress::new(quiet));
    let outputs = Outputs {
        report: args.report.clone(),
        junit: args.junit.clone(),
        markdown: args.markdown.clone(),
        html: args.html.clone(),
    };
    if let Err(e) = outputs.check(&args.file, args.params.values.as_deref()) {
        say!("error: {e}");
        return Exit::Usage;
    }
    // block_on runs this future on the main thread, which outlives the embedded etcd.
    let report = rt.block_on(async {
        let running = if live.any() {
            match live.start().await {
                Ok((hub, running)) => {
                    if let Some(addr) = running.listening() {
                        say!("serving live metrics at http://{addr}/metrics");
                    }
                    cfg.live = Some(hub);
                    Some(running)
                }
                Err(e) => {
                    say!("error: {e}");
                    return None;
                }
            }
        } else {
            None
        };
        let cancel = CancellationToken::new();
        tokio::spawn(watch_signals(
            cancel.clone(),
            progress.clone(),
            outputs.clone(),
        ));
        let mut report = scen_engine::run(&cfg, cancel, progress.clone()).await;
        if let Some(r) = running {
            report.outputs = r.finish().await;
        }
        Some(report)
    });
    let Some(report) = report else {
        return Exit::Usage;
    };
    drop(progress);
    let mut code = Exit::from(report.outcome);
    let render = |e: &report::ErrorInfo| {
        e.detail
            .clone()
            .unwrap_or_else(|| format!("error: {}", e.message))
    };
    if let Some(e) = &report.error {
        say!("{}", render(e));
    }
    for s in report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
    {
        if let Some(e) = &s.error {
            say!("step `{}` failed:\n{}", s.name, render(e));
        }
    }
    for o in report.outputs.iter().filter(|o| o.dropped_samples > 0) {
        say!(
            "warning: --out {} dropped {} samples: {}",
            o.target,
            o.dropped_samples,
            o.last_error
                .as_deref()
                .unwrap_or("the receiver was too slow")
        );
    }
    // Written from a copy with every credential masked.
    let report = report::redact::redact_report(&report);
    if !outputs.write(&report) {
        code = code.worst(Exit::Usage);
    }
    print_summary(&report, quiet, code);
    code
}

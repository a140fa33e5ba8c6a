//! `scen doctor`: what scen can reach and start here (etcd, its metrics, the control plane), one
//! line per check, exit 3 when one fails.

use scen_engine::Exit;

use crate::cli::*;

/// `scen doctor`: one line per check; exit 3 when one fails.
pub(crate) fn doctor(args: DoctorArgs) -> Exit {
    use scen_engine::doctor::{diagnose, DoctorOptions, Status};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let connect = args.connect.settings();
    let lines = rt.block_on(diagnose(&DoctorOptions {
        connect,
        metrics_urls: args.metrics_urls,
        etcd_bin: args.etcd_bin,
        kubeconfig: args.kubeconfig,
        context: args.context,
    }));
    for l in &lines {
        let mark = match l.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out!("{mark} {}: {}", l.what, l.detail);
    }
    let failed = lines.iter().filter(|l| l.status == Status::Fail).count();
    if failed > 0 {
        say!("{failed} check(s) failed");
        Exit::Infrastructure
    } else {
        Exit::Success
    }
}

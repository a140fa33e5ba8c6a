//! End to end with a real Kubernetes control plane: `scen run` starts kube-apiserver,
//! kube-scheduler, kube-controller-manager and KWOK on its etcd, the kube backend goes through
//! them, each step gets the API server's own view, and nothing of it outlives the run.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The control plane's processes among `pid`'s children (any thread's).
fn control_plane_children(pid: u32) -> Vec<(u32, String)> {
    children_where(pid, |comm, _| comm.starts_with("kube-") || comm == "kwok")
}

#[test]
fn the_apiserver_lab_runs_on_a_real_control_plane_with_the_api_servers_own_view() {
    let r = run(
        &root().join("scenarios/apiserver-lab.rhai"),
        &[
            "--set",
            "nodes=10",
            "--set",
            "pods_per_node=4",
            "--set",
            "secrets=100",
            "--set",
            "configmaps=20",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.clone().unwrap();
    assert_schema_valid(&report);
    let cp = &report["control_plane"];
    let names: Vec<&str> = cp["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok"
        ]
    );
    for c in cp["components"].as_array().unwrap() {
        assert!(c["version"].as_str().unwrap().contains("v"), "{c}");
        assert!(c["port"].as_u64().unwrap() > 0);
        assert!(c["ready_ms"].as_f64().unwrap() <= cp["startup_ms"].as_f64().unwrap());
    }
    assert_eq!(cp["etcd_prefix"], "/registry");
    // The kubeconfig and PKI went with the run.
    let kubeconfig = std::path::Path::new(cp["kubeconfig"].as_str().unwrap());
    assert!(
        !kubeconfig.exists(),
        "{} is left behind",
        kubeconfig.display()
    );

    let cluster = step(&report, "cluster");
    let pods = &cluster["record"]["pods"];
    assert_eq!(pods["created"], 40);
    assert_eq!(pods["scheduled"], 40, "kube-scheduler bound every pod");
    assert_eq!(pods["running"], 40, "KWOK ran every pod");
    // The API server's own view of the step: the pods' creates and the scheduler's bindings
    // (scen binds none while a scheduler runs), and the scheduler's SLI.
    let api = &cluster["record"]["apiserver"];
    assert_eq!(api["no_data"], serde_json::Value::Null, "{api}");
    let creates = api["request_latency"]["pods"]["create"]["count"]
        .as_u64()
        .unwrap();
    assert!(creates >= 40, "{}", api["request_latency"]["pods"]);
    let bindings = api["request_latency"]["pods/binding"]["create"]["count"]
        .as_u64()
        .unwrap();
    assert_eq!(
        bindings, 40,
        "every binding is the scheduler's, one per pod"
    );
    assert!(cluster["record"]["api"]["pods"].get("bind").is_none());
    assert_eq!(api["scheduler"]["attempts"]["scheduled"], 40.0);
    assert_eq!(api["scheduler"]["pod_scheduling_sli"]["count"], 40);
    // Server-side latency is a bucketed histogram: its buckets are kept.
    assert!(api["request_latency"]["pods"]["create"]["buckets"].is_array());
    // The client's count of its creates and the server's agree.
    let client_creates = cluster["record"]["api"]["pods"]["create"]["calls"]
        .as_u64()
        .unwrap();
    assert_eq!(client_creates, 40);
    let secrets = step(&report, "secrets");
    let etcd_creates = secrets["record"]["apiserver"]["etcd_request_latency"]["secrets"]["create"]
        ["count"]
        .as_u64()
        .unwrap();
    assert_eq!(
        etcd_creates, 100,
        "one etcd create per secret (lab step 15)"
    );
    // 100 secrets and their namespace, besides what the controllers create in it.
    let created = secrets["record"]["apiserver"]["requests_by_code"]["201"]
        .as_f64()
        .unwrap();
    assert!(created >= 101.0, "{created}");
    assert!(report["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "passed"));
    assert_page_renders(&r);
}

#[test]
fn a_threshold_on_a_field_the_apiserver_view_lacks_fails_scen_check() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.rhai");
    std::fs::write(
        &f,
        "kube_control_plane(#{});\nstep(\"s\", |p| #{});\nthreshold(\"s.apiserver.rejectd == 0\");\n",
    )
    .unwrap();
    let out = scen().arg("check").arg(&f).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("apiserver view"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&f, "kube_control_plane(#{ schedulr: true });\n").unwrap();
    let out = scen().arg("check").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schedulr"));
    std::fs::write(
        &f,
        "kube_control_plane(#{ apiserver_flags: [\"--etcd-servers=http://x\"] });\n",
    )
    .unwrap();
    let out = scen().arg("check").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set by scen"));
}

#[test]
fn missing_binaries_exit_2_naming_the_build_command_and_a_dying_api_server_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cp.rhai");
    std::fs::write(
        &f,
        "kube_control_plane(#{});\nstep(\"s\", |p| etcd::put(\"k\", \"v\"));\n",
    )
    .unwrap();
    let etcd = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v etcd"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = scen()
        .arg("run")
        .arg(&f)
        .env("PATH", "/usr/bin:/bin")
        .env("SCEN_TOOLS", dir.path().join("none"))
        .env("SCEN_ETCD_BIN", etcd.trim())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("kube-apiserver") && err.contains("scripts/build-control-plane.sh"),
        "{err}"
    );

    // A flag kube-apiserver refuses: it exits during start-up, named, exit 3.
    std::fs::write(
        &f,
        "kube_control_plane(#{ scheduler: false, controller_manager: false, kwok: false, apiserver_flags: [\"--watch-cache-sizes=bogus\"] });\nstep(\"s\", |p| etcd::put(\"k\", \"v\"));\n",
    )
    .unwrap();
    let r = run(&f, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let report = r.report.unwrap();
    let msg = report["error"]["message"].as_str().unwrap();
    assert!(msg.contains("kube-apiserver exited"), "{msg}");
    assert_eq!(step(&report, "s")["status"], "skipped");
}

#[test]
fn kill_9_of_scen_takes_the_control_plane_down_and_the_next_run_removes_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("long.rhai");
    std::fs::write(
        &f,
        "kube_control_plane(#{});\nstep(\"wait\", |p| { sleep(\"120s\"); #{} });\n",
    )
    .unwrap();
    let mut child = spawn_run(&f, &dir.path().join("r.json"), Stdio::null());
    // Wait until the four components run (an event, not a time).
    let deadline = Instant::now() + Duration::from_secs(90);
    let procs = loop {
        let p = control_plane_children(child.id());
        if p.len() == 4 {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the control plane never started: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let apiserver = procs.iter().find(|(_, c)| c == "kube-apiserver").unwrap().0;
    let cmdline = std::fs::read_to_string(format!("/proc/{apiserver}/cmdline")).unwrap();
    let cert_dir = cmdline
        .split('\0')
        .find_map(|a| a.strip_prefix("--client-ca-file="))
        .map(|p| std::path::Path::new(p).parent().unwrap().to_path_buf())
        .unwrap();
    assert!(cert_dir.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let pids: Vec<u32> = procs.iter().map(|(p, _)| *p).collect();
    assert!(gone(&pids), "{procs:?} survived scen's SIGKILL");
    // The next run with a control plane removes the directory the killed one left.
    let g = dir.path().join("quick.rhai");
    std::fs::write(&g, "kube_control_plane(#{ scheduler: false, controller_manager: false, kwok: false });\nstep(\"s\", |p| etcd::put(\"k\", \"v\"));\n").unwrap();
    let r = run(&g, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!cert_dir.exists(), "{} is still there", cert_dir.display());
}

#[test]
fn pod_lifecycle_and_kubevirt_density_run_through_the_real_control_plane() {
    let r = run(
        &root().join("scenarios/pod-lifecycle.rhai"),
        &[
            "--set",
            "backend=kube",
            "--set",
            "nodes=4",
            "--set",
            "pods=24",
            "--set",
            "rate=40",
            "--set",
            "monitor=1s",
            "--set",
            "write_p99=30s",
            "--set",
            "startup_p99=60s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let pods = &step(&report, "pods")["record"];
    for phase in ["create", "schedule", "run", "monitor", "delete"] {
        assert_eq!(pods["phases"][phase]["count"], 24, "{phase}: {pods}");
    }
    // The bindings were kube-scheduler's: one pods/binding create per pod in the API server's view.
    let bindings =
        &step(&report, "pods")["record"]["apiserver"]["request_latency"]["pods/binding"]["create"];
    assert_eq!(bindings["count"], 24, "{bindings}");
    assert_eq!(
        step(&report, "pods")["record"]["apiserver"]["scheduler"]["attempts"]["scheduled"],
        24.0
    );

    let r = run(
        &root().join("scenarios/kubevirt-density.rhai"),
        &[
            "--set",
            "backend=kube",
            "--set",
            "nodes=3",
            "--set",
            "vmis=12",
            "--set",
            "rate=40",
            "--set",
            "monitor=1s",
            "--set",
            "monitor_interval=1s",
            "--set",
            "write_p99=30s",
            "--set",
            "startup_p99=60s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let vmis = &step(&report, "vmis")["record"];
    assert_eq!(vmis["errors"], 0, "{vmis}");
    assert_eq!(vmis["phases"]["run"]["count"], 12);
    let creates = &vmis["apiserver"]["request_latency"]["virtualmachineinstances"]["create"];
    assert_eq!(
        creates["count"], 12,
        "the VMIs went through the API server: {creates}"
    );
}

#[test]
fn kyverno_policy_reports_go_through_the_real_api_server_and_every_rescan_is_a_revision() {
    let r = run(
        &root().join("scenarios/kyverno-reports.rhai"),
        &[
            "--set",
            "backend=kube",
            "--set",
            "reports=30",
            "--set",
            "scans=2",
            "--set",
            "results=5",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    // Written by kube-apiserver (its CRD registered by scen), read back from etcd by scen.
    let created = &step(&report, "created")["record"];
    assert_eq!(created["backend"], "kube");
    assert_eq!(
        created["api"]["policyreports"]["create"]["calls"], 30,
        "{created}"
    );
    let scanned = &step(&report, "scanned")["record"]["resources"]["wgpolicyk8s.io/policyreports"];
    assert_eq!(scanned["keys"], 30);
    assert_eq!(
        scanned["revisions"], 90,
        "two rescans, each a real update: {scanned}"
    );
    let patches =
        &step(&report, "scans")["record"]["apiserver"]["request_latency"]["policyreports"]["patch"];
    assert_eq!(patches["count"], 60, "{patches}");
}

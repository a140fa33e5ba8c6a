//! `scen doctor`: what scen needs, checked and explained one line each (ok, warn, fail), the first
//! thing to run when something is off — the etcd binary for embedded runs, each endpoint, TLS,
//! credentials and permission under `/scen/`, the `/metrics` URLs, leader and members, the
//! database against its quota, the control plane's binaries, and a kubeconfig.

use std::path::PathBuf;
use std::time::Duration;

use crate::target::ConnectSettings;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Will not work: `scen doctor` exits 3.
    Fail,
}

/// One line of the diagnosis.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    /// The verdict.
    pub status: Status,
    /// What was checked (`endpoint http://127.0.0.1:2379`).
    pub what: String,
    /// What was found, and what to do about it.
    pub detail: String,
}

fn line(status: Status, what: impl Into<String>, detail: impl Into<String>) -> Line {
    Line {
        status,
        what: what.into(),
        detail: detail.into(),
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// The cluster (`--endpoints` and TLS/user flags); `None`: an embedded run.
    pub connect: Option<ConnectSettings>,
    /// `--metrics-urls`.
    pub metrics_urls: Vec<String>,
    /// The etcd binary for embedded runs.
    pub etcd_bin: Option<PathBuf>,
    /// A kubeconfig to check, and its context.
    pub kubeconfig: Option<String>,
    /// The kubeconfig's context.
    pub context: Option<String>,
}

/// Runs every check that applies.
pub async fn diagnose(opts: &DoctorOptions) -> Vec<Line> {
    let mut out = Vec::new();
    match &opts.connect {
        None => out.push(etcd_binary(opts.etcd_bin.clone())),
        Some(c) => cluster(c, &opts.metrics_urls, &mut out).await,
    }
    control_plane(&mut out);
    if opts.kubeconfig.is_some() || opts.context.is_some() {
        out.push(kubeconfig(opts.kubeconfig.as_deref(), opts.context.as_deref()).await);
    }
    out
}

fn etcd_binary(bin: Option<PathBuf>) -> Line {
    let bin = bin.unwrap_or_else(|| crate::embedded::EmbeddedConfig::default().etcd_bin);
    let what = format!("etcd binary {} (embedded runs)", bin.display());
    match std::process::Command::new(&bin).arg("--version").output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix("etcd Version: "))
                .unwrap_or("")
                .trim()
                .to_string();
            let minor = v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok());
            match (v.starts_with("3."), minor) {
                (true, Some(m)) if m >= 5 => line(Status::Ok, what, format!("etcd {v}")),
                (true, Some(_)) => line(Status::Warn, what, format!("etcd {v}: scen is tested with 3.5 and newer (scripts/setup.sh installs 3.5)")),
                _ => line(Status::Fail, what, format!("`{} --version` did not print an etcd version: give an etcd binary with --etcd-bin or SCEN_ETCD_BIN", bin.display())),
            }
        }
        Err(e) => line(
            Status::Fail,
            what,
            format!("cannot run it: {e} (scripts/setup.sh installs etcd, or give --etcd-bin)"),
        ),
    }
}

async fn cluster(c: &ConnectSettings, metrics_urls: &[String], out: &mut Vec<Line>) {
    // TLS files first: a file that cannot be read explains every failure after it.
    for (what, path) in [
        ("--cacert", &c.cacert),
        ("--cert", &c.cert),
        ("--key", &c.key),
    ] {
        if let Some(p) = path {
            match std::fs::read_to_string(p) {
                Ok(t) if t.contains("-----BEGIN ") => out.push(line(
                    Status::Ok,
                    format!("{what} {}", p.display()),
                    "readable PEM",
                )),
                Ok(_) => out.push(line(
                    Status::Fail,
                    format!("{what} {}", p.display()),
                    "not PEM (no -----BEGIN line)",
                )),
                Err(e) => out.push(line(
                    Status::Fail,
                    format!("{what} {}", p.display()),
                    format!("cannot read it: {e}"),
                )),
            }
        }
    }
    let urls = c.urls();
    let mut any = None;
    for u in &urls {
        let what = format!("endpoint {u}");
        let one = ConnectSettings {
            dial_timeout: Some(Duration::from_secs(3)),
            request_timeout: Some(Duration::from_secs(5)),
            ..c.clone()
        };
        match one.connect_to(std::slice::from_ref(u)).await {
            Ok(mut client) => match client.status().await {
                Ok(s) => {
                    out.push(line(
                        Status::Ok,
                        what,
                        format!("etcd {}, member {:x}, db {} bytes, raft index {}", s.version(), s.header().map_or(0, |h| h.member_id()), s.db_size(), s.raft_index()),
                    ));
                    any.get_or_insert(client);
                }
                Err(e) => out.push(line(Status::Fail, what, format!("unreachable: {} (is etcd listening there? check the scheme, host and port)", crate::actions::etcd_message(&e)))),
            },
            Err(e) => out.push(line(Status::Fail, what, format!("{e}"))),
        }
    }
    let Some(mut client) = any else {
        return;
    };
    // Credentials and permission: a key under /scen/, written and deleted.
    let key = format!("/scen/doctor-{:08x}", rand::random::<u32>());
    match client.put(key.as_str(), "ok", None).await {
        Ok(_) => {
            let _ = client.delete(key.as_str(), None).await;
            out.push(line(Status::Ok, "write under /scen/", "a key written and deleted"));
        }
        Err(e) => out.push(line(
            Status::Fail,
            "write under /scen/",
            format!("{} (with auth enabled give --user name:password of a user with read-write on /scen/)", crate::actions::etcd_message(&e)),
        )),
    }
    match client.member_list().await {
        Ok(m) => {
            let n = m.members().len();
            out.push(line(
                if n % 2 == 1 { Status::Ok } else { Status::Warn },
                "members",
                format!(
                    "{n} member(s){}",
                    if n % 2 == 1 {
                        ""
                    } else {
                        ": an even count tolerates no more failures than one fewer"
                    }
                ),
            ));
        }
        Err(e) => out.push(line(
            Status::Warn,
            "members",
            crate::actions::etcd_message(&e),
        )),
    }
    match client.status().await {
        Ok(s) if s.leader() != 0 => out.push(line(
            Status::Ok,
            "leader",
            format!("{:x}, raft term {}", s.leader(), s.raft_term()),
        )),
        Ok(_) => out.push(line(
            Status::Fail,
            "leader",
            "the cluster has no leader: writes will fail",
        )),
        Err(e) => out.push(line(
            Status::Fail,
            "leader",
            crate::actions::etcd_message(&e),
        )),
    }
    // /metrics: the given URLs, or the client URLs (etcd serves it there).
    let murls: Vec<String> = if metrics_urls.is_empty() {
        urls.clone()
    } else {
        metrics_urls.to_vec()
    };
    let http = match c.http_client() {
        Ok(h) => h,
        Err(e) => {
            out.push(line(Status::Fail, "metrics", e.to_string()));
            return;
        }
    };
    for u in murls {
        let url = if u.trim_end_matches('/').ends_with("/metrics") {
            u.clone()
        } else {
            format!("{}/metrics", u.trim_end_matches('/'))
        };
        let what = format!("metrics {url}");
        match http.get(&url).timeout(Duration::from_secs(3)).send().await {
            Ok(r) if r.status().is_success() => {
                let text = r.text().await.unwrap_or_default();
                let get = |name: &str| {
                    text.lines()
                        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                };
                match (get("etcd_mvcc_db_total_size_in_bytes"), get("etcd_server_quota_backend_bytes")) {
                    (Some(db), Some(q)) if q > 0.0 => {
                        let share = db / q;
                        let status = if share > 0.8 { Status::Fail } else if share > 0.5 { Status::Warn } else { Status::Ok };
                        out.push(line(status, what, format!(
                            "db {:.1} MiB of its {:.1} MiB quota ({:.0}%){}",
                            db / 1048576.0, q / 1048576.0, share * 100.0,
                            if share > 0.5 { ": compact and defragment before a big run (etcd::compact, etcd::defrag)" } else { "" }
                        )));
                    }
                    _ => out.push(line(Status::Warn, what, "answered, without etcd's db size and quota (not etcd's /metrics?)")),
                }
            }
            Ok(r) => out.push(line(Status::Warn, what, format!("answered {}: the server view of each step will have no data (give --metrics-urls)", r.status()))),
            Err(e) => out.push(line(Status::Warn, what, format!("{}: the server view of each step will have no data (give --metrics-urls)", crate::actions::error_chain(&e)))),
        }
    }
}

fn control_plane(out: &mut Vec<Line>) {
    use crate::control_plane::{find_bin, Which};
    let missing: Vec<&str> = [
        Which::KubeApiserver,
        Which::KubeControllerManager,
        Which::KubeScheduler,
        Which::Kwok,
    ]
    .into_iter()
    .filter(|w| find_bin(*w).is_err())
    .map(|w| w.bin())
    .collect();
    if missing.is_empty() {
        let v = find_bin(Which::KubeApiserver)
            .ok()
            .and_then(|b| std::process::Command::new(b).arg("--version").output().ok())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        out.push(line(
            Status::Ok,
            "control plane binaries (kube_control_plane)",
            format!("kube-apiserver, kube-controller-manager, kube-scheduler, kwok found ({v})"),
        ));
    } else {
        // Only scenarios with kube_control_plane need them.
        out.push(line(
            Status::Warn,
            "control plane binaries (kube_control_plane)",
            format!(
                "{} not found: scenarios that start a control plane need them (`{}`)",
                missing.join(", "),
                crate::control_plane::BUILD_COMMAND
            ),
        ));
    }
}

async fn kubeconfig(path: Option<&str>, context: Option<&str>) -> Line {
    let what = format!(
        "kubeconfig {}{}",
        path.unwrap_or("(default)"),
        context.map(|c| format!(" context {c}")).unwrap_or_default()
    );
    match crate::actions::cluster::apiserver::connect(path, context).await {
        Ok((client, url)) => {
            match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
                Ok(Ok(v)) => line(
                    Status::Ok,
                    what,
                    format!("{url}: Kubernetes {}", v.git_version),
                ),
                Ok(Err(e)) => line(Status::Fail, what, format!("{url}: {e}")),
                Err(_) => line(Status::Fail, what, format!("{url}: no answer within 5s")),
            }
        }
        Err(e) => line(Status::Fail, what, e.to_string()),
    }
}

//! The embedded Kubernetes control plane that a scenario asks for with `kube_control_plane(...)`:
//! kube-apiserver on the run's etcd, and optionally kube-scheduler, kube-controller-manager
//! (`--leader-elect=false`) and the KWOK controller, each a process on 127.0.0.1 with free ports,
//! a throwaway PKI and a kubeconfig in a temporary directory. Like the embedded etcd, every
//! process gets the parent-death signal and is stopped, and the directory removed, however the
//! run ends (a `kill -9` of scen too: the next run removes the directory).

pub mod component;
pub mod pki;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use component::{Component, Which};
pub use pki::Pki;

use crate::embedded::Spawner;

/// How the control plane's temporary directory is named.
const DIR_PREFIX: &str = "scen-kube-";

/// The command that builds the control plane's binaries.
pub const BUILD_COMMAND: &str = "scripts/build-control-plane.sh";

/// What a scenario asks for (`kube_control_plane(#{ ... })`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneSpec {
    /// Start kube-scheduler (default true): it binds pods to the KWOK nodes.
    pub scheduler: bool,
    /// Start kube-controller-manager (default true): deployments, replica sets, namespaces,
    /// garbage collection, node lifecycle.
    pub controller_manager: bool,
    /// Start the KWOK controller (default true): it moves the nodes that carry the
    /// `kwok.x-k8s.io/node: fake` annotation to Ready, their pods to Running, and renews their
    /// leases.
    pub kwok: bool,
    /// How long each component may take to become ready (default `60s`).
    pub start_timeout: Duration,
    /// Extra flags for kube-apiserver (`["--max-requests-inflight=800"]`).
    pub apiserver_flags: Vec<String>,
}

impl Default for ControlPlaneSpec {
    fn default() -> Self {
        ControlPlaneSpec {
            scheduler: true,
            controller_manager: true,
            kwok: true,
            start_timeout: Duration::from_secs(60),
            apiserver_flags: Vec::new(),
        }
    }
}

impl ControlPlaneSpec {
    /// The components this spec starts, kube-apiserver first.
    pub fn components(&self) -> Vec<Which> {
        let mut v = vec![Which::KubeApiserver];
        if self.controller_manager {
            v.push(Which::KubeControllerManager);
        }
        if self.scheduler {
            v.push(Which::KubeScheduler);
        }
        if self.kwok {
            v.push(Which::Kwok);
        }
        v
    }

    /// Checks what can be checked before a run: the options, then the binaries' presence.
    pub fn check(&self) -> Result<()> {
        self.check_options()?;
        for w in self.components() {
            find_bin(w)?;
        }
        Ok(())
    }

    /// Checks the options alone (a scenario's mistakes, found at `scen check`).
    pub fn check_options(&self) -> Result<()> {
        for f in &self.apiserver_flags {
            if !f.starts_with("--") || f.len() < 3 {
                return Err(Error::Config(format!(
                    "apiserver_flags: `{f}` is not a flag: give `--name=value`"
                )));
            }
            let name = f.trim_start_matches('-').split('=').next().unwrap_or("");
            if RESERVED_FLAGS.contains(&name) {
                return Err(Error::Config(format!(
                    "apiserver_flags: `--{name}` is set by scen (the embedded control plane's etcd, ports and PKI)"
                )));
            }
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&self.start_timeout) {
            return Err(Error::Config("start_timeout: give 1s to 10m".into()));
        }
        Ok(())
    }
}

/// kube-apiserver flags scen sets itself and a scenario may not override.
const RESERVED_FLAGS: &[&str] = &[
    "etcd-servers",
    "etcd-prefix",
    "secure-port",
    "bind-address",
    "tls-cert-file",
    "tls-private-key-file",
    "client-ca-file",
    "service-account-key-file",
    "service-account-signing-key-file",
    "etcd-cafile",
    "etcd-certfile",
    "etcd-keyfile",
];

/// Why the control plane could not be started or kept running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component's binary is neither on PATH nor in `$SCEN_TOOLS`.
    #[error("`{which}` was not found on PATH or under $SCEN_TOOLS ({tools}): build the control plane with `{BUILD_COMMAND}` (or `scripts/setup.sh --control-plane`)")]
    Missing {
        /// The component.
        which: Which,
        /// Where `$SCEN_TOOLS` points.
        tools: String,
    },
    /// A binary could not be executed.
    #[error("cannot start {which} (`{bin}`): {source}")]
    Spawn {
        /// The component.
        which: Which,
        /// The binary.
        bin: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The temporary directory, a port or a file could not be prepared.
    #[error("cannot prepare the embedded control plane: {0}")]
    Prepare(#[source] std::io::Error),
    /// The throwaway PKI could not be generated.
    #[error("cannot generate the control plane's certificates: {0}")]
    Pki(String),
    /// A component exited during start-up or during the run.
    #[error("{which} exited ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// The component.
        which: Which,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// A component did not answer its health check in time.
    #[error("{which} was not ready within {after:?} ({url} never answered 200); last log lines:\n{log_tail}")]
    NotReady {
        /// The component.
        which: Which,
        /// The time allowed.
        after: Duration,
        /// The health URL.
        url: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Settings the control plane cannot run with (a scenario's mistake).
    #[error("kube_control_plane: {0}")]
    Config(String),
}

impl Error {
    /// Whether the user must fix the scenario or install something (exit 2), rather than the
    /// infrastructure failing (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Missing { .. } | Error::Config(_))
    }
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a component's binary is: `$SCEN_KUBE_BIN_DIR`, PATH, then `$SCEN_TOOLS/{kube,kwok}/*/bin`
/// (newest version first).
pub fn find_bin(which: Which) -> Result<PathBuf> {
    let name = which.bin();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("SCEN_KUBE_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let tools = tools_dir();
    for sub in ["kube", "kwok"] {
        let mut versions: Vec<PathBuf> = std::fs::read_dir(tools.join(sub))
            .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| Error::Missing {
            which,
            tools: tools.display().to_string(),
        })
}

fn tools_dir() -> PathBuf {
    std::env::var_os("SCEN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/scen"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The KWOK stages shipped beside the kwok binary (`stages.yaml`, written by the build).
fn kwok_stages(bin: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(bin).ok()?;
    let p = real.parent()?.parent()?.join("stages.yaml");
    p.exists().then_some(p)
}

/// `bin --version`, first line.
fn version_of(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

/// The etcd the API server stores its objects in.
#[derive(Debug, Clone)]
pub struct EtcdFor {
    /// Client URLs.
    pub servers: Vec<String>,
    /// `--etcd-prefix`: `/registry` on an etcd scen started, under the run's prefix on another.
    pub prefix: String,
    /// `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`.
    pub tls: Option<(Option<PathBuf>, Option<PathBuf>, Option<PathBuf>)>,
}

/// One component as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComponentReport {
    /// Which component.
    pub component: Which,
    /// `--version`'s answer.
    pub version: String,
    /// The binary.
    pub bin: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its flags.
    pub flags: Vec<String>,
    /// Time from the control plane's start until it was ready (ms).
    #[schemars(with = "crate::measure::Ms")]
    pub ready_ms: f64,
}

/// The control plane as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ControlPlaneReport {
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig scen wrote (gone with the run).
    pub kubeconfig: String,
    /// The etcd prefix the API server stores under.
    pub etcd_prefix: String,
    /// Time until every component was ready (ms).
    #[schemars(with = "crate::measure::Ms")]
    pub startup_ms: f64,
    /// Every component started.
    pub components: Vec<ComponentReport>,
}

/// A running control plane. Dropping it stops every process and removes its directory.
#[derive(Debug)]
pub struct ControlPlane {
    /// The API server's URL (`https://127.0.0.1:<port>`).
    pub server: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The PKI.
    pub pki: Pki,
    /// The components, kube-apiserver first.
    pub components: Vec<Component>,
    /// The etcd prefix the API server uses.
    pub etcd_prefix: String,
    /// Time until every component was ready.
    pub startup: Duration,
    /// The spec it was started from.
    pub spec: ControlPlaneSpec,
    http: reqwest::Client,
    // Dropped after the components (fields drop in order): the spawner thread outlives them.
    spawner: Spawner,
    dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts the components `spec` asks for on `etcd` and waits until each is ready.
    pub async fn start(spec: &ControlPlaneSpec, etcd: &EtcdFor) -> Result<ControlPlane> {
        crate::embedded::remove_stale_dirs_named(DIR_PREFIX);
        spec.check()?;
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(Error::Prepare)?;
        if let Some(tag) = crate::embedded::owner_tag(std::process::id()) {
            std::fs::write(dir.path().join(crate::embedded::OWNER), tag).map_err(Error::Prepare)?;
        }
        let root = dir.path().to_path_buf();
        let pki = Pki::generate(&root)?;
        let ports = crate::embedded::free_ports(4).map_err(|e| match e {
            crate::embedded::Error::Prepare(io) => Error::Prepare(io),
            other => Error::Prepare(std::io::Error::other(other.to_string())),
        })?;
        let server = format!("https://127.0.0.1:{}", ports[0]);
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(&kubeconfig, pki.kubeconfig(&server)?).map_err(Error::Prepare)?;
        let http = pki.admin_http_client()?;
        let spawner = Spawner::new().map_err(Error::Prepare)?;
        let mut cp = ControlPlane {
            server,
            kubeconfig,
            pki,
            components: Vec::new(),
            etcd_prefix: etcd.prefix.clone(),
            startup: Duration::ZERO,
            spec: spec.clone(),
            http,
            spawner,
            dir: Some(dir),
        };
        // The API server first (the others need it); then the rest together.
        cp.launch(Which::KubeApiserver, ports[0], etcd)?;
        cp.components[0]
            .wait_ready(&cp.http, started, spec.start_timeout)
            .await?;
        let rest: Vec<Which> = spec.components().into_iter().skip(1).collect();
        for (i, w) in rest.iter().enumerate() {
            cp.launch(*w, ports[i + 1], etcd)?;
        }
        for c in cp.components.iter_mut().skip(1) {
            c.wait_ready(&cp.http, started, spec.start_timeout).await?;
        }
        cp.startup = started.elapsed();
        Ok(cp)
    }

    fn launch(&mut self, which: Which, port: u16, etcd: &EtcdFor) -> Result<()> {
        let bin = find_bin(which)?;
        let version = version_of(&bin);
        let root = self.dir.as_ref().expect("directory").path().to_path_buf();
        let p = |x: &Path| x.display().to_string();
        let kc = p(&self.kubeconfig);
        let pki = &self.pki;
        let base = format!("https://127.0.0.1:{port}");
        // Components that serve HTTPS use the API server's certificate (it covers 127.0.0.1),
        // so one client that trusts the CA reaches them all.
        let serving = [
            format!("--tls-cert-file={}", p(&pki.serving_cert)),
            format!("--tls-private-key-file={}", p(&pki.serving_key)),
        ];
        let delegated = [
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics".to_string(),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={port}"),
            "--leader-elect=false".to_string(),
        ];
        let (args, health, metrics): (Vec<String>, String, String) = match which {
            Which::KubeApiserver => {
                let mut a = vec![
                    format!("--etcd-servers={}", etcd.servers.join(",")),
                    format!("--etcd-prefix={}", etcd.prefix),
                    "--bind-address=127.0.0.1".into(),
                    "--advertise-address=127.0.0.1".into(),
                    format!("--secure-port={port}"),
                    format!("--cert-dir={}", p(&root.join("apiserver"))),
                    format!("--client-ca-file={}", p(&pki.ca_cert)),
                    format!("--service-account-key-file={}", p(&pki.sa_pub)),
                    format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                    "--service-cluster-ip-range=10.96.0.0/16".into(),
                    "--authorization-mode=RBAC".into(),
                    // Pods name the `default` service account; without a token controller
                    // racing the first pods of a new namespace, none is required.
                    "--disable-admission-plugins=ServiceAccount".into(),
                    "--endpoint-reconciler-type=none".into(),
                    "--allow-privileged=true".into(),
                    "--profiling=false".into(),
                ];
                a.extend(serving.iter().cloned());
                if let Some((ca, cert, key)) = &etcd.tls {
                    if let Some(ca) = ca {
                        a.push(format!("--etcd-cafile={}", p(ca)));
                    }
                    if let Some(cert) = cert {
                        a.push(format!("--etcd-certfile={}", p(cert)));
                    }
                    if let Some(key) = key {
                        a.push(format!("--etcd-keyfile={}", p(key)));
                    }
                }
                a.extend(self.spec.apiserver_flags.iter().cloned());
                (a, format!("{base}/readyz"), format!("{base}/metrics"))
            }
            Which::KubeControllerManager => {
                let mut a: Vec<String> = delegated.to_vec();
                a.extend(serving.iter().cloned());
                a.extend([
                    format!("--service-account-private-key-file={}", p(&pki.sa_key)),
                    format!("--root-ca-file={}", p(&pki.ca_cert)),
                    format!("--cluster-signing-cert-file={}", p(&pki.ca_cert)),
                    format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
                    "--use-service-account-credentials=false".into(),
                    "--controllers=*".into(),
                ]);
                (a, format!("{base}/healthz"), format!("{base}/metrics"))
            }
            Which::KubeScheduler => {
                let mut a: Vec<String> = delegated.to_vec();
                a.extend(serving.iter().cloned());
                (a, format!("{base}/healthz"), format!("{base}/metrics"))
            }
            Which::Kwok => {
                let mut a = vec![
                    format!("--kubeconfig={kc}"),
                    "--manage-all-nodes=false".into(),
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
                    "--node-lease-duration-seconds=40".into(),
                    "--cidr=10.0.0.1/16".into(),
                    "--node-ip=10.0.0.1".into(),
                    format!("--server-address=127.0.0.1:{port}"),
                ];
                if let Some(stages) = kwok_stages(&bin) {
                    a.push(format!("--config={}", p(&stages)));
                } else {
                    return Err(Error::Config(format!(
                        "kwok's stages (stages.yaml beside {}) are missing: build them with `{BUILD_COMMAND}`",
                        bin.display()
                    )));
                }
                let http = format!("http://127.0.0.1:{port}");
                (a, format!("{http}/healthz"), format!("{http}/metrics"))
            }
        };
        let log = root.join(format!("{}.log", which.bin()));
        let c = Component::spawn(
            &self.spawner,
            which,
            bin,
            version,
            args,
            port,
            health,
            metrics,
            log,
        )?;
        self.components.push(c);
        Ok(())
    }

    /// The client that reaches every component (trusts the CA, presents the admin certificate).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The component, if started.
    pub fn component(&self, which: Which) -> Option<&Component> {
        self.components.iter().find(|c| c.which == which)
    }

    /// Whether the scheduler runs (so scen must leave binding to it).
    pub fn has(&self, which: Which) -> bool {
        self.component(which).is_some()
    }

    /// The first component found dead, as an error naming it.
    pub fn died(&mut self) -> Option<Error> {
        self.components.iter_mut().find_map(|c| {
            c.died().map(|status| Error::Exited {
                which: c.which,
                status,
                log_tail: c.log_tail(),
            })
        })
    }

    /// What the report says about it.
    pub fn report(&self) -> ControlPlaneReport {
        ControlPlaneReport {
            server: self.server.clone(),
            kubeconfig: self.kubeconfig.display().to_string(),
            etcd_prefix: self.etcd_prefix.clone(),
            startup_ms: self.startup.as_secs_f64() * 1e3,
            components: self
                .components
                .iter()
                .map(|c| ComponentReport {
                    component: c.which,
                    version: c.version.clone(),
                    bin: c.bin.display().to_string(),
                    port: c.port,
                    flags: c.args.clone(),
                    ready_ms: c.ready_after.as_secs_f64() * 1e3,
                })
                .collect(),
        }
    }

    /// The control plane's directory (kubeconfig, PKI, logs), while it exists.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// Stops every component (last started first) and removes the directory.
    pub fn stop(&mut self) {
        while let Some(mut c) = self.components.pop() {
            c.stop(Duration::from_secs(2));
        }
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

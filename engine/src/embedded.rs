//! The throwaway etcd that `scen run` starts when no `--endpoints` are given: one member on
//! 127.0.0.1 with free ports and a temporary data directory, stopped and removed on drop —
//! whatever way the run ends (success, error, Ctrl-C, panic). On Linux the member also gets
//! `PR_SET_PDEATHSIG`, so even a `kill -9` of scen takes etcd down with it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Settings for an embedded member.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The etcd binary (default: `$SCEN_ETCD_BIN`, else `etcd` on `PATH`).
    pub etcd_bin: PathBuf,
    /// How long to wait for the member to answer.
    pub start_timeout: Duration,
    /// `--quota-backend-bytes`, when set.
    pub quota_backend_bytes: Option<u64>,
    /// Serve clients over TLS with these files (the metrics/health URL stays plain HTTP).
    pub client_tls: Option<ServerTls>,
    /// Start from this snapshot (restored with `etcdutl snapshot restore`) instead of empty.
    pub restore_from: Option<PathBuf>,
}

/// Server-side TLS files for the client port.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// `--cert-file`.
    pub cert: PathBuf,
    /// `--key-file`.
    pub key: PathBuf,
    /// `--trusted-ca-file`; when set, clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            etcd_bin: std::env::var_os("SCEN_ETCD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("etcd")),
            start_timeout: Duration::from_secs(30),
            quota_backend_bytes: None,
            client_tls: None,
            restore_from: None,
        }
    }
}

/// Why an embedded member could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary could not be executed.
    #[error("cannot start `{bin}`: {source} (run scripts/setup.sh to install etcd, or set SCEN_ETCD_BIN)")]
    Spawn {
        /// The binary tried.
        bin: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Temporary directory or port allocation failed.
    #[error("cannot prepare the embedded etcd: {0}")]
    Prepare(#[source] std::io::Error),
    /// `etcdutl snapshot restore` failed.
    #[error("cannot restore the snapshot {path}: {reason}")]
    Restore {
        /// The snapshot.
        path: String,
        /// What etcdutl said.
        reason: String,
    },
    /// The process exited before it was ready.
    #[error("embedded etcd exited during start-up ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// The member did not become ready in time.
    #[error("embedded etcd did not become ready within {0:?}")]
    Timeout(Duration),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running embedded etcd member. Dropping it stops the process and deletes its data.
#[derive(Debug)]
pub struct EmbeddedEtcd {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    client_url: String,
    metrics_url: String,
}

impl EmbeddedEtcd {
    /// Starts a member and waits until its client port accepts connections.
    ///
    /// Call it from a thread that outlives the member (the runtime's main thread): Linux delivers
    /// the parent-death signal when the spawning *thread* exits.
    pub async fn start(config: &EmbeddedConfig) -> Result<Self> {
        // A port picked by binding :0 can be taken by someone else before etcd binds it; retry.
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(config).await {
                Ok(e) => return Ok(e),
                Err(e @ Error::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn try_start(config: &EmbeddedConfig) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("scen-etcd-")
            .tempdir()
            .map_err(Error::Prepare)?;
        let [client, peer, metrics] = free_ports()?;
        let scheme = if config.client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let client_url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let metrics_url = format!("http://127.0.0.1:{metrics}");
        if let Some(snapshot) = &config.restore_from {
            restore(snapshot, &dir.path().join("data"), &peer_url)?;
        }
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).map_err(Error::Prepare)?;
        let mut cmd = Command::new(&config.etcd_bin);
        cmd.arg("--name=scen")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=scen={peer_url}"))
            .arg(format!("--listen-metrics-urls={metrics_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--log-level=warn")
            // gRPC handling-time histograms, for the per-step server view.
            .arg("--metrics=extensive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(q) = config.quota_backend_bytes {
            cmd.arg(format!("--quota-backend-bytes={q}"));
        }
        if let Some(tls) = &config.client_tls {
            cmd.arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()));
            if let Some(ca) = &tls.client_ca {
                cmd.arg(format!("--trusted-ca-file={}", ca.display()))
                    .arg("--client-cert-auth");
            }
        }
        set_parent_death_signal(&mut cmd);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            bin: config.etcd_bin.display().to_string(),
            source,
        })?;
        let mut me = EmbeddedEtcd {
            child: Some(child),
            dir: Some(dir),
            client_url,
            metrics_url,
        };
        me.wait_ready(config.start_timeout, &log_path).await?;
        tracing::info!(url = %me.client_url, "embedded etcd ready");
        Ok(me)
    }

    async fn wait_ready(&mut self, timeout: Duration, log_path: &Path) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let health = format!("{}/health", self.metrics_url);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                self.child = None;
                return Err(Error::Exited {
                    status: status.to_string(),
                    log_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            if http_get_ok(&health).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client URL (`http://127.0.0.1:PORT`).
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The URL serving `/metrics` and `/health`.
    pub fn metrics_url(&self) -> &str {
        &self.metrics_url
    }

    /// The data directory (removed on drop).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("data"))
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the member (SIGTERM, then SIGKILL after 5 s) and removes its data directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            #[cfg(unix)]
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

impl Drop for EmbeddedEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Restores `snapshot` into `data_dir` as member `scen` with `peer_url` (what the member is started with).
fn restore(snapshot: &Path, data_dir: &Path, peer_url: &str) -> Result<()> {
    let bin = std::env::var("SCEN_ETCDUTL_BIN").unwrap_or_else(|_| "etcdutl".into());
    let out = Command::new(&bin)
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg("--name=scen")
        .arg(format!("--initial-cluster=scen={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .output()
        .map_err(|e| Error::Restore {
            path: snapshot.display().to_string(),
            reason: format!("cannot run {bin}: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Restore {
            path: snapshot.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(())
}

fn free_ports() -> Result<[u16; 3]> {
    // Hold all three listeners at once so the ports are distinct.
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(Error::Prepare)?;
    let mut ports = [0u16; 3];
    for (p, l) in ports.iter_mut().zip(&ls) {
        *p = l.local_addr().map_err(Error::Prepare)?.port();
    }
    Ok(ports)
}

/// A minimal HTTP/1.0 GET over loopback: true on a 200 answer. Enough for etcd's `/health`.
async fn http_get_ok(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        Some(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_answers_and_cleans_up() {
        let mut e = EmbeddedEtcd::start(&EmbeddedConfig::default())
            .await
            .expect("etcd starts (run scripts/setup.sh)");
        let pid = e.pid().unwrap();
        let data = e.data_dir().unwrap();
        assert!(data.exists());
        assert!(http_get_ok(&format!("{}/health", e.metrics_url())).await);
        e.stop();
        assert!(!data.exists(), "data dir removed");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || proc_is_zombie(pid),
            "process gone"
        );
    }

    fn proc_is_zombie(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_clear_error() {
        let cfg = EmbeddedConfig {
            etcd_bin: "/nonexistent/etcd".into(),
            ..Default::default()
        };
        let e = EmbeddedEtcd::start(&cfg).await.unwrap_err();
        assert!(e.to_string().contains("scripts/setup.sh"), "{e}");
    }
}

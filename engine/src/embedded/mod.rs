//! The throwaway etcd that `scen run` starts when no `--endpoints` are given: one, three or five
//! members on 127.0.0.1 with free ports and a temporary data directory, stopped and removed on
//! drop — whatever way the run ends (success, error, Ctrl-C, panic). On Linux every member also
//! gets `PR_SET_PDEATHSIG` (from one long-lived spawning thread), so even a `kill -9` of scen takes
//! etcd down with it. Members can be killed, restarted, paused and slowed (`fault::`).

mod member;
pub mod proxy;
mod spawner;

pub use member::Member;
pub use spawner::Spawner;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Settings for an embedded member.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The etcd binary (default: `$SCEN_ETCD_BIN`, else `etcd` on `PATH`).
    pub etcd_bin: PathBuf,
    /// How long to wait for the member to answer.
    pub start_timeout: Duration,
    /// Members: 1 (default), 3 or 5.
    pub members: usize,
    /// etcd flags for every member.
    pub settings: MemberSettings,
    /// Serve clients over TLS with these files (the metrics/health URL stays plain HTTP).
    pub client_tls: Option<ServerTls>,
    /// Start from this snapshot (restored with `etcdutl snapshot restore`) instead of empty.
    pub restore_from: Option<PathBuf>,
    /// Put a proxy scen owns in front of each member's peer listener, for network faults
    /// (partitions, slow links); members of a multi-member cluster only.
    pub network_faults: bool,
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
            members: 1,
            settings: MemberSettings::default(),
            client_tls: None,
            restore_from: None,
            network_faults: false,
        }
    }
}

/// Why an embedded member could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary runs, but is not etcd (`--etcd-bin /bin/true`).
    #[error("`{bin}` is not etcd: `{bin} --version` {said} (give an etcd binary with --etcd-bin or SCEN_ETCD_BIN)")]
    NotEtcd {
        /// The binary tried.
        bin: String,
        /// What its `--version` printed, or how it failed.
        said: String,
    },
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
    /// Settings etcd would refuse.
    #[error("embedded etcd: {0}")]
    Config(String),
    /// A fault could not be applied.
    #[error("{0}")]
    Fault(String),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The etcd flags a scenario or the command line may set on every member; unset ones keep etcd's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSettings {
    /// `--quota-backend-bytes`.
    pub quota_backend_bytes: Option<u64>,
    /// `--snapshot-count`.
    pub snapshot_count: Option<u64>,
    /// `--auto-compaction-mode` (`periodic` or `revision`).
    pub auto_compaction_mode: Option<String>,
    /// `--auto-compaction-retention` (`1h`, `1000`).
    pub auto_compaction_retention: Option<String>,
    /// `--heartbeat-interval`, ms.
    pub heartbeat_interval_ms: Option<u64>,
    /// `--election-timeout`, ms.
    pub election_timeout_ms: Option<u64>,
}

impl MemberSettings {
    /// Takes every setting `other` sets.
    pub fn overlay(&mut self, other: &MemberSettings) {
        fn take<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        take(&mut self.quota_backend_bytes, &other.quota_backend_bytes);
        take(&mut self.snapshot_count, &other.snapshot_count);
        take(&mut self.auto_compaction_mode, &other.auto_compaction_mode);
        take(
            &mut self.auto_compaction_retention,
            &other.auto_compaction_retention,
        );
        take(
            &mut self.heartbeat_interval_ms,
            &other.heartbeat_interval_ms,
        );
        take(&mut self.election_timeout_ms, &other.election_timeout_ms);
    }

    /// The etcd command-line flags.
    fn flags(&self) -> Vec<String> {
        let named: [(&str, Option<String>); 6] = [
            (
                "quota-backend-bytes",
                self.quota_backend_bytes.map(|v| v.to_string()),
            ),
            ("snapshot-count", self.snapshot_count.map(|v| v.to_string())),
            ("auto-compaction-mode", self.auto_compaction_mode.clone()),
            (
                "auto-compaction-retention",
                self.auto_compaction_retention.clone(),
            ),
            (
                "heartbeat-interval",
                self.heartbeat_interval_ms.map(|v| v.to_string()),
            ),
            (
                "election-timeout",
                self.election_timeout_ms.map(|v| v.to_string()),
            ),
        ];
        named
            .into_iter()
            .filter_map(|(flag, v)| v.map(|v| format!("--{flag}={v}")))
            .collect()
    }
}

/// Embedded cluster settings a scenario declares (`embedded_etcd(#{ members: 3, ... })`) or the
/// command line gives (`--members`); unset fields keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedSpec {
    /// Members: 1, 3 or 5.
    pub members: Option<usize>,
    /// etcd flags for every member.
    pub settings: MemberSettings,
    /// The etcd binary.
    pub etcd_bin: Option<PathBuf>,
    /// Peer proxies for network faults.
    pub network_faults: Option<bool>,
}

impl EmbeddedSpec {
    /// Sets what this spec sets.
    pub fn apply_to(&self, cfg: &mut EmbeddedConfig) {
        if let Some(m) = self.members {
            cfg.members = m;
        }
        cfg.settings.overlay(&self.settings);
        if let Some(bin) = &self.etcd_bin {
            cfg.etcd_bin.clone_from(bin);
        }
        if let Some(n) = self.network_faults {
            cfg.network_faults = n;
        }
    }
}

/// The embedded cluster as a run shares it (faults lock it briefly; waits happen outside the lock).
pub type Shared = std::sync::Arc<std::sync::Mutex<EmbeddedEtcd>>;

/// The process ids of the shared cluster's running members.
pub fn running_pids(shared: &Shared) -> Vec<u32> {
    shared.lock().unwrap_or_else(|p| p.into_inner()).pids()
}

/// A running embedded etcd cluster. Dropping it stops every member and deletes their data.
#[derive(Debug)]
pub struct EmbeddedEtcd {
    members: Vec<Member>,
    dir: Option<tempfile::TempDir>,
    start_timeout: Duration,
    /// The peer proxies, with `network_faults`.
    proxies: Option<proxy::Proxies>,
    // Declared last: dropped after the members are stopped.
    spawner: Spawner,
}

impl EmbeddedEtcd {
    /// Starts the members and waits until every one answers `/health`.
    pub async fn start(config: &EmbeddedConfig) -> Result<Self> {
        if ![1, 3, 5].contains(&config.members) {
            return Err(Error::Config(format!(
                "{} members: use 1, 3 or 5 (an even count adds no fault tolerance)",
                config.members
            )));
        }
        if config.restore_from.is_some() && config.members != 1 {
            return Err(Error::Config(
                "restoring a snapshot needs a 1-member cluster".into(),
            ));
        }
        check_binary(&config.etcd_bin).await?;
        let (dirs, bytes) = remove_stale_dirs();
        if dirs > 0 {
            tracing::info!(
                "removed {dirs} data director{} left by killed runs ({})",
                if dirs == 1 { "y" } else { "ies" },
                crate::measure::Unit::Bytes.format(Some(bytes as f64))
            );
        }
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
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(Error::Prepare)?;
        if let Some(tag) = owner_tag(std::process::id()) {
            std::fs::write(dir.path().join(OWNER), tag).map_err(Error::Prepare)?;
        }
        let n = config.members;
        let proxied = config.network_faults && n > 1;
        let ports = free_ports(if proxied { 4 * n } else { 3 * n })?;
        let scheme = if config.client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let names: Vec<String> = (0..n)
            .map(|i| {
                if n == 1 {
                    "scen".to_string()
                } else {
                    format!("scen-{i}")
                }
            })
            .collect();
        // The member listens on its own peer port; with proxies, it advertises its proxy's.
        let listen_peer = |i: usize| format!("http://127.0.0.1:{}", ports[3 * i + 1]);
        let peer = |i: usize| {
            if proxied {
                format!("http://127.0.0.1:{}", ports[3 * n + i])
            } else {
                listen_peer(i)
            }
        };
        let initial_cluster = (0..n)
            .map(|i| format!("{}={}", names[i], peer(i)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(n);
        for (i, name) in names.iter().enumerate() {
            let base = if n == 1 {
                dir.path().to_path_buf()
            } else {
                dir.path().join(name)
            };
            std::fs::create_dir_all(&base).map_err(Error::Prepare)?;
            let client_url = format!("{scheme}://127.0.0.1:{}", ports[3 * i]);
            let metrics_url = format!("http://127.0.0.1:{}", ports[3 * i + 2]);
            let data_dir = base.join("data");
            if let Some(snapshot) = &config.restore_from {
                restore(snapshot, &data_dir, &peer(i))?;
            }
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={}", listen_peer(i)),
                format!("--initial-advertise-peer-urls={}", peer(i)),
                format!("--initial-cluster={initial_cluster}"),
                format!("--listen-metrics-urls={metrics_url}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=scen".into(),
                "--log-level=warn".into(),
                // gRPC handling-time histograms, for the per-step server view.
                "--metrics=extensive".into(),
            ];
            args.extend(member_flags(config));
            members.push(Member::new(
                name.clone(),
                [client_url, peer(i), metrics_url],
                data_dir,
                base.join("etcd.log"),
                config.etcd_bin.clone(),
                args,
            ));
        }
        let proxies = if proxied {
            let list: Vec<(String, String, String)> = (0..n)
                .map(|i| {
                    (
                        names[i].clone(),
                        format!("127.0.0.1:{}", ports[3 * n + i]),
                        format!("127.0.0.1:{}", ports[3 * i + 1]),
                    )
                })
                .collect();
            Some(proxy::Proxies::start(&list).await.map_err(Error::Prepare)?)
        } else {
            None
        };
        let mut me = EmbeddedEtcd {
            members,
            dir: Some(dir),
            start_timeout: config.start_timeout,
            proxies,
            spawner: Spawner::new().map_err(Error::Prepare)?,
        };
        for i in 0..n {
            let (m, spawner) = (&mut me.members[i], &me.spawner);
            m.spawn(spawner)?;
        }
        for i in 0..n {
            me.wait_ready(i).await?;
        }
        tracing::info!(url = %me.client_url(), members = n, "embedded etcd ready");
        Ok(me)
    }

    /// Waits until member `i` answers `/health` (it has a leader), or fails if it exits.
    pub async fn wait_ready(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + self.start_timeout;
        let health = format!("{}/health", self.members[i].metrics_url);
        loop {
            if let Some(status) = self.members[i].exited() {
                return Err(Error::Exited {
                    status,
                    log_tail: self.members[i].log_tail(5),
                });
            }
            if http_get_ok(&health).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(self.start_timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first member's client URL (`http://127.0.0.1:PORT`).
    pub fn client_url(&self) -> &str {
        &self.members[0].client_url
    }

    /// The first member's URL serving `/metrics` and `/health`.
    pub fn metrics_url(&self) -> &str {
        &self.members[0].metrics_url
    }

    /// Every member's client URL.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Every member's metrics URL.
    pub fn metrics_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.metrics_url.clone()).collect()
    }

    /// The first member's data directory (removed on drop).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|_| self.members[0].data_dir.clone())
    }

    /// The first member's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.members[0].pid()
    }

    /// The process ids of the members running now.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(Member::pid).collect()
    }

    /// Members that died on their own (not stopped by a fault), with their exit status.
    pub fn died(&mut self) -> Vec<String> {
        self.members
            .iter_mut()
            .filter_map(|m| m.died().map(|s| format!("member {} ({s})", m.name)))
            .collect()
    }

    /// The members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The network rules the peer proxies apply (with `network_faults`).
    pub fn network(&self) -> Option<std::sync::Arc<std::sync::Mutex<proxy::Rules>>> {
        self.proxies.as_ref().map(|p| p.rules.clone())
    }

    /// The probes of the links between members (with `network_faults`).
    pub fn link_probes(&self) -> Option<proxy::Probes> {
        self.proxies.as_ref().map(|p| p.probes.clone())
    }

    /// Member `i`, and the spawner its restarts and helpers go through.
    pub fn member_mut(&mut self, i: usize) -> (&mut Member, &Spawner) {
        (&mut self.members[i], &self.spawner)
    }

    /// Heals the network, stops every member at once (SIGTERM, then SIGKILL after 1 s) and
    /// removes the data.
    pub fn stop(&mut self) {
        // Heal first: a member cut from its peers spends its shutdown trying to hand over
        // leadership. Then every member at once, with one deadline for all.
        if let Some(rules) = self.network() {
            let mut r = rules.lock().unwrap_or_else(|p| p.into_inner());
            r.cut.clear();
            r.slow.clear();
        }
        for m in &mut self.members {
            m.ask_to_stop();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        for m in &mut self.members {
            m.wait_stopped(deadline);
        }
        self.proxies.take();
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

/// The tunable member flags of `config`.
fn member_flags(config: &EmbeddedConfig) -> Vec<String> {
    let mut args = config.settings.flags();
    if let Some(tls) = &config.client_tls {
        args.push(format!("--cert-file={}", tls.cert.display()));
        args.push(format!("--key-file={}", tls.key.display()));
        if let Some(ca) = &tls.client_ca {
            args.push(format!("--trusted-ca-file={}", ca.display()));
            args.push("--client-cert-auth".into());
        }
    }
    args
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

/// Checks that `bin` is etcd: `bin --version` must answer, within 10 s, with etcd's own banner
/// (`etcd Version: 3.5.16`).
/// Checks that `bin` runs and says it is etcd (`--version`), within 10 s.
pub async fn check_binary(bin: &Path) -> Result<()> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(bin)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let not = |said: String| Error::NotEtcd {
        bin: bin.display().to_string(),
        said,
    };
    match out {
        Err(_) => Err(not("did not answer in 10s".into())),
        Ok(Err(source)) => Err(Error::Spawn {
            bin: bin.display().to_string(),
            source,
        }),
        Ok(Ok(o)) => {
            let text = String::from_utf8_lossy(&o.stdout);
            if text.contains("etcd Version:") {
                Ok(())
            } else {
                let first = text.lines().next().unwrap_or("").trim();
                Err(not(if first.is_empty() {
                    format!("printed nothing ({})", o.status)
                } else {
                    format!("printed `{first}`")
                }))
            }
        }
    }
}

/// A backend quota for the etcd scen starts, checked: 16 MiB (below it etcd stores next to
/// nothing) to 64 GiB (etcd suggests at most 8 GiB).
pub fn check_quota(bytes: u64) -> std::result::Result<u64, String> {
    if (16 << 20..=64 << 30).contains(&bytes) {
        Ok(bytes)
    } else {
        Err("give 16MiB to 64GiB (etcd's default is 2GiB, its suggested maximum 8GiB)".into())
    }
}

/// How the embedded cluster's temporary directory is named.
const DIR_PREFIX: &str = "scen-etcd-";

/// The file in that directory naming the scen process that owns it: `<pid> <start time>`.
pub(crate) const OWNER: &str = "scen.owner";

/// A process, as `<pid> <start time in clock ticks since boot>` (a pid alone can be reused).
pub(crate) fn owner_tag(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .to_string();
    Some(format!("{pid} {start}"))
}

/// Removes the data directories of runs whose scen process is gone: a scen killed with SIGKILL
/// runs no code to delete its directory (its members die by parent-death signal), so the next
/// run does. Directories without an owner file, or whose owner lives, are left alone. Returns
/// the directories and bytes removed.
pub fn remove_stale_dirs() -> (usize, u64) {
    remove_stale_dirs_named(DIR_PREFIX)
}

/// [`remove_stale_dirs`] for directories whose names start with `prefix` (the embedded control
/// plane's are `scen-kube-`).
pub(crate) fn remove_stale_dirs_named(prefix: &str) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return (0, 0);
    };
    let (mut dirs, mut bytes) = (0, 0);
    for e in entries.flatten() {
        let path = e.path();
        let named = e.file_name().to_string_lossy().starts_with(prefix);
        let Ok(tag) = std::fs::read_to_string(path.join(OWNER)) else {
            continue;
        };
        let pid = tag
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| owner_tag(p).as_deref() == Some(tag.trim()));
        if named && !alive {
            let size = dir_size(&path);
            if std::fs::remove_dir_all(&path).is_ok() {
                dirs += 1;
                bytes += size;
            }
        }
    }
    (dirs, bytes)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => dir_size(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>> {
    // Hold every listener at once so the ports are distinct.
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(Error::Prepare)?;
    ls.iter()
        .map(|l| Ok(l.local_addr().map_err(Error::Prepare)?.port()))
        .collect()
}

/// A GET over loopback (reqwest, no proxy, 2 s at most): true on a 200 answer. Enough for
/// etcd's `/health`.
pub(crate) async fn http_get_ok(url: &str) -> bool {
    // One client for every runtime: no pooled connection outlives the runtime it was made on,
    // and plain http needs no root certificates.
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(2))
            .build()
            .ok()
    });
    let Some(client) = client else {
        return false;
    };
    match client.get(url).send().await {
        Ok(r) => r.status() == reqwest::StatusCode::OK,
        Err(_) => false,
    }
}

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
    async fn three_members_form_a_cluster_survive_a_kill_and_leave_nothing_behind() {
        let mut e = EmbeddedEtcd::start(&EmbeddedConfig {
            members: 3,
            ..Default::default()
        })
        .await
        .expect("3 members start");
        assert_eq!(e.client_urls().len(), 3);
        let pids: Vec<u32> = e.members().iter().map(|m| m.pid().unwrap()).collect();
        let data = e.data_dir().unwrap();
        // Kill one, restart it on the same ports and data: it answers again.
        let (m, _) = e.member_mut(1);
        m.kill();
        assert!(!m.is_running());
        assert!(proc_is_zombie(pids[1]) || !Path::new(&format!("/proc/{}", pids[1])).exists());
        {
            let (m, spawner) = e.member_mut(1);
            m.spawn(spawner).unwrap();
        }
        e.wait_ready(1).await.expect("the restarted member rejoins");
        assert!(http_get_ok(&format!("{}/health", e.members()[1].metrics_url)).await);
        let pids: Vec<u32> = e.members().iter().map(|m| m.pid().unwrap()).collect();
        e.stop();
        assert!(!data.exists());
        for pid in pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists() || proc_is_zombie(pid),
                "{pid} gone"
            );
        }
    }

    #[tokio::test]
    async fn an_even_member_count_is_refused() {
        let e = EmbeddedEtcd::start(&EmbeddedConfig {
            members: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("1, 3 or 5"), "{e}");
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

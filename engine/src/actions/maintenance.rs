//! Maintenance, measured: compaction, defragmentation (one member at a time, followers first and
//! the leader last, as operators do it), disarming alarms and snapshots verified with etcdutl.
//! Destructive operations on an etcd scen did not start need `--allow-maintenance`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, CompactionOptions, GetOptions};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::etcd::{status, MemberStatus};
use super::{ms, Error, Result};
use crate::target::Target;

fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> Error {
    move |source| Error::Etcd { op, source }
}

fn guard(target: &Target, what: &str) -> Result<()> {
    if target.may_maintain() {
        Ok(())
    } else {
        Err(Error::Options(format!(
            "{what} changes the whole cluster and this etcd was not started by scen: pass --allow-maintenance to allow it"
        )))
    }
}

/// A file under the run's artifacts directory; absolute paths and `..` are refused so a shared
/// scenario cannot write (or read back) files anywhere else.
fn artifact_path(artifacts: &Path, path: &str) -> Result<PathBuf> {
    let rel = Path::new(path);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::Options(format!(
            "snapshot path `{path}` must be relative, inside the artifacts directory"
        )));
    }
    Ok(artifacts.join(rel))
}

/// Options of `compact`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactOptions {
    /// Keep this many recent revisions (compact to current - keep).
    pub keep: Option<i64>,
    /// Or compact to this revision.
    pub revision: Option<i64>,
    /// Wait until the compaction is physically applied (default true).
    #[serde(default = "yes")]
    pub physical: bool,
}

fn yes() -> bool {
    true
}

impl super::CheckOptions for CompactOptions {
    fn check(&self) -> Result<()> {
        match (self.keep, self.revision) {
            (Some(k), _) if k < 0 => Err(Error::Options(format!(
                "keep {k} is negative: give how many revisions to keep"
            ))),
            (_, Some(r)) if r <= 0 => Err(Error::Options(format!(
                "revision {r} is not a revision: revisions start at 1"
            ))),
            _ => Ok(()),
        }
    }
}

crate::no_option_checks!(DefragOptions);

/// The record of `compact`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CompactRecord {
    /// The store revision before compacting.
    pub revision: i64,
    /// The revision compacted to (older revisions can no longer be read).
    pub compacted_to: i64,
    /// Bytes of the backend in use before (largest member).
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_in_use_before: i64,
    /// Bytes of the backend in use after (largest member).
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_in_use_after: i64,
    /// How long the compaction took.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Compacts the key history (`etcdctl compact`).
pub async fn compact(target: &Target, opts: &CompactOptions) -> Result<CompactRecord> {
    super::CheckOptions::check(opts)?;
    guard(target, "compaction")?;
    let before = status(target).await?;
    let to = match (opts.keep, opts.revision) {
        (Some(_), Some(_)) => {
            return Err(Error::Options("give `keep` or `revision`, not both".into()))
        }
        (Some(k), None) => (before.revision - k.max(0)).max(1),
        (None, Some(r)) => r,
        (None, None) => before.revision,
    };
    if to > before.revision {
        return Err(Error::Options(format!(
            "cannot compact to {to}: the current revision is {}",
            before.revision
        )));
    }
    let start = Instant::now();
    let o = opts
        .physical
        .then(|| CompactionOptions::new().with_physical());
    crate::target::kv(&target.client)
        .compact(to, o)
        .await
        .map_err(etcd("compact"))?;
    let duration_ms = ms(start.elapsed());
    let after = status(target).await?;
    Ok(CompactRecord {
        revision: before.revision,
        compacted_to: to,
        db_size_in_use_before: before.db_size_in_use,
        db_size_in_use_after: after.db_size_in_use,
        duration_ms,
    })
}

/// Options of `defrag`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefragOptions {
    /// `all` (default: followers first, leader last), `leader`, `followers`, or a member name.
    #[serde(default = "all")]
    pub members: String,
}

impl Default for DefragOptions {
    fn default() -> Self {
        DefragOptions { members: all() }
    }
}

fn all() -> String {
    "all".into()
}

/// One member's defragmentation.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MemberDefrag {
    /// Member name.
    pub name: String,
    /// Client URL.
    pub endpoint: String,
    /// Whether it was the leader.
    pub was_leader: bool,
    /// Backend size before.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_before: i64,
    /// Backend size after.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_after: i64,
    /// In-use bytes before.
    #[schemars(with = "crate::measure::Bytes")]
    pub in_use_before: i64,
    /// In-use bytes after.
    #[schemars(with = "crate::measure::Bytes")]
    pub in_use_after: i64,
    /// Bytes returned to the file system.
    #[schemars(with = "crate::measure::Bytes")]
    pub freed_bytes: i64,
    /// How long the member was blocked.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// The record of `defrag`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DefragRecord {
    /// Members defragmented, in order.
    pub members: Vec<MemberDefrag>,
    /// Bytes freed, all members.
    #[schemars(with = "crate::measure::Bytes")]
    pub freed_bytes: i64,
    /// Largest backend size before.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_before: i64,
    /// Largest backend size after.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_after: i64,
    /// Total time.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Defragments members one at a time: followers first, the leader last.
pub async fn defrag(target: &Target, opts: &DefragOptions) -> Result<DefragRecord> {
    guard(target, "defragmentation")?;
    let st = status(target).await?;
    let mut chosen: Vec<&MemberStatus> = st
        .members
        .iter()
        .filter(|m| m.reachable)
        .filter(|m| match opts.members.as_str() {
            "all" => true,
            "leader" => m.is_leader,
            "followers" => !m.is_leader,
            name => m.name == name,
        })
        .collect();
    if chosen.is_empty() {
        return Err(Error::Options(format!(
            "no reachable member matches `{}` (members: {})",
            opts.members,
            st.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    chosen.sort_by_key(|m| m.is_leader); // followers (false) first
    let start = Instant::now();
    let mut out = Vec::new();
    for m in chosen {
        let mut c = target
            .settings
            .connect_to(std::slice::from_ref(&m.endpoint))
            .await?;
        let t = Instant::now();
        c.defragment().await.map_err(etcd("defragment"))?;
        let duration_ms = ms(t.elapsed());
        let after = c.status().await.map_err(etcd("status"))?;
        out.push(MemberDefrag {
            name: m.name.clone(),
            endpoint: m.endpoint.clone(),
            was_leader: m.is_leader,
            db_size_before: m.db_size,
            db_size_after: after.db_size(),
            in_use_before: m.db_size_in_use,
            in_use_after: after.raft_used_db_size(),
            freed_bytes: (m.db_size - after.db_size()).max(0),
            duration_ms,
        });
    }
    Ok(DefragRecord {
        freed_bytes: out.iter().map(|m| m.freed_bytes).sum(),
        db_size_before: out.iter().map(|m| m.db_size_before).max().unwrap_or(0),
        db_size_after: out.iter().map(|m| m.db_size_after).max().unwrap_or(0),
        members: out,
        duration_ms: ms(start.elapsed()),
    })
}

/// The record of `disarm`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DisarmRecord {
    /// Alarms active before.
    pub disarmed: usize,
    /// Alarms still active after.
    pub remaining: usize,
}

/// Disarms every active alarm (`etcdctl alarm disarm`).
pub async fn disarm(target: &Target) -> Result<DisarmRecord> {
    guard(target, "disarming alarms")?;
    let mut m = target.client.maintenance_client();
    let before = m
        .alarm(AlarmAction::Get, AlarmType::None, None::<AlarmOptions>)
        .await
        .map_err(etcd("alarm list"))?;
    for a in before.alarms() {
        let mut o = AlarmOptions::new();
        o.with_member(a.member_id());
        m.alarm(AlarmAction::Deactivate, a.alarm(), Some(o))
            .await
            .map_err(etcd("alarm disarm"))?;
    }
    let after = m
        .alarm(AlarmAction::Get, AlarmType::None, None::<AlarmOptions>)
        .await
        .map_err(etcd("alarm list"))?;
    Ok(DisarmRecord {
        disarmed: before.alarms().len(),
        remaining: after.alarms().len(),
    })
}

/// The record of `snapshot`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SnapshotRecord {
    /// Where the snapshot was written.
    pub path: String,
    /// File size in bytes.
    #[schemars(with = "crate::measure::Bytes")]
    pub size: u64,
    /// Revision the snapshot holds (etcdutl snapshot status).
    pub revision: i64,
    /// Keys in the snapshot's backend, all revisions (etcdutl snapshot status).
    pub total_keys: i64,
    /// The snapshot's hash (etcdutl snapshot status).
    pub hash: u64,
    /// Live keys in the cluster when the snapshot was taken.
    pub live_keys: i64,
    /// Whether etcdutl verified the file's integrity hash.
    pub verified: bool,
    /// How long saving took.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Saves a snapshot to `path` (relative to the run's artifacts directory) and verifies it with
/// `etcdutl snapshot status`, as an operator would.
pub async fn snapshot(target: &Target, artifacts: &Path, path: &str) -> Result<SnapshotRecord> {
    let file = artifact_path(artifacts, path)?;
    let io = |source: std::io::Error| Error::Io {
        what: format!("cannot write {}", file.display()),
        source,
    };
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let live_keys = crate::target::kv(&target.client)
        .get(
            "\0",
            Some(GetOptions::new().with_from_key().with_count_only()),
        )
        .await
        .map_err(etcd("count keys"))?
        .count();
    let start = Instant::now();
    let mut stream = target
        .client
        .maintenance_client()
        .snapshot()
        .await
        .map_err(etcd("snapshot"))?;
    let mut out = tokio::fs::File::create(&file).await.map_err(io)?;
    while let Some(chunk) = stream.message().await.map_err(etcd("snapshot"))? {
        out.write_all(chunk.blob()).await.map_err(io)?;
    }
    out.sync_all().await.map_err(io)?;
    let duration_ms = ms(start.elapsed());
    let size = tokio::fs::metadata(&file).await.map_err(io)?.len();
    let status = etcdutl_status(&file).await?;
    Ok(SnapshotRecord {
        path: file.display().to_string(),
        size,
        revision: status.revision,
        total_keys: status.total_key,
        hash: status.hash,
        live_keys,
        verified: true,
        duration_ms,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EtcdutlStatus {
    hash: u64,
    revision: i64,
    total_key: i64,
}

async fn etcdutl_status(file: &Path) -> Result<EtcdutlStatus> {
    let bin = std::env::var("SCEN_ETCDUTL_BIN").unwrap_or_else(|_| "etcdutl".into());
    let out = tokio::process::Command::new(&bin)
        .args(["snapshot", "status", "--write-out=json"])
        .arg(file)
        .output()
        .await
        .map_err(|e| {
            Error::Options(format!(
                "cannot run {bin} to verify the snapshot: {e} (scripts/setup.sh installs it)"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Options(format!(
            "etcdutl rejected the snapshot {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Options(format!(
            "unexpected etcdutl output: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        ))
    })
}

/// The record of `restore`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RestoreRecord {
    /// The snapshot restored.
    pub path: String,
    /// Live keys in the restored member.
    pub keys: i64,
    /// The restored member's revision.
    pub revision: i64,
    /// Time to restore the files and start the member until it answered.
    #[schemars(with = "crate::measure::Ms")]
    pub start_ms: f64,
}

/// Restores a snapshot (under the artifacts directory) into a fresh embedded member, counts its
/// keys and stops it again. The cluster under test is not touched.
pub async fn restore(artifacts: &Path, path: &str, etcd_bin: PathBuf) -> Result<RestoreRecord> {
    let file = artifact_path(artifacts, path)?;
    if !file.exists() {
        return Err(Error::Options(format!(
            "no snapshot at {}: take one first with etcd::snapshot(\"{path}\")",
            file.display()
        )));
    }
    let start = Instant::now();
    let cfg = crate::embedded::EmbeddedConfig {
        etcd_bin,
        restore_from: Some(file.clone()),
        ..Default::default()
    };
    let member = crate::embedded::EmbeddedEtcd::start(&cfg)
        .await
        .map_err(|e| Error::Options(e.to_string()))?;
    let start_ms = ms(start.elapsed());
    let settings = crate::target::ConnectSettings {
        endpoints: vec![member.client_url().to_string()],
        ..Default::default()
    };
    let client = settings.connect_to(&settings.urls()).await?;
    let resp = crate::target::kv(&client)
        .get(
            "\0",
            Some(GetOptions::new().with_from_key().with_count_only()),
        )
        .await
        .map_err(etcd("count restored keys"))?;
    Ok(RestoreRecord {
        path: file.display().to_string(),
        keys: resp.count(),
        revision: resp.header().map_or(0, |h| h.revision()),
        start_ms,
    })
}

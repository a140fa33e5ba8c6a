//! Basic etcd actions: put, get, range, delete, a batch of puts, cluster status, health and alarms.
//! Keys are relative to the run prefix unless `absolute` is set; absolute writes are allowed only on
//! an etcd scen started.

use std::time::{Duration, Instant};

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, DeleteOptions, GetOptions};
use serde::{Deserialize, Serialize};

use super::{ms, CheckOptions, Error, FailCode, Result, SizeValue};
use crate::measure::book::Book;
use crate::measure::latency::Distribution;
use crate::target::Target;

fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> Error {
    move |source| Error::Etcd { op, source }
}

/// Turns a script key into the full key: under the run prefix, or as given when `absolute`.
pub fn full_key(target: &Target, key: &str, absolute: bool, write: bool) -> Result<String> {
    if !absolute {
        return Ok(format!(
            "{}{}",
            target.info.prefix,
            key.trim_start_matches('/')
        ));
    }
    if write && !target.may_write_anywhere() && !key.starts_with(&target.info.prefix) {
        return Err(Error::OutsidePrefix {
            key: key.to_string(),
            prefix: target.info.prefix.clone(),
        });
    }
    Ok(key.to_string())
}

/// Options shared by single-key calls.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOptions {
    /// Use the key as given instead of under the run prefix.
    #[serde(default)]
    pub absolute: bool,
    /// For `get`/`range`: serve from the local member without a quorum read.
    #[serde(default)]
    pub serializable: bool,
    /// For `delete`: delete every key with this prefix.
    #[serde(default)]
    pub prefix: bool,
    /// For `put`: give up after this long (`"2s"`; default: the connection's request timeout).
    pub timeout: Option<String>,
}

impl KeyOptions {
    /// Runs `f` within the `timeout` option, if given.
    async fn bounded<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(t) = &self.timeout else {
            return f.await;
        };
        let d =
            crate::units::parse_duration(t).map_err(|e| Error::Options(format!("timeout: {e}")))?;
        tokio::time::timeout(d, f).await.unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "etcd {op}: no answer within {t} (is there a leader? a quorum?)"
            )))
        })
    }
}

/// The record of a put.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PutRecord {
    /// The full key written.
    pub key: String,
    /// The cluster revision after the write.
    pub revision: i64,
    /// Request latency.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Writes one key.
pub async fn put(
    target: &Target,
    key: &str,
    value: Vec<u8>,
    opts: &KeyOptions,
) -> Result<PutRecord> {
    let key = full_key(target, key, opts.absolute, true)?;
    let start = Instant::now();
    let resp = opts
        .bounded("put", async {
            let mut kv = crate::target::kv(&target.client);
            // A dead member's endpoint fails before sending: try the others, as etcd's client does.
            // A request cancelled by its connection's teardown (a member just killed) is tried
            // once more: putting the same value again is harmless.
            let (mut tries, mut cancelled) = (0, false);
            loop {
                match kv.put(key.clone(), value.clone(), None).await {
                    Err(e) if super::not_sent(&e) && tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(etcd_client::Error::GRpcStatus(s))
                        if s.code() == tonic::Code::Cancelled && !cancelled =>
                    {
                        cancelled = true;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    r => break r.map_err(etcd("put")),
                }
            }
        })
        .await?;
    Ok(PutRecord {
        key,
        revision: resp.header().map_or(0, |h| h.revision()),
        duration_ms: ms(start.elapsed()),
    })
}

/// The record of a get.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct GetRecord {
    /// The full key read.
    pub key: String,
    /// Whether it exists.
    pub found: bool,
    /// The value as text (lossy UTF-8), empty when absent.
    pub value: String,
    /// Value length in bytes.
    #[schemars(with = "crate::measure::Bytes")]
    pub value_size: u64,
    /// Revision that created the key.
    pub create_revision: i64,
    /// Revision of the last change.
    pub mod_revision: i64,
    /// Number of changes since creation.
    pub version: i64,
    /// The cluster revision at the read.
    pub revision: i64,
    /// Request latency.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Reads one key.
pub async fn get(target: &Target, key: &str, opts: &KeyOptions) -> Result<GetRecord> {
    let key = full_key(target, key, opts.absolute, false)?;
    let mut o = GetOptions::new();
    if opts.serializable {
        o = o.with_serializable();
    }
    let start = Instant::now();
    let resp = crate::target::kv(&target.client)
        .get(key.clone(), Some(o))
        .await
        .map_err(etcd("get"))?;
    let duration_ms = ms(start.elapsed());
    let revision = resp.header().map_or(0, |h| h.revision());
    Ok(match resp.kvs().first() {
        Some(kv) => GetRecord {
            key,
            found: true,
            value: String::from_utf8_lossy(kv.value()).into_owned(),
            value_size: kv.value().len() as u64,
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            revision,
            duration_ms,
        },
        None => GetRecord {
            key,
            found: false,
            value: String::new(),
            value_size: 0,
            create_revision: 0,
            mod_revision: 0,
            version: 0,
            revision,
            duration_ms,
        },
    })
}

/// Options of a prefix range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeOptions {
    /// Return at most this many keys (0: no limit). The total count is reported regardless.
    #[serde(default)]
    pub limit: i64,
    /// Only count, return no keys (`etcdctl get --prefix --count-only`).
    #[serde(default)]
    pub count_only: bool,
    /// Return keys without values.
    #[serde(default)]
    pub keys_only: bool,
    /// Serve from the local member.
    #[serde(default)]
    pub serializable: bool,
    /// Use the prefix as given instead of under the run prefix.
    #[serde(default)]
    pub absolute: bool,
    /// How many keys to list in the record (the rest are only counted).
    #[serde(default = "default_list")]
    pub list: usize,
    /// The step fails when fewer keys than this are under the prefix. Unset: a range inside a
    /// resource directory where this run's `cluster::simulate` or `cluster::lifecycle` put objects
    /// must find at least one (a range of the wrong namespace is not an empty success); `0`
    /// allows nothing anywhere.
    #[serde(default)]
    pub at_least: Option<u64>,
}

fn default_list() -> usize {
    100
}

impl Default for RangeOptions {
    fn default() -> Self {
        RangeOptions {
            limit: 0,
            count_only: false,
            keys_only: false,
            serializable: false,
            absolute: false,
            list: default_list(),
            at_least: None,
        }
    }
}

/// The record of a prefix range.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RangeRecord {
    /// The full prefix.
    pub prefix: String,
    /// Keys under the prefix (all of them, not just those returned).
    pub count: i64,
    /// Keys returned by this request.
    pub returned: u64,
    /// Whether more keys exist beyond `limit`.
    pub more: bool,
    /// Total bytes of the returned values.
    #[schemars(with = "crate::measure::Bytes")]
    pub value_bytes: u64,
    /// The first `list` keys returned.
    pub keys: Vec<String>,
    /// The cluster revision at the read.
    pub revision: i64,
    /// Request latency.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Reads keys under a prefix.
pub async fn range(target: &Target, prefix: &str, opts: &RangeOptions) -> Result<RangeRecord> {
    opts.check()?;
    let prefix = full_key(target, prefix, opts.absolute, false)?;
    let mut o = GetOptions::new().with_prefix();
    if opts.limit > 0 {
        o = o.with_limit(opts.limit);
    }
    if opts.count_only {
        o = o.with_count_only();
    }
    if opts.keys_only {
        o = o.with_keys_only();
    }
    if opts.serializable {
        o = o.with_serializable();
    }
    let start = Instant::now();
    let resp = crate::target::kv(&target.client)
        .get(prefix.clone(), Some(o))
        .await
        .map_err(etcd("range"))?;
    let duration_ms = ms(start.elapsed());
    let kvs = resp.kvs();
    let record = RangeRecord {
        count: resp.count(),
        returned: kvs.len() as u64,
        more: resp.more(),
        value_bytes: kvs.iter().map(|kv| kv.value().len() as u64).sum(),
        keys: kvs
            .iter()
            .take(opts.list)
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect(),
        revision: resp.header().map_or(0, |h| h.revision()),
        prefix,
        duration_ms,
    };
    expected(target, opts.at_least, record)
}

/// The range's record, or the failure that carries it when fewer keys are there than expected:
/// `at_least`, or one where this run put objects.
fn expected(target: &Target, at_least: Option<u64>, record: RangeRecord) -> Result<RangeRecord> {
    let found = record.count.max(0) as u64;
    let message = match at_least {
        Some(n) if found < n => format!(
            "etcd::range found {found} keys under `{}`, fewer than at_least: {n}",
            record.prefix
        ),
        None if found == 0 => {
            match crate::actions::cluster::places::expected_under(&crate::actions::cluster::places_of(target), &record.prefix)
            {
                Some(place) => format!(
                    "etcd::range found nothing under `{}`, but {}, and no delete phase, cluster::cleanup or etcd::delete of this run removed them since: range where they are (a lifecycle's record names its `prefix` and `namespaces`; `cluster::object(record, i)` gives an object's key), or pass `at_least: 0` if nothing is expected here",
                    record.prefix,
                    crate::actions::cluster::places::hint(&place)
                ),
                None => return Ok(record),
            }
        }
        _ => return Ok(record),
    };
    Err(Error::WithRecord {
        record: Box::new(serde_json::to_value(&record).unwrap_or_default()),
        source: Box::new(Error::Failed {
            kind: crate::exit::ErrorKind::Script,
            message,
        }),
    })
}

/// The record of a delete.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct DeleteRecord {
    /// The full key or prefix.
    pub key: String,
    /// Keys deleted.
    pub deleted: i64,
    /// The cluster revision after the delete.
    pub revision: i64,
    /// Request latency.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// Deletes a key, or every key under a prefix.
pub async fn delete(target: &Target, key: &str, opts: &KeyOptions) -> Result<DeleteRecord> {
    let key = full_key(target, key, opts.absolute, true)?;
    let o = opts.prefix.then(|| DeleteOptions::new().with_prefix());
    let start = Instant::now();
    let resp = crate::target::kv(&target.client)
        .delete(key.clone(), o)
        .await
        .map_err(etcd("delete"))?;
    if opts.prefix {
        crate::actions::cluster::places::deleted(&crate::actions::cluster::places_of(target), &key);
    }
    Ok(DeleteRecord {
        key,
        deleted: resp.deleted(),
        revision: resp.header().map_or(0, |h| h.revision()),
        duration_ms: ms(start.elapsed()),
    })
}

/// Options of [`put_many`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutManyOptions {
    /// Keys to write.
    pub count: u64,
    /// Bytes per value (`1024` or `"1KiB"`).
    #[serde(default = "default_value_size")]
    pub value_size: SizeValue,
    /// Key prefix, relative to the run prefix.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Requests in flight at once (`clients`, as in `etcd::stress`; formerly `concurrency`).
    #[serde(default = "default_clients")]
    pub clients: u64,
    /// Every put failing is what the scenario means (a permission test): the step passes with
    /// its record. Otherwise it fails, with the kind of the failures (auth, permission,
    /// unreachable: exit 3).
    #[serde(default)]
    pub expect_errors: bool,
}

fn default_value_size() -> SizeValue {
    SizeValue::Bytes(256)
}
fn default_key_prefix() -> String {
    "keys/".into()
}
fn default_clients() -> u64 {
    16
}

/// The record of [`put_many`].
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PutManyRecord {
    /// Puts attempted.
    pub count: u64,
    /// Puts that succeeded.
    pub ok: u64,
    /// Puts that failed.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// The first few error messages.
    pub error_messages: Vec<String>,
    /// Value bytes written.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes: u64,
    /// Wall time of the whole batch.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
    /// Successful puts per second.
    #[schemars(with = "crate::measure::PerSecond", extend("x-better" = "higher", "x-samples" = "ok"))]
    pub throughput: f64,
    /// Per-request latency.
    pub latency: Distribution,
}

impl super::CheckOptions for PutManyOptions {
    fn check(&self) -> Result<()> {
        if self.clients == 0 || self.clients > 10_000 {
            return Err(Error::Options("clients must be between 1 and 10000".into()));
        }
        if self.count > 100_000_000 {
            return Err(Error::Options(
                "count above 100000000 is refused (a typo?): write more keys in several steps, or load with etcd::stress and a duration".into(),
            ));
        }
        if self.value_size.bytes()? > 1_500_000 {
            return Err(Error::Options(
                "value_size above 1.5 MB exceeds etcd's default request limit".into(),
            ));
        }
        Ok(())
    }
}

impl super::CheckOptions for RangeOptions {
    fn check(&self) -> Result<()> {
        if self.limit < 0 {
            return Err(Error::Options(format!(
                "limit {} is negative: give the most keys to return, or 0 for all",
                self.limit
            )));
        }
        Ok(())
    }
}

crate::no_option_checks!(KeyOptions);

/// Writes `count` keys of `value_size` bytes with bounded concurrency, recording latency.
/// This is the simple batch writer; sustained and rate-controlled load is `etcd::stress`.
pub async fn put_many(target: &Target, opts: &PutManyOptions) -> Result<PutManyRecord> {
    opts.check()?;
    let value_size = opts.value_size.bytes()?;
    let base = full_key(target, &opts.key_prefix, false, true)?;
    let value = vec![b'x'; value_size as usize];
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..opts.clients.min(opts.count.max(1)))
        .map(|_| {
            let mut kv = crate::target::kv(&target.client);
            let (next, base, value, count) =
                (next.clone(), base.clone(), value.clone(), opts.count);
            tokio::spawn(async move {
                // Each worker keeps a book of its own, merged when they end.
                let mut book = Book::default();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let t = Instant::now();
                    let sec = t.duration_since(start).as_secs();
                    match kv.put(format!("{base}{i:010}"), value.clone(), None).await {
                        Ok(_) => book.ok("put", sec, t.elapsed()),
                        Err(e) => {
                            let (code, message) = (FailCode::of(&e), super::etcd_message(&e));
                            let kind = Error::Etcd {
                                op: "put",
                                source: e,
                            }
                            .kind();
                            book.fail("put", sec, &code, kind, &message);
                        }
                    }
                }
                book
            })
        })
        .collect();
    let mut book = Book::default();
    for w in workers {
        book.merge(
            w.await
                .map_err(|e| Error::Internal(format!("a put_many worker panicked: {e}")))?,
        );
    }
    let elapsed = start.elapsed();
    let main_kind = book.main_kind();
    let done = book.finish();
    let put = done.ops.get("put").cloned().unwrap_or_default();
    let (ok, errors) = (put.ok, put.failed);
    let record = PutManyRecord {
        count: opts.count,
        ok,
        errors,
        error_messages: done.messages,
        bytes: ok * value_size,
        duration_ms: ms(elapsed),
        throughput: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: put.latency.summary(),
    };
    // Every put failing is a failed step, of the kind most of them failed with: no data is never
    // a pass.
    if ok == 0 && errors > 0 && !opts.expect_errors {
        let kind = main_kind.unwrap_or(crate::exit::ErrorKind::Infrastructure);
        return Err(Error::WithRecord {
            record: Box::new(serde_json::to_value(&record).unwrap_or_default()),
            source: Box::new(Error::Failed {
                kind,
                message: format!(
                    "every put failed ({errors} errors, {kind}): {}; set expect_errors: true if the scenario means it",
                    record.error_messages.first().map_or("", String::as_str)
                ),
            }),
        });
    }
    Ok(record)
}

/// One member's status, as `etcdctl endpoint status` shows it.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MemberStatus {
    /// Member name.
    pub name: String,
    /// Member id, hex as etcdctl prints it.
    pub id: String,
    /// The client URL asked.
    pub endpoint: String,
    /// Whether the member answered.
    pub reachable: bool,
    /// Whether this member is the leader.
    pub is_leader: bool,
    /// Whether it is a learner.
    pub is_learner: bool,
    /// Server version.
    pub version: String,
    /// Backend database size in bytes (allocated).
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size: i64,
    /// Bytes of the backend actually in use.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_in_use: i64,
    /// Store revision.
    pub revision: i64,
    /// Raft term.
    pub raft_term: u64,
    /// Raft index.
    pub raft_index: u64,
    /// Raft applied index.
    pub raft_applied_index: u64,
    /// Errors the member reports, or why it could not be asked.
    pub errors: Vec<String>,
    /// Latency of the status request.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// The record of `status`: every member plus cluster-wide figures.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StatusRecord {
    /// Members in the cluster.
    pub member_count: usize,
    /// Members that answered.
    pub reachable: usize,
    /// Whether any member reports a leader.
    pub has_leader: bool,
    /// The leader's id (hex), empty when none.
    pub leader: String,
    /// Largest db size among members.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size: i64,
    /// Largest in-use size among members.
    #[schemars(with = "crate::measure::Bytes")]
    pub db_size_in_use: i64,
    /// Highest revision among members.
    pub revision: i64,
    /// Highest raft term among members.
    pub raft_term: u64,
    /// Per member.
    pub members: Vec<MemberStatus>,
}

/// One listed member and what asking it over its own connection gave.
struct MemberAnswer<T> {
    name: String,
    id: u64,
    endpoint: String,
    took: Duration,
    answer: Result<T, String>,
}

/// How long one member may take to answer a per-member question.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

/// Lists the members, then asks each one over a connection to its own client URL (as etcdctl's
/// `--cluster` flag does), in member-list order. A member that fails or times out is an answer too.
async fn ask_each_member<T, F, Fut>(target: &Target, ask: F) -> Result<Vec<MemberAnswer<T>>>
where
    F: Fn(etcd_client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let members = target
        .client
        .cluster_client()
        .member_list()
        .await
        .map_err(etcd("member list"))?;
    let mut out = Vec::new();
    for m in members.members() {
        let endpoint = m.client_urls().first().cloned().unwrap_or_default();
        let start = Instant::now();
        let asked = async {
            let c = target
                .settings
                .connect_to(std::slice::from_ref(&endpoint))
                .await?;
            ask(c).await
        };
        let answer = match tokio::time::timeout(MEMBER_TIMEOUT, asked).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {}s", MEMBER_TIMEOUT.as_secs())),
        };
        out.push(MemberAnswer {
            name: m.name().to_string(),
            id: m.id(),
            endpoint,
            took: start.elapsed(),
            answer,
        });
    }
    Ok(out)
}

/// Asks every member for its status (connecting to each member's client URL).
pub async fn status(target: &Target) -> Result<StatusRecord> {
    let answers = ask_each_member(target, |mut c| async move {
        c.status().await.map_err(etcd("status"))
    })
    .await?;
    let out: Vec<MemberStatus> = answers
        .into_iter()
        .map(|a| {
            let (name, id, endpoint, duration_ms) =
                (a.name, format!("{:x}", a.id), a.endpoint, ms(a.took));
            match a.answer {
                Ok(s) => MemberStatus {
                    is_leader: s.leader() == a.id,
                    is_learner: s.is_learner(),
                    version: s.version().to_string(),
                    db_size: s.db_size(),
                    db_size_in_use: s.raft_used_db_size(),
                    revision: s.header().map_or(0, |h| h.revision()),
                    raft_term: s.raft_term(),
                    raft_index: s.raft_index(),
                    raft_applied_index: s.raft_applied_index(),
                    errors: s.errors().to_vec(),
                    reachable: true,
                    name,
                    id,
                    endpoint,
                    duration_ms,
                },
                Err(e) => unreachable_member(name, id, endpoint, e, duration_ms),
            }
        })
        .collect();
    let leader = out
        .iter()
        .find(|m| m.is_leader)
        .map(|m| m.id.clone())
        .unwrap_or_default();
    Ok(StatusRecord {
        member_count: out.len(),
        reachable: out.iter().filter(|m| m.reachable).count(),
        has_leader: !leader.is_empty(),
        leader,
        db_size: out.iter().map(|m| m.db_size).max().unwrap_or(0),
        db_size_in_use: out.iter().map(|m| m.db_size_in_use).max().unwrap_or(0),
        revision: out.iter().map(|m| m.revision).max().unwrap_or(0),
        raft_term: out.iter().map(|m| m.raft_term).max().unwrap_or(0),
        members: out,
    })
}

fn unreachable_member(
    name: String,
    id: String,
    endpoint: String,
    error: String,
    duration_ms: f64,
) -> MemberStatus {
    MemberStatus {
        name,
        id,
        endpoint,
        reachable: false,
        is_leader: false,
        is_learner: false,
        version: String::new(),
        db_size: 0,
        db_size_in_use: 0,
        revision: 0,
        raft_term: 0,
        raft_index: 0,
        raft_applied_index: 0,
        errors: vec![error],
        duration_ms,
    }
}

/// One alarm raised on a member.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Alarm {
    /// Member id (hex).
    pub member_id: String,
    /// `NOSPACE`, `CORRUPT` or `NONE`.
    pub alarm: String,
}

/// The record of `alarms`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct AlarmsRecord {
    /// Number of active alarms.
    pub count: usize,
    /// Whether a NOSPACE alarm is active (the cluster refuses writes).
    pub nospace: bool,
    /// Whether a CORRUPT alarm is active.
    pub corrupt: bool,
    /// The alarms.
    pub alarms: Vec<Alarm>,
}

/// Lists active alarms (`etcdctl alarm list`).
pub async fn alarms(target: &Target) -> Result<AlarmsRecord> {
    let resp = target
        .client
        .maintenance_client()
        .alarm(AlarmAction::Get, AlarmType::None, None::<AlarmOptions>)
        .await
        .map_err(etcd("alarm list"))?;
    let alarms: Vec<Alarm> = resp
        .alarms()
        .iter()
        .map(|a| Alarm {
            member_id: format!("{:x}", a.member_id()),
            alarm: match a.alarm() {
                AlarmType::Nospace => "NOSPACE",
                AlarmType::Corrupt => "CORRUPT",
                AlarmType::None => "NONE",
            }
            .to_string(),
        })
        .collect();
    Ok(AlarmsRecord {
        count: alarms.len(),
        nospace: alarms.iter().any(|a| a.alarm == "NOSPACE"),
        corrupt: alarms.iter().any(|a| a.alarm == "CORRUPT"),
        alarms,
    })
}

/// One member's health.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MemberHealth {
    /// The client URL.
    pub endpoint: String,
    /// Whether a linearizable read succeeded.
    pub healthy: bool,
    /// Latency of the check.
    #[schemars(with = "crate::measure::Ms")]
    pub took_ms: f64,
    /// Why it is unhealthy.
    pub error: Option<String>,
}

/// The record of `health`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HealthRecord {
    /// True when every member is healthy and no alarm is active.
    pub healthy: bool,
    /// Healthy members.
    pub healthy_members: usize,
    /// Active alarms (a NOSPACE cluster is unhealthy).
    pub alarms: Vec<String>,
    /// Per member.
    pub members: Vec<MemberHealth>,
}

/// Checks every member as `etcdctl endpoint health --cluster` does: a linearizable read of the
/// `health` key (permission denied still means the member works), plus the alarm list.
pub async fn health(target: &Target) -> Result<HealthRecord> {
    let answers = ask_each_member(target, |c| async move {
        match crate::target::kv(&c).get("health", None).await {
            Ok(_) => Ok(()),
            // An auth-enabled cluster may refuse the read: the member still answered.
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("permission denied") => {
                Ok(())
            }
            Err(e) => Err(Error::Etcd {
                op: "get health",
                source: e,
            }),
        }
    })
    .await?;
    let out: Vec<MemberHealth> = answers
        .into_iter()
        .map(|a| MemberHealth {
            endpoint: a.endpoint,
            healthy: a.answer.is_ok(),
            took_ms: ms(a.took),
            error: a.answer.err(),
        })
        .collect();
    let alarms: Vec<String> = alarms(target)
        .await?
        .alarms
        .into_iter()
        .map(|a| format!("{} on {}", a.alarm, a.member_id))
        .collect();
    let healthy_members = out.iter().filter(|m| m.healthy).count();
    Ok(HealthRecord {
        healthy: healthy_members == out.len() && alarms.is_empty(),
        healthy_members,
        alarms,
        members: out,
    })
}

//! Plain async Rust actions: the work steps do. No Rhai types here; each action takes typed options
//! and returns a serde record that becomes part of the step's report entry.

pub mod apiserver_view;
pub mod capacity;
pub mod cluster;
pub mod etcd;
pub mod fault;
pub mod maintenance;
pub mod metrics;
pub mod network;
pub mod promql;
pub mod registry;
pub mod stress;
pub mod timeline;

use std::time::Duration;

/// Why an action stopped before it finished: an enum, never a string compared by text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// Ctrl-C, SIGTERM, or an abort stopped the run.
    Interrupted,
    /// The step ran past its own `timeout`.
    Timeout,
    /// An action was called when no run was in progress.
    NoRun,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Interrupted => "interrupted",
            StopReason::Timeout => "timeout",
            StopReason::NoRun => "no run in progress",
        })
    }
}

/// Errors from actions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An etcd request failed.
    #[error("etcd {op} failed: {}", etcd_message(.source))]
    Etcd {
        /// The operation (`put`, `range`, `status`...).
        op: &'static str,
        /// The client error.
        #[source]
        source: etcd_client::Error,
    },
    /// A write outside the run prefix on an etcd scen did not start.
    #[error("refusing to write `{key}`: it is outside this run's prefix `{prefix}` and this etcd was not started by scen; use a relative key")]
    OutsidePrefix {
        /// The key.
        key: String,
        /// The run prefix.
        prefix: String,
    },
    /// Options that make no sense together or out of range.
    #[error("invalid options: {0}")]
    Options(String),
    /// Connecting to one member failed.
    #[error(transparent)]
    Connect(#[from] crate::target::Error),
    /// The run was interrupted or the step ran out of time.
    #[error("{0}")]
    Stopped(StopReason),
    /// etcd stopped answering during a load step.
    #[error("{0}")]
    Unavailable(String),
    /// A Prometheus server could not be reached, or did not answer with its API's JSON.
    #[error("Prometheus at {url}: {message}")]
    PrometheusUnavailable {
        /// The Prometheus base URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// Prometheus rejected a query (bad PromQL, bad time range).
    #[error("Prometheus rejected `{query}`: {message}; check the PromQL (try it in Prometheus's own UI)")]
    PrometheusQuery {
        /// The PromQL.
        query: String,
        /// Prometheus's error type and message.
        message: String,
    },
    /// A fault could not be applied to an embedded member.
    #[error("fault: {0}")]
    Fault(String),
    /// No usable kubeconfig for `backend: "kube"`.
    #[error("kubeconfig: {0}")]
    KubeConfig(String),
    /// A Kubernetes API request failed.
    #[error("Kubernetes API: {op} failed: {source}")]
    Kube {
        /// What was being done (`create pod ns/name`).
        op: String,
        /// kube-rs's error.
        #[source]
        source: kube::Error,
    },
    /// A failure of a known kind (every request of a load failed, the target died).
    #[error("{message}")]
    Failed {
        /// What kind of failure; decides the exit code.
        kind: crate::exit::ErrorKind,
        /// What happened and what to check.
        message: String,
    },
    /// Something inside scen failed: a worker panicked, a thread could not start. A bug or the
    /// machine's limits, not the scenario's doing.
    #[error("{0} (inside scen: please report it with the scenario)")]
    Internal(String),
    /// A file scen reads or writes for a step (a snapshot, a restored data directory).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Objects at names a simulation wanted exist already and this run did not create them: left
    /// as they are, and the step fails unless the scenario adopts them.
    #[error("{}", not_ours_message(*.count, .examples, *.removed))]
    NotOurs {
        /// How many.
        count: u64,
        /// The first few, by key or `<resource>/<namespace>/<name>`.
        examples: String,
        /// The objects the step had created, deleted again so that it leaves nothing behind.
        removed: u64,
    },
    /// A failure that still has a record worth keeping (what a load step measured before etcd died).
    #[error("{source}")]
    WithRecord {
        /// What went wrong.
        #[source]
        source: Box<Error>,
        /// The step's record up to the failure.
        record: Box<serde_json::Value>,
    },
}

impl Error {
    /// What kind of failure this is: the cluster's (exit code 3) or the scenario's (exit code 2).
    pub fn kind(&self) -> crate::exit::ErrorKind {
        use crate::exit::ErrorKind;
        match self {
            Error::Etcd { source, .. } => match source {
                etcd_client::Error::GRpcStatus(s) => ErrorKind::of_status(s.code(), s.message()),
                etcd_client::Error::TransportError(_) => ErrorKind::ConnectionLost,
                _ => ErrorKind::Infrastructure,
            },
            Error::Connect(e) if e.is_usage() => ErrorKind::Usage,
            Error::Connect(_)
            | Error::PrometheusUnavailable { .. }
            | Error::Io { .. }
            | Error::Internal(_) => ErrorKind::Infrastructure,
            Error::Unavailable(_) => ErrorKind::ConnectionLost,
            Error::Failed { kind, .. } => *kind,
            // The API server answering 4xx is the scenario's doing (a bad object, no permission);
            // throttling (429), its own failures (5xx) and no answer at all are the cluster's.
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) if s.code < 500 && s.code != 429 => ErrorKind::Script,
                _ => ErrorKind::Infrastructure,
            },
            Error::WithRecord { source, .. } => source.kind(),
            Error::Stopped(StopReason::Timeout) => ErrorKind::StepTimeout,
            Error::Stopped(StopReason::Interrupted | StopReason::NoRun) => ErrorKind::Interrupted,
            Error::OutsidePrefix { .. }
            | Error::NotOurs { .. }
            | Error::Options(_)
            | Error::PrometheusQuery { .. }
            | Error::Fault(_)
            | Error::KubeConfig(_) => ErrorKind::Script,
        }
    }
}

/// Result type of actions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Options an action checks before it runs, so `scen check` refuses them before etcd starts:
/// bounds, durations, sizes and choices — everything that needs no etcd.
pub trait CheckOptions {
    /// `Err` says what is wrong and what to write instead.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// Implements [`CheckOptions`] with nothing to check beyond the types.
#[macro_export]
macro_rules! no_option_checks {
    ($($t:ty),* $(,)?) => { $(impl $crate::actions::CheckOptions for $t {})* };
}

/// A size given as a number of bytes or as text with a unit.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// `"1KiB"`.
    Text(String),
}

impl SizeValue {
    /// The size in bytes.
    pub fn bytes(&self) -> Result<u64> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(t) => {
                crate::units::parse_size(t).map_err(|e| Error::Options(e.to_string()))
            }
        }
    }
}

/// Deserializes a number that scripts may write as an integer (`500`) or a float (`0.5`).
pub(crate) fn de_f64<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Num {
        I(i64),
        F(f64),
    }
    Ok(match <Num as serde::Deserialize>::deserialize(d)? {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    })
}

/// [`de_f64`] for optional numbers.
pub(crate) fn de_opt_f64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    de_f64(d).map(Some)
}

/// An error with its causes (reqwest's own message alone hides "connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// A live progress line sink, called about once a second by long actions.
pub type ProgressFn = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// Who watches a running action: a person (progress lines, about once a second) and live outputs
/// (the step's totals, through the run's [`crate::measure::totals::LiveFeed`]). Either may be absent.
#[derive(Clone, Default)]
pub struct Watch {
    /// Where progress lines go.
    pub line: Option<ProgressFn>,
    /// Where the step's live totals go.
    pub live: Option<crate::measure::totals::SharedFeed>,
}

/// The message of [`Error::NotOurs`], in the singular when there is one object.
fn not_ours_message(count: u64, examples: &str, removed: u64) -> String {
    let what = if count == 1 {
        "1 object at a name this step would create exists already, and this run did not create it"
            .to_string()
    } else {
        format!("{count} objects at names this step would create exist already, and this run did not create them")
    };
    format!(
        "{what} ({examples}): left exactly as found, and the step deleted again the {removed} objects it had created. Give another `name_prefix` (or `root`), or `adopt_existing: true` to count them in `existing` and use them as they are (never modified or deleted)"
    )
}

pub use crate::target::etcd_message;

pub use crate::exit::FailCode;

impl FailCode {
    /// The code of an etcd client error.
    pub fn of(e: &etcd_client::Error) -> FailCode {
        match e {
            etcd_client::Error::GRpcStatus(s) => {
                match crate::exit::ErrorKind::of_status(s.code(), s.message()) {
                    crate::exit::ErrorKind::Auth => FailCode::Grpc(tonic::Code::Unauthenticated),
                    crate::exit::ErrorKind::Permission => {
                        FailCode::Grpc(tonic::Code::PermissionDenied)
                    }
                    _ => FailCode::Grpc(s.code()),
                }
            }
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                FailCode::Transport
            }
            _ => FailCode::Other,
        }
    }
}

/// A duration option (`"5s"`), or `default` when absent; errors name the option.
pub(crate) fn duration_option(text: Option<&str>, default: &str, what: &str) -> Result<Duration> {
    crate::units::parse_duration(text.unwrap_or(default))
        .map_err(|e| Error::Options(format!("{what}: {e}")))
}

/// Whether the request failed before it reached etcd (connecting to a dead endpoint), so trying
/// it again cannot apply it twice.
pub(crate) fn not_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable
                && (s.message().contains("tcp connect error")
                    || s.message().contains("Connection refused"))
        }
        _ => false,
    }
}

/// Milliseconds as a float, the report's unit for durations.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

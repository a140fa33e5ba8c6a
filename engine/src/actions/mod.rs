//! Plain async Rust actions: the work steps do. No Rhai types here; each action takes typed options
//! and returns a serde record that becomes part of the step's report entry.

pub mod cluster;
pub mod etcd;
pub mod fault;
pub mod latency;
pub mod maintenance;
pub mod metrics;
pub mod process;
pub mod promql;
pub mod stress;

use std::time::Duration;

/// Errors from actions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An etcd request failed.
    #[error("etcd {op} failed: {source}")]
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
    Stopped(String),
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
    /// True when the failure is the cluster's (exit code 3) rather than the scenario's (exit code 2).
    pub fn is_infrastructure(&self) -> bool {
        match self {
            Error::Etcd { .. }
            | Error::Connect(_)
            | Error::Unavailable(_)
            | Error::PrometheusUnavailable { .. } => true,
            // The API server answering 4xx is the scenario's doing (a bad object, no permission).
            Error::Kube { source, .. } => !matches!(source, kube::Error::Api(s) if s.code < 500),
            Error::WithRecord { source, .. } => source.is_infrastructure(),
            _ => false,
        }
    }
}

/// Result type of actions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// A live progress line sink, called about once a second by long actions.
pub type ProgressFn = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// The gRPC status code of an etcd error (`Unavailable`...), `Transport` or `Other`.
pub(crate) fn grpc_code(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}", s.code()),
        etcd_client::Error::TransportError(_) => "Transport".into(),
        _ => "Other".into(),
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

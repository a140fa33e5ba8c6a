//! The one report model every renderer reads: what ran, against what, how each step went, and each
//! threshold's verdict. Serialised as versioned JSON (`docs/report.schema.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::actions::registry::Record;
pub use crate::exit::{ErrorKind, Outcome};

/// Version of the JSON layout; bumped on incompatible changes. 2: typed figures (`null` for no
/// samples, units in each record's schema, renamed `shortfall`, `client_per_op`, `server_per_op`,
/// `cpu`), error kinds as an enum, the `no_data` threshold verdict. Version 1 reports still read.
pub const SCHEMA_VERSION: u32 = 2;

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Finished without error.
    Passed,
    /// Raised an error.
    Failed,
    /// Never started (an earlier failure, an abort, or an interrupt).
    Skipped,
    /// Stopped part way by an interrupt or an abort.
    Interrupted,
}

/// A threshold's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdStatus {
    /// The condition held.
    Passed,
    /// The condition did not hold.
    Failed,
    /// The condition could not be evaluated (a field is missing or not a number): counts as failed.
    Error,
    /// A field it reads has no samples (nothing measured, a member not scraped): counts as failed,
    /// unless the threshold says `no_data: "pass"`.
    NoData,
    /// A step it reads did not complete.
    NotEvaluated,
    /// The data cannot decide it: a quantile from a bucketed histogram whose bucket holds the
    /// limit. Counts as failed, unless the threshold says `interpolate: true`.
    Inconclusive,
}

impl ThresholdStatus {
    /// Whether the verdict fails the run.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            ThresholdStatus::Failed
                | ThresholdStatus::Error
                | ThresholdStatus::NoData
                | ThresholdStatus::Inconclusive
        )
    }
}

/// An error with its kind and, for script errors, its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// What kind of failure it is; decides the exit code.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// `file:line:col`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The message with the source line and a caret, as printed on the terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The scenario that ran.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// File path as given.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// The cluster the run used.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetReport {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// True when scen started this etcd.
    pub embedded: bool,
    /// Server version.
    pub etcd_version: String,
    /// The run's key prefix.
    pub prefix: String,
    /// Keys removed under the prefix at the end (external clusters; 0 when kept).
    pub cleaned_up_keys: i64,
}

/// One step's entry.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepReport {
    /// Step name.
    pub name: String,
    /// Whether it ran in the background.
    pub background: bool,
    /// How it went.
    pub status: StepStatus,
    /// Start time, if it started.
    pub started_at: Option<DateTime<Utc>>,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// The error, when it failed.
    pub error: Option<ErrorInfo>,
    /// What the step's closure returned (a map), or `{}`: the action's record as its Rust type,
    /// with the step's views beside it, or the map the script built.
    #[schemars(with = "Value")]
    pub record: Record,
    /// The action whose record this is (`etcd::stress`), however the step's closure reached it
    /// (directly, through a `fn`, a variable or `result(...)`): its record type (`scen api`) gives
    /// each figure's unit and direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For a map the script built: the fields that hold an action's record, with that action
    /// (`{"load": "etcd::stress"}`), which types them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_actions: BTreeMap<String, String>,
}

/// A step's entry as JSON holds it: the record is typed by its `action` once read.
#[derive(Deserialize)]
struct StepJson {
    name: String,
    background: bool,
    status: StepStatus,
    started_at: Option<DateTime<Utc>>,
    duration_ms: f64,
    error: Option<ErrorInfo>,
    record: Value,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    field_actions: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for StepReport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StepJson::deserialize(d)?;
        Ok(StepReport {
            record: Record::of(s.action.as_deref(), s.record),
            name: s.name,
            background: s.background,
            status: s.status,
            started_at: s.started_at,
            duration_ms: s.duration_ms,
            error: s.error,
            action: s.action,
            field_actions: s.field_actions,
        })
    }
}

/// One threshold's entry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdReport {
    /// The expression as written.
    pub expression: String,
    /// Whether a failure stops the run.
    pub abort_on_fail: bool,
    /// The verdict.
    pub status: ThresholdStatus,
    /// Observed value (canonical units: ms, bytes, /s, fraction).
    pub observed: Option<f64>,
    /// The limit it was compared with.
    pub limit: Option<f64>,
    /// `observed 31ms, limit < 25ms`, or why it could not be evaluated.
    pub message: String,
    /// Where it was declared.
    pub location: String,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// `scen <version>`.
    pub scen_version: String,
    /// Unique id of the run; also part of the key prefix.
    pub run_id: String,
    /// The scenario.
    pub scenario: ScenarioInfo,
    /// Parameter values used.
    pub params: BTreeMap<String, Value>,
    /// Where each value came from: `default`, `values` or `set`.
    pub param_sources: BTreeMap<String, String>,
    /// The cluster, once connected.
    pub target: Option<TargetReport>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: DateTime<Utc>,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// How the run ended.
    pub outcome: Outcome,
    /// The process exit code that goes with the outcome.
    pub exit_code: i32,
    /// Why the run stopped early, and at which step.
    pub stopped_early: Option<StoppedEarly>,
    /// The `--baseline` report thresholds compared with, if any.
    #[serde(default)]
    pub baseline: Option<String>,
    /// The run-level error, if any.
    pub error: Option<ErrorInfo>,
    /// Steps, in declaration order (skipped ones included).
    pub steps: Vec<StepReport>,
    /// Thresholds, in declaration order.
    pub thresholds: Vec<ThresholdReport>,
    /// etcd's own view across the run, every few seconds (the HTML report's timeline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_timeline: Vec<crate::actions::timeline::ServerPoint>,
    /// Groups of steps the scenario asked to see side by side (`report(#{ compare: [...] })`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare_steps: Vec<Vec<String>>,
    /// The embedded Kubernetes control plane (`kube_control_plane(...)`): versions, ports,
    /// flags and start-up time of each component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<crate::control_plane::ControlPlaneReport>,
    /// Live outputs (`--out`, `--metrics-listen`): what each sent, and what it had to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputReport>,
}

/// What one live output did during the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct OutputReport {
    /// `prometheus-rw` or `metrics-listen`.
    pub kind: String,
    /// The receiver's URL, or the address served.
    pub target: String,
    /// Requests the receiver accepted (pushes), or scrapes served.
    pub requests: u64,
    /// Samples the receiver accepted.
    pub sent_samples: u64,
    /// Samples dropped: the queue was full (a slow or absent receiver), the receiver rejected
    /// them, or they could not be sent before the end.
    pub dropped_samples: u64,
    /// Pushes tried again after a failure.
    pub retries: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// Where and why a run stopped before the end.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StoppedEarly {
    /// The step running or about to run.
    pub step: Option<String>,
    /// Why.
    pub reason: String,
}

impl Report {
    /// Counts of threshold verdicts: (passed, failed incl. errors).
    pub fn threshold_counts(&self) -> (usize, usize) {
        let passed = self
            .thresholds
            .iter()
            .filter(|t| t.status == ThresholdStatus::Passed)
            .count();
        let failed = self
            .thresholds
            .iter()
            .filter(|t| t.status.is_failure())
            .count();
        (passed, failed)
    }
}

/// The JSON Schema of [`Report`] (what `docs/report.schema.json` holds).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Report);
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

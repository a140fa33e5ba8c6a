//! The plan a scenario file declares: metadata, typed parameters, steps in order (some in the
//! background), join points and thresholds. Reading a scenario builds a plan and touches no etcd.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::params::{ParamSpec, Resolved};
use crate::threshold::Threshold;

/// Where something was declared in a script.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourcePos {
    /// The file (the scenario, or an imported module's name).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
}

impl std::fmt::Display for SourcePos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One named step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Unique name; also the first segment of threshold paths.
    pub name: String,
    /// Runs concurrently with the steps after it until joined (or the run ends).
    pub background: bool,
    /// The closure to call with the parameters.
    pub func: rhai::FnPtr,
    /// Stop the step after this long.
    pub timeout: Option<Duration>,
    /// Start this long after the step's turn comes (`at:`).
    pub at: Option<Duration>,
    /// Record a failure but carry on with the next steps.
    pub continue_on_error: bool,
    /// Where it was declared.
    pub pos: SourcePos,
    /// The action whose record its closure returns (`etcd::stress`), found by calling the
    /// closure at plan time, when actions return empty records of their type: its record type
    /// types the step's figures. `None` when the closure returns a map of its own.
    pub action: Option<String>,
    /// For a closure that returns a map of its own: the fields that hold an action's record, with
    /// that action (`{"load": "etcd::stress"}`).
    pub field_actions: std::collections::BTreeMap<String, String>,
}

/// An entry of the plan, in declaration order.
#[derive(Debug, Clone)]
pub enum Item {
    /// Run a step.
    Step(StepSpec),
    /// Wait for a background step to finish.
    Join {
        /// The background step.
        step: String,
        /// Where `join` was called.
        pos: SourcePos,
    },
}

/// A threshold and where it was declared.
#[derive(Debug, Clone)]
pub struct PlannedThreshold {
    /// The parsed threshold.
    pub threshold: Threshold,
    /// Where it was declared.
    pub pos: SourcePos,
}

/// Everything a scenario declares.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name (defaults to the file stem).
    pub name: String,
    /// One-paragraph description.
    pub description: String,
    /// The scenario file.
    pub file: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Declared parameters, in order.
    pub params: Vec<ParamSpec>,
    /// Parameter values for this run.
    pub resolved: Resolved,
    /// Steps and joins, in order.
    pub items: Vec<Item>,
    /// Thresholds, in order.
    pub thresholds: Vec<PlannedThreshold>,
    /// Settings for the embedded etcd (`embedded_etcd(...)`), when the run starts one.
    pub embedded: crate::embedded::EmbeddedSpec,
    /// The embedded Kubernetes control plane (`kube_control_plane(...)`), when the scenario asks
    /// for one.
    pub control_plane: Option<crate::control_plane::ControlPlaneSpec>,
    /// Calls that act on the members of the etcd scen starts (`fault::kill` at line 12...): a
    /// run against `--endpoints` is refused before its first step.
    pub needs_embedded: Vec<String>,
    /// Network faults (`fault::partition` at line 12...): they need 3 or 5 members with peer
    /// proxies, which the run checks before it starts etcd.
    pub needs_network: Vec<String>,
    /// Cluster-wide maintenance (`etcd::compact` at line 12...): a run against `--endpoints`
    /// without `--allow-maintenance` is refused before its first step.
    pub needs_maintenance: Vec<String>,
    /// What `scen check` warns about (deprecated option names), as `file:line: message`.
    pub warnings: Vec<String>,
    /// Groups of steps the HTML report draws side by side (`report(#{ compare: [...] })`).
    pub compare_steps: Vec<Vec<String>>,
}

impl Plan {
    /// The steps, in order.
    pub fn steps(&self) -> impl Iterator<Item = &StepSpec> {
        self.items.iter().filter_map(|i| match i {
            Item::Step(s) => Some(s),
            Item::Join { .. } => None,
        })
    }

    /// A serialisable outline, printed by `scen check`.
    pub fn outline(&self) -> PlanOutline {
        PlanOutline {
            name: self.name.clone(),
            description: self.description.clone(),
            file: self.file.display().to_string(),
            params: self
                .params
                .iter()
                .map(|p| ParamOutline {
                    name: p.name.clone(),
                    kind: format!("{:?}", p.kind).to_lowercase(),
                    default: p.default.clone(),
                    value: self
                        .resolved
                        .values
                        .get(&p.name)
                        .cloned()
                        .unwrap_or_default(),
                    doc: p.doc.clone(),
                })
                .collect(),
            steps: self
                .items
                .iter()
                .map(|i| match i {
                    Item::Step(s) => StepOutline {
                        name: s.name.clone(),
                        kind: if s.background { "background" } else { "step" }.into(),
                        timeout: s.timeout.map(|t| format!("{}s", t.as_secs_f64())),
                        line: s.pos.line,
                    },
                    Item::Join { step, pos } => StepOutline {
                        name: step.clone(),
                        kind: "join".into(),
                        timeout: None,
                        line: pos.line,
                    },
                })
                .collect(),
            thresholds: self
                .thresholds
                .iter()
                .map(|t| ThresholdOutline {
                    expression: t.threshold.source.clone(),
                    abort_on_fail: t.threshold.abort_on_fail,
                    line: t.pos.line,
                })
                .collect(),
        }
    }
}

/// `scen check`'s view of a plan.
#[derive(Debug, Serialize)]
pub struct PlanOutline {
    /// Scenario name.
    pub name: String,
    /// Description.
    pub description: String,
    /// File.
    pub file: String,
    /// Parameters.
    pub params: Vec<ParamOutline>,
    /// Steps and joins.
    pub steps: Vec<StepOutline>,
    /// Thresholds.
    pub thresholds: Vec<ThresholdOutline>,
}

/// A parameter in the outline.
#[derive(Debug, Serialize)]
pub struct ParamOutline {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: String,
    /// Default.
    pub default: serde_json::Value,
    /// Value after overrides.
    pub value: serde_json::Value,
    /// Description.
    pub doc: String,
}

/// A step in the outline.
#[derive(Debug, Serialize)]
pub struct StepOutline {
    /// Step name (or the joined step).
    pub name: String,
    /// `step`, `background` or `join`.
    pub kind: String,
    /// Timeout, if any.
    pub timeout: Option<String>,
    /// Line declared.
    pub line: usize,
}

/// A threshold in the outline.
#[derive(Debug, Serialize)]
pub struct ThresholdOutline {
    /// The expression.
    pub expression: String,
    /// Whether it aborts the run.
    pub abort_on_fail: bool,
    /// Line declared.
    pub line: usize,
}

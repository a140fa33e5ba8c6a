//! A step's figures, typed by the record its action returns (`StepReport::action`), its server
//! view and its wall time: what `scen compare` and the renderers read instead of guessing from
//! field names.

use serde_json::Value;

use super::StepReport;
use crate::measure::figures::{figures, Figure};

/// Every figure of a step's record, typed where the step's action is known.
pub fn step_figures(step: &StepReport) -> Vec<Figure> {
    let Value::Object(record) = &step.record else {
        return Vec::new();
    };
    let schema = step
        .action
        .as_deref()
        .and_then(crate::script::record_schema);
    let server = serde_json::to_value(schemars::schema_for!(crate::actions::metrics::ServerStep))
        .unwrap_or_default();
    let mut own = record.clone();
    let mut out = Vec::new();
    if let Some(view) = own.remove("server") {
        out.extend(figures(
            Some(&server),
            &view,
            &format!("{}.server", step.name),
            Some(step.duration_ms),
        ));
    }
    out.extend(figures(
        schema.as_ref(),
        &Value::Object(own),
        &step.name,
        Some(step.duration_ms),
    ));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

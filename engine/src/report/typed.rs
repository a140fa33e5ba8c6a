//! A step's figures, typed by the record its action returns (`StepReport::action`), its server
//! view and its wall time: what `scen compare` and the renderers read instead of guessing from
//! field names.

use serde_json::Value;

use super::StepReport;
use crate::actions::registry::RecordType;
use crate::measure::figures::{figures, Figure};

/// The views every step's record may carry beside its action's own fields, with their schemas
/// (made once): etcd's (`server`) and the embedded control plane's (`apiserver`).
pub static STEP_VIEWS: std::sync::LazyLock<[(&'static str, Value); 2]> =
    std::sync::LazyLock::new(|| {
        [
            (
                "server",
                serde_json::to_value(schemars::schema_for!(crate::actions::metrics::ServerStep))
                    .unwrap_or_default(),
            ),
            (
                "apiserver",
                serde_json::to_value(schemars::schema_for!(
                    crate::actions::apiserver_view::ApiserverStep
                ))
                .unwrap_or_default(),
            ),
        ]
    });

/// Every figure of a step's record, typed where the step's action is known.
pub fn step_figures(step: &StepReport) -> Vec<Figure> {
    walk(step, figures)
}

/// As [`step_figures`], with the figures of lists of maps (`members[0].raft_index`): what the
/// page shows.
pub fn step_figures_with_lists(step: &StepReport) -> Vec<Figure> {
    walk(step, crate::measure::figures::figures_with_lists)
}

/// The figures of a step's views and record, by `each` (with or without lists).
fn walk(
    step: &StepReport,
    each: fn(Option<&Value>, &Value, &str, Option<f64>) -> Vec<Figure>,
) -> Vec<Figure> {
    let figures = each;
    let Value::Object(mut own) = step.record.to_value() else {
        return Vec::new();
    };
    let schema_of = |action: &str| RecordType::of_action(action).map(RecordType::schema);
    // An action's record is typed by its Rust type; a record of an action the script changed
    // the shape of (or an old report's) by the schema of the action the step names.
    let schema = match step.record.record_type() {
        Some(ty) => Some(ty.schema()),
        None => step.action.as_deref().and_then(schema_of),
    };
    let mut out = Vec::new();
    for (key, schema) in STEP_VIEWS.iter() {
        if let Some(view) = own.remove(*key) {
            out.extend(figures(
                Some(schema),
                &view,
                &format!("{}.{key}", step.name),
                Some(step.duration_ms),
            ));
        }
    }
    // A map of the script's own: the fields that are an action's record are typed by it.
    for (key, action) in &step.field_actions {
        if let (Some(schema), Some(part)) = (schema_of(action), own.remove(key)) {
            out.extend(figures(
                Some(schema),
                &part,
                &crate::measure::path::key(&step.name, key),
                Some(step.duration_ms),
            ));
        }
    }
    out.extend(figures(
        schema,
        &Value::Object(own),
        &step.name,
        Some(step.duration_ms),
    ));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The figures a page lists for a step: the record's own top-level figures (in their units, `—`
/// for no samples; short strings as they are), then the headline of its server view. The record
/// is typed once for both.
pub fn page_figures(step: &StepReport) -> Vec<(String, String)> {
    let figures = step_figures(step);
    let find = |path: String| figures.iter().find(|f| f.path == path);
    let mut out = Vec::new();
    if let Value::Object(record) = step.record.to_value() {
        for (k, v) in &record {
            if let Some(f) = find(crate::measure::path::key(&step.name, k)) {
                out.push((k.clone(), f.display()));
            } else if let Some(t) = v.as_str().filter(|t| t.len() < 80) {
                out.push((k.clone(), t.to_string()));
            }
        }
    }
    for (field, label) in [
        ("wal_fsync.p99", "server: WAL fsync p99"),
        ("backend_commit.p99", "server: backend commit p99"),
        ("peer_rtt.p99", "server: peer round trip p99"),
        ("leader_changes", "server: leader changes"),
        ("proposals_failed", "server: failed proposals"),
    ] {
        if let Some(f) = find(format!("{}.server.{field}", step.name)) {
            out.push((label.to_string(), f.display()));
        }
    }
    out
}

/// One line for a step with a latency distribution: `p50 1.2ms, p99 4.5ms, 950/s` (`—` where
/// nothing was measured); `None` when the record has no `latency`.
pub fn latency_headline(step: &StepReport) -> Option<String> {
    super::records::Latencies::of(step).latency?;
    let figures = step_figures(step);
    let show = |field: &str| -> Option<String> {
        let path = format!("{}.{field}", step.name);
        figures.iter().find(|f| f.path == path).map(Figure::display)
    };
    let mut line = format!(
        "p50 {}, p99 {}",
        show("latency.p50").unwrap_or_else(|| crate::measure::NO_DATA.into()),
        show("latency.p99").unwrap_or_else(|| crate::measure::NO_DATA.into())
    );
    if let Some(t) = show("throughput") {
        line.push_str(&format!(", {t}"));
    }
    Some(line)
}

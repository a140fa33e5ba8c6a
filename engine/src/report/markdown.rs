//! A Markdown summary (from a minijinja template), suitable for a CI job summary.

use minijinja::{Environment, Value};

use super::{Error, Report, Result};
use crate::units::{format_number, format_quantity, Dimension};

const TEMPLATE: &str = include_str!("templates/summary.md.j2");

/// Renders the report as Markdown.
pub fn to_markdown(report: &Report) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("ms", |v: f64| format_quantity(v, Dimension::Duration));
    env.add_filter("num", |v: f64| format_number(v));
    env.add_template("summary", TEMPLATE)
        .map_err(|e| render_err(&e))?;
    let tmpl = env.get_template("summary").map_err(|e| render_err(&e))?;
    let (passed, failed) = report.threshold_counts();
    let notes: std::collections::BTreeMap<&str, String> = report
        .steps
        .iter()
        .filter_map(|s| Some((s.name.as_str(), super::typed::latency_headline(s)?)))
        .collect();
    tmpl.render(minijinja::context! {
        r => Value::from_serialize(report),
        notes => notes,
        thresholds_passed => passed,
        thresholds_failed => failed,
        verdict => match report.outcome {
            super::Outcome::Passed => "✅ PASSED",
            super::Outcome::ThresholdsFailed => "❌ THRESHOLDS FAILED",
            super::Outcome::ScriptError => "⚠️ SCENARIO ERROR",
            super::Outcome::InfrastructureError => "⚠️ INFRASTRUCTURE ERROR",
            super::Outcome::Interrupted => "⏹ INTERRUPTED",
        },
    })
    .map_err(|e| render_err(&e))
}

fn render_err(e: &minijinja::Error) -> Error {
    Error::Render {
        format: "markdown",
        reason: e.to_string(),
    }
}

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
    env.add_filter("md", |v: Value| md_text(&v.to_string()));
    env.add_filter("code", |v: Value| code_text(&v.to_string()));
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

/// Text from a script or an error as Markdown prose: HTML and Markdown's control characters
/// escaped (GitHub renders a job summary's HTML), on one line, at most 300 characters.
fn md_text(s: &str) -> String {
    one_line(s, |c, out| match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' => {
            out.push('\\');
            out.push(c);
        }
        c => out.push(c),
    })
}

/// Text for inside a code span (`` `…` ``): no backtick can end it early, a pipe cannot end a
/// table cell, one line, at most 300 characters. HTML in a code span is shown, not rendered.
fn code_text(s: &str) -> String {
    one_line(s, |c, out| match c {
        '`' => out.push('\''),
        '|' => out.push_str("\\|"),
        c => out.push(c),
    })
}

/// `s` on one line (line breaks as spaces), each character through `escape`, cut at 300.
fn one_line(s: &str, escape: impl Fn(char, &mut String)) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if i == 300 {
            out.push('…');
            break;
        }
        match c {
            '\n' | '\r' => out.push(' '),
            c => escape(c, &mut out),
        }
    }
    out
}

fn render_err(e: &minijinja::Error) -> Error {
    Error::Render {
        format: "markdown",
        reason: e.to_string(),
    }
}

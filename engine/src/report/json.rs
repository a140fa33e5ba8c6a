//! JSON rendering of the report (the versioned, schema-checked form).

use std::path::Path;

use super::{Error, Report, Result};

/// Renders the report as pretty JSON.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report model always serialises")
}

/// Reads a report written by [`to_json`].
pub fn from_json(path: &Path) -> Result<Report> {
    let read_err = |reason: String| Error::Read {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))
}

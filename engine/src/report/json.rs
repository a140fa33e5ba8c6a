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
    // Only a regular file, and not an endless one: a FIFO or /dev/zero must not block or fill
    // memory.
    let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(read_err(
            "not a regular file: give the path of a report written by `scen run --report`".into(),
        ));
    }
    const MAX: u64 = 1 << 30;
    if meta.len() > MAX {
        return Err(read_err(format!(
            "{} bytes is more than the 1 GiB a report may have",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
    // The layout version first: a report of another layout is refused by name, not misread.
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: Option<u64>,
    }
    let v: Version = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
    match v.schema_version {
        Some(n) if (1..=u64::from(super::SCHEMA_VERSION)).contains(&n) => {}
        Some(n) => {
            return Err(read_err(format!(
                "schema_version {n} is not a report layout this scen reads (1 to {}): a report from another version of scen?",
                super::SCHEMA_VERSION
            )))
        }
        None => return Err(read_err("no schema_version: not a scen report".into())),
    }
    serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_schema_version_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, r#"{"schema_version": 999}"#).unwrap();
        let e = from_json(&p).unwrap_err().to_string();
        assert!(e.contains("schema_version 999"), "{e}");
        std::fs::write(&p, r#"{"steps": []}"#).unwrap();
        assert!(from_json(&p)
            .unwrap_err()
            .to_string()
            .contains("not a scen report"));
    }
}

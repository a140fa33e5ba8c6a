//! The report model and its renderers. Renderers only read a [`Report`]; none talks to etcd.

pub mod compare;
mod html;
mod json;
mod junit;
mod markdown;
pub mod model;
mod svg;
pub mod typed;

use std::io::Write;
use std::path::Path;

pub use html::{to_compare_html, to_html};
pub use json::{from_json, to_json};
pub use junit::to_junit;
pub use markdown::to_markdown;
pub use model::*;

/// Rendering or writing failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The destination.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a report file failed.
    #[error("cannot read report {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A renderer failed.
    #[error("cannot render the {format} report: {reason}")]
    Render {
        /// `junit` or `markdown`.
        format: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then a rename,
/// so readers never see half a report. Parent directories are created.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let err = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(contents).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

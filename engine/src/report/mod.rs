//! The report model and its renderers. Renderers only read a [`Report`]; none talks to etcd.

pub mod compare;
mod html;
mod json;
mod junit;
mod markdown;
pub mod model;
mod phases;
mod svg;
mod tables;
mod timeline;
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

/// Writes an output file the user named, never replacing what is not a regular file: `-` and
/// `/dev/stdout` write to standard output; a symlink is followed and its target written (a
/// dangling one creates its target); a regular file is replaced atomically ([`write_atomic`]); a
/// FIFO or a character device (`/dev/null`, a terminal) is written directly; a directory, a block
/// device or a socket is refused.
pub fn write_output(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let err = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    if path == Path::new("-") || path == Path::new("/dev/stdout") {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(contents)
            .and_then(|()| out.flush())
            .map_err(err);
    }
    // The kernel follows the links (including /proc's magic ones) to what is there now.
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => write_atomic(&std::fs::canonicalize(path).map_err(err)?, contents),
        Ok(m) if m.file_type().is_fifo() || m.file_type().is_char_device() => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(err)?;
            f.write_all(contents).map_err(err)
        }
        Ok(m) => {
            let what = if m.is_dir() {
                "a directory"
            } else if m.file_type().is_block_device() {
                "a block device"
            } else if m.file_type().is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            Err(err(std::io::Error::other(format!(
                "it is {what}: scen writes reports only to regular files (replaced atomically), FIFOs, character devices or `-` (standard output), and never replaces anything else"
            ))))
        }
        // Nothing there, or a dangling symlink: create the file the links end at.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(&resolve_links(path).map_err(err)?, contents)
        }
        Err(e) => Err(err(e)),
    }
}

/// Follows a chain of symlinks to the path it ends at (which may not exist yet).
fn resolve_links(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then a rename,
/// so readers never see half a report. Parent directories are created.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
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
    // A replaced file keeps its permissions; a new one gets the usual 0644, not the temporary's 0600.
    let mode = std::fs::metadata(path).map_or_else(
        |_| std::fs::Permissions::from_mode(0o644),
        |m| m.permissions(),
    );
    tmp.as_file().set_permissions(mode).map_err(err)?;
    tmp.write_all(contents).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

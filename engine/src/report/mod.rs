//! The report model and its renderers. Renderers only read a [`Report`]; none talks to etcd.

pub mod compare;
pub mod compare_runs;
mod html;
mod json;
mod junit;
mod markdown;
pub mod model;
pub mod outage;
mod phases;
pub mod records;
pub mod redact;
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
            use std::os::unix::fs::OpenOptionsExt;
            // Opened without blocking: a FIFO nobody reads within 2 s is an error, not a hang.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let f = loop {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                {
                    Ok(f) => break f,
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                        if std::time::Instant::now() >= deadline {
                            return Err(err(std::io::Error::other(
                                "it is a FIFO with no reader (none came within 2 s): start the reader first, or write to a file",
                            )));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => return Err(err(e)),
                }
            };
            // A reader is there: write as usual (blocking), as much as it takes.
            // SAFETY: fcntl on a descriptor this function owns.
            unsafe {
                use std::os::fd::AsRawFd;
                let fd = f.as_raw_fd();
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
            let mut f = f;
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
                "it is {what}: scen writes reports only to regular files (replaced atomically; a symlink is written through to its target), FIFOs with a reader, character devices or `-` (standard output)"
            ))))
        }
        // Nothing there, or a dangling symlink: create the file the links end at.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(&resolve_links(path).map_err(err)?, contents)
        }
        Err(e) => Err(err(e)),
    }
}

/// The file writes to `path` land on: its symlinks followed (as Unix tools write through them),
/// made absolute; `None` for standard output.
pub fn output_target(path: &Path) -> Option<std::path::PathBuf> {
    if path == Path::new("-") || path == Path::new("/dev/stdout") {
        return None;
    }
    let end = resolve_links(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(c) = std::fs::canonicalize(&end) {
        return Some(c);
    }
    let parent = match end.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).unwrap_or(parent);
    Some(dir.join(end.file_name().unwrap_or_default()))
}

/// Checks the outputs of a run before it starts (`(flag, path)`): none may land on one of
/// `inputs` (the scenario, a values file, an import: a report must never replace what the run
/// reads), and no two on the same file (only the last would survive). Symlinks are followed and
/// their targets checked the same way. `Err` says which, for exit 2.
pub fn check_outputs(
    outputs: &[(&str, &Path)],
    inputs: &[&Path],
) -> std::result::Result<(), String> {
    let inputs: Vec<(std::path::PathBuf, &Path)> = inputs
        .iter()
        .filter_map(|p| Some((std::fs::canonicalize(p).ok()?, *p)))
        .collect();
    let mut seen: Vec<(std::path::PathBuf, &str)> = Vec::new();
    for (flag, path) in outputs {
        let Some(target) = output_target(path) else {
            continue;
        };
        let through = if target.as_path() != *path
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        {
            format!(" (a symlink to {})", target.display())
        } else {
            String::new()
        };
        if let Some((_, input)) = inputs.iter().find(|(c, _)| *c == target) {
            return Err(format!(
                "{flag} {}{through} is {}, which this run reads: give the report another path",
                path.display(),
                input.display()
            ));
        }
        if let Some((_, other)) = seen.iter().find(|(t, _)| *t == target) {
            return Err(format!(
                "{flag} {}{through} is the file {other} also writes: give each report its own path",
                path.display()
            ));
        }
        seen.push((target, flag));
    }
    Ok(())
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

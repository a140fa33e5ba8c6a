//! Where logs go: `tracing` to stderr at the level `-v`/`-q` ask for, every line with the
//! passwords of the command line and `SCEN_USER` masked.

use std::io::IsTerminal;

/// Starts the log at the level `-v`/`-q` ask for (`RUST_LOG` wins), redacted, coloured on a
/// terminal unless `NO_COLOR`.
pub(crate) fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}

/// Every password on the command line or in `SCEN_USER` (`--user name:password`, credentials in
/// a URL), so no output shows it.
pub(crate) fn remember_secrets() {
    use scen_engine::report::redact;
    let args: Vec<String> = std::env::args().collect();
    let mut next_is_user = false;
    for a in &args {
        redact::remember_urls(a);
        let user = if next_is_user {
            Some(a.as_str())
        } else {
            a.strip_prefix("--user=")
        };
        if let Some((_, pw)) = user.and_then(|u| u.split_once(':')) {
            redact::remember(pw);
        }
        next_is_user = a == "--user";
    }
    if let Some((_, pw)) = std::env::var("SCEN_USER")
        .ok()
        .as_deref()
        .and_then(|u| u.split_once(':'))
    {
        redact::remember(pw);
    }
}

/// The log writer: each line redacted on its way to stderr.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(scen_engine::report::redact::redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

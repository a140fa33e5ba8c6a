//! How things end, at the bottom of the crate (it imports nothing of scen's): the kinds of
//! failure ([`ErrorKind`], never a message compared by text), how a run ends ([`Outcome`]), and
//! the process exit codes of every `scen` subcommand in one table ([`Exit`], as nextest keeps
//! its own in `nextest-metadata/src/exit_codes.rs`): `run`, `check`, `compare`, `ab`, `report`,
//! `doctor`... each ends with an `Exit`, never a bare number.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a run ended, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step ran and every threshold passed.
    Passed,
    /// Steps ran, but at least one threshold failed.
    ThresholdsFailed,
    /// The scenario or its usage is wrong: nothing ran, or the script raised an error.
    ScriptError,
    /// etcd could not be started or reached, or failed a request.
    InfrastructureError,
    /// Ctrl-C or SIGTERM stopped the run.
    Interrupted,
}

impl Outcome {
    /// The documented process exit code (from [`Exit`], the one table).
    pub fn exit_code(self) -> i32 {
        i32::from(Exit::from(self).code())
    }
}

/// What kind of failure an error is. The kind, never the message, decides the exit code
/// ([`ErrorKind::outcome`] is the one mapping).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The scenario is wrong: syntax, options, a script error, an action used the wrong way.
    Script,
    /// The command line is wrong: flags, files given to scen.
    Usage,
    /// etcd could not be started or reached, or failed in a way not named below.
    Infrastructure,
    /// The connection to etcd was lost: every member unreachable (gRPC `Unavailable`).
    ConnectionLost,
    /// A member scen started died without a fault asking for it.
    EtcdDied,
    /// etcd did not accept the credentials (gRPC `Unauthenticated`: no or wrong `--user`).
    Auth,
    /// etcd refused the operation to this user (gRPC `PermissionDenied`).
    Permission,
    /// etcd did not answer in time (gRPC `DeadlineExceeded`).
    RequestTimeout,
    /// The step ran past its own `timeout`.
    #[serde(rename = "timeout")]
    StepTimeout,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

impl ErrorKind {
    /// How a run that stops on this error ends (and so its exit code).
    pub fn outcome(self) -> Outcome {
        match self {
            ErrorKind::Script | ErrorKind::Usage | ErrorKind::StepTimeout => Outcome::ScriptError,
            ErrorKind::Infrastructure
            | ErrorKind::ConnectionLost
            | ErrorKind::EtcdDied
            | ErrorKind::Auth
            | ErrorKind::Permission
            | ErrorKind::RequestTimeout => Outcome::InfrastructureError,
            ErrorKind::Interrupted => Outcome::Interrupted,
        }
    }

    /// The kind's name as reports and scripts (`e.kind`) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Script => "script",
            ErrorKind::Usage => "usage",
            ErrorKind::Infrastructure => "infrastructure",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::EtcdDied => "etcd_died",
            ErrorKind::Auth => "auth",
            ErrorKind::Permission => "permission",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::StepTimeout => "timeout",
            ErrorKind::Interrupted => "interrupted",
        }
    }

    /// The kind of a failed gRPC call, by its status code and, for etcd's authentication errors
    /// that travel as `InvalidArgument` or `FailedPrecondition`, by etcd's fixed message (the
    /// way etcd's own Go client maps them, `rpctypes.errStringToError`).
    pub fn of_status(code: tonic::Code, message: &str) -> ErrorKind {
        const AUTH: [&str; 5] = [
            "etcdserver: user name is empty",
            "etcdserver: authentication failed, invalid user ID or password",
            "etcdserver: invalid auth token",
            "etcdserver: user name not found",
            "etcdserver: authentication is not enabled",
        ];
        if AUTH.iter().any(|m| message.starts_with(m)) {
            return ErrorKind::Auth;
        }
        if message.starts_with("etcdserver: permission denied") {
            return ErrorKind::Permission;
        }
        Self::of_grpc(code)
    }

    /// The kind of a failed gRPC call, by its status code.
    pub fn of_grpc(code: tonic::Code) -> ErrorKind {
        match code {
            tonic::Code::Unauthenticated => ErrorKind::Auth,
            tonic::Code::PermissionDenied => ErrorKind::Permission,
            tonic::Code::DeadlineExceeded => ErrorKind::RequestTimeout,
            tonic::Code::Unavailable => ErrorKind::ConnectionLost,
            _ => ErrorKind::Infrastructure,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one request of a load loop failed: the code its record counts it under
/// (`errors_by_code`), whatever the loop talked to (etcd, the API server).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailCode {
    /// etcd (or gRPC) answered with this status (auth errors etcd sends under other codes are
    /// kept as `Unauthenticated`).
    Grpc(tonic::Code),
    /// The connection failed (refused, reset, TLS).
    Transport,
    /// Anything else the client reported.
    Other,
    /// The API server refused with this status reason (`Conflict`, `AlreadyExists`,
    /// `TooManyRequests`...).
    Api(String),
    /// The API server answered with this HTTP status (named `HTTP 409`).
    Http(u16),
    /// No answer within the request's timeout.
    Timeout,
    /// The object is not this run's: scen leaves it as it is.
    NotOwned,
    /// The object a write was to update is not there.
    NotFound,
    /// The object kept changing under an update, every try.
    Conflict,
}

impl FailCode {
    /// The name records use (`Unavailable`, `DeadlineExceeded`, `Transport`, `NotOwned`...).
    pub fn name(&self) -> String {
        match self {
            FailCode::Grpc(c) => format!("{c:?}"),
            FailCode::Transport => "Transport".into(),
            FailCode::Other => "Other".into(),
            FailCode::Api(reason) => reason.clone(),
            FailCode::Http(status) => format!("HTTP {status}"),
            FailCode::Timeout => "DeadlineExceeded".into(),
            FailCode::NotOwned => "NotOwned".into(),
            FailCode::NotFound => "NotFound".into(),
            FailCode::Conflict => "Conflict".into(),
        }
    }

    /// What kind of failure a gRPC or transport failure is, for the step's verdict and exit code
    /// (a loop that knows better, from the error itself, says so to its book).
    pub fn kind(&self) -> ErrorKind {
        match self {
            FailCode::Grpc(c) => ErrorKind::of_grpc(*c),
            FailCode::Transport => ErrorKind::ConnectionLost,
            FailCode::Timeout => ErrorKind::RequestTimeout,
            FailCode::NotOwned | FailCode::NotFound => ErrorKind::Script,
            FailCode::Http(s) if *s < 500 && *s != 429 => ErrorKind::Script,
            FailCode::Other | FailCode::Api(_) | FailCode::Http(_) | FailCode::Conflict => {
                ErrorKind::Infrastructure
            }
        }
    }
}

/// How a `scen` command ended, and so its exit code ([`Exit::code`] is the one table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// It did what was asked, and every verdict passed (0).
    Success,
    /// It ran, and a verdict failed: a threshold, a `compare` regression or missing figure, an
    /// `ab` gate, a report with nothing to compare (1).
    VerdictFailed,
    /// The scenario, its options or the command line are wrong; nothing was measured, or a
    /// script error stopped the run (2).
    Usage,
    /// etcd or the control plane could not be started or reached, or failed (3).
    Infrastructure,
    /// Ctrl-C or SIGTERM stopped it (130, as a shell reports SIGINT).
    Interrupted,
}

impl Exit {
    /// The documented exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::VerdictFailed => 1,
            Exit::Usage => 2,
            Exit::Infrastructure => 3,
            Exit::Interrupted => 130,
        }
    }

    /// The exit of a command that failed (`Usage`) or not (`Success`).
    pub const fn ok_or_usage(ok: bool) -> Exit {
        if ok {
            Exit::Success
        } else {
            Exit::Usage
        }
    }

    /// The exit of a verdict: `Success` when it passed, `VerdictFailed` when not.
    pub const fn verdict(passed: bool) -> Exit {
        if passed {
            Exit::Success
        } else {
            Exit::VerdictFailed
        }
    }

    /// The exit whose code is `code` (a report's `exit_code`); `Infrastructure` for a code no
    /// table row has.
    pub fn from_code(code: i32) -> Exit {
        [
            Exit::Success,
            Exit::VerdictFailed,
            Exit::Usage,
            Exit::Infrastructure,
            Exit::Interrupted,
        ]
        .into_iter()
        .find(|e| i32::from(e.code()) == code)
        .unwrap_or(Exit::Infrastructure)
    }

    /// The worse of two exits (a report that could not be written after a passed run, say): the
    /// higher code, so an interrupt wins over all.
    pub fn worst(self, other: Exit) -> Exit {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }
}

impl From<Outcome> for Exit {
    fn from(o: Outcome) -> Exit {
        match o {
            Outcome::Passed => Exit::Success,
            Outcome::ThresholdsFailed => Exit::VerdictFailed,
            Outcome::ScriptError => Exit::Usage,
            Outcome::InfrastructureError => Exit::Infrastructure,
            Outcome::Interrupted => Exit::Interrupted,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_maps_to_its_documented_code_and_back() {
        for (o, code) in [
            (Outcome::Passed, 0),
            (Outcome::ThresholdsFailed, 1),
            (Outcome::ScriptError, 2),
            (Outcome::InfrastructureError, 3),
            (Outcome::Interrupted, 130),
        ] {
            assert_eq!(Exit::from(o).code(), code);
            assert_eq!(o.exit_code(), i32::from(code));
            assert_eq!(Exit::from_code(i32::from(code)), Exit::from(o));
        }
        assert_eq!(Exit::from_code(77), Exit::Infrastructure);
    }

    #[test]
    fn the_worst_exit_wins_and_an_interrupt_over_all() {
        assert_eq!(
            Exit::Success.worst(Exit::VerdictFailed),
            Exit::VerdictFailed
        );
        assert_eq!(
            Exit::Infrastructure.worst(Exit::VerdictFailed),
            Exit::Infrastructure
        );
        assert_eq!(
            Exit::Interrupted.worst(Exit::Infrastructure),
            Exit::Interrupted
        );
        assert_eq!(Exit::Usage.worst(Exit::Interrupted), Exit::Interrupted);
    }
}

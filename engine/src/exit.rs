//! The process exit codes of every `scen` subcommand, in one table (as nextest keeps its own in
//! `nextest-metadata/src/exit_codes.rs`): `run`, `check`, `compare`, `ab`, `report`, `doctor`...
//! each ends with an [`Exit`], never a bare number.

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

impl From<crate::report::Outcome> for Exit {
    fn from(o: crate::report::Outcome) -> Exit {
        use crate::report::Outcome;
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
    use crate::report::Outcome;

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

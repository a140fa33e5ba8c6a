//! `scen compare`: two reports (or several runs per side), the table or JSON of what changed, and
//! the exit code it means.

use scen_engine::report::{self};
use scen_engine::Exit;

use crate::progress::write_report;
use std::path::{Path, PathBuf};

/// What `scen compare` prints.
pub(crate) struct CompareOutput {
    /// Every figure, not only those that changed.
    pub(crate) all: bool,
    /// JSON instead of a table.
    pub(crate) json: bool,
    /// Only regressions and the summary.
    pub(crate) quiet: bool,
    /// Figures missing or without data on one side do not fail.
    pub(crate) allow_missing: bool,
}

pub(crate) fn compare(
    old: &[PathBuf],
    new: &[PathBuf],
    tolerance: &str,
    min_samples: u64,
    out: CompareOutput,
    html: Option<&Path>,
) -> Exit {
    let CompareOutput {
        all,
        json,
        quiet,
        allow_missing,
    } = out;
    use report::compare::{Options, Verdict};
    let tol = match scen_engine::units::parse_quantity(tolerance) {
        Ok(q)
            if matches!(
                q.dimension,
                scen_engine::units::Dimension::Ratio | scen_engine::units::Dimension::Number
            ) && q.value >= 0.0 =>
        {
            q.value
        }
        _ => {
            say!("error: --tolerance {tolerance}: give a percentage such as 10%");
            return Exit::Usage;
        }
    };
    // `scen compare a.json b.json`, or runs per side around `--`.
    let (old, new): (&[PathBuf], &[PathBuf]) = match (old, new) {
        ([a, b], []) => (std::slice::from_ref(a), std::slice::from_ref(b)),
        (_, []) => {
            say!("error: give two reports (old new), or the runs of each side around `--`: scen compare A1.json A2.json -- B1.json B2.json");
            return Exit::Usage;
        }
        sides => sides,
    };
    let mut sides: Vec<Vec<scen_engine::Report>> = Vec::new();
    for (which, paths) in [("old", old), ("new", new)] {
        let mut side = Vec::new();
        for path in paths {
            let r = match report::from_json(path) {
                Ok(r) => r,
                Err(e) => {
                    say!("error: {e}");
                    return Exit::Usage;
                }
            };
            // No data is never a pass: a run that did not finish has nothing to compare.
            if let Some(why) = report::compare::unfinished(&r) {
                say!(
                    "error: the {which} report {} cannot be compared: {why}",
                    path.display()
                );
                return Exit::VerdictFailed;
            }
            side.push(r);
        }
        sides.push(side);
    }
    let (a, b) = (&sides[0], &sides[1]);
    let cmp = report::compare_runs::compare_runs(
        a,
        b,
        Options {
            tolerance: tol,
            min_samples,
        },
    );
    let html = html.map(Path::to_path_buf);
    if !write_report(&html, || {
        report::to_compare_html(&a[0], &b[0], &cmp, tolerance, all)
    }) {
        return Exit::Usage;
    }
    for w in &cmp.warnings {
        say!("warning: {w}");
    }
    // A figure lost on one side, or without data in one of them, fails unless allowed.
    let lost = if allow_missing {
        0
    } else {
        cmp.count(Verdict::Missing)
    };
    let judged = cmp
        .rows
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Info | Verdict::Missing))
        .count();
    let regressed = cmp.count(Verdict::Regressed);
    let failed = regressed > 0 || lost > 0 || judged == 0;
    if json {
        match serde_json::to_string_pretty(&cmp) {
            Ok(text) => out!("{text}"),
            Err(e) => {
                say!("error: {e}");
                return Exit::Usage;
            }
        }
        return Exit::verdict(!failed);
    }
    let shown: Vec<_> = cmp
        .rows
        .iter()
        .filter(|r| {
            if quiet {
                r.verdict == Verdict::Regressed
            } else {
                all || r.verdict.changed()
            }
        })
        .collect();
    if !shown.is_empty() {
        out!(
            "{:<48} {:>12} {:>12} {:>9}  verdict",
            "figure",
            "old",
            "new",
            "change"
        );
    }
    for r in &shown {
        let why = r
            .why
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        out!(
            "{:<48} {:>12} {:>12} {:>9}  {}{why}",
            r.path,
            r.display(r.old),
            r.display(r.new),
            r.change_text(),
            r.verdict.label(),
        );
    }
    out!(
        "{judged} figures compared: {regressed} regressed, {} improved, {} within noise, {} inconclusive, {} on too few samples, {} without data, {} missing \
         (a regression is worse by more than {tolerance} and outside the 95% confidence interval{})",
        cmp.count(Verdict::Improved),
        cmp.count(Verdict::Noise),
        cmp.count(Verdict::Inconclusive),
        cmp.count(Verdict::TooFewSamples),
        cmp.count(Verdict::NoData),
        cmp.count(Verdict::Missing),
        if a.len() > 1 || b.len() > 1 {
            format!(
                "; {} vs {} runs, the runs as the samples",
                a.len(),
                b.len()
            )
        } else {
            "; one run per side: the requests as the samples, each interval at least as wide as its run's second-to-second spread, which still understates the noise between runs (give several runs per side around `--`)".into()
        }
    );
    if judged == 0 {
        say!("error: no figure could be compared: the reports have no figures in common (no data is never a pass)");
    } else if lost > 0 {
        say!(
            "error: {lost} figure(s) are missing from one report, or have no data in one where the other rests on enough samples (--allow-missing accepts that)"
        );
    }
    Exit::verdict(!failed)
}

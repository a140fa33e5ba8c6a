//! Scenarios read without running them: `scen check` (the plan, its warnings and outline),
//! `scen list` (a directory's or the shipped library's), `scen show` (a shipped one's source).

use std::path::Path;

use scen_engine::params::Overrides;
use scen_engine::script::Limits;
use scen_engine::Exit;

use crate::cli::*;

/// `scen check FILE`: the plan's warnings and outline (text or `--json`), exit 2 when it is wrong.
pub(crate) fn check(file: &Path, params: &ParamArgs, json: bool) -> Exit {
    match scen_engine::check(file, &crate::run::overrides(params), &Limits::default()) {
        Ok(plan) => {
            for w in &plan.warnings {
                say!("warning: {w}");
            }
            let o = plan.outline();
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&o).expect("outline serialises")
                );
            } else {
                out!("{} — {}\n  {}", o.name, o.file, o.description);
                out!("parameters:");
                for p in &o.params {
                    out!(
                        "  {:<20} {:<10} = {:<12} {}",
                        p.name,
                        p.kind,
                        p.value.to_string(),
                        p.doc
                    );
                }
                out!("steps:");
                for s in &o.steps {
                    out!("  {:<20} {:<10} line {}", s.name, s.kind, s.line);
                }
                out!("thresholds:");
                for t in &o.thresholds {
                    out!(
                        "  {}{}",
                        t.expression,
                        if t.abort_on_fail {
                            "  (abort_on_fail)"
                        } else {
                            ""
                        }
                    );
                }
                out!("ok: the plan is valid");
            }
            Exit::Success
        }
        Err(e) => {
            say!("{e}");
            Exit::Usage
        }
    }
}

/// `scen list` with no directory: the shipped library.
pub(crate) fn list_shipped() -> Exit {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            say!("error: {e}");
            return Exit::Usage;
        }
    };
    for (name, src) in scen_engine::library::SCENARIOS {
        if std::fs::write(dir.path().join(format!("{name}.rhai")), src).is_err() {
            return Exit::Usage;
        }
    }
    out!(
        "shipped with scen {} (`scen run NAME`, `scen show NAME`):",
        env!("CARGO_PKG_VERSION")
    );
    list(dir.path(), true)
}

/// `scen show NAME`: a shipped scenario's source, to read or redirect into a file of one's own.
pub(crate) fn show(name: &str) -> Exit {
    match scen_engine::library::shipped(name) {
        Some((_, src)) => {
            out_raw!("{src}");
            Exit::Success
        }
        None => {
            say!(
                "error: no shipped scenario {name} (shipped: {})",
                scen_engine::library::names().join(", ")
            );
            Exit::Usage
        }
    }
}

/// `scen list DIR`: each scenario of a directory with its description and parameters; exit 2
/// when one does not check.
pub(crate) fn list(dir: &Path, by_name: bool) -> Exit {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
            .collect(),
        Err(e) => {
            say!("error: cannot read {}: {e}", dir.display());
            return Exit::Usage;
        }
    };
    files.sort();
    let mut code = Exit::Success;
    for f in files {
        match scen_engine::check(&f, &Overrides::default(), &Limits::default()) {
            Ok(plan) => {
                let shown = if by_name {
                    f.file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                } else {
                    f.display().to_string()
                };
                out!(
                    "{}\n  {}",
                    shown,
                    plan.description.lines().next().unwrap_or("")
                );
                let params: Vec<_> = plan
                    .outline()
                    .params
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.default))
                    .collect();
                if !params.is_empty() {
                    out!("  params: {}", params.join(" "));
                }
            }
            Err(e) => {
                out!("{}\n  (invalid: {})", f.display(), e.message);
                code = Exit::Usage;
            }
        }
    }
    code
}

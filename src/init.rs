//! `scen init [DIR] [--from NAME]`: a starter of one's own from a shipped scenario — the
//! scenario with its header rewritten, a values file with every parameter and its doc, and CI
//! jobs that run it and keep its reports. Nothing existing is overwritten.

use scen_engine::Exit;
use std::path::{Path, PathBuf};

use scen_engine::params::Overrides;
use scen_engine::script::Limits;

const GITHUB: &str = r#"# .github/workflows/scen.yml — run SCENARIO with scen on every push; a failed threshold fails
# the job (exit 1), a broken scenario (2) or an unreachable etcd (3) too. scen must be on PATH
# (install it in the runner image: `cargo install --locked --path <a scen checkout>`).
name: scen SCENARIO
on: [push, pull_request]
jobs:
  scen:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - name: Run the scenario
        run: |
          mkdir -p out
          scen run SCENARIO.rhai --values values.yaml \
            --report out/report.json --junit out/junit.xml --html out/report.html \
            --markdown "$GITHUB_STEP_SUMMARY"
      - name: Keep the reports
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: scen-reports
          path: out/
"#;

const GITLAB: &str = r#"# .gitlab-ci.yml — run SCENARIO with scen; JUnit shows as test results, the HTML report is kept.
# scen must be on PATH in the job's image (`cargo install --locked --path <a scen checkout>`).
scen:
  script:
    - mkdir -p out
    - scen run SCENARIO.rhai --values values.yaml --report out/report.json --junit out/junit.xml --html out/report.html
  artifacts:
    when: always
    paths: [out/]
    reports:
      junit: out/junit.xml
"#;

/// Writes the starter; the exit code.
pub fn init(dir: &Path, from: &str) -> Exit {
    let Some((name, src)) = scen_engine::library::shipped(from) else {
        say!(
            "error: --from {from}: no shipped scenario of that name (shipped: {})",
            scen_engine::library::names().join(", ")
        );
        return Exit::Usage;
    };
    let files: Vec<(PathBuf, String)> = match starter(dir, name, src) {
        Ok(f) => f,
        Err(e) => {
            say!("error: {e}");
            return Exit::Usage;
        }
    };
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists() || std::fs::symlink_metadata(p).is_ok())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        say!(
            "error: scen init never overwrites a file, and these exist: {} (choose another directory)",
            existing.join(", ")
        );
        return Exit::Usage;
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                say!("error: cannot create {}: {e}", parent.display());
                return Exit::Usage;
            }
        }
        // create_new: a file that appeared meanwhile is not replaced either.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = written {
            say!("error: cannot write {}: {e}", path.display());
            return Exit::Usage;
        }
        out!("wrote {}", path.display());
    }
    out!(
        "next: scen check {} && scen run {} --values {}",
        dir.join(format!("{name}.rhai")).display(),
        dir.join(format!("{name}.rhai")).display(),
        dir.join("values.yaml").display()
    );
    Exit::Success
}

/// The files of the starter: (path, contents).
fn starter(dir: &Path, name: &str, src: &str) -> Result<Vec<(PathBuf, String)>, String> {
    // The header's first line says where it came from; the rest of the header (purpose, needs,
    // asserts) stays, to be edited.
    let mut lines = src.lines();
    let first = lines.next().unwrap_or_default();
    let summary = first
        .split_once(':')
        .map(|(_, s)| s.trim())
        .unwrap_or_default();
    let scenario = format!(
        "// {name}: {summary}\n// (started from scen {}'s shipped scenario `{name}` by `scen init`: it is yours to change)\n{}\n",
        env!("CARGO_PKG_VERSION"),
        lines.collect::<Vec<_>>().join("\n")
    );
    // The values file: every parameter, its doc and its default, from the plan itself.
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = tmp.path().join(format!("{name}.rhai"));
    std::fs::write(&file, &scenario).map_err(|e| e.to_string())?;
    let plan = scen_engine::check(&file, &Overrides::default(), &Limits::default())
        .map_err(|e| format!("the shipped scenario {name} does not check: {}", e.message))?;
    let mut values = format!(
        "# Parameter values for {name}.rhai (`scen run {name}.rhai --values values.yaml`); `--set` wins over them.\n"
    );
    for p in plan.outline().params {
        if !p.doc.is_empty() {
            values.push_str(&format!("# {}\n", p.doc));
        }
        values.push_str(&format!("{}: {}\n", p.name, p.default));
    }
    Ok(vec![
        (dir.join(format!("{name}.rhai")), scenario),
        (dir.join("values.yaml"), values),
        (
            dir.join(".github/workflows/scen.yml"),
            GITHUB.replace("SCENARIO", name),
        ),
        (dir.join(".gitlab-ci.yml"), GITLAB.replace("SCENARIO", name)),
    ])
}

//! What a run shows while it goes and when it ends: spinners or plain lines per step, the report
//! files written as the run goes, the verdict line, and the signals that stop it.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use scen_engine::report::{self, StepReport, StepStatus, TargetReport, ThresholdStatus};
use scen_engine::Exit;
use scen_engine::{Observer, Outcome};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Progress output: spinners on a terminal, plain lines otherwise, nothing with --quiet.
pub(crate) struct Progress {
    pub(crate) multi: Option<MultiProgress>,
    pub(crate) bars: Mutex<Vec<(String, ProgressBar)>>,
    pub(crate) quiet: bool,
    /// Plain mode: when a progress line was last printed, to print one every 10 s at most.
    pub(crate) last_plain: Mutex<Option<Instant>>,
    /// The report as it last stood, and the steps running since: written if a second signal
    /// ends the run at once.
    pub(crate) partial: Mutex<(Option<scen_engine::Report>, Vec<String>)>,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        let fancy =
            !quiet && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Progress {
            multi: fancy.then(MultiProgress::new),
            bars: Mutex::new(Vec::new()),
            quiet,
            last_plain: Mutex::new(None),
            partial: Mutex::new((None, Vec::new())),
        }
    }

    /// The report as it stands, ended now by an interrupt: running steps marked interrupted.
    pub(crate) fn partial_report(&self) -> Option<scen_engine::Report> {
        let (report, running) = self.partial.lock().ok()?.clone();
        let mut r = report?;
        for s in r.steps.iter_mut().filter(|s| running.contains(&s.name)) {
            s.status = StepStatus::Interrupted;
        }
        r.outcome = Outcome::Interrupted;
        r.exit_code = Outcome::Interrupted.exit_code();
        r.finished_at = chrono::Utc::now();
        r.duration_ms = (r.finished_at - r.started_at).num_milliseconds() as f64;
        r.stopped_early = Some(report::StoppedEarly {
            step: running.first().cloned(),
            reason: "interrupted twice: stopped at once, without deleting the run prefix or stopping etcd cleanly".into(),
        });
        Some(r)
    }
}

/// The report files `scen run` writes.
#[derive(Clone, Default)]
pub(crate) struct Outputs {
    pub(crate) report: Option<PathBuf>,
    pub(crate) junit: Option<PathBuf>,
    pub(crate) markdown: Option<PathBuf>,
    pub(crate) html: Option<PathBuf>,
}

impl Outputs {
    /// Refuses outputs that would replace the scenario or its values file, or each other.
    pub(crate) fn check(&self, scenario: &Path, values: Option<&Path>) -> Result<(), String> {
        let outs: Vec<(&str, &Path)> = [
            ("--report", &self.report),
            ("--junit", &self.junit),
            ("--markdown", &self.markdown),
            ("--html", &self.html),
        ]
        .into_iter()
        .filter_map(|(f, p)| Some((f, p.as_deref()?)))
        .collect();
        let imports = scen_engine::script::imported_files(scenario);
        let mut inputs = vec![scenario];
        inputs.extend(values);
        inputs.extend(imports.iter().map(PathBuf::as_path));
        report::check_outputs(&outs, &inputs)
    }

    /// Writes every report asked for; false when one could not be written.
    pub(crate) fn write(&self, r: &scen_engine::Report) -> bool {
        let written = [
            write_report(&self.report, || Ok(report::to_json(r))),
            write_report(&self.junit, || report::to_junit(r)),
            write_report(&self.markdown, || report::to_markdown(r)),
            write_report(&self.html, || report::to_html(r)),
        ];
        written.iter().all(|ok| *ok)
    }
}

impl Observer for Progress {
    fn snapshot(&self, r: &scen_engine::Report) {
        if let Ok(mut p) = self.partial.lock() {
            p.0 = Some(r.clone());
        }
    }
    fn connected(&self, t: &TargetReport) {
        if !self.quiet {
            let what = if t.embedded { "embedded etcd" } else { "etcd" };
            say!(
                "{what} {} at {} (prefix {})",
                t.etcd_version,
                t.endpoints.join(","),
                t.prefix
            );
        }
    }
    fn step_started(&self, name: &str, background: bool) {
        if let Ok(mut p) = self.partial.lock() {
            p.1.push(name.to_string());
        }
        let label = if background {
            format!("{name} (background)")
        } else {
            name.to_string()
        };
        match &self.multi {
            Some(m) => {
                let pb = m.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("valid template"),
                );
                pb.set_message(label);
                pb.enable_steady_tick(Duration::from_millis(120));
                self.bars
                    .lock()
                    .expect("bars lock")
                    .push((name.to_string(), pb));
            }
            None if !self.quiet => say!("step {label}: started"),
            None => {}
        }
    }
    fn step_progress(&self, step: &str, line: &str) {
        if let Some(pb) = self
            .bars
            .lock()
            .expect("bars lock")
            .iter()
            .find(|(n, _)| n == step)
            .map(|(_, pb)| pb)
        {
            pb.set_message(format!("{step}  {line}"));
            return;
        }
        if !self.quiet {
            let mut last = self.last_plain.lock().expect("last lock");
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                say!("step {step}: {line}");
            }
        }
    }
    fn step_finished(&self, s: &StepReport) {
        if let Ok(mut p) = self.partial.lock() {
            p.1.retain(|n| *n != s.name);
        }
        let status = match s.status {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        };
        let line = format!("step {}: {status} in {:.2}s", s.name, s.duration_ms / 1e3);
        let bar = {
            let mut bars = self.bars.lock().expect("bars lock");
            bars.iter()
                .position(|(n, _)| *n == s.name)
                .map(|i| bars.remove(i).1)
        };
        match bar {
            Some(pb) => {
                pb.set_style(ProgressStyle::with_template("  {msg}").expect("valid template"));
                pb.finish_with_message(line)
            }
            None if !self.quiet => say!("{line}"),
            None => {}
        }
    }
}

/// A scenario argument: the file when it exists, else the shipped scenario of that name (written
/// into a temporary directory that lives as long as the returned guard), said in one line.
pub(crate) fn scenario_file(
    arg: &Path,
    quiet: bool,
) -> Result<(PathBuf, Option<tempfile::TempDir>), Exit> {
    if arg.exists() {
        return Ok((arg.to_path_buf(), None));
    }
    let dir = tempfile::Builder::new()
        .prefix("scen-shipped-")
        .tempdir()
        .map_err(|e| {
            say!("error: cannot prepare a shipped scenario: {e}");
            Exit::Usage
        })?;
    match scen_engine::library::resolve(arg, dir.path()) {
        Ok(scen_engine::library::Resolved::Shipped { name, path }) => {
            if !quiet {
                say!(
                    "using the shipped scenario {name} (scen {}); `scen show {name}` prints it",
                    env!("CARGO_PKG_VERSION")
                );
            }
            Ok((path, Some(dir)))
        }
        Ok(scen_engine::library::Resolved::File(p)) => Ok((p, None)),
        Err(e) => {
            say!("error: {e}");
            Err(Exit::Usage)
        }
    }
}

/// The verdict line; `code` is the process's real exit code (a report that could not be written
/// makes it 2 whatever the run's outcome).
pub(crate) fn print_summary(r: &scen_engine::Report, quiet: bool, code: Exit) {
    if !quiet {
        for t in &r.thresholds {
            let mark = match t.status {
                ThresholdStatus::Passed => "✓",
                ThresholdStatus::Failed | ThresholdStatus::Error | ThresholdStatus::NoData => "✗",
                ThresholdStatus::Inconclusive => "?",
                ThresholdStatus::NotEvaluated => "-",
            };
            say!("  {mark} {:<50} {}", t.expression, t.message);
        }
    }
    let (passed, failed) = r.threshold_counts();
    let verdict = match r.outcome {
        Outcome::Passed => "PASSED",
        Outcome::ThresholdsFailed => "THRESHOLDS FAILED",
        Outcome::ScriptError => "SCENARIO ERROR",
        Outcome::InfrastructureError => "INFRASTRUCTURE ERROR",
        Outcome::Interrupted => "INTERRUPTED",
    };
    let exit = if code == Exit::from(r.outcome) {
        format!("exit {}", code.code())
    } else {
        format!("exit {}: a report file could not be written", code.code())
    };
    say!(
        "{verdict}: {} in {:.1}s — {passed} thresholds passed, {failed} failed ({exit})",
        r.scenario.name,
        r.duration_ms / 1e3,
    );
    if let Some(s) = &r.stopped_early {
        say!(
            "stopped early{}: {}",
            s.step
                .as_ref()
                .map(|n| format!(" at step `{n}`"))
                .unwrap_or_default(),
            s.reason
        );
    }
}

/// SIGINT and SIGTERM, both meaning "stop".
pub(crate) struct Signals(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

impl Signals {
    /// Watches both; `None` when the runtime cannot.
    pub(crate) fn new() -> Option<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Signals(
            signal(SignalKind::interrupt()).ok()?,
            signal(SignalKind::terminate()).ok()?,
        ))
    }

    /// Waits for the next of either.
    pub(crate) async fn next(&mut self) {
        tokio::select! { _ = self.0.recv() => {}, _ = self.1.recv() => {} }
    }
}

pub(crate) async fn watch_signals(
    cancel: CancellationToken,
    progress: Arc<Progress>,
    outputs: Outputs,
) {
    let Some(mut signals) = Signals::new() else {
        return;
    };
    signals.next().await;
    say!("interrupted: stopping steps, writing the partial report, stopping etcd (again to force)");
    cancel.cancel();
    signals.next().await;
    // A second signal: leave now, with the report as it stands. The embedded etcd dies with us
    // (parent-death signal); its data directory is removed by the next run.
    // The report gets half a second: an output that blocks (a FIFO nobody reads) must not keep
    // scen alive.
    let (done, written) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(r) = progress.partial_report() {
            outputs.write(&report::redact::redact_report(&r));
        }
        let _ = done.send(());
    });
    let said = match written.recv_timeout(std::time::Duration::from_millis(500)) {
        Ok(()) => "the partial report is written",
        Err(_) => "the partial report could not be written in time",
    };
    say!("interrupted again: left at once; {said}, etcd stops with scen");
    std::process::exit(i32::from(Exit::Interrupted.code()));
}

/// Renders and writes one report file when its flag was given; false when that failed.
pub(crate) fn write_report(
    path: &Option<PathBuf>,
    render: impl FnOnce() -> Result<String, report::Error>,
) -> bool {
    let Some(path) = path else { return true };
    match render().and_then(|text| report::write_output(path, text.as_bytes())) {
        Ok(()) => true,
        Err(e) => {
            say!("error: {e}");
            false
        }
    }
}

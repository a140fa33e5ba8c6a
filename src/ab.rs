//! `scen ab`: the command line of an A/B of two etcd builds or configurations — its flags, a
//! line per run, the verdict table, the JSON and HTML reports, the exit code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use scen_engine::ab::{self, Gate, Order, Side, Which};
use scen_engine::script::Limits;
use scen_engine::{Exit, Observer, Report, RunConfig};
use tokio_util::sync::CancellationToken;

use crate::ParamArgs;

/// Flags of `scen ab`.
#[derive(Args)]
pub struct AbArgs {
    /// The scenario both sides run.
    file: PathBuf,
    #[command(flatten)]
    params: ParamArgs,
    /// Side A (the baseline): etcd-bin=PATH, members=N, member.<setting>=V (an embedded_etcd()
    /// setting such as member.snapshot_count=10000), or a scenario parameter. Repeatable.
    #[arg(long = "a", value_name = "KEY=VALUE")]
    a: Vec<String>,
    /// Side B (the candidate), as --a. Repeatable.
    #[arg(long = "b", value_name = "KEY=VALUE")]
    b: Vec<String>,
    /// Rounds; each runs A and B once, each on a fresh embedded etcd. `auto`: after 3 pilot
    /// rounds, as many as the measured noise needs to detect --detect (at most --max-rounds).
    #[arg(long, default_value = "6", value_name = "N|auto")]
    rounds: String,
    /// With --rounds auto, the most rounds to run.
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_rounds: usize,
    /// The change the A/B should be able to see: a figure whose rounds could not is
    /// "inconclusive", and after the pilot rounds scen says how many rounds would do.
    #[arg(long, default_value = "10%", value_name = "PERCENT")]
    detect: String,
    /// Order within rounds: abba (A B, B A, ...) or random (drawn from --seed, recorded).
    #[arg(long, default_value = "abba", value_name = "ORDER")]
    order: String,
    /// Seed of a random order.
    #[arg(long)]
    seed: Option<u64>,
    /// Exit 1 when this figure of B is significantly worse than A's by more than the allowed
    /// change: load.latency.p99:+5%, capacity.sustained_rate:-5% (repeatable). The scenario's
    /// thresholds' figures gate too, with no change allowed.
    #[arg(long = "gate", value_name = "FIGURE[:±N%]")]
    gates: Vec<String>,
    /// Compare this figure too (a path; * matches any text: 'load.by_op.*.latency.p99').
    #[arg(long = "figure", value_name = "PATH")]
    figures: Vec<String>,
    /// A significant change smaller than this is reported as no change.
    #[arg(long, default_value = "1%", value_name = "PERCENT")]
    min_change: String,
    /// Write the A/B report (every round's report inside) as JSON here ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write a self-contained HTML page: A and B per figure, side by side.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The etcd binary of both sides unless a side sets etcd-bin.
    #[arg(long, env = "SCEN_ETCD_BIN", value_name = "PATH")]
    etcd_bin: Option<PathBuf>,
}

/// A line per run on stderr; the runs' own steps stay quiet.
struct Lines {
    quiet: bool,
    detect: f64,
    runs: usize,
    started: std::sync::Mutex<Option<Instant>>,
}

impl ab::Progress for Lines {
    fn run_started(&self, round: usize, side: Which, i: usize) {
        *self.started.lock().expect("lock") = Some(Instant::now());
        if !self.quiet {
            say!(
                "run {}/{}: round {} {} ...",
                i + 1,
                self.runs,
                round + 1,
                side.name()
            );
        }
    }
    fn run_finished(&self, round: usize, side: Which, r: &Report) {
        if self.quiet {
            return;
        }
        let took = self
            .started
            .lock()
            .expect("lock")
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        let outcome = serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        say!(
            "  round {} {}: {outcome} in {took:.1}s (etcd {})",
            round + 1,
            side.name(),
            r.target.as_ref().map_or("?", |t| t.etcd_version.as_str())
        );
        if let Some(e) = &r.error {
            say!("  error: {}", e.message);
        }
        for s in r.steps.iter().filter(|s| s.error.is_some()) {
            say!(
                "  step `{}` failed: {}",
                s.name,
                s.error.as_ref().map_or("", |e| e.message.as_str())
            );
        }
    }
    fn planned(&self, after: usize, needed: Option<usize>, will_run: usize) {
        if self.quiet {
            return;
        }
        match needed {
            Some(n) => say!(
                "after {after} rounds: detecting ±{:.0}% (--detect) needs about {n} rounds at this noise; running {will_run}",
                self.detect * 100.0
            ),
            None => say!(
                "after {after} rounds: detecting ±{:.0}% (--detect) would need more than 100 rounds at this noise; running {will_run} (figures stay inconclusive)",
                self.detect * 100.0
            ),
        }
    }
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(scen_engine::run::Quiet)
    }
}

/// Runs `scen ab`; the exit code.
pub fn ab(mut args: AbArgs, quiet: bool) -> Exit {
    let _shipped = match crate::scenario_file(&args.file, quiet) {
        Ok((file, guard)) => {
            args.file = file;
            guard
        }
        Err(code) => return code,
    };
    let min_change = match scen_engine::units::parse_quantity(&args.min_change) {
        Ok(q) if (0.0..1.0).contains(&q.value) => q.value,
        _ => {
            say!(
                "error: --min-change {}: a percentage below 100%, such as 1%",
                args.min_change
            );
            return Exit::Usage;
        }
    };
    let detect = match scen_engine::units::parse_quantity(&args.detect) {
        Ok(q) if q.value > 0.0 && q.value < 10.0 => q.value,
        _ => {
            say!(
                "error: --detect {}: a percentage above 0%, such as 10%",
                args.detect
            );
            return Exit::Usage;
        }
    };
    let (rounds, auto_rounds) = match args.rounds.as_str() {
        "auto" => (args.max_rounds, true),
        n => match n.parse::<usize>() {
            Ok(n) => (n, false),
            Err(_) => {
                say!("error: --rounds {n}: a number of rounds (2 to 100) or auto");
                return Exit::Usage;
            }
        },
    };
    let parsed = (|| -> Result<_, ab::Error> {
        let a = Side::parse("a", &args.a)?;
        let b = Side::parse("b", &args.b)?;
        let order = Order::parse(&args.order, args.seed)?;
        let gates = args
            .gates
            .iter()
            .map(|g| Gate::parse(g))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((a, b, order, gates))
    })();
    let (a, b, order, gates) = match parsed {
        Ok(x) => x,
        Err(e) => {
            say!("error: {e}");
            return Exit::Usage;
        }
    };
    let mut base = RunConfig {
        scenario: args.file.clone(),
        overrides: crate::run::overrides(&args.params),
        limits: Limits::default(),
        ..Default::default()
    };
    base.embedded_overrides.etcd_bin = args.etcd_bin.clone();
    let cfg = ab::Config {
        base,
        a,
        b,
        rounds,
        order,
        gates,
        figures: args.figures.clone(),
        min_change,
        detect,
        auto_rounds,
        alpha: 0.05,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let lines = Lines {
        quiet,
        detect: cfg.detect,
        runs: cfg.rounds * 2,
        started: Default::default(),
    };
    let report = rt.block_on(async {
        let from_thresholds = match ab::check(&cfg).await {
            Ok(g) => g,
            Err(e) => {
                say!("error: {e}");
                return None;
            }
        };
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            let Some(mut signals) = crate::Signals::new() else {
                return;
            };
            signals.next().await;
            say!("interrupted: stopping the current run and its etcd; the rounds so far are reported");
            c.cancel();
        });
        Some(ab::run(&cfg, from_thresholds, cancel, &lines).await)
    });
    let Some(report) = report else {
        return Exit::Usage;
    };
    let to_stdout = args.report.as_deref() == Some(std::path::Path::new("-"));
    if to_stdout {
        say!("{}", report.text());
    } else {
        out!("{}", report.text());
    }
    let mut code = Exit::from(report.outcome);
    let json = serde_json::to_string_pretty(&report).expect("the report serialises") + "\n";
    if !crate::write_report(&args.report, || Ok(json)) {
        code = code.worst(Exit::Usage);
    }
    if !crate::write_report(&args.html, || Ok(report.html())) {
        code = code.worst(Exit::Usage);
    }
    let verdict = match report.outcome {
        scen_engine::Outcome::Passed => "NO GATE REGRESSED",
        scen_engine::Outcome::ThresholdsFailed => "GATE REGRESSED",
        scen_engine::Outcome::ScriptError => "SCENARIO ERROR",
        scen_engine::Outcome::InfrastructureError => "INFRASTRUCTURE ERROR",
        scen_engine::Outcome::Interrupted => "INTERRUPTED",
    };
    say!(
        "{verdict}: {} figures, {} regressed, {} improved (exit {})",
        report.figures.len(),
        report
            .figures
            .iter()
            .filter(|f| f.verdict == ab::Verdict::Regressed)
            .count(),
        report
            .figures
            .iter()
            .filter(|f| f.verdict == ab::Verdict::Improved)
            .count(),
        code.code()
    );
    code
}

//! `scen`: the command line over `scen-engine` — arguments, progress, rendering and exit codes.

/// `eprintln!` that never panics: a closed stderr (`scen run … 2>&1 | head -1`) must not stop a
/// run before it writes its report and stops its etcd.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        // Credentials never reach the terminal or a CI log.
        let _ = writeln!(
            std::io::stderr(),
            "{}",
            scen_engine::report::redact::redact(&format!($($t)*))
        );
    }};
}
/// `println!` that never panics on a closed stdout (`scen compare … | head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
/// `eprint!` that never panics.
#[allow(unused_macros)]
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}
/// `print!` that never panics.
#[allow(unused_macros)]
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `scen --version`: the version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SCEN_GIT_COMMIT"),
    ")"
);

mod ab;
mod init;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use scen_engine::params::Overrides;
use scen_engine::report::{self, StepReport, StepStatus, TargetReport, ThresholdStatus};
use scen_engine::script::Limits;
use scen_engine::target::ConnectSettings;
use scen_engine::Exit;
use scen_engine::{Observer, Outcome, RunConfig};
use tokio_util::sync::CancellationToken;

const EXAMPLES: &str = "\
Examples:
  scen run scenarios/etcd-stress.rhai            # on a throwaway etcd
  scen run s.rhai --set nodes=5000 --junit out/junit.xml --report out/report.json
  scen run s.rhai --values prod.yaml --endpoints https://10.0.0.5:2379 \\
      --cacert ca.crt --cert client.crt --key client.key
  scen check s.rhai                              # validate the plan, touch no etcd
  scen list scenarios/                           # scenarios and their parameters
  scen api                                       # the functions scripts can call
";

const AB_HELP: &str = "\
Examples:
  scen ab scenarios/check-perf.rhai --a etcd-bin=/opt/etcd-3.5.16/etcd --b etcd-bin=./bin/etcd \\
      --rounds 6 --set load=m --html ab.html --report ab.json
  scen ab scenarios/etcd-stress.rhai --a member.snapshot_count=10000 --b member.snapshot_count=100000
  scen ab scenarios/capacity.rhai --a etcd-bin=./etcd-go1.22 --b etcd-bin=./etcd-go1.23 \\
      --rounds 3 --gate capacity.sustained_rate:-5%

Exit codes:
  0    no gating figure regressed significantly
  1    a gating figure (--gate, or one a threshold reads) regressed significantly
  2    usage or scenario error (found before the first run, or a run's script failed)
  3    infrastructure error (an etcd could not start or failed)
  130  interrupted; the rounds so far are reported";

const EXIT_CODES: &str = "\
Exit codes:
  0    every step ran and every threshold passed
  1    a threshold failed
  2    usage or scenario error (nothing ran, or the script raised an error)
  3    infrastructure error (etcd could not start, was unreachable, died, or failed a request)
  130  interrupted (Ctrl-C or SIGTERM); the partial report is still written";

/// Will etcd and the Kubernetes control plane hold up? Declarative scenarios, real etcd, CI-ready
/// reports.
#[derive(Parser)]
#[command(name = "scen", version = VERSION, about, after_help = format!("{EXAMPLES}\n{EXIT_CODES}"), propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors and the final verdict.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario against an embedded etcd (default) or --endpoints, and write reports.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// A/B two etcd builds or configurations: interleaved rounds of a scenario, each on a fresh
    /// embedded etcd, and the change of each figure with a confidence interval.
    #[command(after_help = AB_HELP)]
    Ab(Box<ab::AbArgs>),
    /// Build and validate a scenario's plan and print it, touching no etcd.
    Check {
        /// The scenario file.
        file: PathBuf,
        #[command(flatten)]
        params: ParamArgs,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the scenarios in a directory with their descriptions and parameters.
    List {
        /// Directory to scan (default: the scenarios shipped inside scen).
        dir: Option<PathBuf>,
    },
    /// Start a scenario of your own from a shipped one: the scenario, a values file with every
    /// parameter and its doc, and CI jobs (GitHub Actions, GitLab) that run it and keep its
    /// reports. Never overwrites a file.
    Init {
        /// Where to write (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The shipped scenario to start from.
        #[arg(long, default_value = "etcd-stress")]
        from: String,
    },
    /// Check and explain what scen needs, one line each (ok, warn, fail): the etcd binary, each
    /// endpoint, TLS, credentials, /metrics, leader and members, the database against its quota,
    /// the control plane's binaries, a kubeconfig. Exit 3 when anything fails.
    Doctor(Box<DoctorArgs>),
    /// Print a shipped scenario's source (`scen show etcd-stress > mine.rhai`).
    Show {
        /// Its name (`scen list` lists them).
        name: String,
    },
    /// Print the reference of every function scenario scripts can call (Markdown).
    Api,
    /// Print the JSON Schema of the JSON report.
    Schema,
    /// Render a JSON report again, in other formats.
    Report {
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Compare two JSON reports figure by figure, or several runs per side (`A1 A2 A3 -- B1 B2
    /// B3`, the runs as samples); exit 1 when a figure regressed beyond tolerance.
    Compare {
        /// The earlier report and the later one; or, with `--`, the earlier runs (the baseline).
        #[arg(required = true, num_args = 1..)]
        old: Vec<PathBuf>,
        /// After `--`: the later runs.
        #[arg(last = true)]
        new: Vec<PathBuf>,
        /// How much worse a figure may get before it counts as a regression.
        #[arg(long, default_value = "10%")]
        tolerance: String,
        /// A sample statistic (a quantile, a mean, a rate, a share) resting on fewer samples
        /// than this is never a regression: "too few samples".
        #[arg(long, default_value_t = 100, value_name = "N")]
        min_samples: u64,
        /// Show every figure both reports have, not only those that changed.
        #[arg(long)]
        all: bool,
        /// Print the comparison as JSON (every figure, its verdict and why) instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the comparison as an HTML page, the two runs' series overlaid.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// A figure only one report has, or that has no data in one of them, does not fail the
        /// comparison (by default it does: no data is never a pass).
        #[arg(long)]
        allow_missing: bool,
    },
    /// Print a shell completion script: `source <(scen completions bash)`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `scen man > scen.1; man ./scen.1`.
    Man,
}

#[derive(Subcommand)]
enum ReportCmd {
    /// Render `report.json` as HTML, Markdown or JUnit.
    Render {
        /// A JSON report written by `scen run --report`.
        report: PathBuf,
        /// Write the self-contained HTML report here.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write the Markdown summary here.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct ParamArgs {
    /// Override a parameter: --set nodes=5000 (typed by the parameter's default; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A YAML file of parameter values (--set wins over it).
    #[arg(long = "values", value_name = "FILE")]
    values: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// The scenario file.
    file: PathBuf,
    #[command(flatten)]
    params: ParamArgs,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write a self-contained HTML report with charts here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// On an external cluster, keep the run's keys instead of deleting its prefix at the end.
    #[arg(long)]
    keep_keys: bool,
    /// Allow compaction, defragmentation and disarming alarms on an etcd scen did not start.
    #[arg(long)]
    allow_maintenance: bool,
    /// Let cluster::simulate write the real /registry of an etcd scen did not start (default: under the run prefix).
    #[arg(long)]
    allow_registry_writes: bool,
    /// A previous JSON report: thresholds can compare with its figures (`p99 < baseline * 1.1`).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Each member's metrics URL (comma-separated, plain http, e.g. http://127.0.0.1:2381) when
    /// /metrics is not served on the client URLs.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    metrics_urls: Vec<String>,
    /// Directory for files the run produces, such as snapshots [default: scen-artifacts/<run-id>].
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// The etcd binary for the embedded cluster.
    #[arg(long, env = "SCEN_ETCD_BIN", value_name = "PATH")]
    etcd_bin: Option<PathBuf>,
    /// The embedded etcd's space quota (`--quota-backend-bytes`), e.g. 8GiB for big simulations
    /// [default: etcd's, 2GiB].
    #[arg(long, value_name = "SIZE")]
    etcd_quota: Option<String>,
    /// Members of the embedded etcd cluster: 1, 3 or 5 [default: the scenario's embedded_etcd(), else 1].
    #[arg(long, value_name = "N", value_parser = ["1", "3", "5"])]
    members: Option<String>,
    /// Script operation limit per step (sandbox).
    #[arg(long, default_value_t = Limits::default().max_operations)]
    max_operations: u64,
    /// Push measurements while the run goes on: prometheus-rw=URL (Prometheus remote write,
    /// e.g. prometheus-rw=http://127.0.0.1:9090/api/v1/write). Repeatable.
    #[arg(long = "out", value_name = "OUTPUT=URL")]
    outs: Vec<String>,
    /// A label every pushed or served series carries, name=value (e.g. team=storage). Repeatable.
    #[arg(long = "out-label", value_name = "NAME=VALUE")]
    out_labels: Vec<String>,
    /// Time between two pushes of --out [default: 5s].
    #[arg(long, value_name = "DURATION")]
    out_interval: Option<String>,
    /// Serve the live measurements as OpenMetrics at http://ADDR/metrics for Prometheus to
    /// scrape during the run (e.g. 127.0.0.1:9464; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

fn main() -> std::process::ExitCode {
    remember_secrets();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let code = match cli.command {
        Command::Run(args) => run(*args, cli.quiet),
        Command::Ab(args) => ab::ab(*args, cli.quiet),
        Command::Check { file, params, json } => match scenario_file(&file, true) {
            Ok((file, _guard)) => check(&file, &params, json),
            Err(code) => code,
        },
        Command::List { dir } => match dir {
            Some(dir) => list(&dir, false),
            None => list_shipped(),
        },
        Command::Show { name } => show(&name),
        Command::Doctor(args) => doctor(*args),
        Command::Init { dir, from } => init::init(&dir, &from),
        Command::Compare {
            old,
            new,
            tolerance,
            min_samples,
            all,
            json,
            html,
            allow_missing,
        } => compare(
            &old,
            &new,
            &tolerance,
            min_samples,
            CompareOutput {
                all,
                json,
                quiet: cli.quiet,
                allow_missing,
            },
            html.as_deref(),
        ),
        Command::Schema => {
            out_raw!("{}", report::json_schema());
            Exit::Success
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "scen", &mut buf);
            out_raw!("{}", String::from_utf8_lossy(&buf));
            Exit::Success
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            match clap_mangen::Man::new(cmd).render(&mut buf) {
                Ok(()) => {
                    out_raw!("{}", String::from_utf8_lossy(&buf));
                    Exit::Success
                }
                Err(e) => {
                    say!("error: {e}");
                    Exit::Usage
                }
            }
        }
        Command::Report {
            cmd:
                ReportCmd::Render {
                    report: path,
                    html,
                    markdown,
                    junit,
                },
        } => match report::from_json(&path) {
            Ok(r) => {
                if html.is_none() && markdown.is_none() && junit.is_none() {
                    say!("error: say what to render: --html FILE, --markdown FILE or --junit FILE");
                    return Exit::Usage.into();
                }
                let written = [
                    write_report(&html, || report::to_html(&r)),
                    write_report(&markdown, || report::to_markdown(&r)),
                    write_report(&junit, || report::to_junit(&r)),
                ];
                Exit::ok_or_usage(written.iter().all(|ok| *ok))
            }
            Err(e) => {
                say!("error: {e}");
                Exit::Usage
            }
        },
        Command::Api => {
            out_raw!("{}", scen_engine::script::api::reference());
            Exit::Success
        }
    };
    code.into()
}

fn init_logging(verbose: u8, quiet: bool) {
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
fn remember_secrets() {
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

pub(crate) fn overrides(p: &ParamArgs) -> Overrides {
    Overrides {
        values_file: p.values.clone(),
        set: p.set.clone(),
    }
}

fn check(file: &Path, params: &ParamArgs, json: bool) -> Exit {
    match scen_engine::check(file, &overrides(params), &Limits::default()) {
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

/// What `scen compare` prints.
struct CompareOutput {
    /// Every figure, not only those that changed.
    all: bool,
    /// JSON instead of a table.
    json: bool,
    /// Only regressions and the summary.
    quiet: bool,
    /// Figures missing or without data on one side do not fail.
    allow_missing: bool,
}

fn compare(
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
            "; one run per side: the requests as the samples, which understates the noise between runs (give several runs per side around `--`)".into()
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

/// How to reach an etcd, as etcdctl takes it: shared by `scen run` and `scen doctor`.
#[derive(clap::Args)]
struct ConnectArgs {
    /// etcd client URLs, comma-separated (as etcdctl). Without it scen starts a throwaway etcd.
    #[arg(long, value_delimiter = ',', env = "SCEN_ENDPOINTS")]
    endpoints: Vec<String>,
    /// CA bundle to verify etcd's certificate.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Client certificate.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// etcd user as name:password.
    #[arg(long, env = "SCEN_USER", hide_env_values = true)]
    user: Option<String>,
}

impl ConnectArgs {
    /// The connection, when endpoints were given (else the run starts its own etcd).
    fn settings(&self) -> Option<ConnectSettings> {
        (!self.endpoints.is_empty()).then(|| ConnectSettings {
            endpoints: self.endpoints.clone(),
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            user: self.user.clone(),
            ..Default::default()
        })
    }
}

/// `scen doctor`'s flags: the connection flags of `scen run`, and a kubeconfig.
#[derive(clap::Args)]
struct DoctorArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Each member's metrics URL, when /metrics is not served on the client URLs.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    metrics_urls: Vec<String>,
    /// The etcd binary for embedded runs.
    #[arg(long, env = "SCEN_ETCD_BIN", value_name = "PATH")]
    etcd_bin: Option<PathBuf>,
    /// A kubeconfig to check (for `backend: "kube"`).
    #[arg(long)]
    kubeconfig: Option<String>,
    /// Its context.
    #[arg(long)]
    context: Option<String>,
}

fn doctor(args: DoctorArgs) -> Exit {
    use scen_engine::doctor::{diagnose, DoctorOptions, Status};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let connect = args.connect.settings();
    let lines = rt.block_on(diagnose(&DoctorOptions {
        connect,
        metrics_urls: args.metrics_urls,
        etcd_bin: args.etcd_bin,
        kubeconfig: args.kubeconfig,
        context: args.context,
    }));
    for l in &lines {
        let mark = match l.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out!("{mark} {}: {}", l.what, l.detail);
    }
    let failed = lines.iter().filter(|l| l.status == Status::Fail).count();
    if failed > 0 {
        say!("{failed} check(s) failed");
        Exit::Infrastructure
    } else {
        Exit::Success
    }
}

/// `scen list` with no directory: the shipped library.
fn list_shipped() -> Exit {
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
fn show(name: &str) -> Exit {
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

fn list(dir: &Path, by_name: bool) -> Exit {
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

/// Progress output: spinners on a terminal, plain lines otherwise, nothing with --quiet.
struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<(String, ProgressBar)>>,
    quiet: bool,
    /// Plain mode: when a progress line was last printed, to print one every 10 s at most.
    last_plain: Mutex<Option<Instant>>,
    /// The report as it last stood, and the steps running since: written if a second signal
    /// ends the run at once.
    partial: Mutex<(Option<scen_engine::Report>, Vec<String>)>,
}

impl Progress {
    fn new(quiet: bool) -> Self {
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
    fn partial_report(&self) -> Option<scen_engine::Report> {
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
struct Outputs {
    report: Option<PathBuf>,
    junit: Option<PathBuf>,
    markdown: Option<PathBuf>,
    html: Option<PathBuf>,
}

impl Outputs {
    /// Refuses outputs that would replace the scenario or its values file, or each other.
    fn check(&self, scenario: &Path, values: Option<&Path>) -> Result<(), String> {
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
    fn write(&self, r: &scen_engine::Report) -> bool {
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

fn run(mut args: RunArgs, quiet: bool) -> Exit {
    let _shipped = match scenario_file(&args.file, quiet) {
        Ok((file, guard)) => {
            args.file = file;
            guard
        }
        Err(code) => return code,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let connect = args.connect.settings();
    if connect.is_some() && (args.members.is_some() || args.etcd_quota.is_some()) {
        say!("error: --members and --etcd-quota set up the embedded etcd; they cannot go with --endpoints");
        return Exit::Usage;
    }
    if let Some(plain) = args
        .connect
        .endpoints
        .iter()
        .find(|e| e.starts_with("http://"))
        .filter(|_| {
            let c = &args.connect;
            c.cacert.is_some() || c.cert.is_some() || c.key.is_some()
        })
    {
        say!("error: --cacert/--cert/--key set up TLS, but {plain} is plain http: give https:// endpoints (or drop the TLS flags)");
        return Exit::Usage;
    }
    let c = &args.connect;
    if connect.is_none() && (c.cacert.is_some() || c.cert.is_some() || c.user.is_some()) {
        say!("error: --cacert/--cert/--key/--user need --endpoints (the embedded etcd uses plain loopback)");
        return Exit::Usage;
    }
    let mut cfg = RunConfig {
        scenario: args.file.clone(),
        overrides: overrides(&args.params),
        connect,
        keep_keys: args.keep_keys,
        allow_maintenance: args.allow_maintenance,
        allow_registry_writes: args.allow_registry_writes,
        artifacts: args.artifacts.clone(),
        metrics_urls: args.metrics_urls.clone(),
        baseline: args.baseline.clone(),
        limits: Limits {
            max_operations: args.max_operations,
            ..Limits::default()
        },
        ..Default::default()
    };
    // Command-line settings win over the scenario's embedded_etcd().
    cfg.embedded_overrides.etcd_bin = args.etcd_bin.clone();
    cfg.embedded_overrides.members = args.members.as_deref().and_then(|m| m.parse().ok());
    if let Some(q) = &args.etcd_quota {
        match scen_engine::units::parse_size(q) {
            Ok(bytes) => match scen_engine::embedded::check_quota(bytes) {
                Ok(b) => cfg.embedded_overrides.settings.quota_backend_bytes = Some(b),
                Err(why) => {
                    say!("error: --etcd-quota {q}: {why}");
                    return Exit::Usage;
                }
            },
            Err(e) => {
                say!("error: --etcd-quota {q}: {e} (write a size such as 8GiB)");
                return Exit::Usage;
            }
        }
    }
    let live = match scen_engine::live::outputs::Spec::parse(
        &args.outs,
        &args.out_labels,
        args.out_interval.as_deref(),
        args.metrics_listen.as_deref(),
    ) {
        Ok(l) => l,
        Err(e) => {
            say!("error: {e}");
            return Exit::Usage;
        }
    };
    let progress = Arc::new(Progress::new(quiet));
    let outputs = Outputs {
        report: args.report.clone(),
        junit: args.junit.clone(),
        markdown: args.markdown.clone(),
        html: args.html.clone(),
    };
    if let Err(e) = outputs.check(&args.file, args.params.values.as_deref()) {
        say!("error: {e}");
        return Exit::Usage;
    }
    // block_on runs this future on the main thread, which outlives the embedded etcd.
    let report = rt.block_on(async {
        let running = if live.any() {
            match live.start().await {
                Ok((hub, running)) => {
                    if let Some(addr) = running.listening() {
                        say!("serving live metrics at http://{addr}/metrics");
                    }
                    cfg.live = Some(hub);
                    Some(running)
                }
                Err(e) => {
                    say!("error: {e}");
                    return None;
                }
            }
        } else {
            None
        };
        let cancel = CancellationToken::new();
        tokio::spawn(watch_signals(
            cancel.clone(),
            progress.clone(),
            outputs.clone(),
        ));
        let mut report = scen_engine::run(&cfg, cancel, progress.clone()).await;
        if let Some(r) = running {
            report.outputs = r.finish().await;
        }
        Some(report)
    });
    let Some(report) = report else {
        return Exit::Usage;
    };
    drop(progress);
    let mut code = Exit::from(report.outcome);
    let render = |e: &report::ErrorInfo| {
        e.detail
            .clone()
            .unwrap_or_else(|| format!("error: {}", e.message))
    };
    if let Some(e) = &report.error {
        say!("{}", render(e));
    }
    for s in report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
    {
        if let Some(e) = &s.error {
            say!("step `{}` failed:\n{}", s.name, render(e));
        }
    }
    for o in report.outputs.iter().filter(|o| o.dropped_samples > 0) {
        say!(
            "warning: --out {} dropped {} samples: {}",
            o.target,
            o.dropped_samples,
            o.last_error
                .as_deref()
                .unwrap_or("the receiver was too slow")
        );
    }
    // Written from a copy with every credential masked.
    let report = report::redact::redact_report(&report);
    if !outputs.write(&report) {
        code = code.worst(Exit::Usage);
    }
    print_summary(&report, quiet, code);
    code
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

/// The verdict line; `code` is the process's real exit code (a report that could not be written
/// makes it 2 whatever the run's outcome).
fn print_summary(r: &scen_engine::Report, quiet: bool, code: Exit) {
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

async fn watch_signals(cancel: CancellationToken, progress: Arc<Progress>, outputs: Outputs) {
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

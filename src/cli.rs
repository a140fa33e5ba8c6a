//! The command line: every subcommand and flag (clap), its help text and examples.

use super::ab;
use clap::{Args, Parser, Subcommand};
use scen_engine::script::Limits;
use scen_engine::target::ConnectSettings;
use std::path::PathBuf;

/// `scen --version`: the version and the git commit it was built from.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SCEN_GIT_COMMIT"),
    ")"
);

pub(crate) const EXAMPLES: &str = "\
Examples:
  scen run scenarios/etcd-stress.rhai            # on a throwaway etcd
  scen run s.rhai --set nodes=5000 --junit out/junit.xml --report out/report.json
  scen run s.rhai --values prod.yaml --endpoints https://10.0.0.5:2379 \\
      --cacert ca.crt --cert client.crt --key client.key
  scen check s.rhai                              # validate the plan, touch no etcd
  scen list scenarios/                           # scenarios and their parameters
  scen api                                       # the functions scripts can call
";

pub(crate) const AB_HELP: &str = "\
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

pub(crate) const EXIT_CODES: &str = "\
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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors and the final verdict.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum ReportCmd {
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
    pub(crate) set: Vec<String>,
    /// A YAML file of parameter values (--set wins over it).
    #[arg(long = "values", value_name = "FILE")]
    pub(crate) values: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The scenario file.
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) params: ParamArgs,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
    /// Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub(crate) markdown: Option<PathBuf>,
    /// Write a self-contained HTML report with charts here.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
    /// On an external cluster, keep the run's keys instead of deleting its prefix at the end.
    #[arg(long)]
    pub(crate) keep_keys: bool,
    /// Allow compaction, defragmentation and disarming alarms on an etcd scen did not start.
    #[arg(long)]
    pub(crate) allow_maintenance: bool,
    /// Let cluster::simulate write the real /registry of an etcd scen did not start (default: under the run prefix).
    #[arg(long)]
    pub(crate) allow_registry_writes: bool,
    /// A previous JSON report: thresholds can compare with its figures (`p99 < baseline * 1.1`).
    #[arg(long, value_name = "FILE")]
    pub(crate) baseline: Option<PathBuf>,
    /// Each member's metrics URL (comma-separated, plain http, e.g. http://127.0.0.1:2381) when
    /// /metrics is not served on the client URLs.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub(crate) metrics_urls: Vec<String>,
    /// Directory for files the run produces, such as snapshots [default: scen-artifacts/<run-id>].
    #[arg(long, value_name = "DIR")]
    pub(crate) artifacts: Option<PathBuf>,
    /// The etcd binary for the embedded cluster.
    #[arg(long, env = "SCEN_ETCD_BIN", value_name = "PATH")]
    pub(crate) etcd_bin: Option<PathBuf>,
    /// The embedded etcd's space quota (`--quota-backend-bytes`), e.g. 8GiB for big simulations
    /// [default: etcd's, 2GiB].
    #[arg(long, value_name = "SIZE")]
    pub(crate) etcd_quota: Option<String>,
    /// Members of the embedded etcd cluster: 1, 3 or 5 [default: the scenario's embedded_etcd(), else 1].
    #[arg(long, value_name = "N", value_parser = ["1", "3", "5"])]
    pub(crate) members: Option<String>,
    /// Script operation limit per step (sandbox).
    #[arg(long, default_value_t = Limits::default().max_operations)]
    pub(crate) max_operations: u64,
    /// Push measurements while the run goes on: prometheus-rw=URL (Prometheus remote write,
    /// e.g. prometheus-rw=http://127.0.0.1:9090/api/v1/write). Repeatable.
    #[arg(long = "out", value_name = "OUTPUT=URL")]
    pub(crate) outs: Vec<String>,
    /// A label every pushed or served series carries, name=value (e.g. team=storage). Repeatable.
    #[arg(long = "out-label", value_name = "NAME=VALUE")]
    pub(crate) out_labels: Vec<String>,
    /// Time between two pushes of --out [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub(crate) out_interval: Option<String>,
    /// Serve the live measurements as OpenMetrics at http://ADDR/metrics for Prometheus to
    /// scrape during the run (e.g. 127.0.0.1:9464; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<String>,
}

/// How to reach an etcd, as etcdctl takes it: shared by `scen run` and `scen doctor`.
#[derive(clap::Args)]
pub(crate) struct ConnectArgs {
    /// etcd client URLs, comma-separated (as etcdctl). Without it scen starts a throwaway etcd.
    #[arg(long, value_delimiter = ',', env = "SCEN_ENDPOINTS")]
    pub(crate) endpoints: Vec<String>,
    /// CA bundle to verify etcd's certificate.
    #[arg(long)]
    pub(crate) cacert: Option<PathBuf>,
    /// Client certificate.
    #[arg(long)]
    pub(crate) cert: Option<PathBuf>,
    /// Client key.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// etcd user as name:password.
    #[arg(long, env = "SCEN_USER", hide_env_values = true)]
    pub(crate) user: Option<String>,
}

impl ConnectArgs {
    /// The connection, when endpoints were given (else the run starts its own etcd).
    pub(crate) fn settings(&self) -> Option<ConnectSettings> {
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
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Each member's metrics URL, when /metrics is not served on the client URLs.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub(crate) metrics_urls: Vec<String>,
    /// The etcd binary for embedded runs.
    #[arg(long, env = "SCEN_ETCD_BIN", value_name = "PATH")]
    pub(crate) etcd_bin: Option<PathBuf>,
    /// A kubeconfig to check (for `backend: "kube"`).
    #[arg(long)]
    pub(crate) kubeconfig: Option<String>,
    /// Its context.
    #[arg(long)]
    pub(crate) context: Option<String>,
}

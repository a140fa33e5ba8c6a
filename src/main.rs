//! `scen`: the command line over `scen-engine`. This file dispatches each subcommand and maps its
//! outcome to an exit code; `cli.rs` holds the flags, `progress.rs` what a run shows and writes,
//! `compare.rs` `scen compare`, `ab.rs` `scen ab`, `init.rs` `scen init`.

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

mod ab;
mod cli;
mod compare;
mod init;
mod progress;

use cli::*;
use compare::*;
use progress::*;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use scen_engine::params::Overrides;
use scen_engine::report::{self, StepStatus};
use scen_engine::script::Limits;
use scen_engine::Exit;
use scen_engine::RunConfig;
use tokio_util::sync::CancellationToken;

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

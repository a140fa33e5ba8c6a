//! `scen`: the command line over `scen-engine`. This file dispatches each subcommand and maps its
//! outcome to an exit code; `cli.rs` holds the flags, `run.rs` `scen run`, `scenarios.rs`
//! `scen check`/`list`/`show`, `doctor.rs` `scen doctor`, `progress.rs` what a run shows and
//! writes, `compare.rs` `scen compare`, `ab.rs` `scen ab`, `init.rs` `scen init`, `logging.rs`
//! the log with credentials masked.

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
mod doctor;
mod init;
mod logging;
mod progress;
mod run;
mod scenarios;

use cli::*;
use compare::*;
use progress::*;

use clap::Parser;
use scen_engine::report;
use scen_engine::Exit;

fn main() -> std::process::ExitCode {
    logging::remember_secrets();
    let cli = Cli::parse();
    logging::init_logging(cli.verbose, cli.quiet);
    let code = match cli.command {
        Command::Run(args) => run::run(*args, cli.quiet),
        Command::Ab(args) => ab::ab(*args, cli.quiet),
        Command::Check { file, params, json } => match scenario_file(&file, true) {
            Ok((file, _guard)) => scenarios::check(&file, &params, json),
            Err(code) => code,
        },
        Command::List { dir } => match dir {
            Some(dir) => scenarios::list(&dir, false),
            None => scenarios::list_shipped(),
        },
        Command::Show { name } => scenarios::show(&name),
        Command::Doctor(args) => doctor::doctor(*args),
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

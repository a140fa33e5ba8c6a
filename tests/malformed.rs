//! The corpus of malformed scenarios (tests/malformed/*.rhai): `scen check` and `scen run` of each
//! exit 2 with the file and line and the expected message; none panics, aborts or hangs.
//!
//! Each file starts with `// expect: <text the error must contain>`, optionally followed by
//! `// args: <extra run arguments>` and `// check: passes` (a mistake only a run can find).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

struct Case {
    file: std::path::PathBuf,
    name: String,
    expect: String,
    args: Vec<String>,
    check_passes: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/malformed")).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        let header = |key: &str| {
            text.lines()
                .take_while(|l| l.starts_with("//"))
                .find_map(|l| l.strip_prefix(&format!("// {key}: ")).map(str::to_string))
        };
        out.push(Case {
            name: file.file_name().unwrap().to_string_lossy().into_owned(),
            expect: header("expect")
                .unwrap_or_else(|| panic!("{} has no `// expect:`", file.display())),
            args: header("args").map_or_else(Vec::new, |a| {
                a.split_whitespace().map(String::from).collect()
            }),
            check_passes: header("check").is_some(),
            file,
        });
    }
    assert!(out.len() >= 20, "the corpus has {} cases", out.len());
    out
}

/// Runs scen with `args`, killing it after `limit`: (exit code, stderr).
fn bounded(args: &[&std::ffi::OsStr], limit: Duration) -> (i32, String) {
    let mut child = scen()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("scen {args:?} hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, reader.join().unwrap())
}

#[test]
fn malformed_scenarios_fail_cleanly_at_check_and_at_run() {
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        let located = |err: &str| {
            let stem = c.name.trim_end_matches(".rhai");
            err.lines().any(|l| l.contains(&format!("{stem}.rhai:")))
        };
        let (code, err) = bounded(
            &["check".as_ref(), c.file.as_os_str()],
            Duration::from_secs(20),
        );
        assert!(
            !err.contains("panicked"),
            "{}: check panicked:\n{err}",
            c.name
        );
        if c.check_passes {
            assert_eq!(code, 0, "{}: check:\n{err}", c.name);
        } else {
            assert_eq!(code, 2, "{}: check:\n{err}", c.name);
            assert!(
                err.contains(&c.expect),
                "{}: check should say `{}`:\n{err}",
                c.name,
                c.expect
            );
            assert!(
                located(&err),
                "{}: check should name the file and line:\n{err}",
                c.name
            );
        }
        let report = dir.path().join(format!("{}.json", c.name));
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            c.file.as_os_str(),
            "--report".as_ref(),
            report.as_os_str(),
        ];
        args.extend(c.args.iter().map(|a| std::ffi::OsStr::new(a.as_str())));
        let (code, err) = bounded(&args, Duration::from_secs(60));
        assert!(
            !err.contains("panicked"),
            "{}: run panicked:\n{err}",
            c.name
        );
        assert_eq!(code, 2, "{}: run:\n{err}", c.name);
        assert!(
            err.contains(&c.expect),
            "{}: run should say `{}`:\n{err}",
            c.name,
            c.expect
        );
        assert!(
            located(&err),
            "{}: run should name the file and line:\n{err}",
            c.name
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["exit_code"], 2, "{}", c.name);
    }
}

//! End-to-end: report outputs never replace what is not a regular file.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use common::*;

/// `scen report render REPORT --markdown PATH`: exit code and stderr.
fn render_to(path: &std::path::Path) -> (i32, String) {
    let out = scen()
        .args(["report", "render"])
        .arg(fixture("report-v1.json"))
        .arg("--markdown")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn outputs_follow_symlinks_write_fifos_and_devices_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A symlink: its target is written, the link stays a link.
    std::fs::write(d.join("target.md"), "old").unwrap();
    std::os::unix::fs::symlink("target.md", d.join("link.md")).unwrap();
    assert_eq!(render_to(&d.join("link.md")).0, 0);
    assert!(std::fs::symlink_metadata(d.join("link.md"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(d.join("target.md"))
        .unwrap()
        .starts_with("## scen"));

    // A dangling symlink creates its target, with the usual permissions.
    std::os::unix::fs::symlink("made.md", d.join("dangling.md")).unwrap();
    assert_eq!(render_to(&d.join("dangling.md")).0, 0);
    let made = std::fs::metadata(d.join("made.md")).unwrap();
    assert_eq!(made.permissions().mode() & 0o777, 0o644);

    // A FIFO is written into, not replaced.
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    assert_eq!(render_to(&fifo).0, 0);
    assert!(reader.join().unwrap().starts_with("## scen"));
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // A character device is written, not replaced.
    assert_eq!(render_to(std::path::Path::new("/dev/null")).0, 0);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());

    // A directory is refused, and left alone.
    std::fs::create_dir(d.join("adir")).unwrap();
    let (code, err) = render_to(&d.join("adir"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is a directory") && err.contains("written through to its target"),
        "{err}"
    );
    assert!(d.join("adir").is_dir());

    // `-` is standard output.
    let out = scen()
        .args(["report", "render"])
        .arg(fixture("report-v1.json"))
        .args(["--markdown", "-"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("## scen"));
}

#[test]
fn a_report_that_cannot_be_written_makes_the_verdict_line_say_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("r.json")).unwrap();
    let out = scen()
        .arg("run")
        .arg(fixture("keys.rhai"))
        .arg("--report")
        .arg(dir.path().join("r.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let verdict = err
        .lines()
        .find(|l| l.starts_with("PASSED"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        verdict.ends_with("(exit 2: a report file could not be written)"),
        "{verdict}"
    );
}

#[test]
fn a_closed_stderr_or_stdout_does_not_stop_scen() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    // `scen run … 2>&1 | head -1`: the reader is gone before scen writes.
    let mut child = scen()
        .arg("run")
        .arg(fixture("keys.rhai"))
        .arg("--report")
        .arg(&json)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["outcome"], "passed");
    // `scen compare … | head`: stdout closed.
    let mut child = scen()
        .args(["compare", "--all"])
        .arg(&json)
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `scen run victim.rhai --report victim.rhai` and friends: an output never replaces what the run
/// reads, nor another output; a FIFO with no reader and a report reader on a FIFO or a device end
/// with an error instead of hanging.
#[test]
fn outputs_never_replace_the_scenario_or_each_other_and_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let victim = d.join("victim.rhai");
    let text = "step(\"s\", |p| #{});\n";
    std::fs::write(&victim, text).unwrap();
    let values = d.join("values.yaml");
    std::fs::write(&values, "{}\n").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("link.json")).unwrap();
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec!["--report".into(), victim.clone().into()],
            "which this run reads",
        ),
        (
            vec!["--html".into(), d.join("link.json").into()],
            "a symlink to",
        ),
        (
            vec![
                "--junit".into(),
                values.clone().into(),
                "--values".into(),
                values.clone().into(),
            ],
            "which this run reads",
        ),
        (
            vec![
                "--report".into(),
                d.join("x").into(),
                "--junit".into(),
                d.join("x").into(),
            ],
            "also writes",
        ),
    ];
    for (args, says) in cases {
        let out = scen().arg("run").arg(&victim).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            text,
            "the scenario is intact"
        );
        assert_eq!(std::fs::read_to_string(&values).unwrap(), "{}\n");
        assert!(!d.join("x").exists(), "nothing ran");
    }

    // A module the scenario imports (here through another import) is an input too.
    std::fs::create_dir(d.join("lib")).unwrap();
    let helpers = "fn nothing() { #{} }\n";
    std::fs::write(d.join("lib/outer.rhai"), "import \"lib/helpers\" as h;\n").unwrap();
    std::fs::write(d.join("lib/helpers.rhai"), helpers).unwrap();
    let importer = d.join("importer.rhai");
    std::fs::write(
        &importer,
        "import \"lib/outer\" as o;\nstep(\"s\", |p| #{});\n",
    )
    .unwrap();
    let out = scen()
        .arg("run")
        .arg(&importer)
        .arg("--markdown")
        .arg(d.join("lib/helpers.rhai"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("which this run reads"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.join("lib/helpers.rhai")).unwrap(),
        helpers
    );

    // A FIFO nobody reads: an error within its deadline, exit 2, not a hang.
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (code, err) = render_to(&fifo);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no reader"), "{err}");
    // Readers of reports refuse what is not a regular file.
    for p in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let out = scen()
            .arg("compare")
            .arg(p)
            .arg(fixture("report-v1.json"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
        let out = scen()
            .args(["report", "render"])
            .arg(p)
            .args(["--markdown", "-"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    }
}

/// A password in a URL or in `--user` reaches no output: not the terminal, not a report.
#[test]
fn credentials_are_masked_in_every_output() {
    let r = run(
        &fixture("keys.rhai"),
        &[
            "--out",
            "prometheus-rw=http://scen:hunter2-secret@127.0.0.1:1/api/v1/write",
            "-v",
        ],
    );
    assert!(matches!(r.code, 0 | 1), "{}", r.stderr);
    let report = r.report.as_ref().unwrap();
    let target = report["outputs"][0]["target"].as_str().unwrap();
    assert_eq!(target, "http://scen:***@127.0.0.1:1/api/v1/write");
    let html = std::fs::read_to_string(r.dir.path().join("r.html")).unwrap();
    for (what, text) in [
        ("stderr", r.stderr.clone()),
        ("stdout", r.stdout.clone()),
        ("json", report.to_string()),
        ("junit", r.junit.clone().unwrap()),
        ("markdown", r.markdown.clone().unwrap()),
        ("html", html),
    ] {
        assert!(
            !text.contains("hunter2-secret"),
            "{what} shows the password"
        );
    }
    // --user's password on a failed connection.
    let out = scen()
        .args([
            "run",
            fixture("keys.rhai").to_str().unwrap(),
            "--endpoints",
            "http://127.0.0.1:1",
            "--user",
            "root:pass-w0rd-x",
        ])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("pass-w0rd-x"), "{all}");
}

/// The Markdown summary (a CI job summary, rendered as HTML by GitHub) escapes what came from a
/// script or an error: no raw HTML, no Markdown control characters.
#[test]
fn the_markdown_summary_escapes_script_text() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.rhai");
    std::fs::write(
        &f,
        "scenario(#{ name: \"<script>alert(1)</script>\", description: \"<img src=x onerror=alert(2)> **bold** | pipe\" });\n\
         step(\"s\", |p| throw \"<b onmouseover=alert(3)>boom</b> `tick`\");\n",
    )
    .unwrap();
    let r = run(&f, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let md = r.markdown.unwrap();
    for raw in ["<script", "<img", "<b ", "**bold**"] {
        assert!(!md.contains(raw), "{raw} is raw in:\n{md}");
    }
    assert!(md.contains("&lt;script&gt;"), "{md}");
    assert!(md.contains("\\*\\*bold\\*\\*"), "{md}");
    assert!(md.contains("&lt;b onmouseover"), "{md}");
}

//! scen as an installed tool: the scenario library inside the binary, `scen show`, `scen list`
//! and `scen init`, from a directory with no repository in it.

mod common;

use common::*;

fn scen_in(dir: &std::path::Path) -> std::process::Command {
    let mut c = scen();
    c.current_dir(dir);
    c
}

#[test]
fn a_shipped_scenario_runs_by_name_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["etcd-stress.rhai", "etcd-stress"] {
        let out = scen_in(dir.path())
            .args([
                "run",
                name,
                "--set",
                "nodes=50",
                "--set",
                "secrets=10",
                "--set",
                "load_duration=1s",
                "--report",
                "r.json",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{name}: {err}");
        assert!(
            err.contains("using the shipped scenario etcd-stress"),
            "{err}"
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap())
                .unwrap();
        assert_eq!(r["scenario"]["name"], "etcd-stress");
        assert!(
            r["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "passed"),
            "{r}"
        );
    }
    // A file of that name in the directory wins over the shipped one.
    std::fs::write(
        dir.path().join("etcd-stress.rhai"),
        "scenario(#{ name: \"mine\" });\nstep(\"s\", |p| #{});\n",
    )
    .unwrap();
    let out = scen_in(dir.path())
        .args(["run", "etcd-stress.rhai", "--report", "m.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("shipped"));
    // An unknown name lists the library.
    let out = scen_in(dir.path())
        .args(["run", "etcd-stres"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no shipped scenario") && err.contains("check-perf"),
        "{err}"
    );
}

#[test]
fn show_list_and_init_make_a_starter_that_checks_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = scen_in(dir.path())
        .args(["show", "check-perf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(root().join("scenarios/check-perf.rhai")).unwrap()
    );
    let out = scen_in(dir.path()).arg("list").output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{listed}");
    for entry in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let name = entry
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(listed.lines().any(|l| l == name), "{name} not in\n{listed}");
    }

    let out = scen_in(dir.path())
        .args(["init", "mine", "--from", "check-perf"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = dir.path().join("mine");
    for f in [
        "check-perf.rhai",
        "values.yaml",
        ".github/workflows/scen.yml",
        ".gitlab-ci.yml",
    ] {
        assert!(mine.join(f).exists(), "{f}");
    }
    let ci = std::fs::read_to_string(mine.join(".github/workflows/scen.yml")).unwrap();
    assert!(
        ci.contains("scen run check-perf.rhai --values values.yaml") && ci.contains("--junit"),
        "{ci}"
    );
    let _: serde_yaml::Value = serde_yaml::from_str(&ci).unwrap();
    let values = std::fs::read_to_string(mine.join("values.yaml")).unwrap();
    let parsed: serde_yaml::Mapping = serde_yaml::from_str(&values).unwrap();
    assert!(parsed.contains_key("load"), "{values}");
    let out = scen_in(&mine)
        .args(["check", "check-perf.rhai", "--values", "values.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Again: refused, naming the files, nothing changed.
    std::fs::write(mine.join("values.yaml"), "load: \"l\"\n").unwrap();
    let out = scen_in(dir.path())
        .args(["init", "mine", "--from", "check-perf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("values.yaml"));
    assert_eq!(
        std::fs::read_to_string(mine.join("values.yaml")).unwrap(),
        "load: \"l\"\n"
    );
}

fn doctor(args: &[&str]) -> (i32, String) {
    let out = scen().arg("doctor").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned()
            + String::from_utf8_lossy(&out.stderr).as_ref(),
    )
}

#[test]
fn doctor_explains_each_misconfiguration_and_exits_3() {
    // Nothing listens there.
    let (code, out) = doctor(&["--endpoints", "http://127.0.0.1:1"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL endpoint http://127.0.0.1:1: unreachable"),
        "{out}"
    );

    // A healthy etcd: every line ok or warn, exit 0, the write under /scen/ cleaned up.
    let (_rt, _etcd, url) = external();
    let (code, out) = doctor(&["--endpoints", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("ok   endpoint {url}")), "{out}");
    assert!(out.contains("ok   write under /scen/"), "{out}");
    assert!(out.contains("ok   leader"), "{out}");
    assert!(out.contains("quota"), "{out}");
    let left = etcdctl(&url, &["get", "/scen/", "--prefix", "--keys-only"]);
    assert!(left.trim().is_empty(), "{left}");

    // A metrics URL that does not answer: a warning that says what is lost.
    let (code, out) = doctor(&["--endpoints", &url, "--metrics-urls", "http://127.0.0.1:1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warn metrics http://127.0.0.1:1/metrics") && out.contains("no data"),
        "{out}"
    );

    // A CA file that is not PEM.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.crt");
    std::fs::write(&bad, "not a certificate").unwrap();
    let (code, out) = doctor(&["--endpoints", &url, "--cacert", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL --cacert") && out.contains("not PEM"),
        "{out}"
    );

    // Auth enabled, no user: the write under /scen/ fails, saying what to give.
    etcdctl(&url, &["user", "add", "root", "--new-user-password=s3cret"]);
    etcdctl(&url, &["auth", "enable"]);
    let (code, out) = doctor(&["--endpoints", &url]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL write under /scen/") && out.contains("--user"),
        "{out}"
    );
    let (code, out) = doctor(&["--endpoints", &url, "--user", "root:s3cret"]);
    assert_eq!(code, 0, "{out}");
    // A kubeconfig that does not exist.
    let (code, out) = doctor(&["--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL kubeconfig /nonexistent/kubeconfig"),
        "{out}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = scen().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(
        v.starts_with(&format!("scen {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(
        !head.is_empty() && v.contains(&head),
        "{v} does not name {head}"
    );
}

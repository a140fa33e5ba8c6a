//! End-to-end: `scen check`, `list`, `api`, `schema` and `--help`, and the generated docs.

mod common;

use common::*;

fn output(args: &[&str]) -> (i32, String, String) {
    let out = scen().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_shipped_scenario_checks() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let (code, out, err) = output(&["check", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {err}", path.display());
            assert!(out.contains("ok: the plan is valid"));
            assert!(
                !err.contains("warning"),
                "shipped scenarios use current names: {}: {err}",
                path.display()
            );
            let head = std::fs::read_to_string(&path).unwrap();
            assert!(
                head.starts_with("//"),
                "{} starts with a header comment",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn check_prints_the_plan_and_rejects_bad_thresholds() {
    let (code, out, _) = output(&[
        "check",
        "scenarios/etcd-stress.rhai",
        "--json",
        "--set",
        "nodes=5000",
    ]);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = plan["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nodes")
        .unwrap();
    assert_eq!(
        (nodes["default"].as_i64(), nodes["value"].as_i64()),
        (Some(100), Some(5000))
    );
    assert_eq!(plan["steps"][1]["name"], "cluster");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rhai");
    for (src, want) in [
        (
            "step(\"a\", |p| #{});\nthreshold(\"b.x < 1ms\");\n",
            "reads step `b`",
        ),
        (
            "step(\"a\", |p| #{});\nthreshold(\"a.x < 25 parsecs\");\n",
            "unknown unit `parsecs`",
        ),
        (
            "step(\"a\", |p| #{});\nthreshold(\"a.x < 25ms + 1GiB\");\n",
            "cannot combine a duration with a size",
        ),
        (
            "step(\"a\", |p| #{});\nstep(\"a\", |p| #{});\n",
            "declared twice",
        ),
        (
            "step(\"a-b\", |p| #{});\n",
            "must be letters, digits and `_`",
        ),
        (
            "join(\"x\");\nstep(\"a\", |p| #{});\n",
            "no background step `x`",
        ),
        (
            "scenario(#{ nmae: \"x\" });\nstep(\"a\", |p| #{});\n",
            "nmae",
        ),
        (
            "import \"nope\" as n;\nstep(\"a\", |p| #{});\n",
            "module `nope` not found",
        ),
        ("step(\"s\", |p| etcd::status());\nthreshold(\"s.db_sise < 1GiB\");\n", "etcd::status does not record"),
        ("step(\"w\", |p| { etcd::put_many(#{ count: 1 }) });\nthreshold(\"w.latency.p < 1s\");\n", "any quantile"),
        ("step(\"w\", |p| etcd::put_many(#{ count: 1 }));\nthreshold(\"w.latency.p99 < 5%\");\n", "is a duration (ms)"),
        ("step(\"s\", |p| etcd::status());\nthreshold(\"s.leader == 1\");\n", "is not a number"),
    ] {
        std::fs::write(&bad, src).unwrap();
        let (code, _, err) = output(&["check", bad.to_str().unwrap()]);
        assert_eq!(code, 2, "{src}");
        assert!(err.contains(want), "{src}: expected `{want}` in\n{err}");
        assert!(
            err.contains("bad.rhai:"),
            "position shown for {src}:\n{err}"
        );
    }
}

#[test]
fn renamed_options_still_work_with_a_warning_and_renamed_fields_are_check_errors() {
    let file = fixture("deprecated-options.rhai");
    let (code, _, err) = output(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("deprecated-options.rhai:3: etcd::put_many option `concurrency` is deprecated: it was renamed to `clients`"),
        "{err}"
    );
    // The run honours the old name (3 clients) and warns once.
    let r = run(&file, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr
            .matches("option `concurrency` is deprecated")
            .count(),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(
        step(r.report.as_ref().unwrap(), "write")["record"]["ok"],
        20
    );
    // A threshold on a renamed record field names the new one.
    let (code, _, err) = output(&["check", file.to_str().unwrap(), "--set", "old_field=true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("renamed to `write.error_messages`"), "{err}");
}

#[test]
fn list_shows_descriptions_and_parameters() {
    let (code, out, _) = output(&["list", "scenarios"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("etcd-stress.rhai") && out.contains("nodes=100"),
        "{out}"
    );
}

#[test]
fn generated_docs_are_current() {
    let (_, api, _) = output(&["api"]);
    assert!(
        api.contains("### `etcd::put_many(options: Map) -> Map`"),
        "{api}"
    );
    assert!(api.contains("### `threshold(expression: &str)`"));
    let on_disk = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    assert!(
        on_disk == api,
        "docs/api.md is stale: run `scen api > docs/api.md`"
    );
    let (_, schema, _) = output(&["schema"]);
    let on_disk = std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap();
    assert!(
        on_disk == schema,
        "docs/report.schema.json is stale: run `scen schema > docs/report.schema.json`"
    );
}

#[test]
fn help_documents_exit_codes() {
    let (code, out, _) = output(&["run", "--help"]);
    assert_eq!(code, 0);
    for c in ["0 ", "1 ", "2 ", "3 ", "130"] {
        assert!(
            out.contains(&format!("  {c}")),
            "exit code {c} in help:\n{out}"
        );
    }
    assert!(out.contains("--endpoints") && out.contains("--cacert") && out.contains("--user"));
}

#[test]
fn example_values_files_fit_the_flagship() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("examples/values")).unwrap() {
        let path = entry.unwrap().path();
        let (code, out, err) = output(&[
            "check",
            "scenarios/etcd-stress.rhai",
            "--values",
            path.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
        let nodes = plan["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "nodes")
            .unwrap();
        assert_ne!(
            nodes["value"],
            nodes["default"],
            "{} sets nodes",
            path.display()
        );
        n += 1;
    }
    assert_eq!(n, 4, "small, medium, large, xlarge");
}

/// The `scen api` text of each function: `ns::name` → every section documenting an overload.
fn api_sections() -> std::collections::BTreeMap<String, String> {
    let (code, api, _) = output(&["api"]);
    assert_eq!(code, 0);
    let mut out = std::collections::BTreeMap::new();
    for section in api.split("\n### `").skip(1) {
        let name = section.split('(').next().unwrap().to_string();
        out.entry(name)
            .or_insert_with(String::new)
            .push_str(section);
    }
    out
}

#[test]
fn the_docs_name_only_functions_and_options_scen_api_knows() {
    let api = api_sections();
    let call = |text: &str, at: usize| -> Option<(String, String)> {
        // `ns::name(` at `at`, and the first options map of the call, if any.
        let rest = &text[at..];
        let open = rest.find('(')?;
        let name = rest[..open].to_string();
        let args = &rest[open + 1..];
        // Up to the parenthesis that closes the call.
        let mut depth = 0;
        let end = args.char_indices().find_map(|(i, c)| match c {
            '(' => {
                depth += 1;
                None
            }
            ')' if depth == 0 => Some(i),
            ')' => {
                depth -= 1;
                None
            }
            _ => None,
        })?;
        Some((name, args[..end].to_string()))
    };
    for doc in ["README.md", "docs/guide.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        for ns in ["etcd::", "cluster::", "metrics::", "fault::"] {
            for (at, _) in text.match_indices(ns) {
                let Some((name, args)) = call(&text, at) else {
                    continue;
                };
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                {
                    continue; // prose such as `etcd::` on its own
                }
                if name.ends_with("::") {
                    continue;
                }
                let section = api.get(&name).unwrap_or_else(|| {
                    panic!("{doc} calls {name}, which `scen api` does not know")
                });
                // Each option key of a literal map must be one the function documents.
                if let Some(map) = args.split("#{").nth(1) {
                    let mut depth = 0;
                    let mut key = String::new();
                    for ch in map.chars() {
                        match ch {
                            '{' | '[' | '(' => depth += 1,
                            '}' | ']' | ')' if depth == 0 => break,
                            '}' | ']' | ')' => depth -= 1,
                            ':' if depth == 0 && !key.trim().is_empty() => {
                                let k = key.trim().to_string();
                                assert!(
                                    section.contains(&k),
                                    "{doc}: {name} is given option `{k}`, which `scen api` does not document for it"
                                );
                                key.clear();
                            }
                            ',' if depth == 0 => key.clear(),
                            c if depth == 0 && (c.is_ascii_alphanumeric() || c == '_') => {
                                key.push(c)
                            }
                            _ if depth == 0 => key.clear(),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bash_completion_completes_subcommands_and_the_man_page_renders() {
    let (code, script, err) = output(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scen.bash");
    std::fs::write(&file, script).unwrap();
    // Source it in bash, then ask it to complete `scen ru` and `scen run --rep`.
    let probe = format!(
        "set -e; source {}; complete -p scen >/dev/null; \
         COMP_WORDS=(scen ru); COMP_CWORD=1; COMP_LINE='scen ru'; COMP_POINT=7; _scen scen ru scen; echo \"${{COMPREPLY[@]}}\"; \
         COMP_WORDS=(scen run --rep); COMP_CWORD=2; COMP_LINE='scen run --rep'; COMP_POINT=14; _scen scen --rep run; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert!(
        lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .any(|w| w == "run"),
        "{stdout}"
    );
    assert!(lines.next().unwrap_or("").contains("--report"), "{stdout}");
    for shell in ["zsh", "fish"] {
        let (code, script, _) = output(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(script.contains("compare"), "{shell}");
    }
    let (code, man, _) = output(&["man"]);
    assert_eq!(code, 0);
    assert!(
        man.starts_with(".ie") || man.contains(".TH scen"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("completions"));
}

#[test]
fn report_dash_writes_json_to_stdout_and_logs_stay_on_stderr_without_colour() {
    let out = scen()
        .args(["run"])
        .arg(fixture("keys.rhai"))
        .args(["--report", "-"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert_eq!(report["outcome"], "passed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PASSED"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {err:?}"
    );
}

#[test]
fn a_huge_value_is_quoted_in_part_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let digits = "9".repeat(100_000);
    let values = dir.path().join("v.yaml");
    std::fs::write(&values, format!("nodes: {digits}\n")).unwrap();
    let flagship = root().join("scenarios/etcd-stress.rhai");
    let set = format!("nodes={digits}");
    let unknown = format!("{digits}=1");
    for args in [
        vec![
            "check".as_ref(),
            flagship.as_os_str(),
            "--values".as_ref(),
            values.as_os_str(),
        ],
        vec![
            "check".as_ref(),
            flagship.as_os_str(),
            "--set".as_ref(),
            set.as_ref(),
        ],
        vec![
            "check".as_ref(),
            flagship.as_os_str(),
            "--set".as_ref(),
            unknown.as_ref(),
        ],
    ] {
        let out = scen().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("(100000 characters)"),
            "{}",
            &err[..err.len().min(600)]
        );
        assert!(err.len() < 2_000, "the message is {} bytes", err.len());
    }
}

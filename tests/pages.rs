//! Every shipped scenario's page, read in a real browser: every figure of its JSON is on the page
//! at its path in the threshold syntax (lists of maps included), no two chart labels overlap,
//! every axis says its unit; and on `kyverno-reports`, a custom resource with a dotted name is
//! one row with its bytes in the bytes column, and the member status table marks the leader.

mod common;

use common::*;

/// Runs the shipped scenario `name` small and reads its page.
fn check_page(name: &str) {
    let settings = shipped::small()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("{name} is not in tests/common/shipped.rs"));
    let file = root().join(format!("scenarios/{name}.rhai"));
    let r = run(&file, &settings);
    // Small settings may break a scenario's own limits (exit 1); the page is what is read.
    // api-latency needs a cluster of the user's (its kubeconfig): here its page is that of a run
    // that could not start, which must render too.
    if name != "api-latency" {
        assert!(matches!(r.code, 0 | 1), "{name}: {}", r.stderr);
    }
    assert_page_renders(&r);
    let checked = figures_on_page(
        name,
        &r.dir.path().join("r.json"),
        &r.dir.path().join("r.html"),
    );
    assert!(
        name == "api-latency" || checked > 10,
        "{name}: {checked} figures"
    );
    let text = std::fs::read_to_string(r.dir.path().join("r.html")).unwrap();
    if name == "kyverno-reports" {
        kyverno(&text);
    }
    if name == "pod-lifecycle" {
        phases_in_run_order(&text, &r.report.unwrap());
    }
}

/// Every figure of the report `json` (typed by its record) and every leaf of its records is on its
/// page `html`, and each step an action made reads back as that action's record type; returns
/// how many figures were checked.
fn figures_on_page(name: &str, json: &std::path::Path, html: &std::path::Path) -> usize {
    figures_on_old_page(name, json, html, true)
}

/// As [`figures_on_page`]; `typed`: assert that every passed action step reads back as its
/// record type (an older scen's record whose type gained a figure since reads as its JSON, typed
/// by its action's schema).
fn figures_on_old_page(
    name: &str,
    json: &std::path::Path,
    html: &std::path::Path,
    typed: bool,
) -> usize {
    let (l, _) = layout(html, &html.with_extension("pages"));
    let report = scen_engine::report::from_json(json).unwrap();
    let mut checked = 0;
    for s in &report.steps {
        for f in scen_engine::report::typed::step_figures_with_lists(s) {
            assert!(
                l.paths.contains(&f.path),
                "{name}: {} is not on the page",
                f.path
            );
            checked += 1;
        }
        // And every leaf of the JSON record, strings included (a distribution's encoded
        // histogram, and long texts such as error messages, are for tools).
        let mut leaves = Vec::new();
        json_leaves(&s.record.to_value(), s.name.clone(), &mut leaves);
        for p in leaves {
            assert!(l.paths.contains(&p), "{name}: {p} is not on the page");
        }
        // A record an action made is read back as that action's Rust type, not as JSON (a step
        // that failed before its action returned has only the step's views).
        let passed = s.status == scen_engine::report::StepStatus::Passed;
        if let Some(action) = s.action.as_ref().filter(|_| passed && typed) {
            assert_eq!(
                s.record.record_type(),
                scen_engine::actions::registry::RecordType::of_action(action),
                "{name}: step {} ({action}) was not read as its record type",
                s.name
            );
        }
    }
    checked
}

/// Reports of shipped scenarios (small) that scen wrote at 41ed59d (2026-12-01).
const OLD_REPORTS: [&str; 4] = [
    "report-v2-etcd-stress.json",
    "report-v2-large-cluster.json",
    "report-v2-leader-kill.json",
    "report-v2-capacity.json",
];

/// A report an older scen wrote (schema version 2, built from 41ed59d of 2026-12-01: before the
/// typed `Record`, one per-second type, a heartbeat's `dropped`) renders with every figure on its
/// page, and each record reads back as that action's type and writes back exactly as written.
#[test]
fn an_older_scens_reports_render_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let mut typed = Vec::new();
    for name in OLD_REPORTS {
        let json = fixture(name);
        let html = dir.path().join(name).with_extension("html");
        let out = scen()
            .args(["report", "render"])
            .arg(&json)
            .arg("--html")
            .arg(&html)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let checked = figures_on_old_page(name, &json, &html, false);
        assert!(checked > 10, "{name}: {checked} figures");
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(raw["schema_version"], 2);
        let report = scen_engine::report::from_json(&json).unwrap();
        for (s, r) in report.steps.iter().zip(raw["steps"].as_array().unwrap()) {
            assert_eq!(s.record.to_value(), r["record"], "{name}: {}", s.name);
            if s.record.record_type().is_some() {
                typed.push(format!("{name}: {}", s.name));
            }
        }
    }
    // Records whose type only gained optional fields since are typed (a `null` for what they
    // lack); others, such as a heartbeat's before its CPU figures, are read through the schema.
    assert!(typed.len() >= 4, "{typed:?}");
}

/// A lifecycle's phases table has a column per phase, in the order they ran, and each phase's
/// distributions as rows (no horizontal scroll hides them).
fn phases_in_run_order(text: &str, report: &serde_json::Value) {
    let doc = html_doc(text);
    let lifecycle = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["record"]["phases_run"].is_array())
        .expect("a lifecycle step");
    let run: Vec<&str> = lifecycle["record"]["phases_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let table = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("table")
                && n.attribute("class") == Some("fig turned")
                && n.descendants()
                    .any(|c| c.has_tag_name("caption") && c.text() == Some("phases"))
        })
        .expect("the phases table, turned");
    let headers: Vec<&str> = table
        .descendants()
        .filter(|n| n.has_tag_name("th"))
        .skip(1)
        .map(|n| n.text().unwrap_or(""))
        .collect();
    assert_eq!(headers, run, "phases in run order");
    assert!(table
        .descendants()
        .any(|n| n.has_tag_name("td") && n.text() == Some("since_created.p99")));
}

/// The paths of every leaf of a record: numbers, booleans, nulls, and strings under 80
/// characters (not `hist`), through maps and lists of maps.
fn json_leaves(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
    use scen_engine::measure::path;
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let here = path::key(&path, k);
                match x {
                    serde_json::Value::String(t) if t.len() >= 80 || k == "hist" => {}
                    serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                        json_leaves(x, here, out)
                    }
                    _ => out.push(here),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                if x.is_object() {
                    json_leaves(x, path::index(&path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// A test per shipped scenario (`apiserver_lab` for `apiserver-lab.rhai`).
macro_rules! pages {
    ($($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_page(&stringify!($test).replace('_', "-"));
            }
        )*

        #[test]
        fn every_shipped_scenario_has_its_page_test() {
            let tested: Vec<String> = [$(stringify!($test)),*]
                .iter()
                .map(|t| t.replace('_', "-"))
                .collect();
            for (name, _) in shipped::small() {
                assert!(tested.iter().any(|t| t == name), "no page test for {name}");
            }
        }
    };
}

pages!(
    api_latency,
    apiserver_lab,
    backup_restore,
    capacity,
    check_perf,
    defrag_under_load,
    etcd_health_lab,
    etcd_stress,
    flaky_link,
    kubevirt_density,
    kyverno_reports,
    large_cluster,
    leader_kill,
    nospace_recovery,
    partition,
    pod_lifecycle,
    quorum_loss,
    slow_disk,
);

/// The by-kind table and the member status of kyverno-reports' page.
fn kyverno(text: &str) {
    let doc = html_doc(text);
    let kind = "wgpolicyk8s.io/policyreports";
    let row = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("tr")
                && n.first_element_child().and_then(|td| td.text()) == Some(kind)
                && n.ancestors().any(|t| {
                    t.has_tag_name("table")
                        && t.descendants().any(|c| {
                            c.has_tag_name("caption")
                                && c.text().is_some_and(|x| x.starts_with("by_kind"))
                        })
                })
        })
        .expect("a by_kind row of its own for the dotted resource");
    let table = row.ancestors().find(|t| t.has_tag_name("table")).unwrap();
    let headers: Vec<&str> = table
        .descendants()
        .filter(|n| n.has_tag_name("th"))
        .map(|n| n.text().unwrap_or(""))
        .collect();
    let column = headers
        .iter()
        .position(|h| *h == "bytes")
        .expect("a bytes column");
    let cell = row
        .children()
        .filter(|n| n.is_element())
        .nth(column)
        .unwrap();
    let path = cell.attribute("data-path").unwrap();
    assert!(
        path.ends_with(&format!("by_kind['{kind}'].bytes")),
        "{path}"
    );
    assert!(cell.text().unwrap().ends_with("iB"), "{:?}", cell.text());
    // The member status, per member, the leader marked.
    let leader = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("leader"))
        .expect("the leader is marked");
    assert!(leader.text().unwrap_or("").starts_with('★'));
    assert!(doc.descendants().any(|n| n
        .attribute("data-path")
        .is_some_and(|p| p.ends_with("members[0].raft_applied_index"))));
}

//! End-to-end: the self-contained HTML report, from `scen run --html` and `scen report render`.

mod common;

use common::*;

/// Runs tests/fixtures/html.rhai (a load across maintenance) with `extra` output flags, writing
/// its JSON report into `dir`; returns the report's path.
fn html_run(dir: &std::path::Path, extra: &[&std::ffi::OsStr]) -> std::path::PathBuf {
    let json = dir.join("r.json");
    let file = fixture("html.rhai");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        file.as_os_str(),
        "-q".as_ref(),
        "--report".as_ref(),
        json.as_os_str(),
    ];
    args.extend_from_slice(extra);
    scen_ok(&args);
    json
}

#[test]
fn the_html_report_is_self_contained_and_marks_maintenance_on_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let json = html_run(dir.path(), &["--html".as_ref(), html.as_os_str()]);
    let text = std::fs::read_to_string(&html).unwrap();
    let doc = html_doc(&text);

    // Nothing is fetched: no script file, stylesheet or image from anywhere (the one script,
    // sorting tables, is inline).
    assert!(doc.descendants().all(|n| n.attribute("src").is_none()));
    assert!(!doc.descendants().any(|n| n.has_tag_name("link")));
    assert!(doc
        .descendants()
        .filter(|n| n.has_tag_name("script"))
        .all(|n| n.attribute("src").is_none() && n.text().is_some_and(|t| !t.contains("http"))));
    assert!(!text.contains("url("));

    // Verdict and every threshold with its observed value.
    assert!(text.contains("PASSED"));
    for t in ["load.errors == 0", "status.db_size &lt; 1GiB"] {
        assert!(text.contains(t), "{t}");
    }
    // The load's per-second charts mark the maintenance steps that ran during it.
    let svg_ns = "http://www.w3.org/2000/svg";
    let charts: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "svg" && n.tag_name().namespace() == Some(svg_ns))
        .collect();
    let load_charts: Vec<_> = charts
        .iter()
        .filter(|c| {
            c.attribute("aria-label")
                .is_some_and(|l| l.starts_with("load: ") && l.ends_with("per second"))
        })
        .collect();
    assert_eq!(load_charts.len(), 2, "throughput and latency per second");
    let marks: Vec<&str> = load_charts[0]
        .descendants()
        .filter(|n| n.attribute("class") == Some("mk"))
        .filter_map(|n| n.text())
        .collect();
    for m in ["compact", "defrag"] {
        assert!(marks.contains(&m), "{m} marked: {marks:?}");
    }
    let lines = load_charts[0]
        .descendants()
        .filter(|n| n.has_tag_name((svg_ns, "polyline")))
        .count();
    assert!(lines >= 1, "the throughput line is drawn");
    // Database size before and after the defragmentation.
    assert!(charts
        .iter()
        .any(|c| c.attribute("aria-label") == Some("database size by step (MiB)")));

    // `scen report render` gives the same page from the JSON report.
    let again = dir.path().join("again.html");
    scen_ok(&[
        "report".as_ref(),
        "render".as_ref(),
        json.as_os_str(),
        "--html".as_ref(),
        again.as_os_str(),
    ]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
    let out = scen()
        .args(["report", "render"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "nothing asked for");
}

#[test]
fn compare_writes_the_two_runs_overlaid() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for name in ["old.json", "new.json"] {
        let json = dir.path().join(name);
        scen_ok(&[
            "run".as_ref(),
            fixture("html.rhai").as_os_str(),
            "-q".as_ref(),
            "--report".as_ref(),
            json.as_os_str(),
        ]);
        reports.push(json);
    }
    let page = dir.path().join("compare.html");
    let out = scen()
        .arg("compare")
        .args(&reports)
        .args(["--tolerance", "1000%", "--all", "--html"])
        .arg(&page)
        .output()
        .unwrap();
    // Two real runs differ: a figure may regress by chance (0 errors, then 1). The page's verdict
    // must agree with the exit code either way.
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&page).unwrap();
    let doc = html_doc(&text);
    let overlays: Vec<_> = doc
        .descendants()
        .filter(|n| {
            n.attribute("aria-label")
                .is_some_and(|l| l.contains("old and new"))
        })
        .collect();
    assert_eq!(
        overlays.len(),
        3,
        "the load's latency by percentile, throughput and p99 per second, both runs on shared axes"
    );
    // Each overlay says the noise-aware verdict of its figure.
    let titles: Vec<&str> = overlays
        .iter()
        .filter_map(|n| n.attribute("aria-label"))
        .collect();
    assert!(
        titles[0].starts_with("load: latency by percentile, old and new — p99 "),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("— throughput ")),
        "{titles:?}"
    );
    let overlays = &overlays[1..];
    let legend: Vec<&str> = overlays[0].descendants().filter_map(|n| n.text()).collect();
    assert!(legend.contains(&"old") && legend.contains(&"new"));
    assert_eq!(
        overlays[0]
            .descendants()
            .filter(|n| n.tag_name().name() == "polyline")
            .count(),
        2
    );
    if code == Some(0) {
        assert!(text.contains("NO REGRESSION"));
    } else {
        assert!(text.contains(" REGRESSED — ") && text.contains(">REGRESSED<"));
    }
    assert!(text.contains("load.latency.p99"));
}

#[test]
fn pages_show_each_figure_in_its_unit_and_a_dash_for_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let json = html_run(dir.path(), &[]);
    // The load as it would stand had no request succeeded: a distribution without samples.
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let load = report["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == "load")
        .unwrap();
    load["record"]["latency"] = serde_json::json!({
        "count": 0, "min": null, "mean": null, "stddev": null, "p50": null, "p90": null,
        "p99": null, "p999": null, "max": null
    });
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, report.to_string()).unwrap();
    let (md, html) = (dir.path().join("r.md"), dir.path().join("r.html"));
    scen_ok(&[
        "report".as_ref(),
        "render".as_ref(),
        edited.as_os_str(),
        "--markdown".as_ref(),
        md.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    let md = std::fs::read_to_string(&md).unwrap();
    let row = md.lines().find(|l| l.starts_with("| `load`")).unwrap();
    assert!(row.contains("p50 —, p99 —") && row.contains("/s"), "{row}");
    let row = md.lines().find(|l| l.starts_with("| `status`")).unwrap();
    assert!(!row.contains("p99"), "status has no latency: {row}");

    let text = std::fs::read_to_string(&html).unwrap();
    let doc = html_doc(&text);
    // Each step's figures table: field → value, formatted by the field's type.
    let cell = |section: &str, field: &str| -> String {
        let sec = doc
            .descendants()
            .find(|n| {
                n.has_tag_name("section")
                    && n.descendants().any(|h| {
                        h.has_tag_name("h3") && h.text().is_some_and(|t| t.contains(section))
                    })
            })
            .unwrap_or_else(|| panic!("no section {section}"));
        let tr = sec
            .descendants()
            .filter(|n| n.has_tag_name("tr"))
            .find(|tr| tr.first_element_child().and_then(|td| td.text()) == Some(field))
            .unwrap_or_else(|| panic!("no {field} in {section}"));
        tr.last_element_child()
            .unwrap()
            .text()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        cell("status", "db_size").ends_with("iB"),
        "{}",
        cell("status", "db_size")
    );
    assert!(["true", "false"].contains(&cell("status", "has_leader").as_str()));
    assert!(
        cell("load", "throughput").ends_with("/s"),
        "{}",
        cell("load", "throughput")
    );
    assert!(
        cell("load", "error_rate").ends_with('%'),
        "{}",
        cell("load", "error_rate")
    );
    let d = cell("load", "duration_ms");
    assert!(d.ends_with("ms") || d.ends_with('s'), "{d}");
    assert!(
        cell("load", "shortfall").ends_with('%'),
        "{}",
        cell("load", "shortfall")
    );
}

/// Runs tests/fixtures/page.rhai (a simulated cluster, background heartbeats, a mixed load in two
/// phases, an inventory, a map of the script's own) with `--html`; the report and the page.
fn page_run(dir: &std::path::Path) -> (scen_engine::Report, String) {
    let (json, html) = (dir.join("r.json"), dir.join("r.html"));
    let file = fixture("page.rhai");
    scen_ok(&[
        "run".as_ref(),
        file.as_os_str(),
        "-q".as_ref(),
        "--report".as_ref(),
        json.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    let report = scen_engine::report::from_json(&json).unwrap();
    (report, std::fs::read_to_string(&html).unwrap())
}

#[test]
fn every_leaf_figure_of_every_record_is_on_the_page_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let (report, text) = page_run(dir.path());
    let doc = html_doc(&text);
    let on_page: std::collections::BTreeSet<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-path"))
        .collect();
    let mut checked = 0;
    for s in &report.steps {
        for f in scen_engine::report::typed::step_figures(s) {
            assert!(
                on_page.contains(f.path.as_str()),
                "{} is not on the page",
                f.path
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "a rich report: {checked} figures");
    // A quantile of etcd's buckets shows the bucket it is known to; scen's own are exact.
    let mut bucketed = 0;
    for s in &report.steps {
        for f in scen_engine::report::typed::step_figures(s) {
            let Some(td) = doc
                .descendants()
                .find(|n| n.attribute("data-path") == Some(f.path.as_str()))
            else {
                continue;
            };
            let text = td.text().unwrap_or("");
            match (f.value, f.bucket()) {
                (Some(_), Some(_)) => {
                    bucketed += 1;
                    assert!(
                        text.contains("(bucket ") || text.starts_with("> "),
                        "{}: {text}",
                        f.path
                    );
                }
                _ => assert!(!text.contains("bucket"), "{}: {text}", f.path),
            }
        }
    }
    assert!(bucketed > 0, "the server view's WAL fsync p99 is bucketed");
    // Nested figures the old page left out: per flow, per operation, per resource, the script's own.
    for path in [
        "hb.leases.latency.p99",
        "after.by_op.get.latency.p99",
        "after.by_op.put.throughput",
        "inventory.resources.pods.keys",
        "mine.nested.b.c",
    ] {
        assert!(on_page.contains(path), "{path}");
    }
    // Maps of maps are sortable tables, a row per key.
    let by_op = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("table")
                && n.attribute("class") == Some("fig sortable")
                && n.descendants()
                    .any(|c| c.attribute("data-path") == Some("after.by_op.get.ok"))
        })
        .expect("by_op as a sortable table");
    let rows = by_op.descendants().filter(|n| n.has_tag_name("tr")).count();
    assert_eq!(rows, 3, "a header and one row per operation");
    // No samples is a dash, never 0.
    let rtt = doc
        .descendants()
        .find(|n| n.attribute("data-path") == Some("after.server.peer_rtt.p99"))
        .unwrap();
    assert_eq!(rtt.text(), Some("—"), "one member: no peer round trips");
}

#[test]
fn the_timeline_has_every_step_in_order_with_background_steps_in_their_own_lane() {
    let dir = tempfile::tempdir().unwrap();
    let (report, text) = page_run(dir.path());
    let doc = html_doc(&text);
    let timeline = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("chart wide timeline"))
        .expect("a timeline at the top");
    let bars: Vec<(&str, &str)> = timeline
        .descendants()
        .filter_map(|n| Some((n.attribute("data-step")?, n.attribute("data-lane")?)))
        .collect();
    let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        bars.iter().map(|b| b.0).collect::<Vec<_>>(),
        names,
        "every step, in order"
    );
    for (step, lane) in &bars {
        let want = if *step == "hb" { "1" } else { "0" };
        assert_eq!(*lane, want, "{step}");
    }
    // The bars follow each other on the time axis: each one starts where the previous ended or
    // later (the background lane overlaps them).
    let x = |name: &str| -> f64 {
        timeline
            .descendants()
            .find(|n| n.attribute("data-step") == Some(name))
            .and_then(|g| g.children().find(|c| c.has_tag_name((SVG, "rect"))))
            .and_then(|r| r.attribute("x"))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(x("sim") < x("before") && x("before") < x("after") && x("after") < x("inventory"));
    assert!(x("hb") < x("after"), "the heartbeats ran beside the loads");
    // Under it, on the same time axis: the load and etcd's own view, sampled during the run.
    let labels: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("aria-label"))
        .collect();
    for want in [
        "the load: requests per second, all steps",
        "the load: p99 per second (slowest step)",
        "etcd: WAL fsync and backend commit p99 (every 2 s)",
        "etcd: database size",
    ] {
        assert!(labels.contains(&want), "{want}: {labels:?}");
    }
    assert!(!report.server_timeline.is_empty());
    // Phases side by side: percentile curves of both, the ratios written out.
    let phases = doc
        .descendants()
        .find(|n| n.attribute("data-compare") == Some("before vs after"))
        .expect("report(#{ compare }) draws the phases");
    assert!(phases
        .descendants()
        .any(|n| n.attribute("aria-label") == Some("before vs after: latency by percentile")));
    let ratio = phases
        .descendants()
        .filter(|n| n.has_tag_name("b"))
        .filter_map(|n| n.text())
        .find(|t| t.starts_with('×'))
        .expect("a ratio");
    let _: f64 = ratio.trim_start_matches('×').parse().unwrap();
}

const SVG: &str = "http://www.w3.org/2000/svg";

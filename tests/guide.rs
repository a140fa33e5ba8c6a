//! The guide's examples are real: every ```rhai block of docs/guide.md passes `scen check` as
//! written, and every threshold in its table of threshold forms passes it beside the steps it names
//! (declared as the guide means them: `write`, `read` and `load` are loads, `status` is
//! `etcd::status`, `inv` an inventory, `a` and `b` script maps).

mod common;

use common::*;

/// The ```rhai blocks of the guide, with the line each starts on.
fn rhai_blocks(guide: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = guide.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        if l.trim() == "```rhai" {
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != "```")
                .collect();
            out.push((i + 2, body.join("\n") + "\n"));
        }
    }
    out
}

/// The backquoted examples of the "| form | example |" table.
fn table_thresholds(guide: &str) -> Vec<String> {
    let start = guide
        .find("| form | example |")
        .expect("the guide has its table of threshold forms");
    guide[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            // The last column, split on the table's own pipes (not on an escaped `\|`).
            let row = row.replace("\\|", "\u{1}");
            let example = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
            example
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|t| t.replace('\u{1}', "|"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn check(file: &std::path::Path) -> std::process::Output {
    scen().arg("check").arg(file).output().unwrap()
}

#[test]
fn every_rhai_block_of_the_guide_passes_scen_check() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).unwrap();
    let blocks = rhai_blocks(&guide);
    assert!(blocks.len() >= 10, "found only {} blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for (line, body) in &blocks {
        let file = dir.path().join(format!("guide-{line}.rhai"));
        std::fs::write(&file, body).unwrap();
        let out = check(&file);
        if !out.status.success() {
            failed.push(format!(
                "docs/guide.md:{line}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_threshold_in_the_guides_table_passes_scen_check() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).unwrap();
    let thresholds = table_thresholds(&guide);
    assert!(
        thresholds
            .iter()
            .any(|t| t.contains("count(status.members[*].id)")),
        "{thresholds:?}"
    );
    let steps = r#"
step("write", |p| etcd::stress(#{ op: "put", count: 10 }));
step("read", |p| etcd::stress(#{ op: "get", count: 10 }));
step("load", |p| etcd::stress(#{ op: "put", count: 10 }));
step("status", |p| etcd::status());
step("alarms", |p| etcd::alarms());
step("inv", |p| cluster::inventory());
step("a", |p| #{ x: 1.0 });
step("b", |p| #{ y: 1.0 });
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for t in &thresholds {
        let file = dir.path().join("t.rhai");
        std::fs::write(&file, format!("{steps}threshold({t:?});\n")).unwrap();
        let out = check(&file);
        if !out.status.success() {
            failed.push(format!("`{t}`: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn the_extractors_find_blocks_and_table_examples() {
    let text = "x\n```rhai\nstep(\"a\", |p| 1);\n```\n| form | example |\n|---|---|\n| c | `a.x < 1`, `a.y \\|\\| b` |\n\nend";
    assert_eq!(
        rhai_blocks(text),
        [(3, "step(\"a\", |p| 1);\n".to_string())]
    );
    assert_eq!(table_thresholds(text), ["a.x < 1", "a.y || b"]);
}

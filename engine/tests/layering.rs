//! The layering rule, enforced: no module of `scen-engine` imports one above it. Data flows one way
//! (vocabulary → measurement → connections → actions → report → live → plan → script → run), and
//! the shared types sit at the bottom (kube-rs keeps its vocabulary in `kube-core`, under
//! `kube-client`). The imports that still point up are listed in `KNOWN_UPWARD`: the list may only
//! shrink — a new upward import fails this test, and so does a listed one that is gone (take it
//! off the list).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules from the bottom up; a module may import those in its own layer or below.
const LAYERS: &[&[&str]] = &[
    &["units", "quote", "tls", "transport", "exit"],
    &["measure"],
    &["threshold", "params"],
    &["embedded"],
    &["control_plane"],
    &["target"],
    &["actions"],
    &["report"],
    &["live"],
    &["plan"],
    &["script"],
    &["run", "doctor", "library"],
    &["ab"],
];

/// Upward imports not yet undone, as `from -> to` (none left: the list only shrinks).
const KNOWN_UPWARD: &[(&str, &str)] = &[];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| {
            panic!(
                "engine/src/{module} is in no layer: add it to LAYERS in engine/tests/layering.rs"
            )
        })
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests` (a test may reach
/// anywhere).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named after `crate::` in `code`, grouped imports (`crate::{a, b::c}`)
/// included.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

/// `from -> to -> files` for every import between two top-level modules.
fn imports(src: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let tops: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let name = name.strip_suffix(".rs").map(String::from).unwrap_or(name);
            (name != "lib").then_some(name)
        })
        .collect();
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&f).unwrap());
        for to in crate_refs(&code) {
            if tops.contains(&to) && to != top {
                out.entry((top.clone(), to)).or_default().push(rel.clone());
            }
        }
    }
    out
}

#[test]
fn no_module_imports_one_above_it_beyond_the_known_list() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = imports(&src);
    let upward: BTreeMap<(String, String), Vec<String>> = edges
        .into_iter()
        .filter(|((from, to), _)| layer_of(to) > layer_of(from))
        .collect();
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<String> = upward
        .iter()
        .filter(|(e, _)| !known.contains(*e))
        .map(|((a, b), files)| format!("{a} -> {b} (in {})", files.join(", ")))
        .collect();
    assert!(
        new.is_empty(),
        "imports pointing up the layers (move the shared type down, or feed it through the \
         layer above): {new:#?}"
    );
    let gone: Vec<&(String, String)> = known.iter().filter(|e| !upward.contains_key(*e)).collect();
    assert!(
        gone.is_empty(),
        "undone, take them off KNOWN_UPWARD: {gone:?}"
    );
}

#[test]
fn the_import_scanner_sees_single_and_grouped_imports_and_skips_comments_and_tests() {
    let code = code_of(
        "use crate::measure::Unit;\nuse crate::{report::Report, live};\n// crate::script\n\
         let x = crate::units::parse(1);\n#[cfg(test)]\nmod tests { use crate::run; }",
    );
    let refs: Vec<String> = crate_refs(&code).into_iter().collect();
    assert_eq!(refs, ["live", "measure", "report", "units"]);
}

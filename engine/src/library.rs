//! The scenario library shipped inside the binary (`scenarios/*.rhai`), so `scen run etcd-stress`
//! works where the repository is not: a control-plane node, a CI image. Its imports are the stdlib
//! modules and its templates the stdlib templates, both shipped too.

use std::path::{Path, PathBuf};

/// Every shipped scenario: (name, source). A test checks this is exactly `scenarios/*.rhai`.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "api-latency",
        include_str!("../../scenarios/api-latency.rhai"),
    ),
    (
        "apiserver-lab",
        include_str!("../../scenarios/apiserver-lab.rhai"),
    ),
    (
        "backup-restore",
        include_str!("../../scenarios/backup-restore.rhai"),
    ),
    ("capacity", include_str!("../../scenarios/capacity.rhai")),
    (
        "check-perf",
        include_str!("../../scenarios/check-perf.rhai"),
    ),
    (
        "defrag-under-load",
        include_str!("../../scenarios/defrag-under-load.rhai"),
    ),
    (
        "etcd-health-lab",
        include_str!("../../scenarios/etcd-health-lab.rhai"),
    ),
    (
        "etcd-stress",
        include_str!("../../scenarios/etcd-stress.rhai"),
    ),
    (
        "flaky-link",
        include_str!("../../scenarios/flaky-link.rhai"),
    ),
    (
        "kubevirt-density",
        include_str!("../../scenarios/kubevirt-density.rhai"),
    ),
    (
        "kyverno-reports",
        include_str!("../../scenarios/kyverno-reports.rhai"),
    ),
    (
        "large-cluster",
        include_str!("../../scenarios/large-cluster.rhai"),
    ),
    (
        "leader-kill",
        include_str!("../../scenarios/leader-kill.rhai"),
    ),
    (
        "nospace-recovery",
        include_str!("../../scenarios/nospace-recovery.rhai"),
    ),
    ("partition", include_str!("../../scenarios/partition.rhai")),
    (
        "pod-lifecycle",
        include_str!("../../scenarios/pod-lifecycle.rhai"),
    ),
    (
        "quorum-loss",
        include_str!("../../scenarios/quorum-loss.rhai"),
    ),
    ("slow-disk", include_str!("../../scenarios/slow-disk.rhai")),
];

/// The shipped scenario named `name` (`etcd-stress` or `etcd-stress.rhai`).
pub fn shipped(name: &str) -> Option<(&'static str, &'static str)> {
    let n = name.strip_suffix(".rhai").unwrap_or(name);
    SCENARIOS.iter().find(|(s, _)| *s == n).copied()
}

/// The names of the shipped scenarios.
pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(n, _)| *n).collect()
}

/// Where a scenario argument leads: a file that exists, else the shipped scenario of that name
/// written into `dir` (so it runs like any file).
pub enum Resolved {
    /// A file on disk.
    File(PathBuf),
    /// A shipped scenario, written to this path.
    Shipped {
        /// Its name.
        name: &'static str,
        /// The file it was written to.
        path: PathBuf,
    },
}

/// Resolves `arg` (a path first, then a shipped name) writing a shipped scenario into `dir`.
/// `Err` names the shipped scenarios.
pub fn resolve(arg: &Path, dir: &Path) -> Result<Resolved, String> {
    if arg.exists() {
        return Ok(Resolved::File(arg.to_path_buf()));
    }
    let name = arg.to_string_lossy();
    // Only a bare name (no directory) means a shipped scenario.
    let bare = arg.components().count() == 1;
    match shipped(&name).filter(|_| bare) {
        Some((n, src)) => {
            let path = dir.join(format!("{n}.rhai"));
            std::fs::write(&path, src).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(Resolved::Shipped { name: n, path })
        }
        None => Err(format!(
            "cannot read scenario {name}: no such file, and no shipped scenario of that name (shipped: {})",
            names().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_exactly_the_scenarios_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".rhai")
                    .map(String::from)
            })
            .collect();
        on_disk.sort();
        assert_eq!(
            on_disk,
            names(),
            "add the new scenario to engine/src/library.rs"
        );
    }

    #[test]
    fn a_path_wins_over_a_name_and_an_unknown_name_lists_the_library() {
        let dir = tempfile::tempdir().unwrap();
        match resolve(Path::new("etcd-stress"), dir.path()).unwrap() {
            Resolved::Shipped { name, path } => {
                assert_eq!(name, "etcd-stress");
                assert_eq!(
                    std::fs::read_to_string(path).unwrap(),
                    shipped("etcd-stress").unwrap().1
                );
            }
            Resolved::File(_) => panic!("no such file here"),
        }
        let e = resolve(Path::new("nope"), dir.path()).err().unwrap();
        assert!(
            e.contains("etcd-stress") && e.contains("no shipped scenario"),
            "{e}"
        );
        assert!(
            resolve(Path::new("some/dir/etcd-stress.rhai"), dir.path()).is_err(),
            "a path is not a name"
        );
    }
}

//! Every shipped scenario with settings that make it small (they only shrink it): the table the
//! contract and page tests run, kept equal to `scenarios/`.

use super::root;

/// Every shipped scenario at a small scale (the settings only shrink it).
pub fn small() -> Vec<(&'static str, Vec<&'static str>)> {
    let small: &[(&str, &[&str])] = &[
        ("api-latency", &[]),
        (
            "apiserver-lab",
            &["nodes=3", "pods_per_node=2", "configmaps=3", "secrets=3"],
        ),
        ("backup-restore", &["secrets=10"]),
        (
            "capacity",
            &["budget=6s", "step_duration=1s", "from=200", "to=800"],
        ),
        ("check-perf", &["duration=2s", "load=s"]),
        (
            "defrag-under-load",
            &["garbage=100", "load_duration=2s", "rate=100"],
        ),
        (
            "etcd-health-lab",
            &[
                "keep=10",
                "nodes=2",
                "pods_per_node=2",
                "samples=20",
                "secrets=10",
            ],
        ),
        (
            "etcd-stress",
            &[
                "load_duration=2s",
                "nodes=4",
                "pods_per_node=2",
                "secrets=10",
                "load_clients=4",
            ],
        ),
        ("flaky-link", &["phase=2s"]),
        (
            "kubevirt-density",
            &[
                "heartbeats=2s",
                "monitor=1s",
                "monitor_interval=1s",
                "nodes=2",
                "vmis=10",
            ],
        ),
        ("kyverno-reports", &["namespaces=1", "reports=5", "scans=1"]),
        (
            "large-cluster",
            &[
                "duration=2s",
                "nodes=10",
                "pods_per_node=1",
                "status_interval=1s",
            ],
        ),
        ("leader-kill", &["load_duration=3s"]),
        ("nospace-recovery", &["fill=100"]),
        ("partition", &["load_duration=3s", "cut=1s"]),
        ("pod-lifecycle", &["monitor=1s", "nodes=2", "pods=10"]),
        ("quorum-loss", &["load_duration=3s"]),
        ("slow-disk", &["each=1s"]),
    ];
    let listed: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for name in &listed {
        assert!(
            small.iter().any(|(n, _)| n == name),
            "scenarios/{name}.rhai is not in tests/common/shipped.rs's table"
        );
    }
    small
        .iter()
        .map(|(n, s)| {
            (
                *n,
                s.iter().flat_map(|kv| ["--set", kv]).collect::<Vec<_>>(),
            )
        })
        .collect()
}

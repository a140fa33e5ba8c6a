//! End-to-end: `cluster::simulate`, `inventory` and `cleanup` against real etcd, checked from
//! outside with etcdctl.

mod common;

use common::*;
use serde_json::Value;

fn count(url: &str, prefix: &str) -> u64 {
    etcdctl(url, &["get", prefix, "--prefix", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .count() as u64
}

#[test]
fn a_simulated_cluster_lands_in_the_apiserver_layout_under_the_run_prefix() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = external_etcd(&rt);
    let url = etcd.client_url().to_string();
    let r = run(
        &fixture("cluster.rhai"),
        &["--endpoints", &url, "--keep-keys"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let prefix = report["target"]["prefix"].as_str().unwrap().to_string();
    let root = format!("{prefix}registry");
    let sim = &step(&report, "sim")["record"];
    assert_eq!(
        sim["root"],
        root.as_str(),
        "not the real /registry on an etcd scen did not start"
    );
    assert_eq!(count(&url, "/registry/"), 0);

    // Counts, from outside.
    for (dir, n) in [
        ("minions/", 4),
        ("leases/kube-node-lease/", 4),
        ("pods/", 12),
        ("deployments/", 2),
        ("replicasets/", 2),
        ("services/specs/", 1),
        ("configmaps/", 2),
        ("secrets/", 2),
        ("events/", 1),
        ("namespaces/", 3),
        ("wgpolicyk8s.io/policyreports/", 3),
    ] {
        assert_eq!(count(&url, &format!("{root}/{dir}")), n, "{dir}");
    }
    assert_eq!(sim["objects"], 36);

    // A pod decodes back into the pod its replicaset owns, on a fake node.
    let pods = etcdctl(
        &url,
        &[
            "get",
            &format!("{root}/pods/"),
            "--prefix",
            "--print-value-only",
            "--limit",
            "1",
        ],
    );
    let pod: Value = serde_json::from_str(pods.lines().next().unwrap()).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert!(pod["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .starts_with("scen-node-"));
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    assert_eq!(pod["status"]["phase"], "Running");
    let node: Value = serde_json::from_str(
        etcdctl(
            &url,
            &[
                "get",
                &format!("{root}/minions/scen-node-0"),
                "--print-value-only",
            ],
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(
        node["metadata"]["annotations"]["kwok.x-k8s.io/node"],
        "fake"
    );
    let secret: Value = serde_json::from_str(
        etcdctl(
            &url,
            &[
                "get",
                &format!("{root}/secrets/"),
                "--prefix",
                "--print-value-only",
                "--limit",
                "1",
            ],
        )
        .lines()
        .next()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        secret["data"]["token"].as_str().unwrap().len(),
        136,
        "100 bytes, base64"
    );

    // Inventory agrees with what etcdctl sees.
    let inv = &step(&report, "inv")["record"];
    assert_eq!(inv["keys"], 36);
    assert_eq!(inv["resources"]["pods"]["keys"], 12);
    assert_eq!(inv["resources"]["services/specs"]["keys"], 1);
    assert_eq!(inv["resources"]["wgpolicyk8s.io/policyreports"]["keys"], 3);
    assert_eq!(inv["bytes"], sim["bytes"]);
}

#[test]
fn cleanup_removes_what_the_run_created_and_nothing_else() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = external_etcd(&rt);
    let url = etcd.client_url().to_string();
    // A real node with a simulated name, and a real pod: both must survive.
    etcdctl(&url, &["put", "/registry/minions/scen-node-0", "real"]);
    etcdctl(
        &url,
        &["put", "/registry/pods/kube-system/etcd-0", "real-pod"],
    );
    let refused = run(
        &fixture("cluster.rhai"),
        &["--endpoints", &url, "--set", "cleanup=true"],
    );
    assert_eq!(refused.code, 0, "{}", refused.stderr);
    assert_eq!(
        count(&url, "/registry/"),
        2,
        "without the flag, /registry is not touched"
    );

    let r = run(
        &fixture("cluster.rhai"),
        &[
            "--endpoints",
            &url,
            "--set",
            "cleanup=true",
            "--allow-registry-writes",
        ],
    );
    // The pre-existing node is not overwritten, so one node short of the threshold.
    let report = r.report.unwrap();
    let sim = &step(&report, "sim")["record"];
    assert_eq!(sim["root"], "/registry");
    assert_eq!(sim["existing"], 1);
    assert_eq!(sim["objects"], 35);
    let clean = &step(&report, "clean")["record"];
    assert_eq!(clean["deleted"], 35);
    assert_eq!(clean["kept"], 1);
    assert_eq!(
        etcdctl(
            &url,
            &["get", "/registry/minions/scen-node-0", "--print-value-only"]
        )
        .trim(),
        "real"
    );
    assert_eq!(
        etcdctl(
            &url,
            &[
                "get",
                "/registry/pods/kube-system/etcd-0",
                "--print-value-only"
            ]
        )
        .trim(),
        "real-pod"
    );
    assert_eq!(count(&url, "/registry/"), 2);
    assert_eq!(r.code, 1, "the node-count threshold fails: {}", r.stderr);
}

#[test]
fn the_embedded_etcd_gets_the_real_registry_layout() {
    let r = run(&fixture("cluster.rhai"), &["--set", "nodes=2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(step(&report, "sim")["record"]["root"], "/registry");
}

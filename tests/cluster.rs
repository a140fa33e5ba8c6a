//! End-to-end: `cluster::simulate`, `inventory` and `cleanup` against real etcd, checked from
//! outside with etcdctl.

mod common;

use common::*;
use serde_json::Value;

/// The value etcd holds at `key` (empty when there is none).
fn value(url: &str, key: &str) -> String {
    etcdctl(url, &["get", key, "--print-value-only"])
        .trim()
        .to_string()
}

fn count(url: &str, prefix: &str) -> u64 {
    etcdctl(url, &["get", prefix, "--prefix", "--keys-only"])
        .lines()
        .filter(|l| !l.is_empty())
        .count() as u64
}

/// The value of the first key under `prefix`, read with `etcdctl -w json` (values may be binary).
fn first(url: &str, prefix: &str) -> Vec<u8> {
    use base64::Engine as _;
    let out: Value = serde_json::from_str(&etcdctl(
        url,
        &["get", prefix, "--prefix", "--limit", "1", "-w", "json"],
    ))
    .unwrap();
    let value = out["kvs"][0]["value"]
        .as_str()
        .expect("a key under the prefix");
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap()
}

/// Decodes a value kube-apiserver's way: `k8s\0` + runtime.Unknown{typeMeta, raw}, raw as `T`.
fn decode<T: prost::Message + Default>(value: &[u8], api_version: &str, kind: &str) -> T {
    use prost::Message as _;
    let body = value
        .strip_prefix(b"k8s\0")
        .expect("the protobuf magic prefix");
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(body).unwrap();
    let type_meta = unknown.type_meta.as_ref().unwrap();
    assert_eq!(
        (type_meta.api_version(), type_meta.kind()),
        (api_version, kind)
    );
    T::decode(unknown.raw()).unwrap()
}

#[test]
fn a_simulated_cluster_lands_in_the_apiserver_layout_under_the_run_prefix() {
    let (_rt, _etcd, url) = external();
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

    // Built-in kinds are protobuf in kube-apiserver's envelope and decode with k8s-pb into the
    // right objects; custom resources are JSON.
    let pod: k8s_pb::api::core::v1::Pod =
        decode(&first(&url, &format!("{root}/pods/")), "v1", "Pod");
    let meta = pod.metadata.unwrap();
    assert!(meta.namespace().starts_with("scen-ns-"));
    assert_eq!(meta.owner_references[0].kind(), "ReplicaSet");
    assert!(pod
        .spec
        .as_ref()
        .unwrap()
        .node_name()
        .starts_with("scen-node-"));
    let status = pod.status.unwrap();
    assert_eq!(status.phase(), "Running");
    assert!(status.start_time.unwrap().seconds.unwrap() > 1_700_000_000);
    let node: k8s_pb::api::core::v1::Node = decode(
        &first(&url, &format!("{root}/minions/scen-node-0")),
        "v1",
        "Node",
    );
    let meta = node.metadata.unwrap();
    assert_eq!(meta.name(), "scen-node-0");
    assert_eq!(meta.annotations["kwok.x-k8s.io/node"], "fake");
    let status = node.status.unwrap();
    assert_eq!(status.capacity["cpu"].string(), "32");
    assert_eq!(status.images.len(), 5);
    assert!(status
        .conditions
        .iter()
        .any(|c| c.r#type() == "Ready" && c.status() == "True"));
    let lease: k8s_pb::api::coordination::v1::Lease = decode(
        &first(&url, &format!("{root}/leases/kube-node-lease/scen-node-0")),
        "coordination.k8s.io/v1",
        "Lease",
    );
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity(), "scen-node-0");
    assert!(spec.renew_time.unwrap().seconds.unwrap() > 1_700_000_000);
    let secret: k8s_pb::api::core::v1::Secret =
        decode(&first(&url, &format!("{root}/secrets/")), "v1", "Secret");
    assert_eq!(secret.data["token"].len(), 100, "value_size bytes of data");
    let report_json = first(&url, &format!("{root}/wgpolicyk8s.io/policyreports/"));
    let report_obj: Value = serde_json::from_slice(&report_json).unwrap();
    assert_eq!(report_obj["kind"], "PolicyReport");
    assert_eq!(report_obj["results"].as_array().unwrap().len(), 5);
    assert_eq!(sim["by_kind"]["pod"]["encoding"], "protobuf");
    assert_eq!(
        sim["by_kind"]["wgpolicyk8s.io/policyreports"]["encoding"],
        "json"
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
    let (_rt, _etcd, url) = external();
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

    // With the flag, the node at a name scen wants is someone else's: left alone, and the step
    // fails naming it (exit 2).
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
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("/registry/minions/scen-node-0")
            && r.stderr.contains("adopt_existing: true")
            && r.stderr
                .contains("1 object at a name this step would create exists already"),
        "{}",
        r.stderr
    );
    let report = r.report.unwrap();
    let sim = &step(&report, "sim")["record"];
    assert_eq!(sim["existing"], 1, "the failed step keeps its record");
    assert_eq!(value(&url, "/registry/minions/scen-node-0"), "real");
    // What the failed step had created went again: it leaves nothing behind.
    assert!(
        r.stderr
            .contains("the step deleted again the 35 objects it had created"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&url, "/registry/"), 2);

    // Adopted, it is counted and never touched.
    let r = run(
        &fixture("cluster.rhai"),
        &[
            "--endpoints",
            &url,
            "--set",
            "cleanup=true",
            "--set",
            "adopt=true",
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
    assert_eq!(value(&url, "/registry/minions/scen-node-0"), "real");
    assert_eq!(value(&url, "/registry/pods/kube-system/etcd-0"), "real-pod");
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

#[test]
fn json_encoding_stores_built_in_kinds_as_json_too() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("cluster.rhai"),
        &[
            "--endpoints",
            &url,
            "--keep-keys",
            "--set",
            "encoding=json",
            "--set",
            "nodes=1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let sim = &step(&report, "sim")["record"];
    let root = sim["root"].as_str().unwrap();
    let pod: Value = serde_json::from_slice(&first(&url, &format!("{root}/pods/"))).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["spec"]["nodeName"], "scen-node-0");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    let node: Value =
        serde_json::from_slice(&first(&url, &format!("{root}/minions/scen-node-0"))).unwrap();
    assert_eq!(
        node["metadata"]["annotations"]["kwok.x-k8s.io/node"],
        "fake"
    );
    assert_eq!(sim["by_kind"]["node"]["encoding"], "json");
}

/// `etcdctl get KEY -w json`: the key's first kv (version, create/mod revision, value).
fn kv(url: &str, key: &str) -> Value {
    let out: Value = serde_json::from_str(&etcdctl(url, &["get", key, "-w", "json"])).unwrap();
    out["kvs"][0].clone()
}

#[test]
fn heartbeats_renew_leases_update_nodes_and_churn_pods_as_the_apiserver_writes() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("heartbeat.rhai"),
        &["--endpoints", &url, "--keep-keys"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let sim = &step(&report, "sim")["record"];
    let hb = &step(&report, "hb")["record"];
    let root = sim["root"].as_str().unwrap();
    let sim_last = sim["revisions"][1].as_i64().unwrap();

    // 20 nodes, every second for 3 s: 60 renewals and 60 status writes; 50% of 40 pods a second:
    // 60 pods churned. The heartbeats read every lease's and node's revision when they start, so
    // no write retries (nothing else writes them).
    for (flow, intended, conflicts) in [("leases", 60, 0), ("node_status", 60, 0)] {
        assert_eq!(hb[flow]["intended"], intended, "{flow}");
        assert_eq!(hb[flow]["ok"], intended, "{flow}");
        assert_eq!(hb[flow]["errors"], 0, "{flow}");
        assert_eq!(hb[flow]["conflicts"], conflicts, "{flow}");
        let rate = hb[flow]["throughput"].as_f64().unwrap();
        assert!((15.0..=21.0).contains(&rate), "{flow}: {rate}/s");
    }
    assert_eq!(hb["pod_churn"]["intended"], 60);
    assert_eq!(hb["pod_churn"]["ok"], 60);
    assert!((hb["target_rate"].as_f64().unwrap() - 80.0).abs() < 1e-6);
    let series = hb["series"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(
        series
            .iter()
            .map(|s| s["ok"].as_u64().unwrap())
            .sum::<u64>(),
        180
    );

    // From outside: each lease was written 1 + 3 times and renewed after the simulation, and
    // decodes with a fresh renewTime; churned pods were created again after it.
    let lease_key = format!("{root}/leases/kube-node-lease/scen-node-7");
    let lease = kv(&url, &lease_key);
    assert_eq!(lease["version"], 4);
    assert!(lease["mod_revision"].as_i64().unwrap() > sim_last);
    let renewed: k8s_pb::api::coordination::v1::Lease =
        decode(&first(&url, &lease_key), "coordination.k8s.io/v1", "Lease");
    let sim_started = report["started_at"].as_str().unwrap();
    let started = chrono_seconds(sim_started);
    assert!(renewed.spec.unwrap().renew_time.unwrap().seconds.unwrap() >= started);
    assert_eq!(
        kv(&url, &format!("{root}/minions/scen-node-7"))["version"],
        4
    );
    let pods = etcdctl(
        &url,
        &["get", &format!("{root}/pods/"), "--prefix", "-w", "json"],
    );
    let pods: Value = serde_json::from_str(&pods).unwrap();
    let pods = pods["kvs"].as_array().unwrap();
    assert_eq!(pods.len(), 40, "every churned pod exists again");
    let recreated = pods
        .iter()
        .filter(|p| p["create_revision"].as_i64().unwrap() > sim_last)
        .count();
    assert_eq!(recreated, 40, "60 churn events over 40 pods touch each one");
}

#[test]
fn heartbeats_commit_one_proposal_per_revision_no_failed_compare_and_swap() {
    let r = run(&fixture("heartbeat-revisions.rhai"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let rev = |s: &str| step(&report, s)["record"]["revision"].as_i64().unwrap();
    let hb = &step(&report, "hb")["record"];
    let written = hb["leases"]["ok"].as_i64().unwrap() + hb["node_status"]["ok"].as_i64().unwrap();
    assert_eq!(written, 120, "20 leases and 20 nodes a second for 3 s");
    assert_eq!(rev("after") - rev("before"), written);
    assert!(
        hb.get("pod_churn").is_none(),
        "no churn asked for: no churn figures"
    );
    // etcd's own count: a failed compare-and-swap is a proposal that changes no revision.
    assert_eq!(
        hb["server"]["proposals_committed"].as_f64(),
        Some(written as f64),
        "{}",
        hb["server"]
    );
    assert_eq!(hb["leases"]["conflicts"], 0);
    // scen's own CPU over its writes: some was spent, and the per-write figure is that over 120.
    let cpu = hb["client_cpu_ms"].as_f64().unwrap();
    assert!(cpu > 0.0, "{hb}");
    let per = hb["client_cpu_per_write"].as_f64().unwrap();
    assert!(
        (per * written as f64 - cpu).abs() < 1e-6 * cpu.max(1.0),
        "{per} × {written} ≠ {cpu}"
    );
    for t in report["thresholds"].as_array().unwrap() {
        assert_eq!(t["status"], "passed", "{t}");
    }
}

/// Seconds since the epoch of an RFC 3339 time, truncated.
fn chrono_seconds(rfc3339: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-d", rfc3339, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn cleanup_after_churn_removes_the_pods_created_again() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("heartbeat.rhai"),
        &[
            "--endpoints",
            &url,
            "--set",
            "cleanup=true",
            "--set",
            "duration=2s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let sim = &step(&report, "sim")["record"];
    let clean = &step(&report, "clean")["record"];
    assert_eq!(clean["deleted"], sim["objects"]);
    assert_eq!(clean["kept"], 0);
    assert_eq!(count(&url, sim["root"].as_str().unwrap()), 0);
}

#[test]
fn the_kube_backend_checks_its_thresholds_and_names_a_missing_kubeconfig() {
    // The ClusterLoader2 SLO thresholds of `slo::api` refer to fields the kube record has.
    scen_ok(&["check", fixture("kube-sim.rhai").to_str().unwrap()]);
    // No kube-apiserver can run here: the step fails with the kubeconfig problem and what to do.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    let r = run(
        &fixture("kube-sim.rhai"),
        &["--set", &format!("kubeconfig={}", missing.display())],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("kubeconfig: "), "{}", r.stderr);
    assert!(r.stderr.contains("no-such-kubeconfig"), "{}", r.stderr);
    assert!(r.report.is_some(), "a failed run still writes its report");
}

/// Heartbeats that fall behind (20,000 lease renewals due a second, one client) still end with
/// their window: what was never sent is `dropped`, in the latency with the time it waited, and
/// the series has one entry per second (before, late answers closed a second again and again:
/// 150,000 entries at 50,000 nodes through kube-apiserver, past Rhai's map limit).
#[test]
fn heartbeats_that_fall_behind_end_with_their_window_and_count_what_was_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("behind.rhai");
    std::fs::write(
        &file,
        r#"scenario(#{ name: "behind" });
step("sim", || cluster::simulate(#{ nodes: 2000, pods: 0, namespaces: 1 }));
step("hb", || cluster::heartbeat(#{ duration: "2s", lease_interval: "100ms",
    status_interval: "0s", clients: 1, request_timeout: "1s" }));
"#,
    )
    .unwrap();
    let r = run(&file, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let hb = &step(&report, "hb")["record"];
    let leases = &hb["leases"];
    let n = |k: &str| leases[k].as_u64().unwrap();
    assert_eq!(n("intended"), 40_000);
    assert!(
        n("dropped") > 0,
        "one client cannot send 20,000/s: {leases}"
    );
    assert_eq!(
        n("ok") + n("errors") + n("dropped"),
        n("intended"),
        "every due write is sent or dropped: {leases}"
    );
    assert_eq!(
        leases["latency"]["count"].as_u64().unwrap(),
        n("ok") + n("dropped"),
        "dropped writes are in the latency (a lower bound)"
    );
    // The window (2 s) plus one write in flight (at most its 1 s timeout), not the 40,000
    // writes' worth of backlog.
    let took = hb["duration_ms"].as_f64().unwrap();
    assert!(took < 2.0 * 2000.0 + 1000.0, "{took} ms");
    let seconds: Vec<u64> = hb["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["t"].as_u64().unwrap())
        .collect();
    assert_eq!(seconds, [0, 1], "one entry per second of the window");
    // No status write was due (`status_interval: "0s"`): nothing dropped is no data, not 0.
    assert!(hb["node_status"]["dropped"].is_null(), "{hb}");
}

/// `--allow-registry-writes` lets heartbeats write the real registry, and still never modify or
/// delete an object this run did not create: a node, its lease and a pod written beforehand by
/// someone else keep their value and revision through leases, status and churn.
#[test]
fn heartbeats_never_touch_objects_this_run_did_not_create() {
    let (_rt, _etcd, url) = external();
    let foreign = [
        ("/registry/minions/scen-node-0", "their-node"),
        (
            "/registry/leases/kube-node-lease/scen-node-0",
            "their-lease",
        ),
        ("/registry/pods/scen-ns-0/pod-0", "their-pod"),
    ];
    for (k, v) in foreign {
        etcdctl(&url, &["put", k, v]);
    }
    let revision = |k: &str| -> i64 {
        let out = etcdctl(&url, &["get", k, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["kvs"][0]["mod_revision"].as_i64().unwrap()
    };
    let before: Vec<i64> = foreign.iter().map(|(k, _)| revision(k)).collect();
    let args = [
        "--endpoints",
        &url,
        "--allow-registry-writes",
        "--set",
        "nodes=4",
        "--set",
        "pods=8",
        "--set",
        "duration=3s",
    ];
    // Not adopted: the simulation fails naming them, and no heartbeat runs.
    let r = run(&fixture("heartbeat.rhai"), &args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("3 objects at names this step would create exist already")
            && r.stderr.contains("/registry/pods/scen-ns-0/pod-0"),
        "{}",
        r.stderr
    );
    for ((k, v), rev) in foreign.iter().zip(&before) {
        assert_eq!(value(&url, k), *v);
        assert_eq!(revision(k), *rev, "{k} was written");
    }
    // Adopted: used as they are, never written.
    let mut adopted = args.to_vec();
    adopted.extend(["--set", "adopt=true"]);
    let r = run(&fixture("heartbeat.rhai"), &adopted);
    let report = r.report.unwrap();
    assert_eq!(
        step(&report, "sim")["record"]["existing"],
        3,
        "{}",
        r.stderr
    );
    for ((k, v), rev) in foreign.iter().zip(before) {
        assert_eq!(value(&url, k), *v, "{k} was overwritten");
        assert_eq!(revision(k), rev, "{k} was written again");
    }
    // The heartbeats count the writes they did not make to adopted objects, as no error.
    let hb = &step(&report, "hb")["record"];
    assert!(hb["leases"]["adopted"].as_u64().unwrap() > 0, "{hb}");
    assert!(hb["node_status"]["adopted"].as_u64().unwrap() > 0, "{hb}");
    assert_eq!(hb["leases"]["errors"], 0, "{hb}");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The objects this run created were renewed.
    assert!(
        step(&report, "hb")["record"]["leases"]["ok"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// `--allow-registry-writes` opens `/registry` and nothing else: a simulation rooted elsewhere stays
/// under the run prefix, and nothing is left outside it.
#[test]
fn allow_registry_writes_opens_the_registry_and_nothing_else() {
    let (_rt, _etcd, url) = external();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.rhai");
    std::fs::write(
        &f,
        "step(\"sim\", |p| cluster::simulate(#{ nodes: 2, pods: 2, root: \"/app\" }));\n",
    )
    .unwrap();
    let r = run(&f, &["--endpoints", &url, "--allow-registry-writes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    let root = step(&report, "sim")["record"]["root"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        root.starts_with("/scen/") && root.ends_with("/app"),
        "{root}"
    );
    let outside = etcdctl(&url, &["get", "/app", "--prefix", "--keys-only"]);
    assert!(outside.trim().is_empty(), "{outside}");
    // Nothing of the run is left at all (its prefix was cleaned up).
    let all = etcdctl(&url, &["get", "", "--from-key", "--keys-only"]);
    assert!(all.trim().is_empty(), "{all}");
}

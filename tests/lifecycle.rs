//! End-to-end: `cluster::lifecycle` against real etcd, checked from outside with etcdctl: each
//! object's version counts the writes its phases made, its status decodes (k8s-pb for pods, JSON
//! for VMIs) in the phase it reached, and a lifecycle with `delete` leaves nothing.

mod common;

use common::*;
use serde_json::Value;

/// Every key under `prefix` with its version and value (`etcdctl -w json`).
fn kvs(url: &str, prefix: &str) -> Vec<(String, i64, Vec<u8>)> {
    use base64::Engine as _;
    let out: Value =
        serde_json::from_str(&etcdctl(url, &["get", prefix, "--prefix", "-w", "json"])).unwrap();
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    out["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        String::from_utf8(b64(&kv["key"])).unwrap(),
                        kv["version"].as_i64().unwrap(),
                        b64(&kv["value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn objects_go_through_their_phases_as_kube_apiserver_writes_them() {
    let (_rt, _etcd, url) = external();
    let r = run(
        &fixture("lifecycle.rhai"),
        &["--endpoints", &url, "--keep-keys"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_schema_valid(&report);
    let root = format!("{}registry", report["target"]["prefix"].as_str().unwrap());

    // VMIs: created, Scheduling, Scheduled, Running: four writes each, JSON, on a simulated node.
    let vms = &step(&report, "vms")["record"];
    assert_eq!(vms["names"], "vm-<i>");
    assert_eq!(
        vms["namespaces"],
        serde_json::json!(["scen-ns-0", "scen-ns-1", "scen-ns-2"])
    );
    let found = kvs(
        &url,
        &format!("{root}/kubevirt.io/virtualmachineinstances/"),
    );
    assert_eq!(found.len(), 20, "every VMI, where the record says");
    for (key, version, value) in &found {
        assert!(key.contains("/scen-ns-") && key.contains("/vm-"), "{key}");
        assert_eq!(*version, 4, "{key}: create, Scheduling, Scheduled, Running");
        let vmi: Value = serde_json::from_slice(value).unwrap();
        assert_eq!(vmi["kind"], "VirtualMachineInstance");
        assert_eq!(vmi["status"]["phase"], "Running", "{key}");
        assert!(vmi["status"]["nodeName"]
            .as_str()
            .unwrap()
            .starts_with("scen-node-"));
    }
    for phase in ["create", "schedule", "run"] {
        let p = &vms["phases"][phase];
        assert_eq!(p["count"], 20, "{phase}");
        assert_eq!(p["errors"], 0, "{phase}");
        assert!(p["latency"]["p99"].as_f64().unwrap() > 0.0);
    }
    // Time since creation grows phase by phase.
    let since = |p: &str| vms["phases"][p]["since_created"]["p50"].as_f64().unwrap();
    assert!(since("create") <= since("schedule") && since("schedule") <= since("run"));

    // Pods: protobuf in kube-apiserver's envelope; bound to a node and Running after `run`, with
    // a status update every 300 ms for 1 s while monitored.
    let pods = kvs(&url, &format!("{root}/pods/"));
    let monitored: Vec<_> = pods
        .iter()
        .filter(|(k, _, _)| k.contains("/pod-"))
        .collect();
    assert_eq!(monitored.len(), 20);
    for (key, version, value) in monitored {
        assert!(
            (5..=8).contains(version),
            "{key}: create, schedule, run and 2 to 5 monitoring updates, not {version}"
        );
        use prost::Message as _;
        let body = value.strip_prefix(b"k8s\0").expect("protobuf envelope");
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(body).unwrap();
        let pod = k8s_pb::api::core::v1::Pod::decode(unknown.raw()).unwrap();
        let (spec, status) = (pod.spec.unwrap(), pod.status.unwrap());
        assert!(spec.node_name().starts_with("scen-node-"), "{key}");
        assert_eq!(status.phase(), "Running", "{key}");
        assert!(status
            .conditions
            .iter()
            .any(|c| c.r#type() == "Ready" && c.last_probe_time.is_some()));
    }

    // Deployments: protobuf too, created, progressing, then available (their controller's status).
    let deps = kvs(&url, &format!("{root}/deployments/"));
    assert_eq!(deps.len(), 5);
    for (key, version, value) in &deps {
        assert_eq!(*version, 3, "{key}: create, progressing, available");
        use prost::Message as _;
        let body = value.strip_prefix(b"k8s\0").expect("protobuf envelope");
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(body).unwrap();
        let d = k8s_pb::api::apps::v1::Deployment::decode(unknown.raw()).unwrap();
        assert_eq!(d.metadata.unwrap().name(), key.rsplit('/').next().unwrap());
        assert_eq!(d.status.unwrap().available_replicas(), 1, "{key}");
    }

    // Deleted through a finalizer: nothing left, every phase counted.
    assert!(pods.iter().all(|(k, _, _)| !k.contains("/gone-")));
    let gone = &step(&report, "gone")["record"];
    assert_eq!(gone["remaining"], 0);
    assert_eq!(gone["completed"], 20);
    assert_eq!(gone["phases"]["delete"]["count"], 20);
    assert!(
        gone["phases"]["delete"]["since_created"]["p50"]
            .as_f64()
            .unwrap()
            >= 200.0,
        "monitored 200 ms before the delete"
    );
}

#[test]
fn objects_that_are_not_there_at_the_end_fail_the_step() {
    // The second lifecycle's objects have the first one's names: every create finds its object
    // already there, nothing of the second is created, and the step fails saying so rather than
    // reporting an empty success.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.rhai");
    std::fs::write(
        &file,
        "step(\"first\", |p| cluster::lifecycle(#{ kind: \"vmi\", count: 3, phases: [\"create\"] }));\n\
         step(\"again\", |p| cluster::lifecycle(#{ kind: \"vmi\", count: 3, phases: [\"create\"] }));\n",
    )
    .unwrap();
    let r = run(&file, &[]);
    assert_eq!(r.code, 2, "the scenario's doing: {}", r.stderr);
    assert!(r.stderr.contains("exists already"), "{}", r.stderr);
    assert!(r.stderr.contains("expected 0 objects"), "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(step(&report, "first")["status"], "passed");
    let again = &step(&report, "again");
    assert_eq!(again["status"], "failed");
    assert_eq!(
        again["record"]["phases"]["create"]["errors"], 3,
        "the record is kept"
    );
}

#[test]
fn a_range_where_the_run_put_no_objects_fails_and_cluster_object_finds_each_one() {
    // A new user's mistake from the issue: the objects are in `scen-ns-N`, the range asks
    // `default/`, finds nothing, and must not pass as an empty success.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ranges.rhai");
    std::fs::write(
        &file,
        r#"step("vms", |p| cluster::lifecycle(#{ kind: "vmi", count: 4, namespaces: 2, phases: ["create"] }));
step("third", |p| etcd::get(cluster::object(result("vms"), 3).key, #{ absolute: true }));
step("mine", |p| etcd::range(`${result("vms").prefix}${result("vms").namespaces[1]}/`, #{ absolute: true, count_only: true }));
step("none_expected", |p| etcd::range(`${result("vms").prefix}default/`, #{ absolute: true, at_least: 0 }));
step("cluster", |p| cluster::simulate(#{ nodes: 1, pods: 2, namespaces: 1 }));
step("pods", |p| etcd::range(`${result("cluster").root}/pods/`, #{ absolute: true, count_only: true }));
step("gone", |p| cluster::cleanup());
step("after_cleanup", |p| etcd::range(`${result("cluster").root}/pods/`, #{ absolute: true, count_only: true }));
step("emptied", |p| etcd::delete(`${result("vms").prefix}${result("vms").namespaces[0]}/`, #{ absolute: true, prefix: true }));
step("after_delete", |p| etcd::range(`${result("vms").prefix}${result("vms").namespaces[0]}/`, #{ absolute: true, count_only: true }));
step("wrong", |p| etcd::range(`${result("vms").prefix}default/`, #{ absolute: true, count_only: true }));
step("never", |p| etcd::range("x/", #{}));
threshold("third.found == true");
threshold("mine.count == 2");
"#,
    )
    .unwrap();
    let r = run(&file, &[]);
    assert_eq!(
        r.code, 2,
        "the scenario ranged the wrong place: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("found nothing under")
            && r.stderr.contains("this run wrote 4")
            && r.stderr.contains("namespaces scen-ns-0 … scen-ns-1")
            && r.stderr.contains("at_least: 0"),
        "{}",
        r.stderr
    );
    let report = r.report.unwrap();
    let vms = &step(&report, "vms")["record"];
    assert_eq!(vms["namespaced"], true);
    let third = &step(&report, "third")["record"];
    assert_eq!(third["found"], true, "{third}");
    assert_eq!(
        third["key"].as_str().unwrap(),
        format!(
            "{}{}/{}-3",
            vms["prefix"].as_str().unwrap(),
            vms["namespaces"][1].as_str().unwrap(),
            vms["name"].as_str().unwrap()
        )
    );
    assert_eq!(step(&report, "mine")["record"]["count"], 2);
    for s in [
        "none_expected",
        "pods",
        "after_cleanup",
        "emptied",
        "after_delete",
    ] {
        assert_eq!(step(&report, s)["status"], "passed", "{s}: {report}");
    }
    assert_eq!(step(&report, "pods")["record"]["count"], 2);
    assert_eq!(step(&report, "after_cleanup")["record"]["count"], 0);
    assert_eq!(step(&report, "after_delete")["record"]["count"], 0);
    let wrong = &step(&report, "wrong");
    assert_eq!(wrong["status"], "failed");
    assert_eq!(wrong["record"]["count"], 0, "the record is kept");
    assert_eq!(step(&report, "never")["status"], "skipped");

    // An explicit expectation holds anywhere.
    std::fs::write(
        &file,
        "step(\"few\", |p| etcd::range(\"nothing/\", #{ at_least: 1 }));\n",
    )
    .unwrap();
    let r = run(&file, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("found 0 keys under") && r.stderr.contains("fewer than at_least: 1"),
        "{}",
        r.stderr
    );
}

/// Creations and deletions under `prefix` in etcd's history, by revision: (create revisions,
/// delete revisions).
fn history(url: &str, prefix: &str) -> (Vec<i64>, Vec<i64>) {
    let out = std::process::Command::new("timeout")
        .args([
            "3",
            "etcdctl",
            "--endpoints",
            url,
            "watch",
            "--prefix",
            "--rev=1",
            "-w",
            "json",
            prefix,
        ])
        .output()
        .unwrap();
    let (mut created, mut deleted) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        for e in v["Events"].as_array().into_iter().flatten() {
            let rev = e["kv"]["mod_revision"].as_i64().unwrap();
            if e["type"] == 1 {
                deleted.push(rev);
            } else if e["kv"]["version"] == 1 {
                created.push(rev);
            }
        }
    }
    (created, deleted)
}

#[test]
fn waves_create_the_whole_population_before_any_is_deleted_and_a_pipeline_does_not() {
    let (_rt, _etcd, url) = external();
    let mut order = Vec::new();
    for mode in ["waves", "pipeline"] {
        let r = run(
            &fixture("waves.rhai"),
            &[
                "--endpoints",
                &url,
                "--keep-keys",
                "--set",
                &format!("mode={mode}"),
            ],
        );
        assert_eq!(r.code, 0, "{mode}: {}", r.stderr);
        let report = r.report.unwrap();
        assert_schema_valid(&report);
        let vmis = &step(&report, "vmis")["record"];
        assert_eq!(vmis["mode"], mode);
        let (created, deleted) = history(&url, vmis["prefix"].as_str().unwrap());
        assert_eq!((created.len(), deleted.len()), (40, 40), "{mode}");
        // Whether the last creation came before the first deletion: all 40 existed at once.
        order.push(created.iter().max() < deleted.iter().min());
        for phase in ["create", "schedule", "run", "monitor", "delete"] {
            let wall = &vmis["phases"][phase]["wall_ms"];
            if mode == "waves" {
                assert!(wall.as_f64().unwrap() > 0.0, "{phase}: {vmis}");
            } else {
                assert!(wall.is_null(), "{phase}: {vmis}");
            }
        }
        if mode == "waves" {
            assert_eq!(vmis["peak_objects"], 40, "{vmis}");
            // Held: the monitor wave lasted at least its 100 ms.
            assert!(vmis["phases"]["monitor"]["wall_ms"].as_f64().unwrap() >= 100.0);
        } else {
            assert!(vmis["peak_objects"].is_null());
        }
    }
    assert_eq!(
        order,
        vec![true, false],
        "waves hold all at once; a pipeline deletes early"
    );
}

/// A range over the prefix of objects this run deleted may find nothing: the guard against
/// ranging the wrong prefix knows about deletions, and says so when it fires.
#[test]
fn a_range_over_what_the_run_deleted_may_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gone.rhai");
    std::fs::write(
        &f,
        "step(\"cluster\", |p| cluster::simulate(#{ nodes: 3, pods: 0 }));\n\
         step(\"vmis\", |p| cluster::lifecycle(#{ kind: \"vmi\", count: 10, namespaces: 2 }));\n\
         step(\"left\", |p| etcd::range(result(\"vmis\").prefix, #{ absolute: true }));\n\
         threshold(\"left.count == 0\");\n",
    )
    .unwrap();
    let r = run(&f, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Kept (no delete phase): the same range elsewhere still fails, naming what was not removed.
    std::fs::write(
        &f,
        "step(\"cluster\", |p| cluster::simulate(#{ nodes: 3, pods: 0 }));\n\
         step(\"vmis\", |p| cluster::lifecycle(#{ kind: \"vmi\", count: 10, namespaces: 2, phases: [\"create\"] }));\n\
         step(\"left\", |p| etcd::range(result(\"vmis\").prefix + \"default/\", #{ absolute: true }));\n",
    )
    .unwrap();
    let r = run(&f, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("no delete phase, cluster::cleanup or etcd::delete"),
        "{}",
        r.stderr
    );
}

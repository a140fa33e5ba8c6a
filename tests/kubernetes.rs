//! The Kubernetes examples (examples/kubernetes/) cannot rot: every manifest parses into the
//! Kubernetes API types with nothing left over, and the scenario the ConfigMap carries passes
//! `scen check`. (The image itself cannot be built on these machines: there is no container
//! runtime; the Dockerfile is checked by reading.)

mod common;

use common::*;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use serde_yaml::Value;

/// Parses `doc` as `T` and back: a field the API type does not know would be lost on the way.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(file: &str, doc: &Value) -> T {
    let t: T = serde_yaml::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_yaml::to_value(&t).unwrap();
    assert_eq!(
        &back, doc,
        "{file}: a field the Kubernetes API does not know, or a wrong type"
    );
    t
}

/// What the Job and the CronJob's pods must have to reach a kubeadm etcd safely.
fn check_pod(file: &str, pod: &PodSpec) {
    assert_eq!(
        pod.host_network,
        Some(true),
        "{file}: etcd listens on the node's loopback"
    );
    assert!(pod
        .node_selector
        .as_ref()
        .unwrap()
        .contains_key("node-role.kubernetes.io/control-plane"));
    assert!(pod
        .tolerations
        .as_ref()
        .unwrap()
        .iter()
        .any(|t| t.key.as_deref() == Some("node-role.kubernetes.io/control-plane")));
    let c = &pod.containers[0];
    let args = c.args.as_ref().unwrap();
    assert!(
        !args.iter().any(|a| a.contains("allow-maintenance")),
        "{file}: no maintenance on the cluster's etcd"
    );
    let certs = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/etc/kubernetes/pki/etcd")
        .unwrap();
    assert_eq!(
        certs.read_only,
        Some(true),
        "{file}: certificates are mounted read-only"
    );
    // The arguments are ones scen accepts.
    let flags: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap())
        .collect();
    let help = String::from_utf8(scen().args(["run", "--help"]).output().unwrap().stdout).unwrap();
    for f in flags {
        assert!(
            help.contains(&format!("--{f}")),
            "{file}: scen run has no --{f}"
        );
    }
    // Live outputs and their labels are ones scen would start with.
    let values = |flag: &str| -> Vec<String> {
        args.iter()
            .filter_map(|a| a.strip_prefix(flag))
            .map(String::from)
            .collect()
    };
    let (outs, labels) = (values("--out="), values("--out-label="));
    assert!(!outs.is_empty(), "{file}: metrics go out via --out");
    if let Err(e) = scen_engine::live::outputs::Spec::parse(&outs, &labels, None, None) {
        panic!("{file}: {e}");
    }
}

#[test]
fn the_kubernetes_examples_parse_into_the_api_types_and_their_scenario_checks() {
    let dir = root().join("examples/kubernetes");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let kind = doc["kind"].as_str().unwrap().to_string();
        match kind.as_str() {
            "Job" => {
                let job: Job = typed(&file, &doc);
                check_pod(&file, job.spec.unwrap().template.spec.as_ref().unwrap());
            }
            "CronJob" => {
                let cron: CronJob = typed(&file, &doc);
                let spec = cron.spec.job_template.spec.unwrap();
                check_pod(&file, spec.template.spec.as_ref().unwrap());
            }
            "ConfigMap" => {
                let cm: ConfigMap = typed(&file, &doc);
                for (name, text) in cm.data.unwrap() {
                    let tmp = tempfile::tempdir().unwrap();
                    let f = tmp.path().join(&name);
                    std::fs::write(&f, text).unwrap();
                    scen_ok(&["check".as_ref(), f.as_os_str()]);
                }
            }
            other => panic!("{file}: no check for kind {other}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(kinds, ["ConfigMap", "CronJob", "Job"]);
    let docker = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(docker.contains("USER 65532") && docker.contains("FROM debian:bookworm-slim"));
}

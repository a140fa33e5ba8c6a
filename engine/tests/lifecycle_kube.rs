//! `cluster::lifecycle` with `backend: "kube"` without a scheduler or KWOK (scen binds and sets
//! status itself), against a `tower-test` mock of kube-apiserver that keeps the objects, their
//! resourceVersions, finalizers and deletion as the real one does — and answers one status update
//! with a 409 Conflict on demand, which a real server does not, to see it read again and retried.
//! With the real scheduler and KWOK: `control_plane.rs`.

use std::collections::BTreeMap;

mod common;

use http::{Request, Response};
use kube::client::Body;
use scen_engine::actions::cluster::{lifecycle_through, LifecycleOptions};
use serde_json::{json, Value};
use tower_test::mock;

/// One request the mock saw: method, path and body.
type Seen = (String, String, Value);

fn status(code: u16, reason: &str) -> Value {
    common::status(code, reason, reason)
}

/// Serves until the client is dropped, keeping objects by path; returns what it saw.
async fn serve(mut handle: mock::Handle<Request<Body>, Response<Body>>) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let mut rv = 0u64;
    let mut conflicted = false;
    while let Some((req, send)) = common::next(&mut handle).await {
        let common::Incoming {
            method, path, body, ..
        } = req;
        seen.push((method.clone(), path.clone(), body.clone()));
        rv += 1;
        let (code, answer) = match method.as_str() {
            "POST" if path.ends_with("/binding") => {
                let at = path.trim_end_matches("/binding").to_string();
                let o = objects.get_mut(&at).unwrap();
                o["spec"]["nodeName"] = body["target"]["name"].clone();
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                (
                    201,
                    json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {} }),
                )
            }
            "POST" => {
                let at = format!("{path}/{}", body["metadata"]["name"].as_str().unwrap());
                let mut o = body.clone();
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                o["metadata"]["uid"] = json!(format!("uid-{rv}"));
                objects.insert(at, o.clone());
                (201, o)
            }
            "PUT" => {
                let at = path.trim_end_matches("/status").to_string();
                let o = objects.get_mut(&at).unwrap();
                if !conflicted {
                    // Someone else wrote the object meanwhile.
                    conflicted = true;
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    (409, status(409, "Conflict"))
                } else if body["metadata"]["resourceVersion"] != o["metadata"]["resourceVersion"] {
                    (409, status(409, "Conflict"))
                } else {
                    o["status"] = body["status"].clone();
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    (200, o.clone())
                }
            }
            "DELETE" => match objects.get_mut(&path) {
                Some(o)
                    if o["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty()) =>
                {
                    o["metadata"]["deletionTimestamp"] = json!("2026-11-30T00:00:00Z");
                    (200, o.clone())
                }
                Some(_) => (200, objects.remove(&path).unwrap()),
                None => (404, status(404, "NotFound")),
            },
            "PATCH" => match objects.get_mut(&path) {
                Some(o) => {
                    if body["metadata"]["finalizers"].is_null() {
                        o["metadata"]["finalizers"] = json!([]);
                    }
                    let gone = o["metadata"]["deletionTimestamp"].is_string();
                    let o = o.clone();
                    if gone {
                        objects.remove(&path);
                    }
                    (200, o)
                }
                None => (404, status(404, "NotFound")),
            },
            "GET" => match objects.get(&path) {
                Some(o) => (200, o.clone()),
                None => {
                    // A list: the objects under the collection's path.
                    let items: Vec<Value> = objects
                        .iter()
                        .filter(|(k, _)| k.rsplit_once('/').map(|(d, _)| d) == Some(path.as_str()))
                        .map(|(_, o)| o.clone())
                        .collect();
                    (
                        200,
                        json!({ "apiVersion": "v1", "kind": "List",
                                   "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
                    )
                }
            },
            _ => (405, status(405, "MethodNotAllowed")),
        };
        common::reply(send, code, &answer);
    }
    seen
}

/// Runs a lifecycle with `options` against the mock; the record and every request.
async fn lifecycle(options: Value) -> (Value, Vec<Seen>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let served = tokio::spawn(serve(handle));
    let client = kube::Client::new(service, "default");
    let mut opts: LifecycleOptions = serde_json::from_value(options).unwrap();
    opts.backend = scen_engine::actions::cluster::Backend::Kube;
    let r = lifecycle_through(client, &opts, Default::default())
        .await
        .expect("the lifecycle succeeds");
    let seen = served.await.unwrap();
    (serde_json::to_value(r).unwrap(), seen)
}

#[tokio::test]
async fn pods_are_created_bound_run_monitored_and_deleted_through_a_finalizer() {
    let (rec, seen) = lifecycle(json!({
        "kind": "pod", "count": 4, "nodes": 2, "namespaces": 2, "finalizer": true,
        "monitor": "0s", "concurrency": 1,
    }))
    .await;
    assert_eq!(rec["completed"], 4, "{rec}");
    assert_eq!(rec["remaining"], 0);
    for phase in ["create", "schedule", "run", "monitor", "delete"] {
        assert_eq!(rec["phases"][phase]["count"], 4, "{phase}");
    }
    assert_eq!(
        rec["phases"]["run"]["conflicts"], 1,
        "one 409, read again and retried"
    );
    // pod-0, from its creation to its removal, as kube-apiserver sees it.
    let path = "/api/v1/namespaces/scen-ns-0/pods/pod-0";
    let mine: Vec<(&str, &str)> = seen
        .iter()
        .filter(|(_, p, b)| p.starts_with(path) || b["metadata"]["name"] == "pod-0")
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    let want = [
        ("POST", "/api/v1/namespaces/scen-ns-0/pods"),
        ("POST", "/api/v1/namespaces/scen-ns-0/pods/pod-0/binding"),
        ("GET", path),
        ("PUT", "/api/v1/namespaces/scen-ns-0/pods/pod-0/status"),
        ("GET", path),
        ("PUT", "/api/v1/namespaces/scen-ns-0/pods/pod-0/status"),
        ("PUT", "/api/v1/namespaces/scen-ns-0/pods/pod-0/status"),
        ("DELETE", path),
        ("PATCH", path),
    ];
    assert_eq!(mine, want);
    let create = &seen
        .iter()
        .find(|(m, p, _)| m == "POST" && p.ends_with("/pods"))
        .unwrap()
        .2;
    assert!(
        create.get("status").is_none(),
        "status goes through its subresource"
    );
    assert_eq!(
        create["metadata"]["finalizers"],
        json!(["scen.dev/lifecycle"])
    );
    let bind = &seen
        .iter()
        .find(|(_, p, _)| p.ends_with("pod-0/binding"))
        .unwrap()
        .2;
    assert_eq!(bind["kind"], "Binding");
    assert!(bind["target"]["name"]
        .as_str()
        .unwrap()
        .starts_with("scen-node-"));
    let run = seen
        .iter()
        .rfind(|(m, p, _)| m == "PUT" && p.starts_with(path))
        .unwrap();
    assert_eq!(run.2["status"]["phase"], "Running");
    assert!(
        run.2["metadata"]["resourceVersion"].is_string(),
        "a compare-and-swap"
    );
}

#[tokio::test]
async fn vmis_go_through_scheduling_scheduled_and_running_and_are_counted_at_the_end() {
    let (rec, seen) = lifecycle(json!({
        "kind": "vmi", "count": 2, "nodes": 3, "namespaces": 1,
        "phases": ["create", "schedule", "run"],
    }))
    .await;
    assert_eq!(rec["remaining"], 2, "left running, found by a list");
    let base = "/apis/kubevirt.io/v1/namespaces/scen-ns-0/virtualmachineinstances";
    let phases: Vec<&str> = seen
        .iter()
        .filter(|(m, p, b)| {
            m == "PUT" && p == &format!("{base}/vmi-1/status") && b["status"]["phase"].is_string()
        })
        .map(|(_, _, b)| b["status"]["phase"].as_str().unwrap())
        .collect();
    // The first PUT the mock saw was answered 409 (whichever VMI it was): one phase may repeat.
    let mut dedup = phases.clone();
    dedup.dedup();
    assert_eq!(dedup, ["Scheduling", "Scheduled", "Running"], "{phases:?}");
    let scheduled = seen
        .iter()
        .find(|(_, p, b)| {
            p == &format!("{base}/vmi-1/status") && b["status"]["phase"] == "Scheduled"
        })
        .unwrap();
    assert!(scheduled.2["status"]["nodeName"]
        .as_str()
        .unwrap()
        .starts_with("scen-node-"));
    assert!(
        seen.iter().any(|(m, p, _)| m == "GET" && p == base),
        "the list at the end"
    );
}

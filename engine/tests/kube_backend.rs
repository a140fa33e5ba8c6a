//! `cluster::simulate` with `backend: "kube"`, request by request: a `tower-test` mock service
//! stands in for kube-apiserver (as kube-rs tests itself) where the exact requests matter — scen
//! setting status and leases itself without KWOK, cleanup keeping what existed, heartbeats. The
//! real thing (the embedded control plane) is in `control_plane.rs`, the faults in
//! `kube_faults.rs`.

mod common;

use common::{reply, status, Incoming};
use http::{Request, Response};
use kube::client::Body;
use scen_engine::actions::cluster::{
    apiserver, heartbeat_through, simulate_through, HeartbeatOptions, SimulateOptions, Written,
};
use serde_json::{json, Value};
use tower_test::mock;

/// One request the mock API server saw.
type Seen = Incoming;

/// How the mock answers.
#[derive(Clone, Copy)]
struct Server {
    /// The kwok-controller deployment exists.
    kwok: bool,
    /// Pod creation fails with 422 Invalid.
    reject_pods: bool,
    /// Node `scen-node-1` exists already (someone else's): its create is 409.
    existing_node: bool,
}

/// Serves requests until the client is dropped; returns what it saw.
async fn serve(
    mut handle: mock::Handle<Request<Body>, Response<Body>>,
    server: Server,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some((req, send)) = common::next(&mut handle).await {
        let Incoming {
            method,
            path,
            query,
            body,
            ..
        } = req.clone();
        let (code, answer) = match (method.as_str(), path.as_str()) {
            ("GET", "/apis/apps/v1/namespaces/kube-system/deployments/kwok-controller") => {
                if server.kwok {
                    (
                        200,
                        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                                  "metadata": { "name": "kwok-controller", "namespace": "kube-system" } }),
                    )
                } else {
                    (
                        404,
                        status(
                            404,
                            "NotFound",
                            "deployments.apps \"kwok-controller\" not found",
                        ),
                    )
                }
            }
            ("POST", "/api/v1/namespaces") if body["metadata"]["name"] == "kube-node-lease" => (
                409,
                status(
                    409,
                    "AlreadyExists",
                    "namespaces \"kube-node-lease\" already exists",
                ),
            ),
            ("POST", "/api/v1/nodes")
                if server.existing_node && body["metadata"]["name"] == "scen-node-1" =>
            {
                (
                    409,
                    status(409, "AlreadyExists", "nodes \"scen-node-1\" already exists"),
                )
            }
            ("POST", p) if p.ends_with("/pods") && server.reject_pods => (
                422,
                status(
                    422,
                    "Invalid",
                    "Pod \"x\" is invalid: spec.containers: Required value",
                ),
            ),
            ("DELETE", _) => {
                let name = path.rsplit('/').next().unwrap().to_string();
                (
                    200,
                    json!({ "apiVersion": "v1", "kind": "Object", "metadata": { "name": name } }),
                )
            }
            ("POST", _) => {
                let mut created = body.clone();
                created["metadata"]["uid"] = json!("00000000-0000-4000-8000-000000000000");
                created["metadata"]["resourceVersion"] = json!("7");
                (201, created)
            }
            ("PATCH", _) | ("GET", _) if !path.ends_with('s') || path.ends_with("/status") => {
                let name = path
                    .trim_end_matches("/status")
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string();
                (
                    200,
                    json!({ "apiVersion": "v1", "kind": "Object", "metadata": { "name": name } }),
                )
            }
            ("GET", _) => {
                // Lists: the cluster-wide pod list comes in two pages.
                let first_page = path == "/api/v1/pods" && !query.contains("continue=");
                let cont = if first_page { "page-2" } else { "" };
                (
                    200,
                    json!({ "apiVersion": "v1", "kind": "List",
                              "metadata": { "resourceVersion": "9", "continue": cont },
                              "items": [{ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" } }] }),
                )
            }
            _ => (405, status(405, "MethodNotAllowed", "unexpected request")),
        };
        seen.push(req);
        reply(send, code, &answer);
    }
    seen
}

/// What to do after the simulation, with the same client.
enum Then {
    Nothing,
    Cleanup,
    Heartbeat(Value),
}

type Outcome = Result<Value, scen_engine::actions::Error>;

/// Runs a kube-backend simulation of 2 nodes and 3 pods against the mock.
async fn simulate(server: Server, extra: Value) -> (Outcome, Vec<Seen>) {
    let (r, _, seen) = simulate_then(server, extra, Then::Nothing).await;
    (r, seen)
}

/// `simulate`, then `then` with the same client: both results and every request.
async fn simulate_then(server: Server, extra: Value, then: Then) -> (Outcome, Outcome, Vec<Seen>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let served = tokio::spawn(serve(handle, server));
    let client = kube::Client::new(service, "default");
    let mut o = json!({ "backend": "kube", "nodes": 2, "pods": 3, "namespaces": 1, "node_images": 2, "clients": 2 });
    o.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let opts: SimulateOptions = serde_json::from_value(o).unwrap();
    let r = simulate_through(client, "https://mock:6443", &opts, Default::default()).await;
    let after = match (&r, then) {
        (Ok((_, written)), Then::Cleanup) => cleanup(written).await,
        (Ok((_, written)), Then::Heartbeat(o)) => {
            let o: HeartbeatOptions = serde_json::from_value(o).unwrap();
            heartbeat_through(written, &o, Default::default())
                .await
                .map(|r| serde_json::to_value(r).unwrap())
        }
        _ => Ok(Value::Null),
    };
    let r = r.map(|(r, _)| serde_json::to_value(r).unwrap());
    (r, after, served.await.unwrap())
}

async fn cleanup(w: &Written) -> Result<Value, scen_engine::actions::Error> {
    let (deleted, kept) =
        apiserver::cleanup(w.kube.as_ref().unwrap(), &w.options, &w.shape).await?;
    Ok(json!({ "deleted": deleted, "kept": kept }))
}

fn requests<'a>(seen: &'a [Seen], method: &str, path: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.method == method && s.path == path)
        .collect()
}

#[tokio::test]
async fn without_kwok_scen_creates_fake_nodes_leases_and_pods_and_makes_them_ready() {
    let (r, seen) = simulate(
        Server {
            kwok: false,
            reject_pods: false,
            existing_node: false,
        },
        json!({}),
    )
    .await;
    let rec = r.unwrap();

    // Namespaces first (kube-node-lease already exists: 409 counts as existing, not an error).
    assert_eq!(
        seen[0].path,
        "/apis/apps/v1/namespaces/kube-system/deployments/kwok-controller"
    );
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].path, "/api/v1/namespaces");
    assert_eq!(rec["existing"], 1);
    assert_eq!(rec["kwok_controller"], false);

    // Fake nodes as KWOK documents them, with no server-owned fields and no status on create.
    let nodes = requests(&seen, "POST", "/api/v1/nodes");
    assert_eq!(nodes.len(), 2);
    let node = &nodes[0].body;
    assert_eq!(node["kind"], "Node");
    assert_eq!(
        node["metadata"]["annotations"]["kwok.x-k8s.io/node"],
        "fake"
    );
    assert_eq!(node["spec"]["taints"][0]["key"], "kwok.x-k8s.io/node");
    assert_eq!(node["spec"]["taints"][0]["effect"], "NoSchedule");
    assert!(
        node["metadata"].get("uid").is_none()
            && node["metadata"].get("creationTimestamp").is_none()
    );
    assert!(node.get("status").is_none());
    assert!(nodes
        .iter()
        .any(|n| n.body["metadata"]["name"] == "scen-node-1"));

    // With no KWOK controller, scen sets node status (Ready) through the status subresource.
    let patch = &requests(&seen, "PATCH", "/api/v1/nodes/scen-node-0/status")[0];
    assert_eq!(patch.content_type, "application/merge-patch+json");
    let ready = patch.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(patch.body["status"]["capacity"]["cpu"], "32");

    // ... creates the node leases ...
    let leases = requests(
        &seen,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
    );
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0].body["spec"]["leaseDurationSeconds"], 40);
    assert!(
        leases[0].body["metadata"].get("ownerReferences").is_none(),
        "the garbage collector would delete it"
    );

    // ... and pods placed on the fake nodes, tolerating KWOK's taint, then marked Running.
    let pods = requests(&seen, "POST", "/api/v1/namespaces/scen-ns-0/pods");
    assert_eq!(pods.len(), 3);
    let pod = &pods[0].body;
    assert!(pod["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .starts_with("scen-node-"));
    assert!(pod["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "kwok.x-k8s.io/node"));
    let running: Vec<_> = seen
        .iter()
        .filter(|s| s.method == "PATCH" && s.path.starts_with("/api/v1/namespaces/scen-ns-0/pods/"))
        .collect();
    assert_eq!(running.len(), 3);
    assert!(running
        .iter()
        .all(|p| p.path.ends_with("/status") && p.body["status"]["phase"] == "Running"));
    // Pods only after every node exists.
    let last_node = seen
        .iter()
        .rposition(|s| s.path == "/api/v1/nodes" && s.method == "POST")
        .unwrap();
    let first_pod = seen
        .iter()
        .position(|s| s.path.ends_with("/pods") && s.method == "POST")
        .unwrap();
    assert!(last_node < first_pod);

    // ClusterLoader2-style reads: single GETs, namespaced and cluster-wide lists in pages of 500.
    assert!(!requests(&seen, "GET", "/api/v1/nodes/scen-node-0").is_empty());
    let ns_list = requests(&seen, "GET", "/api/v1/namespaces/scen-ns-0/pods");
    assert_eq!(ns_list.len(), 1);
    assert!(ns_list[0].query.contains("limit=500"));
    let all_pods = requests(&seen, "GET", "/api/v1/pods");
    assert_eq!(
        all_pods.len(),
        2,
        "the second page follows the continue token"
    );
    assert!(all_pods[1].query.contains("continue=page-2"));

    // The record: objects, per-verb latency and the SLO classes.
    assert_eq!(rec["backend"], "kube");
    assert_eq!(rec["root"], "https://mock:6443");
    assert_eq!(rec["objects"], 1 + 2 + 2 + 3);
    assert_eq!(rec["by_kind"]["pod"]["count"], 3);
    assert_eq!(rec["api"]["pods"]["create"]["calls"], 3);
    assert_eq!(rec["api"]["pods"]["patch_status"]["calls"], 3);
    assert_eq!(rec["api"]["nodes"]["patch_status"]["calls"], 2);
    assert_eq!(rec["api"]["pods"]["list"]["calls"], 1);
    assert_eq!(rec["api"]["pods"]["list_all"]["calls"], 2);
    assert_eq!(rec["api"]["nodes"]["list_all"]["calls"], 1);
    assert_eq!(
        rec["api"]["namespaces"]["create"]["errors"], 0,
        "409 is an answer"
    );
    for class in [
        "single_object_p99",
        "namespaced_list_p99",
        "cluster_list_p99",
    ] {
        assert!(rec["api_slo"][class].as_f64().unwrap() > 0.0, "{class}");
    }
}

#[tokio::test]
async fn with_a_kwok_controller_scen_leaves_leases_and_status_to_it() {
    let (r, seen) = simulate(
        Server {
            kwok: true,
            reject_pods: false,
            existing_node: false,
        },
        json!({ "probe": false }),
    )
    .await;
    let rec = r.unwrap();
    assert_eq!(rec["kwok_controller"], true);
    assert!(seen.iter().all(|s| s.method != "PATCH"));
    assert!(seen.iter().all(|s| !s.path.contains("/leases")));
    assert_eq!(
        requests(&seen, "POST", "/api/v1/namespaces/scen-ns-0/pods").len(),
        3
    );
    assert_eq!(rec["objects"], 1 + 2 + 3);
    // probe: false: no reads after the creates.
    assert_eq!(
        seen.iter().filter(|s| s.method == "GET").count(),
        1,
        "only the KWOK lookup"
    );
}

#[tokio::test]
async fn a_rejected_object_fails_the_step_naming_it_as_the_scenarios_fault() {
    let (r, _) = simulate(
        Server {
            kwok: true,
            reject_pods: true,
            existing_node: false,
        },
        json!({ "kwok": "present" }),
    )
    .await;
    let e = r.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("create pods scen-ns-0/pod-"), "{text}");
    assert!(text.contains("spec.containers: Required value"), "{text}");
    assert_eq!(
        e.kind(),
        scen_engine::report::ErrorKind::Script,
        "a 4xx is the scenario's doing (exit 2), not the cluster's"
    );
}

#[tokio::test]
async fn deployments_are_refused_with_the_reason() {
    let (r, seen) = simulate(
        Server {
            kwok: true,
            reject_pods: false,
            existing_node: false,
        },
        json!({ "deployments": 1 }),
    )
    .await;
    let text = r.unwrap_err().to_string();
    assert!(text.contains("deployments: 0"), "{text}");
    assert!(seen.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn cleanup_deletes_what_the_simulation_created_through_the_api_and_keeps_what_existed() {
    let (r, after, seen) = simulate_then(
        Server {
            kwok: false,
            reject_pods: false,
            existing_node: false,
        },
        json!({ "probe": false }),
        Then::Cleanup,
    )
    .await;
    r.unwrap();
    let counts = after.unwrap();
    // 3 pods, 2 leases, 2 nodes, namespace scen-ns-0; kube-node-lease existed before (409): kept.
    assert_eq!(counts, json!({ "deleted": 8, "kept": 1 }));
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 8);
    assert!(deletes
        .iter()
        .all(|d| d.path != "/api/v1/namespaces/kube-node-lease"));
    let at = |p: &str| deletes.iter().position(|d| d.path.starts_with(p)).unwrap();
    assert!(
        at("/api/v1/namespaces/scen-ns-0/pods/") < at("/api/v1/nodes/"),
        "pods before their nodes"
    );
    assert!(
        at("/api/v1/nodes/")
            < deletes
                .iter()
                .position(|d| d.path == "/api/v1/namespaces/scen-ns-0")
                .unwrap(),
        "namespaces last"
    );
    assert_eq!(
        deletes
            .iter()
            .filter(|d| d
                .path
                .starts_with("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"))
            .count(),
        2
    );
}

#[tokio::test]
async fn heartbeats_through_the_api_renew_leases_post_node_status_and_churn_pods() {
    let hb = json!({ "duration": "1s", "lease_interval": "500ms", "status_interval": "1s",
                     "pod_churn": 50, "churn_interval": "1s" });
    let (r, after, seen) = simulate_then(
        Server {
            kwok: false,
            reject_pods: false,
            existing_node: false,
        },
        json!({ "probe": false }),
        Then::Heartbeat(hb),
    )
    .await;
    r.unwrap();
    let rec = after.unwrap();
    let lease_patches: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            s.method == "PATCH"
                && s.path
                    .starts_with("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/")
        })
        .collect();
    // 2 nodes every 500 ms for 1 s.
    assert_eq!(lease_patches.len(), 4);
    assert_eq!(
        lease_patches[0].content_type,
        "application/merge-patch+json"
    );
    assert!(lease_patches[0].body["spec"]["renewTime"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(rec["leases"]["ok"], 4);
    let status: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            s.method == "PATCH"
                && s.path.starts_with("/api/v1/nodes/")
                && s.content_type.contains("strategic")
        })
        .collect();
    assert_eq!(status.len(), 2, "2 nodes once a second");
    assert_eq!(status[0].body["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(rec["node_status"]["ok"], 2);
    // 50% of 3 pods a second: 2 pods deleted and created again, then marked Running.
    let deleted: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deleted.len(), 2);
    assert!(deleted[0]
        .path
        .starts_with("/api/v1/namespaces/scen-ns-0/pods/"));
    assert_eq!(deleted[0].query, "", "grace period 0 goes in the body");
    assert_eq!(deleted[0].body["gracePeriodSeconds"], 0);
    assert_eq!(rec["pod_churn"]["ok"], 2);
    assert_eq!(rec["errors_by_code"], json!({}));
}

#[tokio::test]
async fn an_object_someone_else_made_at_a_wanted_name_fails_the_step_unless_adopted_and_is_never_deleted(
) {
    let server = Server {
        kwok: false,
        reject_pods: false,
        existing_node: true,
    };
    let (r, seen) = simulate(server, json!({ "probe": false })).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), scen_engine::report::ErrorKind::Script, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("nodes/scen-node-1") && text.contains("adopt_existing: true"),
        "{text}"
    );
    // The namespace kube-node-lease existed too: a namespace is a container, not a conflict.
    assert!(!text.contains("kube-node-lease"), "{text}");
    assert!(
        seen.iter()
            .all(|s| !s.path.starts_with("/api/v1/nodes/scen-node-1")),
        "its status is never set"
    );

    let (r, after, seen) = simulate_then(
        server,
        json!({ "probe": false, "adopt_existing": true }),
        Then::Cleanup,
    )
    .await;
    let rec = r.unwrap();
    assert_eq!(rec["existing"], 2, "kube-node-lease and the adopted node");
    assert_eq!(after.unwrap(), json!({ "deleted": 7, "kept": 2 }));
    // Its lease is this run's (created, then deleted); the node itself is never written after
    // the refused create.
    assert!(seen
        .iter()
        .all(|s| !s.path.starts_with("/api/v1/nodes/scen-node-1")));
}

//! What a real API server will not do on demand — answer 5xx, throttle with 429 and Retry-After,
//! or not answer at all — through a `tower-test` mock (as kube-rs tests itself), each with the
//! exit code it must give: the cluster's failure, infrastructure, exit 3. Everything else about
//! the kube backend is tested against the real embedded control plane (`control_plane.rs`).

mod common;

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use scen_engine::actions::cluster::{
    lifecycle_through, simulate_through, LifecycleOptions, SimulateOptions,
};
use scen_engine::report::ErrorKind;
use serde_json::json;
use tower_test::mock;

/// How the mock answers every request.
#[derive(Clone, Copy)]
enum Answer {
    /// This code with a Status body (and `Retry-After: 1` for 429).
    Code(u16),
    /// Never: the request hangs until the client gives up.
    Hang,
}

async fn serve(mut handle: mock::Handle<Request<Body>, Response<Body>>, answer: Answer) -> usize {
    let mut n = 0;
    let mut held = Vec::new();
    while let Some((_req, send)) = common::next(&mut handle).await {
        n += 1;
        match answer {
            Answer::Code(code) => {
                let reason = match code {
                    429 => "TooManyRequests",
                    503 => "ServiceUnavailable",
                    _ => "InternalError",
                };
                let mut resp = Response::builder()
                    .status(code)
                    .header("content-type", "application/json");
                if code == 429 {
                    resp = resp.header("retry-after", "1");
                }
                let body =
                    serde_json::to_vec(&common::status(code, reason, "the mock says no")).unwrap();
                send.send_response(resp.body(Body::from(body)).unwrap());
            }
            Answer::Hang => held.push(send),
        }
    }
    n
}

fn client(answer: Answer) -> (kube::Client, tokio::task::JoinHandle<usize>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (
        kube::Client::new(service, "default"),
        tokio::spawn(serve(handle, answer)),
    )
}

async fn simulate_kind(answer: Answer) -> ErrorKind {
    let (c, served) = client(answer);
    let opts: SimulateOptions = serde_json::from_value(json!({
        "backend": "kube", "nodes": 1, "pods": 0, "deployments": 0, "kwok": "absent",
        "services": 0, "configmaps": 0, "secrets": 0, "events": 0,
    }))
    .unwrap();
    let e = simulate_through(c, "https://mock", &opts, Default::default())
        .await
        .expect_err("every request fails");
    drop(served);
    e.kind()
}

#[tokio::test]
async fn an_api_server_answering_503_500_or_429_is_an_infrastructure_failure() {
    for code in [503, 500, 429] {
        let kind = simulate_kind(Answer::Code(code)).await;
        assert_eq!(kind, ErrorKind::Infrastructure, "HTTP {code}");
        assert_eq!(kind.outcome().exit_code(), 3, "HTTP {code}");
    }
    // A 422 (the object is invalid) stays the scenario's fault: exit 2.
    let kind = simulate_kind(Answer::Code(422)).await;
    assert_eq!(kind.outcome().exit_code(), 2);
}

#[tokio::test]
async fn a_lifecycle_whose_api_server_never_answers_times_out_as_infrastructure() {
    let (c, _served) = client(Answer::Hang);
    let opts: LifecycleOptions = serde_json::from_value(json!({
        "backend": "kube", "kind": "pod", "count": 2, "nodes": 1,
        "phases": ["create"], "request_timeout": "200ms",
    }))
    .unwrap();
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        lifecycle_through(c, &opts, Default::default()),
    )
    .await
    .expect("the lifecycle's own request timeout ends it")
    .expect_err("nothing answered");
    assert_eq!(e.kind().outcome().exit_code(), 3, "{e}");
    let (c, _served) = client(Answer::Code(503));
    let e = lifecycle_through(c, &opts, Default::default())
        .await
        .expect_err("every create failed");
    assert_eq!(e.kind().outcome().exit_code(), 3, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("503") || text.contains("ServiceUnavailable"),
        "{text}"
    );
}

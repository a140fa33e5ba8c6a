//! The plumbing of the mock Kubernetes API servers the kube-backend tests answer with
//! (`tower-test`: no API server can be installed on these machines): reading a request, a
//! `Status` body, sending a JSON reply.

#![allow(dead_code)]

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};
use tower_test::mock;

/// One request as the mock reads it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// `GET`, `POST`...
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The query string (`""` when none).
    pub query: String,
    /// The `content-type` header (`""` when none).
    pub content_type: String,
    /// The JSON body (`null` when empty or not JSON).
    pub body: Value,
}

/// The next request, with where to send its response; `None` once the client is dropped.
pub async fn next(
    handle: &mut mock::Handle<Request<Body>, Response<Body>>,
) -> Option<(Incoming, mock::SendResponse<Response<Body>>)> {
    let (req, send) = handle.next_request().await?;
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = req.into_body().collect_bytes().await.unwrap();
    // A body that is there must be JSON: a request kube-rs could not have sent is a failure.
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Some((
        Incoming {
            method,
            path,
            query,
            content_type,
            body,
        },
        send,
    ))
}

/// A Kubernetes `Status` failure body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code })
}

/// Answers with `code` and a JSON body.
pub fn reply(send: mock::SendResponse<Response<Body>>, code: u16, answer: &Value) {
    let response = Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(answer).unwrap()))
        .unwrap();
    send.send_response(response);
}

//! `cluster::lifecycle` through a real API server (`backend: "kube"`, kube-rs): the object is
//! created with a POST, bound to its node as kube-scheduler does (pods: the `binding`
//! subresource), its status replaced through the `status` subresource with the resourceVersion it
//! was read at (a 409 Conflict is read again and retried, and counted), and deleted with a DELETE
//! (with `finalizer: true`, a finalizer is set at creation and removed after the DELETE, as a
//! controller does, which is what lets the API server remove the object).

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

use crate::actions::{Error, Result};

/// The finalizer scen sets with `finalizer: true`.
pub const FINALIZER: &str = "scen.dev/lifecycle";

/// The API of `body`'s kind, `plural` resource, in its namespace.
pub fn api(client: &kube::Client, body: &Value, plural: &str) -> Api<DynamicObject> {
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let kind = body["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match body["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn kube_err(op: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { op, source }
}

fn name_of(body: &Value) -> String {
    body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Creates `body` (without status and server-set metadata; with scen's finalizer when asked, and
/// only then any finalizer); its resourceVersion.
pub async fn create(api: &Api<DynamicObject>, body: &Value, finalizer: bool) -> Result<String> {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = b["metadata"].as_object_mut() {
        for k in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
            meta.remove(k);
        }
        if finalizer {
            meta.insert("finalizers".into(), json!([FINALIZER]));
        } else {
            meta.remove("finalizers");
        }
    }
    let obj: DynamicObject =
        serde_json::from_value(b).map_err(|e| Error::Options(e.to_string()))?;
    let name = name_of(body);
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .map_err(kube_err(format!("create {name}")))?;
    Ok(created.metadata.resource_version.unwrap_or_default())
}

/// Binds a pod to `node` as kube-scheduler does.
pub async fn bind(api: &Api<DynamicObject>, body: &Value, node: &str) -> Result<()> {
    let name = name_of(body);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": { "name": name, "namespace": body["metadata"]["namespace"] },
        "target": { "apiVersion": "v1", "kind": "Node", "name": node },
    });
    api.create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding)
        .await
        .map_err(kube_err(format!("bind {name} to {node}")))?;
    Ok(())
}

/// Replaces the status with `body`'s at resourceVersion `rv`; on a conflict reads the object again
/// and retries (three times at most). The new resourceVersion and the conflicts met.
pub async fn status(api: &Api<DynamicObject>, body: &Value, rv: &str) -> Result<(String, u64)> {
    let name = name_of(body);
    let mut rv = rv.to_string();
    let mut conflicts = 0;
    for _ in 0..3 {
        let mut b = body.clone();
        // The server's uid and creation time, not the template's: a PUT naming another uid is a
        // failed precondition, which the API server answers with 409 Conflict every time.
        if let Some(meta) = b["metadata"].as_object_mut() {
            meta.remove("uid");
            meta.remove("creationTimestamp");
        }
        b["metadata"]["resourceVersion"] = json!(rv);
        let obj: DynamicObject =
            serde_json::from_value(b).map_err(|e| Error::Options(e.to_string()))?;
        match api
            .replace_status(&name, &PostParams::default(), &obj)
            .await
        {
            Ok(o) => return Ok((o.metadata.resource_version.unwrap_or_default(), conflicts)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                conflicts += 1;
                let now = api
                    .get(&name)
                    .await
                    .map_err(kube_err(format!("read {name} after a conflict")))?;
                rv = now.metadata.resource_version.unwrap_or_default();
            }
            Err(e) => return Err(kube_err(format!("update the status of {name}"))(e)),
        }
    }
    Err(Error::Options(format!(
        "{name}: three conflicts in a row updating its status"
    )))
}

/// Deletes the object; with scen's finalizer, removes it after the DELETE set
/// `deletionTimestamp`, which lets the API server remove the object.
pub async fn delete(api: &Api<DynamicObject>, body: &Value, finalizer: bool) -> Result<()> {
    let name = name_of(body);
    api.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .map_err(kube_err(format!("delete {name}")))?;
    if finalizer {
        let patch = json!({ "metadata": { "finalizers": null } });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_err(format!("remove the finalizer of {name}"))(e)),
        }
    }
    Ok(())
}

/// Objects named `<stem>-<i>` in the namespace `api` lists.
pub async fn count(api: &Api<DynamicObject>, stem: &str) -> Result<u64> {
    let prefix = format!("{stem}-");
    let mut n = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&lp)
            .await
            .map_err(kube_err(format!("list {stem} objects")))?;
        n += page
            .items
            .iter()
            .filter(|o| {
                o.metadata
                    .name
                    .as_deref()
                    .is_some_and(|x| x.starts_with(&prefix))
            })
            .count() as u64;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(n),
        }
    }
}

//! What is stored under a storage root, per resource type (the lab's `etcdctl get --prefix
//! --keys-only | uniq -c`, with sizes and revisions), and removing exactly what this run simulated.

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{effective_root, Error, Result};
use crate::target::Target;

/// Options of `cluster::inventory`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryOptions {
    /// The storage root (default as `simulate`: `/registry`, under the run prefix on an etcd scen
    /// did not start unless `--allow-registry-writes`). Reading never writes.
    pub root: Option<String>,
}

/// One resource type's storage.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ResourceRecord {
    /// Keys.
    pub keys: u64,
    /// Bytes of the current values.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes: u64,
    /// Revisions of these keys since they were created (etcd's per-key `version`, summed).
    pub revisions: u64,
    /// Estimated bytes including uncompacted history: each revision as large as the current value.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes_with_history: u64,
}

/// The record of `cluster::inventory`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct InventoryRecord {
    /// The root read.
    pub root: String,
    /// Keys in all.
    pub keys: u64,
    /// Value bytes in all.
    #[schemars(with = "crate::measure::Bytes")]
    pub bytes: u64,
    /// By resource type: `pods`, `minions`, `leases`, `services/specs`, `<group>/<plural>`...
    pub resources: BTreeMap<String, ResourceRecord>,
}

/// The resource type of a key relative to the root: its first segment, two for `services/...`
/// and for custom resources (`<group>/<plural>`: the group has a dot).
fn resource_of(rel: &str) -> String {
    let mut parts = rel.splitn(3, '/');
    let first = parts.next().unwrap_or("");
    match (first, parts.next()) {
        ("services", Some(second)) => format!("services/{second}"),
        (f, Some(second)) if f.contains('.') => format!("{f}/{second}"),
        (f, _) => f.to_string(),
    }
}

/// Reads every key under the root, a page at a time, and sums them by resource type.
pub async fn inventory(target: &Target, opts: &InventoryOptions) -> Result<InventoryRecord> {
    let root = effective_root(target, opts.root.as_deref());
    let prefix = format!("{root}/");
    let mut end = prefix.clone().into_bytes();
    *end.last_mut().expect("non-empty") += 1;
    let mut kv = crate::target::kv(&target.client);
    let mut from = prefix.clone().into_bytes();
    let mut rec = InventoryRecord {
        root: root.clone(),
        keys: 0,
        bytes: 0,
        resources: BTreeMap::new(),
    };
    let mut revision = 0;
    loop {
        let mut o = GetOptions::new().with_range(end.clone()).with_limit(1000);
        if revision > 0 {
            o = o.with_revision(revision); // one consistent view across pages
        }
        let r = kv
            .get(from.clone(), Some(o))
            .await
            .map_err(|source| Error::Etcd {
                op: "range",
                source,
            })?;
        if revision == 0 {
            revision = r.header().map_or(0, |h| h.revision());
        }
        for kv in r.kvs() {
            let rel = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
            let e = rec.resources.entry(resource_of(&rel)).or_default();
            let size = kv.value().len() as u64;
            e.keys += 1;
            e.bytes += size;
            e.revisions += kv.version() as u64;
            e.bytes_with_history += size * kv.version() as u64;
            rec.keys += 1;
            rec.bytes += size;
        }
        match (r.more(), r.kvs().last()) {
            (true, Some(last)) => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    Ok(rec)
}

/// The record of `cluster::cleanup`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CleanupRecord {
    /// Keys this run created and now deleted.
    pub deleted: u64,
    /// Keys of the simulated names that this run did not create (left alone).
    pub kept: u64,
}

/// Deletes every key this run's `simulate` calls created — a key whose create revision falls in
/// the revisions they wrote at — and nothing else, however its name looks.
pub async fn cleanup(target: &Target) -> Result<CleanupRecord> {
    let written: Vec<super::Written> =
        std::mem::take(&mut *super::simulated(target).lock().expect("ledger lock"));
    super::places::cleaned(&super::places_of(target));
    let mut kv = crate::target::kv(&target.client);
    let mut rec = CleanupRecord {
        deleted: 0,
        kept: 0,
    };
    for w in &written {
        let (deleted, kept) = remove(&mut kv, w).await?;
        rec.deleted += deleted;
        rec.kept += kept;
    }
    Ok(rec)
}

/// Deletes what one simulation created (a key whose create revision falls in its revisions, an
/// object it created through the API) and nothing else: (deleted, kept).
pub(super) async fn remove(
    kv: &mut etcd_client::KvClient,
    w: &super::Written,
) -> Result<(u64, u64)> {
    if let Some(created) = &w.kube {
        return super::apiserver::cleanup(created, &w.options, &w.shape).await;
    }
    let (first, last) = w.revisions;
    let (mut deleted, mut kept) = (0, 0);
    if first == 0 {
        // It wrote nothing.
        return Ok((0, w.shape.total()));
    }
    for i in 0..w.shape.total() {
        let key = format!("{}/{}", w.root, w.shape.object(i).key);
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Greater, first - 1),
                Compare::create_revision(key.as_str(), CompareOp::Less, last + 1),
            ])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        let r = kv
            .txn(txn)
            .await
            .map_err(|source| Error::Etcd { op: "txn", source })?;
        if r.succeeded() {
            deleted += 1;
        } else {
            kept += 1;
        }
    }
    Ok((deleted, kept))
}

#[cfg(test)]
mod tests {
    #[test]
    fn resource_types_follow_the_apiserver_layout() {
        use super::resource_of;
        assert_eq!(resource_of("pods/ns/p"), "pods");
        assert_eq!(resource_of("minions/n"), "minions");
        assert_eq!(resource_of("services/specs/ns/s"), "services/specs");
        assert_eq!(
            resource_of("wgpolicyk8s.io/policyreports/ns/r"),
            "wgpolicyk8s.io/policyreports"
        );
    }
}

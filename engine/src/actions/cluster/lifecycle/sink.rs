//! Where `cluster::lifecycle` writes: straight into etcd (create-only, then compare-and-swap on
//! the object's revision, as kube-apiserver does) or through an API server (`kube.rs`).

use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnOpResponse};
use serde_json::Value;

use super::*;
use crate::actions::{Error, Result};

/// What the objects' tasks share.
/// Where the writes go.
pub(super) enum Sink {
    /// Straight into etcd.
    Etcd(KvClient),
    /// Through an API server.
    Kube(kube::Client),
}

/// What an object was last written at: its etcd mod revision, or its resourceVersion.
pub(super) enum Ver {
    Etcd(i64),
    Kube(String),
}

/// The stored bytes of `v`.
pub(super) fn encode(sh: &Shared, v: &Value) -> Result<Vec<u8>> {
    let enc = if sh.layout.builtin.is_some() {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    Ok(enc.encode(v, &sh.layout.template)?.0)
}

/// What one write did: its new revision, conflicts met on the way.
pub(super) struct Wrote {
    pub(super) revision: i64,
    pub(super) conflicts: u64,
}

/// A write within the timeout and a permit: create-only, compare-and-swap put, or delete.
pub(super) async fn write(
    sh: &Shared,
    key: &str,
    value: Option<Vec<u8>>,
    rev: i64,
) -> Result<Wrote> {
    let _permit = sh.permits.acquire().await.expect("never closed");
    let Sink::Etcd(kv) = &sh.sink else {
        unreachable!("etcd writes go to etcd")
    };
    let mut kv = kv.clone();
    let mut known = rev;
    let mut conflicts = 0;
    let go = async {
        for _ in 0..3 {
            let op = match &value {
                Some(v) => TxnOp::put(key, v.clone(), None),
                None => TxnOp::delete(key, None),
            };
            let cmp = if rev == 0 {
                Compare::create_revision(key, CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key, CompareOp::Equal, known)
            };
            let txn = Txn::new()
                .when([cmp])
                .and_then([op])
                .or_else([TxnOp::get(key, None)]);
            let r = kv
                .txn(txn)
                .await
                .map_err(|source| Error::Etcd { op: "txn", source })?;
            if r.succeeded() {
                return Ok(Wrote {
                    revision: r.header().map_or(0, |h| h.revision()),
                    conflicts,
                });
            }
            conflicts += 1;
            let current = r.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| kv.mod_revision())),
                _ => None,
            });
            match (current.flatten(), rev) {
                (Some(c), r) if r != 0 => known = c,
                (Some(_), _) => {
                    return Err(Error::Options(format!(
                        "{key} exists already: objects of an earlier lifecycle with this name; give another `name`"
                    )))
                }
                (None, _) => {
                    return Err(Error::Options(format!(
                        "{key} is gone: something else deleted it"
                    )))
                }
            }
        }
        Err(Error::Options(format!(
            "{key}: three compare-and-swap conflicts in a row"
        )))
    };
    match tokio::time::timeout(sh.timeout, go).await {
        Ok(r) => r,
        Err(_) => Err(Error::Failed {
            kind: crate::exit::ErrorKind::RequestTimeout,
            message: format!("no answer in {:?} writing {key}", sh.timeout),
        }),
    }
}

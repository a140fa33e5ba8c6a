//! The `etcd::` namespace: bindings that decode arguments and call [`crate::actions::etcd`].

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnNamespace, FuncRegistration, Map, Module, NativeCallContext};

use super::bridge::{action, bytes_of, decode, options, refused, watch};
use super::State;
use crate::actions::etcd::{self as act, KeyOptions, PutManyOptions, RangeOptions};
use crate::actions::maintenance::{self as maint, CompactOptions, DefragOptions};
use crate::actions::stress::{self, StressOptions};

type R = Result<Dynamic, Box<rhai::EvalAltResult>>;

fn reg(name: &str, params: &[&str], doc: &str) -> FuncRegistration {
    FuncRegistration::new(name)
        .with_namespace(FnNamespace::Internal)
        .with_params_info(params)
        .with_comments([doc])
}

/// Registers `etcd::` as a static module.
pub(crate) fn register(engine: &mut Engine, state: &Arc<State>) {
    let mut m = Module::new();
    m.set_doc(
        "/// etcd client actions. Keys are relative to the run's prefix unless `absolute: true`.",
    );

    let s = state.clone();
    reg("put", &["key: &str", "value: Dynamic", "Map"], "/// Writes `value` (text or blob) at `key` under the run prefix. Returns `#{ key, revision, duration_ms }`.")
        .set_into_module(&mut m, move |ctx: NativeCallContext, key: &str, value: Dynamic| -> R {
            let v = bytes_of(&ctx, "etcd::put", &value)?;
            action(&s, &ctx, "etcd", |t| async move { act::put(&t, key, v, &KeyOptions::default()).await })
        });
    let s = state.clone();
    reg(
        "put",
        &["key: &str", "value: Dynamic", "options: Map", "Map"],
        "/// `put` with options: `absolute` (only on an etcd scen started), `timeout` (`\"2s\"`: fail instead of waiting for a quorum that is gone).",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str, value: Dynamic, o: Map| -> R {
            let o: KeyOptions = options(&ctx, "etcd::put", Dynamic::from_map(o))?;
            let v = bytes_of(&ctx, "etcd::put", &value)?;
            action(&s, &ctx, "etcd", |t| async move {
                act::put(&t, key, v, &o).await
            })
        },
    );

    let s = state.clone();
    reg("get", &["key: &str", "Map"], "/// Reads one key. Returns `#{ key, found, value, value_size, create_revision, mod_revision, version, revision, duration_ms }`.")
        .set_into_module(&mut m, move |ctx: NativeCallContext, key: &str| -> R {
            action(&s, &ctx, "etcd", |t| async move { act::get(&t, key, &KeyOptions::default()).await })
        });
    let s = state.clone();
    reg(
        "get",
        &["key: &str", "options: Map", "Map"],
        "/// `get` with options: `absolute`, `serializable`.",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str, o: Map| -> R {
            let o: KeyOptions = options(&ctx, "etcd::get", Dynamic::from_map(o))?;
            action(
                &s,
                &ctx,
                "etcd",
                |t| async move { act::get(&t, key, &o).await },
            )
        },
    );

    let s = state.clone();
    reg("range", &["prefix: &str", "Map"], "/// Reads the keys under a prefix. Returns `#{ prefix, count, returned, more, value_bytes, keys, revision, duration_ms }`.")
        .set_into_module(&mut m, move |ctx: NativeCallContext, prefix: &str| -> R {
            action(&s, &ctx, "etcd", |t| async move { act::range(&t, prefix, &RangeOptions::default()).await })
        });
    let s = state.clone();
    reg("range", &["prefix: &str", "options: Map", "Map"], "/// `range` with options: `limit`, `count_only`, `keys_only`, `serializable`, `absolute`, `list` (keys to list in the record, default 100), `at_least` (fewer keys fail the step; unset: a range where this run's `cluster::` objects are must find one).")
        .set_into_module(&mut m, move |ctx: NativeCallContext, prefix: &str, o: Map| -> R {
            let o: RangeOptions = options(&ctx, "etcd::range", Dynamic::from_map(o))?;
            action(&s, &ctx, "etcd", |t| async move { act::range(&t, prefix, &o).await })
        });

    let s = state.clone();
    reg("delete", &["key: &str", "Map"], "/// Deletes a key under the run prefix. Returns `#{ key, deleted, revision, duration_ms }`.")
        .set_into_module(&mut m, move |ctx: NativeCallContext, key: &str| -> R {
            action(&s, &ctx, "etcd", |t| async move { act::delete(&t, key, &KeyOptions::default()).await })
        });
    let s = state.clone();
    reg(
        "delete",
        &["key: &str", "options: Map", "Map"],
        "/// `delete` with options: `prefix` (every key under it), `absolute`.",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str, o: Map| -> R {
            let o: KeyOptions = options(&ctx, "etcd::delete", Dynamic::from_map(o))?;
            action(&s, &ctx, "etcd", |t| async move {
                act::delete(&t, key, &o).await
            })
        },
    );

    let s = state.clone();
    reg(
        "put_many",
        &["options: Map", "Map"],
        "/// Writes `count` keys of `value_size` bytes (default 256) under `key_prefix` (default `\"keys/\"`)\n\
         /// with `clients` requests in flight (default 16). Returns `#{ count, ok, errors, error_messages,\n\
         /// bytes, duration_ms, throughput, latency: #{ count, min, mean, stddev, p50, p90, p99, p999, max } }`\n\
         /// (latencies in ms).",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
        let o: PutManyOptions = options(&ctx, "etcd::put_many", Dynamic::from_map(o))?;
        action(&s, &ctx, "etcd", |t| async move { act::put_many(&t, &o).await })
    });

    let s = state.clone();
    reg(
        "status",
        &["Map"],
        "/// Every member's status, as `etcdctl endpoint status --cluster`: `#{ member_count, reachable, has_leader,\n\
         /// leader, db_size, db_size_in_use, revision, raft_term, members: [#{ name, id, endpoint, reachable,\n\
         /// is_leader, is_learner, version, db_size, db_size_in_use, revision, raft_term, raft_index,\n\
         /// raft_applied_index, errors, duration_ms }] }`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> R { action(&s, &ctx, "etcd", |t| async move { act::status(&t).await }) });

    let s = state.clone();
    reg(
        "health",
        &["Map"],
        "/// Every member's health, as `etcdctl endpoint health --cluster` (a linearizable read per member),\n\
         /// plus alarms: `#{ healthy, healthy_members, alarms, members: [#{ endpoint, healthy, took_ms, error }] }`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> R { action(&s, &ctx, "etcd", |t| async move { act::health(&t).await }) });

    let s = state.clone();
    reg("alarms", &["Map"], "/// Active alarms (`etcdctl alarm list`): `#{ count, nospace, corrupt, alarms: [#{ member_id, alarm }] }`.")
        .set_into_module(&mut m, move |ctx: NativeCallContext| -> R { action(&s, &ctx, "etcd", |t| async move { act::alarms(&t).await }) });

    let s = state.clone();
    reg(
        "compact",
        &["Map"],
        "/// Compacts history to the current revision, waiting for it to apply (`etcdctl compact --physical`).\n\
         /// Returns `#{ revision, compacted_to, db_size_in_use_before, db_size_in_use_after, duration_ms }`.\n\
         /// On an etcd scen did not start it needs `--allow-maintenance`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
        action(&s, &ctx, "etcd", |t| async move { maint::compact(&t, &CompactOptions { physical: true, ..Default::default() }).await })
    });
    let s = state.clone();
    reg(
        "compact",
        &["options: Map", "Map"],
        "/// `compact` with options: `keep` (revisions to keep) or `revision`, and `physical` (default true).",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
        let o: CompactOptions = options(&ctx, "etcd::compact", Dynamic::from_map(o))?;
        action(&s, &ctx, "etcd", |t| async move { maint::compact(&t, &o).await })
    });

    let s = state.clone();
    reg(
        "defrag",
        &["Map"],
        "/// Defragments every member, one at a time, followers first and the leader last. Returns\n\
         /// `#{ members: [#{ name, endpoint, was_leader, db_size_before, db_size_after, in_use_before,\n\
         /// in_use_after, freed_bytes, duration_ms }], freed_bytes, db_size_before, db_size_after, duration_ms }`.\n\
         /// On an etcd scen did not start it needs `--allow-maintenance`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
        action(&s, &ctx, "etcd", |t| async move { maint::defrag(&t, &DefragOptions::default()).await })
    });
    let s = state.clone();
    reg(
        "defrag",
        &["options: Map", "Map"],
        "/// `defrag` with `members`: `all`, `leader`, `followers` or a member name.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
        let o: DefragOptions = options(&ctx, "etcd::defrag", Dynamic::from_map(o))?;
        action(
            &s,
            &ctx,
            "etcd",
            |t| async move { maint::defrag(&t, &o).await },
        )
    });

    let s = state.clone();
    reg(
        "disarm",
        &["Map"],
        "/// Disarms every alarm (`etcdctl alarm disarm`): `#{ disarmed, remaining }`. Needs `--allow-maintenance` on an etcd scen did not start.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> R { action(&s, &ctx, "etcd", |t| async move { maint::disarm(&t).await }) });

    let s = state.clone();
    reg(
        "snapshot",
        &["path: &str", "Map"],
        "/// Saves a snapshot to `path` under the run's artifacts directory (`--artifacts`, default\n\
         /// `scen-artifacts/<run-id>`) and verifies it with `etcdutl snapshot status`. Returns\n\
         /// `#{ path, size, revision, total_keys, hash, live_keys, verified, duration_ms }`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, path: &str| -> R {
        let dir = s.artifacts().unwrap_or_default();
        action(&s, &ctx, "etcd", |t| async move { maint::snapshot(&t, &dir, path).await })
    });

    let s = state.clone();
    reg(
        "restore",
        &["path: &str", "Map"],
        "/// Restores a snapshot taken with `etcd::snapshot(path)` into a fresh embedded member (etcdutl snapshot\n\
         /// restore), counts its keys and stops it: `#{ path, keys, revision, start_ms }`. The cluster under test is\n\
         /// not touched. Compare with the snapshot: `threshold(\"restore.keys == snap.live_keys\")`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, path: &str| -> R {
        let dir = s.artifacts().unwrap_or_default();
        let bin = s.etcd_bin();
        action(&s, &ctx, "etcd", |_| async move { maint::restore(&dir, path, bin).await })
    });

    let s = state.clone();
    reg(
        "stress",
        &["options: Map", "Map"],
        "/// Load etcd. Options: `op` (put, get, range, delete, txn_cas, txn_mixed) or `mix` (`#{ range: 70, put: 30 }`);\n\
         /// `clients` (16) over `connections` (1); bounds `count` and/or `duration`; open loop with `rate` or ramping\n\
         /// `stages` (`[#{ rate: 1000, duration: \"30s\" }, ...]`, from `start_rate`), latency measured from each\n\
         /// request's scheduled time; keys `key_prefix` (\"stress/\"), `key_size`, `key_space` (10000), `key_pattern`\n\
         /// (sequential, uniform, zipfian; `zipf_s`); `value_size` (256, \"1KiB\" or `#{ min, max }`); `serializable`,\n\
         /// `range_limit` (100), `txn_ops` (4), `read_ratio` (0.5); `watchers` (watch delay and missed events);\n\
         /// `request_timeout` (\"5s\"); `abort_after` (\"5s\": fail when nothing succeeds that long); `max_duration`;\n\
         /// `history: true` keeps every put and get and checks them at the end (`safety`).\n\
         /// `op: \"lease\"` keeps `leases` (100) alive for a `duration`, each renewed every `renew_interval` (\"10s\")\n\
         /// with `lease_ttl` (\"40s\") and `churn` (share revoked and re-granted per renewal), all revoked at the end.\n\
         /// Returns `#{ model, clients, connections, ops, ok, errors, error_rate, errors_by_code, error_messages,\n\
         /// duration_ms, throughput, target_rate, shortfall, dropped, latency, by_op, txn_conflicts, series, cpu, watch }`.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
        let o: StressOptions = options(&ctx, "etcd::stress", Dynamic::from_map(o))?;
        let p = watch(&s);
        action(&s, &ctx, "etcd", |t| async move { stress::stress(&t, &o, p).await })
    });

    let s = state.clone();
    reg(
        "capacity",
        &["options: Map", "Map"],
        "/// The highest open-loop rate the cluster holds within an SLO: trials at fixed rates (an `etcd::stress`\n\
         /// load each: give its `op` or `mix`, `value_size`, `key_space`, `clients`...) ramp from `from` doubling\n\
         /// to `to`, then bisect the bracket to `precision` (\"5%\") within `budget` (\"2m\"), each trial\n\
         /// `step_duration` (\"10s\") long, compacted (and with `defrag: true` defragmented) and settled\n\
         /// (`settle`, \"1s\") after. A trial passes when\n\
         /// `slo` (\"p99 < 25ms\"; fields p50, p90, p99, p999, max, mean) holds, its error rate is at most\n\
         /// `max_error_rate` (\"0.1%\") and it fell short of its rate by at most `max_shortfall` (\"5%\").\n\
         /// Returns `#{ slo, sustained_rate, failed_rate, bracket, converged, limited_by, trials: [#{ rate,\n\
         /// achieved, passed, failed_on, p50, p99, max, errors, error_rate, shortfall, wal_fsync_p99,\n\
         /// backend_commit_p99, server_cpu_per_request, server_cpu_busy, client_cpu_busy }], db_size_before,\n\
         /// db_size_after, compacted, defragmented, duration_ms }` (`sustained_rate` is `null` when no rate\n\
         /// passed).",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
        use crate::actions::capacity::{self as cap, CapacityOptions, SEARCH_KEYS};
        use crate::actions::CheckOptions as _;
        let what = "etcd::capacity";
        let (search, load): (Map, Map) = o
            .into_iter()
            .partition(|(k, _)| SEARCH_KEYS.contains(&k.as_str()));
        let o = CapacityOptions {
            search: decode(&ctx, what, Dynamic::from_map(search))?,
            load: decode(&ctx, what, Dynamic::from_map(load))?,
        };
        o.check().map_err(|e| refused(&ctx, what, e))?;
        let scraper = s.metrics();
        let w = watch(&s);
        action(&s, &ctx, "etcd", |t| async move {
            cap::capacity(&t, &o, Some(&scraper), &w).await
        })
    });

    let s = state.clone();
    reg(
        "prefix",
        &["String"],
        "/// The run's key prefix (`/scen/<run-id>/`); every relative key lives under it.",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
        match s.target() {
            Some(t) => Ok(t.info.prefix.into()),
            None => Err(super::bridge::usage(
                &ctx,
                "etcd::prefix is known only inside a step",
            )),
        }
    });

    engine.register_static_module("etcd", m.into());
}

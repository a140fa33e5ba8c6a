//! The `cluster::` namespace: bindings that decode arguments and call [`crate::actions::cluster`].

use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Dynamic, Engine, FnNamespace, FuncRegistration, Map, Module, NativeCallContext};

use super::bridge::{action, options, watch};
use super::State;
use crate::actions::cluster::{self as act, HeartbeatOptions, InventoryOptions, SimulateOptions};

type R = Result<Dynamic, Box<rhai::EvalAltResult>>;

/// Registers `cluster::` as a static module; template paths are relative to `base_dir`.
pub(crate) fn register(engine: &mut Engine, state: &Arc<State>, base_dir: &std::path::Path) {
    let mut m = Module::new();
    m.set_doc("/// A KWOK-style simulated cluster written where kube-apiserver stores it (`/registry/...`).");
    let s = state.clone();
    let base: PathBuf = base_dir.to_path_buf();
    FuncRegistration::new("simulate")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// Writes fake nodes (with leases), pods, deployments/replicasets, services, configmaps,\n\
                         /// secrets, events and custom resources, create-only, rendered from templates:\n\
                         /// `#{ nodes, pods_per_node | pods, namespaces, deployments, services, configmaps, secrets,\n\
                         /// value_size, events, node_images, custom: [#{ group, plural, count, template, namespaced,\n\
                         /// vars }], templates: #{ kind: \"file.yaml.j2\" }, vars, name_prefix, root, encoding,\n\
                         /// clients, batch, backend: \"etcd\" | \"kube\", kubeconfig, context, kwok, probe }`.\n\
                         /// Returns `#{ backend, root, encoding, objects, existing, bytes, duration_ms, throughput,\n\
                         /// bytes_per_s, by_kind, txn_latency, revisions, kwok_controller, api, api_slo }`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
            let mut o: SimulateOptions = options(&ctx, "cluster::simulate", Dynamic::from_map(o))?;
            o.base_dir = base.clone();
            act::check_templates(&o)
                .map_err(|e| super::bridge::refused(&ctx, "cluster::simulate", e))?;
            let p = watch(&s);
            action(&s, &ctx, "cluster", |t| async move { act::simulate(&t, &o, p).await })
        });
    let s = state.clone();
    FuncRegistration::new("inventory")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["Map"])
        .with_comments(["/// Keys, value bytes, revisions and bytes with history per resource type under the\n\
                         /// storage root: `#{ root, keys, bytes, resources: #{ pods: #{ keys, bytes, revisions,\n\
                         /// bytes_with_history } } }`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
            action(&s, &ctx, "cluster", |t| async move {
                act::inventory(&t, &InventoryOptions::default()).await
            })
        });
    let s = state.clone();
    FuncRegistration::new("inventory")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// `inventory` of another root: `#{ root: \"/registry\" }`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
            let o: InventoryOptions = options(&ctx, "cluster::inventory", Dynamic::from_map(o))?;
            action(&s, &ctx, "cluster", |t| async move {
                act::inventory(&t, &o).await
            })
        });
    let s = state.clone();
    FuncRegistration::new("cleanup")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["Map"])
        .with_comments(["/// Deletes exactly the keys this run's `simulate` calls created (by create revision), and\n\
                         /// nothing else: `#{ deleted, kept }`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
            action(&s, &ctx, "cluster", |t| async move { act::cleanup(&t).await })
        });
    let s = state.clone();
    FuncRegistration::new("heartbeat")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// Keeps the simulated cluster alive for `duration` (run it as a background step): every node\n\
                         /// renews its lease each `lease_interval` (10s) and writes its status each `status_interval`\n\
                         /// (1m), and `pod_churn` percent of the pods are deleted and created again each `churn_interval`\n\
                         /// (1m), as compare-and-swap writes like kube-apiserver's: `#{ duration, lease_interval,\n\
                         /// status_interval, pod_churn, churn_interval, clients, request_timeout, nodes, pods,\n\
                         /// name_prefix, root }`. Returns `#{ root, nodes, pods, duration_ms, leases, node_status,\n\
                         /// pod_churn, target_rate, throughput, bytes, errors_by_code, error_messages,\n\
                         /// series }`; each flow has `intended, ok, errors, conflicts, target_rate, throughput,\n\
                         /// dropped, shortfall (a ratio), latency`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
            let o: HeartbeatOptions = options(&ctx, "cluster::heartbeat", Dynamic::from_map(o))?;
            let p = watch(&s);
            action(&s, &ctx, "cluster", |t| async move { act::heartbeat(&t, &o, p).await })
        });
    let s = state.clone();
    let base: PathBuf = base_dir.to_path_buf();
    FuncRegistration::new("lifecycle")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// Drives `count` objects through `phases` (default all: \"create\", \"schedule\", \"run\",\n\
                         /// \"monitor\", \"delete\"), each write as kube-apiserver makes it (create-only, then\n\
                         /// compare-and-swap on the object's revision): `#{ kind: \"pod\" | \"deployment\" | \"vmi\" | \"custom\",\n\
                         /// count, resource: #{ group, plural, template, namespaced } (custom), name (objects are\n\
                         /// `<name>-<i>`), namespaces (10: `scen-ns-<n>`), concurrency (32), rate (objects/s),\n\
                         /// monitor (how long each runs, e.g. \"20s\"), monitor_interval (\"5s\"), finalizer (two-step\n\
                         /// delete), nodes (default: the simulated cluster's), root, name_prefix, templates, vars,\n\
                         /// request_timeout, backend: \"etcd\" | \"kube\", kubeconfig, context, mode: \"pipeline\" (each object\n\
                         /// on its own) | \"waves\" (every object through a phase before the next: density), hold\n\
                         /// (waves: how long the population is held running) }`. Returns `#{ kind, mode, peak_objects,\n\
                         /// root, prefix, objects, names, name, namespaced, namespaces, phases_run,\n\
                         /// phases: #{ create: #{ count, errors, conflicts, latency, since_created, throughput, wall_ms }, ... },\n\
                         /// completed, errors, errors_by_code, error_messages, remaining, duration_ms }`; fails when\n\
                         /// the objects expected under the prefix at the end are not there."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
            let what = "cluster::lifecycle";
            let mut o: act::LifecycleOptions = options(&ctx, what, Dynamic::from_map(o))?;
            o.base_dir = base.clone();
            o.check()
                .map_err(|e| super::bridge::refused(&ctx, what, e))?;
            let p = watch(&s);
            action(&s, &ctx, "cluster", |t| async move { act::lifecycle(&t, &o, p).await })
        });
    FuncRegistration::new("object")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["record: Map", "i: i64", "Map"])
        .with_comments(["/// Where a `cluster::lifecycle` put its `i`-th object: `cluster::object(result(\"vms\"), 7)` is\n\
                         /// `#{ name, namespace, key }` (the full etcd key, for `etcd::get` with `absolute: true`)."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, record: Map, i: i64| -> R {
            let what = "cluster::object";
            let p: act::Placement = rhai::serde::from_dynamic(&Dynamic::from_map(record))
                .map_err(|e| super::bridge::usage(&ctx, format!("{what}: the first argument is not a lifecycle's record ({e}): pass `result(\"<lifecycle step>\")`")))?;
            let i = u64::try_from(i)
                .map_err(|_| super::bridge::usage(&ctx, format!("{what}: object index {i} is negative")))?;
            let o = p.object(i).map_err(|e| super::bridge::refused(&ctx, what, e))?;
            rhai::serde::to_dynamic(o)
        });
    engine.register_static_module("cluster", m.into());
}

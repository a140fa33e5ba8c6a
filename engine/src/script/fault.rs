//! The `fault::` namespace: bindings that decode arguments and call [`crate::actions::fault`].

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnNamespace, FuncRegistration, Module, NativeCallContext};

use super::bridge::action;
use super::State;
use crate::actions::fault as act;
use crate::actions::Error;

type R = Result<Dynamic, Box<rhai::EvalAltResult>>;

const TARGETS: &str = "`target`: a member name (\"scen-1\"), \"leader\", \"follower\", \"stopped\" (a killed member) or \"paused\".";

/// Registers `fault::` as a static module.
pub(crate) fn register(engine: &mut Engine, state: &Arc<State>) {
    let mut m = Module::new();
    m.set_doc(
        "/// Faults on the members of the etcd scen started (never on a cluster it did not start).",
    );
    let simple: [(&str, &str); 4] = [
        ("kill", "SIGKILL the member, as a crash would. When it led: waits for the new leader and records `election_ms`."),
        ("restart", "Starts a killed member again (same ports and data); records `ready_ms` until it answers /health."),
        ("pause", "SIGSTOP the member: a hung process whose connections stay open. When it led: records `election_ms`."),
        ("resume", "SIGCONT a paused member; records `ready_ms` until it answers /health."),
    ];
    for (name, doc) in simple {
        let s = state.clone();
        FuncRegistration::new(name)
            .with_namespace(FnNamespace::Internal)
            .with_params_info(["target: &str", "Map"])
            .with_comments([format!(
                "/// {doc}\n/// {TARGETS} Returns `#{{ action, member, was_leader, leader_before, leader_after,\n\
                 /// election_ms, ready_ms, members, alive, quorum, duration_ms }}`."
            )
            .as_str()])
            .set_into_module(&mut m, move |ctx: NativeCallContext, target: &str| -> R {
                let which = target.to_string();
                action(&s, &ctx, "fault", |t| async move { act::fault(&t, name, &which, None).await })
            });
    }
    let s = state.clone();
    FuncRegistration::new("slow_disk")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["target: &str", "delay: &str", "Map"])
        .with_comments([format!(
            "/// Delays every fdatasync/fsync of the member by `delay` (`\"20ms\"`; `\"0ms\"` removes it):\n\
             /// strace attached to the running member injects the delay, and etcd's own\n\
             /// `etcd_disk_wal_fsync_duration_seconds` shows it. {TARGETS}"
        )
        .as_str()])
        .set_into_module(&mut m, move |ctx: NativeCallContext, target: &str, delay: &str| -> R {
            let which = target.to_string();
            let d = crate::units::parse_duration(delay).map_err(|e| {
                super::bridge::action_error(&Error::Options(format!("delay: {e}")), ctx.call_position())
            })?;
            action(&s, &ctx, "fault", |t| async move {
                act::fault(&t, "slow_disk", &which, Some(d)).await
            })
        });
    let s = state.clone();
    FuncRegistration::new("members")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["Map"])
        .with_comments(["/// Every member's state: `#{ members: [#{ name, client_url, pid, running, paused, slowed,\n\
                         /// leader }], leader, alive, quorum }`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
            action(&s, &ctx, "fault", |t| async move { act::members(&t).await })
        });
    let s = state.clone();
    FuncRegistration::new("partition")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["one: Array", "other: Array", "Map"])
        .with_comments(["/// Cuts the peer traffic between two sides (member names, \"leader\", \"others\"), through the\n\
                         /// peer proxies of `embedded_etcd(#{ network_faults: true })`; clients still reach every\n\
                         /// member. Waits for the majority side's leader and an isolated leader's step-down.\n\
                         /// Returns `#{ action, sides, leader_before, leader_after, election_ms, stepped_down_ms,\n\
                         /// writes_by_side: [#{ members, ok, failed }], terms_before, terms_after, duration_ms }`.\n\
                         /// ```rhai\n/// step(\"cut\", |p| fault::partition([\"leader\"], [\"others\"]));\n/// ```"])
        .set_into_module(&mut m, move |ctx: NativeCallContext, one: rhai::Array, other: rhai::Array| -> R {
            let names = |a: rhai::Array| -> Vec<String> { a.into_iter().map(|d| d.to_string()).collect() };
            let (one, other) = (names(one), names(other));
            action(&s, &ctx, "fault", |t| async move {
                crate::actions::network::partition(&t, &one, &other).await
            })
        });
    let s = state.clone();
    FuncRegistration::new("heal")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["Map"])
        .with_comments(["/// Removes every partition and slow link; waits until every member agrees on one leader and\n\
                         /// term: `#{ action, leader_before, leader_after, recovered_ms, terms_before, terms_after }`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
            action(&s, &ctx, "fault", |t| async move { crate::actions::network::heal(&t).await })
        });
    let s = state.clone();
    FuncRegistration::new("link")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// Slows every peer connection to or from a member: `#{ to: \"scen-2\" | \"leader\", delay: \"50ms\",\n\
                         /// jitter: \"10ms\", loss: \"1%\" (each lost chunk costs a 200 ms retransmission),\n\
                         /// bandwidth: \"1MiB\" (per second, each way) }` (`delay: \"0ms\"` alone removes it).\n\
                         /// Needs `network_faults: true`."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: rhai::Map| -> R {
            let o: crate::actions::network::LinkOptions =
                super::bridge::options(&ctx, "fault::link", Dynamic::from_map(o))?;
            crate::actions::CheckOptions::check(&o)
                .map_err(|e| super::bridge::refused(&ctx, "fault::link", e))?;
            action(&s, &ctx, "fault", |t| async move { crate::actions::network::link(&t, &o).await })
        });
    engine.register_static_module("fault", m.into());
}

//! The `metrics::` namespace: bindings that decode arguments and call [`crate::actions::metrics`].

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnNamespace, FuncRegistration, Map, Module, NativeCallContext};

use super::bridge::{action, options};
use super::State;
use crate::actions::metrics::{self as act, ScrapeOptions};

type R = Result<Dynamic, Box<rhai::EvalAltResult>>;

/// The JSON Schema of the record a `metrics::` function returns, for plan-time field checks.
pub(crate) fn record_schema(name: &str) -> Option<serde_json::Value> {
    match name {
        "scrape" => serde_json::to_value(schemars::schema_for!(act::ScrapeRecord)).ok(),
        _ => None,
    }
}

/// Registers `metrics::` as a static module.
pub(crate) fn register(engine: &mut Engine, state: &Arc<State>) {
    let mut m = Module::new();
    m.set_doc("/// etcd's Prometheus metrics. Every step also gets the server's view of itself under `server`.");
    let doc = "/// Scrapes every member's `/metrics` and returns `#{ members: [#{ url, ok, error, metrics: #{ name:\n\
               /// [#{ labels, kind, value, buckets: [#{ le, count }] }] } }], families }` (histogram `value` is the\n\
               /// observation count; `le` is null for +Inf).";
    let s = state.clone();
    FuncRegistration::new("scrape")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["Map"])
        .with_comments([doc])
        .set_into_module(&mut m, move |ctx: NativeCallContext| -> R {
            let urls = s.metrics();
            action(&s, &ctx, "metrics", |_| async move {
                Ok(act::scrape(&urls, &ScrapeOptions::default()).await)
            })
        });
    let s = state.clone();
    FuncRegistration::new("scrape")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// `scrape` with filters: `names` (a list of metric names) or `prefix` (`\"etcd_server_\"`)."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
            let o: ScrapeOptions = options(&ctx, "metrics::scrape", Dynamic::from_map(o))?;
            let urls = s.metrics();
            action(&s, &ctx, "metrics", |_| async move { Ok(act::scrape(&urls, &o).await) })
        });
    engine.register_static_module("metrics", m.into());
}

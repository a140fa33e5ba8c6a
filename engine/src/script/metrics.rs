//! The `metrics::` namespace: bindings that decode arguments and call [`crate::actions::metrics`].

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnNamespace, FuncRegistration, Map, Module, NativeCallContext};

use super::bridge::{action, options};
use super::State;
use crate::actions::metrics::{self as act, ScrapeOptions};
use crate::actions::promql::{self, QueryOptions};

type R = Result<Dynamic, Box<rhai::EvalAltResult>>;

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
            let scraper = s.metrics();
            action(&s, &ctx, "metrics", |_| async move {
                Ok(act::scrape(&scraper, &ScrapeOptions::default()).await)
            })
        });
    let s = state.clone();
    FuncRegistration::new("scrape")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["options: Map", "Map"])
        .with_comments(["/// `scrape` with filters: `names` (a list of metric names) or `prefix` (`\"etcd_server_\"`)."])
        .set_into_module(&mut m, move |ctx: NativeCallContext, o: Map| -> R {
            let o: ScrapeOptions = options(&ctx, "metrics::scrape", Dynamic::from_map(o))?;
            let scraper = s.metrics();
            action(&s, &ctx, "metrics", |_| async move { Ok(act::scrape(&scraper, &o).await) })
        });
    register_query(&mut m, state);
    engine.register_static_module("metrics", m.into());
}

/// `metrics::query`: PromQL against a Prometheus server.
fn register_query(m: &mut Module, state: &Arc<State>) {
    let doc = "/// Runs PromQL against the Prometheus at `url` (`\"http://127.0.0.1:9090\"`): an instant query now.\n\
               /// Returns `#{ query, kind, value, count, series: [#{ labels, value, points, min, max, avg }],\n\
               /// warnings, duration_ms }`; `value` is the first series' value, `null` when the result is empty.";
    let s = state.clone();
    FuncRegistration::new("query")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["url: &str", "promql: &str", "Map"])
        .with_comments([doc])
        .set_into_module(m, move |ctx: NativeCallContext, url: &str, q: &str| -> R {
            let (url, q) = (url.to_string(), q.to_string());
            action(&s, &ctx, "metrics", |_| async move {
                promql::query(&url, &q, &QueryOptions::default()).await
            })
        });
    let doc = "/// `query` with options: `time` (instant); `range` (`\"10m\"`, ending now or at `end`) or\n\
               /// `start`/`end`, and `step`, for a range query whose series carry `points` and their\n\
               /// `min`/`max`/`avg`; `timeout`; `bearer_token`; `headers`.";
    let s = state.clone();
    FuncRegistration::new("query")
        .with_namespace(FnNamespace::Internal)
        .with_params_info(["url: &str", "promql: &str", "options: Map", "Map"])
        .with_comments([doc])
        .set_into_module(
            m,
            move |ctx: NativeCallContext, url: &str, q: &str, o: Map| -> R {
                let o: QueryOptions = options(&ctx, "metrics::query", Dynamic::from_map(o))?;
                promql::check_url(url)
                    .map_err(|e| super::bridge::options_error(&ctx, e.to_string()))?;
                let (url, q) = (url.to_string(), q.to_string());
                action(&s, &ctx, "metrics", |_| async move {
                    promql::query(&url, &q, &o).await
                })
            },
        );
}

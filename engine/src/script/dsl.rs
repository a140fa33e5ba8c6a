//! The declaration functions every scenario uses: `scenario`, `param`, `step`, `background`,
//! `join`, `threshold`, plus `result` and `sleep` for use inside steps.

use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, FuncRegistration, Map, NativeCallContext};
use serde::Deserialize;

use super::bridge::{self, usage};
use super::{pos_of, State};
use crate::params::{self, ParamSpec};
use crate::plan::{Item, PlannedThreshold, StepSpec};
use crate::threshold::Threshold;
use crate::units;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// What the top level of a scenario has declared so far.
#[derive(Default)]
pub(crate) struct Builder {
    pub name: Option<String>,
    pub description: String,
    pub params: Vec<ParamSpec>,
    pub items: Vec<Item>,
    pub thresholds: Vec<PlannedThreshold>,
    pub embedded: crate::embedded::EmbeddedSpec,
    /// `kube_control_plane(...)`: the embedded Kubernetes control plane, when asked for.
    pub control_plane: Option<crate::control_plane::ControlPlaneSpec>,
    /// `report(#{ compare: [...] })`: steps to see side by side, and where that was said.
    pub compare_steps: Vec<(Vec<String>, crate::plan::SourcePos)>,
}

/// `kube_control_plane(...)`: which components of the embedded control plane to start.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ControlPlaneOptions {
    scheduler: Option<bool>,
    controller_manager: Option<bool>,
    kwok: Option<bool>,
    start_timeout: Option<String>,
    #[serde(default)]
    apiserver_flags: Vec<String>,
}

crate::no_option_checks!(ControlPlaneOptions);

impl ControlPlaneOptions {
    fn spec(self) -> Result<crate::control_plane::ControlPlaneSpec, String> {
        let d = crate::control_plane::ControlPlaneSpec::default();
        let start_timeout = match self.start_timeout {
            Some(t) => {
                crate::units::parse_duration(&t).map_err(|e| format!("start_timeout: {e}"))?
            }
            None => d.start_timeout,
        };
        let spec = crate::control_plane::ControlPlaneSpec {
            scheduler: self.scheduler.unwrap_or(d.scheduler),
            controller_manager: self.controller_manager.unwrap_or(d.controller_manager),
            kwok: self.kwok.unwrap_or(d.kwok),
            start_timeout,
            apiserver_flags: self.apiserver_flags,
        };
        spec.check_options().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// `report(...)`: how the HTML report presents the run.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportOptions {
    /// Steps whose latency distributions and series are drawn on shared axes.
    compare: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioMeta {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    params: Option<Dynamic>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StepOptions {
    /// Stop the step after this long (`"5m"`).
    timeout: Option<String>,
    /// Record a failure and carry on.
    #[serde(default)]
    continue_on_error: bool,
    /// Run concurrently with the following steps.
    #[serde(default)]
    background: bool,
    /// Start this long after the step's turn comes (`"3s"`): a fault on schedule beside a
    /// background load, without `sleep` steps.
    at: Option<String>,
}

/// `embedded_etcd(...)`: the embedded cluster's settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddedOptions {
    members: Option<usize>,
    quota_backend_bytes: Option<crate::actions::SizeValue>,
    snapshot_count: Option<u64>,
    auto_compaction_mode: Option<String>,
    auto_compaction_retention: Option<String>,
    heartbeat_interval: Option<String>,
    election_timeout: Option<String>,
    etcd_bin: Option<String>,
    network_faults: Option<bool>,
}

impl EmbeddedOptions {
    fn spec(self) -> Result<crate::embedded::EmbeddedSpec, String> {
        let ms = |d: Option<String>, what: &str| -> Result<Option<u64>, String> {
            d.map(|d| {
                crate::units::parse_duration(&d)
                    .map(|d| d.as_millis() as u64)
                    .map_err(|e| format!("{what}: {e}"))
            })
            .transpose()
        };
        if let Some(m) = self.members {
            if ![1, 3, 5].contains(&m) {
                return Err(format!("members: {m}: use 1, 3 or 5"));
            }
        }
        if let Some(mode) = &self.auto_compaction_mode {
            if mode != "periodic" && mode != "revision" {
                return Err(format!(
                    "auto_compaction_mode `{mode}`: use \"periodic\" or \"revision\""
                ));
            }
        }
        let settings = crate::embedded::MemberSettings {
            quota_backend_bytes: self
                .quota_backend_bytes
                .map(|q| {
                    q.bytes()
                        .map_err(|e| e.to_string())
                        .and_then(crate::embedded::check_quota)
                        .map_err(|e| format!("quota_backend_bytes: {e}"))
                })
                .transpose()?,
            snapshot_count: self.snapshot_count,
            auto_compaction_mode: self.auto_compaction_mode,
            auto_compaction_retention: self.auto_compaction_retention,
            heartbeat_interval_ms: ms(self.heartbeat_interval, "heartbeat_interval")?,
            election_timeout_ms: ms(self.election_timeout, "election_timeout")?,
        };
        Ok(crate::embedded::EmbeddedSpec {
            members: self.members,
            settings,
            etcd_bin: self.etcd_bin.map(std::path::PathBuf::from),
            network_faults: self.network_faults,
        })
    }
}

/// Embedded cluster settings from a map of `embedded_etcd()` options (`snapshot_count`,
/// `members`...): what `scen ab --a member.<setting>=V` sets. Unknown names are refused.
pub fn embedded_spec(options: serde_json::Value) -> Result<crate::embedded::EmbeddedSpec, String> {
    let o: EmbeddedOptions = serde_json::from_value(options).map_err(|e| e.to_string())?;
    o.spec()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ThresholdOptions {
    #[serde(default)]
    abort_on_fail: bool,
    /// What a field with no samples makes of the threshold: `"fail"` (the default) or `"pass"`.
    no_data: Option<String>,
    /// Decide a quantile of a bucketed histogram by interpolation even when its bucket holds the
    /// limit (default false: such a threshold is inconclusive, which fails).
    #[serde(default)]
    interpolate: bool,
}

crate::no_option_checks!(
    ScenarioMeta,
    StepOptions,
    EmbeddedOptions,
    ThresholdOptions,
    ReportOptions
);

fn declaring(state: &State, ctx: &NativeCallContext) -> RhaiResult<()> {
    if state.target().is_some() {
        return Err(usage(
            ctx,
            format!(
                "{}() declares the plan and cannot be called inside a step",
                ctx.fn_name()
            ),
        ));
    }
    Ok(())
}

fn declare_param(
    state: &State,
    ctx: &NativeCallContext,
    name: &str,
    default: Dynamic,
    doc: &str,
) -> RhaiResult<Dynamic> {
    declaring(state, ctx)?;
    let json: serde_json::Value = rhai::serde::from_dynamic(&default)
        .map_err(|e| usage(ctx, format!("parameter `{name}`: unsupported default: {e}")))?;
    let spec = ParamSpec::new(name, json, doc).map_err(|e| usage(ctx, e.to_string()))?;
    let value =
        params::resolve_one(&spec, &state.overrides).map_err(|e| usage(ctx, e.to_string()))?;
    let mut b = state.builder.lock().expect("builder lock");
    if b.params.iter().any(|p| p.name == name) {
        return Err(usage(ctx, format!("parameter `{name}` is declared twice")));
    }
    b.params.push(spec);
    rhai::serde::to_dynamic(value)
}

/// The longest step or scenario name, in characters.
const MAX_NAME: usize = 256;
/// The longest scenario description, in bytes.
const MAX_DESCRIPTION: usize = 4096;

use crate::quote::quote;

fn declare_step(
    state: &State,
    ctx: &NativeCallContext,
    name: &str,
    opts: StepOptions,
    func: FnPtr,
) -> RhaiResult<()> {
    declaring(state, ctx)?;
    if name.chars().count() > MAX_NAME {
        return Err(usage(
            ctx,
            format!(
                "step name `{}` has {} characters: give at most {MAX_NAME} (it names the step in every report)",
                quote(name),
                name.chars().count()
            ),
        ));
    }
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(usage(
            ctx,
            format!(
                "step name `{}` must be letters, digits and `_` (it is used in thresholds: `{}.field`)",
                quote(name),
                quote(name)
            ),
        ));
    }
    let timeout = opts
        .timeout
        .as_deref()
        .map(units::parse_duration)
        .transpose()
        .map_err(|e| usage(ctx, format!("step `{name}` timeout: {e}")))?;
    let at = opts
        .at
        .as_deref()
        .map(units::parse_duration)
        .transpose()
        .map_err(|e| usage(ctx, format!("step `{name}` at: {e}")))?;
    let mut b = state.builder.lock().expect("builder lock");
    if b.items
        .iter()
        .any(|i| matches!(i, Item::Step(s) if s.name == name))
    {
        return Err(usage(
            ctx,
            format!("step `{name}` is declared twice; step names must be unique"),
        ));
    }
    b.items.push(Item::Step(StepSpec {
        name: name.to_string(),
        background: opts.background,
        func,
        timeout,
        at,
        continue_on_error: opts.continue_on_error,
        pos: pos_of(ctx),
        action: None, // known once the whole script is read
        field_actions: Default::default(),
    }));
    Ok(())
}

/// Registers the declaration functions in the global namespace.
pub(crate) fn register(engine: &mut Engine, state: &Arc<State>) {
    let s = state.clone();
    FuncRegistration::new("scenario")
        .with_params_info(["meta: Map", "Map"])
        .with_comments([
            "/// Declares the scenario's name, description and parameters.\n\
             /// `params` maps each name to its default (the default's type is the parameter's type:\n\
             /// `1000` an integer, `\"30s\"` a duration, `\"1KiB\"` a size) or to `#{ value: <default>, doc: \"...\" }`.\n\
             /// Returns the parameters' values for this run, so thresholds can use them.\n\
             /// ```rhai\n/// let p = scenario(#{ name: \"etcd-stress\", description: \"...\", params: #{ nodes: 1000, p99: \"25ms\" } });\n/// threshold(`write.latency.p99 < ${p.p99}`);\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, meta: Map| -> RhaiResult<Map> {
            declaring(&s, &ctx)?;
            let m: ScenarioMeta = bridge::options(&ctx, "scenario", Dynamic::from_map(meta))?;
            if let Some(n) = m.name.as_deref().filter(|n| n.chars().count() > MAX_NAME) {
                return Err(usage(&ctx, format!(
                    "scenario: `name` `{}` has {} characters: give at most {MAX_NAME}",
                    quote(n),
                    n.chars().count()
                )));
            }
            if m.description.len() > MAX_DESCRIPTION {
                return Err(usage(&ctx, format!(
                    "scenario: `description` has {} bytes: give at most 4 KiB (the header comment can say more)",
                    m.description.len()
                )));
            }
            {
                let mut b = s.builder.lock().expect("builder lock");
                if m.name.is_some() {
                    b.name = m.name;
                }
                b.description = m.description;
            }
            let params = match m.params {
                None => Map::new(),
                Some(p) => p.try_cast::<Map>().ok_or_else(|| usage(&ctx, "scenario: `params` must be a map of name to default"))?,
            };
            let mut values = Map::new();
            for (name, v) in params {
                let (default, doc) = match v.clone().try_cast::<Map>() {
                    Some(spec) if spec.contains_key("value") => {
                        if let Some(k) = spec.keys().find(|k| !matches!(k.as_str(), "value" | "doc")) {
                            return Err(usage(&ctx, format!("parameter `{name}`: unknown key `{k}` (use value and doc)")));
                        }
                        let doc = spec.get("doc").map(|d| d.to_string()).unwrap_or_default();
                        (spec["value"].clone(), doc)
                    }
                    _ => (v, String::new()),
                };
                let value = declare_param(&s, &ctx, &name, default, &doc)?;
                values.insert(name, value);
            }
            Ok(values)
        });

    let s = state.clone();
    FuncRegistration::new("param")
        .with_params_info(["name: &str", "default: Dynamic", "doc: &str", "Dynamic"])
        .with_comments([
            "/// Declares a parameter with a default and a one-line description, and returns its value\n\
             /// for this run (`--set` > `--values` file > default). The default's type is the parameter's type.\n\
             /// ```rhai\n/// let nodes = param(\"nodes\", 1000, \"simulated nodes\");\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, default: Dynamic, doc: &str| {
            declare_param(&s, &ctx, name, default, doc)
        });
    let s = state.clone();
    FuncRegistration::new("param")
        .with_params_info(["name: &str", "default: Dynamic", "Dynamic"])
        .with_comments([
            "/// Declares a parameter without a description; see `param(name, default, doc)`.",
        ])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, name: &str, default: Dynamic| {
                declare_param(&s, &ctx, name, default, "")
            },
        );

    let s = state.clone();
    FuncRegistration::new("step")
        .with_params_info(["name: &str", "f: FnPtr", "()"])
        .with_comments([
            "/// Declares a step. When the run reaches it, `f` is called with the parameters; the map it\n\
             /// returns is the step's record in the report (thresholds read it as `name.field`).\n\
             /// ```rhai\n/// step(\"write\", |p| etcd::put_many(#{ count: p.keys }));\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, f: FnPtr| {
            declare_step(&s, &ctx, name, StepOptions::default(), f)
        });
    let s = state.clone();
    FuncRegistration::new("step")
        .with_params_info(["name: &str", "options: Map", "f: FnPtr", "()"])
        .with_comments([
            "/// Declares a step with options: `timeout` (`\"5m\"`), `continue_on_error` (record the failure\n\
             /// and go on), `background` (run concurrently with the following steps until `join`).",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, opts: Map, f: FnPtr| {
            let o: StepOptions = bridge::options(&ctx, "step", Dynamic::from_map(opts))?;
            declare_step(&s, &ctx, name, o, f)
        });
    let s = state.clone();
    FuncRegistration::new("background")
        .with_params_info(["name: &str", "f: FnPtr", "()"])
        .with_comments([
            "/// Declares a step that starts here and runs concurrently with the steps after it, until\n\
             /// `join(name)` or the end of the run: load during a defragmentation, for example.\n\
             /// ```rhai\n/// background(\"load\", |p| etcd::put_many(#{ count: 100000 }));\n/// step(\"status\", |p| etcd::status());\n/// join(\"load\");\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, f: FnPtr| {
            declare_step(&s, &ctx, name, StepOptions { background: true, ..Default::default() }, f)
        });
    let s = state.clone();
    FuncRegistration::new("background")
        .with_params_info(["name: &str", "options: Map", "f: FnPtr", "()"])
        .with_comments(["/// A background step with options (`timeout`, `continue_on_error`, `at`: start this long after\n\
             /// its turn comes, e.g. a fault on schedule: `background(\"heal\", #{ at: \"5s\" }, |p| fault::heal())`)."])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, name: &str, opts: Map, f: FnPtr| {
                let mut o: StepOptions =
                    bridge::options(&ctx, "background", Dynamic::from_map(opts))?;
                o.background = true;
                declare_step(&s, &ctx, name, o, f)
            },
        );

    let s = state.clone();
    FuncRegistration::new("join")
        .with_params_info(["name: &str", "()"])
        .with_comments(["/// Waits, at this point of the plan, for a background step declared earlier to finish."])
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str| -> RhaiResult<()> {
            declaring(&s, &ctx)?;
            let mut b = s.builder.lock().expect("builder lock");
            let is_bg = b.items.iter().any(|i| matches!(i, Item::Step(st) if st.name == name && st.background));
            if !is_bg {
                return Err(usage(&ctx, format!("join(\"{name}\"): no background step `{name}` is declared before this point")));
            }
            b.items.push(Item::Join { step: name.to_string(), pos: pos_of(&ctx) });
            Ok(())
        });

    let s = state.clone();
    let thr = move |ctx: &NativeCallContext, expr: &str, o: ThresholdOptions| -> RhaiResult<()> {
        declaring(&s, ctx)?;
        let no_data_passes = match o.no_data.as_deref() {
            None | Some("fail") => false,
            Some("pass") => true,
            Some(other) => {
                return Err(usage(
                    ctx,
                    format!("threshold `{expr}`: no_data: \"{other}\": use \"fail\" (the default) or \"pass\""),
                ))
            }
        };
        let mut threshold = Threshold::parse(expr, o.abort_on_fail).map_err(|e| {
            // A very long expression is shown by its start.
            let shown: String = if expr.chars().count() > 120 {
                expr.chars().take(117).chain("...".chars()).collect()
            } else {
                expr.to_string()
            };
            usage(
                ctx,
                format!("invalid threshold `{shown}`: {e}; e.g. \"write.latency.p99 < 25ms\""),
            )
        })?;
        threshold.no_data_passes = no_data_passes;
        threshold.interpolate = o.interpolate;
        s.builder
            .lock()
            .expect("builder lock")
            .thresholds
            .push(PlannedThreshold {
                threshold,
                pos: pos_of(ctx),
            });
        Ok(())
    };
    let t1 = thr.clone();
    FuncRegistration::new("threshold")
        .with_params_info(["expression: &str", "()"])
        .with_comments([
            "/// Declares an SLO over report fields, checked after the steps it reads have run; a failed\n\
             /// threshold makes the run exit 1. Units: ns us ms s m h, B KB MB GB KiB MiB GiB, /s, % (a\n\
             /// fraction: 5% is 0.05); each must match the field's unit (`scen check` says). Any quantile of\n\
             /// a latency: `latency.p95`, `latency.p(99.9)`. A field with no samples fails as \"no data\".\n\
             /// Operators: < <= > >= == !=, && ||, + - * /, and min/max/sum/avg/count over `[*]` paths.\n\
             /// ```rhai\n/// threshold(\"write.latency.p99 < 25ms && write.errors == 0\");\n/// threshold(\"max(status.members[*].db_size) < 2GiB\");\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, expr: &str| t1(&ctx, expr, ThresholdOptions::default()));
    FuncRegistration::new("threshold")
        .with_params_info(["expression: &str", "options: Map", "()"])
        .with_comments(["/// A threshold with options: `abort_on_fail: true` stops the run as soon as it fails;\n\
              /// `no_data: \"pass\"` lets it pass when a field it reads has no samples (default `\"fail\"`);\n\
              /// `interpolate: true` decides a quantile of etcd's buckets by interpolation when its bucket holds the\n\
              /// limit (default: inconclusive, which fails)."])
        .register_into_engine(engine, move |ctx: NativeCallContext, expr: &str, opts: Map| {
            let o: ThresholdOptions = bridge::options(&ctx, "threshold", Dynamic::from_map(opts))?;
            thr(&ctx, expr, o)
        });

    let s = state.clone();
    FuncRegistration::new("embedded_etcd")
        .with_params_info(["settings: Map", "()"])
        .with_comments([
            "/// Settings for the etcd scen starts when the run has no `--endpoints` (ignored otherwise;\n\
             /// `--members` on the command line wins): `#{ members: 1 | 3 | 5, quota_backend_bytes: \"64MiB\",\n\
             /// snapshot_count, auto_compaction_mode: \"periodic\" | \"revision\", auto_compaction_retention,\n\
             /// heartbeat_interval: \"100ms\", election_timeout: \"1s\", etcd_bin: \"/opt/etcd-3.6/etcd\" }`.\n\
             /// ```rhai\n/// embedded_etcd(#{ members: 3, election_timeout: \"500ms\" });\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, m: Map| -> RhaiResult<()> {
            declaring(&s, &ctx)?;
            let o: EmbeddedOptions = bridge::options(&ctx, "embedded_etcd", Dynamic::from_map(m))?;
            let spec = o.spec().map_err(|e| usage(&ctx, format!("embedded_etcd: {e}")))?;
            s.builder.lock().expect("builder lock").embedded = spec;
            Ok(())
        });

    let s = state.clone();
    FuncRegistration::new("kube_control_plane")
        .with_params_info(["components: Map", "()"])
        .with_comments([
            "/// Starts a real Kubernetes control plane for the run on loopback, on the run's etcd: kube-apiserver\n\
             /// (a throwaway PKI, an admin kubeconfig in `system:masters`), and, each by default, kube-scheduler,\n\
             /// kube-controller-manager and the KWOK controller: `#{ scheduler: true, controller_manager: true,\n\
             /// kwok: true, start_timeout: \"60s\", apiserver_flags: [\"--max-requests-inflight=800\"] }`. The kube\n\
             /// backend (`cluster::simulate(#{ backend: \"kube\" })`, `cluster::lifecycle`) then uses it without a\n\
             /// kubeconfig, and every step's record gains the API server's own view (`<step>.apiserver`). The binaries\n\
             /// come from `scripts/build-control-plane.sh`; all of it stops with the run.\n\
             /// ```rhai\n/// kube_control_plane(#{ scheduler: true, controller_manager: true, kwok: true });\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, m: Map| -> RhaiResult<()> {
            declaring(&s, &ctx)?;
            let o: ControlPlaneOptions =
                bridge::options(&ctx, "kube_control_plane", Dynamic::from_map(m))?;
            let spec = o.spec().map_err(|e| usage(&ctx, format!("kube_control_plane: {e}")))?;
            s.builder.lock().expect("builder lock").control_plane = Some(spec);
            Ok(())
        });

    let s = state.clone();
    FuncRegistration::new("report")
        .with_params_info(["options: Map", "()"])
        .with_comments([
            "/// How the HTML report presents the run: `compare: [\"baseline\", \"slow\"]` draws those steps'\n\
             /// latency distributions (percentile curves) and per-second series on shared axes, with the\n\
             /// ratios written out. Call it once per group to compare.\n\
             /// ```rhai\n/// report(#{ compare: [\"baseline\", \"slow\"] });\n/// ```",
        ])
        .register_into_engine(engine, move |ctx: NativeCallContext, m: Map| -> RhaiResult<()> {
            declaring(&s, &ctx)?;
            let o: ReportOptions = bridge::options(&ctx, "report", Dynamic::from_map(m))?;
            if o.compare.len() < 2 {
                return Err(usage(&ctx, "report: `compare` names two steps or more".to_string()));
            }
            s.builder
                .lock()
                .expect("builder lock")
                .compare_steps
                .push((o.compare, pos_of(&ctx)));
            Ok(())
        });

    let s = state.clone();
    FuncRegistration::new("result")
        .with_params_info(["step: &str", "Map"])
        .with_comments(["/// Inside a step: the record of an earlier step that has finished."])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, step: &str| -> RhaiResult<Dynamic> {
                let records = s.records.lock().expect("records lock");
                match records.get(step) {
                    Some(r) => bridge::typed_dynamic(r),
                    None => {
                        let done: Vec<_> = records.keys().cloned().collect();
                        Err(usage(
                            &ctx,
                            format!(
                                "result(\"{step}\"): no finished step of that name (finished: {})",
                                done.join(", ")
                            ),
                        ))
                    }
                }
            },
        );

    let s = state.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["duration: &str", "()"])
        .with_comments([
            "/// Inside a step: waits for a duration such as `\"2s\"` (interruptible).",
        ])
        .register_into_engine(
            engine,
            move |ctx: NativeCallContext, d: &str| -> RhaiResult<()> {
                let d = units::parse_duration(d)
                    .map_err(|e| bridge::options_error(&ctx, format!("sleep: {e}")))?;
                if bridge::is_checking() {
                    return Ok(()); // the duration is checked; nothing waits at plan time
                }
                if s.handle().is_none() {
                    return Err(usage(&ctx, "sleep can only run inside a step"));
                }
                bridge::block_on(&s, async {
                    tokio::time::sleep(d).await;
                    Ok(())
                })
                .map_err(|e| bridge::action_error(&e, ctx.call_position()))
            },
        );
}

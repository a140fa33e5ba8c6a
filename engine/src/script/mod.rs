//! The Rhai side of scen: building a sandboxed engine, reading a scenario file into a [`Plan`],
//! and calling step closures during a run. One file per script namespace (`dsl` for the
//! declarations, `etcd` for `etcd::`); `bridge` is where bindings hand over to async actions.

pub mod api;
mod bridge;
mod cluster;
mod dsl;
mod etcd;
mod fault;
mod fields;
mod metrics;
mod renamed;
mod resolver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, Position, AST};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use bridge::ActionError;
pub use dsl::embedded_spec;
pub use resolver::{imported_files, stdlib_source, STDLIB};

use crate::actions::registry::RecordType;
use crate::actions::StopReason;
use crate::measure::{self, Unit};
use crate::params::{self, Overrides, Resolved};
use crate::plan::{Item, Plan, SourcePos, StepSpec};
use crate::report::ErrorKind;
use crate::target::Target;
use crate::threshold::{FieldPath, Segment};

/// Sandbox limits for scripts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Operations per step.
    pub max_operations: u64,
    /// Operations of the top level and its imports, which only declare the plan: an endless
    /// loop there is found in a fraction of a second, not after minutes.
    pub max_plan_operations: u64,
    /// Wall-clock time of the top level: a loop whose every operation is slow (a push onto an
    /// ever longer array) stops as soon as this passes, not when its operations run out.
    pub max_plan_time: std::time::Duration,
    /// Function call depth.
    pub max_call_levels: usize,
    /// Imported modules.
    pub max_modules: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000_000,
            max_plan_operations: 2_000_000,
            max_plan_time: std::time::Duration::from_secs(1),
            max_call_levels: 64,
            max_modules: 64,
        }
    }
}

/// A scenario that could not be read, or a script error during a step: message, position, the
/// source line with a caret, and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct ScriptError {
    /// What is wrong.
    pub message: String,
    /// Where, when known.
    pub pos: Option<SourcePos>,
    /// The offending source line, when it could be read.
    pub line_text: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// What kind of failure; decides the exit code.
    pub kind: crate::report::ErrorKind,
    /// What the failing action measured before it failed, if anything.
    pub record: Option<serde_json::Value>,
    /// The action whose partial record that is (`etcd::stress`).
    pub record_action: Option<String>,
}

/// What a step's closure returned, with what types it: the action whose record it is, or, for a
/// map the script built, the fields that hold an action's record (`{"load": "etcd::stress"}`).
/// The types come from the records' tags, so they survive a `fn` around the call, a variable, a
/// map, and `result(...)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepRecord {
    /// The record as JSON.
    pub value: serde_json::Value,
    /// The action whose record the whole of it is.
    pub action: Option<String>,
    /// For a map the script built: its fields that are an action's record, with that action.
    pub field_actions: BTreeMap<String, String>,
}

impl ScriptError {
    fn new(message: impl Into<String>) -> Self {
        ScriptError {
            message: message.into(),
            pos: None,
            line_text: None,
            hint: None,
            record: None,
            record_action: None,
            kind: crate::report::ErrorKind::Script,
        }
    }

    /// Renders `error: msg`, ` --> file:line:col`, the source line and a caret, and the hint.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}", self.message);
        if let Some(p) = &self.pos {
            out.push_str(&format!("\n  --> {p}"));
            if let Some(text) = &self.line_text {
                let n = p.line.to_string();
                let pad = " ".repeat(n.len());
                let caret = " ".repeat(p.column.saturating_sub(1));
                out.push_str(&format!("\n {pad} |\n {n} | {text}\n {pad} | {caret}^"));
            }
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("\n  = help: {h}"));
        }
        out
    }

    /// `file:line:col`, when known.
    pub fn location(&self) -> Option<String> {
        self.pos.as_ref().map(ToString::to_string)
    }
}

/// What a run makes available to bindings while steps execute.
pub(crate) struct RunResources {
    target: Target,
    handle: tokio::runtime::Handle,
    artifacts: PathBuf,
    metrics: crate::actions::metrics::Scraper,
    etcd_bin: PathBuf,
}

/// What a run hands the bindings when steps may start acting.
pub struct RunSetup {
    /// The cluster.
    pub target: Target,
    /// The runtime actions run on.
    pub handle: tokio::runtime::Handle,
    /// Where live progress lines go.
    pub progress: Option<ProgressSink>,
    /// Where live totals go, when the run has live outputs.
    pub live: Option<Arc<crate::live::Hub>>,
    /// Where files a run produces go.
    pub artifacts: PathBuf,
    /// Each member's metrics URL, and the HTTP client to scrape them with.
    pub metrics: crate::actions::metrics::Scraper,
    /// The etcd binary for members scen starts during steps (snapshot restores).
    pub etcd_bin: PathBuf,
}

/// How long a step's closure may run at plan time, when [`Host::type_steps`] calls it (actions
/// return at once then; this bounds a script's own loops).
const TYPE_STEP_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// State shared by every binding of one scenario's engine.
pub(crate) struct State {
    builder: Mutex<dsl::Builder>,
    overrides: Overrides,
    run: RwLock<Option<RunResources>>,
    records: Mutex<BTreeMap<String, StepRecord>>,
    cancel: CancellationToken,
    progress: RwLock<Option<ProgressSink>>,
    live: RwLock<Option<Arc<crate::live::Hub>>>,
}

/// Where actions send live progress lines: `(step, line)`.
pub type ProgressSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

impl State {
    fn target(&self) -> Option<Target> {
        self.run.read().ok()?.as_ref().map(|r| r.target.clone())
    }
    fn etcd_bin(&self) -> PathBuf {
        self.run
            .read()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.etcd_bin.clone()))
            .unwrap_or_else(|| crate::embedded::EmbeddedConfig::default().etcd_bin)
    }
    fn metrics(&self) -> crate::actions::metrics::Scraper {
        self.run
            .read()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.metrics.clone()))
            .unwrap_or_default()
    }
    fn artifacts(&self) -> Option<PathBuf> {
        self.run.read().ok()?.as_ref().map(|r| r.artifacts.clone())
    }
    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.run.read().ok()?.as_ref().map(|r| r.handle.clone())
    }
}

/// A loaded scenario: its engine, compiled script and the bindings' state.
pub struct Host {
    engine: Arc<Engine>,
    ast: Arc<AST>,
    state: Arc<State>,
    file: PathBuf,
}

/// Builds the sandboxed engine with every scen namespace registered. The state and the scenario's
/// directory are only used by bindings when scripts run; [`api`] builds one just to list functions.
pub(crate) fn build_engine(
    state: Arc<State>,
    base_dir: PathBuf,
    limits: &Limits,
) -> (Engine, resolver::Resolved) {
    let resolved = resolver::Resolved::default();
    let mut engine = Engine::new();
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_modules(limits.max_modules);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(64 << 20);
    engine.set_max_array_size(1_000_000);
    engine.set_max_map_size(100_000);
    engine.set_strict_variables(true);
    engine.disable_symbol("eval");
    engine.set_module_resolver(resolver::Resolver::new(base_dir.clone(), resolved.clone()));
    engine.on_print(|s| {
        // A step's closure called at plan time to type its record prints nothing.
        if !bridge::is_checking() {
            tracing::info!(target: "scen::script", "{s}")
        }
    });
    engine.on_debug(
        |s, src, pos| tracing::debug!(target: "scen::script", "{}:{pos}: {s}", src.unwrap_or("")),
    );
    let cancel = state.cancel.clone();
    engine.on_progress(move |_| {
        if cancel.is_cancelled() {
            Some(Dynamic::from(StopReason::Interrupted))
        } else if bridge::deadline().is_some_and(|d| Instant::now() >= d) {
            Some(Dynamic::from(StopReason::Timeout))
        } else {
            None
        }
    });
    engine
        .register_type_with_name::<ActionError>("ActionError")
        .register_get("message", |e: &mut ActionError| e.message.clone())
        .register_get("kind", |e: &mut ActionError| e.kind.as_str().to_string())
        .register_fn("to_string", |e: &mut ActionError| e.message.clone());
    dsl::register(&mut engine, &state);
    etcd::register(&mut engine, &state);
    cluster::register(&mut engine, &state, &base_dir);
    metrics::register(&mut engine, &state);
    fault::register(&mut engine, &state);
    (engine, resolved)
}

/// Makes the scenario's top-level `import "path" as alias;` modules visible to step closures,
/// which run after the top level (and its imports) finished.
fn expose_imports(engine: &mut Engine, ast: &AST, resolved: &resolver::Resolved) {
    let resolved = resolved.lock().expect("resolved lock");
    for stmt in ast.statements() {
        if let rhai::Stmt::Import(x, _) = stmt {
            if let (rhai::Expr::StringConstant(path, _), alias) = (&x.0, &x.1) {
                if let Some(m) = resolved.get(path.as_str()) {
                    if !alias.name.is_empty() {
                        engine.register_static_module(alias.name.as_str(), m.clone());
                    }
                }
            }
        }
    }
}

/// The scenario's AST plus the closures defined inside imported modules (a stdlib helper that
/// declares steps, a team's common module), so a step whose closure came from a module can be
/// called. Only closures (`anon$...`) are added: a module's named functions never shadow the
/// scenario's own.
fn with_module_closures(mut ast: AST, resolved: &resolver::Resolved) -> AST {
    let resolved = resolved.lock().expect("resolved lock");
    for m in resolved.values() {
        ast.combine_filtered(AST::new_from_module(m.clone()), |_, _, _, name, _| {
            name.starts_with("anon$")
        });
    }
    ast
}

impl Host {
    /// Reads and plans a scenario file: compiles it, runs its top level (which only declares),
    /// applies the overrides and checks the plan. Touches no etcd.
    pub fn load(
        path: &Path,
        overrides: &Overrides,
        limits: &Limits,
        cancel: CancellationToken,
    ) -> Result<(Host, Plan), ScriptError> {
        let source = std::fs::read(path).map_err(|e| {
            let mut err = ScriptError::new(format!("cannot read scenario {}: {e}", path.display()));
            err.hint =
                Some("check the path; `scen list` shows the scenarios in a directory".into());
            err
        })?;
        let sha256 = hex(&Sha256::digest(&source));
        if let Err(e) = std::str::from_utf8(&source) {
            let at = e.valid_up_to();
            let line = source[..at].iter().filter(|b| **b == b'\n').count() + 1;
            let column = at
                - source[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
                + 1;
            let mut err = ScriptError::new(format!(
                "{}:{line}:{column}: the file is not UTF-8 text (byte 0x{:02x})",
                path.display(),
                source[at]
            ));
            err.hint = Some("save the scenario as UTF-8".into());
            return Err(err);
        }
        let state = Arc::new(State {
            builder: Mutex::new(dsl::Builder::default()),
            overrides: overrides.clone(),
            run: RwLock::new(None),
            records: Mutex::new(BTreeMap::new()),
            cancel,
            progress: RwLock::new(None),
            live: RwLock::new(None),
        });
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let (mut engine, resolved) = build_engine(state.clone(), base, limits);
        let ast = engine
            .compile_file(path.to_path_buf())
            .map_err(|e| to_script_error(&e, path))?;
        let plan_ops = limits.max_plan_operations.min(limits.max_operations);
        engine.set_max_operations(plan_ops);
        let top = bridge::in_step("", Some(Instant::now() + limits.max_plan_time), || {
            engine.run_ast(&ast)
        });
        engine.set_max_operations(limits.max_operations);
        top.map_err(|e| {
            let mut err = to_script_error(&e, path);
            let hint = "the top level only declares the plan: do the work inside a step";
            match innermost(&e, "").0 {
                EvalAltResult::ErrorTooManyOperations(_) => {
                    err.message = format!(
                        "the top level exceeded its operation limit of {plan_ops} (an endless loop?)"
                    );
                    err.hint = Some(hint.into());
                }
                EvalAltResult::ErrorTerminated(why, _)
                    if stop_reason(why) == Some(StopReason::Timeout) =>
                {
                    err.message = format!(
                        "the top level ran longer than its limit of {} (an endless loop?)",
                        crate::units::format_quantity(
                            limits.max_plan_time.as_millis() as f64,
                            crate::units::Dimension::Duration
                        )
                    );
                    err.hint = Some(hint.into());
                }
                _ => {}
            }
            err
        })?;
        expose_imports(&mut engine, &ast, &resolved);
        let ast = with_module_closures(ast, &resolved);

        let b = std::mem::take(&mut *state.builder.lock().expect("builder lock"));
        for item in &b.items {
            if let Item::Step(st) = item {
                if let Some(n) = step_arity(&st.func, &ast).filter(|n| *n > 1) {
                    let mut e = ScriptError::new(format!(
                        "step `{}`: the closure takes {n} arguments; it gets one, the parameters",
                        st.name
                    ));
                    e.line_text = source_line(path, &st.pos.file, st.pos.line);
                    e.pos = Some(st.pos.clone());
                    e.hint = Some("write the step as |p| ...".into());
                    return Err(e);
                }
            }
        }
        if let Some((name, pos)) = fields::declaration_in_closure(&ast) {
            let line = pos.line().unwrap_or(0);
            let file = path.display().to_string();
            let mut e = ScriptError::new(format!(
                "{name}() inside a step's closure: a step runs after the plan is made, too late to declare anything"
            ));
            e.line_text = source_line(path, &file, line);
            e.pos = Some(SourcePos {
                file,
                line,
                column: pos.position().unwrap_or(0),
            });
            e.hint = Some(format!("call {name}() at the top level of the scenario"));
            return Err(e);
        }
        let mut plan = finish_plan(b, path, sha256, overrides, &ast)?;
        let host = Host {
            engine: Arc::new(engine),
            ast: Arc::new(ast),
            state,
            file: path.to_path_buf(),
        };
        host.type_steps(&mut plan)?;
        check_threshold_fields(&mut plan, path)?;
        Ok((host, plan))
    }

    /// Calls every step's closure at plan time, in check mode: actions decode and check their
    /// options, then return an empty record tagged with its type, without acting. A refused
    /// option is an error now; what the closure returns types the step's record (however the
    /// closure reaches the action: directly, through a `fn`, in a map). What cannot be known yet
    /// (a `result(...)` of an earlier step) is left to the run. Each call has [`TYPE_STEP_TIME`].
    fn type_steps(&self, plan: &mut Plan) -> Result<(), ScriptError> {
        let resolved = plan.resolved.clone();
        for item in &mut plan.items {
            let Item::Step(step) = item else { continue };
            let deadline = Some(Instant::now() + TYPE_STEP_TIME);
            let (result, refused) = bridge::checking(|| self.call_step(step, &resolved, deadline));
            match (result, refused) {
                (Err(mut e), true) => {
                    e.hint.get_or_insert_with(|| {
                        "`scen api` lists each action's options with their types and defaults"
                            .into()
                    });
                    return Err(e);
                }
                (Ok(record), _) => {
                    step.action = record.action;
                    step.field_actions = record.field_actions;
                }
                (Err(_), false) => {}
            }
        }
        Ok(())
    }

    /// Makes the target available to bindings: from now on actions may run.
    pub fn begin_run(&self, run: RunSetup) {
        let RunSetup {
            target,
            handle,
            progress,
            live,
            artifacts,
            metrics,
            etcd_bin,
        } = run;
        *self.state.run.write().expect("run lock") = Some(RunResources {
            target,
            handle,
            artifacts,
            metrics,
            etcd_bin,
        });
        *self.state.progress.write().expect("progress lock") = progress;
        *self.state.live.write().expect("live lock") = live;
    }

    /// Ends the run: bindings refuse actions again, and the client connection is released.
    pub fn end_run(&self) {
        *self.state.run.write().expect("run lock") = None;
    }

    /// Calls a step's closure (blocking: call from a blocking thread) and returns its record.
    pub fn call_step(
        &self,
        step: &StepSpec,
        params: &Resolved,
        deadline: Option<Instant>,
    ) -> Result<StepRecord, ScriptError> {
        let p =
            rhai::serde::to_dynamic(&params.values).map_err(|e| ScriptError::new(e.to_string()))?;
        let takes_params = step_arity(&step.func, &self.ast) != Some(0);
        let result = bridge::in_step(&step.name, deadline, || {
            if takes_params {
                step.func.call::<Dynamic>(&self.engine, &self.ast, (p,))
            } else {
                step.func.call::<Dynamic>(&self.engine, &self.ast, ())
            }
        });
        match result {
            Ok(v) => record_of(v).map_err(|why| {
                let mut err = ScriptError::new(format!("step `{}` {why}", step.name));
                err.line_text = source_line(&self.file, &step.pos.file, step.pos.line);
                err.pos = Some(step.pos.clone());
                err.hint = Some("end the closure with an action call, a map, or `;`".into());
                err
            }),
            Err(e) => {
                let mut err = to_script_error(&e, &self.file);
                // Some errors (the operation limit) carry no position: point at the step.
                if err.pos.is_none() {
                    err.line_text = source_line(&self.file, &step.pos.file, step.pos.line);
                    err.pos = Some(step.pos.clone());
                }
                Err(err)
            }
        }
    }

    /// Stores a finished step's record so later steps can read it with `result("name")`, still
    /// typed.
    pub fn store_record(&self, step: &str, record: StepRecord) {
        self.state
            .records
            .lock()
            .expect("records lock")
            .insert(step.to_string(), record);
    }
}

/// The number of parameters a step closure takes beyond its captured variables, when known
/// (closures defined in imported modules are not in the scenario's AST).
fn step_arity(f: &rhai::FnPtr, ast: &AST) -> Option<usize> {
    ast.iter_functions()
        .find(|d| d.name == f.fn_name())
        .map(|d| d.params.len().saturating_sub(f.curry().len()))
}

/// Converts what a step returned into its record: a map as is, nothing as `{}`; anything else
/// is the script's mistake, described by the error. The tags of an action's record, on the whole
/// or on a field of a map, say what types it.
fn record_of(v: Dynamic) -> Result<StepRecord, String> {
    if v.is_unit() {
        return Ok(StepRecord {
            value: serde_json::json!({}),
            ..StepRecord::default()
        });
    }
    let action = bridge::tagged_action(&v).map(str::to_string);
    let field_actions = match (&action, v.read_lock::<rhai::Map>()) {
        (None, Some(m)) => m
            .iter()
            .filter_map(|(k, f)| Some((k.to_string(), bridge::tagged_action(f)?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    };
    match rhai::serde::from_dynamic::<serde_json::Value>(&v) {
        Ok(serde_json::Value::Object(m)) => Ok(StepRecord {
            value: serde_json::Value::Object(m),
            action,
            field_actions,
        }),
        _ => Err(format!(
            "returned {} ({}): a step returns a record (a map, `#{{ ... }}`) or nothing",
            crate::quote::quote(&v.to_string()),
            bridge::kind_of(&v)
        )),
    }
}

/// The unit of a threshold's field, when the plan knows the record it reads: the server view
/// every step gets, `duration_ms`, or the record of an action the step's closure calls directly.
/// `Ok(None)`: the record is the script's own (untyped), or the field is only `counted` (it must
/// exist, of any type). `Err`: the field does not exist, or is not a number where one is compared.
fn unit_of_field(
    field: &FieldPath,
    steps: &[&StepSpec],
    counted: bool,
) -> Result<Option<Unit>, String> {
    let read = |schema: &serde_json::Value, path: &FieldPath| {
        if counted {
            measure::schema::field_exists(schema, path).map(|()| None)
        } else {
            measure::schema::field_unit(schema, path).map(Some)
        }
    };
    // `<step>.server.*` is the per-step server view every step gets; `<step>.apiserver.*` the
    // embedded control plane's.
    for (key, schema) in crate::report::typed::STEP_VIEWS.iter() {
        if field.0.get(1) == Some(&Segment::Key((*key).into())) {
            let mut rest = vec![field.0[0].clone()];
            rest.extend(field.0[2..].iter().cloned());
            return read(schema, &FieldPath(rest)).map_err(|why| {
                format!("reads `{field}`, which the {key} view of a step does not have: {why}")
            });
        }
    }
    if field.0.len() == 2 && field.0[1] == Segment::Key("duration_ms".into()) {
        return Ok(Some(Unit::Ms)); // every step record has it
    }
    let Some(step) = steps.iter().find(|s| s.name == field.step()) else {
        return Ok(None);
    };
    if let Some(action) = &step.action {
        let Some(ty) = RecordType::of_action(action) else {
            return Ok(None);
        };
        return read(ty.schema(), field)
            .map_err(|why| format!("reads `{field}`, which {action} does not record: {why}"));
    }
    // A map of the script's own: a field that holds an action's record is typed by it.
    let Some(Segment::Key(key)) = field.0.get(1) else {
        return Ok(None);
    };
    let Some((action, ty)) = step
        .field_actions
        .get(key)
        .and_then(|a| Some((a, RecordType::of_action(a)?)))
    else {
        return Ok(None);
    };
    let mut rest = vec![field.0[0].clone()];
    rest.extend(field.0[2..].iter().cloned());
    read(ty.schema(), &FieldPath(rest)).map_err(|why| {
        format!("reads `{field}`: its `{key}` is the record of {action}, which does not record that: {why}")
    })
}

/// Checks each threshold's field paths against the records of the steps they read (as typed by
/// [`Host::type_steps`]), and every comparison's units against the fields' types.
fn check_threshold_fields(plan: &mut Plan, path: &Path) -> Result<(), ScriptError> {
    let at = |pos: &SourcePos, message: String, hint: Option<String>| {
        let mut e = ScriptError::new(message);
        e.line_text = source_line(path, &pos.file, pos.line);
        e.pos = Some(pos.clone());
        e.hint = hint;
        e
    };
    let steps: Vec<StepSpec> = plan.steps().cloned().collect();
    let steps: Vec<&StepSpec> = steps.iter().collect();
    let steps = steps.as_slice();
    for t in &mut plan.thresholds {
        // Field paths of steps that directly call a known action are checked against its record,
        // and every comparison's units against the fields' types.
        let mut units = BTreeMap::new();
        for field in t.threshold.paths() {
            match unit_of_field(field, steps, t.threshold.only_counted(field)) {
                Ok(Some(u)) => {
                    units.insert(field.to_string(), u);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(at(
                        &t.pos,
                        format!("threshold `{}` {e}", t.threshold.source),
                        Some(
                            "`scen api` lists the fields each action returns, with their units"
                                .into(),
                        ),
                    ))
                }
            }
        }
        let checked = t
            .threshold
            .check_units(&|f: &FieldPath| units.get(&f.to_string()).copied());
        if let Err(why) = checked {
            return Err(at(
                &t.pos,
                format!("threshold `{}`: {why}", t.threshold.source),
                Some("write the limit in the field's unit: durations as 25ms or 2s, sizes as 512MiB, rates as 100/s, ratios as 5%".into()),
            ));
        }
    }
    Ok(())
}

fn finish_plan(
    mut b: dsl::Builder,
    path: &Path,
    sha256: String,
    overrides: &Overrides,
    ast: &AST,
) -> Result<Plan, ScriptError> {
    let file = path.display().to_string();
    let at = |pos: &SourcePos, message: String, hint: Option<String>| {
        let mut e = ScriptError::new(message);
        e.line_text = source_line(path, &pos.file, pos.line);
        e.pos = Some(pos.clone());
        e.hint = hint;
        e
    };
    if b.items.is_empty() {
        let mut e = ScriptError::new(format!("{file} declares no steps"));
        e.hint = Some("add at least one: step(\"status\", |p| etcd::status());".into());
        return Err(e);
    }
    let steps: Vec<&StepSpec> = b
        .items
        .iter()
        .filter_map(|i| if let Item::Step(s) = i { Some(s) } else { None })
        .collect();
    for (names, pos) in &b.compare_steps {
        for name in names {
            if !steps.iter().any(|s| &s.name == name) {
                let all: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
                return Err(at(
                    pos,
                    format!(
                        "report: compare names step `{name}`, which this scenario does not declare"
                    ),
                    Some(format!("the steps are: {}", all.join(", "))),
                ));
            }
        }
    }
    for t in &mut b.thresholds {
        for name in t.threshold.steps() {
            if !steps.iter().any(|s| s.name == name) {
                let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
                return Err(at(
                    &t.pos,
                    format!(
                        "threshold `{}` reads step `{name}`, which this scenario does not declare",
                        t.threshold.source
                    ),
                    Some(format!("the steps are: {}", names.join(", "))),
                ));
            }
        }
    }
    // Unknown override keys and bad values are found here, once every parameter is declared.
    let resolved = params::resolve(&b.params, overrides).map_err(|e| {
        let mut err = ScriptError::new(e.to_string());
        err.hint =
            Some("`scen check FILE` lists the parameters with their types and defaults".into());
        err
    })?;
    let name = b.name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    // The closures of the steps declared (a step inside an `if` that was false is not one).
    let step_fns: Vec<String> = b
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Step(s) => Some(s.func.fn_name().to_string()),
            Item::Join { .. } => None,
        })
        .collect();
    let faults = fields::calls_in(ast, &step_fns, "fault");
    let network: Vec<_> = faults
        .iter()
        .filter(|(n, _)| matches!(n.as_str(), "partition" | "heal" | "link"))
        .collect();
    if let Some((call, pos)) = network.first() {
        let pos = SourcePos {
            file: file.clone(),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
        };
        let hint = Some("declare embedded_etcd(#{ members: 3, network_faults: true })".to_string());
        if b.embedded.members == Some(1) {
            return Err(at(
                &pos,
                format!("fault::{call} cuts links between members, and embedded_etcd declares members: 1: a network fault needs members: 3 or 5"),
                hint,
            ));
        }
        if b.embedded.network_faults != Some(true) {
            return Err(at(
                &pos,
                format!("fault::{call} needs the peer proxies, which embedded_etcd does not ask for (network_faults: true)"),
                hint,
            ));
        }
    }
    Ok(Plan {
        name,
        description: b.description,
        file: path.to_path_buf(),
        sha256,
        params: b.params,
        resolved,
        items: b.items,
        thresholds: b.thresholds,
        embedded: b.embedded,
        control_plane: b.control_plane.clone(),
        needs_maintenance: fields::calls_in(ast, &step_fns, "etcd")
            .iter()
            .filter(|(n, _)| matches!(n.as_str(), "compact" | "defrag" | "disarm"))
            .map(|(name, pos)| format!("etcd::{name} (line {})", pos.line().unwrap_or(0)))
            .collect(),
        needs_network: network
            .iter()
            .map(|(name, pos)| format!("fault::{name} (line {})", pos.line().unwrap_or(0)))
            .collect(),
        needs_embedded: faults
            .iter()
            .map(|(name, pos)| format!("fault::{name} (line {})", pos.line().unwrap_or(0)))
            .collect(),
        compare_steps: b.compare_steps.into_iter().map(|(n, _)| n).collect(),
        warnings: renamed::scan(ast)
            .into_iter()
            .map(|(line, m)| format!("{file}:{line}: {m}"))
            .chain(
                b.control_plane
                    .iter()
                    .filter_map(|s| s.check().err())
                    .map(|e| format!("{file}: {e}")),
            )
            .collect(),
    })
}

/// Reads line `line` of the file an error points into: the scenario, an imported file or a stdlib module.
fn source_line(main: &Path, file: &str, line: usize) -> Option<String> {
    if line == 0 {
        return None;
    }
    let text = if let Some((_, src)) = stdlib_source(file) {
        src.to_string()
    } else if file.is_empty() || Path::new(file) == main {
        std::fs::read_to_string(main).ok()?
    } else {
        let p = Path::new(file);
        let p = if p.exists() {
            p.to_path_buf()
        } else {
            main.parent()?.join(p)
        };
        std::fs::read_to_string(p).ok()?
    };
    text.lines().nth(line - 1).map(|l| l.trim_end().to_string())
}

/// Finds the innermost error of a Rhai error chain, with the file it happened in.
fn innermost<'a>(e: &'a EvalAltResult, file: &str) -> (&'a EvalAltResult, String) {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, src, inner, _) => {
            innermost(inner, if src.is_empty() { file } else { src.as_str() })
        }
        EvalAltResult::ErrorInModule(path, inner, _) => {
            let f = stdlib_source(path).map_or_else(
                || {
                    if Path::new(path.as_str()).extension().is_none() {
                        format!("{path}.rhai") // as the file is named
                    } else {
                        path.clone()
                    }
                },
                |(n, _)| format!("stdlib/{n}.rhai"),
            );
            innermost(inner, &f)
        }
        other => (other, file.to_string()),
    }
}

/// Turns a Rhai error into a [`ScriptError`] with its position, source line, class and a hint.
pub(crate) fn to_script_error(e: &EvalAltResult, main: &Path) -> ScriptError {
    let (inner, file) = innermost(e, &main.display().to_string());
    let pos: Position = inner.position();
    let mut record = None;
    let mut record_action = None;
    let (kind, message, hint) =
        match inner {
            EvalAltResult::ErrorRuntime(v, _) if v.is::<ActionError>() => {
                let a = v.clone().cast::<ActionError>();
                record = a.record;
                record_action = a.action;
                (a.kind, a.message, None)
            }
            EvalAltResult::ErrorRuntime(v, _) => (
                ErrorKind::Script,
                format!("the script raised an error: {v}"),
                None,
            ),
            EvalAltResult::ErrorTerminated(v, _) => {
                if stop_reason(v) == Some(StopReason::Timeout) {
                    (
                        ErrorKind::StepTimeout,
                        "the step ran past its timeout".to_string(),
                        None,
                    )
                } else {
                    (ErrorKind::Interrupted, "interrupted".to_string(), None)
                }
            }
            EvalAltResult::ErrorParsing(p, _) => (
                ErrorKind::Script,
                format!("syntax error: {p}"),
                Some("fix the syntax; `scen check FILE` re-checks without touching etcd".into()),
            ),
            EvalAltResult::ErrorTooManyOperations(_) => (
                ErrorKind::Script,
                "the script exceeded its operation limit (an endless loop?)".into(),
                Some("bound the loop, or raise the limit with --max-operations".into()),
            ),
            EvalAltResult::ErrorStackOverflow(_) => (
                ErrorKind::Script,
                "the script recursed too deeply: a function calls itself without end?".into(),
                Some("give the recursion an end, or write it as a bounded loop".into()),
            ),
            EvalAltResult::ErrorVariableNotFound(name, _) => (
                ErrorKind::Script,
                format!("variable `{name}` is not defined"),
                Some("step closures receive the parameters as their argument: |p| p.name".into()),
            ),
            EvalAltResult::ErrorFunctionNotFound(sig, _) => (
                ErrorKind::Script,
                format!("no function {sig}"),
                Some("`scen api` lists every function and its arguments".into()),
            ),
            EvalAltResult::ErrorModuleNotFound(m, _) => {
                (
                    ErrorKind::Script,
                    format!("module `{m}` not found"),
                    Some(format!(
                "stdlib modules are: {}; other imports are paths relative to the scenario file",
                STDLIB.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )),
                )
            }
            other => (
                ErrorKind::Script,
                other.to_string().replace(&format!(" ({pos})"), ""),
                None,
            ),
        };
    let mut err = ScriptError {
        message,
        record,
        record_action,
        pos: None,
        line_text: None,
        hint,
        kind,
    };
    if let (Some(line), Some(column)) = (pos.line(), pos.position()) {
        err.line_text = source_line(main, &file, line);
        err.pos = Some(SourcePos { file, line, column });
    }
    err
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The script position of a binding's call site.
pub(crate) fn pos_of(ctx: &rhai::NativeCallContext) -> SourcePos {
    let p = ctx.call_position();
    SourcePos {
        file: ctx
            .call_source()
            .or(ctx.fn_source())
            .unwrap_or_default()
            .to_string(),
        line: p.line().unwrap_or(0),
        column: p.position().unwrap_or(0),
    }
}

/// The reason a script was terminated with (the `on_progress` token, or a stopped action's).
fn stop_reason(token: &Dynamic) -> Option<StopReason> {
    token.clone().try_cast::<StopReason>()
}

//! The one place Rhai meets async Rust: bindings decode options, then [`action`] runs the plain
//! async action on the run's runtime (the script runs on a blocking thread), honouring Ctrl-C and
//! the step's deadline, and turns the record or the error into Rhai values with the call position.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, EvalAltResult, NativeCallContext, Position};
use serde::de::DeserializeOwned;

use super::State;
use crate::actions;
use crate::actions::registry::{self, ActionRecord, RecordType};
use crate::target::Target;

thread_local! {
    /// The deadline of the step running on this thread, read by `on_progress` and [`block_on`].
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The name of the step running on this thread, for progress lines.
    static STEP: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// Set while `scen check` calls a step's closure to check its options: actions decode and
    /// check their options, then return `()` without acting.
    static CHECKING: Cell<bool> = const { Cell::new(false) };
    /// Whether an action's options were refused during that check.
    static OPTIONS_REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` in check mode (see `CHECKING`); returns its result and whether an action refused its
/// options.
pub(crate) fn checking<R>(f: impl FnOnce() -> R) -> (R, bool) {
    CHECKING.with(|c| c.set(true));
    OPTIONS_REFUSED.with(|c| c.set(false));
    let r = f();
    CHECKING.with(|c| c.set(false));
    (r, OPTIONS_REFUSED.with(Cell::get))
}

/// Whether this thread is checking a plan rather than running it.
pub(crate) fn is_checking() -> bool {
    CHECKING.with(Cell::get)
}

/// An options error: raised at the call site, and noted when checking a plan.
pub(crate) fn options_error(
    ctx: &NativeCallContext,
    message: impl Into<String>,
) -> Box<EvalAltResult> {
    if is_checking() {
        OPTIONS_REFUSED.with(|c| c.set(true));
    }
    usage(ctx, message)
}

/// Runs `f` as step `name` with `deadline` as this thread's step deadline.
pub(crate) fn in_step<R>(name: &str, deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
    DEADLINE.with(|d| d.set(deadline));
    STEP.with(|s| *s.borrow_mut() = name.to_string());
    let r = f();
    DEADLINE.with(|d| d.set(None));
    STEP.with(|s| s.borrow_mut().clear());
    r
}

/// Who watches the step running on this thread: the front end's progress lines, when it wants
/// them, and the run's live outputs, when it has any.
pub(crate) fn watch(state: &State) -> crate::actions::Watch {
    let step = STEP.with(|s| s.borrow().clone());
    let line = state
        .progress
        .read()
        .ok()
        .and_then(|p| p.clone())
        .map(|sink| {
            let step = step.clone();
            Arc::new(move |line: String| sink(&step, &line)) as crate::actions::ProgressFn
        });
    let live = state
        .live
        .read()
        .ok()
        .and_then(|h| h.clone())
        .map(|hub| Arc::new(hub.feed(&step)) as crate::measure::totals::SharedFeed);
    crate::actions::Watch { line, live }
}

/// This thread's step deadline.
pub(crate) fn deadline() -> Option<Instant> {
    DEADLINE.with(Cell::get)
}

/// An error raised by an action, as scripts see it (`try { } catch (e) { print(e.message) }`).
#[derive(Debug, Clone)]
pub struct ActionError {
    /// What kind of failure; decides the exit code.
    pub kind: crate::report::ErrorKind,
    /// What went wrong.
    pub message: String,
    /// What the action measured before it failed, kept as the step's record.
    pub record: Option<serde_json::Value>,
    /// The action whose partial record that is (`etcd::stress`).
    pub action: Option<String>,
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A Rhai runtime error carrying an [`ActionError`] at `pos`.
pub(crate) fn raise(
    kind: crate::report::ErrorKind,
    message: impl Into<String>,
    pos: Position,
) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(
        Dynamic::from(ActionError {
            kind,
            message: message.into(),
            record: None,
            action: None,
        }),
        pos,
    )
    .into()
}

/// A script-usage error (exit code 2) at the call site.
pub(crate) fn usage(ctx: &NativeCallContext, message: impl Into<String>) -> Box<EvalAltResult> {
    raise(
        crate::report::ErrorKind::Script,
        message,
        ctx.call_position(),
    )
}

/// Decodes an options map into `T` (unknown keys are errors that name the function).
pub(crate) fn options<T: DeserializeOwned + actions::CheckOptions>(
    ctx: &NativeCallContext,
    what: &str,
    map: Dynamic,
) -> Result<T, Box<EvalAltResult>> {
    let o: T = decode(ctx, what, map)?;
    o.check().map_err(|e| refused(ctx, what, e))?;
    Ok(o)
}

/// Decodes an options map into `T` without checking it (for options made of several parts,
/// checked together).
pub(crate) fn decode<T: DeserializeOwned>(
    ctx: &NativeCallContext,
    what: &str,
    map: Dynamic,
) -> Result<T, Box<EvalAltResult>> {
    let map = super::renamed::apply(ctx, what, map)?;
    rhai::serde::from_dynamic(&map).map_err(|e| {
        options_error(
            ctx,
            format!("invalid options for {what}: {}", inner_message(&e)),
        )
    })
}

/// An action's refusal of its options, at the call site (and noted when checking a plan).
pub(crate) fn refused(
    ctx: &NativeCallContext,
    what: &str,
    e: actions::Error,
) -> Box<EvalAltResult> {
    let why = match e {
        actions::Error::Options(m) => m,
        other => other.to_string(),
    };
    options_error(ctx, format!("invalid options for {what}: {why}"))
}

fn inner_message(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorParsing(p, _) => p.to_string(),
        EvalAltResult::ErrorMismatchDataType(want, got, _) => format!("expected {want}, got {got}"),
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        other => other.to_string(),
    }
    .replace(" (line 0, position 0)", "")
}

/// Runs a future on the run's runtime from the script thread, stopping at Ctrl-C or the deadline.
pub(crate) fn block_on<T>(
    state: &State,
    fut: impl Future<Output = actions::Result<T>>,
) -> actions::Result<T> {
    let handle = state
        .handle()
        .ok_or(actions::Error::Stopped(actions::StopReason::NoRun))?;
    let cancel = state.cancel.clone();
    let deadline = deadline();
    handle.block_on(async move {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = fut => r,
            _ = cancel.cancelled() => Err(actions::Error::Stopped(actions::StopReason::Interrupted)),
            _ = sleep => Err(actions::Error::Stopped(actions::StopReason::Timeout)),
        }
    })
}

/// Runs an action of `namespace` inside a step: checks a run is in progress, runs it, converts the record.
pub(crate) fn action<T, Fut>(
    state: &State,
    ctx: &NativeCallContext,
    namespace: &str,
    f: impl FnOnce(Target) -> Fut,
) -> Result<Dynamic, Box<EvalAltResult>>
where
    T: ActionRecord,
    Fut: Future<Output = actions::Result<T>>,
{
    let name = format!("{namespace}::{}", ctx.fn_name());
    debug_assert_eq!(
        RecordType::of_action(&name),
        Some(T::TYPE),
        "{name} is missing from actions::registry::ACTIONS, or listed with another record type"
    );
    let tag = registry::tag_of(&name).unwrap_or(0);
    if is_checking() {
        // The options were decoded; nothing runs at plan time. The plan learns the step's
        // record type from the tag of an empty record.
        let mut empty = Dynamic::from_map(rhai::Map::new());
        empty.set_tag(tag);
        return Ok(empty);
    }
    let Some(target) = state.target() else {
        return Err(usage(
            ctx,
            format!(
                "{namespace}::{} can only run inside a step: a scenario file declares, its steps act. Wrap it: step(\"name\", |p| {namespace}::{}(...))",
                ctx.fn_name(),
                ctx.fn_name()
            ),
        ));
    };
    match block_on(state, f(target)) {
        Ok(record) => rhai::serde::to_dynamic(record).map(|mut d| {
            d.set_tag(tag);
            d
        }),
        Err(e) => Err(action_error_of(&e, ctx.call_position(), Some(&name))),
    }
}

/// The action whose record a value is, from its tag (see [`registry::tag_of`]).
pub(crate) fn tagged_action(v: &Dynamic) -> Option<&'static str> {
    registry::action_of_tag(v.tag())
}

/// A finished step's record as the script sees it again (`result(...)`): tagged as its action's
/// record, or its fields as theirs, so it stays typed in the step that returns it.
pub(crate) fn typed_dynamic(r: &super::StepRecord) -> Result<Dynamic, Box<EvalAltResult>> {
    let mut v = rhai::serde::to_dynamic(&r.value)?;
    let tag = |d: &mut Dynamic, action: &str| {
        if let Some(t) = registry::tag_of(action) {
            d.set_tag(t);
        }
    };
    if let Some(a) = &r.action {
        tag(&mut v, a);
    } else if let Some(mut m) = v.write_lock::<rhai::Map>() {
        for (k, a) in &r.field_actions {
            if let Some(f) = m.get_mut(k.as_str()) {
                tag(f, a);
            }
        }
    }
    Ok(v)
}

/// Converts an action error into the Rhai error scripts see.
pub(crate) fn action_error(e: &actions::Error, pos: Position) -> Box<EvalAltResult> {
    action_error_of(e, pos, None)
}

/// As [`action_error`], for an error of `action`, whose partial record it may carry.
fn action_error_of(e: &actions::Error, pos: Position, action: Option<&str>) -> Box<EvalAltResult> {
    match e {
        actions::Error::WithRecord { source, record } => {
            let err = ActionError {
                kind: source.kind(),
                message: source.to_string(),
                record: Some((**record).clone()),
                action: action.map(str::to_string),
            };
            EvalAltResult::ErrorRuntime(Dynamic::from(err), pos).into()
        }
        actions::Error::Stopped(why) => {
            EvalAltResult::ErrorTerminated(Dynamic::from(*why), pos).into()
        }
        e => raise(e.kind(), e.to_string(), pos),
    }
}

/// The bytes of a value a script passes as data: text or a blob; anything else is the script's
/// mistake (a map would be stored as Rhai's debug text).
pub(crate) fn bytes_of(
    ctx: &NativeCallContext,
    what: &str,
    v: &Dynamic,
) -> Result<Vec<u8>, Box<EvalAltResult>> {
    if v.is_blob() {
        Ok(v.clone().cast::<rhai::Blob>())
    } else if v.is_string() {
        Ok(v.clone().into_string().unwrap_or_default().into_bytes())
    } else {
        Err(usage(
            ctx,
            format!(
                "{what}: the value is {} ({}); give text or a blob (`x.to_string()`, or `m.to_json()` for a map)",
                crate::quote::quote(&v.to_string()),
                kind_of(v)
            ),
        ))
    }
}

/// What a value is, in words: "an integer", "a map".
pub(crate) fn kind_of(v: &Dynamic) -> &'static str {
    if v.is_int() {
        "an integer"
    } else if v.is_float() {
        "a number"
    } else if v.is_bool() {
        "a boolean"
    } else if v.is_string() || v.is_char() {
        "text"
    } else if v.is_array() {
        "an array"
    } else if v.is_map() {
        "a map"
    } else if v.is_blob() {
        "a blob"
    } else if v.is_fnptr() {
        "a function"
    } else {
        "a value of another type"
    }
}

//! Options renamed so every load loop speaks one vocabulary (`clients` for requests in flight):
//! the old name keeps working with a deprecation warning, because teams share scenario files.
//! `scen check` warns where a literal options map uses an old name; a run warns once per call
//! site, whatever built the map.

use std::collections::BTreeSet;
use std::sync::Mutex;

use rhai::{ASTNode, Dynamic, EvalAltResult, Expr, NativeCallContext, AST};

/// `(action, old option name, new name)`.
pub const RENAMED_OPTIONS: &[(&str, &str, &str)] = &[
    ("etcd::put_many", "concurrency", "clients"),
    ("cluster::simulate", "concurrency", "clients"),
    ("cluster::simulate_through", "concurrency", "clients"),
    ("cluster::heartbeat", "concurrency", "clients"),
];

/// Call sites already warned about in this process: `(source, line, old name)`.
static WARNED: Mutex<BTreeSet<(String, usize, &'static str)>> = Mutex::new(BTreeSet::new());

fn message(what: &str, old: &str, new: &str) -> String {
    format!("{what} option `{old}` is deprecated: it was renamed to `{new}` (the old name still works for now)")
}

/// Moves options given under an old name to the new one, warning once per call site. Giving both
/// is an error.
pub(crate) fn apply(
    ctx: &NativeCallContext,
    what: &str,
    map: Dynamic,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let renames: Vec<_> = RENAMED_OPTIONS.iter().filter(|r| r.0 == what).collect();
    if renames.is_empty() || !map.is_map() {
        return Ok(map);
    }
    let mut m = map.cast::<rhai::Map>();
    for &&(_, old, new) in &renames {
        let Some(v) = m.remove(old) else { continue };
        if m.contains_key(new) {
            return Err(super::bridge::options_error(
                ctx,
                format!("{what}: give `{new}` only (`{old}` is its old name)"),
            ));
        }
        m.insert(new.into(), v);
        let pos = ctx.call_position();
        let source = ctx.call_source().unwrap_or("scenario").to_string();
        let line = pos.line().unwrap_or(0);
        // `scen check` (and a run's plan check) warns from the AST scan; the run warns here.
        if super::bridge::is_checking() {
            continue;
        }
        let first = WARNED
            .lock()
            .map(|mut w| w.insert((source.clone(), line, old)))
            .unwrap_or(true);
        if first {
            tracing::warn!("{source}:{line}: {}", message(what, old, new));
        }
    }
    Ok(Dynamic::from_map(m))
}

/// Warnings for literal options maps that use an old name: `(line, message)`.
pub(crate) fn scan(ast: &AST) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _))) => Some(call),
            Some(ASTNode::Stmt(rhai::Stmt::FnCall(call, _))) => Some(call),
            _ => None,
        };
        if let Some(call) = call {
            let what = format!("{}::{}", call.namespace, call.name);
            for arg in call.args.iter() {
                // A map literal, or one the optimiser folded into a constant.
                let keys: Vec<(String, rhai::Position)> = match arg {
                    Expr::Map(m, _) => {
                        m.0.iter()
                            .map(|(k, _)| (k.name.to_string(), k.pos))
                            .collect()
                    }
                    Expr::DynamicConstant(v, pos) => v
                        .read_lock::<rhai::Map>()
                        .map(|m| m.keys().map(|k| (k.to_string(), *pos)).collect())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                for (key, pos) in keys {
                    if let Some((_, old, new)) =
                        RENAMED_OPTIONS.iter().find(|r| r.0 == what && r.1 == key)
                    {
                        out.push((pos.line().unwrap_or(0), message(&what, old, new)));
                    }
                }
            }
        }
        true
    });
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn literal_maps_with_old_names_are_found() {
        let engine = rhai::Engine::new();
        let ast = engine
            .compile("step(\"w\", |p| etcd::put_many(#{ count: 1,\n concurrency: 3 }));")
            .unwrap();
        let found = super::scan(&ast);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!([1, 2].contains(&found[0].0), "{found:?}");
        let ast = engine
            .compile("step(\"w\", |p| etcd::put_many(#{ count: p.n, concurrency: p.c }));")
            .unwrap();
        assert_eq!(super::scan(&ast).len(), 1);
        assert!(found[0].1.contains("renamed to `clients`"));
    }
}

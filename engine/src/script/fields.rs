//! Plan-time checks of threshold field paths: when a step's closure is a direct call to a known
//! action (`|p| etcd::status()`), the action's record schema says which fields exist, so a typo
//! such as `status.db_sise` is caught by `scen check` instead of after a long run.

use rhai::{ASTNode, Expr, Position, Stmt, AST};
use serde_json::Value;

use crate::plan::StepSpec;
use crate::threshold::{FieldPath, Segment};

/// The action a step's closure calls directly (`etcd::status`), when its body is exactly one call.
pub(crate) fn direct_action(step: &StepSpec, ast: &AST) -> Option<(String, String)> {
    let def = ast.iter_fn_def().find(|d| d.name == step.func.fn_name())?;
    let key = |p: Position| (p.line().unwrap_or(0), p.position().unwrap_or(0));
    let (start, end) = (def.body.start_position(), def.body.end_position());
    // The body's own statements: an expression body `|p| expr` has no end and starts at its
    // statement; a braced body spans its statements. Nested closures make more than one: skip.
    let mut body: Vec<Stmt> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(s)] = path {
            let at = key(s.position());
            let inside = if end.is_none() {
                at == key(start)
            } else {
                at > key(start) && at <= key(end)
            };
            if inside {
                body.push((*s).clone());
            }
        }
        true
    });
    let call = match body.as_slice() {
        [Stmt::FnCall(x, _)] => x.clone(),
        [Stmt::Expr(e)] => match e.as_ref() {
            Expr::FnCall(x, _) => x.clone(),
            _ => return None,
        },
        _ => return None,
    };
    let ns = call.namespace.to_string();
    (!ns.is_empty()).then(|| (ns, call.name.to_string()))
}

/// Follows `$ref`s into `$defs` and unwraps `Option<T>` (`anyOf: [T, null]`).
fn resolve<'a>(defs: Option<&'a Value>, mut v: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            match defs.and_then(|d| d.get(r.trim_start_matches("#/$defs/"))) {
                Some(d) => v = d,
                None => break,
            }
        } else if let Some(any) = v.get("anyOf").and_then(Value::as_array) {
            match any
                .iter()
                .find(|a| a.get("type") != Some(&Value::String("null".into())))
            {
                Some(a) => v = a,
                None => break,
            }
        } else {
            break;
        }
    }
    v
}

/// Checks `path` (after its step segment) against a record's JSON Schema. `Err` says what exists.
pub(crate) fn check_path(schema: &Value, path: &FieldPath) -> Result<(), String> {
    let defs = schema.get("$defs");
    let mut cur = resolve(defs, schema);
    let mut so_far = FieldPath(path.0[..1].to_vec());
    for seg in &path.0[1..] {
        let next = match seg {
            // A struct's fields, or any key of a map (`additionalProperties`).
            Segment::Key(k) => cur
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object())),
            Segment::Index(_) | Segment::All => cur.get("items"),
        };
        let Some(next) = next else {
            let fields: Vec<_> = cur
                .get("properties")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            return Err(if fields.is_empty() {
                format!("`{so_far}` has no field `{}`", FieldPath(vec![seg.clone()]))
            } else {
                format!("`{so_far}` has fields {}", fields.join(", "))
            });
        };
        so_far.0.push(seg.clone());
        cur = resolve(defs, next);
    }
    let types: Vec<&str> = match cur.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types
        .iter()
        .any(|t| matches!(*t, "number" | "integer" | "boolean"))
    {
        Ok(())
    } else {
        Err(format!(
            "`{so_far}` is not a number (it is {})",
            types.join(" or ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::Threshold;

    fn path(t: &str) -> FieldPath {
        Threshold::parse(t, false).unwrap().paths()[0].clone()
    }

    #[test]
    fn follows_refs_arrays_and_rejects_missing_or_non_numeric_fields() {
        let schema =
            serde_json::to_value(schemars::schema_for!(crate::actions::etcd::StatusRecord))
                .unwrap();
        assert!(check_path(&schema, &path("s.db_size < 1")).is_ok());
        assert!(check_path(&schema, &path("max(s.members[*].raft_index) < 1")).is_ok());
        let e = check_path(&schema, &path("s.db_sise < 1")).unwrap_err();
        assert!(e.contains("db_size") && e.contains("`s` has fields"), "{e}");
        let e = check_path(&schema, &path("s.leader < 1")).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let schema =
            serde_json::to_value(schemars::schema_for!(crate::actions::etcd::PutManyRecord))
                .unwrap();
        assert!(check_path(&schema, &path("w.latency.p99 < 1ms")).is_ok());
        assert!(check_path(&schema, &path("w.latency.p95 < 1ms"))
            .unwrap_err()
            .contains("p999"));
    }
}

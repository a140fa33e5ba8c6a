//! Reading a record's JSON Schema as the type of its figures: which fields exist, and the unit of
//! each (`x-unit`), so a threshold's path and units are checked when the plan is built.

use serde_json::Value;

use super::latency::quantile_key;
use super::path::{FieldPath, Segment};
use super::Unit;

/// Fields renamed when every figure got a type and every load loop one vocabulary: `(old name,
/// new name)`. A threshold on an old name
/// is a `scen check` error that names the new one.
pub const RENAMED: &[(&str, &str)] = &[
    ("shortfall_pct", "shortfall"),
    ("client_per_op_us", "client_per_op"),
    ("server_per_op_us", "server_per_op"),
    ("cpu_seconds", "cpu"),
    // One vocabulary across load loops.
    ("error_samples", "error_messages"),
    ("intended_per_s", "target_rate"),
    ("achieved_per_s", "throughput"),
    ("intended_writes_per_s", "target_rate"),
    ("writes_per_s", "throughput"),
    ("objects_per_s", "throughput"),
];

/// Follows `$ref`s into `$defs` and unwraps `Option<T>` (`anyOf: [T, null]`).
pub(crate) fn resolve<'a>(defs: Option<&'a Value>, mut v: &'a Value) -> &'a Value {
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

/// Whether a schema object is a latency distribution (any quantile can be asked of it).
pub(crate) fn is_distribution(v: &Value) -> bool {
    v.get("x-kind").and_then(Value::as_str) == Some("distribution")
}

/// Where a path led in a schema.
enum Walked<'a> {
    /// A quantile of a distribution (ms).
    Quantile,
    /// A field's schema object, and the path to it.
    Field(&'a Value, FieldPath),
}

/// The unit of the figure `path` names (after its step segment) in a record's JSON Schema. `Err`
/// says what exists instead, or what the field was renamed to.
pub fn field_unit(schema: &Value, path: &FieldPath) -> Result<Unit, String> {
    match walk(schema, path)? {
        Walked::Quantile => Ok(Unit::Ms),
        Walked::Field(cur, so_far) => unit_of(cur, &so_far),
    }
}

/// Whether the field `path` names exists in a record's JSON Schema, of any type: what `count(...)`
/// needs. `Err` says what exists instead.
pub fn field_exists(schema: &Value, path: &FieldPath) -> Result<(), String> {
    walk(schema, path).map(|_| ())
}

/// Follows `path` (after its step segment) through a record's JSON Schema. `Err` says what exists
/// instead, or what the field was renamed to.
fn walk<'a>(schema: &'a Value, path: &FieldPath) -> Result<Walked<'a>, String> {
    let defs = schema.get("$defs");
    let mut cur = resolve(defs, schema);
    let mut so_far = FieldPath(path.0[..1].to_vec());
    for seg in &path.0[1..] {
        if is_distribution(cur) {
            let q = match seg {
                Segment::Quantile(_) => true,
                Segment::Key(k) => {
                    quantile_key(k).is_some()
                        && cur.get("properties").and_then(|p| p.get(k)).is_none()
                }
                _ => false,
            };
            if q {
                return Ok(Walked::Quantile);
            }
        }
        let next = match seg {
            // A struct's fields, or any key of a map (`additionalProperties`).
            Segment::Key(k) => cur
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object())),
            Segment::Index(_) | Segment::All => cur.get("items"),
            Segment::Quantile(_) => None,
        };
        let Some(next) = next else {
            if let Segment::Key(k) = seg {
                if let Some((_, new)) = RENAMED.iter().find(|(old, _)| old == k) {
                    return Err(format!(
                        "`{so_far}.{k}` was renamed to `{so_far}.{new}` (units are in the field's type now: see `scen api`)"
                    ));
                }
            }
            let fields: Vec<_> = cur
                .get("properties")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let mut why = if fields.is_empty() {
                format!("`{so_far}` has no field `{}`", FieldPath(vec![seg.clone()]))
            } else {
                format!("`{so_far}` has fields {}", fields.join(", "))
            };
            if is_distribution(cur) {
                why.push_str(", and any quantile: p95, p99, p999, p(99.9)");
            }
            return Err(why);
        };
        so_far.0.push(seg.clone());
        cur = resolve(defs, next);
    }
    Ok(Walked::Field(cur, so_far))
}

/// A field's unit from its schema object `cur` (at `so_far`).
fn unit_of(cur: &Value, so_far: &FieldPath) -> Result<Unit, String> {
    if let Some(u) = cur.get("x-unit").and_then(Value::as_str) {
        return Unit::from_symbol(u).ok_or_else(|| format!("`{so_far}` has unknown unit `{u}`"));
    }
    let types: Vec<&str> = match cur.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.contains(&"boolean") {
        Ok(Unit::Bool)
    } else if types.contains(&"integer") || types.contains(&"number") {
        // A number without a declared unit counts things.
        Ok(Unit::Count)
    } else if is_distribution(cur) {
        Err(format!(
            "`{so_far}` is a latency distribution: ask for a quantile such as `{so_far}.p99` or `{so_far}.p(99.9)`"
        ))
    } else {
        Err(format!(
            "`{so_far}` is not a number (it is {})",
            if types.is_empty() {
                "an object".to_string()
            } else {
                types.join(" or ")
            }
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
        assert_eq!(field_unit(&schema, &path("s.db_size < 1")), Ok(Unit::Bytes));
        assert!(field_unit(&schema, &path("max(s.members[*].raft_index) < 1")).is_ok());
        let e = field_unit(&schema, &path("s.db_sise < 1")).unwrap_err();
        assert!(e.contains("db_size") && e.contains("`s` has fields"), "{e}");
        let e = field_unit(&schema, &path("s.leader < 1")).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let schema =
            serde_json::to_value(schemars::schema_for!(crate::actions::etcd::PutManyRecord))
                .unwrap();
        assert_eq!(
            field_unit(&schema, &path("w.latency.p99 < 1ms")),
            Ok(Unit::Ms)
        );
        assert_eq!(
            field_unit(&schema, &path("w.latency.p95 < 1ms")),
            Ok(Unit::Ms)
        );
        assert_eq!(
            field_unit(&schema, &path("w.latency.p(99.95) < 1ms")),
            Ok(Unit::Ms)
        );
        assert_eq!(
            field_unit(&schema, &path("w.latency.count > 1")),
            Ok(Unit::Count)
        );
        let e = field_unit(&schema, &path("w.latency.p < 1ms")).unwrap_err();
        assert!(e.contains("any quantile"), "{e}");
        let e = field_unit(&schema, &path("w.latency < 1ms")).unwrap_err();
        assert!(e.contains("ask for a quantile"), "{e}");
    }

    #[test]
    fn renamed_fields_name_their_new_name() {
        let schema = serde_json::to_value(schemars::schema_for!(
            crate::actions::cluster::HeartbeatRecord
        ))
        .unwrap();
        let e = field_unit(&schema, &path("h.leases.shortfall_pct < 5")).unwrap_err();
        assert!(e.contains("renamed to `h.leases.shortfall`"), "{e}");
        assert_eq!(
            field_unit(&schema, &path("h.leases.shortfall < 5%")),
            Ok(Unit::Ratio)
        );
    }
}

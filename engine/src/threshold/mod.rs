//! Thresholds: SLO expressions over report fields (`write.latency.p99 < 25ms`), parsed once when the
//! plan is built and evaluated in Rust against step records. Field paths start with a step name.

mod parse;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use parse::ParseError;

use crate::units::{format_quantity, Dimension, Quantity};

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// A map key: `latency`.
    Key(String),
    /// A list index: `[0]`.
    Index(usize),
    /// Every element of a list or map: `[*]`.
    All,
}

/// A dotted path into the report, starting with a step name: `status.members[*].db_size`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The step the path starts with.
    pub fn step(&self) -> &str {
        match &self.0[0] {
            Segment::Key(k) => k,
            _ => "",
        }
    }
    fn has_wildcard(&self) -> bool {
        self.0.contains(&Segment::All)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                // Keys that are not plain names (`wgpolicyk8s.io/policyreports`) print quoted.
                Segment::Key(k) if !k.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    write!(f, "['{k}']")?
                }
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::All => write!(f, "[*]")?,
            }
        }
        Ok(())
    }
}

/// An aggregate over a wildcard path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFn {
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum of values.
    Sum,
    /// Mean of values.
    Avg,
    /// Number of values.
    Count,
}

impl AggFn {
    fn from_str(s: &str) -> Option<Self> {
        Some(match s {
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "sum" => AggFn::Sum,
            "avg" | "mean" => AggFn::Avg,
            "count" => AggFn::Count,
            _ => return None,
        })
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    fn from_str(s: &str) -> Option<Self> {
        Some(match s {
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            _ => return None,
        })
    }
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

/// A numeric expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal in canonical units.
    Num(Quantity),
    /// A report field.
    Field(FieldPath),
    /// An aggregate over a wildcard path.
    Agg(AggFn, FieldPath),
    /// Negation.
    Neg(Box<Expr>),
    /// Arithmetic.
    Arith(Box<Expr>, ArithOp, Box<Expr>),
    /// `baseline`: the comparison's left-hand field, as the `--baseline` report has it.
    Baseline,
}

/// A condition: comparisons joined by `&&` and `||`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `lhs op rhs`.
    Cmp(Expr, CmpOp, Expr),
    /// Both hold.
    And(Box<Cond>, Box<Cond>),
    /// Either holds.
    Or(Box<Cond>, Box<Cond>),
}

/// A threshold as declared by a scenario.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// The text as written.
    pub source: String,
    /// The parsed condition.
    pub cond: Cond,
    /// Stop the run as soon as this threshold is known to fail.
    pub abort_on_fail: bool,
}

/// Why a threshold could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The path does not exist in the step's record.
    #[error("`{path}` is not in the report: {hint}")]
    Missing {
        /// The path.
        path: String,
        /// What is there instead.
        hint: String,
    },
    /// `baseline` was used but the run has no `--baseline` report.
    #[error("`{0}` compares with a baseline: run with --baseline previous/report.json")]
    NoBaseline(String),
    /// The field holds something other than a number or a boolean.
    #[error("`{path}` is not a number (it is {found})")]
    NotANumber {
        /// The path.
        path: String,
        /// A short description of the value.
        found: String,
    },
}

/// The outcome of evaluating one threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether the condition held.
    pub passed: bool,
    /// The left-hand value of the deciding comparison, canonical units.
    pub observed: f64,
    /// The right-hand value of the deciding comparison, canonical units.
    pub limit: f64,
    /// The dimension of the comparison's literal, used for display.
    pub dimension: Dimension,
    /// `observed 31.2ms, limit < 25ms`-style text.
    pub summary: String,
}

impl Threshold {
    /// Parses a threshold; errors carry the column within `source`.
    pub fn parse(source: &str, abort_on_fail: bool) -> Result<Self, ParseError> {
        Ok(Threshold {
            source: source.to_string(),
            cond: parse::parse(source)?,
            abort_on_fail,
        })
    }

    /// The field paths this threshold reads, in order.
    pub fn paths(&self) -> Vec<&FieldPath> {
        fn walk_e<'a>(e: &'a Expr, out: &mut Vec<&'a FieldPath>) {
            match e {
                Expr::Field(p) | Expr::Agg(_, p) => out.push(p),
                Expr::Neg(e) => walk_e(e, out),
                Expr::Arith(a, _, b) => {
                    walk_e(a, out);
                    walk_e(b, out)
                }
                Expr::Num(_) | Expr::Baseline => {}
            }
        }
        fn walk_c<'a>(c: &'a Cond, out: &mut Vec<&'a FieldPath>) {
            match c {
                Cond::Cmp(a, _, b) => {
                    walk_e(a, out);
                    walk_e(b, out)
                }
                Cond::And(a, b) | Cond::Or(a, b) => {
                    walk_c(a, out);
                    walk_c(b, out)
                }
            }
        }
        let mut out = Vec::new();
        walk_c(&self.cond, &mut out);
        out
    }

    /// The step names this threshold reads, in order of first mention.
    pub fn steps(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.paths() {
            if !out.iter().any(|s| s == p.step()) {
                out.push(p.step().to_string());
            }
        }
        out
    }

    /// Evaluates against `root`, a JSON object keyed by step name; `baseline` is the same view of
    /// the `--baseline` report, when there is one.
    pub fn evaluate(&self, root: &Value, baseline: Option<&Value>) -> Result<Verdict, EvalError> {
        eval_cond(&self.cond, root, baseline)
    }

    /// Whether the threshold compares with a baseline.
    pub fn uses_baseline(&self) -> bool {
        fn c(x: &Cond) -> bool {
            match x {
                Cond::Cmp(a, _, b) => a.uses_baseline() || b.uses_baseline(),
                Cond::And(a, b) | Cond::Or(a, b) => c(a) || c(b),
            }
        }
        c(&self.cond)
    }
}

fn eval_cond(c: &Cond, root: &Value, baseline: Option<&Value>) -> Result<Verdict, EvalError> {
    match c {
        Cond::Cmp(a, op, b) => {
            // `baseline` is the left-hand field's value in the baseline report.
            let base = match (a, b.uses_baseline()) {
                (Expr::Field(p) | Expr::Agg(_, p), true) => {
                    let Some(broot) = baseline else {
                        return Err(EvalError::NoBaseline(p.to_string()));
                    };
                    let base_expr = a.clone();
                    Some(eval_expr(&base_expr, broot, None).map_err(|e| match e {
                        EvalError::Missing { path, hint } => EvalError::Missing {
                            path,
                            hint: format!("the baseline report lacks it ({hint})"),
                        },
                        other => other,
                    })?)
                }
                _ => None,
            };
            let (x, y) = (eval_expr(a, root, None)?, eval_expr(b, root, base)?);
            let dimension = dim_hint(b)
                .or_else(|| dim_hint(a))
                .unwrap_or(Dimension::Number);
            let passed = op.holds(x, y);
            let sym = match op {
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
            };
            let mut summary = format!(
                "observed {}, limit {sym} {}",
                format_quantity(x, dimension),
                format_quantity(y, dimension)
            );
            if let Some(b) = base {
                summary.push_str(&format!(" (baseline {})", format_quantity(b, dimension)));
            }
            Ok(Verdict {
                passed,
                observed: x,
                limit: y,
                dimension,
                summary,
            })
        }
        Cond::And(a, b) => {
            let va = eval_cond(a, root, baseline)?;
            if !va.passed {
                return Ok(va);
            }
            let vb = eval_cond(b, root, baseline)?;
            Ok(if vb.passed {
                Verdict {
                    summary: format!("{}; {}", va.summary, vb.summary),
                    ..vb
                }
            } else {
                vb
            })
        }
        Cond::Or(a, b) => {
            let va = eval_cond(a, root, baseline)?;
            if va.passed {
                return Ok(va);
            }
            let vb = eval_cond(b, root, baseline)?;
            Ok(if vb.passed {
                vb
            } else {
                Verdict {
                    summary: format!("{}; {}", va.summary, vb.summary),
                    ..vb
                }
            })
        }
    }
}

fn dim_hint(e: &Expr) -> Option<Dimension> {
    match e {
        Expr::Num(q) if q.dimension != Dimension::Number => Some(q.dimension),
        Expr::Neg(e) => dim_hint(e),
        Expr::Arith(a, _, b) => dim_hint(a).or_else(|| dim_hint(b)),
        _ => None,
    }
}

impl Expr {
    /// Whether the expression mentions `baseline`.
    pub(crate) fn uses_baseline(&self) -> bool {
        match self {
            Expr::Baseline => true,
            Expr::Neg(a) => a.uses_baseline(),
            Expr::Arith(a, _, b) => a.uses_baseline() || b.uses_baseline(),
            _ => false,
        }
    }
}

fn eval_expr(e: &Expr, root: &Value, base: Option<f64>) -> Result<f64, EvalError> {
    Ok(match e {
        Expr::Num(q) => q.value,
        Expr::Baseline => base.unwrap_or(f64::NAN),
        Expr::Field(p) => {
            let vals = lookup(p, root)?;
            vals[0]
        }
        Expr::Agg(f, p) => {
            let vals = lookup(p, root)?;
            match f {
                AggFn::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                AggFn::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                AggFn::Sum => vals.iter().sum(),
                AggFn::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
                AggFn::Count => vals.len() as f64,
            }
        }
        Expr::Neg(e) => -eval_expr(e, root, base)?,
        Expr::Arith(a, op, b) => {
            let (x, y) = (eval_expr(a, root, base)?, eval_expr(b, root, base)?);
            match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
            }
        }
    })
}

/// Resolves a path to its numeric values (one for a plain path, any number for a wildcard).
fn lookup(path: &FieldPath, root: &Value) -> Result<Vec<f64>, EvalError> {
    let mut current: Vec<&Value> = vec![root];
    for (i, seg) in path.0.iter().enumerate() {
        let mut next = Vec::new();
        for v in &current {
            match (seg, v) {
                (Segment::Key(k), Value::Object(m)) => {
                    if let Some(x) = m.get(k) {
                        next.push(x)
                    }
                }
                (Segment::Index(n), Value::Array(a)) => {
                    if let Some(x) = a.get(*n) {
                        next.push(x)
                    }
                }
                (Segment::All, Value::Array(a)) => next.extend(a.iter()),
                (Segment::All, Value::Object(m)) => next.extend(m.values()),
                _ => {}
            }
        }
        if next.is_empty() {
            let so_far = FieldPath(path.0[..i].to_vec());
            let hint = match current.first() {
                Some(Value::Object(m)) if i == 0 => format!(
                    "no step named `{}` has a record (steps: {})",
                    path.step(),
                    keys(m)
                ),
                Some(Value::Object(m)) => format!("`{so_far}` has {}", keys(m)),
                Some(other) => format!("`{so_far}` is {}", describe(other)),
                None => "nothing matched".to_string(),
            };
            return Err(EvalError::Missing {
                path: path.to_string(),
                hint,
            });
        }
        current = next;
    }
    current
        .into_iter()
        .map(|v| match v {
            Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            other => Err(EvalError::NotANumber {
                path: path.to_string(),
                found: describe(other),
            }),
        })
        .collect()
}

fn keys(m: &serde_json::Map<String, Value>) -> String {
    if m.is_empty() {
        return "no fields".to_string();
    }
    let mut ks: Vec<_> = m.keys().map(String::as_str).collect();
    ks.truncate(12);
    format!("fields {}", ks.join(", "))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(a) => format!("a list of {}", a.len()),
        Value::Object(_) => "a map".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root() -> Value {
        json!({
            "write": { "latency": { "p99": 31.5, "p50": 2.0 }, "errors": 0, "ok": true, "duration_ms": 1200.0 },
            "status": { "db_size": 1048576, "members": [ { "db_size": 10 }, { "db_size": 30 } ] },
            "inv": { "resources": { "wgpolicyk8s.io/policyreports": { "keys": 7 } } }
        })
    }

    #[test]
    fn quoted_keys_reach_map_keys_that_are_not_names() {
        assert!(eval("inv.resources['wgpolicyk8s.io/policyreports'].keys == 7").passed);
        assert!(eval("inv.resources[\"wgpolicyk8s.io/policyreports\"].keys > 6").passed);
        let t = Threshold::parse(
            "inv.resources['wgpolicyk8s.io/policyreports'].keys == 7",
            false,
        )
        .unwrap();
        assert_eq!(
            t.paths()[0].to_string(),
            "inv.resources['wgpolicyk8s.io/policyreports'].keys",
            "printed back the way it is written"
        );
        let e = Threshold::parse("inv.resources['oops].keys == 1", false).unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
    }

    fn eval(s: &str) -> Verdict {
        Threshold::parse(s, false)
            .unwrap()
            .evaluate(&root(), None)
            .unwrap()
    }

    #[test]
    fn compares_with_units() {
        let v = eval("write.latency.p99 < 25ms");
        assert!(!v.passed);
        assert_eq!((v.observed, v.limit), (31.5, 25.0));
        assert_eq!(v.summary, "observed 31.5ms, limit < 25ms");
        assert!(eval("write.latency.p99 < 1s").passed);
        assert!(eval("status.db_size <= 1MiB").passed);
        assert!(!eval("status.db_size < 1MiB").passed);
        assert!(eval("write.errors == 0 && write.ok == true").passed);
        assert!(eval("write.errors > 0 || write.latency.p50 < 5ms").passed);
        assert!(eval("write.latency.p99 < write.latency.p50 * 20").passed);
        assert!(eval("(write.errors > 0 || write.ok == true) && write.duration_ms < 2s").passed);
    }

    #[test]
    fn aggregates_wildcards() {
        assert_eq!(eval("max(status.members[*].db_size) < 100").observed, 30.0);
        assert_eq!(eval("sum(status.members[*].db_size) == 40").observed, 40.0);
        assert_eq!(eval("count(status.members[*].db_size) == 2").observed, 2.0);
        assert_eq!(eval("status.members[1].db_size == 30").observed, 30.0);
    }

    #[test]
    fn reports_which_steps_are_read() {
        let t = Threshold::parse(
            "write.errors == 0 && max(status.members[*].db_size) < 1GiB",
            false,
        )
        .unwrap();
        assert_eq!(t.steps(), vec!["write".to_string(), "status".to_string()]);
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let e = Threshold::parse("write.latency.p99 < 25 parsecs", false).unwrap_err();
        assert!(e.message.contains("unknown unit"), "{e}");
        let e = Threshold::parse("write.latency.p99 25ms", false).unwrap_err();
        assert_eq!(e.column, 19, "{e}");
        let e = Threshold::parse("write.size < 25ms + 1GiB", false).unwrap_err();
        assert!(
            e.message.contains("cannot combine a duration with a size"),
            "{e}"
        );
        let e = Threshold::parse("25ms < 1GiB", false).unwrap_err();
        assert!(e.message.contains("cannot combine"), "{e}");
        let e = Threshold::parse("status.members[*].db_size < 1GiB", false).unwrap_err();
        assert!(e.message.contains("max(...)"), "{e}");
        let e = Threshold::parse("write < 5", false).unwrap_err();
        assert!(e.message.contains("names a step but no field"), "{e}");
        assert!(Threshold::parse("", false).is_err());
        assert!(Threshold::parse("p99(write.x) < 1", false)
            .unwrap_err()
            .message
            .contains("unknown function"));
    }

    #[test]
    fn missing_fields_say_what_is_there() {
        let t = Threshold::parse("write.latency.p95 < 25ms", false).unwrap();
        let e = t.evaluate(&root(), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("`write.latency` has fields p50, p99"),
            "{e}"
        );
        let t = Threshold::parse("nope.x < 1", false).unwrap();
        assert!(t
            .evaluate(&root(), None)
            .unwrap_err()
            .to_string()
            .contains("no step named `nope`"));
    }
}

#[cfg(test)]
mod baseline_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn baseline_is_the_left_field_in_the_baseline_report() {
        let now = json!({ "w": { "latency": { "p99": 11.0 } } });
        let before = json!({ "w": { "latency": { "p99": 10.0 } } });
        let t = Threshold::parse("w.latency.p99 < baseline * 1.2", false).unwrap();
        assert!(t.uses_baseline());
        let v = t.evaluate(&now, Some(&before)).unwrap();
        assert!(v.passed, "{v:?}");
        assert!(v.summary.contains("(baseline 10)"), "{}", v.summary);
        let t = Threshold::parse("w.latency.p99 <= baseline * 1.05", false).unwrap();
        assert!(!t.evaluate(&now, Some(&before)).unwrap().passed);
        assert!(matches!(
            t.evaluate(&now, None),
            Err(EvalError::NoBaseline(_))
        ));
        let e = t.evaluate(&now, Some(&json!({ "x": {} }))).unwrap_err();
        assert!(e.to_string().contains("baseline report lacks it"), "{e}");
    }

    #[test]
    fn baseline_needs_a_field_on_the_left() {
        let e = Threshold::parse("baseline < 5ms", false).unwrap_err();
        assert!(e.message.contains("baseline"), "{e}");
        let e = Threshold::parse("5ms > baseline", false).unwrap_err();
        assert!(e.message.contains("baseline"), "{e}");
    }
}

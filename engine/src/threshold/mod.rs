//! Thresholds: SLO expressions over report fields (`write.latency.p99 < 25ms`), parsed once when the
//! plan is built and evaluated in Rust against step records. Field paths start with a step name.

mod parse;

use serde::Serialize;
use serde_json::Value;

pub use parse::ParseError;

use std::collections::BTreeMap;

use crate::measure::Unit;
use crate::units::{format_quantity, Dimension, Quantity};

pub use crate::measure::path::{FieldPath, Segment};

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
    /// The unit of each field it reads (by path text), when the plan knows the step's record type.
    pub units: BTreeMap<String, Unit>,
    /// `no_data: "pass"`: a field with no samples passes instead of failing.
    pub no_data_passes: bool,
    /// `interpolate: true`: a quantile of a bucketed histogram whose bucket holds the limit is
    /// decided by its interpolated value instead of being inconclusive.
    pub interpolate: bool,
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
    /// The field has no samples (`null`): nothing was measured, so nothing can pass.
    #[error("no data: `{path}` {why}")]
    NoData {
        /// The path.
        path: String,
        /// Why there is nothing (`has no samples`, `member ... could not be scraped: ...`).
        why: String,
    },
    /// A divisor was 0: the ratio has no value (not infinity, which would pass `> x`).
    #[error("division by zero: the divisor is 0, so the ratio has no value")]
    DivisionByZero,
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
    /// The dimension of the comparison's values, used for display.
    pub dimension: Dimension,
    /// The unit of the deciding comparison's field, when known.
    pub unit: Option<Unit>,
    /// `observed 31.2ms, limit < 25ms`-style text.
    pub summary: String,
    /// The compared field, as a prefix when several comparisons are summarised together.
    #[serde(skip)]
    pub label: String,
    /// Why the comparison cannot be decided from the data: the quantile comes from a bucketed
    /// histogram (etcd's, the API server's) whose bucket holding it also holds the limit. Then
    /// `passed` is what the interpolated value says, which the data does not support.
    pub inconclusive: Option<String>,
}

impl Threshold {
    /// Parses a threshold; errors carry the column within `source`.
    pub fn parse(source: &str, abort_on_fail: bool) -> Result<Self, ParseError> {
        Ok(Threshold {
            source: source.to_string(),
            cond: parse::parse(source)?,
            abort_on_fail,
            units: BTreeMap::new(),
            no_data_passes: false,
            interpolate: false,
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

    /// Whether every mention of `path` is inside `count(...)`: then it is counted, not compared,
    /// and may be of any type (`count(status.members[*].id) == 3` counts strings).
    pub fn only_counted(&self, path: &FieldPath) -> bool {
        fn walk_e(e: &Expr, path: &FieldPath, counted: &mut usize, other: &mut usize) {
            match e {
                Expr::Agg(AggFn::Count, p) if p == path => *counted += 1,
                Expr::Field(p) | Expr::Agg(_, p) if p == path => *other += 1,
                Expr::Neg(e) => walk_e(e, path, counted, other),
                Expr::Arith(a, _, b) => {
                    walk_e(a, path, counted, other);
                    walk_e(b, path, counted, other)
                }
                _ => {}
            }
        }
        fn walk_c(c: &Cond, path: &FieldPath, counted: &mut usize, other: &mut usize) {
            match c {
                Cond::Cmp(a, _, b) => {
                    walk_e(a, path, counted, other);
                    walk_e(b, path, counted, other)
                }
                Cond::And(a, b) | Cond::Or(a, b) => {
                    walk_c(a, path, counted, other);
                    walk_c(b, path, counted, other)
                }
            }
        }
        let (mut counted, mut other) = (0, 0);
        walk_c(&self.cond, path, &mut counted, &mut other);
        counted > 0 && other == 0
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
        eval_cond(&self.cond, root, baseline, &self.units)
    }

    /// The field and limit of a threshold that is one upper bound on a field (`p99 < 25ms`,
    /// `x <= 2s`); `None` for any other condition.
    pub fn upper_bound(&self) -> Option<(&FieldPath, &Quantity)> {
        match &self.cond {
            Cond::Cmp(Expr::Field(f), CmpOp::Lt | CmpOp::Le, Expr::Num(q)) => Some((f, q)),
            _ => None,
        }
    }

    /// Checks that every comparison and sum combines like with like, given each field's unit
    /// (`unit_of` answers `None` for fields of records the plan cannot type). Records the units
    /// for display. `Err` says which field has which unit.
    pub fn check_units(
        &mut self,
        unit_of: &dyn Fn(&FieldPath) -> Option<Unit>,
    ) -> Result<(), String> {
        let mut units = BTreeMap::new();
        for p in self.paths() {
            if let Some(u) = unit_of(p) {
                units.insert(p.to_string(), u);
            }
        }
        fn cond(c: &Cond, units: &BTreeMap<String, Unit>) -> Result<(), String> {
            match c {
                Cond::Cmp(a, _, b) => combine(ty(a, units)?, ty(b, units)?).map(|_| ()),
                Cond::And(a, b) | Cond::Or(a, b) => {
                    cond(a, units)?;
                    cond(b, units)
                }
            }
        }
        cond(&self.cond, &units)?;
        self.units = units;
        Ok(())
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

fn eval_cond(
    c: &Cond,
    root: &Value,
    baseline: Option<&Value>,
    units: &BTreeMap<String, Unit>,
) -> Result<Verdict, EvalError> {
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
                        EvalError::NoData { path, why } => EvalError::NoData {
                            path,
                            why: format!("{why} in the baseline report"),
                        },
                        other => other,
                    })?)
                }
                _ => None,
            };
            let (x, y) = (eval_expr(a, root, None)?, eval_expr(b, root, base)?);
            let unit = side_unit(a, units).or_else(|| side_unit(b, units));
            let dimension = unit
                .map(Unit::dimension)
                .or_else(|| literal_dim(b))
                .or_else(|| literal_dim(a))
                .unwrap_or(Dimension::Number);
            let show = |v: f64| match unit {
                Some(u) => u.format(Some(v)),
                None => format_quantity(v, dimension),
            };
            let mut passed = op.holds(x, y);
            // A quantile of etcd's buckets lies somewhere in its bucket: decide on the bucket's
            // bounds, and say so when the limit falls inside it.
            let mut inconclusive = None;
            if let (Some((lo, hi)), false) =
                (field_bucket(a, root), matches!(op, CmpOp::Eq | CmpOp::Ne))
            {
                let definite = match op {
                    CmpOp::Lt => (hi < y).then_some(true).or((lo >= y).then_some(false)),
                    CmpOp::Le => (hi <= y).then_some(true).or((lo >= y).then_some(false)),
                    CmpOp::Gt => (lo >= y).then_some(true).or((hi <= y).then_some(false)),
                    CmpOp::Ge => (lo >= y).then_some(true).or((hi < y).then_some(false)),
                    CmpOp::Eq | CmpOp::Ne => None,
                };
                match definite {
                    Some(d) => passed = d,
                    None => {
                        inconclusive = Some(format!(
                            "the quantile lies in the histogram's bucket {}–{}, which holds the limit {}: only the interpolation ({}) puts it on either side",
                            show(lo),
                            if hi.is_finite() { show(hi) } else { "+Inf".into() },
                            show(y),
                            show(x)
                        ))
                    }
                }
            }
            let sym = match op {
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
            };
            let mut summary = format!("observed {}, limit {sym} {}", show(x), show(y));
            // Two values that round alike but differ: say them exactly, so the message shows
            // why the comparison went the way it did.
            if show(x) == show(y) && x != y {
                let base = match dimension {
                    Dimension::Duration => " ms",
                    Dimension::Size => " bytes",
                    Dimension::Rate => "/s",
                    Dimension::Ratio | Dimension::Number => "",
                };
                summary.push_str(&format!(" (exactly {x}{base} vs {y}{base})"));
            }
            if let Some(b) = base {
                summary.push_str(&format!(" (baseline {})", show(b)));
            }
            let label = match a {
                Expr::Field(p) => format!("`{p}` "),
                _ => String::new(),
            };
            Ok(Verdict {
                passed,
                observed: x,
                limit: y,
                dimension,
                unit,
                summary,
                label,
                inconclusive,
            })
        }
        // Both sides are shown whenever both can be evaluated; the verdict's figures are those
        // of the side that decided it.
        Cond::And(a, b) | Cond::Or(a, b) => {
            let and = matches!(c, Cond::And(..));
            let va = eval_cond(a, root, baseline, units)?;
            let vb = eval_cond(b, root, baseline, units);
            let decided_by_a = if and { !va.passed } else { va.passed };
            let vb = match vb {
                Ok(vb) => vb,
                Err(_) if decided_by_a => return Ok(va),
                Err(e) => return Err(e),
            };
            let summary = format!("{}{}; {}{}", va.label, va.summary, vb.label, vb.summary);
            // A side that decides the whole on its own, with certainty, leaves nothing to doubt;
            // otherwise a side that could not be decided makes the whole undecided.
            let certain = |v: &Verdict| v.inconclusive.is_none() && v.passed != and;
            let inconclusive = if certain(&va) || certain(&vb) {
                None
            } else {
                va.inconclusive.clone().or_else(|| vb.inconclusive.clone())
            };
            let decider = if decided_by_a { va } else { vb };
            Ok(Verdict {
                summary,
                label: String::new(),
                inconclusive,
                ..decider
            })
        }
    }
}

/// The type of a threshold expression for the unit check: unknown (a plain number, `baseline`, a
/// field of an untyped record) or a dimension with what it came from (for the message).
#[derive(Debug, Clone)]
enum Ty {
    Any,
    Dim(Dimension, String),
}

fn ty(e: &Expr, units: &BTreeMap<String, Unit>) -> Result<Ty, String> {
    Ok(match e {
        Expr::Num(q) if q.dimension == Dimension::Number => Ty::Any,
        Expr::Num(q) => Ty::Dim(
            q.dimension,
            format!(
                "`{}` is a {}",
                format_quantity(q.value, q.dimension),
                q.dimension
            ),
        ),
        Expr::Baseline => Ty::Any,
        Expr::Agg(AggFn::Count, _) => Ty::Any,
        Expr::Field(p) | Expr::Agg(_, p) => match units.get(&p.to_string()) {
            Some(u) => Ty::Dim(u.dimension(), format!("`{p}` is {}", u.describe())),
            None => Ty::Any,
        },
        Expr::Neg(e) => ty(e, units)?,
        Expr::Arith(a, op, b) => {
            let (x, y) = (ty(a, units)?, ty(b, units)?);
            match op {
                ArithOp::Add | ArithOp::Sub => combine(x, y)?,
                // A ratio or a plain number scales what it multiplies.
                ArithOp::Mul => match (x, y) {
                    (Ty::Dim(Dimension::Ratio | Dimension::Number, _), t)
                    | (t, Ty::Dim(Dimension::Ratio | Dimension::Number, _)) => t,
                    (Ty::Any, t) | (t, Ty::Any) => t,
                    _ => Ty::Any,
                },
                ArithOp::Div => match (x, y) {
                    (t, Ty::Any) | (t, Ty::Dim(Dimension::Ratio | Dimension::Number, _)) => t,
                    _ => Ty::Any,
                },
            }
        }
    })
}

/// Two sides of a comparison or a sum: the same dimension, or one of them unknown.
fn combine(x: Ty, y: Ty) -> Result<Ty, String> {
    match (x, y) {
        (Ty::Any, t) | (t, Ty::Any) => Ok(t),
        (Ty::Dim(a, wa), Ty::Dim(b, wb)) if a != b => Err(format!(
            "{wa} and {wb}: compare like with like{}",
            if a == Dimension::Ratio || b == Dimension::Ratio {
                " (`%` means a fraction everywhere: 5% is 0.05)"
            } else {
                ""
            }
        )),
        (t, _) => Ok(t),
    }
}

/// The unit of the field on either side of a comparison, when known.
fn side_unit(e: &Expr, units: &BTreeMap<String, Unit>) -> Option<Unit> {
    match e {
        Expr::Field(p) | Expr::Agg(_, p) => units.get(&p.to_string()).copied(),
        Expr::Neg(e) => side_unit(e, units),
        // A field divided by a field (a size over a size) is a plain number.
        Expr::Arith(a, ArithOp::Div, b) => match side_unit(b, units) {
            Some(_) => None,
            None => side_unit(a, units),
        },
        Expr::Arith(a, ArithOp::Mul, b) => match (side_unit(a, units), side_unit(b, units)) {
            (Some(_), Some(_)) => None,
            (x, y) => x.or(y),
        },
        Expr::Arith(a, _, b) => side_unit(a, units).or_else(|| side_unit(b, units)),
        _ => None,
    }
}

/// The dimension an expression has from its literals alone (fields untyped): the unit algebra
/// of [`ty`] without field types, used by the parser's checks and for display.
pub(crate) fn literal_dim(e: &Expr) -> Option<Dimension> {
    match ty(e, &BTreeMap::new()) {
        Ok(Ty::Dim(d, _)) => Some(d),
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
        Expr::Agg(AggFn::Count, p) => count_of(p, root)?,
        Expr::Agg(f, p) => {
            let vals = lookup(p, root)?;
            match f {
                AggFn::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                AggFn::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                AggFn::Sum => vals.iter().sum(),
                AggFn::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
                AggFn::Count => unreachable!("count is read above, of any type"),
            }
        }
        Expr::Neg(e) => -eval_expr(e, root, base)?,
        Expr::Arith(a, op, b) => {
            let (x, y) = (eval_expr(a, root, base)?, eval_expr(b, root, base)?);
            match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div if y == 0.0 => return Err(EvalError::DivisionByZero),
                ArithOp::Div => x / y,
            }
        }
    })
}

/// The bucket bounds around a quantile field read from a bucketed histogram (a distribution
/// etcd or the API server measured, which keeps `buckets` and no HDR `hist`); `None` for any
/// other expression.
fn field_bucket(e: &Expr, root: &Value) -> Option<(f64, f64)> {
    let Expr::Field(p) = e else { return None };
    let (last, parent) = p.0.split_last()?;
    let q = match last {
        Segment::Key(k) => crate::measure::latency::quantile_key(k)?,
        Segment::Quantile(q) => *q,
        _ => return None,
    };
    let mut v = root;
    for seg in parent {
        v = match seg {
            Segment::Key(k) => v.get(k)?,
            Segment::Index(i) => v.get(*i)?,
            _ => return None,
        };
    }
    let cum = crate::measure::latency::buckets_of(v)?;
    crate::measure::latency::bucket_bounds(q, &cum)
}

/// Whether a report object is a latency distribution (quantiles can be asked of it): whether it
/// deserialises as one.
fn is_distribution(m: &serde_json::Map<String, Value>) -> bool {
    use serde::Deserialize;
    crate::measure::latency::Distribution::deserialize(&Value::Object(m.clone())).is_ok()
}

/// Resolves a path to its numeric values (one for a plain path, any number for a wildcard).
/// A `null` figure, or one under an object whose `no_data` says why it is incomplete, is
/// [`EvalError::NoData`]: nothing measured never passes.
fn lookup(path: &FieldPath, root: &Value) -> Result<Vec<f64>, EvalError> {
    reach(path, root)?
        .into_iter()
        .map(|(v, why)| match (v.as_ref(), why) {
            (_, Some(why)) => Err(EvalError::NoData {
                path: path.to_string(),
                why,
            }),
            (Value::Null, None) => Err(EvalError::NoData {
                path: path.to_string(),
                why: "has no samples".into(),
            }),
            (Value::Number(n), None) => Ok(n.as_f64().unwrap_or(f64::NAN)),
            (Value::Bool(b), None) => Ok(if *b { 1.0 } else { 0.0 }),
            (other, None) => Err(EvalError::NotANumber {
                path: path.to_string(),
                found: describe(other),
            }),
        })
        .collect()
}

/// `count(path)`: how many values `path` reaches, of any type (`count(status.members[*].id)`
/// counts strings); a null one is no sample and not counted, and none at all is no data.
fn count_of(path: &FieldPath, root: &Value) -> Result<f64, EvalError> {
    let reached = reach(path, root)?;
    let n = reached
        .iter()
        .filter(|(v, why)| !v.is_null() && why.is_none())
        .count();
    if n == 0 {
        return Err(EvalError::NoData {
            path: path.to_string(),
            why: reached
                .into_iter()
                .find_map(|(_, why)| why)
                .unwrap_or_else(|| "has no samples".into()),
        });
    }
    Ok(n as f64)
}

/// A value a path reached, with the reason its data is missing or partial, if any.
type Reached<'a> = (std::borrow::Cow<'a, Value>, Option<String>);

/// Every value `path` reaches (more than one through `[*]`).
fn reach<'a>(path: &FieldPath, root: &'a Value) -> Result<Vec<Reached<'a>>, EvalError> {
    use std::borrow::Cow;
    // Each value reached so far, with the reason its data is missing or partial, if any.
    let mut current: Vec<(Cow<Value>, Option<String>)> = vec![(Cow::Borrowed(root), None)];
    for (i, seg) in path.0.iter().enumerate() {
        let mut next: Vec<(Cow<Value>, Option<String>)> = Vec::new();
        for (v, why) in &current {
            let why = match v.as_ref() {
                Value::Object(m) => m
                    .get("no_data")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or_else(|| why.clone()),
                _ => why.clone(),
            };
            let quantile = |m: &serde_json::Map<String, Value>, q: f64| {
                let v = crate::measure::latency::quantile_of(&Value::Object(m.clone()), q);
                Cow::Owned(v.map_or(Value::Null, |x| serde_json::json!(x)))
            };
            match (seg, v.as_ref()) {
                (Segment::Key(k), Value::Object(m)) => {
                    if m.contains_key(k) {
                        next.push((borrow_in(v, |v| v.get(k)), why))
                    } else if let Some(q) =
                        crate::measure::latency::quantile_key(k).filter(|_| is_distribution(m))
                    {
                        next.push((quantile(m, q), why))
                    }
                }
                (Segment::Quantile(q), Value::Object(m)) if is_distribution(m) => {
                    next.push((quantile(m, *q), why))
                }
                (Segment::Index(n), Value::Array(a)) if *n < a.len() => {
                    next.push((borrow_in(v, |v| v.get(*n)), why))
                }
                (Segment::All, Value::Array(a)) => {
                    for k in 0..a.len() {
                        next.push((borrow_in(v, |v| v.get(k)), why.clone()))
                    }
                }
                (Segment::All, Value::Object(m)) => {
                    for k in m.keys() {
                        next.push((borrow_in(v, |v| v.get(k)), why.clone()))
                    }
                }
                _ => {}
            }
        }
        if next.is_empty() {
            let so_far = FieldPath(path.0[..i].to_vec());
            let hint = match current.first().map(|(v, _)| v.as_ref()) {
                Some(Value::Object(m)) if i == 0 => format!(
                    "no step named `{}` has a record (steps: {})",
                    path.step(),
                    keys(m)
                ),
                Some(Value::Null) => {
                    return Err(EvalError::NoData {
                        path: path.to_string(),
                        why: current[0]
                            .1
                            .clone()
                            .unwrap_or_else(|| format!("has no samples (`{so_far}` is null)")),
                    })
                }
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
    Ok(current)
}

/// A child of a value reached while walking a path, borrowed when the parent is borrowed.
fn borrow_in<'a>(
    v: &std::borrow::Cow<'a, Value>,
    get: impl Fn(&Value) -> Option<&Value>,
) -> std::borrow::Cow<'a, Value> {
    use std::borrow::Cow;
    match v {
        Cow::Borrowed(b) => Cow::Borrowed(get(b).expect("child exists")),
        Cow::Owned(o) => Cow::Owned(get(o).expect("child exists").clone()),
    }
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

    /// etcd's view of a step: 5,991 of 6,010 observations at most 5 ms (the grpc_handling).
    fn bucketed() -> Value {
        json!({ "s": { "server": { "grpc": {
            "count": 6010, "p50": 2.51,
            "buckets": [[5.0, 5991.0], [10.0, 6000.0], [null, 6010.0]]
        } } } })
    }

    #[test]
    fn quantiles_of_buckets_are_decided_on_their_bounds_or_are_inconclusive() {
        let v = |src: &str| {
            Threshold::parse(src, false)
                .unwrap()
                .evaluate(&bucketed(), None)
                .unwrap()
        };
        // The whole bucket (0, 5ms] is under 10 ms: certain.
        let a = v("s.server.grpc.p50 < 10ms");
        assert!(a.passed && a.inconclusive.is_none(), "{a:?}");
        // 3 ms is inside it: the interpolated 2.51 ms would pass, the data cannot say.
        let b = v("s.server.grpc.p50 < 3ms");
        let why = b.inconclusive.expect("inconclusive");
        assert!(why.contains("0ms–5ms") && why.contains("3ms"), "{why}");
        // Certain the other way, though the interpolation puts p50 at 2.51 ms.
        let c = v("s.server.grpc.p50 > 6ms");
        assert!(!c.passed && c.inconclusive.is_none(), "{c:?}");
        // The top bucket has no upper bound.
        let d = v("s.server.grpc.p(99.9) < 20ms");
        assert!(d.inconclusive.unwrap().contains("+Inf"));
        assert!(v("s.server.grpc.p(99.9) > 9ms").passed);
        // A side that fails for certain decides an `&&` for certain.
        let e = v("s.server.grpc.p50 < 3ms && s.server.grpc.p50 > 6ms");
        assert!(!e.passed && e.inconclusive.is_none(), "{e:?}");
        let f = v("s.server.grpc.p50 < 3ms && s.server.grpc.count > 1");
        assert!(f.inconclusive.is_some(), "{f:?}");
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
    fn division_by_zero_and_monstrous_input_are_errors_not_passes() {
        let t = Threshold::parse("write.errors / 0 > 1", false).unwrap();
        assert!(matches!(
            t.evaluate(&root(), None),
            Err(EvalError::DivisionByZero)
        ));
        let deep = format!("{}write.errors{} > 0", "(".repeat(100), ")".repeat(100));
        let e = Threshold::parse(&deep, false).unwrap_err();
        assert!(e.to_string().contains("nested more than"), "{e}");
        let long = format!("write.errors{} > 0", " + 1".repeat(10_000));
        let e = Threshold::parse(&long, false).unwrap_err();
        assert!(e.to_string().contains("tokens"), "{e}");
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
    fn count_counts_values_of_any_type_and_nothing_is_no_data() {
        let root = serde_json::json!({
            "status": { "members": [ { "id": "a1", "db": 1 }, { "id": "b2", "db": null }, { "id": "c3", "db": null } ] },
        });
        let t = |s: &str| Threshold::parse(s, false).unwrap().evaluate(&root, None);
        assert_eq!(t("count(status.members[*].id) == 3").unwrap().observed, 3.0);
        // Nulls are no samples: not counted; all of them null is no data, never 0.
        assert_eq!(t("count(status.members[*].db) == 1").unwrap().observed, 1.0);
        let none = serde_json::json!({ "s": { "m": [ { "x": null } ] } });
        let e = Threshold::parse("count(s.m[*].x) > 0", false)
            .unwrap()
            .evaluate(&none, None)
            .unwrap_err();
        assert!(matches!(e, EvalError::NoData { .. }), "{e}");
        // A string compared is still not a number.
        assert!(matches!(
            t("max(status.members[*].id) < 1"),
            Err(EvalError::NotANumber { .. })
        ));
        let only = Threshold::parse("count(status.members[*].id) == 3", false).unwrap();
        assert!(only.only_counted(only.paths()[0]));
        let both = Threshold::parse(
            "count(status.members[*].id) == 3 && max(status.members[*].id) < 1",
            false,
        )
        .unwrap();
        assert!(!both.only_counted(both.paths()[0]));
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
mod typed_tests {
    use super::*;
    use crate::measure::latency::Recorder;
    use serde_json::json;
    use std::time::Duration;

    fn dist(samples: impl Iterator<Item = u64>) -> Value {
        let mut r = Recorder::default();
        for us in samples {
            r.record(Duration::from_micros(us));
        }
        serde_json::to_value(r.summary()).unwrap()
    }

    #[test]
    fn no_samples_is_no_data_never_a_pass() {
        let root = json!({
            "w": { "latency": dist(std::iter::empty()), "errors": 0 },
            "load": { "server": { "no_data": "1 member(s) could not be scraped: http://127.0.0.1:1: connection refused",
                                  "wal_fsync": { "count": 3, "p99": 1.0 } } },
        });
        let t = Threshold::parse("w.latency.p99 < 10ms", false).unwrap();
        let e = t.evaluate(&root, None).unwrap_err();
        assert!(matches!(e, EvalError::NoData { .. }), "{e}");
        assert!(e.to_string().starts_with("no data: `w.latency.p99`"), "{e}");
        // Figures under an object that says why its data is partial: no data, with the reason.
        let t = Threshold::parse("load.server.wal_fsync.p99 < 10ms", false).unwrap();
        let e = t.evaluate(&root, None).unwrap_err().to_string();
        assert!(
            e.contains("could not be scraped") && e.contains("127.0.0.1:1"),
            "{e}"
        );
        // Any quantile of an empty distribution is no data as well.
        let t = Threshold::parse("w.latency.p(95) < 10ms", false).unwrap();
        assert!(matches!(
            t.evaluate(&root, None),
            Err(EvalError::NoData { .. })
        ));
    }

    #[test]
    fn any_quantile_can_be_asked() {
        let root = json!({ "w": { "latency": dist((1..=1000).map(|i| i * 100)) } }); // 0.1..100 ms
        let v = |t: &str| {
            Threshold::parse(t, false)
                .unwrap()
                .evaluate(&root, None)
                .unwrap()
        };
        assert!((v("w.latency.p95 < 1s").observed - 95.0).abs() < 0.1);
        assert!((v("w.latency.p(99.9) < 1s").observed - 99.9).abs() < 0.1);
        assert!((v("w.latency.p(50) < 1s").observed - 50.0).abs() < 0.1);
        assert_eq!(
            Threshold::parse("w.latency.p(99.9) < 1s", false)
                .unwrap()
                .paths()[0]
                .to_string(),
            "w.latency.p(99.9)"
        );
        assert!(Threshold::parse("w.latency.p(120) < 1s", false).is_err());
    }

    fn typed(src: &str, units: &[(&str, Unit)]) -> Result<Threshold, String> {
        let mut t = Threshold::parse(src, false).map_err(|e| e.to_string())?;
        let map: BTreeMap<String, Unit> = units.iter().map(|(p, u)| (p.to_string(), *u)).collect();
        t.check_units(&|p: &FieldPath| map.get(&p.to_string()).copied())?;
        Ok(t)
    }

    #[test]
    fn units_are_checked_against_the_fields_types() {
        let e = typed("w.latency.p99 < 1GiB", &[("w.latency.p99", Unit::Ms)]).unwrap_err();
        assert!(
            e.contains("`w.latency.p99` is a duration (ms)") && e.contains("size"),
            "{e}"
        );
        let e = typed("h.shortfall < 5ms", &[("h.shortfall", Unit::Ratio)]).unwrap_err();
        assert!(e.contains("ratio"), "{e}");
        let e = typed("w.errors < 5%", &[("w.errors", Unit::Count)]).unwrap_err();
        assert!(
            e.contains("`w.errors` is a count") && e.contains("fraction"),
            "{e}"
        );
        assert!(typed("w.latency.p99 < 2s", &[("w.latency.p99", Unit::Ms)]).is_ok());
        assert!(typed("h.shortfall < 5%", &[("h.shortfall", Unit::Ratio)]).is_ok());
        assert!(typed("h.shortfall < 0.05", &[("h.shortfall", Unit::Ratio)]).is_ok());
        // A ratio scales a size: this is a size limit, shown in bytes.
        let t = typed(
            "s.db_size < 95% * 2147483648",
            &[("s.db_size", Unit::Bytes)],
        )
        .unwrap();
        let v = t
            .evaluate(&json!({ "s": { "db_size": 1350041600u64 } }), None)
            .unwrap();
        assert!(v.passed);
        assert_eq!(
            v.summary, "observed 1.26GiB, limit < 1.9GiB",
            "{}",
            v.summary
        );
        // A size over a size is a plain number, shown as one.
        let t = typed(
            "s.in_use / s.size > 0.5",
            &[("s.in_use", Unit::Bytes), ("s.size", Unit::Bytes)],
        )
        .unwrap();
        let v = t
            .evaluate(&json!({ "s": { "in_use": 3.0, "size": 4.0 } }), None)
            .unwrap();
        assert_eq!(v.summary, "observed 0.75, limit > 0.5");
    }

    #[test]
    fn values_that_round_alike_are_shown_exactly() {
        let root = serde_json::json!({ "s": { "db": 1511424.0 } });
        let t = Threshold::parse("s.db <= 1507328B", false).unwrap();
        let v = t.evaluate(&root, None).unwrap();
        assert!(!v.passed);
        assert!(
            v.summary.contains("1.44MiB")
                && v.summary.contains("exactly 1511424 bytes vs 1507328 bytes"),
            "{}",
            v.summary
        );
        // Untyped fields (a script's own record) take any unit, as before.
        assert!(typed("x.y < 1GiB", &[]).is_ok());
    }

    #[test]
    fn compound_thresholds_show_both_sides_with_units() {
        let t = typed(
            "w.ok == true && w.p99 < 25ms",
            &[("w.ok", Unit::Bool), ("w.p99", Unit::Ms)],
        )
        .unwrap();
        let v = t
            .evaluate(&json!({ "w": { "ok": false, "p99": 3.0 } }), None)
            .unwrap();
        assert!(!v.passed);
        assert_eq!(
            v.summary,
            "`w.ok` observed false, limit == true; `w.p99` observed 3ms, limit < 25ms"
        );
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

    proptest::proptest! {
        /// Any text: a threshold or a parse error, never a panic.
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,48}") {
            let _ = Threshold::parse(&text, false);
        }

        /// Threshold-shaped text (fields, quantiles, units, operators): never a panic, and what
        /// parses evaluates against a record without panicking.
        #[test]
        fn threshold_shaped_text_never_panics(text in "(max\\(|min\\()?[a-z]{1,3}(\\.[a-z0-9_]{1,4}|\\[\\*\\]|\\[[0-9]\\]|\\.p\\([0-9.]{1,5}\\)){0,4}\\)? ?(<|<=|==|!=|>=|>|&&|\\|\\|) ?-?[0-9.e]{1,6}(ms|s|GiB|%|/s)?( (\\*|/|\\+|-) [0-9]{1,3})?") {
            if let Ok(t) = Threshold::parse(&text, false) {
                let root = serde_json::json!({ "a": { "b": 1.0, "p99": null, "c": [1, 2] } });
                let _ = t.evaluate(&root, None);
            }
        }
    }
}

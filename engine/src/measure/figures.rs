//! A record read through its type: every figure with its unit, which way is worse, and what its
//! value rests on (the samples of a distribution, the requests behind a rate or a share), so
//! renderers and `scen compare` never guess from a field's name.
//!
//! Record fields declare direction and basis in their schema: `x-better` (`lower` or `higher`)
//! and `x-samples` (the sibling field, or a path through one, that counts what the figure rests
//! on). Every quantile and mean of a latency distribution is lower-is-better and rests on the
//! distribution's independent samples: requests in flight together share the server's state (one
//! fsync stall slows all of them), so a distribution over a span of `T` with mean latency `m`
//! rests on at most `T / m` independent samples (Little's law: `n / concurrency`), however many
//! requests it counted.

use serde_json::Value;

use super::latency::quantile_key;
use super::schema::{is_distribution, resolve};
use super::Unit;

/// Which way a figure gets better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Smaller is better (latency, errors).
    Lower,
    /// Larger is better (throughput).
    Higher,
}

/// What a figure's value rests on: how much it could move by chance between two runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Basis {
    /// Nothing is known about its noise (a configured value, a gauge, a maximum).
    Unknown,
    /// Quantile `q` of a latency distribution (the distribution as it stands in the report,
    /// with its HDR histogram or buckets) over `n` independent samples.
    Quantile {
        /// The quantile, 0..1.
        q: f64,
        /// Independent samples.
        n: u64,
        /// The distribution's JSON.
        dist: Value,
    },
    /// The mean of `n` independent samples with standard deviation `sd`.
    Mean {
        /// Independent samples.
        n: u64,
        /// Standard deviation, in the figure's unit.
        sd: f64,
    },
    /// A count of independent events (errors, leader changes): Poisson.
    Events,
    /// A share of `n` trials (an error rate): binomial.
    Share {
        /// Trials.
        n: u64,
    },
    /// A rate of `n` events over the run (throughput).
    RateOf {
        /// Events.
        n: u64,
    },
    /// A search's answer bracketed from above (`etcd::capacity`'s sustained rate, below the
    /// lowest rate that failed): the truth lies in `[value, upper]`.
    Bracket {
        /// The bracket's upper end (`None`: unbounded above).
        upper: Option<f64>,
    },
}

impl Basis {
    /// The number of samples the figure rests on, when it is a sample statistic.
    pub fn samples(&self) -> Option<u64> {
        match self {
            Basis::Quantile { n, .. }
            | Basis::Mean { n, .. }
            | Basis::Share { n }
            | Basis::RateOf { n } => Some(*n),
            Basis::Unknown | Basis::Events | Basis::Bracket { .. } => None,
        }
    }
}

/// One figure of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// `step.field.path`.
    pub path: String,
    /// The value; `None` for no samples (`null` in the JSON).
    pub value: Option<f64>,
    /// Its unit; `None` when the record is the script's own and has no type.
    pub unit: Option<Unit>,
    /// Which way is better; `None` when neither (a configured value, a size of the workload).
    pub better: Option<Better>,
    /// What it rests on.
    pub basis: Basis,
    /// Its run's second-to-second relative standard error, when its record has a per-second
    /// series ([`Spread`]): its interval is at least that wide.
    pub spread: Option<f64>,
}

impl Figure {
    /// The value for people, in its unit (`—` for no samples). A quantile of a bucketed
    /// histogram (etcd's and the API server's `/metrics`) is known only to its bucket: it shows
    /// with the bucket's bounds, `2.51ms (bucket 0–5ms)`, or `> 8.39s` in the open last bucket.
    pub fn display(&self) -> String {
        let shown = super::show(self.unit, self.value);
        match (self.value, self.bucket()) {
            (Some(_), Some((lo, hi))) if hi.is_infinite() => {
                format!("> {}", super::show(self.unit, Some(lo)))
            }
            (Some(_), Some((lo, hi))) => format!(
                "{shown} (bucket {}–{})",
                super::show(self.unit, Some(lo)),
                super::show(self.unit, Some(hi))
            ),
            _ => shown,
        }
    }

    /// The bucket `(lower, upper)` a quantile of a bucketed histogram lies in (`None`: not such
    /// a quantile; scen's own HDR distributions resolve three significant figures).
    pub fn bucket(&self) -> Option<(f64, f64)> {
        let Basis::Quantile { q, dist, .. } = &self.basis else {
            return None;
        };
        let cum = super::latency::buckets_of(dist)?;
        super::latency::bucket_bounds(*q, &cum)
    }
}

/// Every numeric and boolean figure of `value` under `prefix`, typed by `schema` (a record's JSON
/// Schema; `None` for an untyped record). `span_ms` is the wall time the record covers (bounding
/// the independent samples of its distributions). Lists (per-second series, members) are plots,
/// not figures, and are left out; so are strings.
pub fn figures(
    schema: Option<&Value>,
    value: &Value,
    prefix: &str,
    span_ms: Option<f64>,
) -> Vec<Figure> {
    walk_all(schema, value, prefix, span_ms, false)
}

/// As [`figures`], and the figures of lists of maps too (`members[0].raft_index`, a per-second
/// series' seconds): what a page shows as tables, a row per element. Not compared: a list's
/// elements are plots and identities, not figures of the run.
pub fn figures_with_lists(
    schema: Option<&Value>,
    value: &Value,
    prefix: &str,
    span_ms: Option<f64>,
) -> Vec<Figure> {
    walk_all(schema, value, prefix, span_ms, true)
}

fn walk_all(
    schema: Option<&Value>,
    value: &Value,
    prefix: &str,
    span_ms: Option<f64>,
    lists: bool,
) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut w = Walk {
        defs: schema.and_then(|s| s.get("$defs")),
        span_ms,
        lists,
        spread: Spread::of(value),
        out: &mut out,
    };
    w.walk(schema, value, prefix);
    out
}

/// How much a load's own figures moved from second to second: the relative standard error of a
/// figure of the whole run, from its seconds as batches (batch means). Requests of one run are
/// not independent — a busy second slows all of them — so the count of requests overstates what
/// a figure rests on; `scen compare` widens each interval to at least `±1.96 ×` this.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Spread {
    /// For the quantiles and means of the record's latency distributions: from the per-second
    /// medians.
    pub latency: Option<f64>,
    /// For rates of requests: from the per-second counts, at least the latency's (a closed
    /// loop's rate is its clients over its latency).
    pub rate: Option<f64>,
}

impl Spread {
    /// Fewest seconds that estimate a spread.
    const MIN_SECONDS: usize = 4;
    /// Fewest successes in a second for its median to count.
    const MIN_PER_SECOND: u64 = 20;

    /// The spread of a record with a per-second `series` (seconds with `ok` and `p50`); none for
    /// any other, or too short a series.
    pub fn of(record: &Value) -> Spread {
        let Some(series) = record.get("series").and_then(Value::as_array) else {
            return Spread::default();
        };
        let ok = |s: &Value| s.get("ok").and_then(Value::as_u64);
        // Relative standard error of the mean of the seconds' values.
        let rse = |xs: &[f64]| {
            let (m, v) = mean_var(xs)?;
            (xs.len() >= Self::MIN_SECONDS && m > 0.0).then(|| (v / xs.len() as f64).sqrt() / m)
        };
        // The first and last seconds are partial: their counts are not the rate's.
        let whole = series.get(1..series.len().saturating_sub(1)).unwrap_or(&[]);
        let counts: Vec<f64> = whole.iter().filter_map(ok).map(|n| n as f64).collect();
        // Every second with enough successes: a partial one has a median too.
        let medians: Vec<f64> = series
            .iter()
            .filter(|s| ok(s).is_some_and(|k| k >= Self::MIN_PER_SECOND))
            .filter_map(|s| s.get("p50")?.as_f64())
            .collect();
        let latency = rse(&medians);
        // A closed loop's rate is its clients over its latency: it moves as much as that does.
        let rate = match (rse(&counts), latency) {
            (Some(r), Some(l)) => Some(r.max(l)),
            (r, l) => r.or(l),
        };
        Spread { latency, rate }
    }

    /// `(lo, hi)` widened to at least `value ± 1.96 × rse`.
    pub fn widen(rse: Option<f64>, value: f64, (lo, hi): (f64, f64)) -> (f64, f64) {
        match rse {
            Some(r) => {
                let half = super::interval::Z * r * value.abs();
                (lo.min(value - half), hi.max(value + half))
            }
            None => (lo, hi),
        }
    }
}

/// Mean and sample variance, `None` for fewer than two values.
fn mean_var(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    Some((m, v))
}

struct Walk<'a> {
    defs: Option<&'a Value>,
    span_ms: Option<f64>,
    /// The record's second-to-second spread.
    spread: Spread,
    /// Walk into lists of maps too.
    lists: bool,
    out: &'a mut Vec<Figure>,
}

impl Walk<'_> {
    fn walk(&mut self, schema: Option<&Value>, value: &Value, path: &str) {
        let defs = self.defs;
        let node = schema.map(|s| resolve(defs, s));
        let Value::Object(map) = value else {
            return;
        };
        if node.is_some_and(is_distribution) {
            distribution(map, path, self.span_ms, self.spread.latency, self.out);
            return;
        }
        for (k, v) in map {
            let here = super::path::key(path, k);
            let field = node.and_then(|n| {
                n.get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
            });
            match v {
                Value::Object(_) => self.walk(field, v, &here),
                Value::Number(_) | Value::Null | Value::Bool(_) => {
                    let mut f = leaf(defs, field, map, v, here, schema.is_some());
                    if matches!(f.basis, Basis::RateOf { .. }) {
                        f.spread = self.spread.rate;
                    }
                    self.out.push(f);
                }
                Value::Array(items) if self.lists => {
                    let item = field.map(|f| resolve(defs, f)).and_then(|f| f.get("items"));
                    for (i, e) in items.iter().enumerate() {
                        if e.is_object() {
                            self.walk(item, e, &super::path::index(&here, i));
                        }
                    }
                }
                Value::Array(_) | Value::String(_) => {}
            }
        }
    }
}

/// The figures of a latency distribution (ms): quantiles and mean are lower-is-better.
fn distribution(
    map: &serde_json::Map<String, Value>,
    path: &str,
    span_ms: Option<f64>,
    spread: Option<f64>,
    out: &mut Vec<Figure>,
) {
    let count = map.get("count").and_then(Value::as_u64).unwrap_or(0);
    let mean = map.get("mean").and_then(Value::as_f64);
    let n = match (span_ms, mean) {
        (Some(span), Some(mean)) if mean > 0.0 => count.min((span / mean) as u64),
        _ => count,
    };
    let dist = Value::Object(map.clone());
    for (k, v) in map {
        if !(v.is_number() || v.is_null()) {
            continue;
        }
        let value = v.as_f64();
        let (unit, better, basis) = if k == "count" {
            (Unit::Count, None, Basis::Unknown)
        } else if let Some(q) = quantile_key(k) {
            let basis = Basis::Quantile {
                q,
                n,
                dist: dist.clone(),
            };
            (Unit::Ms, Some(Better::Lower), basis)
        } else if k == "mean" {
            let sd = map.get("stddev").and_then(Value::as_f64);
            match sd {
                Some(sd) => (Unit::Ms, Some(Better::Lower), Basis::Mean { n, sd }),
                None => (Unit::Ms, Some(Better::Lower), Basis::Unknown),
            }
        } else {
            // min, max, stddev: shown, but no verdict (a maximum has no confidence interval).
            (Unit::Ms, None, Basis::Unknown)
        };
        // The spread of the medians, a floor for every quantile and the mean (a tail moves
        // more, never less, from second to second).
        let spread = matches!(basis, Basis::Quantile { .. } | Basis::Mean { .. })
            .then_some(spread)
            .flatten();
        out.push(Figure {
            path: super::path::key(path, k),
            value,
            unit: Some(unit),
            better,
            basis,
            spread,
        });
    }
}

fn leaf(
    defs: Option<&Value>,
    field: Option<&Value>,
    parent: &serde_json::Map<String, Value>,
    v: &Value,
    path: String,
    typed: bool,
) -> Figure {
    let value = match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        other => other.as_f64(),
    };
    let raw = field;
    let node = field.map(|f| resolve(defs, f));
    let ext = |key: &str| {
        raw.and_then(|r| r.get(key))
            .or_else(|| node.and_then(|n| n.get(key)))
            .and_then(Value::as_str)
    };
    let unit = match ext("x-unit").and_then(Unit::from_symbol) {
        Some(u) => Some(u),
        None if v.is_boolean() => Some(Unit::Bool),
        None if node.is_some() => {
            let types = node.and_then(|n| n.get("type"));
            let has = |t: &str| match types {
                Some(Value::String(s)) => s == t,
                Some(Value::Array(a)) => a.iter().any(|x| x == t),
                _ => false,
            };
            if has("boolean") {
                Some(Unit::Bool)
            } else if has("integer") || has("number") {
                Some(Unit::Count) // a number without a declared unit counts things
            } else {
                None
            }
        }
        None => None,
    };
    // A field a typed record does not declare (an old report's) has no type.
    let unit = if typed && node.is_none() { None } else { unit };
    let better = match ext("x-better") {
        Some("lower") => Some(Better::Lower),
        Some("higher") => Some(Better::Higher),
        _ => None,
    };
    // A sibling field, or a path through one (`txn_latency.count`).
    let samples = ext("x-samples")
        .and_then(|f| {
            let mut keys = f.split('.');
            let first = parent.get(keys.next()?)?;
            keys.try_fold(first, |v, k| v.get(k))
        })
        .and_then(Value::as_u64);
    let upper = ext("x-upper").and_then(|f| parent.get(f));
    let basis = match (unit, samples) {
        _ if upper.is_some() => Basis::Bracket {
            upper: upper.and_then(Value::as_f64),
        },
        (Some(Unit::Ratio), Some(n)) => Basis::Share { n },
        (Some(Unit::PerSecond), Some(n)) => Basis::RateOf { n },
        (Some(Unit::Count), _) if better.is_some() => Basis::Events,
        _ => Basis::Unknown,
    };
    Figure {
        path,
        value,
        unit,
        better,
        basis,
        spread: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::stress::StressRecord;

    fn find<'a>(fs: &'a [Figure], path: &str) -> &'a Figure {
        fs.iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path} in {fs:#?}"))
    }

    #[test]
    fn a_quantile_of_buckets_shows_its_bucket_and_an_hdr_one_its_value() {
        // 5,991 of 6,010 observations at or under 5 ms: p50 interpolates to 2.51 ms, which the
        // buckets cannot tell from 0.3 ms.
        let dist = serde_json::json!({
            "count": 6010, "p50": 2.508, "p99": 4.95, "p999": 30.0,
            "buckets": [[5.0, 5991.0], [10.0, 6000.0], [50.0, 6008.0], [null, 6010.0]]
        });
        let fig = |k: &str, q: f64| Figure {
            path: format!("s.grpc.{k}"),
            value: dist[k].as_f64(),
            unit: Some(Unit::Ms),
            better: Some(Better::Lower),
            basis: Basis::Quantile {
                q,
                n: 6010,
                dist: dist.clone(),
            },
            spread: None,
        };
        assert_eq!(fig("p50", 0.5).bucket(), Some((0.0, 5.0)));
        assert_eq!(fig("p50", 0.5).display(), "2.51ms (bucket 0ms–5ms)");
        assert_eq!(fig("p999", 0.999).display(), "30ms (bucket 10ms–50ms)");
        // The open last bucket: only a lower bound is known.
        let mut top = fig("p999", 0.9999);
        top.value = Some(60.0);
        assert_eq!(top.display(), "> 50ms");
        // scen's own HDR distribution: exact to three figures, shown as is.
        let mut hdr = fig("p50", 0.5);
        if let Basis::Quantile { dist, .. } = &mut hdr.basis {
            dist["hist"] = serde_json::json!("HISTFAAAA");
        }
        assert_eq!(hdr.display(), "2.51ms");
    }

    #[test]
    fn a_simulations_throughput_rests_on_its_transactions_not_its_objects() {
        let schema = serde_json::to_value(schemars::schema_for!(
            crate::actions::cluster::SimulateRecord
        ))
        .unwrap();
        let record = serde_json::json!({
            "objects": 10_000, "throughput": 8000.0, "duration_ms": 1250.0,
            "txn_latency": { "count": 313, "mean": 20.0, "p50": 19.0 }
        });
        let fs = figures(Some(&schema), &record, "c", None);
        assert_eq!(find(&fs, "c.throughput").basis, Basis::RateOf { n: 313 });
    }

    #[test]
    fn a_loads_seconds_give_the_spread_of_its_median_and_rate() {
        let second = |t: u64, ok: u64, p50: f64| serde_json::json!({"t": t, "ok": ok, "errors": 0, "p50": p50});
        // Medians 9, 11, 9, 11, 10 (mean 10, sd 1): relative standard error 1/√5/10; the counts
        // of the whole seconds (not the first or last) 100, 120, 80.
        let series: Vec<Value> = [(100, 9.0), (100, 11.0), (120, 9.0), (80, 11.0), (30, 10.0)]
            .iter()
            .enumerate()
            .map(|(t, (ok, p50))| second(t as u64, *ok, *p50))
            .collect();
        let s = Spread::of(&serde_json::json!({ "series": series }));
        assert!(
            (s.latency.unwrap() - 1.0 / 5f64.sqrt() / 10.0).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(
            s.rate, s.latency,
            "three whole seconds estimate no spread of their own: the latency's"
        );
        let many: Vec<Value> = (0..8)
            .map(|t| second(t, 100 + 10 * (t % 2), 10.0))
            .collect();
        let s = Spread::of(&serde_json::json!({ "series": many }));
        assert_eq!(s.latency, Some(0.0), "every second alike");
        assert!(s.rate.unwrap() > 0.0);
        // Seconds with too few successes have no median that counts; no series, no spread.
        let few: Vec<Value> = (0..8).map(|t| second(t, 5, 10.0 + t as f64)).collect();
        assert_eq!(
            Spread::of(&serde_json::json!({ "series": few })).latency,
            None
        );
        assert_eq!(Spread::of(&serde_json::json!({})), Spread::default());
        // The widened interval: at least ±1.96 × rse × value.
        assert_eq!(Spread::widen(Some(0.1), 10.0, (9.9, 10.1)), (8.04, 11.96));
        assert_eq!(Spread::widen(None, 10.0, (9.9, 10.1)), (9.9, 10.1));
    }

    #[test]
    fn a_record_reads_through_its_type() {
        let schema = serde_json::to_value(schemars::schema_for!(StressRecord)).unwrap();
        let record = serde_json::json!({
            "ops": 1000, "ok": 990, "errors": 10, "error_rate": 0.01, "throughput": 495.0,
            "shortfall": null, "dropped": 0, "duration_ms": 2000.0, "clients": 8,
            "latency": { "count": 990, "mean": 2.0, "stddev": 0.5, "p99": 4.0, "max": 9.0, "hist": "x" },
            "by_op": { "put": { "ok": 990, "errors": 10, "throughput": 495.0,
                                "latency": { "count": 990, "p50": 1.0 } } },
            "series": [{ "t": 0, "ok": 5 }],
            "cpu": { "client_ms": 30.0, "client_per_op": null },
            "transport": "lean"
        });
        let fs = figures(Some(&schema), &record, "w", None);
        let p99 = find(&fs, "w.latency.p99");
        assert_eq!(
            (p99.unit, p99.better),
            (Some(Unit::Ms), Some(Better::Lower))
        );
        assert!(matches!(p99.basis, Basis::Quantile { n: 990, .. }));
        assert_eq!(find(&fs, "w.latency.max").better, None);
        assert_eq!(
            find(&fs, "w.latency.mean").basis,
            Basis::Mean { n: 990, sd: 0.5 }
        );
        let t = find(&fs, "w.throughput");
        assert_eq!(
            (t.unit, t.better, &t.basis),
            (
                Some(Unit::PerSecond),
                Some(Better::Higher),
                &Basis::RateOf { n: 990 }
            )
        );
        let e = find(&fs, "w.error_rate");
        assert_eq!(
            (e.better, &e.basis),
            (Some(Better::Lower), &Basis::Share { n: 1000 })
        );
        assert_eq!(find(&fs, "w.errors").basis, Basis::Events);
        assert_eq!(find(&fs, "w.by_op.put.errors").basis, Basis::Events);
        assert_eq!(find(&fs, "w.by_op.put.latency.p50").unit, Some(Unit::Ms));
        let s = find(&fs, "w.shortfall");
        assert_eq!(
            (s.value, s.unit, s.display()),
            (None, Some(Unit::Ratio), "—".into())
        );
        assert_eq!(find(&fs, "w.clients").better, None);
        assert_eq!(find(&fs, "w.cpu.client_ms").unit, Some(Unit::Ms));
        assert!(fs
            .iter()
            .all(|f| !f.path.contains("series") && !f.path.contains("hist")));
        // 990 requests with a 2 ms mean over 1 s: at most 500 could not have overlapped.
        let fs = figures(Some(&schema), &record, "w", Some(1000.0));
        assert!(matches!(
            find(&fs, "w.latency.p99").basis,
            Basis::Quantile { n: 500, .. }
        ));
        // An untyped record: figures without units or direction.
        let fs = figures(None, &record, "w", None);
        assert_eq!(find(&fs, "w.throughput").unit, None);
        assert_eq!(find(&fs, "w.errors").better, None);
    }
}

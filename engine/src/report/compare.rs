//! Comparing two reports figure by figure (`scen compare old.json new.json --tolerance 10%`): every
//! numeric field both runs recorded, the change, and whether it regressed beyond the tolerance. A
//! figure has a direction when its name says which way is worse (latencies, errors and CPU up;
//! throughput down); the others are shown for information.

use serde::Serialize;
use serde_json::Value;

use super::Report;
use crate::run::step_view;

/// Which way a figure gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is worse (latency, errors, CPU, db size).
    LowerIsBetter,
    /// Smaller is worse (throughput).
    HigherIsBetter,
    /// No verdict (counts, sizes of the workload).
    Info,
}

/// One figure of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `step.field.path`.
    pub path: String,
    /// The old value.
    pub old: f64,
    /// The new value.
    pub new: f64,
    /// Relative change (new - old) / old; infinite when old is 0 and new is not.
    pub change: f64,
    /// Which way is worse.
    pub direction: Direction,
    /// Worse by more than the tolerance.
    pub regressed: bool,
}

/// Whether a figure has a direction, from its path.
pub fn direction(path: &str) -> Direction {
    let last = path.rsplit('.').next().unwrap_or(path);
    let in_latency = [
        ".latency.",
        ".wal_fsync.",
        ".backend_commit.",
        ".peer_rtt.",
        ".grpc_handling.",
        ".delay.",
    ]
    .iter()
    .any(|s| path.contains(s));
    if last == "throughput" {
        Direction::HigherIsBetter
    } else if (in_latency
        && matches!(
            last,
            "p50" | "p90" | "p99" | "p999" | "max" | "mean" | "stddev"
        ))
        || matches!(
            last,
            "errors"
                | "error_rate"
                | "shortfall"
                | "dropped"
                | "missed"
                | "client_per_op_us"
                | "server_per_op_us"
                | "leader_changes"
                | "proposals_failed"
                | "slow_applies"
        )
    {
        Direction::LowerIsBetter
    } else {
        Direction::Info
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => out.push((prefix.to_string(), n.as_f64().unwrap_or(f64::NAN))),
        Value::Object(m) => {
            for (k, x) in m {
                // Per-second series and per-member lists are plots, not figures.
                if matches!(k.as_str(), "series" | "members" | "keys") {
                    continue;
                }
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        _ => {}
    }
}

/// Compares every figure both reports have; `tolerance` is a fraction (0.1 = 10%).
pub fn compare(old: &Report, new: &Report, tolerance: f64) -> Vec<Row> {
    let mut a = Vec::new();
    let mut b = Vec::new();
    if let (Value::Object(o), Value::Object(n)) = (step_view(&old.steps), step_view(&new.steps)) {
        for (k, v) in &o {
            flatten(k, v, &mut a);
        }
        for (k, v) in &n {
            flatten(k, v, &mut b);
        }
    }
    b.into_iter()
        .filter_map(|(path, new)| {
            let old = a.iter().find(|(p, _)| *p == path)?.1;
            let change = if old == new {
                0.0
            } else if old == 0.0 {
                f64::INFINITY.copysign(new)
            } else {
                (new - old) / old.abs()
            };
            let direction = direction(&path);
            let regressed = match direction {
                Direction::LowerIsBetter => change > tolerance,
                Direction::HigherIsBetter => change < -tolerance,
                Direction::Info => false,
            };
            Some(Row {
                path,
                old,
                new,
                change,
                direction,
                regressed,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_follow_the_names() {
        assert_eq!(direction("w.latency.p99"), Direction::LowerIsBetter);
        assert_eq!(
            direction("w.server.wal_fsync.p99"),
            Direction::LowerIsBetter
        );
        assert_eq!(direction("w.throughput"), Direction::HigherIsBetter);
        assert_eq!(direction("w.by_op.put.errors"), Direction::LowerIsBetter);
        assert_eq!(direction("w.latency.count"), Direction::Info);
        assert_eq!(direction("w.ok"), Direction::Info);
    }
}

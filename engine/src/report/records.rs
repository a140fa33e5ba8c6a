//! The parts of a step's record the renderers read, deserialised into Rust types instead of looked
//! up by name in JSON: a load's per-second series and totals, its latency distributions, a fault,
//! a capacity search, database sizes. Each part is read from any record that has it (a stress, a
//! heartbeat, an old report's record); a field of another shape is absent, not an error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::StepReport;
use crate::actions::capacity::Trial;
use crate::actions::registry::{Record, RecordType};
use crate::measure::book::Second;
use crate::measure::latency::Distribution;

/// A field that is absent when it has another shape than its type (a `series` of PromQL series is
/// not a load's).
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(T::deserialize(v).ok())
}

/// A part of a step's record, `None` when the record does not have it: read from the JSON of
/// a part several record types share (a load's series, its latency), or of a script's map.
fn part<T: DeserializeOwned>(s: &StepReport) -> Option<T> {
    T::deserialize(s.record.to_value()).ok()
}

/// What a load records beside its figures: its per-second series and its totals.
#[derive(Debug, Default, Deserialize)]
pub struct Load {
    /// One point per second since the load started (a stress's, a heartbeat's).
    #[serde(default, deserialize_with = "lenient")]
    pub series: Option<Vec<Second>>,
    /// The rate it was asked for, per second.
    #[serde(default, deserialize_with = "lenient")]
    pub target_rate: Option<f64>,
    /// Requests it completed.
    #[serde(default, deserialize_with = "lenient")]
    pub ops: Option<f64>,
    /// Requests per second it achieved.
    #[serde(default, deserialize_with = "lenient")]
    pub throughput: Option<f64>,
}

impl Load {
    /// The load part of a step's record.
    pub fn of(s: &StepReport) -> Load {
        part(s).unwrap_or_default()
    }

    /// The per-second series, when the step has a non-empty one.
    pub fn seconds(s: &StepReport) -> Option<Vec<Second>> {
        Load::of(s).series.filter(|v| !v.is_empty())
    }
}

/// A heartbeat's lease writes.
#[derive(Debug, Default, Deserialize)]
struct Leases {
    #[serde(default, deserialize_with = "lenient")]
    latency: Option<Distribution>,
}

/// The latency distributions a step's record may have.
#[derive(Debug, Default, Deserialize)]
pub struct Latencies {
    /// The load's request latency.
    #[serde(default, deserialize_with = "lenient")]
    pub latency: Option<Distribution>,
    /// A transaction load's transaction latency.
    #[serde(default, deserialize_with = "lenient")]
    pub txn_latency: Option<Distribution>,
    /// A heartbeat's lease writes.
    #[serde(default, deserialize_with = "lenient")]
    leases: Option<Leases>,
}

impl Latencies {
    /// The latency distributions of a step's record.
    pub fn of(s: &StepReport) -> Latencies {
        part(s).unwrap_or_default()
    }

    /// The step's latency distribution: `latency`, `txn_latency`, or a heartbeat's lease writes,
    /// the first with samples.
    pub fn main(s: &StepReport) -> Option<Distribution> {
        let l = Latencies::of(s);
        [l.latency, l.txn_latency, l.leases.and_then(|x| x.latency)]
            .into_iter()
            .flatten()
            .find(|d| d.count > 0)
    }
}

/// A fault step's action (`kill`, `partition`, ...) and what it acted on.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    /// `kill`, `restart`, `pause`, `resume`, `slow_disk`, `partition`, `heal` or `link`.
    pub action: String,
    /// The member acted on (`null` for a partition or a heal).
    #[serde(default)]
    pub member: Option<String>,
    /// `slow_disk`: the added fsync delay, ms (0: removed).
    #[serde(default)]
    pub delay_ms: Option<f64>,
}

impl Fault {
    /// The fault a step injected or undid, when it is a fault step (`fault::members` is not).
    pub fn of(s: &StepReport) -> Option<Fault> {
        match &s.record {
            Record::Fault(f) => Some(Fault {
                action: f.record.action.clone(),
                member: Some(f.record.member.clone()),
                delay_ms: f.record.delay_ms,
            }),
            Record::Network(n) => Some(Fault {
                action: n.record.action.clone(),
                member: n.record.member.clone(),
                delay_ms: n.record.delay_ms,
            }),
            // A fault's record the script changed the shape of.
            Record::Script(_) => {
                let ty = RecordType::of_action(s.action.as_deref()?)?;
                matches!(ty, RecordType::Fault | RecordType::Network)
                    .then(|| part(s))
                    .flatten()
            }
            _ => None,
        }
    }
}

/// A capacity search's trials and its answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Capacity {
    /// The SLO each trial was held to, as written (`p99 < 25ms`).
    pub slo: String,
    /// The highest rate that held.
    #[serde(default)]
    pub sustained_rate: Option<f64>,
    /// The lowest rate that broke.
    #[serde(default)]
    pub failed_rate: Option<f64>,
    /// Every trial, in the order run.
    #[serde(default)]
    pub trials: Vec<Trial>,
}

impl Capacity {
    /// The capacity search of a step (`etcd::capacity`); also an old report's, whose steps
    /// name no action.
    pub fn of(s: &StepReport) -> Option<Capacity> {
        match (&s.record, s.action.as_deref().map(RecordType::of_action)) {
            (Record::Capacity(c), _) => Some(Capacity {
                slo: c.record.slo.clone(),
                sustained_rate: c.record.sustained_rate,
                failed_rate: c.record.failed_rate,
                trials: c.record.trials.clone(),
            }),
            (Record::Script(_), Some(Some(RecordType::Capacity)) | None) => part(s),
            _ => None,
        }
    }

    /// The SLO's limit when it is one upper bound on the p99 (`p99 < 25ms`), in ms.
    pub fn p99_limit_ms(&self) -> Option<f64> {
        crate::actions::capacity::p99_limit_ms(&self.slo)
    }
}

/// The database sizes a step records: a status's size and size in use, a defragmentation's
/// before and after (bytes).
#[derive(Debug, Default, Deserialize)]
pub struct DbSizes {
    /// `etcd::status`: the database's size.
    #[serde(default, deserialize_with = "lenient")]
    pub db_size: Option<f64>,
    /// `etcd::status`: the part of it in use.
    #[serde(default, deserialize_with = "lenient")]
    pub db_size_in_use: Option<f64>,
    /// Before a defragmentation (or a compaction).
    #[serde(default, deserialize_with = "lenient")]
    pub db_size_before: Option<f64>,
    /// After it.
    #[serde(default, deserialize_with = "lenient")]
    pub db_size_after: Option<f64>,
}

impl DbSizes {
    /// The database sizes of a step's record.
    pub fn of(s: &StepReport) -> DbSizes {
        part(s).unwrap_or_default()
    }
}

/// What a per-second chart plots of each second of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerSecond {
    /// Requests that succeeded.
    Ok,
    /// Requests that failed.
    Errors,
    /// The second's p99, ms.
    P99,
    /// The second's slowest request, ms.
    Max,
}

impl PerSecond {
    /// This figure of one second, `None` when the second has none (no request succeeded).
    pub fn of(self, p: &Second) -> Option<f64> {
        match self {
            PerSecond::Ok => Some(p.ok as f64),
            PerSecond::Errors => Some(p.errors as f64),
            PerSecond::P99 => p.p99,
            PerSecond::Max => p.max,
        }
    }
}

/// `(t, value)` of each second of a series that has the figure.
pub fn points(series: &[Second], f: PerSecond) -> Vec<(f64, f64)> {
    series
        .iter()
        .filter_map(|p| Some((p.t as f64, f.of(p)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slo_line_is_drawn_only_for_one_upper_bound_on_the_p99() {
        let slo = |s: &str| Capacity {
            slo: s.into(),
            sustained_rate: None,
            failed_rate: None,
            trials: Vec::new(),
        };
        assert_eq!(slo("p99 < 25ms").p99_limit_ms(), Some(25.0));
        assert_eq!(slo("p99 <= 2s").p99_limit_ms(), Some(2000.0));
        assert_eq!(slo("p50 < 25ms").p99_limit_ms(), None);
        assert_eq!(slo("p99 > 25ms").p99_limit_ms(), None);
        assert_eq!(slo("p99 < 25ms && error_rate < 1%").p99_limit_ms(), None);
    }
}

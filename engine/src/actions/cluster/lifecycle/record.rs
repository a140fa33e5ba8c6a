//! What `cluster::lifecycle` records: each phase's writes, latency, conflicts and errors, and the
//! time for the population to reach it; the record made from the phases' tallies.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::*;
use crate::actions::{ms, Error, Result};
use crate::measure::latency::Distribution;

/// One phase's figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PhaseRecord {
    /// Objects that entered the phase.
    pub count: u64,
    /// Writes of the phase that failed.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Compare-and-swap writes that found the object changed and tried again.
    #[schemars(extend("x-better" = "lower"))]
    pub conflicts: u64,
    /// Latency of the phase's writes (ms).
    pub latency: Distribution,
    /// Time from each object's creation to its entering the phase (ms): the population's startup.
    pub since_created: Distribution,
    /// Objects entering the phase per second, from the first entry to the last (over the step
    /// when they all entered at once).
    #[schemars(with = "crate::measure::PerSecond", extend("x-better" = "higher", "x-samples" = "count"))]
    pub throughput: f64,
    /// `mode: "waves"`: the phase's wall-clock time, from its start to its last object (ms);
    /// `null` in a pipeline, where phases overlap.
    #[schemars(with = "Option<crate::measure::Ms>", extend("x-better" = "lower"))]
    pub wall_ms: Option<f64>,
}

/// The record of `cluster::lifecycle`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct LifecycleRecord {
    /// `pod`, `vmi` or the custom resource's `group/plural`.
    pub kind: String,
    /// How the objects moved through the phases: `pipeline` or `waves`.
    pub mode: Mode,
    /// `mode: "waves"`: the most objects that existed at once (all of them, unless some failed
    /// before).
    pub peak_objects: Option<u64>,
    /// The storage root written under.
    pub root: String,
    /// Where the objects live: `<root>/<resource>/<namespace>/<name>`.
    pub prefix: String,
    /// Objects.
    pub objects: u64,
    /// Object names: `<name>-<i>`.
    pub names: String,
    /// The `<name>` of the object names.
    pub name: String,
    /// Whether the kind is namespaced (objects at `<prefix><namespace>/<name>-<i>`, else
    /// `<prefix><name>-<i>`).
    pub namespaced: bool,
    /// The namespaces the objects are in: object `i` is in the `i % len`-th.
    pub namespaces: Vec<String>,
    /// The phases run, in order.
    pub phases_run: Vec<String>,
    /// Per phase.
    pub phases: BTreeMap<String, PhaseRecord>,
    /// Objects that went through every phase.
    pub completed: u64,
    /// Failed writes, all phases.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Failures by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// The first few error messages.
    pub error_messages: Vec<String>,
    /// Objects found under the prefix at the end (0 after a `delete` phase).
    pub remaining: u64,
    /// Wall time (ms).
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// The record, or the failure that carries it when the objects expected at the end are not there.
pub(super) fn record(
    sh: &Shared,
    opts: &LifecycleOptions,
    phases: Vec<&'static str>,
    (elapsed, secs): (Duration, f64),
    (dir, name, namespaces): (String, String, Vec<String>),
    (remaining, peak): (u64, Option<u64>),
) -> Result<LifecycleRecord> {
    let root = sh.root.clone();
    let tallies = std::mem::take(&mut *sh.tallies.lock().expect("tally lock"));
    let walls = std::mem::take(&mut *sh.walls.lock().expect("walls lock"));
    let extra = tallies.extra;
    let book = tallies.book.finish();
    let (codes, messages) = (book.codes, book.messages);
    let errors: u64 = book.ops.values().map(|t| t.failed).sum();
    let created = book.ops.get("create").map_or(0, |t| t.ok);
    let phases_rec: BTreeMap<String, PhaseRecord> = phases
        .iter()
        .map(|p| {
            let (t, x) = (book.ops.get(p), extra.get(p));
            let count = t.map_or(0, |t| t.ok);
            (
                p.to_string(),
                PhaseRecord {
                    count,
                    errors: t.map_or(0, |t| t.failed),
                    conflicts: x.map_or(0, |x| x.conflicts),
                    latency: t.map_or_else(Distribution::default, |t| t.latency.summary()),
                    since_created: x
                        .map_or_else(Distribution::default, |x| x.since_created.summary()),
                    throughput: x.map_or(0.0, |x| {
                        let span = x.span.map_or(0.0, |(a, b)| (b - a).as_secs_f64()).max(1e-3);
                        let span = if span < 0.01 { secs } else { span };
                        count as f64 / span
                    }),
                    wall_ms: walls.get(p).map(|d| ms(*d)),
                },
            )
        })
        .collect();
    let record = LifecycleRecord {
        kind: sh.layout.label.clone(),
        mode: opts.mode,
        peak_objects: peak,
        root,
        prefix: dir.clone(),
        objects: opts.count,
        names: format!("{name}-<i>"),
        name,
        namespaced: sh.layout.namespaced,
        namespaces,
        phases_run: phases.iter().map(|p| p.to_string()).collect(),
        phases: phases_rec,
        completed: sh.completed.load(std::sync::atomic::Ordering::Relaxed),
        errors,
        errors_by_code: codes,
        error_messages: messages,
        remaining,
        duration_ms: ms(elapsed),
    };
    // Where objects were expected and none are found, the step failed: not an empty success.
    let deleted = phases.contains(&"delete");
    let expected = if deleted { 0 } else { created };
    if created == 0 || remaining != expected {
        // etcd's failures are the cluster's; the others (objects already there) the scenario's.
        let kind = if sh.infra.load(std::sync::atomic::Ordering::Relaxed) {
            crate::exit::ErrorKind::Infrastructure
        } else {
            crate::exit::ErrorKind::Script
        };
        return Err(Error::WithRecord {
            record: Box::new(serde_json::to_value(&record).unwrap_or_default()),
            source: Box::new(Error::Failed {
                kind,
                message: format!(
                    "expected {expected} objects under {dir} after the lifecycle, found {remaining} ({created} created, {errors} failed writes{})",
                    record.error_messages.first().map(|m| format!(": {m}")).unwrap_or_default()
                ),
            }),
        });
    }
    Ok(record)
}

//! `scen ab`: two etcd builds or configurations, A and B, measured by one scenario in interleaved
//! rounds (each run on a fresh embedded cluster), and a verdict per figure — the change B vs A
//! with a confidence interval across rounds ([`stats`]), "no significant change" when it includes
//! none, and a failure when a gating figure regressed significantly.
//!
//! A side is a list of `key=value`: `etcd-bin=PATH`, `members=N`, `member.<setting>=V` (any
//! `embedded_etcd()` setting: `member.snapshot_count=100000`), or a scenario parameter
//! (`load=m`). Everything is checked before the first run.

pub mod report;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio_util::sync::CancellationToken;

use crate::embedded::EmbeddedSpec;
use crate::measure::figures::{Better, Figure};
use crate::report::{Outcome, Report};
use crate::run::{Observer, RunConfig};
pub use report::{AbReport, FigureVerdict, GateVerdict, RunEntry, Verdict};

/// Why an A/B cannot run; every one is a usage error (exit 2) found before the first run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A side's item is not `key=value`.
    #[error("--{side} {item}: expected key=value (etcd-bin=PATH, members=N, member.<setting>=V or a scenario parameter)")]
    Item {
        /// `a` or `b`.
        side: &'static str,
        /// The item.
        item: String,
    },
    /// A side's settings or parameters are wrong for this scenario.
    #[error("--{side}: {message}")]
    Side {
        /// `a` or `b`.
        side: &'static str,
        /// What is wrong, from the scenario check or the embedded settings.
        message: String,
    },
    /// Fewer than two rounds, or absurdly many.
    #[error("--rounds {0}: use 2 to 100 (an interval across rounds needs at least two)")]
    Rounds(usize),
    /// `--order` is not `abba` or `random`.
    #[error("--order {0}: use abba or random")]
    Order(String),
    /// A gate is not `PATH` or `PATH:+N%`, or names no step of the scenario.
    #[error("--gate {gate}: {why}")]
    Gate {
        /// The gate as given.
        gate: String,
        /// What is wrong.
        why: String,
    },
}

/// One side of the comparison.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// The items as given (`etcd-bin=./etcd`).
    pub items: Vec<String>,
    /// Embedded cluster settings it sets.
    pub embedded: EmbeddedSpec,
    /// Scenario parameters it sets, as `--set` would.
    pub params: Vec<String>,
}

/// Which of the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Which {
    /// The baseline.
    A,
    /// The candidate.
    B,
}

impl Which {
    /// `A` or `B`.
    pub fn name(self) -> &'static str {
        match self {
            Which::A => "A",
            Which::B => "B",
        }
    }
}

/// The order of runs within rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// A B, B A, A B, ...: a linear drift of the machine falls equally on both sides.
    Abba,
    /// Each round's two runs in an order drawn from this seed.
    Random(u64),
}

impl Order {
    /// Parses `--order` (`abba`, `random`) with `--seed` for random (default: drawn, recorded).
    pub fn parse(text: &str, seed: Option<u64>) -> Result<Order, Error> {
        match text {
            "abba" => Ok(Order::Abba),
            "random" => Ok(Order::Random(seed.unwrap_or_else(rand::random))),
            other => Err(Error::Order(other.to_string())),
        }
    }

    /// The runs of `rounds` rounds: `(round, side)` in the order they run.
    pub fn runs(self, rounds: usize) -> Vec<(usize, Which)> {
        let mut rng = match self {
            Order::Random(seed) => Some(rand::rngs::SmallRng::seed_from_u64(seed)),
            Order::Abba => None,
        };
        let mut out = Vec::new();
        for r in 0..rounds {
            let mut pair = if r % 2 == 0 {
                [Which::A, Which::B]
            } else {
                [Which::B, Which::A]
            };
            if let Some(rng) = rng.as_mut() {
                pair.shuffle(rng);
            }
            out.extend(pair.map(|w| (r, w)));
        }
        out
    }
}

impl Side {
    /// Parses `--a`/`--b` items.
    pub fn parse(side: &'static str, items: &[String]) -> Result<Side, Error> {
        let mut out = Side {
            items: items.to_vec(),
            ..Side::default()
        };
        let mut settings = serde_json::Map::new();
        for item in items {
            let Some((k, v)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(Error::Item {
                    side,
                    item: item.clone(),
                });
            };
            match k {
                "etcd-bin" | "etcd_bin" => out.embedded.etcd_bin = Some(PathBuf::from(v)),
                "members" => {
                    settings.insert("members".into(), json_value(v));
                }
                _ => match k.strip_prefix("member.") {
                    Some(name) => {
                        settings.insert(name.into(), json_value(v));
                    }
                    None => out.params.push(item.clone()),
                },
            }
        }
        if !settings.is_empty() {
            let spec = crate::script::embedded_spec(serde_json::Value::Object(settings))
                .map_err(|message| Error::Side { side, message })?;
            out.embedded.members = spec.members;
            out.embedded.settings = spec.settings;
        }
        Ok(out)
    }

    /// `cfg` with this side's settings over it.
    fn apply(&self, cfg: &RunConfig) -> RunConfig {
        let mut c = cfg.clone();
        c.overrides.set.extend(self.params.iter().cloned());
        if let Some(b) = &self.embedded.etcd_bin {
            c.embedded_overrides.etcd_bin = Some(b.clone());
        }
        if self.embedded.members.is_some() {
            c.embedded_overrides.members = self.embedded.members;
        }
        c.embedded_overrides
            .settings
            .overlay(&self.embedded.settings);
        c
    }
}

/// A number when it reads as one, else a string (`member.auto_compaction_mode=periodic`).
fn json_value(v: &str) -> serde_json::Value {
    v.parse::<u64>()
        .map(serde_json::Value::from)
        .unwrap_or_else(|_| serde_json::Value::String(v.to_string()))
}

/// A gating figure: fail when B is significantly worse than A by more than `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The figure's path (`load.latency.p99`).
    pub path: String,
    /// The change allowed, relative, signed as the figure moves when it gets worse (`+0.05` for
    /// a latency, `-0.05` for a rate); 0 when not given.
    pub limit: f64,
    /// Where it came from: `--gate` or the threshold's expression.
    pub from: String,
}

impl Gate {
    /// Parses `PATH` or `PATH:+5%` / `PATH:-5%`.
    pub fn parse(text: &str) -> Result<Gate, Error> {
        let bad = |why: &str| Error::Gate {
            gate: text.to_string(),
            why: why.to_string(),
        };
        let (path, limit) = match text.split_once(':') {
            None => (text, 0.0),
            Some((p, l)) => {
                let pct = l
                    .trim()
                    .strip_suffix('%')
                    .ok_or_else(|| bad("the allowed change is a percentage, such as +5%"))?;
                let v: f64 = pct
                    .parse()
                    .map_err(|_| bad("the allowed change is a percentage, such as +5%"))?;
                (p, v / 100.0)
            }
        };
        if path.is_empty() || !path.contains('.') {
            return Err(bad("name a figure as step.field (load.latency.p99)"));
        }
        Ok(Gate {
            path: path.to_string(),
            limit,
            from: "--gate".into(),
        })
    }
}

/// What `scen ab` was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    /// The scenario, parameters and settings both sides share.
    pub base: RunConfig,
    /// The baseline.
    pub a: Side,
    /// The candidate.
    pub b: Side,
    /// Rounds (each one A run and one B run).
    pub rounds: usize,
    /// The order of runs in rounds.
    pub order: Order,
    /// Gating figures given with `--gate`.
    pub gates: Vec<Gate>,
    /// Figures compared besides the default ones (paths, `*` matching any text).
    pub figures: Vec<String>,
    /// A significant change smaller than this (relative) is reported as no change.
    pub min_change: f64,
    /// The change the comparison should be able to see (relative, `--detect`): a figure whose
    /// rounds could not is inconclusive, and the rounds needed for it are said after the pilot.
    pub detect: f64,
    /// Stop as soon as every deciding figure (the gates', else all compared) could detect
    /// `detect`, after at least [`PILOT_ROUNDS`]; `rounds` is then the most to run.
    pub auto_rounds: bool,
    /// Family-wise error rate: 0.05 for 95% intervals.
    pub alpha: f64,
}

/// The figures compared by default, after the step's name: throughput, latency, etcd's own WAL
/// fsync and backend commit, server CPU per request, a capacity search's answer.
pub const DEFAULT_FIGURES: [&str; 7] = [
    "throughput",
    "latency.p50",
    "latency.p99",
    "server.wal_fsync.p99",
    "server.backend_commit.p99",
    "cpu.server_per_op",
    "sustained_rate",
];

/// Whether `path` matches `pattern` (`*` matches any text).
fn matches(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let mut rest = path;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

/// Checks everything knowable before the first run: rounds, each side against the scenario
/// (parameters, settings), the etcd binaries, gates against the steps; returns the gates the
/// scenario's thresholds add.
pub async fn check(cfg: &Config) -> Result<Vec<Gate>, Error> {
    if !(2..=100).contains(&cfg.rounds) {
        return Err(Error::Rounds(cfg.rounds));
    }
    let mut plan = None;
    for (name, side) in [("a", &cfg.a), ("b", &cfg.b)] {
        let c = side.apply(&cfg.base);
        let p =
            crate::run::check(&c.scenario, &c.overrides, &c.limits).map_err(|e| Error::Side {
                side: name,
                message: e.to_string(),
            })?;
        if let Some(bin) = &side.embedded.etcd_bin {
            crate::embedded::check_binary(bin)
                .await
                .map_err(|e| Error::Side {
                    side: name,
                    message: e.to_string(),
                })?;
        }
        plan = Some(p);
    }
    let plan = plan.expect("two sides");
    let steps: Vec<&str> = plan.steps().map(|s| s.name.as_str()).collect();
    for g in &cfg.gates {
        let step = g.path.split('.').next().unwrap_or("");
        if !steps.contains(&step) {
            return Err(Error::Gate {
                gate: g.path.clone(),
                why: format!(
                    "the scenario has no step `{step}` (steps: {})",
                    steps.join(", ")
                ),
            });
        }
    }
    // A threshold's figures gate too: B may not be significantly worse on what the scenario checks.
    let mut from_thresholds = Vec::new();
    for t in &plan.thresholds {
        for p in t.threshold.paths().iter().map(|p| p.to_string()) {
            if !p.contains('[') && !from_thresholds.iter().any(|g: &Gate| g.path == p) {
                from_thresholds.push(Gate {
                    path: p,
                    limit: 0.0,
                    from: format!("threshold `{}`", t.threshold.source),
                });
            }
        }
    }
    Ok(from_thresholds)
}

/// Complete rounds before the noise is estimated and the rounds needed are said (`--rounds
/// auto` runs at least these).
pub const PILOT_ROUNDS: usize = 3;

/// A front end's view of an A/B as it goes.
pub trait Progress: Send + Sync {
    /// A run is about to start.
    fn run_started(&self, _round: usize, _side: Which, _of: usize) {}
    /// A run ended.
    fn run_finished(&self, _round: usize, _side: Which, _report: &Report) {}
    /// After the pilot rounds: the rounds that would detect `--detect` at the noise measured
    /// (`None`: more than 100), and how many will run.
    fn planned(&self, _after: usize, _needed: Option<usize>, _will_run: usize) {}
    /// The observer each run reports its steps to.
    fn observer(&self) -> Arc<dyn Observer>;
}

/// Runs the rounds and compares; stops at the first run that could not run (a scenario error,
/// etcd that could not start, an interrupt) and reports what it has.
pub async fn run(
    cfg: &Config,
    threshold_gates: Vec<Gate>,
    cancel: CancellationToken,
    progress: &dyn Progress,
) -> AbReport {
    let order = cfg.order.runs(cfg.rounds);
    let mut gates = cfg.gates.clone();
    for g in threshold_gates {
        if !gates.iter().any(|x| x.path == g.path) {
            gates.push(g);
        }
    }
    let mut runs: Vec<RunEntry> = Vec::new();
    let mut stopped = None;
    for (i, (round, which)) in order.iter().enumerate() {
        if cancel.is_cancelled() {
            stopped = Some(Outcome::Interrupted);
            break;
        }
        let side = match which {
            Which::A => &cfg.a,
            Which::B => &cfg.b,
        };
        let mut c = side.apply(&cfg.base);
        c.run_id = Some(format!(
            "{}-ab{}{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            round + 1,
            which.name()
        ));
        progress.run_started(*round, *which, i);
        let report = crate::run::run(&c, cancel.child_token(), progress.observer()).await;
        progress.run_finished(*round, *which, &report);
        let outcome = report.outcome;
        runs.push(RunEntry {
            round: *round,
            side: *which,
            report,
        });
        if matches!(
            outcome,
            Outcome::ScriptError | Outcome::InfrastructureError | Outcome::Interrupted
        ) {
            stopped = Some(outcome);
            break;
        }
        // A round just completed: after the pilot, say what the noise needs, and with `auto`
        // stop once it is done.
        let done = round + 1;
        let round_complete = order.get(i + 1).is_none_or(|(r, _)| r != round);
        if round_complete && done >= PILOT_ROUNDS {
            let so_far = report::build(cfg, gates.clone(), runs.clone(), None);
            let needed = so_far.rounds_needed;
            if done == PILOT_ROUNDS {
                let will = if cfg.auto_rounds {
                    needed.unwrap_or(cfg.rounds).clamp(PILOT_ROUNDS, cfg.rounds)
                } else {
                    cfg.rounds
                };
                progress.planned(done, needed, will);
            }
            if cfg.auto_rounds && needed.is_some_and(|n| done >= n) {
                break;
            }
        }
    }
    report::build(cfg, gates, runs, stopped)
}

/// The figures of one run that are compared: defaults, `--figure` patterns and gates, typed and
/// with a direction.
fn compared(report: &Report, cfg: &Config, gates: &[Gate]) -> Vec<Figure> {
    let mut out = Vec::new();
    for s in &report.steps {
        for f in crate::report::typed::step_figures(s) {
            if f.better.is_none() {
                continue;
            }
            let own = f
                .path
                .strip_prefix(&s.name)
                .and_then(|r| r.strip_prefix('.'));
            let wanted = own.is_some_and(|o| DEFAULT_FIGURES.contains(&o))
                || cfg.figures.iter().any(|p| matches(p, &f.path))
                || gates.iter().any(|g| g.path == f.path);
            if wanted {
                out.push(f);
            }
        }
    }
    out
}

/// How a figure moves when it gets worse: `1` up (a latency), `-1` down (a rate).
fn worse_sign(b: Better) -> f64 {
    match b {
        Better::Lower => 1.0,
        Better::Higher => -1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abba_interleaves_and_random_is_reproducible_from_its_seed() {
        let abba: Vec<&str> = Order::Abba.runs(3).iter().map(|(_, w)| w.name()).collect();
        assert_eq!(abba, ["A", "B", "B", "A", "A", "B"]);
        let r1 = Order::Random(7).runs(6);
        assert_eq!(r1, Order::Random(7).runs(6));
        for r in 0..6 {
            let sides: Vec<Which> = r1
                .iter()
                .filter(|(x, _)| *x == r)
                .map(|(_, w)| *w)
                .collect();
            assert!(sides.contains(&Which::A) && sides.contains(&Which::B));
        }
    }

    #[test]
    fn sides_and_gates_parse_or_say_why() {
        let s = Side::parse(
            "a",
            &[
                "etcd-bin=/opt/etcd".into(),
                "member.snapshot_count=10000".into(),
                "load=m".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.embedded.etcd_bin, Some(PathBuf::from("/opt/etcd")));
        assert_eq!(s.embedded.settings.snapshot_count, Some(10000));
        assert_eq!(s.params, ["load=m"]);
        assert!(Side::parse("a", &["novalue".into()]).is_err());
        let e = Side::parse("b", &["member.bogus=1".into()]).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert_eq!(Gate::parse("load.latency.p99:+5%").unwrap().limit, 0.05);
        assert_eq!(Gate::parse("cap.sustained_rate:-5%").unwrap().limit, -0.05);
        assert!(Gate::parse("load.latency.p99:5").is_err());
        assert!(Gate::parse("p99").is_err());
        assert!(matches("*.latency.p99", "load.latency.p99"));
        assert!(matches(
            "load.by_op.*.latency.p99",
            "load.by_op.put.latency.p99"
        ));
        assert!(!matches("*.latency.p99", "load.latency.p50"));
    }
}

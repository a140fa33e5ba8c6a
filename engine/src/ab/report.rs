//! The A/B report: every round's report, the verdict per figure and per gate, and what size of
//! change the rounds could have seen; rendered as text (benchstat's layout), JSON and HTML.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stats::{paired_change, rounds_needed, Change};
use super::{compared, worse_sign, Config, Gate, Order, Which};
use crate::measure::figures::Better;
use crate::measure::Unit;
use crate::report::{Outcome, Report};

/// Layout version of the A/B JSON report.
pub const AB_SCHEMA_VERSION: u32 = 1;

/// One run of a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEntry {
    /// Round, from 0.
    pub round: usize,
    /// Which side ran.
    pub side: Which,
    /// Its full report.
    pub report: Report,
}

/// A figure's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The interval includes no change (or the change is below `--min-change`).
    NoChange,
    /// B is significantly worse.
    Regressed,
    /// B is significantly better.
    Improved,
    /// Some round lacks the figure, or a side is zero where the other is not.
    NoData,
    /// No significant change, but the rounds could not have seen a change of `--detect`: the
    /// interval is wider than what was asked (the note says how many rounds would do).
    Inconclusive,
}

impl Verdict {
    /// How the text report says it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::NoChange => "~ no significant change",
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::NoData => "no data",
            Verdict::Inconclusive => "? inconclusive",
        }
    }
}

/// One figure, A vs B.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FigureVerdict {
    /// `step.field`.
    pub path: String,
    /// Its unit.
    pub unit: Option<String>,
    /// `lower` or `higher` is better.
    pub better: String,
    /// A's value per round (`null`: missing).
    pub a: Vec<Option<f64>>,
    /// B's value per round.
    pub b: Vec<Option<f64>>,
    /// A's median.
    pub a_median: Option<f64>,
    /// B's median.
    pub b_median: Option<f64>,
    /// B vs A, relative (0.1: B is 10% higher).
    pub change: Option<f64>,
    /// The interval of the change, relative.
    pub interval: Option<[f64; 2]>,
    /// The smallest change these rounds would detect (80% power), relative (±).
    pub detectable: Option<f64>,
    /// Rounds that would detect a change of `--detect` with the noise these rounds measured
    /// (`null`: unknown noise, or more than 100).
    #[serde(default)]
    pub rounds_needed: Option<usize>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is not the interval's alone (`within one histogram bucket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The upper bound (ms; infinite for `+Inf`) of the histogram bucket a quantile of etcd's
/// bucketed histograms lies in; `None` for other figures (scen's own HDR distributions resolve
/// three significant figures).
#[cfg(test)]
fn bucket_of(f: &crate::measure::figures::Figure) -> Option<f64> {
    bounds_of(f).map(|(_, up)| up)
}

/// The bounds (lower, upper; ms) of the histogram bucket a quantile of etcd's bucketed
/// histograms lies in; `None` for other figures.
fn bounds_of(f: &crate::measure::figures::Figure) -> Option<(f64, f64)> {
    let crate::measure::figures::Basis::Quantile { dist, .. } = &f.basis else {
        return None;
    };
    let dist: crate::measure::latency::Distribution = serde::Deserialize::deserialize(dist).ok()?;
    if dist.hist.is_some() {
        return None;
    }
    let v = f.value?;
    let mut lower = 0.0;
    for (up, _) in dist.buckets? {
        let up = up.unwrap_or(f64::INFINITY);
        if v <= up {
            return Some((lower, up));
        }
        lower = up;
    }
    None
}

/// The span of buckets a side's rounds lie in (lowest bound, highest bound), when every round's
/// figure is a bucketed quantile.
fn span(bounds: &[Option<(f64, f64)>]) -> Option<(f64, f64)> {
    bounds
        .iter()
        .try_fold((f64::INFINITY, 0.0f64), |(lo, hi), b| {
            b.map(|(l, u)| (lo.min(l), hi.max(u)))
        })
}

/// The bucket every value lies in, when they all lie in one (and each is a bucketed quantile).
fn one_bucket(buckets: &[Option<f64>]) -> Option<f64> {
    let first = buckets.first().copied().flatten()?;
    buckets.iter().all(|b| *b == Some(first)).then_some(first)
}

/// A gate's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateVerdict {
    /// The figure.
    pub path: String,
    /// The change allowed (relative; signed as the figure gets worse).
    pub limit: f64,
    /// `--gate` or the threshold it came from.
    pub from: String,
    /// Whether B is significantly worse than A by more than the limit (or the figure had no
    /// data for a `--gate`).
    pub failed: bool,
    /// Why.
    pub message: String,
}

/// The whole A/B.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbReport {
    /// [`AB_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `scen <version>`.
    pub scen_version: String,
    /// The scenario file.
    pub scenario: String,
    /// A's items as given.
    pub a: Vec<String>,
    /// B's items.
    pub b: Vec<String>,
    /// Rounds asked for.
    pub rounds: usize,
    /// Rounds completed (both runs).
    pub completed_rounds: usize,
    /// `abba` or `random`.
    pub order: String,
    /// The seed of a random order.
    pub seed: Option<u64>,
    /// The order the runs ran in (`A`, `B`, `B`, `A`...).
    pub sequence: Vec<Which>,
    /// Family-wise confidence (0.95): intervals are simultaneous over the figures compared.
    pub confidence: f64,
    /// A significant change smaller than this is reported as no change.
    pub min_change: f64,
    /// Per figure.
    pub figures: Vec<FigureVerdict>,
    /// Per gate.
    pub gates: Vec<GateVerdict>,
    /// The median of the figures' detectable changes.
    pub detectable: Option<f64>,
    /// The change the rounds were asked to be able to see (`--detect`), relative.
    #[serde(default)]
    pub detect: f64,
    /// Rounds that would detect `detect` on every deciding figure (the gates', else all with
    /// data) at the noise measured (`null`: more than 100, or no figure with data).
    #[serde(default)]
    pub rounds_needed: Option<usize>,
    /// Whether `--rounds auto` stopped the A/B once `rounds_needed` were done.
    #[serde(default)]
    pub auto_rounds: bool,
    /// How the A/B ended.
    pub outcome: Outcome,
    /// The process exit code.
    pub exit_code: i32,
    /// Every run's report, in the order they ran.
    pub runs: Vec<RunEntry>,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Compares the runs and decides.
pub fn build(
    cfg: &Config,
    gates: Vec<Gate>,
    runs: Vec<RunEntry>,
    stopped: Option<Outcome>,
) -> AbReport {
    // Rounds with both runs.
    let complete: Vec<usize> = (0..cfg.rounds)
        .filter(|r| {
            [Which::A, Which::B]
                .iter()
                .all(|w| runs.iter().any(|e| e.round == *r && e.side == *w))
        })
        .collect();
    let get = |r: usize, w: Which| runs.iter().find(|e| e.round == r && e.side == w);
    // The figures: those of the first complete round's A run, typed.
    let chosen = complete
        .first()
        .and_then(|r| get(*r, Which::A))
        .map(|e| compared(&e.report, cfg, &gates))
        .unwrap_or_default();
    let k = chosen.len().max(1);
    let mut figures = Vec::new();
    for f in &chosen {
        let figure = |w: Which, r: usize| {
            let e = get(r, w)?;
            let step = f.path.split('.').next()?;
            let s = e.report.steps.iter().find(|s| s.name == step)?;
            crate::report::typed::step_figures(s)
                .into_iter()
                .find(|g| g.path == f.path)
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut a_bounds, mut b_bounds) = (Vec::new(), Vec::new());
        for r in &complete {
            for (w, out, bounds) in [
                (Which::A, &mut a, &mut a_bounds),
                (Which::B, &mut b, &mut b_bounds),
            ] {
                let g = figure(w, *r);
                bounds.push(g.as_ref().and_then(bounds_of));
                out.push(g.and_then(|g| g.value));
            }
        }
        // A bucketed quantile is known only to its bucket: A and B differ at the histogram's
        // resolution only when the buckets their rounds fall in do not overlap. A significant
        // interval between overlapping buckets is interpolation, not a change (an A/A once
        // called backend commit p99 "improved", A's rounds in 1–4 ms, B's in 0.5–2 ms).
        let overlap = match (span(&a_bounds), span(&b_bounds)) {
            (Some(x), Some(y)) if x.0 < y.1 && y.0 < x.1 => Some((x, y)),
            _ => None,
        };
        // Every round of both sides in one bucket of etcd's histogram: the values differ only by
        // interpolation inside it, which says nothing of a change.
        let uppers: Vec<Option<f64>> = a_bounds
            .iter()
            .chain(&b_bounds)
            .map(|b| b.map(|(_, up)| up))
            .collect();
        let one_bucket = one_bucket(&uppers);
        let av: Vec<f64> = a.iter().flatten().copied().collect();
        let bv: Vec<f64> = b.iter().flatten().copied().collect();
        let better = f.better.unwrap_or(Better::Lower);
        let change: Option<Change> = if av.len() == a.len() && bv.len() == b.len() {
            if av == bv {
                Some(Change {
                    estimate: 0.0,
                    low: 0.0,
                    high: 0.0,
                    detectable: 0.0,
                    sd: 0.0,
                })
            } else {
                paired_change(&av, &bv, 1.0 - confidence(cfg), k)
            }
        } else {
            None
        };
        let needed = change.and_then(|c| {
            if c.sd == 0.0 {
                Some(2)
            } else {
                rounds_needed(c.sd, cfg.detect, 1.0 - confidence(cfg), k)
            }
        });
        let verdict = match change {
            None => Verdict::NoData,
            Some(_) if one_bucket.is_some() => Verdict::NoChange,
            Some(c) if c.excludes_zero() && overlap.is_some() => {
                if c.detectable > cfg.detect {
                    Verdict::Inconclusive
                } else {
                    Verdict::NoChange
                }
            }
            Some(c) if c.excludes_zero() && c.estimate.abs() >= cfg.min_change => {
                if c.estimate * worse_sign(better) > 0.0 {
                    Verdict::Regressed
                } else {
                    Verdict::Improved
                }
            }
            Some(c) if c.detectable > cfg.detect => Verdict::Inconclusive,
            Some(_) => Verdict::NoChange,
        };
        figures.push(FigureVerdict {
            path: f.path.clone(),
            unit: f.unit.map(|u| u.symbol().to_string()),
            better: match better {
                Better::Lower => "lower".into(),
                Better::Higher => "higher".into(),
            },
            a_median: median(&av),
            b_median: median(&bv),
            a,
            b,
            change: change.map(|c| c.estimate),
            interval: change.map(|c| [c.low, c.high]),
            detectable: change.map(|c| c.detectable),
            rounds_needed: needed,
            verdict,
            note: match (one_bucket.filter(|_| change.is_some()), verdict) {
                (Some(up), _) => Some(format!(
                    "every round of A and B in one bucket of etcd's histogram (up to {}): finer changes do not show",
                    Unit::Ms.format(Some(up))
                )),
                (None, _) if change.is_some_and(|c| c.excludes_zero()) && overlap.is_some() => {
                    let ((al, ah), (bl, bh)) = overlap.unwrap_or_default();
                    let ms = |v: f64| Unit::Ms.format(Some(v));
                    Some(format!(
                        "within the resolution of etcd's histogram: A's rounds in its buckets {}..{}, B's in {}..{} overlap, so the interval is interpolation inside them",
                        ms(al), ms(ah), ms(bl), ms(bh)
                    ))
                }
                (None, Verdict::Inconclusive)
                    if change.is_some_and(|c| !c.detectable.is_finite()) =>
                {
                    Some("the same ratio B/A every round (a figure quantized, as CPU is in clock ticks): its noise cannot be estimated, so no change can be told".into())
                }
                (None, Verdict::Inconclusive) => Some(match needed {
                    Some(n) => format!(
                        "{} rounds could detect only ±{:.1}%; about {n} rounds would detect ±{:.0}% (--detect) at this noise",
                        complete.len(),
                        change.map_or(f64::NAN, |c| c.detectable) * 100.0,
                        cfg.detect * 100.0
                    ),
                    None => format!(
                        "{} rounds could detect only ±{:.1}%, and this noise would need more than 100 rounds for ±{:.0}% (--detect)",
                        complete.len(),
                        change.map_or(f64::NAN, |c| c.detectable) * 100.0,
                        cfg.detect * 100.0
                    ),
                }),
                _ => None,
            },
        });
    }
    let mut gate_verdicts = Vec::new();
    for g in gates {
        let f = figures.iter().find(|f| f.path == g.path);
        let explicit = g.from == "--gate";
        let (failed, message) = match f {
            None if explicit => (
                true,
                "no such figure with a direction in this scenario's records: no data is never a pass".into(),
            ),
            None => continue,
            Some(f) => match (f.verdict, f.interval) {
                (Verdict::NoData, _) if explicit => {
                    (true, "no data in some round: no data is never a pass".into())
                }
                (Verdict::NoData, _) => continue,
                (_, Some([lo, hi])) => {
                    let sign = if f.better == "lower" { 1.0 } else { -1.0 };
                    // Worse beyond the limit with confidence: the whole interval past it.
                    let past = if sign > 0.0 { lo > g.limit } else { hi < g.limit };
                    let failed = past && f.verdict == Verdict::Regressed;
                    // Not failed, but the interval reaches past the allowed change: a regression
                    // that large cannot be ruled out by these rounds.
                    let open = if sign > 0.0 { hi > g.limit } else { lo < g.limit };
                    let text = format!(
                        "{} (interval {} .. {}), allowed {}{}",
                        pct(f.change),
                        pct(Some(lo)),
                        pct(Some(hi)),
                        pct(Some(g.limit)),
                        // (A gate with no change allowed, from a threshold, is always open
                        // to some regression: the remark is for an allowed change.)
                        if !failed && open && g.limit != 0.0 {
                            format!(
                                "; inconclusive: these rounds cannot rule out a regression past it{}",
                                f.rounds_needed
                                    .map(|n| format!(" (about {n} rounds would see ±{:.0}%)", cfg.detect * 100.0))
                                    .unwrap_or_default()
                            )
                        } else {
                            String::new()
                        }
                    );
                    (failed, text)
                }
                _ => (false, String::new()),
            },
        };
        gate_verdicts.push(GateVerdict {
            path: g.path,
            limit: g.limit,
            from: g.from,
            failed,
            message,
        });
    }
    let needed = rounds_for(&figures, &gate_verdicts);
    let mut detectable: Vec<f64> = figures.iter().filter_map(|f| f.detectable).collect();
    detectable.retain(|d| d.is_finite() && *d > 0.0);
    let outcome = match stopped {
        Some(o) => o,
        None if complete.len() < 2 => Outcome::ScriptError,
        None if gate_verdicts.iter().any(|g| g.failed) => Outcome::ThresholdsFailed,
        None => Outcome::Passed,
    };
    let (order, seed) = match cfg.order {
        Order::Abba => ("abba".to_string(), None),
        Order::Random(s) => ("random".to_string(), Some(s)),
    };
    AbReport {
        schema_version: AB_SCHEMA_VERSION,
        scen_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: cfg.base.scenario.display().to_string(),
        a: cfg.a.items.clone(),
        b: cfg.b.items.clone(),
        rounds: cfg.rounds,
        completed_rounds: complete.len(),
        order,
        seed,
        sequence: runs.iter().map(|e| e.side).collect(),
        confidence: confidence(cfg),
        min_change: cfg.min_change,
        figures,
        gates: gate_verdicts,
        detectable: median(&detectable),
        detect: cfg.detect,
        rounds_needed: needed,
        auto_rounds: cfg.auto_rounds,
        outcome,
        exit_code: outcome.exit_code(),
        runs,
    }
}

/// Rounds that would let every deciding figure detect `--detect`: the gates' figures, else every
/// figure with data and a noise estimate; `None` when one of them would need more than 100 or
/// none has data.
pub fn rounds_for(figures: &[FigureVerdict], gates: &[GateVerdict]) -> Option<usize> {
    let deciding: Vec<&FigureVerdict> = figures
        .iter()
        .filter(|f| f.verdict != Verdict::NoData)
        // A quantized figure (the same ratio every round) has no noise estimate to plan with.
        .filter(|f| f.detectable.is_some_and(f64::is_finite))
        .filter(|f| gates.is_empty() || gates.iter().any(|g| g.path == f.path))
        .collect();
    if deciding.is_empty() {
        return None;
    }
    deciding
        .iter()
        .map(|f| f.rounds_needed)
        .try_fold(2, |acc, n| Some(acc.max(n?)))
}

fn confidence(cfg: &Config) -> f64 {
    1.0 - cfg.alpha
}

/// A relative change as `+12.3%`.
pub fn pct(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(x) if !x.is_finite() || x > 9.99 => ">+999%".into(),
        Some(x) => format!("{:+.1}%", x * 100.0),
    }
}

/// A figure's value in its unit.
fn show(unit: &Option<String>, v: Option<f64>) -> String {
    crate::measure::show(unit.as_deref().and_then(Unit::from_symbol), v)
}

impl AbReport {
    /// The text report: benchstat's layout, then gates and the power statement.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let side = |items: &[String]| {
            if items.is_empty() {
                "(the scenario as it is)".to_string()
            } else {
                items.join(" ")
            }
        };
        let _ = writeln!(out, "A: {}", side(&self.a));
        let _ = writeln!(out, "B: {}", side(&self.b));
        let _ = writeln!(
            out,
            "{} of {} rounds ({} order{}); intervals: {:.0}% simultaneous over {} figures (paired t across rounds, log scale)\n",
            self.completed_rounds,
            self.rounds,
            self.order,
            self.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
            self.confidence * 100.0,
            self.figures.len()
        );
        let w = self
            .figures
            .iter()
            .map(|f| f.path.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "{:w$}  {:>11}  {:>11}  {:>8}  {:>19}  {:>10}  verdict",
            "figure", "A (median)", "B (median)", "change", "interval", "detectable"
        );
        for f in &self.figures {
            let interval = f
                .interval
                .map(|[lo, hi]| format!("[{}, {}]", pct(Some(lo)), pct(Some(hi))))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                out,
                "{:w$}  {:>11}  {:>11}  {:>8}  {:>19}  {:>10}  {}",
                f.path,
                show(&f.unit, f.a_median),
                show(&f.unit, f.b_median),
                pct(f.change),
                interval,
                f.detectable
                    .map(|d| if d > 9.99 {
                        ">±999%".into()
                    } else {
                        format!("±{:.1}%", d * 100.0)
                    })
                    .unwrap_or_else(|| "—".into()),
                f.verdict.label()
            );
            if let Some(n) = &f.note {
                let _ = writeln!(out, "{:w$}  ({n})", "");
            }
        }
        if !self.gates.is_empty() {
            let _ = writeln!(out, "\ngates:");
            for g in &self.gates {
                let _ = writeln!(
                    out,
                    "  {} {} ({}): {}",
                    if g.failed { "✗" } else { "✓" },
                    g.path,
                    g.from,
                    g.message
                );
            }
        }
        let _ = match self.rounds_needed {
            Some(n) => writeln!(
                out,
                "\nto detect ±{:.0}% (--detect) on the deciding figures{}: about {n} rounds at this noise{}",
                self.detect * 100.0,
                if self.gates.is_empty() { "" } else { " (the gates')" },
                if n <= self.completed_rounds {
                    format!(" — {} were run", self.completed_rounds)
                } else {
                    format!(" — only {} were run: more rounds (--rounds {n}, or --rounds auto) would decide the inconclusive ones", self.completed_rounds)
                }
            ),
            None if !self.figures.is_empty() => writeln!(
                out,
                "\nto detect ±{:.0}% (--detect) on the deciding figures, this noise would need more than 100 rounds: quiet the machine or detect a larger change",
                self.detect * 100.0
            ),
            None => Ok(()),
        };
        if let Some(d) = self.detectable {
            let _ = writeln!(
                out,
                "\npower: with {} rounds and the noise measured here, a change smaller than about ±{:.1}% (median over figures; per figure in `detectable`) would not show",
                self.completed_rounds,
                d * 100.0
            );
        }
        out
    }

    /// A self-contained HTML page: per figure, A's and B's values across rounds on one axis.
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut rows = String::new();
        for f in &self.figures {
            let vals: Vec<f64> = f.a.iter().chain(&f.b).flatten().copied().collect();
            let (lo, hi) = vals
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(*v), h.max(*v))
                });
            let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
            let (lo, hi) = (lo - span * 0.1, hi + span * 0.1);
            let x = |v: f64| 60.0 + (v - lo) / (hi - lo) * 420.0;
            let mut svg = format!(
                "<svg viewBox=\"0 0 500 78\" width=\"500\" height=\"78\" role=\"img\"><title>{} per round, A and B</title>\
                 <text x=\"4\" y=\"24\">A</text><text x=\"4\" y=\"52\">B</text>\
                 <line x1=\"60\" y1=\"66\" x2=\"480\" y2=\"66\" stroke=\"#999\"/>\
                 <text x=\"60\" y=\"77\" font-size=\"9\">{}</text><text x=\"480\" y=\"77\" font-size=\"9\" text-anchor=\"end\">{}</text>",
                esc(&f.path),
                esc(&show(&f.unit, Some(lo))),
                esc(&show(&f.unit, Some(hi)))
            );
            for (side, values, y, color) in
                [("A", &f.a, 20.0, "#1f77b4"), ("B", &f.b, 48.0, "#ff7f0e")]
            {
                for (r, v) in values.iter().enumerate() {
                    if let Some(v) = v {
                        let _ = write!(
                            svg,
                            "<circle cx=\"{:.1}\" cy=\"{y}\" r=\"4\" fill=\"{color}\" fill-opacity=\"0.7\"><title>{side} round {}: {}</title></circle>",
                            x(*v),
                            r + 1,
                            esc(&show(&f.unit, Some(*v)))
                        );
                    }
                }
                let m = if side == "A" { f.a_median } else { f.b_median };
                if let Some(m) = m {
                    let _ = write!(
                        svg,
                        "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                        x(m),
                        y - 9.0,
                        y + 9.0
                    );
                }
            }
            svg.push_str("</svg>");
            let interval = f
                .interval
                .map(|[l, h]| format!("[{}, {}]", pct(Some(l)), pct(Some(h))))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                rows,
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                serde_json::to_value(f.verdict).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                esc(&f.path),
                esc(&show(&f.unit, f.a_median)),
                esc(&show(&f.unit, f.b_median)),
                esc(&pct(f.change)),
                esc(&interval),
                esc(f.verdict.label()),
                svg
            );
        }
        let gates: String = self
            .gates
            .iter()
            .map(|g| {
                format!(
                    "<li>{} <code>{}</code> ({}): {}</li>",
                    if g.failed { "✗" } else { "✓" },
                    esc(&g.path),
                    esc(&g.from),
                    esc(&g.message)
                )
            })
            .collect();
        let power = self
            .detectable
            .map(|d| {
                format!(
                    "<p>With {} rounds and the noise measured here, a change smaller than about ±{:.1}% would not show.</p>",
                    self.completed_rounds,
                    d * 100.0
                )
            })
            .unwrap_or_default();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>scen ab: {scenario}</title><style>body{{font-family:system-ui,sans-serif;margin:1em;max-width:72em}}\
table{{border-collapse:collapse}}td,th{{padding:.2em .5em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}}\
tr.regressed td:first-child{{border-left:4px solid #d62728}}tr.improved td:first-child{{border-left:4px solid #2ca02c}}\
svg{{max-width:100%;height:auto}}@media print{{body{{margin:0}}}}</style></head><body>\
<h1>A/B: {scenario}</h1><p><b>A</b> <code>{a}</code><br><b>B</b> <code>{b}</code></p>\
<p>{done} of {rounds} rounds, {order} order{seed}; {conf:.0}% intervals, simultaneous over {k} figures; outcome <b>{outcome}</b> (exit {exit}).</p>\
{power}<ul>{gates}</ul><table><thead><tr><th>figure</th><th>A (median)</th><th>B (median)</th><th>change</th><th>interval</th><th>verdict</th><th>A and B per round (blue A, orange B; bars: medians)</th></tr></thead><tbody>\n{rows}</tbody></table></body></html>\n",
            scenario = esc(&self.scenario),
            a = esc(&self.a.join(" ")),
            b = esc(&self.b.join(" ")),
            done = self.completed_rounds,
            rounds = self.rounds,
            order = self.order,
            seed = self.seed.map(|s| format!(", seed {s}")).unwrap_or_default(),
            conf = self.confidence * 100.0,
            k = self.figures.len(),
            outcome = serde_json::to_value(self.outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            exit = self.exit_code,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::figures::{Basis, Figure};
    use serde_json::json;

    fn quantile(value: f64, dist: serde_json::Value) -> Figure {
        Figure {
            path: "load.server.wal_fsync.p99".into(),
            value: Some(value),
            unit: Some(Unit::Ms),
            better: Some(Better::Lower),
            basis: Basis::Quantile {
                q: 0.99,
                n: 20,
                dist,
            },
            spread: None,
        }
    }

    #[test]
    fn a_bucketed_quantile_knows_its_bucket_and_one_bucket_for_all_rounds_is_no_resolution() {
        let etcd = json!({ "count": 20, "buckets": [[1.0, 10.0], [2.0, 20.0], [null, 20.0]] });
        assert_eq!(bucket_of(&quantile(1.5, etcd.clone())), Some(2.0));
        assert_eq!(bucket_of(&quantile(1.0, etcd.clone())), Some(1.0));
        assert_eq!(bucket_of(&quantile(7.0, etcd)), Some(f64::INFINITY));
        // scen's own HDR distributions and other figures have no bucket.
        let hdr = json!({ "count": 20, "hist": "HISTFAAAA", "buckets": null });
        assert_eq!(bucket_of(&quantile(1.5, hdr)), None);
        let mut rate = quantile(1.5, json!({}));
        rate.basis = Basis::RateOf { n: 100 };
        assert_eq!(bucket_of(&rate), None);

        assert_eq!(one_bucket(&[Some(2.0), Some(2.0), Some(2.0)]), Some(2.0));
        assert_eq!(one_bucket(&[Some(2.0), Some(4.0)]), None);
        assert_eq!(one_bucket(&[Some(2.0), None]), None);
        assert_eq!(one_bucket(&[]), None);
    }

    #[test]
    fn a_sides_buckets_span_its_rounds_and_overlapping_spans_are_no_resolution() {
        let etcd = json!({ "count": 20, "buckets": [[0.5, 1.0], [1.0, 5.0], [2.0, 15.0], [4.0, 20.0], [null, 20.0]] });
        assert_eq!(bounds_of(&quantile(1.5, etcd.clone())), Some((1.0, 2.0)));
        assert_eq!(bounds_of(&quantile(0.3, etcd.clone())), Some((0.0, 0.5)));
        assert_eq!(
            bounds_of(&quantile(9.0, etcd.clone())),
            Some((4.0, f64::INFINITY))
        );
        // The A/A seen in CI: A's rounds at 1.97 and 3.78 ms, B's at 0.99 and 1.89 ms.
        let a = span(&[
            bounds_of(&quantile(1.97, etcd.clone())),
            bounds_of(&quantile(3.78, etcd.clone())),
        ]);
        let b = span(&[
            bounds_of(&quantile(0.99, etcd.clone())),
            bounds_of(&quantile(1.89, etcd.clone())),
        ]);
        assert_eq!((a, b), (Some((1.0, 4.0)), Some((0.5, 2.0))));
        // A side with a round that is no bucketed quantile has no span.
        assert_eq!(span(&[Some((1.0, 2.0)), None]), None);
    }
}

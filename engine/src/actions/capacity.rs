//! `etcd::capacity`: the highest open-loop rate a cluster holds within an SLO. Trials at fixed
//! rates (an `etcd::stress` load each, latency from the scheduled time) ramp geometrically to
//! bracket the knee, then bisect the bracket until it is within `precision` or the `budget` is
//! spent. Between trials the store is compacted (on a cluster scen may maintain) and etcd settles,
//! so trials are comparable.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::metrics::{server_step, Scraper};
use super::stress::{StressOptions, StressRecord};
use super::{ms, CheckOptions, Error, Result};
use crate::target::Target;
use crate::threshold::{FieldPath, Threshold};

/// How the search runs (the load itself is `etcd::stress`'s options, without a rate or length).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchOptions {
    /// The latency bound, in the threshold language over one trial: `p99 < 25ms` (default), or
    /// `p99 < 25ms && p50 < 5ms`. Fields: `p50`, `p90`, `p99`, `p999`, `max`, `mean`.
    #[serde(default = "default_slo")]
    pub slo: String,
    /// The lowest rate to try, requests/s.
    #[serde(deserialize_with = "crate::actions::de_f64")]
    pub from: f64,
    /// The highest rate to try, requests/s.
    #[serde(deserialize_with = "crate::actions::de_f64")]
    pub to: f64,
    /// Length of each trial (default `"10s"`).
    pub step_duration: Option<String>,
    /// Time for the whole search, trials and settling (default `"2m"`).
    pub budget: Option<String>,
    /// Stop when the bracket `[sustained, failed]` is this narrow, relative (default `"5%"`).
    pub precision: Option<String>,
    /// A trial whose error rate is above this fails (default `"0.1%"`).
    pub max_error_rate: Option<String>,
    /// A trial whose achieved rate falls short of its target by more than this fails (default
    /// `"5%"`).
    pub max_shortfall: Option<String>,
    /// Pause after each trial's compaction, for etcd to settle (default `"1s"`).
    pub settle: Option<String>,
    /// Also defragment after each trial's compaction, so every trial starts on a compact store
    /// (default false; on clusters scen may maintain).
    #[serde(default)]
    pub defrag: bool,
    /// Keys written before the first trial, so the search runs on a store of a stated size (the
    /// capacity of an empty store is not that of a full one). A step before the search that
    /// fills the store does the same; either way the record's `store` says what it held.
    pub prefill: Option<Prefill>,
}

/// `prefill`: keys × value size written before the first trial (not counted in the budget).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefill {
    /// Keys to write.
    pub keys: u64,
    /// Bytes per value (`1024` or `"1KiB"`; default 1 KiB).
    pub value_size: Option<super::SizeValue>,
    /// Their prefix, relative to the run prefix (default `"prefill/"`).
    pub key_prefix: Option<String>,
}

impl Prefill {
    /// As `etcd::put_many` options.
    fn put_many(&self) -> super::etcd::PutManyOptions {
        super::etcd::PutManyOptions {
            count: self.keys,
            value_size: self
                .value_size
                .clone()
                .unwrap_or(super::SizeValue::Bytes(1024)),
            key_prefix: self.key_prefix.clone().unwrap_or_else(|| "prefill/".into()),
            clients: 64,
            expect_errors: false,
        }
    }
}

/// What the store held when the first trial began.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StoreRecord {
    /// Keys under the run prefix (`null`: could not be counted).
    pub keys: Option<u64>,
    /// Keys `prefill` wrote (0 without it).
    pub prefilled_keys: u64,
    /// Bytes of values `prefill` wrote.
    #[schemars(with = "crate::measure::Bytes")]
    pub prefilled_bytes: u64,
    /// Wall time of the prefill, ms (not part of the budget).
    #[schemars(with = "crate::measure::Ms")]
    pub prefill_ms: f64,
    /// Backend size, largest member (`null`: no status).
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub db_size: Option<f64>,
}

fn default_slo() -> String {
    "p99 < 25ms".into()
}

/// `etcd::capacity`'s options: the search, and the load of every trial.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// How the search runs.
    pub search: SearchOptions,
    /// The load of each trial (its `rate` and `duration` are the search's).
    pub load: StressOptions,
}

/// The option names that belong to the search; the rest describe the load.
pub const SEARCH_KEYS: &[&str] = &[
    "slo",
    "from",
    "to",
    "step_duration",
    "budget",
    "precision",
    "max_error_rate",
    "max_shortfall",
    "settle",
    "defrag",
    "prefill",
];

/// The fields an SLO may read besides any quantile (`p95`, `p(99.9)`), all durations in ms.
const SLO_FIELDS: &[&str] = &["p50", "p90", "p99", "p999", "max", "mean"];

/// The search's settings, parsed.
struct Plan {
    slo: Threshold,
    step: Duration,
    budget: Duration,
    precision: f64,
    max_error_rate: f64,
    max_shortfall: f64,
    settle: Duration,
    defrag: bool,
}

fn ratio(text: &Option<String>, default: &str, what: &str) -> Result<f64> {
    let t = text.as_deref().unwrap_or(default);
    let q = crate::units::parse_quantity(t).map_err(|e| Error::Options(format!("{what}: {e}")))?;
    if !matches!(
        q.dimension,
        crate::units::Dimension::Ratio | crate::units::Dimension::Number
    ) || !(0.0..1.0).contains(&q.value)
    {
        return Err(Error::Options(format!(
            "{what}: `{t}` is not a percentage below 100% (write it like 5%)"
        )));
    }
    Ok(q.value)
}

/// The SLO's limit when it is one upper bound on the p99 (`p99 < 25ms`), in ms: what a chart
/// draws as the SLO's line.
pub fn p99_limit_ms(slo: &str) -> Option<f64> {
    let t = Threshold::parse(&in_trial(slo), false).ok()?;
    let (field, limit) = t.upper_bound()?;
    (field.to_string() == "trial.p99" && limit.dimension == crate::units::Dimension::Duration)
        .then_some(limit.value)
}

/// The SLO as a threshold over one trial: each bare field name (`p99`) becomes `trial.p99`.
fn in_trial(slo: &str) -> String {
    let mut out = String::with_capacity(slo.len() + 16);
    let chars: Vec<char> = slo.chars().collect();
    let mut i = 0;
    let mut prev = ' ';
    let mut quote = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            quote = (c != q).then_some(q);
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        } else if (c.is_ascii_alphabetic() || c == '_')
            && !prev.is_ascii_alphanumeric()
            && prev != '.'
            && prev != '_'
        {
            let word: String = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            let next = chars[i + word.chars().count()..]
                .iter()
                .find(|c| !c.is_whitespace());
            // A number's unit (`25ms`) follows a digit; a function is followed by `(`.
            let unit = prev.is_ascii_digit();
            let function = next == Some(&'(') && word != "p";
            if !unit && !function && word != "baseline" && word != "true" && word != "false" {
                out.push_str("trial.");
            }
            out.push_str(&word);
            prev = word.chars().last().unwrap_or(c);
            i += word.chars().count();
            continue;
        }
        out.push(c);
        if !c.is_whitespace() || quote.is_some() {
            prev = c;
        } else {
            prev = ' ';
        }
        i += 1;
    }
    out
}

fn plan(o: &CapacityOptions) -> Result<Plan> {
    let s = &o.search;
    if !(s.from > 0.0 && s.from < s.to) {
        return Err(Error::Options(format!(
            "from ({}) must be above 0 and below to ({})",
            s.from, s.to
        )));
    }
    if o.load.rate.is_some()
        || o.load.duration.is_some()
        || o.load.count.is_some()
        || o.load.stages.is_some()
        || o.load.start_rate.is_some()
    {
        return Err(Error::Options(
            "capacity chooses each trial's rate and length: leave out rate, duration, count and stages (give from, to and step_duration)".into(),
        ));
    }
    let duration =
        |t: &Option<String>, d: &str, w: &str| crate::actions::duration_option(t.as_deref(), d, w);
    let step = duration(&s.step_duration, "10s", "step_duration")?;
    let budget = duration(&s.budget, "2m", "budget")?;
    if step < Duration::from_secs(1) || budget < step {
        return Err(Error::Options(format!(
            "step_duration must be 1s or more and budget at least one step ({step:?} and {budget:?} given)"
        )));
    }
    let mut slo = Threshold::parse(&in_trial(&s.slo), false).map_err(|e| {
        Error::Options(format!(
            "slo `{}`: {e} (write it like \"p99 < 25ms\")",
            s.slo
        ))
    })?;
    for p in slo.paths() {
        let name = p.to_string();
        let name = name.trim_start_matches("trial.");
        let quantile =
            name.starts_with("p(") || crate::measure::latency::quantile_key(name).is_some();
        if !SLO_FIELDS.contains(&name) && !quantile {
            return Err(Error::Options(format!(
                "slo `{}` reads `{name}`: a trial's latency fields are {}",
                s.slo,
                SLO_FIELDS.join(", ")
            )));
        }
    }
    slo.check_units(&|_: &FieldPath| Some(crate::measure::Unit::Ms))
        .map_err(|e| Error::Options(format!("slo `{}`: {e}", s.slo)))?;
    let precision = ratio(&s.precision, "5%", "precision")?;
    if precision < 0.001 {
        return Err(Error::Options(
            "precision must be at least 0.1%: a narrower bracket is below the noise of any trial"
                .into(),
        ));
    }
    Ok(Plan {
        slo,
        step,
        budget,
        precision,
        max_error_rate: ratio(&s.max_error_rate, "0.1%", "max_error_rate")?,
        max_shortfall: ratio(&s.max_shortfall, "5%", "max_shortfall")?,
        settle: duration(&s.settle, "1s", "settle")?,
        defrag: s.defrag,
    })
}

impl CheckOptions for CapacityOptions {
    fn check(&self) -> Result<()> {
        plan(self)?;
        if let Some(p) = &self.search.prefill {
            if p.keys == 0 {
                return Err(Error::Options(
                    "prefill.keys must be at least 1 (leave prefill out for an empty store)".into(),
                ));
            }
            p.put_many().check()?;
        }
        trial_load(&self.load, self.search.to, Duration::from_secs(1)).check()
    }
}

/// One trial of the search.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Trial {
    /// A repeat of an earlier trial's rate, run to confirm the answer before trusting it.
    pub repeat: bool,
    /// The rate asked for, requests/s.
    #[schemars(with = "crate::measure::PerSecond")]
    pub rate: f64,
    /// The rate achieved: successful requests completed within the trial's length, per second of
    /// it (not the send rate).
    #[schemars(with = "crate::measure::PerSecond")]
    pub achieved: f64,
    /// Whether the trial held the SLO and the error and shortfall bounds.
    pub passed: bool,
    /// Why it failed: `latency`, `errors`, `client` (scen could not send the rate),
    /// `shortfall` (etcd did not serve it), `no data`.
    pub failed_on: Option<String>,
    /// Median latency from the scheduled time (ms).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p50: Option<f64>,
    /// 99th percentile (ms).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p99: Option<f64>,
    /// Slowest request (ms).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub max: Option<f64>,
    /// Failed requests.
    pub errors: u64,
    /// Failed share of requests.
    #[schemars(with = "crate::measure::Ratio")]
    pub error_rate: f64,
    /// How far the achieved rate fell short of the target.
    #[schemars(with = "Option<crate::measure::Ratio>")]
    pub shortfall: Option<f64>,
    /// etcd's WAL fsync p99 during the trial (ms).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub wal_fsync_p99: Option<f64>,
    /// etcd's backend commit p99 during the trial (ms).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub backend_commit_p99: Option<f64>,
    /// The embedded etcd's CPU per successful request (ms; `null` for clusters scen did not start).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub server_cpu_per_request: Option<f64>,
    /// Share of the machine's CPUs the embedded etcd used (`null` for other clusters).
    #[schemars(with = "Option<crate::measure::Ratio>")]
    pub server_cpu_busy: Option<f64>,
    /// Share of one CPU scen's load thread used: near 100%, scen itself was the limit.
    #[schemars(with = "crate::measure::Ratio")]
    pub client_cpu_busy: f64,
}

/// The record of `etcd::capacity`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CapacityRecord {
    /// The SLO each trial was held to.
    pub slo: String,
    /// The highest rate that passed (`null`: no rate passed).
    #[schemars(
        with = "Option<crate::measure::PerSecond>",
        extend("x-better" = "higher", "x-upper" = "failed_rate")
    )]
    pub sustained_rate: Option<f64>,
    /// The lowest rate that failed (`null`: the highest rate asked for passed).
    #[schemars(with = "Option<crate::measure::PerSecond>")]
    pub failed_rate: Option<f64>,
    /// How narrow the final bracket is: (failed − sustained) / sustained.
    #[schemars(with = "Option<crate::measure::Ratio>")]
    pub bracket: Option<f64>,
    /// Whether the bracket reached `precision` within the budget.
    pub converged: bool,
    /// Whether a second trial at the sustained rate held too (`null`: the budget left no room
    /// for it; also when the answer is a failed end that held when rechecked, which was not run
    /// a third time). When it did not, the search went on below it (up to 3 times).
    pub confirmed: Option<bool>,
    /// Answers a repeat refuted; after each, the search continued below the refuted rate.
    pub refuted: u64,
    /// Whether a second trial at the failed rate failed too (`null`: not run). When the second
    /// one held, the search went on above it: one unlucky trial does not cap the answer.
    pub failed_confirmed: Option<bool>,
    /// What the store held when the first trial began (after `prefill`).
    pub store: StoreRecord,
    /// What limited the cluster at `failed_rate`: `latency`, `errors`, `shortfall`, `server CPU
    /// saturated` or `client` (scen could not send faster: its own CPU is the limit, not etcd).
    pub limited_by: Option<String>,
    /// The trials, in the order they ran.
    pub trials: Vec<Trial>,
    /// Backend size before the search (largest member).
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub db_size_before: Option<f64>,
    /// Backend size after it.
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub db_size_after: Option<f64>,
    /// Whether the store was compacted between trials (on clusters scen may maintain).
    pub compacted: bool,
    /// Whether it was also defragmented between trials.
    pub defragmented: bool,
    /// Wall time of the search.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
}

/// The load of one trial: the user's load at `rate` for `length`, errors expected (they are
/// what a trial measures).
fn trial_load(load: &StressOptions, rate: f64, length: Duration) -> StressOptions {
    let mut o = load.clone();
    o.rate = Some(rate);
    o.duration = Some(format!("{}ms", length.as_millis()));
    o.expect_errors = true;
    o
}

/// Runs the search.
pub async fn capacity(
    target: &Target,
    opts: &CapacityOptions,
    scraper: Option<&Scraper>,
    observers: &super::Watch,
) -> Result<CapacityRecord> {
    let plan = plan(opts)?;
    let db = |s: &super::etcd::StatusRecord| Some(s.db_size as f64);
    let filled = Instant::now();
    let prefilled = match &opts.search.prefill {
        Some(p) => {
            let r = super::etcd::put_many(target, &p.put_many()).await?;
            (r.ok, r.bytes)
        }
        None => (0, 0),
    };
    let prefill_ms = if opts.search.prefill.is_some() {
        ms(filled.elapsed())
    } else {
        0.0
    };
    let start = Instant::now();
    let db_size_before = super::etcd::status(target).await.ok().as_ref().and_then(db);
    let store = StoreRecord {
        keys: run_keys(target).await,
        prefilled_keys: prefilled.0,
        prefilled_bytes: prefilled.1,
        prefill_ms,
        db_size: db_size_before,
    };
    let bounds = Bounds {
        from: opts.search.from,
        to: opts.search.to,
        precision: plan.precision,
        budget: plan.budget,
        cost: plan.step + plan.settle + Duration::from_secs(1),
    };
    let floor = bounds.floor();
    let plan = &plan;
    let found = search(&bounds, start, |rate| async move {
        let t = trial(target, opts, plan, rate, scraper, observers).await?;
        // An overloaded etcd works off its backlog for a while: give it a trial's length more.
        if !t.passed {
            tokio::time::sleep(plan.step).await;
        }
        settle(target, plan).await;
        Ok(t)
    })
    .await?;
    let Found {
        trials,
        lo,
        hi,
        confirmed,
        refuted,
        failed_confirmed,
    } = found;
    let bracket = match (lo, hi) {
        (Some(l), Some(h)) => Some((h - l) / l),
        _ => None,
    };
    let limited_by = hi.and_then(|h| {
        trials
            .iter()
            .find(|t| t.rate == h && !t.passed)
            .and_then(|t| t.failed_on.clone())
    });
    let db_size_after = super::etcd::status(target).await.ok().as_ref().and_then(db);
    Ok(CapacityRecord {
        slo: opts.search.slo.clone(),
        sustained_rate: lo,
        failed_rate: hi,
        bracket,
        converged: bracket.is_some_and(|b| b <= plan.precision)
            || (hi.is_none() && lo.is_some_and(|l| l >= opts.search.to))
            || (lo.is_none() && hi.is_some_and(|h| h / 2.0 < floor)),
        confirmed,
        refuted,
        failed_confirmed,
        store,
        limited_by,
        trials,
        db_size_before,
        db_size_after,
        compacted: target.may_maintain(),
        defragmented: target.may_maintain() && plan.defrag,
        duration_ms: ms(start.elapsed()),
    })
}

/// The search's range and limits.
struct Bounds {
    from: f64,
    to: f64,
    precision: f64,
    budget: Duration,
    /// What one trial costs with its settling.
    cost: Duration,
}

impl Bounds {
    /// Below `from`, the search halves down to this before it says no rate held.
    fn floor(&self) -> f64 {
        self.from / 16.0
    }

    /// The next rate: `from` first; double until a trial fails or `to` is reached; halve below
    /// a failed `from` down to the floor; then bisect until the bracket is within `precision`.
    fn next(&self, lo: Option<f64>, hi: Option<f64>) -> Option<f64> {
        match (lo, hi) {
            (None, None) => Some(self.from),
            (Some(l), None) if l >= self.to => None,
            (Some(l), None) => Some((l * 2.0).min(self.to)),
            (None, Some(h)) if h / 2.0 >= self.floor() => Some(h / 2.0),
            (None, Some(_)) => None,
            (Some(l), Some(h)) if (h - l) / l <= self.precision => None,
            (Some(l), Some(h)) => Some((l + h) / 2.0),
        }
    }
}

/// What the search found.
struct Found {
    trials: Vec<Trial>,
    lo: Option<f64>,
    hi: Option<f64>,
    confirmed: Option<bool>,
    refuted: u64,
    failed_confirmed: Option<bool>,
}

/// Answers refuted by their repeat before the search stops going lower.
const MAX_REFUTED: u64 = 3;

/// The search over `run` (one trial at a rate, settled), within the budget counted from
/// `start`. The answer is run again before it is trusted: a repeat that fails makes that rate
/// the bracket's top, and the search goes on below it from the next rate that held (halving
/// when none did), up to [`MAX_REFUTED`] times.
async fn search<F, Fut>(b: &Bounds, start: Instant, mut run: F) -> Result<Found>
where
    F: FnMut(f64) -> Fut,
    Fut: std::future::Future<Output = Result<Trial>>,
{
    let mut trials: Vec<Trial> = Vec::new();
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let (mut confirmed, mut refuted) = (None, 0u64);
    let (mut failed_confirmed, mut rechecked) = (None, 0u64);
    'search: loop {
        // The next trial must fit in the budget, with its settling (twice a step if it fails),
        // and once a rate held, with room for the trial that confirms the answer.
        while let Some(rate) = b.next(lo, hi) {
            let reserve = if lo.is_some() { 2 } else { 1 };
            if start.elapsed() + b.cost * reserve > b.budget && !trials.is_empty() {
                break 'search;
            }
            let t = run(rate).await?;
            if t.passed {
                lo = Some(lo.map_or(rate, |l: f64| l.max(rate)));
            } else {
                hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
            }
            trials.push(t);
        }
        let Some(l) = lo else { break };
        if start.elapsed() + b.cost > b.budget {
            break;
        }
        let mut t = run(l).await?;
        t.repeat = true;
        let held = t.passed;
        trials.push(t);
        confirmed = Some(held);
        if held {
            // The failed end once more, as the held one was: a single unlucky trial (an fsync
            // stall on a shared disk) must not cap the answer either. When it holds now, the
            // search goes on above it.
            let Some(h) = hi else { break };
            if rechecked >= MAX_REFUTED || start.elapsed() + b.cost > b.budget {
                break;
            }
            let mut t = run(h).await?;
            t.repeat = true;
            let broke = !t.passed;
            trials.push(t);
            rechecked += 1;
            failed_confirmed = Some(broke);
            if broke {
                break;
            }
            lo = Some(h);
            hi = trials
                .iter()
                .filter(|x| !x.passed && x.rate > h)
                .map(|x| x.rate)
                .reduce(f64::min);
            confirmed = None;
            failed_confirmed = None;
            continue;
        }
        refuted += 1;
        hi = Some(hi.map_or(l, |h: f64| h.min(l)));
        lo = trials
            .iter()
            .filter(|x| x.passed && x.rate < l)
            .map(|x| x.rate)
            .reduce(f64::max);
        if refuted >= MAX_REFUTED {
            break;
        }
    }
    Ok(Found {
        trials,
        lo,
        hi,
        confirmed,
        refuted,
        failed_confirmed,
    })
}

/// Keys under the run prefix, counted by etcd (`None`: the count failed).
async fn run_keys(target: &Target) -> Option<u64> {
    let mut kv = crate::target::kv(&target.client);
    let o = etcd_client::GetOptions::new()
        .with_prefix()
        .with_count_only();
    let r = kv.get(target.info.prefix.clone(), Some(o)).await.ok()?;
    u64::try_from(r.count()).ok()
}

/// Compacts what the trial wrote (where scen may) and lets etcd settle.
async fn settle(target: &Target, plan: &Plan) {
    if target.may_maintain() {
        let o = super::maintenance::CompactOptions {
            keep: Some(0),
            revision: None,
            physical: true,
        };
        if let Err(e) = super::maintenance::compact(target, &o).await {
            tracing::debug!("capacity: compaction between trials failed: {e}");
        }
        if plan.defrag {
            let o = super::maintenance::DefragOptions::default();
            if let Err(e) = super::maintenance::defrag(target, &o).await {
                tracing::debug!("capacity: defragmentation between trials failed: {e}");
            }
        }
    }
    tokio::time::sleep(plan.settle).await;
}

/// One trial at `rate`, judged.
async fn trial(
    target: &Target,
    opts: &CapacityOptions,
    plan: &Plan,
    rate: f64,
    scraper: Option<&Scraper>,
    observers: &super::Watch,
) -> Result<Trial> {
    let before = match scraper {
        Some(s) => Some(s.scrape_all().await),
        None => None,
    };
    let load = trial_load(&opts.load, rate, plan.step);
    let r: StressRecord = super::stress::stress(target, &load, observers.clone()).await?;
    let server = match (scraper, before) {
        (Some(s), Some(b)) => Some(server_step(&b, &s.scrape_all().await)),
        _ => None,
    };
    let wall = r.duration_ms.max(1.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // The trial's latency distribution: any quantile can be asked (`p95`, `p(99.9)`).
    let root = serde_json::json!({ "trial": &r.latency });
    let slo_held = plan.slo.evaluate(&root, None);
    let client_cpu_busy = r.cpu.client_ms / wall;
    let shortfall = r.shortfall.unwrap_or(0.0);
    let failed_on = if r.error_rate > plan.max_error_rate {
        Some("errors")
    } else if shortfall > plan.max_shortfall {
        // The load thread ran flat out: scen was the limit, not etcd.
        Some(if client_cpu_busy >= 0.9 {
            "client"
        } else {
            "shortfall"
        })
    } else {
        match &slo_held {
            Ok(v) if v.passed => None,
            Ok(_) => Some("latency"),
            Err(_) => Some("no data"),
        }
    };
    let server_cpu_busy = r.cpu.server_ms.map(|s| s / wall / cpus);
    let failed_on = failed_on.map(|f| {
        if f == "latency" && server_cpu_busy.is_some_and(|b| b >= 0.9) {
            "server CPU saturated".to_string()
        } else {
            f.to_string()
        }
    });
    Ok(Trial {
        repeat: false,
        rate,
        // Completed within the trial's own length, as the shortfall is (a backlog finishing
        // after it was not served at the rate).
        achieved: r.shortfall.map_or(r.throughput, |s| rate * (1.0 - s)),
        passed: failed_on.is_none(),
        failed_on,
        p50: r.latency.p50,
        p99: r.latency.p99,
        max: r.latency.max,
        errors: r.errors,
        error_rate: r.error_rate,
        shortfall: r.shortfall,
        wal_fsync_p99: server.as_ref().and_then(|s| s.wal_fsync.p99),
        backend_commit_p99: server.as_ref().and_then(|s| s.backend_commit.p99),
        server_cpu_per_request: r.cpu.server_per_op,
        server_cpu_busy,
        client_cpu_busy,
    })
}

#[cfg(test)]
mod tests {
    use super::in_trial;

    #[test]
    fn slo_fields_are_read_from_the_trial() {
        assert_eq!(in_trial("p99 < 25ms"), "trial.p99 < 25ms");
        assert_eq!(
            in_trial("p99 < 25ms && max(p50) <= 2.5s"),
            "trial.p99 < 25ms && max(trial.p50) <= 2.5s"
        );
        assert_eq!(in_trial("p(99.9) < 1s"), "trial.p(99.9) < 1s");
    }

    /// A trial at `rate` that passed or not, nothing else measured.
    fn judged(rate: f64, passed: bool) -> super::Trial {
        super::Trial {
            repeat: false,
            rate,
            achieved: rate,
            passed,
            failed_on: (!passed).then(|| "latency".into()),
            p50: None,
            p99: None,
            max: None,
            errors: 0,
            error_rate: 0.0,
            shortfall: None,
            wal_fsync_p99: None,
            backend_commit_p99: None,
            server_cpu_per_request: None,
            server_cpu_busy: None,
            client_cpu_busy: 0.0,
        }
    }

    /// Searches a machine whose capacity is `capacity(n)` at its `n`-th trial.
    fn search_on(from: f64, to: f64, capacity: impl Fn(usize) -> f64) -> super::Found {
        let b = super::Bounds {
            from,
            to,
            precision: 0.05,
            budget: std::time::Duration::from_secs(3600),
            cost: std::time::Duration::from_millis(1),
        };
        let n = std::cell::Cell::new(0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(super::search(&b, std::time::Instant::now(), |rate| {
            let i = n.get();
            n.set(i + 1);
            let passed = rate <= capacity(i);
            async move { Ok(judged(rate, passed)) }
        }))
        .unwrap()
    }

    #[test]
    fn the_search_brackets_the_knee_and_confirms_the_answer() {
        let f = search_on(1000.0, 8000.0, |_| 1500.0);
        let (lo, hi) = (f.lo.unwrap(), f.hi.unwrap());
        assert!(lo <= 1500.0 && 1500.0 < hi, "{lo} {hi}");
        assert!((hi - lo) / lo <= 0.05);
        assert_eq!((f.confirmed, f.refuted), (Some(true), 0));
        assert!(f.trials.last().unwrap().repeat);
        // Below a failed `from` it halves.
        let f = search_on(1000.0, 8000.0, |_| 300.0);
        assert!(
            f.lo.unwrap() <= 300.0 && f.lo.unwrap() >= 250.0,
            "{:?}",
            f.lo
        );
    }

    #[test]
    fn an_unlucky_failure_is_tried_again_and_the_search_goes_above_it() {
        // Holds 2,000/s, but the very first trial (1,000/s) hit a stall.
        let f = search_on(1000.0, 8000.0, |i| if i == 0 { 0.0 } else { 2000.0 });
        let (lo, hi) = (f.lo.unwrap(), f.hi.unwrap());
        assert!(
            lo <= 2000.0 && 2000.0 < hi && (hi - lo) / lo <= 0.05,
            "{lo} {hi}"
        );
        assert!(lo > 1000.0, "the first failure did not cap it: {lo}");
        assert_eq!((f.confirmed, f.failed_confirmed), (Some(true), Some(true)));
    }

    #[test]
    fn a_refuted_answer_sends_the_search_below_it_until_one_holds_twice() {
        // 4,000/s until the third trial, then 1,000/s: the ramp's answer is refuted, and so is
        // the next rate that held; the search ends on the rate the machine holds now.
        let f = search_on(1000.0, 4000.0, |i| if i < 3 { 4000.0 } else { 1000.0 });
        assert_eq!(
            f.refuted,
            2,
            "{:?}",
            f.trials
                .iter()
                .map(|t| (t.rate, t.passed, t.repeat))
                .collect::<Vec<_>>()
        );
        assert_eq!((f.lo, f.confirmed), (Some(1000.0), Some(true)));
        // Refuted with nothing lower held: it halves below `from`, which once held.
        let f = search_on(1000.0, 2000.0, |i| if i < 1 { 1000.0 } else { 400.0 });
        assert_eq!(f.refuted, 1);
        let lo = f.lo.unwrap();
        assert!((380.0..=400.0).contains(&lo), "{lo}");
        assert_eq!(f.confirmed, Some(true));
        assert!(f.hi.unwrap() > 400.0);
        // A machine that holds nothing any more: the search stops after three refutations at
        // the latest, with no answer.
        let f = search_on(1000.0, 2000.0, |i| if i < 1 { 1000.0 } else { 0.0 });
        assert_eq!(f.lo, None);
        assert!(f.refuted <= super::MAX_REFUTED);
    }
}

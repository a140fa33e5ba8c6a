//! Live measurements of a running scenario, for the people watching Prometheus and Grafana while it
//! runs: a [`Hub`] keeps cumulative totals that load loops feed (requests, errors by code, latency
//! in the shared [`Recorder`](crate::measure::latency::Recorder)), step boundaries, threshold verdicts and etcd's own metrics, and
//! gives them out as metric [`family::Family`]s — pushed by [`remote_write`]
//! (`--out prometheus-rw=URL`) or served by [`listen`] (`--metrics-listen`).
//!
//! Totals are cumulative from the start of each step, as Prometheus counters are: at the end of a
//! step they equal the step's record (`ops`, `errors`, latency quantiles).

pub mod family;
pub mod listen;
pub mod outputs;
pub mod remote_write;
mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;

use crate::actions::metrics::Scraper;
pub use crate::measure::totals::OpTotals;
use crate::report::{Report, StepReport, StepStatus, ThresholdStatus};
use family::{labels, Family, Kind};

/// Upper bounds (seconds) of the request-latency histogram's buckets: 50 µs to 60 s, fine enough
/// for `histogram_quantile` over sub-millisecond puts and multi-second stalls alike.
pub const BUCKETS: [f64; 19] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The latency quantiles given as gauges (cumulative over the step: at its end, the record's).
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A step as the hub knows it.
#[derive(Debug, Default)]
struct StepLive {
    started: f64,
    ended: Option<f64>,
    status: Option<StepStatus>,
    ops: BTreeMap<String, Arc<Mutex<OpTotals>>>,
    /// The rate an open-loop load is asked for now, per second.
    intended: Option<f64>,
    /// Once it ended: every figure of its record (and its server view), typed.
    figures: Vec<crate::measure::figures::Figure>,
}

/// What the hub knows of the run.
#[derive(Debug, Default)]
struct State {
    run_id: String,
    scenario: String,
    /// Steps by name, with their start order.
    steps: BTreeMap<String, StepLive>,
    thresholds: Vec<(String, ThresholdStatus, Option<f64>)>,
    /// The exit code, once the run ended.
    exit_code: Option<i32>,
}

/// The live totals of one run, shared by the load loops that feed it and the outputs that read it.
#[derive(Debug, Default)]
pub struct Hub {
    user: Vec<(String, String)>,
    state: Mutex<State>,
    server: server::Forwarder,
}

impl Hub {
    /// A hub whose every series carries `user` labels (`--out-label team=storage`) besides
    /// `run_id` and `scenario`.
    pub fn new(user: Vec<(String, String)>) -> Arc<Hub> {
        Arc::new(Hub {
            user,
            ..Hub::default()
        })
    }

    /// Names the run (from the report as soon as the plan is read).
    pub fn begin(&self, report: &Report) {
        let mut s = self.state.lock().expect("hub lock");
        s.run_id = report.run_id.clone();
        s.scenario = report.scenario.name.clone();
    }

    /// etcd's `/metrics` to forward with the run's series (the members' own WAL fsync, backend
    /// commit, leader and db size, labelled with `member`).
    pub fn forward_server(&self, scraper: Scraper) {
        self.server.set(scraper);
    }

    /// A step started.
    pub fn step_started(&self, name: &str) {
        let mut s = self.state.lock().expect("hub lock");
        let step = s.steps.entry(name.to_string()).or_default();
        step.started = now();
        step.ended = None;
        step.status = None;
    }

    /// A step ended.
    pub fn step_finished(&self, step: &StepReport) {
        let mut s = self.state.lock().expect("hub lock");
        let live = s.steps.entry(step.name.clone()).or_default();
        if live.started == 0.0 {
            live.started = step
                .started_at
                .map_or_else(now, |t| t.timestamp_millis() as f64 / 1e3);
        }
        live.ended = Some(now());
        live.status = Some(step.status);
        live.intended = None;
        live.figures = crate::report::typed::step_figures(step);
    }

    /// The thresholds' verdicts so far and, once the run ended, its exit code.
    pub fn verdicts(&self, report: &Report, finished: bool) {
        let mut s = self.state.lock().expect("hub lock");
        s.thresholds = report
            .thresholds
            .iter()
            .map(|t| (t.expression.clone(), t.status, t.observed))
            .collect();
        if finished {
            s.exit_code = Some(report.exit_code);
        }
    }

    /// Where the step `step`'s load loops put their totals.
    pub fn feed(self: &Arc<Self>, step: &str) -> Feed {
        Feed {
            hub: self.clone(),
            step: step.to_string(),
        }
    }

    /// The labels every series carries: `run_id`, `scenario`, then the user's.
    pub fn common_labels(&self) -> Vec<(String, String)> {
        let s = self.state.lock().expect("hub lock");
        let mut out = labels(&[("run_id", &s.run_id), ("scenario", &s.scenario)]);
        out.extend(self.user.iter().cloned());
        out
    }

    /// Every family as it stands: scen's own, then etcd's forwarded (scraped at most once a
    /// second, whoever asks).
    pub async fn families(&self) -> Vec<Family> {
        let mut out = self.own_families();
        out.extend(self.server.families().await);
        out
    }

    /// scen's own families.
    fn own_families(&self) -> Vec<Family> {
        let s = self.state.lock().expect("hub lock");
        let mut running = Family::new(
            "scen_step_running",
            Kind::Gauge,
            "1 while the step runs, 0 once it ended.",
            None,
        );
        let mut started = Family::new(
            "scen_step_start_timestamp_seconds",
            Kind::Gauge,
            "When the step started (Unix time).",
            Some("seconds"),
        );
        let mut ended = Family::new(
            "scen_step_end_timestamp_seconds",
            Kind::Gauge,
            "When the step ended (Unix time).",
            Some("seconds"),
        );
        let mut passed = Family::new(
            "scen_step_passed",
            Kind::Gauge,
            "1 when the step ended without error, 0 when it failed, was interrupted or skipped.",
            None,
        );
        let mut intended = Family::new(
            "scen_intended_rate_per_second",
            Kind::Gauge,
            "The request rate an open-loop load is asked for now.",
            None,
        );
        let mut requests = Family::new(
            "scen_requests",
            Kind::Counter,
            "Requests completed (succeeded or failed) since the step started.",
            None,
        );
        let mut errors = Family::new(
            "scen_request_errors",
            Kind::Counter,
            "Failed requests since the step started, by code.",
            None,
        );
        let mut duration = Family::new(
            "scen_request_duration_seconds",
            Kind::Histogram,
            "Latency of successful requests since the step started (open loop: from the intended send time).",
            Some("seconds"),
        );
        let mut quantile = Family::new(
            "scen_request_duration_quantile_seconds",
            Kind::Gauge,
            "Latency quantiles of successful requests since the step started; at its end, the step record's.",
            Some("seconds"),
        );
        let mut figures = FigureFamilies::new();
        for (name, step) in &s.steps {
            figures.push(name, &step.figures);
            let st = labels(&[("step", name)]);
            running.push("", st.clone(), f64::from(u8::from(step.ended.is_none())));
            started.push("", st.clone(), step.started);
            if let Some(t) = step.ended {
                ended.push("", st.clone(), t);
            }
            if let Some(status) = step.status {
                passed.push(
                    "",
                    st.clone(),
                    f64::from(u8::from(status == StepStatus::Passed)),
                );
            }
            if let Some(r) = step.intended {
                intended.push("", st.clone(), r);
            }
            for (op, totals) in &step.ops {
                let t = totals.lock().expect("op lock").clone();
                let so = labels(&[("step", name), ("op", op)]);
                let failed: u64 = t.errors.values().sum();
                requests.push("_total", so.clone(), (t.ok + failed) as f64);
                for (code, n) in &t.errors {
                    let mut l = so.clone();
                    l.push(("code".into(), code.clone()));
                    errors.push("_total", l, *n as f64);
                }
                let bounds: Vec<u64> = BUCKETS.iter().map(|b| (b * 1e6).round() as u64).collect();
                for (le, n) in BUCKETS.iter().zip(t.latency.count_le(&bounds)) {
                    let mut l = so.clone();
                    l.push(("le".into(), format!("{le}")));
                    duration.push("_bucket", l, n as f64);
                }
                let mut l = so.clone();
                l.push(("le".into(), "+Inf".into()));
                duration.push("_bucket", l, t.ok as f64);
                duration.push("_sum", so.clone(), t.latency_sum);
                duration.push("_count", so.clone(), t.ok as f64);
                for (q, v) in QUANTILES.iter().zip(t.latency.quantiles_ms(&QUANTILES)) {
                    if let Some(ms) = v {
                        let mut l = so.clone();
                        l.push(("quantile".into(), format!("{q}")));
                        quantile.push("", l, ms / 1e3);
                    }
                }
            }
        }
        let mut threshold = Family::new(
            "scen_threshold_passed",
            Kind::Gauge,
            "1 when the threshold passed, 0 otherwise; `status` says how it was decided.",
            None,
        );
        let mut observed = Family::new(
            "scen_threshold_observed",
            Kind::Gauge,
            "The value a threshold read (ms, bytes, per second or a fraction, as in the report).",
            None,
        );
        for (expr, status, value) in &s.thresholds {
            let name = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let pass = f64::from(u8::from(*status == ThresholdStatus::Passed));
            threshold.push("", labels(&[("threshold", expr), ("status", &name)]), pass);
            if let Some(v) = value {
                observed.push("", labels(&[("threshold", expr)]), *v);
            }
        }
        let mut exit = Family::new(
            "scen_run_exit_code",
            Kind::Gauge,
            "The run's exit code, once it ended (0 passed, 1 thresholds failed, 2 script, 3 infrastructure).",
            None,
        );
        if let Some(code) = s.exit_code {
            exit.push("", vec![], f64::from(code));
        }
        [
            running, started, ended, passed, intended, requests, errors, duration, quantile,
            threshold, observed, exit,
        ]
        .into_iter()
        .chain(figures.into_families())
        .filter(|f| !f.samples.is_empty())
        .collect()
    }
}

/// Ended steps' figures, one family per unit in Prometheus's base units (durations in seconds),
/// labelled with `step` and `figure` (the record's path: `latency.p99`, `server.wal_fsync.p99`).
/// A figure with no samples is left out, never sent as 0.
struct FigureFamilies {
    seconds: Family,
    bytes: Family,
    rate: Family,
    ratio: Family,
    plain: Family,
}

impl FigureFamilies {
    fn new() -> Self {
        let f = |name, help, unit| Family::new(name, Kind::Gauge, help, unit);
        FigureFamilies {
            seconds: f(
                "scen_step_figure_seconds",
                "A duration figure of an ended step's record (latency quantiles, the server view's WAL fsync and backend commit...).",
                Some("seconds"),
            ),
            bytes: f(
                "scen_step_figure_bytes",
                "A size figure of an ended step's record.",
                Some("bytes"),
            ),
            rate: f(
                "scen_step_figure_per_second",
                "A rate figure of an ended step's record (throughput).",
                None,
            ),
            ratio: f(
                "scen_step_figure_ratio",
                "A ratio figure of an ended step's record (a fraction of 1).",
                Some("ratio"),
            ),
            plain: f(
                "scen_step_figure",
                "A count or a boolean (1 or 0) of an ended step's record, or a figure of a record without a type.",
                None,
            ),
        }
    }

    fn push(&mut self, step: &str, figures: &[crate::measure::figures::Figure]) {
        use crate::measure::Unit;
        for fig in figures {
            let Some(v) = fig.value else { continue };
            let path = fig
                .path
                .strip_prefix(step)
                .and_then(|p| p.strip_prefix('.'))
                .unwrap_or(&fig.path);
            let l = labels(&[("step", step), ("figure", path)]);
            match fig.unit {
                Some(Unit::Ms) => self.seconds.push("", l, v / 1e3),
                Some(Unit::Bytes) => self.bytes.push("", l, v),
                Some(Unit::PerSecond | Unit::BytesPerSecond) => self.rate.push("", l, v),
                Some(Unit::Ratio) => self.ratio.push("", l, v),
                Some(Unit::Count | Unit::Bool) | None => self.plain.push("", l, v),
            }
        }
    }

    fn into_families(self) -> [Family; 5] {
        [self.seconds, self.bytes, self.rate, self.ratio, self.plain]
    }
}

/// Unix time now, in seconds.
fn now() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1e3
}

/// Where one step's load loops put their live totals.
#[derive(Debug, Clone)]
pub struct Feed {
    hub: Arc<Hub>,
    step: String,
}

impl Feed {
    /// The totals of operation `op` in this step, created empty on first use. Loops keep a delta
    /// of their own and [`OpTotals::absorb`] it about once a second: no lock per request.
    pub fn op(&self, op: &str) -> Arc<Mutex<OpTotals>> {
        let mut s = self.hub.state.lock().expect("hub lock");
        let step = s.steps.entry(self.step.clone()).or_default();
        step.ops.entry(op.to_string()).or_default().clone()
    }

    /// The rate an open-loop load is asked for now (`None`: a closed loop).
    pub fn intended_rate(&self, rate: Option<f64>) {
        let mut s = self.hub.state.lock().expect("hub lock");
        if let Some(step) = s.steps.get_mut(&self.step) {
            step.intended = rate;
        }
    }
}

impl crate::measure::totals::LiveFeed for Feed {
    fn op(&self, op: &str) -> Arc<Mutex<OpTotals>> {
        Feed::op(self, op)
    }

    fn intended_rate(&self, rate: Option<f64>) {
        Feed::intended_rate(self, rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn value(fams: &[Family], name: &str, suffix: &str, want: &[(&str, &str)]) -> Option<f64> {
        let f = fams.iter().find(|f| f.name == name)?;
        f.samples
            .iter()
            .find(|s| {
                s.suffix == suffix
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn totals_fold_into_counters_buckets_and_quantiles() {
        let hub = Hub::new(labels(&[("team", "storage")]));
        hub.step_started("load");
        let feed = hub.feed("load");
        let op = feed.op("put");
        let mut delta = OpTotals::default();
        for ms in 1..=100u64 {
            delta.ok(Duration::from_millis(ms));
        }
        delta.error("Unavailable");
        delta.error("Unavailable");
        op.lock().unwrap().absorb(&mut delta);
        assert!(delta.is_empty(), "absorb empties the delta");
        let fams = hub.own_families();
        let put = [("step", "load"), ("op", "put")];
        assert_eq!(value(&fams, "scen_requests", "_total", &put), Some(102.0));
        assert_eq!(
            value(
                &fams,
                "scen_request_errors",
                "_total",
                &[("op", "put"), ("code", "Unavailable")]
            ),
            Some(2.0)
        );
        let le = |b: &str| {
            value(
                &fams,
                "scen_request_duration_seconds",
                "_bucket",
                &[("op", "put"), ("le", b)],
            )
        };
        assert_eq!(le("0.01"), Some(10.0), "1..=10 ms fall in le=0.01");
        assert_eq!(le("0.05"), Some(50.0));
        assert_eq!(le("+Inf"), Some(100.0));
        let p99 = value(
            &fams,
            "scen_request_duration_quantile_seconds",
            "",
            &[("op", "put"), ("quantile", "0.99")],
        )
        .unwrap();
        assert!((p99 - 0.099).abs() < 0.001, "p99 {p99}");
        assert_eq!(
            value(&fams, "scen_step_running", "", &[("step", "load")]),
            Some(1.0)
        );
        assert!(hub
            .common_labels()
            .contains(&("team".to_string(), "storage".to_string())));
    }
}

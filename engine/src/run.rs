//! Running a plan: start or connect to etcd, run the steps in order (background steps on their own
//! threads until joined), evaluate thresholds (early for `abort_on_fail`), clean up, and always
//! return a report — also when the script fails, etcd dies or the user presses Ctrl-C.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actions::apiserver_view::KubeScrapers;
use crate::actions::metrics::{links_during, server_step, wrote, ProcessStep, Scraper};
use crate::embedded::{EmbeddedConfig, EmbeddedEtcd, EmbeddedSpec};
use crate::measure::process;
use crate::params::Overrides;
use crate::plan::{Item, Plan, StepSpec};
use crate::report::{
    model::Record, ErrorInfo, ErrorKind, Outcome, Report, ScenarioInfo, StepReport, StepStatus,
    StoppedEarly, TargetReport, ThresholdReport, ThresholdStatus, SCHEMA_VERSION,
};
use crate::script::{Host, Limits, ScriptError, StepRecord};
use crate::target::{ConnectSettings, Target};

/// How long after a step that wrote its server view waits for etcd's backend to commit the
/// step's last writes: etcd's default batch interval (100 ms) and a margin.
const BACKEND_SETTLE: std::time::Duration = std::time::Duration::from_millis(150);

/// Everything a run needs besides the scenario's own declarations.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// The scenario file.
    pub scenario: PathBuf,
    /// `--set` and `--values`.
    pub overrides: Overrides,
    /// An existing cluster; `None` starts an embedded etcd.
    pub connect: Option<ConnectSettings>,
    /// Settings for the embedded etcd.
    pub embedded: EmbeddedConfig,
    /// Command-line settings for the embedded etcd (`--members`...), over the scenario's own.
    pub embedded_overrides: EmbeddedSpec,
    /// Keep the run's keys on an external cluster instead of deleting its prefix at the end.
    pub keep_keys: bool,
    /// Allow compaction, defragmentation and disarming on an etcd scen did not start.
    pub allow_maintenance: bool,
    /// `--allow-registry-writes`: `cluster::simulate` may write the real `/registry` of an etcd scen did not start.
    pub allow_registry_writes: bool,
    /// Where files a run produces (snapshots) go; default `scen-artifacts/<run-id>`.
    pub artifacts: Option<PathBuf>,
    /// A previous report whose figures `baseline` in thresholds refers to.
    pub baseline: Option<PathBuf>,
    /// URLs serving each member's `/metrics` (default: the embedded member's, or the plain-http
    /// endpoints of an external cluster).
    pub metrics_urls: Vec<String>,
    /// Script sandbox limits.
    pub limits: Limits,
    /// Run id (default: time and random suffix).
    pub run_id: Option<String>,
    /// Where live totals go while the run goes on (`--out`, `--metrics-listen`).
    pub live: Option<Arc<crate::live::Hub>>,
}

/// Progress notifications for a front end (the CLI draws progress lines from these).
pub trait Observer: Send + Sync {
    /// etcd is ready.
    fn connected(&self, _target: &TargetReport) {}
    /// A step started.
    fn step_started(&self, _name: &str, _background: bool) {}
    /// A step finished (any status).
    fn step_finished(&self, _step: &StepReport) {}
    /// A running step reports live figures (a load step's rate and p99, about once a second).
    fn step_progress(&self, _step: &str, _line: &str) {}
    /// The report as it stands (once the plan is read, on connecting, after each step): what a
    /// front end writes when it must leave before the run ends (a second Ctrl-C).
    fn snapshot(&self, _report: &Report) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// The front end's observer, with the live hub told of steps and verdicts on the way.
struct Live(Arc<dyn Observer>, Arc<crate::live::Hub>);

impl Observer for Live {
    fn connected(&self, target: &TargetReport) {
        self.0.connected(target);
    }
    fn step_started(&self, name: &str, background: bool) {
        self.1.step_started(name);
        self.0.step_started(name, background);
    }
    fn step_finished(&self, step: &StepReport) {
        self.1.step_finished(step);
        self.0.step_finished(step);
    }
    fn step_progress(&self, step: &str, line: &str) {
        self.0.step_progress(step, line);
    }
    fn snapshot(&self, report: &Report) {
        self.1.begin(report);
        self.1.verdicts(report, false);
        self.0.snapshot(report);
    }
}

/// Reads and checks a scenario without running it (`scen check`).
pub fn check(
    scenario: &std::path::Path,
    overrides: &Overrides,
    limits: &Limits,
) -> Result<Plan, ScriptError> {
    Host::load(scenario, overrides, limits, CancellationToken::new()).map(|(_, plan)| plan)
}

fn new_run_id() -> String {
    let suffix: u32 = rand::random();
    format!(
        "{}-{:06x}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        suffix & 0xff_ffff
    )
}

/// Runs a scenario to the end (or until `cancel` fires) and returns its report.
///
/// Call from the runtime's main task: the embedded etcd's parent-death signal is tied to the
/// calling thread.
pub async fn run(
    cfg: &RunConfig,
    cancel: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Report {
    let started = Instant::now();
    let run_id = cfg.run_id.clone().unwrap_or_else(new_run_id);
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        scen_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.clone(),
        scenario: ScenarioInfo {
            name: cfg
                .scenario
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            description: String::new(),
            file: cfg.scenario.display().to_string(),
            sha256: String::new(),
        },
        params: Default::default(),
        param_sources: Default::default(),
        target: None,
        started_at: Utc::now(),
        finished_at: Utc::now(),
        duration_ms: 0.0,
        outcome: Outcome::Passed,
        exit_code: 0,
        stopped_early: None,
        baseline: None,
        error: None,
        steps: Vec::new(),
        thresholds: Vec::new(),
        server_timeline: Vec::new(),
        compare_steps: Vec::new(),
        control_plane: None,
        outputs: Vec::new(),
    };
    let observer: Arc<dyn Observer> = match &cfg.live {
        Some(hub) => Arc::new(Live(observer, hub.clone())),
        None => observer,
    };
    let outcome = execute(cfg, &run_id, &mut report, cancel, observer).await;
    report.outcome = outcome;
    report.exit_code = outcome.exit_code();
    if let Some(hub) = &cfg.live {
        hub.begin(&report);
        hub.verdicts(&report, true);
    }
    report.finished_at = Utc::now();
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

fn error_info(e: &ScriptError) -> ErrorInfo {
    ErrorInfo {
        kind: e.kind,
        message: e.message.clone(),
        location: e.location(),
        detail: e.pos.is_some().then(|| e.render()),
    }
}
/// A stage of a run that ends it early: the outcome to return (the report already says why).
type Stage<T> = std::result::Result<T, Outcome>;

/// Runs a plan, in its stages: read the plan, start or reach etcd, start the control plane,
/// scrape etcd's metrics, run the steps, decide the thresholds, clean up.
async fn execute(
    cfg: &RunConfig,
    run_id: &str,
    report: &mut Report,
    cancel: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Outcome {
    let (host, plan, baseline) = match read_plan(cfg, &cancel, report) {
        Ok(x) => x,
        Err(o) => return o,
    };
    report_plan(report, &plan);
    observer.snapshot(report);
    // etcd: embedded (dropped, hence stopped and removed, when this function returns) or external.
    let (embedded, settings, embedded_cfg) = match start_etcd(cfg, &plan, &cancel, report).await {
        Ok(x) => x,
        Err(o) => return o,
    };
    let prefix = format!("/scen/{run_id}/");
    let mut target = match connect(
        cfg,
        &plan,
        settings,
        embedded.clone(),
        prefix,
        &cancel,
        report,
    )
    .await
    {
        Ok(t) => t,
        Err(o) => return o,
    };
    // The embedded Kubernetes control plane, on this etcd (dropped, hence stopped, when this
    // function returns).
    let control_plane =
        match start_control_plane(cfg, &plan, &mut target, &embedded, &cancel, report).await {
            Ok(cp) => cp,
            Err(o) => return o,
        };
    let metrics = match etcd_scraper(cfg, &target, &embedded, report) {
        Ok(m) => Arc::new(m),
        Err(o) => return o,
    };
    let tr = TargetReport {
        endpoints: target.info.endpoints.clone(),
        embedded: target.info.embedded,
        etcd_version: target.info.etcd_version.clone(),
        prefix: target.info.prefix.clone(),
        cleaned_up_keys: 0,
    };
    observer.connected(&tr);
    report.target = Some(tr);
    observer.snapshot(report);
    let sink = observer.clone();
    let progress: crate::script::ProgressSink =
        Arc::new(move |step: &str, line: &str| sink.step_progress(step, line));
    host.begin_run(crate::script::RunSetup {
        target: target.clone(),
        handle: tokio::runtime::Handle::current(),
        progress: Some(progress),
        live: cfg.live.clone(),
        artifacts: cfg
            .artifacts
            .clone()
            .unwrap_or_else(|| PathBuf::from("scen-artifacts").join(run_id)),
        metrics: (*metrics).clone(),
        etcd_bin: embedded_cfg.etcd_bin.clone(),
    });

    // The steps, with etcd's own view across the run for the timeline (a scrape every 2 s).
    let kube_scrapers = control_plane.as_ref().map(kube_scrapers);
    let stop = cancel.child_token();
    let ctx = RunCtx {
        host: &host,
        plan: &plan,
        cancel: &cancel,
        stop: &stop,
        observer: observer.as_ref(),
        metrics: &metrics,
        kube: kube_scrapers.as_ref(),
        baseline: baseline.as_ref(),
        embedded: target.embedded.as_ref(),
    };
    let sampler = crate::actions::timeline::Sampler::start(
        metrics.clone(),
        report.started_at,
        Duration::from_secs(2),
        member_names(&target),
    );
    let mut outcome = run_steps(ctx, report).await;
    report.server_timeline = sampler.finish();
    // Each fault as the loads across it saw it: known once they have finished.
    crate::report::outage::attach(report);

    // Thresholds not decided yet: those whose steps finished are evaluated even when the run
    // stopped early, so a partial report still says what was learned.
    evaluate_thresholds(&plan, report, false, baseline.as_ref());
    safety_verdicts(report);
    if outcome == Outcome::Passed && report.threshold_counts().1 > 0 {
        outcome = Outcome::ThresholdsFailed;
    }
    host.end_run();

    // The control plane before its etcd, and before its keys are removed: a running API server
    // writes again what the cleanup deletes.
    drop(control_plane);
    // The run's keys on a cluster scen did not start (an embedded one is deleted whole).
    if embedded.is_none() && !cfg.keep_keys {
        clean_prefix(&target, report).await;
    }
    // Stop the members now: clones of the target may outlive this function.
    if let Some(e) = embedded {
        e.lock().expect("embedded lock").stop();
    }
    outcome
}

/// Reads the plan and the baseline report. A script error here means nothing ran.
fn read_plan(
    cfg: &RunConfig,
    cancel: &CancellationToken,
    report: &mut Report,
) -> Stage<(Arc<Host>, Plan, Option<Value>)> {
    let (host, plan) = Host::load(&cfg.scenario, &cfg.overrides, &cfg.limits, cancel.clone())
        .map_err(|e| {
            report.error = Some(error_info(&e));
            Outcome::ScriptError
        })?;
    let baseline = match &cfg.baseline {
        Some(path) => match crate::report::from_json(path) {
            Ok(b) => {
                report.baseline = Some(path.display().to_string());
                Some(step_view(&b.steps))
            }
            Err(e) => {
                return Err(stop_with(
                    report,
                    ErrorKind::Usage,
                    format!("--baseline: {e}"),
                    Outcome::ScriptError,
                ));
            }
        },
        None => None,
    };
    Ok((Arc::new(host), plan, baseline))
}

/// The report as the plan makes it before anything runs: the scenario, its parameters, every step
/// skipped and every threshold not evaluated, until they are.
fn report_plan(report: &mut Report, plan: &Plan) {
    report.scenario.name = plan.name.clone();
    report.scenario.description = plan.description.clone();
    report.scenario.sha256 = plan.sha256.clone();
    report.params = plan.resolved.values.clone().into_iter().collect();
    report.param_sources = plan
        .resolved
        .sources
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
            )
        })
        .collect();
    report.steps = plan
        .steps()
        .map(|s| StepReport {
            name: s.name.clone(),
            background: s.background,
            status: StepStatus::Skipped,
            started_at: None,
            duration_ms: 0.0,
            error: None,
            record: Record::empty(),
            action: s.action.clone(),
            field_actions: s.field_actions.clone(),
        })
        .collect();
    report.thresholds = plan
        .thresholds
        .iter()
        .map(|t| ThresholdReport {
            expression: t.threshold.source.clone(),
            abort_on_fail: t.threshold.abort_on_fail,
            status: ThresholdStatus::NotEvaluated,
            observed: None,
            limit: None,
            message: "not evaluated: the run stopped before the steps it reads finished".into(),
            location: t.pos.to_string(),
        })
        .collect();
    report.compare_steps = plan.compare_steps.clone();
}

/// `Interrupted`, with what the run was doing when it was.
fn interrupted(report: &mut Report, while_: &str) -> Outcome {
    report.stopped_early = Some(StoppedEarly {
        step: None,
        reason: format!("interrupted while {while_}"),
    });
    Outcome::Interrupted
}

/// Starts the throwaway etcd, unless the run was given one: the embedded cluster, how to reach
/// the etcd, and the embedded etcd's settings (defaults, then the scenario's `embedded_etcd()`,
/// then the command line).
async fn start_etcd(
    cfg: &RunConfig,
    plan: &Plan,
    cancel: &CancellationToken,
    report: &mut Report,
) -> Stage<(
    Option<crate::embedded::Shared>,
    ConnectSettings,
    EmbeddedConfig,
)> {
    let mut embedded_cfg = cfg.embedded.clone();
    plan.embedded.apply_to(&mut embedded_cfg);
    cfg.embedded_overrides.apply_to(&mut embedded_cfg);
    if cfg.connect.is_none() && !plan.needs_network.is_empty() && embedded_cfg.members < 3 {
        return Err(stop_with(
            report,
            ErrorKind::Usage,
            format!(
                "this scenario cuts links between members ({}), and this run has {} member: a network fault needs 3 or 5; pass --members 3 or declare embedded_etcd(#{{ members: 3, network_faults: true }})",
                plan.needs_network.join(", "),
                embedded_cfg.members
            ),
            Outcome::ScriptError,
        ));
    }
    if let Some(s) = &cfg.connect {
        return Ok((None, s.clone(), embedded_cfg));
    }
    let started = tokio::select! {
        r = EmbeddedEtcd::start(&embedded_cfg) => r,
        _ = cancel.cancelled() => return Err(interrupted(report, "starting etcd")),
    };
    match started {
        Ok(e) => {
            let s = ConnectSettings {
                endpoints: e.client_urls(),
                ..Default::default()
            };
            Ok((Some(Arc::new(std::sync::Mutex::new(e))), s, embedded_cfg))
        }
        Err(e) => {
            // A binary that is not etcd, or settings etcd refuses, is the user's to fix.
            let kind = match e {
                crate::embedded::Error::NotEtcd { .. } | crate::embedded::Error::Config(_) => {
                    ErrorKind::Usage
                }
                _ => ErrorKind::Infrastructure,
            };
            Err(stop_with(report, kind, e.to_string(), kind.outcome()))
        }
    }
}

/// Connects to the run's etcd, and refuses a plan whose faults or maintenance need a cluster scen
/// started before the first step on another one, not after its load ran.
async fn connect(
    cfg: &RunConfig,
    plan: &Plan,
    settings: ConnectSettings,
    embedded: Option<crate::embedded::Shared>,
    prefix: String,
    cancel: &CancellationToken,
    report: &mut Report,
) -> Stage<Target> {
    let target = tokio::select! {
        r = Target::connect(settings, embedded.is_some(), prefix) => r,
        _ = cancel.cancelled() => return Err(interrupted(report, "connecting to etcd")),
    };
    let mut target = target.map_err(|e| {
        let kind = if e.is_usage() {
            ErrorKind::Usage
        } else {
            ErrorKind::Infrastructure
        };
        stop_with(report, kind, e.to_string(), kind.outcome())
    })?;
    if embedded.is_none() && !plan.needs_embedded.is_empty() {
        return Err(stop_with(report, ErrorKind::Usage, format!(
                "this scenario injects faults, and a fault acts only on members scen started: {}; run it without --endpoints (scen starts the etcd it may break)",
                plan.needs_embedded.join(", ")
            ), Outcome::ScriptError));
    }
    if embedded.is_none() && !cfg.allow_maintenance && !plan.needs_maintenance.is_empty() {
        return Err(stop_with(report, ErrorKind::Usage, format!(
                "this scenario compacts, defragments or disarms ({}), which changes the whole cluster, and this etcd was not started by scen: pass --allow-maintenance, or run without --endpoints (a parameter such as `maintenance` may turn those steps off)",
                plan.needs_maintenance.join(", ")
            ), Outcome::ScriptError));
    }
    target.embedded = embedded;
    target.allow_maintenance = cfg.allow_maintenance;
    target.allow_registry_writes = cfg.allow_registry_writes;
    Ok(target)
}

/// Starts the embedded Kubernetes control plane the scenario declares, on the run's etcd, and
/// tells the target how to reach it. A port chosen free can be taken by another process before a
/// component binds it: then it starts once more, on fresh ports.
async fn start_control_plane(
    cfg: &RunConfig,
    plan: &Plan,
    target: &mut Target,
    embedded: &Option<crate::embedded::Shared>,
    cancel: &CancellationToken,
    report: &mut Report,
) -> Stage<Option<crate::control_plane::ControlPlane>> {
    let Some(spec) = &plan.control_plane else {
        return Ok(None);
    };
    let etcd = control_plane_etcd(target);
    let mut started = tokio::select! {
        r = crate::control_plane::ControlPlane::start(spec, &etcd) => r,
        _ = cancel.cancelled() => return Err(interrupted(report, "starting the control plane")),
    };
    if started
        .as_ref()
        .err()
        .is_some_and(|e| e.to_string().contains("address already in use"))
    {
        tracing::warn!("a control plane port was taken meanwhile; starting again on fresh ports");
        started = tokio::select! {
            r = crate::control_plane::ControlPlane::start(spec, &etcd) => r,
            _ = cancel.cancelled() => return Err(interrupted(report, "starting the control plane")),
        };
    }
    match started {
        Ok(cp) => {
            target.kube = Some(crate::target::KubeTarget {
                kubeconfig: cp.kubeconfig.clone(),
                scheduler: cp.has(crate::control_plane::Which::KubeScheduler),
                kwok: cp.has(crate::control_plane::Which::Kwok),
                controller_manager: cp.has(crate::control_plane::Which::KubeControllerManager),
            });
            report.control_plane = Some(cp.report());
            Ok(Some(cp))
        }
        Err(e) => {
            let kind = if e.is_usage() {
                ErrorKind::Usage
            } else {
                ErrorKind::Infrastructure
            };
            // What the API server wrote before another component failed is this run's: it goes
            // too (the control plane is stopped by now).
            if embedded.is_none() && !cfg.keep_keys {
                clean_prefix(target, report).await;
            }
            Err(stop_with(report, kind, e.to_string(), kind.outcome()))
        }
    }
}

/// Every member's `/metrics`, over the same TLS as the etcd connection: the given URLs, the
/// embedded members', or the cluster's own client URLs (etcd serves `/metrics` there). A member a
/// fault paused or stopped cannot answer: it is said so rather than waited for.
fn etcd_scraper(
    cfg: &RunConfig,
    target: &Target,
    embedded: &Option<crate::embedded::Shared>,
    report: &mut Report,
) -> Stage<Scraper> {
    let urls = if !cfg.metrics_urls.is_empty() {
        cfg.metrics_urls.clone()
    } else if let Some(e) = embedded {
        e.lock().expect("embedded lock").metrics_urls()
    } else {
        target.info.endpoints.clone()
    };
    let client = target.settings.http_client().map_err(|e| {
        stop_with(
            report,
            ErrorKind::Usage,
            e.to_string(),
            Outcome::ScriptError,
        )
    })?;
    let metrics = match embedded {
        Some(e) => {
            let e = e.clone();
            Scraper::new(client, urls).skipping(crate::actions::metrics::Skip(Arc::new(
                move |url: &str| {
                    let mut c = e.lock().ok()?;
                    let i = c.members().iter().position(|m| m.metrics_url == url)?;
                    let (m, _) = c.member_mut(i);
                    if m.is_paused() {
                        Some(format!(
                            "{} is paused by a fault (SIGSTOP): not scraped",
                            m.name
                        ))
                    } else if m.pid().is_none() {
                        // Never reaps a crashed member (`is_running` would): the step that
                        // reports the crash must still see it.
                        Some(format!("{} is stopped by a fault: not scraped", m.name))
                    } else {
                        m.died()
                            .map(|s| format!("{} has exited ({s}): not scraped", m.name))
                    }
                },
            )))
        }
        None => Scraper::new(client, urls),
    };
    if let Some(hub) = &cfg.live {
        hub.forward_server(metrics.clone());
    }
    Ok(metrics)
}

/// The control plane's components' `/metrics` and processes, for each step's `apiserver` view.
fn kube_scrapers(cp: &crate::control_plane::ControlPlane) -> Arc<KubeScrapers> {
    let url = |w| {
        cp.component(w)
            .map(|c: &crate::control_plane::Component| c.metrics_url.clone())
    };
    Arc::new(KubeScrapers {
        apiserver: Scraper::new(
            cp.http().clone(),
            url(crate::control_plane::Which::KubeApiserver)
                .into_iter()
                .collect(),
        ),
        scheduler: url(crate::control_plane::Which::KubeScheduler)
            .map(|u| Scraper::new(cp.http().clone(), vec![u])),
        pids: cp
            .components
            .iter()
            .filter_map(|c| Some((c.which.bin().to_string(), c.pid()?)))
            .collect(),
    })
}

/// The embedded members' names by their metrics URL (none for an external etcd).
fn member_names(target: &Target) -> HashMap<String, String> {
    target
        .embedded
        .as_ref()
        .map(|e| {
            e.lock()
                .expect("embedded lock")
                .members()
                .iter()
                .map(|m| (m.metrics_url.clone(), m.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes the run's keys under its prefix (a cluster scen did not start), within 30 s; says how
/// to remove them by hand when it cannot.
async fn clean_prefix(target: &Target, report: &mut Report) {
    let prefix = target.info.prefix.clone();
    let mut kv = crate::target::kv(&target.client);
    let del = kv.delete(
        prefix,
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    );
    match tokio::time::timeout(Duration::from_secs(30), del).await {
        Ok(Ok(r)) => {
            if let Some(t) = report.target.as_mut() {
                t.cleaned_up_keys = r.deleted();
            }
        }
        Ok(Err(e)) => tracing::warn!(
            "could not delete the run's keys under {}: {}; remove them with `etcdctl del --prefix {}`",
            target.info.prefix,
            crate::actions::etcd_message(&e),
            target.info.prefix
        ),
        Err(_) => tracing::warn!(
            "deleting the run's keys under {} timed out after 30s; remove them with `etcdctl del --prefix {}`",
            target.info.prefix,
            target.info.prefix
        ),
    }
}

/// A step whose history check found violations (`history: true`) fails the run like a threshold
/// (exit 1): an implicit `<step>.safety.passed == true`, unless the scenario wrote a threshold on
/// that step's `safety` itself (then that decides).
fn safety_verdicts(report: &mut Report) {
    let mut implicit = Vec::new();
    for s in &report.steps {
        let Some(safety) = s.record.field("safety").filter(Value::is_object) else {
            continue;
        };
        let own = format!("{}.safety", s.name);
        if report
            .thresholds
            .iter()
            .any(|t| t.expression.contains(&own))
        {
            continue;
        }
        let passed = safety.get("passed").and_then(Value::as_bool) == Some(true);
        let n = |k: &str| safety.get(k).and_then(Value::as_u64).unwrap_or(0);
        implicit.push(ThresholdReport {
            expression: format!("{own}.passed == true"),
            abort_on_fail: false,
            status: if passed {
                ThresholdStatus::Passed
            } else {
                ThresholdStatus::Failed
            },
            observed: Some(f64::from(u8::from(passed))),
            limit: Some(1.0),
            message: if passed {
                format!(
                    "the history check passed: {} acknowledged writes and {} linearizable reads checked",
                    n("writes_acknowledged"),
                    n("reads_checked")
                )
            } else {
                format!(
                    "the history check failed: {} lost writes, {} stale reads, {} revision violations ({} writes, {} reads checked){}",
                    n("lost_writes"),
                    n("stale_reads"),
                    n("revision_violations"),
                    n("writes_acknowledged"),
                    n("reads_checked"),
                    safety
                        .get("violations")
                        .and_then(|v| v.get(0))
                        .and_then(Value::as_str)
                        .map(|v| format!(": {v}"))
                        .unwrap_or_default()
                )
            },
            location: "implicit: history: true (write a threshold on the step's safety to decide otherwise)".into(),
        });
    }
    report.thresholds.extend(implicit);
}

/// Records a run-level error (no position: the flags, etcd or the control plane) and gives back
/// the outcome to stop with.
fn stop_with(report: &mut Report, kind: ErrorKind, message: String, outcome: Outcome) -> Outcome {
    report.error = Some(ErrorInfo {
        kind,
        message,
        location: None,
        detail: None,
    });
    outcome
}

/// The etcd the embedded control plane stores in: `/registry` of an etcd scen started; on another,
/// under the run's prefix (so nothing outside it is written, and the prefix's cleanup removes it).
fn control_plane_etcd(target: &Target) -> crate::control_plane::EtcdFor {
    let s = &target.settings;
    let tls = (s.cacert.is_some() || s.cert.is_some())
        .then(|| (s.cacert.clone(), s.cert.clone(), s.key.clone()));
    crate::control_plane::EtcdFor {
        servers: target.info.endpoints.clone(),
        prefix: if target.info.embedded {
            "/registry".into()
        } else {
            format!("{}registry", target.info.prefix)
        },
        tls,
    }
}

/// Runs every item of the plan; returns the outcome so far (thresholds not yet counted).
/// What the steps of one run share.
#[derive(Clone, Copy)]
struct RunCtx<'a> {
    host: &'a Arc<Host>,
    plan: &'a Plan,
    cancel: &'a CancellationToken,
    stop: &'a CancellationToken,
    observer: &'a dyn Observer,
    metrics: &'a Arc<Scraper>,
    /// The embedded control plane's `/metrics`, for each step's `apiserver` view.
    kube: Option<&'a Arc<KubeScrapers>>,
    baseline: Option<&'a Value>,
    /// The embedded cluster, for its members' CPU and memory per step.
    embedded: Option<&'a crate::embedded::Shared>,
}

async fn run_steps(ctx: RunCtx<'_>, report: &mut Report) -> Outcome {
    let RunCtx {
        host,
        plan,
        cancel,
        stop,
        observer,
        metrics,
        ..
    } = ctx;
    let mut background: HashMap<String, JoinHandle<StepReport>> = HashMap::new();
    let mut outcome = Outcome::Passed;
    for item in &plan.items {
        if cancel.is_cancelled() {
            outcome = Outcome::Interrupted;
            break;
        }
        if stop.is_cancelled() {
            break;
        }
        let finished = match item {
            Item::Step(spec) if spec.background => {
                observer.step_started(&spec.name, true);
                background.insert(
                    spec.name.clone(),
                    spawn_step(
                        host,
                        spec,
                        plan,
                        metrics,
                        ctx.kube,
                        ctx.embedded.cloned(),
                        stop,
                    ),
                );
                continue;
            }
            Item::Step(spec) => {
                observer.step_started(&spec.name, false);
                let handle = spawn_step(
                    host,
                    spec,
                    plan,
                    metrics,
                    ctx.kube,
                    ctx.embedded.cloned(),
                    stop,
                );
                join_step(handle, spec).await
            }
            Item::Join { step, .. } => match background.remove(step) {
                Some(h) => {
                    let spec = plan
                        .steps()
                        .find(|s| &s.name == step)
                        .expect("joined step exists");
                    join_step(h, spec).await
                }
                None => continue, // already joined
            },
        };
        if let Some(o) = settle(ctx, report, finished) {
            outcome = o;
            break;
        }
    }
    // Stop or wait for what is still running in the background.
    if outcome != Outcome::Passed || stop.is_cancelled() {
        stop.cancel();
    }
    let mut rest: Vec<_> = background.into_iter().collect();
    rest.sort_by_key(|(name, _)| plan.steps().position(|s| &s.name == name));
    for (name, h) in rest {
        let spec = plan
            .steps()
            .find(|s| s.name == name)
            .expect("background step exists");
        let finished = join_step(h, spec).await;
        if let Some(o) = settle(ctx, report, finished) {
            if outcome == Outcome::Passed {
                outcome = o;
            }
        }
    }
    if cancel.is_cancelled() {
        outcome = Outcome::Interrupted;
    }
    outcome
}

/// Records a finished step; returns the outcome when the run must stop.
fn settle(ctx: RunCtx<'_>, report: &mut Report, step: StepReport) -> Option<Outcome> {
    let RunCtx {
        host,
        plan,
        cancel,
        stop,
        observer,
        baseline,
        ..
    } = ctx;
    observer.step_finished(&step);
    if step.status == StepStatus::Passed {
        host.store_record(
            &step.name,
            crate::script::StepRecord {
                value: step.record.to_value(),
                action: step.action.clone(),
                field_actions: step.field_actions.clone(),
            },
        );
    }
    let spec = plan
        .steps()
        .find(|s| s.name == step.name)
        .expect("step in plan");
    let failed = step.status == StepStatus::Failed && !spec.continue_on_error;
    let interrupted = step.status == StepStatus::Interrupted;
    let kind = step.error.as_ref().map_or(ErrorKind::Script, |e| e.kind);
    let name = step.name.clone();
    let msg = step
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    if let Some(slot) = report.steps.iter_mut().find(|s| s.name == step.name) {
        *slot = step;
    }
    observer.snapshot(report);
    if interrupted && cancel.is_cancelled() {
        report.stopped_early.get_or_insert(StoppedEarly {
            step: Some(name),
            reason: "interrupted (SIGINT/SIGTERM)".into(),
        });
        return Some(Outcome::Interrupted);
    }
    if interrupted {
        // Stopped by an abort elsewhere: the abort has already been recorded.
        return None;
    }
    if failed {
        report.stopped_early.get_or_insert(StoppedEarly {
            step: Some(name),
            reason: format!("step failed: {msg}"),
        });
        return Some(kind.outcome());
    }
    // Thresholds marked abort_on_fail are checked as soon as the steps they read are done.
    if evaluate_thresholds(plan, report, true, baseline) {
        let failed: Vec<_> = report
            .thresholds
            .iter()
            .filter(|t| t.abort_on_fail && t.status.is_failure())
            .map(|t| t.expression.clone())
            .collect();
        report.stopped_early.get_or_insert(StoppedEarly {
            step: None,
            reason: format!("abort_on_fail threshold failed: {}", failed.join("; ")),
        });
        stop.cancel();
        return Some(Outcome::ThresholdsFailed);
    }
    None
}

/// Evaluates the thresholds whose steps have all passed and that are still undecided (only the
/// `abort_on_fail` ones when `only_abort`). Returns true when an `abort_on_fail` threshold failed.
/// What thresholds read: each passed step's record (plus its `duration_ms`), by step name.
pub fn step_view(steps: &[StepReport]) -> Value {
    let mut root = serde_json::Map::new();
    for s in steps.iter().filter(|s| s.status == StepStatus::Passed) {
        let mut rec = s.record.to_value();
        if let Value::Object(m) = &mut rec {
            m.entry("duration_ms").or_insert(json!(s.duration_ms));
        }
        root.insert(s.name.clone(), rec);
    }
    Value::Object(root)
}

fn evaluate_thresholds(
    plan: &Plan,
    report: &mut Report,
    only_abort: bool,
    baseline: Option<&Value>,
) -> bool {
    let root = step_view(&report.steps);
    let mut aborted = false;
    for (planned, out) in plan.thresholds.iter().zip(report.thresholds.iter_mut()) {
        let t = &planned.threshold;
        if out.status != ThresholdStatus::NotEvaluated || (only_abort && !t.abort_on_fail) {
            continue;
        }
        let steps = t.steps();
        let pending: Vec<_> = steps
            .iter()
            .filter(|s| root.get(s.as_str()).is_none())
            .collect();
        if !pending.is_empty() {
            if !only_abort {
                let names: Vec<_> = pending.iter().map(|s| format!("`{s}`")).collect();
                out.message = format!("not evaluated: step {} did not complete", names.join(", "));
            }
            continue;
        }
        match t.evaluate(&root, baseline) {
            Ok(v) => {
                out.status = match (&v.inconclusive, t.interpolate, v.passed) {
                    (Some(_), false, _) => ThresholdStatus::Inconclusive,
                    (_, _, true) => ThresholdStatus::Passed,
                    (_, _, false) => ThresholdStatus::Failed,
                };
                out.observed = Some(v.observed);
                out.limit = Some(v.limit);
                out.message = match (&v.inconclusive, t.interpolate) {
                    (Some(why), false) => format!(
                        "inconclusive: {}; {why} (pass `interpolate: true` to decide by the interpolation, or set the limit on a bucket bound)",
                        v.summary
                    ),
                    (Some(why), true) => {
                        format!("{}; decided by interpolation: {why}", v.summary)
                    }
                    (None, _) => v.summary,
                };
            }
            Err(e @ crate::threshold::EvalError::NoData { .. }) if t.no_data_passes => {
                out.status = ThresholdStatus::Passed;
                out.message = format!("{e} (passes: the threshold says no_data: \"pass\")");
            }
            Err(e @ crate::threshold::EvalError::NoData { .. }) => {
                out.status = ThresholdStatus::NoData;
                out.message = e.to_string();
            }
            Err(e) => {
                out.status = ThresholdStatus::Error;
                out.message = e.to_string();
            }
        }
        aborted |= t.abort_on_fail && out.status != ThresholdStatus::Passed;
    }
    aborted
}

/// Starts a step: the closure on a blocking thread (Rhai is synchronous), bracketed by scrapes of
/// every member's metrics so the record gets the server's view of this step alone (`server`).
fn spawn_step(
    host: &Arc<Host>,
    spec: &StepSpec,
    plan: &Plan,
    metrics: &Arc<Scraper>,
    kube: Option<&Arc<KubeScrapers>>,
    embedded: Option<crate::embedded::Shared>,
    stop: &CancellationToken,
) -> JoinHandle<StepReport> {
    let metrics = metrics.clone();
    let kube = kube.cloned();
    let blocking = call_step(host, spec, plan);
    let spec = spec.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        // `at:` — wait for the step's moment (an interrupt ends the wait).
        if let Some(at) = spec.at {
            tokio::select! {
                _ = tokio::time::sleep(at) => {}
                _ = stop.cancelled() => {
                    // The run stopped before the step's moment came: it never started.
                    return StepReport {
                        name: spec.name.clone(),
                        background: spec.background,
                        status: StepStatus::Skipped,
                        started_at: None,
                        duration_ms: 0.0,
                        error: None,
                        record: Record::empty(),
                        action: spec.action.clone(),
                        field_actions: spec.field_actions.clone(),
                    };
                }
            }
        }
        let (before, kube_before) = tokio::join!(metrics.scrape_all(), async {
            match &kube {
                Some(k) => Some(k.scrape().await),
                None => None,
            }
        });
        let probes = embedded
            .as_ref()
            .and_then(|e| e.lock().unwrap_or_else(|p| p.into_inner()).link_probes());
        let began = Instant::now();
        let pids = move || embedded.as_ref().map(crate::embedded::running_pids);
        let cpu_before = pids().map(|p| process::CpuMark::now(&p));
        let mut report = join_step(tokio::task::spawn_blocking(blocking), &spec).await;
        let ended = Instant::now();
        // The members' CPU and memory at the step's end, before waiting for etcd to settle (the
        // next step may restart a member meanwhile).
        let process_view = match (pids(), cpu_before) {
            (Some(now), Some(mark)) => Some(ProcessStep {
                cpu: mark.since(&now).as_secs_f64() * 1e3,
                rss_bytes: now.iter().filter_map(|p| process::rss(*p)).sum(),
                members: now.len(),
            }),
            _ => None,
        };
        let mut after = metrics.scrape_all().await;
        // etcd commits its backend on a timer (`--backend-batch-interval`, 100 ms by default):
        // the commit holding a step's last writes comes just after it, and belongs to it.
        if wrote(&before, &after) {
            tokio::time::sleep(BACKEND_SETTLE).await;
            after = metrics.scrape_all().await;
        }
        let mut server = server_step(&before, &after);
        let apiserver = match (&kube, &kube_before) {
            (Some(k), Some(b)) => Some(KubeScrapers::view(b, &k.scrape().await)),
            _ => None,
        };
        server.links = probes.map(|p| links_during(&p, began, ended));
        server.process = process_view;
        report
            .record
            .add("server", serde_json::to_value(server).unwrap_or_default());
        if let Some(view) = apiserver {
            report
                .record
                .add("apiserver", serde_json::to_value(view).unwrap_or_default());
        }
        report
    })
}

/// The blocking part of a step: call its closure and turn the outcome into a report entry.
fn call_step(
    host: &Arc<Host>,
    spec: &StepSpec,
    plan: &Plan,
) -> impl FnOnce() -> StepReport + Send + 'static {
    let host = host.clone();
    let spec = spec.clone();
    let params = plan.resolved.clone();
    move || {
        let started_at = Utc::now();
        let t0 = Instant::now();
        let deadline = spec.timeout.map(|d| t0 + d);
        let result = host.call_step(&spec, &params, deadline);
        let duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (status, error, record) = match result {
            Ok(record) => (StepStatus::Passed, None, record),
            Err(e) => {
                let status = if e.kind == ErrorKind::Interrupted {
                    StepStatus::Interrupted
                } else {
                    StepStatus::Failed
                };
                // A partial record is the failing action's; no record is what the plan expected.
                let record = match &e.record {
                    Some(value) => StepRecord {
                        value: value.clone(),
                        action: e.record_action.clone(),
                        field_actions: Default::default(),
                    },
                    None => StepRecord {
                        value: json!({}),
                        action: spec.action.clone(),
                        field_actions: spec.field_actions.clone(),
                    },
                };
                let mut info = error_info(&e);
                if e.kind == ErrorKind::StepTimeout {
                    info.message = format!(
                        "step `{}` ran past its timeout of {:?}",
                        spec.name,
                        spec.timeout.unwrap_or_default()
                    );
                }
                (status, Some(info), record)
            }
        };
        StepReport {
            name: spec.name.clone(),
            background: spec.background,
            status,
            started_at: Some(started_at),
            duration_ms,
            error,
            record: Record::of(record.action.as_deref(), record.value),
            action: record.action,
            field_actions: record.field_actions,
        }
    }
}

async fn join_step(h: JoinHandle<StepReport>, spec: &StepSpec) -> StepReport {
    match h.await {
        Ok(r) => r,
        Err(e) => StepReport {
            name: spec.name.clone(),
            background: spec.background,
            status: StepStatus::Failed,
            started_at: None,
            duration_ms: 0.0,
            error: Some(ErrorInfo {
                kind: ErrorKind::Infrastructure,
                message: format!("the step panicked: {e} (a bug in scen: please report it)"),
                location: None,
                detail: None,
            }),
            record: Record::empty(),
            action: spec.action.clone(),
            field_actions: spec.field_actions.clone(),
        },
    }
}

#[cfg(test)]
mod safety_tests {
    use super::*;

    fn report_with(safety: Value, thresholds: &[&str]) -> Report {
        let mut r: Report = serde_json::from_value(json!({
            "schema_version": SCHEMA_VERSION, "scen_version": "0", "run_id": "r",
            "scenario": { "name": "s", "description": "", "file": "s.rhai", "sha256": "" },
            "params": {}, "param_sources": {}, "target": null,
            "started_at": "2026-12-01T00:00:00Z", "finished_at": "2026-12-01T00:00:00Z",
            "duration_ms": 0.0, "outcome": "passed", "exit_code": 0, "stopped_early": null,
            "baseline": null, "error": null, "thresholds": [], "server_timeline": [],
            "compare_steps": [], "outputs": [],
            "steps": [{ "name": "load", "background": false, "status": "passed", "started_at": null,
                        "duration_ms": 1.0, "error": null, "record": { "safety": safety }, "action": null }],
        }))
        .unwrap();
        for t in thresholds {
            r.thresholds.push(ThresholdReport {
                expression: t.to_string(),
                abort_on_fail: false,
                status: ThresholdStatus::Passed,
                observed: None,
                limit: None,
                message: String::new(),
                location: String::new(),
            });
        }
        r
    }

    #[test]
    fn a_failed_history_check_fails_the_run_like_a_threshold() {
        let mut r = report_with(
            json!({ "passed": false, "lost_writes": 793, "writes_acknowledged": 5000, "reads_checked": 10,
                    "violations": ["put k=7 acknowledged at rev 12 is not in the history"] }),
            &[],
        );
        safety_verdicts(&mut r);
        assert_eq!(r.thresholds.len(), 1);
        let t = &r.thresholds[0];
        assert_eq!(t.status, ThresholdStatus::Failed);
        assert!(t.message.contains("793 lost writes"), "{}", t.message);
        assert_eq!(
            r.threshold_counts().1,
            1,
            "counts as a failed threshold: exit 1"
        );
        // A passed check is recorded as passed.
        let mut ok = report_with(json!({ "passed": true, "writes_acknowledged": 5 }), &[]);
        safety_verdicts(&mut ok);
        assert_eq!(ok.thresholds[0].status, ThresholdStatus::Passed);
    }

    #[test]
    fn a_threshold_of_the_scenarios_own_on_the_safety_decides() {
        let mut r = report_with(
            json!({ "passed": false, "lost_writes": 1 }),
            &["load.safety.lost_writes < 10"],
        );
        safety_verdicts(&mut r);
        assert_eq!(r.thresholds.len(), 1, "no implicit verdict added");
    }
}

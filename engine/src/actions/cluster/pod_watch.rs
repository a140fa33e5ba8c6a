//! Pods as the real scheduler and KWOK move them: one watch on every namespace, begun before the
//! first pod is created, notes when each of this run's pods was first seen, bound to a node and
//! Running — times taken as the events arrive (their resolution is the watch's delivery, not a
//! poll).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;

use super::apiserver::Env;
use crate::actions::{Error, Result};
use crate::measure::latency::{Distribution, Recorder};

/// What the scheduler and KWOK did with a simulation's pods.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PodsRecord {
    /// Pods created and followed.
    #[schemars(with = "crate::measure::Count")]
    pub created: u64,
    /// Pods bound to a node (by kube-scheduler when one runs).
    #[schemars(with = "crate::measure::Count")]
    pub scheduled: u64,
    /// Pods Running (by KWOK when it runs).
    #[schemars(with = "crate::measure::Count")]
    pub running: u64,
    /// From the simulation's start until the last pod was bound (ms); `null` when no scheduler
    /// runs or not every pod was bound.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub all_scheduled_ms: Option<f64>,
    /// From the simulation's start until the last pod was Running (ms); `null` when not every pod
    /// ran.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub all_running_ms: Option<f64>,
    /// Per pod, from its creation (its first watch event) until it was bound.
    pub schedule_latency: Distribution,
    /// Per pod, from its creation until Running: pod startup latency, ClusterLoader2's SLI.
    pub startup_latency: Distribution,
}

#[derive(Default)]
struct Seen {
    first: Option<Instant>,
    scheduled: Option<Instant>,
    running: Option<Instant>,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, Seen>,
    scheduled: u64,
    running: u64,
    error: Option<String>,
}

/// A watch on pods in `namespaces`, running until dropped.
pub struct PodWatch {
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    /// Starts watching (from now: resourceVersion "0" also lists what exists).
    pub fn start(client: kube::Client, namespaces: HashSet<String>) -> PodWatch {
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Pod"), "pods");
        let api: Api<DynamicObject> = Api::all_with(client, &ar);
        let (st, ch) = (state.clone(), changed.clone());
        let task = tokio::spawn(async move {
            let mut rv = "0".to_string();
            // A watch ends after the server's timeout; it is begun again from the last version seen.
            loop {
                let stream = match api.watch(&WatchParams::default().timeout(290), &rv).await {
                    Ok(s) => s,
                    Err(e) => {
                        st.lock().expect("watch lock").error = Some(e.to_string());
                        ch.notify_waiters();
                        return;
                    }
                };
                let mut stream = stream.boxed();
                loop {
                    let ev = match stream.try_next().await {
                        Ok(Some(ev)) => ev,
                        Ok(None) => break,
                        Err(e) => {
                            st.lock().expect("watch lock").error = Some(e.to_string());
                            ch.notify_waiters();
                            return;
                        }
                    };
                    let obj = match ev {
                        WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
                        WatchEvent::Bookmark(b) => {
                            rv = b.metadata.resource_version;
                            continue;
                        }
                        WatchEvent::Deleted(_) => continue,
                        WatchEvent::Error(e) if e.code == 410 => {
                            // Too old: start over from the current state.
                            rv = "0".into();
                            break;
                        }
                        WatchEvent::Error(e) => {
                            st.lock().expect("watch lock").error = Some(e.message);
                            ch.notify_waiters();
                            return;
                        }
                    };
                    if let Some(v) = &obj.metadata.resource_version {
                        rv = v.clone();
                    }
                    let ns = obj.metadata.namespace.clone().unwrap_or_default();
                    if !namespaces.contains(&ns) {
                        continue;
                    }
                    let now = Instant::now();
                    let name = format!("{ns}/{}", obj.metadata.name.clone().unwrap_or_default());
                    let bound = obj.data["spec"]["nodeName"]
                        .as_str()
                        .is_some_and(|n| !n.is_empty());
                    let running = obj.data["status"]["phase"] == "Running";
                    let mut s = st.lock().expect("watch lock");
                    let seen = s.pods.entry(name).or_default();
                    seen.first.get_or_insert(now);
                    let (mut newly_bound, mut newly_running) = (false, false);
                    if bound && seen.scheduled.is_none() {
                        seen.scheduled = Some(now);
                        newly_bound = true;
                    }
                    if running && seen.running.is_none() {
                        seen.running = Some(now);
                        newly_running = true;
                    }
                    s.scheduled += newly_bound as u64;
                    s.running += newly_running as u64;
                    drop(s);
                    if newly_bound || newly_running {
                        ch.notify_waiters();
                    }
                }
            }
        });
        PodWatch {
            state,
            changed,
            task,
        }
    }

    /// Waits, at most `timeout`, until `done` finds what it waits for in the watch's state; the
    /// watch failing, or the time running out (`late` says how far it got), fails the step.
    async fn wait<T>(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> Option<T>,
        late: impl FnOnce(&State) -> String,
    ) -> Result<T> {
        let failed = |message: String| Error::Failed {
            kind: crate::exit::ErrorKind::Infrastructure,
            message,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let s = self.state.lock().expect("watch lock");
                if let Some(e) = &s.error {
                    return Err(failed(format!("the watch on pods failed: {e}")));
                }
                if let Some(t) = done(&s) {
                    return Ok(t);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let s = self.state.lock().expect("watch lock");
                return Err(failed(late(&s)));
            }
        }
    }

    /// Waits until the pod `ns/name` is bound to a node (or, with `running`, Running), at most
    /// `timeout`.
    pub async fn wait_pod(&self, key: &str, running: bool, timeout: Duration) -> Result<()> {
        self.wait(
            timeout,
            |s| {
                s.pods
                    .get(key)
                    .is_some_and(|p| {
                        if running {
                            p.running.is_some()
                        } else {
                            p.scheduled.is_some()
                        }
                    })
                    .then_some(())
            },
            |_| {
                format!(
                    "{key} was not {} within {timeout:?}: check the {} log",
                    if running {
                        "Running"
                    } else {
                        "bound to a node"
                    },
                    if running { "kwok" } else { "kube-scheduler" }
                )
            },
        )
        .await
    }

    /// Waits until `pods` pods are bound (when a scheduler runs) and Running (when KWOK runs), at
    /// most `timeout`; then the record. Not getting there in time fails the step (the control
    /// plane did not keep up), naming how far it got.
    pub async fn wait_for(
        &self,
        pods: u64,
        env: Env,
        started: Instant,
        timeout: Duration,
    ) -> Result<PodsRecord> {
        self.wait(
            timeout,
            |s| {
                ((!env.scheduler || s.scheduled >= pods) && (!env.kwok || s.running >= pods))
                    .then(|| record(s, pods, started))
            },
            |s| {
                format!(
                    "after {timeout:?}, {} of {pods} pods were bound to a node and {} Running{}{}: \
                     the control plane did not keep up (raise `wait`, or check the scheduler's and kwok's logs)",
                    s.scheduled,
                    s.running,
                    if env.scheduler { "" } else { " (no scheduler: scen bound them)" },
                    if env.kwok { "" } else { " (no KWOK: scen set them Running)" },
                )
            },
        )
        .await
    }
}

fn record(s: &State, pods: u64, started: Instant) -> PodsRecord {
    let (mut sched, mut startup) = (Recorder::default(), Recorder::default());
    let (mut last_sched, mut last_run) = (None::<Instant>, None::<Instant>);
    for seen in s.pods.values() {
        let Some(first) = seen.first else { continue };
        if let Some(t) = seen.scheduled {
            sched.record(t.saturating_duration_since(first));
            last_sched = last_sched.max(Some(t));
        }
        if let Some(t) = seen.running {
            startup.record(t.saturating_duration_since(first));
            last_run = last_run.max(Some(t));
        }
    }
    let ms = |t: Option<Instant>, n: u64| {
        t.filter(|_| n >= pods && pods > 0)
            .map(|t| t.saturating_duration_since(started).as_secs_f64() * 1e3)
    };
    PodsRecord {
        created: pods,
        scheduled: s.scheduled,
        running: s.running,
        all_scheduled_ms: ms(last_sched, s.scheduled),
        all_running_ms: ms(last_run, s.running),
        schedule_latency: sched.summary(),
        startup_latency: startup.summary(),
    }
}

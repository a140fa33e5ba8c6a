//! What the embedded control plane itself saw during one step (`<step>.apiserver`): request
//! latency by resource and verb, requests by code, its etcd requests, stored objects, in-flight
//! and throttled requests, and the scheduler's pod scheduling SLI — from kube-apiserver's and
//! kube-scheduler's `/metrics` scraped before and after the step, as the etcd server view is.
//! Quantiles come from their histograms' buckets, which are kept, so a figure's resolution is
//! known.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics::{delta_sel, gauge_max_sel, label_groups, window_sel, ClusterScrape, Scraper};
use crate::measure::latency::Distribution;

/// The scrapers of the embedded control plane: kube-apiserver's `/metrics`, and kube-scheduler's
/// when it runs.
#[derive(Debug, Clone)]
pub struct KubeScrapers {
    /// kube-apiserver.
    pub apiserver: Scraper,
    /// kube-scheduler.
    pub scheduler: Option<Scraper>,
    /// Every component's process (`kube-apiserver`, `kwok`...), for its CPU during a step; scen's
    /// own process is added as `scen`.
    pub pids: Vec<(String, u32)>,
}

/// Both scrapes at one moment, and the processes' CPU times.
pub struct KubeScrape(
    ClusterScrape,
    Option<ClusterScrape>,
    Vec<(String, u32)>,
    crate::measure::process::CpuMark,
);

impl KubeScrapers {
    /// Scrapes both at once.
    pub async fn scrape(&self) -> KubeScrape {
        let sched = async {
            match &self.scheduler {
                Some(s) => Some(s.scrape_all().await),
                None => None,
            }
        };
        let (a, s) = tokio::join!(self.apiserver.scrape_all(), sched);
        let mut pids = self.pids.clone();
        pids.push(("scen".into(), std::process::id()));
        let only: Vec<u32> = pids.iter().map(|(_, p)| *p).collect();
        let mark = crate::measure::process::CpuMark::now(&only);
        KubeScrape(a, s, pids, mark)
    }

    /// The step's view between two scrapes.
    pub fn view(before: &KubeScrape, after: &KubeScrape) -> ApiserverStep {
        let sched = match (&before.1, &after.1) {
            (Some(b), Some(a)) => Some((b, a)),
            _ => None,
        };
        let mut view = apiserver_step(&before.0, &after.0, sched);
        for (name, pid) in &after.2 {
            let cpu = before.3.since(&[*pid]);
            let Some(rss) = crate::measure::process::rss(*pid) else {
                continue;
            };
            view.processes.insert(
                name.clone(),
                ComponentProcess {
                    cpu: cpu.as_secs_f64() * 1e3,
                    rss_bytes: rss,
                },
            );
        }
        view
    }
}

/// The control plane's own view of one step.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ApiserverStep {
    /// Why figures are missing (kube-apiserver not scraped before or after the step); `null`
    /// when it was.
    pub no_data: Option<String>,
    /// `apiserver_request_duration_seconds` during the step, by resource (`pods`,
    /// `pods/binding` for a subresource) and verb (`create`, `get`, `list`, `update`, `patch`,
    /// `delete`; watches and connects are long-running and left out, as ClusterLoader2 does).
    pub request_latency: BTreeMap<String, BTreeMap<String, Distribution>>,
    /// `apiserver_request_total` during the step, by HTTP code.
    #[schemars(with = "BTreeMap<String, crate::measure::Count>")]
    pub requests_by_code: BTreeMap<String, f64>,
    /// Requests throttled with 429 during the step (API Priority and Fairness, max in-flight).
    #[schemars(with = "Option<crate::measure::Count>", extend("x-better" = "lower"))]
    pub rejected: Option<f64>,
    /// `etcd_request_duration_seconds` during the step: the API server's calls into etcd, by
    /// resource and operation (`create`, `get`, `list`, `update`, `delete`...; the lab's step 15).
    pub etcd_request_latency: BTreeMap<String, BTreeMap<String, Distribution>>,
    /// Objects stored, by resource, as the API server last counted them before the step ended
    /// (`apiserver_resource_objects`, or `apiserver_storage_objects` on older servers). It
    /// recounts about once a minute, so a short step may still show the count from before it.
    #[schemars(with = "BTreeMap<String, crate::measure::Count>")]
    pub stored_objects: BTreeMap<String, f64>,
    /// Requests in flight after the step, by kind (`readOnly`, `mutating`).
    #[schemars(with = "BTreeMap<String, crate::measure::Count>")]
    pub inflight: BTreeMap<String, f64>,
    /// The scheduler's view, when kube-scheduler runs.
    pub scheduler: Option<SchedulerStep>,
    /// Each component's process during the step (`kube-apiserver`, `kube-scheduler`, `kwok`...),
    /// and `scen`'s own (the whole scen process: every step running at the time).
    pub processes: BTreeMap<String, ComponentProcess>,
}

/// One process's CPU during a step and memory after it.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ComponentProcess {
    /// CPU time (user + system) during the step.
    #[schemars(with = "crate::measure::Ms")]
    pub cpu: f64,
    /// Resident memory after the step.
    #[schemars(with = "crate::measure::Bytes")]
    pub rss_bytes: u64,
}

/// What kube-scheduler saw during one step.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SchedulerStep {
    /// `scheduler_pod_scheduling_sli_duration_seconds`: from a pod entering the scheduling queue
    /// until it was bound (all attempts).
    pub pod_scheduling_sli: Distribution,
    /// `scheduler_schedule_attempts_total` during the step, by result (`scheduled`,
    /// `unschedulable`, `error`).
    #[schemars(with = "BTreeMap<String, crate::measure::Count>")]
    pub attempts: BTreeMap<String, f64>,
}

/// An HTTP verb of the API server's metrics as a ClusterLoader2-style verb; `None` for the
/// long-running ones.
fn verb(v: &str) -> Option<&'static str> {
    Some(match v {
        "POST" | "CREATE" => "create",
        "GET" => "get",
        "LIST" => "list",
        "PUT" | "UPDATE" => "update",
        "PATCH" | "APPLY" => "patch",
        "DELETE" => "delete",
        "DELETECOLLECTION" => "deletecollection",
        _ => return None,
    })
}

/// The view from a scrape of kube-apiserver (and of kube-scheduler, when it runs) before and
/// after the step.
pub fn apiserver_step(
    before: &ClusterScrape,
    after: &ClusterScrape,
    scheduler: Option<(&ClusterScrape, &ClusterScrape)>,
) -> ApiserverStep {
    let scraped = |s: &ClusterScrape| !s.members.is_empty() && s.failed.is_empty();
    if !scraped(before) || !scraped(after) {
        let why: Vec<String> = before
            .failed
            .iter()
            .map(|(u, e)| format!("{u}: {e} (before the step)"))
            .chain(
                after
                    .failed
                    .iter()
                    .map(|(u, e)| format!("{u}: {e} (after the step)")),
            )
            .collect();
        return ApiserverStep {
            no_data: Some(if why.is_empty() {
                "kube-apiserver's /metrics was not scraped".into()
            } else {
                why.join("; ")
            }),
            ..Default::default()
        };
    }
    let mut request_latency: BTreeMap<String, BTreeMap<String, Distribution>> = BTreeMap::new();
    let name = "apiserver_request_duration_seconds";
    for g in label_groups(after, name, &["resource", "subresource", "verb"]) {
        let (resource, sub, v) = (&g[0], &g[1], &g[2]);
        let Some(v2) = verb(v) else { continue };
        // Dry runs (scen's own warm-up of a CRD it registered) are not requests of the workload.
        let d = window_sel(
            before,
            after,
            name,
            &[
                ("resource", resource),
                ("subresource", sub),
                ("verb", v),
                ("dry_run", ""),
            ],
        );
        if d.count == 0 {
            continue;
        }
        let key = if sub.is_empty() {
            resource.clone()
        } else {
            format!("{resource}/{sub}")
        };
        request_latency
            .entry(key)
            .or_default()
            .insert(v2.to_string(), d);
    }
    // Servers without the subresource label.
    if request_latency.is_empty() {
        for g in label_groups(after, name, &["resource", "verb"]) {
            let Some(v2) = verb(&g[1]) else { continue };
            let d = window_sel(before, after, name, &[("resource", &g[0]), ("verb", &g[1])]);
            if d.count > 0 {
                request_latency
                    .entry(g[0].clone())
                    .or_default()
                    .insert(v2.into(), d);
            }
        }
    }
    let mut requests_by_code = BTreeMap::new();
    for g in label_groups(after, "apiserver_request_total", &["code"]) {
        if let Some(n) = delta_sel(before, after, "apiserver_request_total", &[("code", &g[0])]) {
            if n > 0.0 {
                requests_by_code.insert(g[0].clone(), n);
            }
        }
    }
    let rejected = Some(requests_by_code.get("429").copied().unwrap_or(0.0));
    let mut etcd_request_latency: BTreeMap<String, BTreeMap<String, Distribution>> =
        BTreeMap::new();
    let name = "etcd_request_duration_seconds";
    // Labelled `resource` (since 1.30), `type` before.
    for by in ["resource", "type"] {
        for g in label_groups(after, name, &[by, "operation"]) {
            let d = window_sel(before, after, name, &[(by, &g[0]), ("operation", &g[1])]);
            if d.count > 0 {
                etcd_request_latency
                    .entry(g[0].clone())
                    .or_default()
                    .insert(g[1].clone(), d);
            }
        }
        if !etcd_request_latency.is_empty() {
            break;
        }
    }
    let mut stored_objects = BTreeMap::new();
    for family in ["apiserver_resource_objects", "apiserver_storage_objects"] {
        for g in label_groups(after, family, &["resource"]) {
            if let Some(v) = gauge_max_sel(after, family, &[("resource", &g[0])]) {
                // A negative value means "not known yet" (the cache is not primed).
                if v >= 0.0 {
                    stored_objects.entry(g[0].clone()).or_insert(v);
                }
            }
        }
        if !stored_objects.is_empty() {
            break;
        }
    }
    let mut inflight = BTreeMap::new();
    for g in label_groups(
        after,
        "apiserver_current_inflight_requests",
        &["request_kind"],
    ) {
        if let Some(v) = gauge_max_sel(
            after,
            "apiserver_current_inflight_requests",
            &[("request_kind", &g[0])],
        ) {
            inflight.insert(g[0].clone(), v);
        }
    }
    let scheduler = scheduler.map(|(b, a)| {
        let mut attempts = BTreeMap::new();
        for g in label_groups(a, "scheduler_schedule_attempts_total", &["result"]) {
            if let Some(n) = delta_sel(
                b,
                a,
                "scheduler_schedule_attempts_total",
                &[("result", &g[0])],
            ) {
                attempts.insert(g[0].clone(), n);
            }
        }
        SchedulerStep {
            pod_scheduling_sli: window_sel(
                b,
                a,
                "scheduler_pod_scheduling_sli_duration_seconds",
                &[],
            ),
            attempts,
        }
    });
    ApiserverStep {
        no_data: None,
        request_latency,
        requests_by_code,
        rejected,
        etcd_request_latency,
        stored_objects,
        inflight,
        scheduler,
        processes: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::metrics::MemberScrape;

    fn scrape(text: &str) -> ClusterScrape {
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        ClusterScrape {
            members: vec![MemberScrape {
                url: "https://127.0.0.1:6443".into(),
                scrape,
            }],
            failed: vec![],
        }
    }

    fn hist(resource: &str, verb: &str, fast: u32, slow: u32) -> String {
        let l = format!("resource=\"{resource}\",subresource=\"\",verb=\"{verb}\"");
        format!(
            "apiserver_request_duration_seconds_bucket{{{l},le=\"0.005\"}} {fast}\n\
             apiserver_request_duration_seconds_bucket{{{l},le=\"1\"}} {}\n\
             apiserver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}\n\
             apiserver_request_duration_seconds_sum{{{l}}} 1\n\
             apiserver_request_duration_seconds_count{{{l}}} {}\n",
            fast + slow,
            fast + slow,
            fast + slow
        )
    }

    #[test]
    fn latency_by_resource_and_verb_comes_from_the_step_window() {
        let head = "# TYPE apiserver_request_duration_seconds histogram\n# TYPE apiserver_request_total counter\n";
        let before = scrape(&format!(
            "{head}{}{}apiserver_request_total{{code=\"201\"}} 10\n",
            hist("pods", "POST", 10, 0),
            hist("pods", "WATCH", 1, 0)
        ));
        let after = scrape(&format!(
            "{head}{}{}apiserver_request_total{{code=\"201\"}} 30\napiserver_request_total{{code=\"429\"}} 2\n",
            hist("pods", "POST", 10, 20),
            hist("pods", "WATCH", 5, 0)
        ));
        let v = apiserver_step(&before, &after, None);
        assert_eq!(v.no_data, None);
        let create = &v.request_latency["pods"]["create"];
        assert_eq!(create.count, 20, "only the step's requests");
        // Every one of them is in the (5 ms, 1 s] bucket.
        assert!(
            create.p50.unwrap() > 5.0 && create.p99.unwrap() <= 1000.0,
            "{create:?}"
        );
        assert!(
            create.buckets.is_some(),
            "the buckets are kept: the resolution is known"
        );
        assert!(
            !v.request_latency["pods"].contains_key("watch"),
            "long-running left out"
        );
        assert_eq!(v.requests_by_code["201"], 20.0);
        assert_eq!(
            v.requests_by_code["429"], 2.0,
            "a code first seen during the step"
        );
        assert_eq!(v.rejected, Some(2.0));
    }

    #[test]
    fn an_unscraped_api_server_is_no_data_not_zero() {
        let mut after = scrape("");
        after.members.clear();
        after
            .failed
            .push(("https://127.0.0.1:1".into(), "connection refused".into()));
        let v = apiserver_step(&scrape(""), &after, None);
        assert!(v.no_data.unwrap().contains("connection refused"));
        assert_eq!(v.rejected, None);
        assert!(v.request_latency.is_empty());
    }
}

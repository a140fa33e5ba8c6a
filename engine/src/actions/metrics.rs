//! Server-side figures from etcd's Prometheus `/metrics`: scrapes of every member, and the server's
//! view of one step alone — quantiles from the difference of cumulative histogram buckets between a
//! scrape before and a scrape after the step (what PromQL's `histogram_quantile` over the step's
//! window gives), counter deltas and gauges after. No Prometheus server needed.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde::Serialize;

use crate::measure::latency::{bucket_quantile, Distribution};

/// One member's parsed metrics.
#[derive(Debug, Clone)]
pub struct MemberScrape {
    /// The URL scraped.
    pub url: String,
    /// What it returned.
    pub scrape: Scrape,
}

/// Scrapes of all members at one moment; members that failed are listed with the reason.
#[derive(Debug, Clone, Default)]
pub struct ClusterScrape {
    /// Members that answered.
    pub members: Vec<MemberScrape>,
    /// `(url, error)` for members that did not.
    pub failed: Vec<(String, String)>,
}

/// Where and how a run scrapes `/metrics`: every member's URL and one HTTP client with the same
/// TLS settings as the etcd connection (so an `https://` cluster's metrics need no extra flags).
#[derive(Debug, Clone, Default)]
pub struct Scraper {
    client: reqwest::Client,
    /// One URL per member: its client URL, or a metrics URL (`--metrics-urls`).
    pub urls: Vec<String>,
    /// Members known not to answer (paused or stopped by a fault on a cluster scen started):
    /// skipped with the reason instead of costing a timeout at every step's edge.
    skip: Option<Skip>,
}

/// Says why the member at a metrics URL is not to be scraped now (`None`: scrape it).
pub type SkipFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Why a member's URL is not scraped now.
#[derive(Clone)]
pub struct Skip(pub std::sync::Arc<SkipFn>);

impl std::fmt::Debug for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Skip")
    }
}

impl Scraper {
    /// A scraper of `urls` with `client`.
    pub fn new(client: reqwest::Client, urls: Vec<String>) -> Self {
        Scraper {
            client,
            urls,
            skip: None,
        }
    }

    /// The same, skipping the members `skip` says are down.
    pub fn skipping(mut self, skip: Skip) -> Self {
        self.skip = Some(skip);
        self
    }

    /// GETs `<url>/metrics` (or `url` itself when it already ends in `/metrics`) within 2 s.
    async fn fetch(&self, base: &str) -> Result<String, String> {
        let url = if base.trim_end_matches('/').ends_with("/metrics") {
            base.to_string()
        } else {
            format!("{}/metrics", base.trim_end_matches('/'))
        };
        // Loopback or a LAN: a member that cannot answer in 2 s is hung (or paused by a fault).
        let resp = self
            .client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| describe_http_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        resp.text().await.map_err(|e| describe_http_error(&e))
    }

    /// Scrapes every member at once: one hung member costs one timeout, not one per member.
    pub async fn scrape_all(&self) -> ClusterScrape {
        let mut out = ClusterScrape::default();
        let fetched = futures_util::future::join_all(self.urls.iter().map(|u| async move {
            match self.skip.as_ref().and_then(|s| (s.0)(u)) {
                Some(why) => Err(why),
                None => self.fetch(u).await,
            }
        }))
        .await;
        for (url, result) in self.urls.iter().zip(fetched) {
            match result {
                Ok(text) => match Scrape::parse(text.lines().map(|l| Ok(l.to_string()))) {
                    Ok(scrape) => out.members.push(MemberScrape {
                        url: url.clone(),
                        scrape,
                    }),
                    Err(e) => out
                        .failed
                        .push((url.clone(), format!("not Prometheus text: {e}"))),
                },
                Err(e) => out.failed.push((url.clone(), e)),
            }
        }
        out
    }
}

/// An HTTP failure as a person reads it: the cause chain, not reqwest's debug text.
fn describe_http_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out after 2s".into();
    }
    super::error_chain(e)
}

/// Options of `metrics::scrape`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeOptions {
    /// Only these metric names.
    pub names: Option<Vec<String>>,
    /// Only metric names starting with this.
    pub prefix: Option<String>,
}

/// One sample of a metric family.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// The value (counters, gauges, untyped); the observation count for histograms and summaries.
    pub value: f64,
    /// Histogram buckets: upper bound (`null` for +Inf) and cumulative count.
    pub buckets: Vec<Bucket>,
}

/// One cumulative histogram bucket.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Bucket {
    /// Upper bound in the metric's unit; `null` is +Inf.
    pub le: Option<f64>,
    /// Observations at or below it.
    pub count: f64,
}

/// One member's metrics.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MemberMetrics {
    /// The URL scraped.
    pub url: String,
    /// Whether the scrape worked.
    pub ok: bool,
    /// Why it did not.
    pub error: Option<String>,
    /// Samples by metric name.
    pub metrics: BTreeMap<String, Vec<Sample>>,
}

/// The record of `metrics::scrape`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ScrapeRecord {
    /// Per member.
    pub members: Vec<MemberMetrics>,
    /// Metric families kept (first member).
    pub families: usize,
}

/// Scrapes every member and returns their samples, filtered by name or prefix.
pub async fn scrape(scraper: &Scraper, opts: &ScrapeOptions) -> ScrapeRecord {
    let all = scraper.scrape_all().await;
    let keep = |name: &str| {
        opts.names
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == name))
            && opts
                .prefix
                .as_ref()
                .is_none_or(|p| name.starts_with(p.as_str()))
    };
    let mut members: Vec<MemberMetrics> = all
        .members
        .iter()
        .map(|m| {
            let mut metrics: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
            for x in m.scrape.samples.iter().filter(|x| keep(&x.metric)) {
                let labels: BTreeMap<String, String> = x
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let (kind, value, buckets) = match &x.value {
                    Value::Counter(v) => ("counter", *v, vec![]),
                    Value::Gauge(v) => ("gauge", *v, vec![]),
                    Value::Untyped(v) => ("untyped", *v, vec![]),
                    Value::Histogram(hs) => (
                        "histogram",
                        hs.iter().map(|h| h.count).fold(0.0, f64::max),
                        hs.iter()
                            .map(|h| Bucket {
                                le: h.less_than.is_finite().then_some(h.less_than),
                                count: h.count,
                            })
                            .collect(),
                    ),
                    Value::Summary(ss) => ("summary", ss.len() as f64, vec![]),
                };
                metrics.entry(x.metric.clone()).or_default().push(Sample {
                    labels,
                    kind: kind.into(),
                    value,
                    buckets,
                });
            }
            MemberMetrics {
                url: m.url.clone(),
                ok: true,
                error: None,
                metrics,
            }
        })
        .collect();
    members.extend(all.failed.into_iter().map(|(url, e)| MemberMetrics {
        url,
        ok: false,
        error: Some(e),
        metrics: BTreeMap::new(),
    }));
    let families = members.first().map_or(0, |m| m.metrics.len());
    ScrapeRecord { members, families }
}

/// Label values a sample must have (`[("verb", "POST")]`); empty: every sample.
pub(crate) type Sel<'a> = &'a [(&'a str, &'a str)];

/// Whether `sample` has the labels `sel` asks for; as in PromQL, `label=""` also matches a
/// sample without that label.
fn selected(sample: &prometheus_parse::Sample, sel: Sel) -> bool {
    sel.iter().all(|(k, v)| match sample.labels.get(k) {
        Some(x) => x == *v,
        None => v.is_empty(),
    })
}

/// The distinct values of `labels` on the samples of `name` (and `name_bucket`) in any member
/// of `scrape`: the groups a by-label view has.
pub(crate) fn label_groups(
    scrape: &ClusterScrape,
    name: &str,
    labels: &[&str],
) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in &scrape.members {
        for sample in &m.scrape.samples {
            if sample.metric != name && sample.metric != format!("{name}_bucket") {
                continue;
            }
            let key: Option<Vec<String>> = labels
                .iter()
                .map(|l| sample.labels.get(l).map(String::from))
                .collect();
            if let Some(k) = key {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out.sort();
    out
}

/// Cumulative buckets `(le, count)` of a histogram, summed over its label sets.
fn buckets(s: &Scrape, name: &str, sel: Sel) -> BTreeMap<u64, f64> {
    let mut out = BTreeMap::new();
    for sample in &s.samples {
        if sample.metric != name && sample.metric != format!("{name}_bucket") {
            continue;
        }
        if !selected(sample, sel) {
            continue;
        }
        if let Value::Histogram(hs) = &sample.value {
            for h in hs {
                *out.entry(h.less_than.to_bits()).or_insert(0.0) += h.count;
            }
        }
    }
    out
}

/// Sum of a counter or gauge over its label sets.
fn scalar(s: &Scrape, name: &str) -> Option<f64> {
    scalar_sel(s, name, &[])
}

/// Sum of a counter or gauge over the label sets `sel` selects.
fn scalar_sel(s: &Scrape, name: &str, sel: Sel) -> Option<f64> {
    let vals: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == name && selected(x, sel))
        .filter_map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum())
}

/// Cumulative buckets and sum of a histogram in one scrape, summed over its label sets.
fn histogram(s: &Scrape, name: &str, sel: Sel) -> (BTreeMap<u64, f64>, f64) {
    let sum = scalar_sel(s, &format!("{name}_sum"), sel).unwrap_or(0.0);
    (buckets(s, name, sel), sum)
}

/// The total observation count of cumulative buckets (the +Inf bucket's).
fn total(b: &BTreeMap<u64, f64>) -> f64 {
    b.values().copied().fold(0.0, f64::max)
}

/// One histogram over the window between two scrapes, as a [`Distribution`] in ms: quantiles
/// interpolated as PromQL's `histogram_quantile`, the mean from `_sum`/`_count`, and the window's
/// buckets kept so any quantile can be asked later. A member whose counts went down restarted
/// during the window: what it counted since is its increase, as Prometheus' `increase()` takes it.
fn window(before: &ClusterScrape, after: &ClusterScrape, name: &str) -> Distribution {
    window_sel(before, after, name, &[])
}

/// [`window`] of the label sets `sel` selects.
pub(crate) fn window_sel(
    before: &ClusterScrape,
    after: &ClusterScrape,
    name: &str,
    sel: Sel,
) -> Distribution {
    let mut sum: BTreeMap<u64, f64> = BTreeMap::new();
    let mut seconds = 0.0;
    for m in &after.members {
        let Some(b) = before.members.iter().find(|x| x.url == m.url) else {
            continue;
        };
        let (b_buckets, b_sum) = histogram(&b.scrape, name, sel);
        let (a_buckets, a_sum) = histogram(&m.scrape, name, sel);
        let reset = total(&a_buckets) < total(&b_buckets);
        for (le, c) in &a_buckets {
            let base = if reset {
                0.0
            } else {
                b_buckets.get(le).copied().unwrap_or(0.0)
            };
            *sum.entry(*le).or_insert(0.0) += (c - base).max(0.0);
        }
        seconds += if reset {
            a_sum
        } else {
            (a_sum - b_sum).max(0.0)
        };
    }
    let mut cum: Vec<(f64, f64)> = sum
        .into_iter()
        .map(|(le, c)| (f64::from_bits(le), c))
        .collect();
    cum.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = cum.last().map_or(0.0, |x| x.1);
    let q = |q: f64| bucket_quantile(q, &cum).map(|v| v * 1e3);
    Distribution {
        count: count as u64,
        mean: (count > 0.0).then(|| seconds / count * 1e3),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        buckets: (count > 0.0).then(|| {
            cum.iter()
                .map(|&(le, c)| (le.is_finite().then_some(le * 1e3), c))
                .collect()
        }),
        ..Distribution::default()
    }
}

/// A counter's increase over the window, all members (`None` when no member was scraped twice
/// or none exports it); a member whose counter went down restarted, and counts from zero.
fn delta(before: &ClusterScrape, after: &ClusterScrape, name: &str) -> Option<f64> {
    delta_sel(before, after, name, &[])
}

/// [`delta`] of the label sets `sel` selects; a label set absent before counts from zero.
pub(crate) fn delta_sel(
    before: &ClusterScrape,
    after: &ClusterScrape,
    name: &str,
    sel: Sel,
) -> Option<f64> {
    let mut out = None;
    for m in &after.members {
        let Some(b) = before.members.iter().find(|x| x.url == m.url) else {
            continue;
        };
        let Some(a) = scalar_sel(&m.scrape, name, sel) else {
            continue;
        };
        // A labelled series appears when its first event is counted: absent before is zero. A
        // family absent before altogether is not exported there (no data).
        let b = match (scalar_sel(&b.scrape, name, sel), sel.is_empty()) {
            (Some(b), _) => b,
            (None, false) => 0.0,
            (None, true) => continue,
        };
        let inc = if a < b { a } else { a - b };
        out = Some(out.unwrap_or(0.0) + inc);
    }
    out
}

/// A counter's increase over the window on the member where it grew most (`None` when no member
/// was scraped twice or none exports it).
fn delta_max(before: &ClusterScrape, after: &ClusterScrape, name: &str) -> Option<f64> {
    after
        .members
        .iter()
        .filter_map(|m| {
            let b = before.members.iter().find(|x| x.url == m.url)?;
            let (a, b) = (scalar(&m.scrape, name)?, scalar(&b.scrape, name)?);
            Some(if a < b { a } else { a - b })
        })
        .reduce(f64::max)
}

/// A gauge after the window, its largest value over members (`None` when none exports it).
fn gauge_max(after: &ClusterScrape, name: &str) -> Option<f64> {
    gauge_max_sel(after, name, &[])
}

/// [`gauge_max`] of the label sets `sel` selects.
pub(crate) fn gauge_max_sel(after: &ClusterScrape, name: &str, sel: Sel) -> Option<f64> {
    after
        .members
        .iter()
        .filter_map(|m| scalar_sel(&m.scrape, name, sel))
        .reduce(f64::max)
}

/// The server's view of one step, from a scrape before and one after it. Figures no member
/// reported are `null`; when any member could not be scraped, `no_data` says which and why, and
/// thresholds on these figures fail with "no data".
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ServerStep {
    /// Members scraped both before and after.
    pub members: usize,
    /// Why figures are missing or partial (a member not scraped, no metrics URL); `null` when
    /// every member was scraped before and after the step.
    pub no_data: Option<String>,
    /// WAL fsync latency during the step (etcd_disk_wal_fsync_duration_seconds).
    pub wal_fsync: Distribution,
    /// Backend commit latency during the step (etcd_disk_backend_commit_duration_seconds).
    pub backend_commit: Distribution,
    /// Peer round trip time during the step (etcd_network_peer_round_trip_time_seconds; no
    /// samples on a one-member cluster).
    pub peer_rtt: Distribution,
    /// gRPC handling time during the step (grpc_server_handling_seconds; etcd exports it only
    /// with --metrics=extensive).
    pub grpc_handling: Distribution,
    /// Leader changes during the step: the most any one member saw (each member counts every
    /// election it sees, so a sum would count one election once per member).
    #[schemars(with = "Option<crate::measure::Count>", extend("x-better" = "lower"))]
    pub leader_changes: Option<f64>,
    /// Proposals that failed during the step.
    #[schemars(with = "Option<crate::measure::Count>", extend("x-better" = "lower"))]
    pub proposals_failed: Option<f64>,
    /// Proposals committed during the step.
    #[schemars(with = "Option<crate::measure::Count>")]
    pub proposals_committed: Option<f64>,
    /// Applies that took too long during the step.
    #[schemars(with = "Option<crate::measure::Count>", extend("x-better" = "lower"))]
    pub slow_applies: Option<f64>,
    /// Backend size after the step, largest member.
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub db_size: Option<f64>,
    /// Backend bytes in use after the step, largest member.
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub db_size_in_use: Option<f64>,
    /// Whether every member scraped had a leader after the step.
    pub has_leader: Option<bool>,
    /// Proposals pending after the step, largest member.
    #[schemars(with = "Option<crate::measure::Count>")]
    pub proposals_pending: Option<f64>,
    /// Members that could not be scraped, with the reason.
    pub unscraped: Vec<String>,
    /// The etcd process scen started: CPU and memory during the step (absent for other clusters).
    pub process: Option<ProcessStep>,
    /// Each directed link between members (`"scen-0->scen-1"`) as scen's probes saw it during
    /// the step, on a cluster scen started with `network_faults` (absent otherwise): etcd's own
    /// `peer_rtt` is observed only every 30 s.
    pub links: Option<BTreeMap<String, LinkStep>>,
}

/// One directed link between members during a step: the round trips of scen's probes through
/// the peer proxies (`GET /raft/probing`, as etcd's prober sends it, twice a second).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LinkStep {
    /// Round trips of the probes that were answered.
    pub rtt: Distribution,
    /// Probes sent.
    #[schemars(with = "crate::measure::Count")]
    pub probes: u64,
    /// Probes unanswered or refused (a cut link, a stopped member).
    #[schemars(with = "crate::measure::Count", extend("x-better" = "lower"))]
    pub failed: u64,
}

/// The links as the probes sent in `[from, to)` saw them.
pub fn links_during(
    probes: &crate::embedded::proxy::Probes,
    from: std::time::Instant,
    to: std::time::Instant,
) -> BTreeMap<String, LinkStep> {
    use crate::exit::{ErrorKind, FailCode};
    // One book, by link; a probe's second does not matter here (the step is the window).
    let mut book = crate::measure::book::Book::default();
    for p in probes
        .lock()
        .expect("probes lock")
        .iter()
        .filter(|p| p.at >= from && p.at < to)
    {
        let link = format!("{}->{}", p.from, p.to);
        match p.rtt {
            Some(rtt) => book.ok(link, 0, rtt),
            None => book.fail(
                link,
                0,
                &FailCode::Transport,
                ErrorKind::ConnectionLost,
                "probe unanswered",
            ),
        }
    }
    book.finish()
        .ops
        .into_iter()
        .map(|(link, o)| {
            (
                link,
                LinkStep {
                    rtt: o.latency.summary(),
                    probes: o.ok + o.failed,
                    failed: o.failed,
                },
            )
        })
        .collect()
}

/// CPU and memory of the embedded members during a step, summed over members.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ProcessStep {
    /// CPU time (user + system) the members used during the step. A member restarted during
    /// the step counts from its restart; one stopped and not restarted is left out.
    #[schemars(with = "crate::measure::Ms")]
    pub cpu: f64,
    /// Resident memory of the running members after the step.
    #[schemars(with = "crate::measure::Bytes")]
    pub rss_bytes: u64,
    /// Members running after the step (those summed).
    pub members: usize,
}

crate::no_option_checks!(ScrapeOptions);

/// Whether etcd committed proposals (writes) between the two scrapes.
pub fn wrote(before: &ClusterScrape, after: &ClusterScrape) -> bool {
    delta(before, after, "etcd_server_proposals_committed_total").is_some_and(|n| n > 0.0)
}

/// Computes a step's server figures.
pub fn server_step(before: &ClusterScrape, after: &ClusterScrape) -> ServerStep {
    let mut unscraped: Vec<String> = before
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
    unscraped.dedup();
    let members = after
        .members
        .iter()
        .filter(|m| before.members.iter().any(|b| b.url == m.url))
        .count();
    let no_data = if !unscraped.is_empty() {
        Some(format!(
            "{} member(s) could not be scraped: {}",
            unscraped.len(),
            unscraped.join("; ")
        ))
    } else if members == 0 {
        Some("no member's /metrics was scraped".to_string())
    } else {
        None
    };
    let leaders: Vec<f64> = after
        .members
        .iter()
        .filter_map(|m| scalar(&m.scrape, "etcd_server_has_leader"))
        .collect();
    ServerStep {
        members,
        no_data,
        wal_fsync: window(before, after, "etcd_disk_wal_fsync_duration_seconds"),
        backend_commit: window(before, after, "etcd_disk_backend_commit_duration_seconds"),
        peer_rtt: window(before, after, "etcd_network_peer_round_trip_time_seconds"),
        grpc_handling: window(before, after, "grpc_server_handling_seconds"),
        // Every member counts each election it sees: the elections are the most any member saw,
        // not the sum (3 for one election on 3 members).
        leader_changes: delta_max(before, after, "etcd_server_leader_changes_seen_total"),
        proposals_failed: delta(before, after, "etcd_server_proposals_failed_total"),
        proposals_committed: delta(before, after, "etcd_server_proposals_committed_total"),
        slow_applies: delta(before, after, "etcd_server_slow_apply_total"),
        db_size: gauge_max(after, "etcd_mvcc_db_total_size_in_bytes"),
        db_size_in_use: gauge_max(after, "etcd_mvcc_db_total_size_in_use_in_bytes"),
        has_leader: (!leaders.is_empty()).then(|| leaders.iter().all(|l| *l >= 1.0)),
        proposals_pending: gauge_max(after, "etcd_server_proposals_pending"),
        unscraped,
        process: None,
        links: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClusterScrape {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        ClusterScrape {
            members: vec![MemberScrape {
                url: "m1".into(),
                scrape,
            }],
            failed: vec![],
        }
    }

    const T: &str = "# TYPE h histogram\nh_bucket{le=\"0.001\"} A\nh_bucket{le=\"0.01\"} B\nh_bucket{le=\"0.1\"} C\nh_bucket{le=\"+Inf\"} C\nh_sum 1\nh_count C\n";

    fn hist(a: u32, b: u32, c: u32) -> String {
        T.replace('A', &a.to_string())
            .replace('B', &b.to_string())
            .replace('C', &c.to_string())
    }

    #[test]
    fn quantiles_come_from_the_window_not_the_totals() {
        // Before: 100 fast observations. During the step: 10 slow ones (between 10 and 100 ms).
        let before = parse(&hist(100, 100, 100));
        let after = parse(&hist(100, 100, 110));
        let w = window(&before, &after, "h");
        assert_eq!(w.count, 10);
        // Every observation of the window is in the (10ms, 100ms] bucket: p50 interpolates to 55 ms.
        assert!((w.p50.unwrap() - 55.0).abs() < 1e-6, "{w:?}");
        assert!((w.p99.unwrap() - 99.1).abs() < 1e-6, "{w:?}");
        // Any quantile from the kept buckets, as thresholds ask it.
        let json = serde_json::to_value(&w).unwrap();
        let p95 = crate::measure::latency::quantile_of(&json, 0.95).unwrap();
        assert!((p95 - 95.5).abs() < 1e-6, "{p95}");
    }

    #[test]
    fn an_empty_window_has_no_data_not_zero() {
        let before = parse(&hist(100, 100, 100));
        let w = window(&before, &before, "h");
        assert_eq!(w.count, 0);
        assert_eq!((w.p50, w.p99, w.mean), (None, None, None));
        let none = window(&before, &before, "not_exported");
        assert_eq!(none.p99, None);
        let view = server_step(&before, &before);
        assert_eq!(view.no_data, None);
        assert_eq!(view.leader_changes, None, "h has no leader counter");
    }

    #[test]
    fn a_restarted_member_counts_from_zero_like_increase() {
        // The member restarted during the step: its histogram starts again at 5 observations.
        let before = parse(&hist(100, 100, 100));
        let after = parse(&hist(0, 0, 5));
        let w = window(&before, &after, "h");
        assert_eq!(w.count, 5, "{w:?}");
        let c = |v: u32| parse(&format!("# TYPE c counter\nc {v}\n"));
        assert_eq!(delta(&c(10), &c(14), "c"), Some(4.0));
        assert_eq!(
            delta(&c(10), &c(3), "c"),
            Some(3.0),
            "a reset counts from 0"
        );
    }

    #[test]
    fn one_election_seen_by_three_members_is_one_leader_change() {
        let member = |url: &str, v: u32| {
            MemberScrape {
            url: url.into(),
            scrape: Scrape::parse(
                format!("# TYPE etcd_server_leader_changes_seen_total counter\netcd_server_leader_changes_seen_total {v}\n")
                    .lines()
                    .map(|l| Ok(l.to_string())),
            )
            .unwrap(),
        }
        };
        let at = |v: [u32; 3]| ClusterScrape {
            members: vec![member("a", v[0]), member("b", v[1]), member("c", v[2])],
            failed: vec![],
        };
        let view = server_step(&at([1, 1, 1]), &at([2, 2, 2]));
        assert_eq!(view.leader_changes, Some(1.0));
    }

    #[test]
    fn an_unscraped_member_is_no_data() {
        let before = parse(&hist(100, 100, 100));
        let mut after = parse(&hist(100, 100, 110));
        after
            .failed
            .push(("http://127.0.0.1:1".into(), "connection refused".into()));
        let view = server_step(&before, &after);
        let why = view.no_data.unwrap();
        assert!(
            why.contains("127.0.0.1:1") && why.contains("connection refused"),
            "{why}"
        );
        let empty = server_step(&ClusterScrape::default(), &ClusterScrape::default());
        assert!(empty.no_data.unwrap().contains("no member"));
        assert_eq!(empty.has_leader, None);
    }

    proptest::proptest! {
        /// Any exposition text from a member: scraped or refused, and the step's server view
        /// computed from any two scrapes, never a panic.
        #[test]
        fn any_metrics_text_never_panics(
            lines in proptest::collection::vec(
                "(# TYPE [a-z_]{1,40} (histogram|counter|gauge)|etcd_(disk_wal_fsync_duration_seconds|disk_backend_commit_duration_seconds|server_leader_changes_seen_total|server_proposals_committed_total|mvcc_db_total_size_in_bytes|server_has_leader)(_bucket|_sum|_count)?(\\{le=\"(0\\.001|\\+Inf|[0-9.e-]{1,6})\"\\})? (-?[0-9.e+]{1,8}|NaN|\\+Inf|-Inf)|\\PC{0,30})",
                0..30,
            ),
            cut in 0usize..30,
        ) {
            let text = lines.join("\n");
            let parse = |t: &str| Scrape::parse(t.lines().map(|l| Ok(l.to_string())));
            let (Ok(a), Ok(b)) = (parse(&text), parse(&lines[..cut.min(lines.len())].join("\n"))) else {
                return Ok(());
            };
            let one = |scrape| ClusterScrape {
                members: vec![MemberScrape { url: "m".into(), scrape }],
                failed: Vec::new(),
            };
            let _ = server_step(&one(b), &one(a));
        }
    }
}

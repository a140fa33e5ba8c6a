//! Server-side figures from etcd's Prometheus `/metrics`: scrapes of every member, and the server's
//! view of one step alone — quantiles from the difference of cumulative histogram buckets between a
//! scrape before and a scrape after the step (what PromQL's `histogram_quantile` over the step's
//! window gives), counter deltas and gauges after. No Prometheus server needed.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde::Serialize;

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

/// GETs `<base>/metrics` over plain HTTP (loopback or a metrics port), with a 5 s limit.
async fn fetch(base: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// metrics URLs are supported"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let get = async {
        let mut s = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or("").to_string());
        }
        Ok(body.to_string())
    };
    // Loopback or a LAN: a member that cannot answer in 2 s is hung (or paused by a fault).
    tokio::time::timeout(Duration::from_secs(2), get)
        .await
        .map_err(|_| "timed out after 2s".to_string())?
}

/// Scrapes every URL (each a member's client or metrics URL).
pub async fn scrape_all(urls: &[String]) -> ClusterScrape {
    let mut out = ClusterScrape::default();
    // All members at once: one hung member costs one timeout, not one per member.
    let fetched = {
        let mut set = tokio::task::JoinSet::new();
        for (i, url) in urls.iter().enumerate() {
            let url = url.clone();
            set.spawn(async move { (i, fetch(&url).await) });
        }
        let mut all = Vec::with_capacity(urls.len());
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                all.push(r);
            }
        }
        all.sort_by_key(|r| r.0);
        all
    };
    for (i, result) in fetched {
        let url = &urls[i];
        match result {
            Ok(text) => match Scrape::parse(text.lines().map(|l| Ok(l.to_string()))) {
                Ok(scrape) => out.members.push(MemberScrape {
                    url: url.clone(),
                    scrape,
                }),
                Err(e) => out.failed.push((url.clone(), e.to_string())),
            },
            Err(e) => out.failed.push((url.clone(), e)),
        }
    }
    out
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Bucket {
    /// Upper bound in the metric's unit; `null` is +Inf.
    pub le: Option<f64>,
    /// Observations at or below it.
    pub count: f64,
}

/// One member's metrics.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScrapeRecord {
    /// Per member.
    pub members: Vec<MemberMetrics>,
    /// Metric families kept (first member).
    pub families: usize,
}

/// Scrapes every member and returns their samples, filtered by name or prefix.
pub async fn scrape(urls: &[String], opts: &ScrapeOptions) -> ScrapeRecord {
    let all = scrape_all(urls).await;
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

/// Cumulative buckets `(le, count)` of a histogram, summed over its label sets.
fn buckets(s: &Scrape, name: &str) -> BTreeMap<u64, f64> {
    let mut out = BTreeMap::new();
    for sample in &s.samples {
        if sample.metric != name && sample.metric != format!("{name}_bucket") {
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
    let vals: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == name)
        .filter_map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum())
}

/// Quantiles of one histogram over a window, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct WindowQuantiles {
    /// Observations in the window.
    pub count: f64,
    /// Median (ms), interpolated within its bucket.
    pub p50: f64,
    /// 90th percentile (ms).
    pub p90: f64,
    /// 99th percentile (ms).
    pub p99: f64,
}

/// `histogram_quantile` on cumulative buckets keyed by `le` bits (values in seconds).
pub fn quantile(q: f64, cumulative: &[(f64, f64)]) -> f64 {
    let Some(&(_, total)) = cumulative.last() else {
        return 0.0;
    };
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in cumulative {
        if c >= rank {
            if le.is_infinite() {
                return prev.0; // like Prometheus: the highest finite bound
            }
            let in_bucket = c - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                0.0
            };
            return prev.0 + (le - prev.0) * frac;
        }
        prev = (le, c);
    }
    prev.0
}

fn window(before: &ClusterScrape, after: &ClusterScrape, name: &str) -> WindowQuantiles {
    // Sum by (le) over members, after minus before (a member restarted mid-step resets: clamp at 0).
    let mut sum: BTreeMap<u64, f64> = BTreeMap::new();
    for m in &after.members {
        let b = before
            .members
            .iter()
            .find(|x| x.url == m.url)
            .map(|x| buckets(&x.scrape, name))
            .unwrap_or_default();
        for (le, c) in buckets(&m.scrape, name) {
            *sum.entry(le).or_insert(0.0) += (c - b.get(&le).copied().unwrap_or(0.0)).max(0.0);
        }
    }
    let mut cum: Vec<(f64, f64)> = sum
        .into_iter()
        .map(|(le, c)| (f64::from_bits(le), c))
        .collect();
    cum.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = cum.last().map_or(0.0, |x| x.1);
    WindowQuantiles {
        count,
        p50: quantile(0.5, &cum) * 1e3,
        p90: quantile(0.9, &cum) * 1e3,
        p99: quantile(0.99, &cum) * 1e3,
    }
}

fn delta(before: &ClusterScrape, after: &ClusterScrape, name: &str) -> f64 {
    after
        .members
        .iter()
        .map(|m| {
            let b = before
                .members
                .iter()
                .find(|x| x.url == m.url)
                .and_then(|x| scalar(&x.scrape, name))
                .unwrap_or(0.0);
            (scalar(&m.scrape, name).unwrap_or(0.0) - b).max(0.0)
        })
        .sum()
}

fn gauge_max(after: &ClusterScrape, name: &str) -> f64 {
    after
        .members
        .iter()
        .filter_map(|m| scalar(&m.scrape, name))
        .fold(0.0, f64::max)
}

/// The server's view of one step, from a scrape before and one after it.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ServerStep {
    /// Members scraped (both before and after).
    pub members: usize,
    /// WAL fsync latency during the step (etcd_disk_wal_fsync_duration_seconds), ms.
    pub wal_fsync: WindowQuantiles,
    /// Backend commit latency during the step (etcd_disk_backend_commit_duration_seconds), ms.
    pub backend_commit: WindowQuantiles,
    /// Peer round trip time during the step (etcd_network_peer_round_trip_time_seconds), ms.
    pub peer_rtt: WindowQuantiles,
    /// gRPC handling time during the step (grpc_server_handling_seconds; needs --metrics=extensive), ms.
    pub grpc_handling: WindowQuantiles,
    /// Leader changes seen during the step, all members.
    pub leader_changes: f64,
    /// Proposals that failed during the step.
    pub proposals_failed: f64,
    /// Proposals committed during the step.
    pub proposals_committed: f64,
    /// Applies that took too long during the step.
    pub slow_applies: f64,
    /// Backend size after the step, largest member (bytes).
    pub db_size: f64,
    /// Backend bytes in use after the step, largest member.
    pub db_size_in_use: f64,
    /// Whether every member had a leader after the step.
    pub has_leader: bool,
    /// Proposals pending after the step, largest member.
    pub proposals_pending: f64,
    /// Members that could not be scraped, with the reason.
    pub unscraped: Vec<String>,
    /// The etcd process scen started: CPU and memory during the step (absent for other clusters).
    pub process: Option<ProcessStep>,
}

/// CPU and memory of the embedded members during a step, summed over members.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ProcessStep {
    /// CPU seconds (user + system) the members used during the step. A member restarted during
    /// the step counts from its restart; one stopped and not restarted is left out.
    pub cpu_seconds: f64,
    /// Resident memory of the running members after the step, bytes.
    pub rss_bytes: u64,
    /// Members running after the step (those summed).
    pub members: usize,
}

/// Computes a step's server figures.
pub fn server_step(before: &ClusterScrape, after: &ClusterScrape) -> ServerStep {
    let mut unscraped: Vec<String> = after
        .failed
        .iter()
        .chain(&before.failed)
        .map(|(u, e)| format!("{u}: {e}"))
        .collect();
    unscraped.dedup();
    ServerStep {
        members: after
            .members
            .iter()
            .filter(|m| before.members.iter().any(|b| b.url == m.url))
            .count(),
        wal_fsync: window(before, after, "etcd_disk_wal_fsync_duration_seconds"),
        backend_commit: window(before, after, "etcd_disk_backend_commit_duration_seconds"),
        peer_rtt: window(before, after, "etcd_network_peer_round_trip_time_seconds"),
        grpc_handling: window(before, after, "grpc_server_handling_seconds"),
        leader_changes: delta(before, after, "etcd_server_leader_changes_seen_total"),
        proposals_failed: delta(before, after, "etcd_server_proposals_failed_total"),
        proposals_committed: delta(before, after, "etcd_server_proposals_committed_total"),
        slow_applies: delta(before, after, "etcd_server_slow_apply_total"),
        db_size: gauge_max(after, "etcd_mvcc_db_total_size_in_bytes"),
        db_size_in_use: gauge_max(after, "etcd_mvcc_db_total_size_in_use_in_bytes"),
        has_leader: !after.members.is_empty()
            && after
                .members
                .iter()
                .all(|m| scalar(&m.scrape, "etcd_server_has_leader").unwrap_or(0.0) >= 1.0),
        proposals_pending: gauge_max(after, "etcd_server_proposals_pending"),
        unscraped,
        process: None,
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
        assert_eq!(w.count, 10.0);
        // Every observation of the window is in the (10ms, 100ms] bucket: p50 interpolates to 55 ms.
        assert!((w.p50 - 55.0).abs() < 1e-6, "{w:?}");
        assert!((w.p99 - 99.1).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn histogram_quantile_matches_prometheus() {
        let cum = [
            (0.001, 50.0),
            (0.01, 90.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((quantile(0.5, &cum) - 0.001).abs() < 1e-12);
        assert!((quantile(0.9, &cum) - 0.01).abs() < 1e-12);
        assert!((quantile(0.95, &cum) - 0.055).abs() < 1e-12);
        let beyond = [(0.001, 0.0), (f64::INFINITY, 10.0)];
        assert_eq!(
            quantile(0.99, &beyond),
            0.001,
            "the +Inf bucket answers its lower bound"
        );
    }
}

//! etcd's own view, forwarded with the run's series: a few of every member's `/metrics` families
//! (WAL fsync, backend commit, leader, db size, proposals, CPU), under their etcd names with a
//! `member` label, scraped at most once a second — so a dashboard shows them next to the load on
//! one time axis even where no Prometheus scrapes etcd.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_parse::Value;

use super::family::{Family, Kind};
use crate::actions::metrics::Scraper;

/// The etcd families forwarded, with their types.
pub const FORWARDED: [(&str, Kind); 11] = [
    ("etcd_disk_wal_fsync_duration_seconds", Kind::Histogram),
    ("etcd_disk_backend_commit_duration_seconds", Kind::Histogram),
    ("etcd_server_leader_changes_seen", Kind::Counter),
    ("etcd_server_has_leader", Kind::Gauge),
    ("etcd_server_is_leader", Kind::Gauge),
    ("etcd_mvcc_db_total_size_in_bytes", Kind::Gauge),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", Kind::Gauge),
    ("etcd_server_proposals_committed", Kind::Counter),
    ("etcd_server_proposals_failed", Kind::Counter),
    ("etcd_server_proposals_pending", Kind::Gauge),
    ("process_cpu_seconds", Kind::Counter),
];

/// Scrapes and converts etcd's families for the hub, caching the last result for a second.
#[derive(Debug, Default)]
pub struct Forwarder {
    scraper: Mutex<Option<Scraper>>,
    last: tokio::sync::Mutex<Option<(Instant, Vec<Family>)>>,
}

impl Forwarder {
    /// Forwards the members `scraper` reaches.
    pub fn set(&self, scraper: Scraper) {
        *self.scraper.lock().expect("forwarder lock") = Some(scraper);
    }

    /// The forwarded families now (none before a run connected).
    pub async fn families(&self) -> Vec<Family> {
        let Some(scraper) = self.scraper.lock().expect("forwarder lock").clone() else {
            return Vec::new();
        };
        let mut last = self.last.lock().await;
        if let Some((at, f)) = &*last {
            if at.elapsed() < Duration::from_secs(1) {
                return f.clone();
            }
        }
        let scrape = scraper.scrape_all().await;
        let fams = convert(&scrape);
        *last = Some((Instant::now(), fams.clone()));
        fams
    }
}

/// A member's label: its URL without the scheme and path (`127.0.0.1:2379`).
fn member(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The forwarded families from one scrape of every member.
fn convert(scrape: &crate::actions::metrics::ClusterScrape) -> Vec<Family> {
    let mut out = Vec::new();
    for (name, kind) in FORWARDED {
        let unit = if name.ends_with("_seconds") {
            Some("seconds")
        } else if name.ends_with("_bytes") {
            Some("bytes")
        } else {
            None
        };
        let mut f = Family::new(name, kind, "etcd's own metric, forwarded by scen.", unit);
        let full = match kind {
            Kind::Counter => format!("{name}_total"),
            _ => name.to_string(),
        };
        for m in &scrape.members {
            let who = member(&m.url);
            for s in m.scrape.samples.iter() {
                let base: Vec<(String, String)> = std::iter::once(("member".into(), who.clone()))
                    .chain(s.labels.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect();
                match (&s.value, kind) {
                    (Value::Histogram(hs), Kind::Histogram) if s.metric == name => {
                        for b in hs {
                            let mut l = base.clone();
                            let le = if b.less_than.is_finite() {
                                format!("{}", b.less_than)
                            } else {
                                "+Inf".into()
                            };
                            l.push(("le".into(), le));
                            f.push("_bucket", l, b.count);
                        }
                    }
                    (Value::Counter(v) | Value::Untyped(v), Kind::Histogram)
                        if s.metric == format!("{name}_sum") =>
                    {
                        f.push("_sum", base, *v)
                    }
                    (Value::Counter(v) | Value::Untyped(v), Kind::Histogram)
                        if s.metric == format!("{name}_count") =>
                    {
                        f.push("_count", base, *v)
                    }
                    (Value::Counter(v) | Value::Untyped(v), Kind::Counter) if s.metric == full => {
                        f.push("_total", base, *v)
                    }
                    (Value::Gauge(v) | Value::Untyped(v), Kind::Gauge) if s.metric == full => {
                        f.push("", base, *v)
                    }
                    _ => {}
                }
            }
        }
        // One series' buckets, sum and count together, buckets in order (etcd lists sums first).
        let rank = |x: &str| {
            ["_bucket", "_sum", "_count", "_total", ""]
                .iter()
                .position(|s| *s == x)
        };
        let key = |s: &super::family::Sample| {
            let l: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            (l, rank(s.suffix))
        };
        f.samples.sort_by_cached_key(key);
        if !f.samples.is_empty() {
            out.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::metrics::{ClusterScrape, MemberScrape};

    #[test]
    fn etcd_histograms_counters_and_gauges_keep_their_names_with_a_member_label() {
        let text = "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 3\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 5\n\
etcd_disk_wal_fsync_duration_seconds_sum 0.02\n\
etcd_disk_wal_fsync_duration_seconds_count 5\n\
# TYPE etcd_server_leader_changes_seen_total counter\n\
etcd_server_leader_changes_seen_total 1\n\
# TYPE etcd_mvcc_db_total_size_in_bytes gauge\n\
etcd_mvcc_db_total_size_in_bytes 20480\n\
# TYPE etcd_debugging_x gauge\n\
etcd_debugging_x 7\n";
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("parses");
        let fams = convert(&ClusterScrape {
            members: vec![MemberScrape {
                url: "http://127.0.0.1:2381/metrics".into(),
                scrape,
            }],
            failed: vec![],
        });
        let names: Vec<&str> = fams.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "etcd_disk_wal_fsync_duration_seconds",
                "etcd_server_leader_changes_seen",
                "etcd_mvcc_db_total_size_in_bytes"
            ]
        );
        let wal = &fams[0];
        let suffixes: Vec<&str> = wal.samples.iter().map(|s| s.suffix).collect();
        assert_eq!(suffixes, ["_bucket", "_bucket", "_sum", "_count"]);
        assert_eq!(wal.samples[1].value, 5.0);
        assert!(wal.samples[1]
            .labels
            .contains(&("le".to_string(), "+Inf".to_string())));
        assert_eq!(
            wal.samples[0].labels[0],
            ("member".to_string(), "127.0.0.1:2381".to_string())
        );
        assert_eq!(fams[1].samples[0].suffix, "_total");
        assert_eq!(fams[2].samples[0].value, 20480.0);
    }
}

//! etcd's own view across the whole run, for the report's timeline: every member's `/metrics`
//! scraped every few seconds while the steps run, each interval's WAL fsync and backend commit
//! p99 (from the difference of the cumulative buckets, as `histogram_quantile` over the window),
//! database size and which member leads. Cheap: one scrape per member per interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::metrics::{server_step, ClusterScrape, Scraper};

/// The server's view over one interval of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerPoint {
    /// End of the interval, seconds since the run started.
    pub t: f64,
    /// WAL fsync p99 over the interval (`null`: no fsync in it).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub wal_fsync_p99: Option<f64>,
    /// Backend commit p99 over the interval.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub backend_commit_p99: Option<f64>,
    /// Backend size at the end, largest member.
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub db_size: Option<f64>,
    /// The leader at the end (its name on a cluster scen started, else its metrics URL's
    /// host:port), when a member said it leads.
    pub leader: Option<String>,
    /// Members scraped.
    pub members: usize,
}

/// A sampler running beside the steps; [`Sampler::finish`] returns its points.
pub struct Sampler {
    points: Arc<Mutex<Vec<ServerPoint>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The member that says it leads: its name in `names` (by metrics URL), else `host:port`.
fn leader(scrape: &ClusterScrape, names: &HashMap<String, String>) -> Option<String> {
    scrape.members.iter().find_map(|m| {
        let leads = m.scrape.samples.iter().any(|s| {
            s.metric == "etcd_server_is_leader"
                && matches!(s.value, prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) if v == 1.0)
        });
        leads.then(|| {
            names.get(&m.url).cloned().unwrap_or_else(|| {
                let rest = m.url.split_once("://").map_or(m.url.as_str(), |(_, r)| r);
                rest.split('/').next().unwrap_or(rest).to_string()
            })
        })
    })
}

impl Sampler {
    /// Starts scraping `scraper` every `every`, times counted from `run_start`; `names` are the
    /// members' names by metrics URL, when scen started them.
    pub fn start(
        scraper: Arc<Scraper>,
        run_start: DateTime<Utc>,
        every: Duration,
        names: HashMap<String, String>,
    ) -> Sampler {
        let points = Arc::new(Mutex::new(Vec::new()));
        let out = points.clone();
        let task = tokio::spawn(async move {
            let mut prev = scraper.scrape_all().await;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let cur = scraper.scrape_all().await;
                let step = server_step(&prev, &cur);
                let t = (Utc::now() - run_start).num_milliseconds() as f64 / 1e3;
                out.lock().expect("timeline lock").push(ServerPoint {
                    t,
                    wal_fsync_p99: step.wal_fsync.p99,
                    backend_commit_p99: step.backend_commit.p99,
                    db_size: step.db_size,
                    leader: leader(&cur, &names),
                    members: cur.members.len(),
                });
                prev = cur;
            }
        });
        Sampler { points, task }
    }

    /// Stops sampling; the points so far.
    pub fn finish(self) -> Vec<ServerPoint> {
        self.task.abort();
        std::mem::take(&mut *self.points.lock().expect("timeline lock"))
    }
}

//! `--out prometheus-rw=URL`: the hub's families pushed with the Prometheus remote-write protocol
//! (1.0: protobuf `WriteRequest`, snappy block compression) every interval while the run goes on.
//!
//! The load never waits for the receiver: a snapshot is queued and the queue is sent by its own
//! task, one request at a time in order, retried with exponential backoff on network errors, 5xx
//! and 429. The queue is bounded: when a slow or absent receiver lets it fill, the oldest batch is
//! dropped and counted; a batch the receiver rejects (other 4xx) is dropped and counted too. At
//! the end, a final snapshot is sent within a bounded time; what could not be sent is counted in
//! the report's `outputs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::Notify;

use super::family::{Family, Kind};
use super::Hub;
use crate::report::OutputReport;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Families' type, help and unit.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Labels, sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// `MetricType`: 1 counter, 2 gauge, 3 histogram.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The family's name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// A `WriteRequest` of `families` at `timestamp_ms`, every series with `common` labels.
pub fn write_request(
    families: &[Family],
    common: &[(String, String)],
    timestamp_ms: i64,
) -> WriteRequest {
    let mut req = WriteRequest::default();
    for f in families {
        req.metadata.push(MetricMetadata {
            r#type: match f.kind {
                Kind::Counter => 1,
                Kind::Gauge => 2,
                Kind::Histogram => 3,
            },
            metric_family_name: f.name.clone(),
            help: f.help.clone(),
            unit: f.unit.unwrap_or_default().to_string(),
        });
        for s in &f.samples {
            let mut labels: Vec<Label> = common
                .iter()
                .chain(&s.labels)
                .map(|(name, value)| Label {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect();
            labels.push(Label {
                name: "__name__".into(),
                value: format!("{}{}", f.name, s.suffix),
            });
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            labels.dedup_by(|a, b| a.name == b.name);
            req.timeseries.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: s.value,
                    timestamp: timestamp_ms,
                }],
            });
        }
    }
    req
}

/// A request body: the protobuf, snappy-compressed (block format, as the protocol says).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compresses any input")
}

/// How a remote-write output behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The receiver's URL (`http://prometheus:9090/api/v1/write`).
    pub url: String,
    /// Time between two snapshots.
    pub interval: Duration,
    /// The most samples waiting to be sent; past it the oldest batch is dropped.
    pub max_queued_samples: usize,
    /// How long the last push may take at the end of the run.
    pub flush_timeout: Duration,
}

impl Config {
    /// Defaults for `url`: a push every 5 s (k6's), 100,000 queued samples at most, 5 s to flush.
    pub fn new(url: &str) -> Self {
        Config {
            url: url.to_string(),
            interval: Duration::from_secs(5),
            max_queued_samples: 100_000,
            flush_timeout: Duration::from_secs(5),
        }
    }
}

/// A snapshot waiting to be sent.
struct Batch {
    body: Vec<u8>,
    samples: usize,
    attempts: u32,
}

/// What the output did; the report's entry for it.
#[derive(Debug, Default)]
struct Stats {
    sent_samples: u64,
    dropped_samples: u64,
    requests: u64,
    retries: u64,
    last_error: Option<String>,
}

/// The queue between the snapshot task and the sender.
#[derive(Default)]
struct Queue {
    batches: Mutex<VecDeque<Batch>>,
    queued_samples: Mutex<usize>,
    stats: Mutex<Stats>,
    wake: Notify,
}

impl Queue {
    /// Queues a batch, dropping the oldest ones past `max` samples.
    fn push(&self, batch: Batch, max: usize) {
        let mut b = self.batches.lock().expect("queue lock");
        let mut queued = self.queued_samples.lock().expect("queue lock");
        *queued += batch.samples;
        b.push_back(batch);
        while *queued > max && b.len() > 1 {
            let old = b.pop_front().expect("more than one");
            *queued -= old.samples;
            self.stats.lock().expect("stats lock").dropped_samples += old.samples as u64;
        }
        drop((b, queued));
        self.wake.notify_one();
    }

    /// Takes the oldest batch off the queue.
    fn pop(&self) -> Option<Batch> {
        let batch = self.batches.lock().expect("queue lock").pop_front()?;
        *self.queued_samples.lock().expect("queue lock") -= batch.samples;
        Some(batch)
    }

    /// Puts a batch back at the front to retry it.
    fn unpop(&self, batch: Batch) {
        *self.queued_samples.lock().expect("queue lock") += batch.samples;
        self.batches.lock().expect("queue lock").push_front(batch);
    }

    /// Counts `batch` as dropped because of `why`.
    fn drop_batch(&self, batch: &Batch, why: String) {
        let mut s = self.stats.lock().expect("stats lock");
        s.dropped_samples += batch.samples as u64;
        s.last_error = Some(why);
    }
}

/// A running remote-write output; [`Output::finish`] pushes the last snapshot and reports.
pub struct Output {
    config: Config,
    hub: Arc<Hub>,
    queue: Arc<Queue>,
    ticker: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
}

/// Takes a snapshot of the hub and queues it.
async fn snapshot(hub: &Hub, queue: &Queue, max: usize) {
    let families = hub.families().await;
    let req = write_request(
        &families,
        &hub.common_labels(),
        chrono::Utc::now().timestamp_millis(),
    );
    let samples = req.timeseries.len();
    if samples > 0 {
        let body = encode(&req);
        queue.push(
            Batch {
                body,
                samples,
                attempts: 0,
            },
            max,
        );
    }
}

/// Why a push failed, and whether trying again may help.
fn classify(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), (String, bool)> {
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let status = resp.status();
            let retry = status.is_server_error() || status.as_u16() == 429;
            Err((format!("the receiver answered {status}"), retry))
        }
        Err(e) => Err((crate::actions::error_chain(&e), true)),
    }
}

impl Output {
    /// Starts pushing `hub`'s families to `config.url`.
    pub fn start(hub: Arc<Hub>, config: Config) -> Self {
        let queue = Arc::new(Queue::default());
        let stop = tokio_util::sync::CancellationToken::new();
        let ticker = {
            let (hub, queue, stop) = (hub.clone(), queue.clone(), stop.clone());
            let (interval, max) = (config.interval, config.max_queued_samples);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => snapshot(&hub, &queue, max).await,
                    }
                }
            })
        };
        let sender = {
            let (queue, stop, url) = (queue.clone(), stop.clone(), config.url.clone());
            let client = reqwest::Client::builder()
                .timeout(config.interval.max(Duration::from_secs(2)))
                .user_agent(concat!("scen/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default();
            tokio::spawn(async move { send_loop(&queue, &client, &url, &stop).await })
        };
        Output {
            config,
            hub,
            queue,
            ticker,
            sender,
            stop,
        }
    }

    /// Stops the periodic snapshots, pushes a last one (with the final verdicts) and whatever
    /// is still queued within the flush timeout, and says what was sent and dropped.
    pub async fn finish(self) -> OutputReport {
        self.stop.cancel();
        let _ = self.ticker.await;
        let _ = self.sender.await;
        snapshot(&self.hub, &self.queue, self.config.max_queued_samples).await;
        let client = reqwest::Client::builder()
            .timeout(self.config.flush_timeout)
            .build()
            .unwrap_or_default();
        let deadline = Instant::now() + self.config.flush_timeout;
        while Instant::now() < deadline {
            let Some(mut batch) = self.queue.pop() else {
                break;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let r = tokio::time::timeout(left, send(&client, &self.config.url, &batch.body)).await;
            match r {
                Ok(Ok(())) => self.queue.sent(&batch),
                Ok(Err((why, retry))) if retry && batch.attempts < 2 => {
                    batch.attempts += 1;
                    self.queue.stats.lock().expect("stats lock").retries += 1;
                    self.queue.stats.lock().expect("stats lock").last_error = Some(why);
                    self.queue.unpop(batch);
                    tokio::time::sleep(Duration::from_millis(200).min(left)).await;
                }
                Ok(Err((why, _))) => self.queue.drop_batch(&batch, why),
                Err(_) => {
                    self.queue
                        .drop_batch(&batch, "the last push timed out".into());
                    break;
                }
            }
        }
        while let Some(batch) = self.queue.pop() {
            self.queue.drop_batch(
                &batch,
                format!(
                    "not sent within the {:?} flush timeout",
                    self.config.flush_timeout
                ),
            );
        }
        let s = self.queue.stats.lock().expect("stats lock");
        OutputReport {
            kind: "prometheus-rw".into(),
            target: self.config.url.clone(),
            requests: s.requests,
            sent_samples: s.sent_samples,
            dropped_samples: s.dropped_samples,
            retries: s.retries,
            last_error: s.last_error.clone(),
        }
    }
}

impl Queue {
    /// Counts a batch the receiver took.
    fn sent(&self, batch: &Batch) {
        let mut s = self.stats.lock().expect("stats lock");
        s.sent_samples += batch.samples as u64;
        s.requests += 1;
    }
}

/// One POST of a body.
async fn send(client: &reqwest::Client, url: &str, body: &[u8]) -> Result<(), (String, bool)> {
    let r = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body.to_vec())
        .send()
        .await;
    classify(r)
}

/// Sends queued batches in order until `stop`; a failed batch is retried with exponential backoff
/// (250 ms doubling to 10 s, at most 6 tries) and then dropped.
async fn send_loop(
    queue: &Queue,
    client: &reqwest::Client,
    url: &str,
    stop: &tokio_util::sync::CancellationToken,
) {
    const TRIES: u32 = 6;
    loop {
        let Some(mut batch) = queue.pop() else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = queue.wake.notified() => continue,
            }
        };
        let r = tokio::select! {
            _ = stop.cancelled() => {
                queue.unpop(batch);
                return;
            }
            r = send(client, url, &batch.body) => r,
        };
        match r {
            Ok(()) => queue.sent(&batch),
            Err((why, true)) if batch.attempts + 1 < TRIES => {
                let backoff = Duration::from_millis(250 << batch.attempts.min(6))
                    .min(Duration::from_secs(10));
                batch.attempts += 1;
                {
                    let mut s = queue.stats.lock().expect("stats lock");
                    s.retries += 1;
                    s.last_error = Some(why);
                }
                queue.unpop(batch);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
            Err((why, _)) => queue.drop_batch(&batch, why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::family::labels;

    #[test]
    fn a_write_request_has_sorted_labels_a_name_and_survives_snappy() {
        let mut f = Family::new("scen_requests", Kind::Counter, "Requests.", None);
        f.push("_total", labels(&[("step", "load"), ("op", "put")]), 42.0);
        let req = write_request(&[f], &labels(&[("run_id", "r1")]), 1_700_000_000_000);
        let series = &req.timeseries[0];
        let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "op", "run_id", "step"]);
        assert_eq!(series.labels[0].value, "scen_requests_total");
        assert_eq!(req.metadata[0].r#type, 1);
        let body = encode(&req);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("snappy block format");
        assert_eq!(WriteRequest::decode(raw.as_slice()).expect("protobuf"), req);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_batches_and_counts_them() {
        let q = Queue::default();
        for _ in 0..5 {
            q.push(
                Batch {
                    body: vec![],
                    samples: 40,
                    attempts: 0,
                },
                100,
            );
        }
        assert_eq!(q.batches.lock().unwrap().len(), 2);
        assert_eq!(*q.queued_samples.lock().unwrap(), 80);
        assert_eq!(q.stats.lock().unwrap().dropped_samples, 120);
    }
}

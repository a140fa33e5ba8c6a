//! `--metrics-listen ADDR`: the hub's families served as OpenMetrics text at `/metrics` for a
//! Prometheus to scrape while the run goes on (hyper's HTTP/1 server). At the end it stays up for
//! one more scrape, so the scraper sees the final totals and verdicts: when something scraped it
//! during the run, for up to twice the time between its scrapes (at most 30 s). That scrape must
//! have begun after the run ended (one begun before may lack the verdicts) and its response must
//! have been handed over whole before the endpoint stops.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use super::Hub;
use crate::report::OutputReport;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running metrics endpoint; stops when finished or dropped.
pub struct Listener {
    addr: SocketAddr,
    scrapes: Arc<Scrapes>,
    task: tokio::task::JoinHandle<()>,
}

/// How often, and when, the endpoint was scraped.
#[derive(Default)]
struct Scrapes {
    count: AtomicU64,
    /// Scrapes begun, numbering them from 1.
    begun: AtomicU64,
    /// The highest number of a scrape whose response hyper has consumed whole.
    served: AtomicU64,
    /// The last two scrapes' times.
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Scrapes {
    /// A scrape begins: its number.
    fn begin(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn seen(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut t = self.times.lock().expect("scrapes lock");
        *t = (t.1, Some(Instant::now()));
    }

    /// Scrape `n`'s response was consumed.
    fn served(&self, n: u64) {
        self.served.fetch_max(n, Ordering::SeqCst);
    }

    /// How long to wait for one more scrape: twice the scraper's interval, at most 30 s; zero
    /// when nothing scraped twice.
    fn linger(&self) -> Duration {
        match *self.times.lock().expect("scrapes lock") {
            (Some(a), Some(b)) => (b - a).mul_f64(2.0).min(Duration::from_secs(30)),
            _ => Duration::ZERO,
        }
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is taken or not ours to bind.
    #[error("--metrics-listen {addr}: {source}; pick a free port (or 127.0.0.1:0 for any)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
}

/// A response body that tells its scrape was served when hyper is done with it (it has taken
/// every byte, or the connection went away).
struct Served {
    inner: Full<Bytes>,
    scrapes: Option<(Arc<Scrapes>, u64)>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some((s, n)) = self.scrapes.take() {
            s.served(n);
        }
    }
}

impl hyper::body::Body for Served {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Answers one request: `/metrics` (or `/`) with the families, anything else 404.
async fn answer(
    hub: Arc<Hub>,
    scrapes: Arc<Scrapes>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Served>, Infallible> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/" {
        let mut r = Response::new(Served {
            inner: Full::new(Bytes::from_static(b"try /metrics\n")),
            scrapes: None,
        });
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    }
    let n = scrapes.begin();
    let text = super::family::openmetrics(hub.families().await, hub.common_labels());
    scrapes.seen();
    let mut r = Response::new(Served {
        inner: Full::new(Bytes::from(text)),
        scrapes: Some((scrapes, n)),
    });
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    Ok(r)
}

impl Listener {
    /// Binds `addr` and serves `hub` there until finished.
    pub async fn start(hub: Arc<Hub>, addr: &str) -> Result<Listener, Error> {
        let bind = |source| Error::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        let scrapes = Arc::new(Scrapes::default());
        let counter = scrapes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hub, counter) = (hub.clone(), counter.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(hub.clone(), counter.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Listener {
            addr: local,
            scrapes,
            task,
        })
    }

    /// The address it listens on (the port chosen when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for one more scrape (see the module's note), stops serving and says how often it
    /// was scraped.
    pub async fn finish(self) -> OutputReport {
        // The first scrape begun from now on sees the run's end.
        let wanted = self.scrapes.begun.load(Ordering::SeqCst) + 1;
        let until = Instant::now() + self.scrapes.linger();
        while self.scrapes.served.load(Ordering::SeqCst) < wanted && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.scrapes.served.load(Ordering::SeqCst) >= wanted {
            // Handed to hyper whole: a moment for it to reach the socket.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.task.abort();
        OutputReport {
            kind: "metrics-listen".into(),
            target: self.addr.to_string(),
            requests: self.scrapes.count.load(Ordering::Relaxed),
            ..OutputReport::default()
        }
    }
}

//! A real Prometheus (Debian's package, installed by scripts/setup.sh) for end-to-end tests: on a
//! free loopback port, scraping what a test asks, receiving remote write, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A Prometheus process, killed on drop.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `path` from `host` (reqwest, 30 s at most): the status code and the body.
pub fn http_get(host: &str, path: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .ok()?;
    let r = client.get(format!("http://{host}{path}")).send().ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().ok()?))
}

/// Percent-encodes a query parameter.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Starts Prometheus scraping each of `targets` (host:port) every second as job `job`, with
    /// the remote-write receiver on, and waits until it is ready.
    pub fn start(job: &str, targets: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let scrape = if targets.is_empty() {
            String::new()
        } else {
            format!(
                "scrape_configs:\n  - job_name: {job}\n    static_configs: [{{ targets: [{}] }}]\n",
                list.join(", ")
            )
        };
        std::fs::write(
            &config,
            format!("global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n{scrape}"),
        )
        .unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={host}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/setup.sh installs it)");
        let p = Prometheus {
            child,
            url: format!("http://{host}"),
            host: host.clone(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&host, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "prometheus not ready after 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    /// GETs an API path with query parameters; the JSON answer (status and data or error).
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let (status, body) =
            http_get(&self.host, &format!("{path}?{}", q.join("&"))).expect("prometheus answers");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: HTTP {status}: {body}"))
    }

    /// An instant query's result vector; panics when Prometheus rejects it.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let v = self.api("/api/v1/query", &[("query", promql)]);
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

//! The live outputs a run was asked for on the command line (`--out prometheus-rw=URL`,
//! `--out-label`, `--out-interval`, `--metrics-listen`): checked before the run starts, started
//! together, finished together into the report's `outputs`.

use std::sync::Arc;
use std::time::Duration;

use super::{listen, remote_write, Hub};
use crate::report::OutputReport;

/// Why the live outputs asked for cannot be used; a usage error (exit 2) before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--out` names an output scen does not have, or gives no URL.
    #[error("--out {0}: expected prometheus-rw=URL (e.g. prometheus-rw=http://127.0.0.1:9090/api/v1/write)")]
    Spec(String),
    /// The remote-write URL is not an http(s) URL.
    #[error("--out prometheus-rw={url}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--out-label` is not `name=value` with a Prometheus label name, or names a label scen sets.
    #[error("--out-label {0}: expected name=value with a label name of letters, digits and _ (not starting with a digit or __), other than run_id, scenario, step, op, code, member, le, quantile, threshold and status")]
    Label(String),
    /// `--out-interval` is not a duration between 1s and 1h.
    #[error("--out-interval {0}: expected a duration from 1s to 1h, such as 5s")]
    Interval(String),
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    Listen(#[from] listen::Error),
}

/// Labels scen sets itself; a user label may not reuse them.
const RESERVED: [&str; 10] = [
    "run_id",
    "scenario",
    "step",
    "op",
    "code",
    "member",
    "le",
    "quantile",
    "threshold",
    "status",
];

/// What the command line asked for, checked.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Remote-write receivers.
    pub remote_write: Vec<remote_write::Config>,
    /// Labels added to every series.
    pub labels: Vec<(String, String)>,
    /// The address to serve `/metrics` on.
    pub listen: Option<String>,
}

impl Spec {
    /// Checks the flags: `outs` (`--out`), `labels` (`--out-label`), `interval`
    /// (`--out-interval`), `listen` (`--metrics-listen`).
    pub fn parse(
        outs: &[String],
        labels: &[String],
        interval: Option<&str>,
        listen: Option<&str>,
    ) -> Result<Spec, Error> {
        let interval = match interval {
            None => None,
            Some(text) => match crate::units::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => Some(d),
                _ => return Err(Error::Interval(text.to_string())),
            },
        };
        let mut spec = Spec {
            listen: listen.map(String::from),
            ..Spec::default()
        };
        for out in outs {
            let Some(("prometheus-rw", url)) = out.split_once('=') else {
                return Err(Error::Spec(out.clone()));
            };
            let bad = |why: &str| Error::Url {
                url: url.to_string(),
                why: why.to_string(),
            };
            let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(bad(
                    "expected an http(s) URL such as http://127.0.0.1:9090/api/v1/write",
                ));
            }
            let mut c = remote_write::Config::new(url);
            if let Some(d) = interval {
                c.interval = d;
            }
            spec.remote_write.push(c);
        }
        for l in labels {
            let ok_name = |n: &str| {
                let mut chars = n.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !n.starts_with("__")
                    && !RESERVED.contains(&n)
            };
            match l.split_once('=') {
                Some((n, v)) if ok_name(n) => spec.labels.push((n.to_string(), v.to_string())),
                _ => return Err(Error::Label(l.clone())),
            }
        }
        Ok(spec)
    }

    /// Whether any live output was asked for.
    pub fn any(&self) -> bool {
        !self.remote_write.is_empty() || self.listen.is_some()
    }

    /// A hub for the run and the outputs reading it, started.
    pub async fn start(&self) -> Result<(Arc<Hub>, Running), Error> {
        let hub = Hub::new(self.labels.clone());
        let listener = match &self.listen {
            Some(addr) => Some(listen::Listener::start(hub.clone(), addr).await?),
            None => None,
        };
        let pushers = self
            .remote_write
            .iter()
            .map(|c| remote_write::Output::start(hub.clone(), c.clone()))
            .collect();
        Ok((hub, Running { pushers, listener }))
    }
}

/// The outputs of a run, running.
pub struct Running {
    pushers: Vec<remote_write::Output>,
    listener: Option<listen::Listener>,
}

impl Running {
    /// Where `/metrics` is served, when it is.
    pub fn listening(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().map(listen::Listener::addr)
    }

    /// Pushes the last snapshot (bounded in time) and stops serving; what each output did.
    pub async fn finish(self) -> Vec<OutputReport> {
        // Together: a receiver that hangs costs one flush timeout, not one per output.
        let pushed = futures_util::future::join_all(self.pushers.into_iter().map(|p| p.finish()));
        let served = async {
            match self.listener {
                Some(l) => Some(l.finish().await),
                None => None,
            }
        };
        let (mut out, served) = tokio::join!(pushed, served);
        out.extend(served);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_are_checked_before_the_run() {
        let ok = Spec::parse(
            &s(&["prometheus-rw=http://127.0.0.1:9090/api/v1/write"]),
            &s(&["team=storage"]),
            Some("2s"),
            None,
        )
        .unwrap();
        assert_eq!(ok.remote_write[0].interval, Duration::from_secs(2));
        assert_eq!(ok.labels, [("team".to_string(), "storage".to_string())]);
        assert!(ok.any());
        for (outs, labels, interval) in [
            (s(&["influxdb=http://x"]), s(&[]), None),
            (s(&["prometheus-rw"]), s(&[]), None),
            (s(&["prometheus-rw=ftp://h/x"]), s(&[]), None),
            (s(&["prometheus-rw=not a url"]), s(&[]), None),
            (s(&[]), s(&["step=x"]), None),
            (s(&[]), s(&["9x=1"]), None),
            (s(&[]), s(&["__name__=1"]), None),
            (s(&[]), s(&["novalue"]), None),
            (s(&[]), s(&[]), Some("100ms")),
            (s(&[]), s(&[]), Some("five")),
        ] {
            assert!(
                Spec::parse(&outs, &labels, interval, None).is_err(),
                "{outs:?} {labels:?} {interval:?} must be refused"
            );
        }
    }
}

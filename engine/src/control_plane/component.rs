//! One process of the embedded control plane (kube-apiserver, kube-scheduler,
//! kube-controller-manager, kwok): its command line, log file, health URL, and how it is waited
//! for and stopped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::embedded::Spawner;

/// The components scen can start.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// The KWOK controller.
    Kwok,
}

impl Which {
    /// The binary's name.
    pub fn bin(self) -> &'static str {
        match self {
            Which::KubeApiserver => "kube-apiserver",
            Which::KubeControllerManager => "kube-controller-manager",
            Which::KubeScheduler => "kube-scheduler",
            Which::Kwok => "kwok",
        }
    }
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.bin())
    }
}

/// One running component.
#[derive(Debug)]
pub struct Component {
    /// Which one.
    pub which: Which,
    /// The binary it runs.
    pub bin: PathBuf,
    /// Its flags.
    pub args: Vec<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The URL answering 200 once it is ready.
    pub health_url: String,
    /// The URL of its Prometheus metrics.
    pub metrics_url: String,
    /// Its log (stdout and stderr).
    pub log_path: PathBuf,
    /// `--version`'s answer.
    pub version: String,
    /// How long it took to become ready.
    pub ready_after: Duration,
    child: Option<Child>,
}

impl Component {
    /// Starts `bin args`, logging into `log_path`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        spawner: &Spawner,
        which: Which,
        bin: PathBuf,
        version: String,
        args: Vec<String>,
        port: u16,
        health_url: String,
        metrics_url: String,
        log_path: PathBuf,
    ) -> Result<Component> {
        let log = std::fs::File::create(&log_path).map_err(Error::Prepare)?;
        let log2 = log.try_clone().map_err(Error::Prepare)?;
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = spawner.spawn(cmd).map_err(|source| Error::Spawn {
            which,
            bin: bin.display().to_string(),
            source,
        })?;
        Ok(Component {
            which,
            bin,
            args,
            port,
            health_url,
            metrics_url,
            log_path,
            version,
            ready_after: Duration::ZERO,
            child: Some(child),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if it ended on its own.
    pub fn died(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(status.to_string())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until `health_url` answers 200 through `client`, failing early if the process
    /// exits, and after `timeout`.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        started: Instant,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = started + timeout;
        loop {
            if let Some(status) = self.died() {
                return Err(Error::Exited {
                    which: self.which,
                    status,
                    log_tail: self.log_tail(),
                });
            }
            let ok = matches!(
                client.get(&self.health_url).send().await,
                Ok(r) if r.status().is_success()
            );
            if ok {
                self.ready_after = started.elapsed();
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    which: self.which,
                    after: timeout,
                    url: self.health_url.clone(),
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(500));
    }
}

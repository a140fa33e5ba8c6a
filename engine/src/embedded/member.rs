//! One member process of an embedded cluster: its ports, data directory and log, and what faults
//! do to it — kill, restart, pause (SIGSTOP), resume, and slow fsync (strace's syscall delay).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::spawner::Spawner;
use super::{Error, Result};

/// One etcd member scen started.
#[derive(Debug)]
pub struct Member {
    /// Its `--name`.
    pub name: String,
    /// Client URL.
    pub client_url: String,
    /// Peer URL.
    pub peer_url: String,
    /// URL serving `/metrics` and `/health`.
    pub metrics_url: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Its log file (appended to across restarts).
    pub log_path: PathBuf,
    bin: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
    strace: Option<Child>,
}

impl Member {
    /// A member that will run `bin args` (not started yet).
    pub(super) fn new(
        name: String,
        urls: [String; 3],
        data_dir: PathBuf,
        log_path: PathBuf,
        bin: PathBuf,
        args: Vec<String>,
    ) -> Self {
        let [client_url, peer_url, metrics_url] = urls;
        Member {
            name,
            client_url,
            peer_url,
            metrics_url,
            data_dir,
            log_path,
            bin,
            args,
            child: None,
            paused: false,
            strace: None,
        }
    }

    /// Starts the process (again, after a kill: same ports, same data).
    pub fn spawn(&mut self, spawner: &Spawner) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(Error::Prepare)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = spawner.spawn(cmd).map_err(|source| Error::Spawn {
            bin: self.bin.display().to_string(),
            source,
        })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (paused counts as alive).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Whether it is stopped with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether its fsyncs are being slowed.
    pub fn is_slowed(&self) -> bool {
        self.strace.is_some()
    }

    /// The exit status, if the process ended on its own (a fault's kill detaches it first, so
    /// only a crash shows here); the member is left as it is.
    pub fn died(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(status.to_string())
    }

    /// The exit status, if the process ended on its own.
    pub(super) fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status.to_string())
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGKILL, as a crash or an OOM kill would; waits for the process to be gone.
    pub fn kill(&mut self) {
        self.fast_fsync();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn terminate(&mut self) {
        self.ask_to_stop();
        self.wait_stopped(Instant::now() + Duration::from_secs(5));
    }

    /// The first half of [`Member::terminate`]: SIGTERM (after SIGCONT when paused), without
    /// waiting, so that every member of a cluster stops at once.
    pub fn ask_to_stop(&mut self) {
        self.fast_fsync();
        if self.paused {
            self.signal(libc::SIGCONT);
        }
        self.signal(libc::SIGTERM);
    }

    /// The second half: waits for the member to exit until `deadline`, then SIGKILL.
    pub fn wait_stopped(&mut self, deadline: Instant) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        self.paused = false;
    }

    /// SIGSTOP: a hung member (its connections stay open, nothing answers).
    pub fn pause(&mut self) {
        if self.pid().is_some() && !self.paused {
            self.signal(libc::SIGSTOP);
            self.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
            self.paused = false;
        }
    }

    /// Delays every `fdatasync` and `fsync` of the member by `delay`: strace attached to every
    /// thread of the running process with a syscall delay injection. etcd's own
    /// `etcd_disk_wal_fsync_duration_seconds` sees the delay.
    pub fn slow_fsync(&mut self, spawner: &Spawner, delay: Duration) -> Result<()> {
        self.fast_fsync();
        let pid = self
            .pid()
            .ok_or_else(|| Error::Fault(format!("member {} is not running", self.name)))?;
        let us = delay.as_micros().max(1);
        let mut cmd = Command::new("strace");
        cmd.args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fdatasync,fsync",
        ])
        .arg("-e")
        .arg(format!("inject=fdatasync,fsync:delay_enter={us}"))
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = spawner.spawn(cmd).map_err(|e| {
            Error::Fault(format!(
                "cannot run strace ({e}); run scripts/setup.sh, which installs it"
            ))
        })?;
        self.strace = Some(child);
        // Attached once every thread has a tracer.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if all_threads_traced(pid) {
                return Ok(());
            }
            if let Some(status) = self
                .strace
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                self.strace = None;
                return Err(Error::Fault(format!(
                    "strace could not attach to {} ({status}): ptrace may be forbidden here",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.fast_fsync();
        Err(Error::Fault(format!(
            "strace did not attach to every thread of {} within 5 s",
            self.name
        )))
    }

    /// Removes a `slow_fsync` delay (strace detaches on SIGINT).
    pub fn fast_fsync(&mut self) {
        if let Some(mut s) = self.strace.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(s.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(n).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// Whether every thread of `pid` has a tracer.
fn all_threads_traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for t in tasks.flatten() {
        any = true;
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let traced = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .is_some_and(|v| v.trim() != "0");
        if !traced {
            return false;
        }
    }
    any
}

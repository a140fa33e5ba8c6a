//! CPU time and memory of processes, from the kernel: scen's own (getrusage) and an etcd member
//! scen started (/proc/<pid>).

use std::time::Duration;

/// CPU time (user + system) this process has used so far.
pub fn self_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system) of another process.
pub fn cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let (utime, stime): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz))
}

/// CPU times of a set of processes at one moment, to measure what they used since.
#[derive(Debug, Clone, Default)]
pub struct CpuMark(Vec<(u32, Duration)>);

impl CpuMark {
    /// The CPU times of `pids` now (a process already gone is left out).
    pub fn now(pids: &[u32]) -> Self {
        CpuMark(pids.iter().filter_map(|p| Some((*p, cpu(*p)?))).collect())
    }

    /// CPU `pids` used since the mark: a process in the mark counts from its marked time, one
    /// started since (a restarted member) from its start. A process gone since is lost.
    pub fn since(&self, pids: &[u32]) -> Duration {
        pids.iter()
            .filter_map(|p| {
                let now = cpu(*p)?;
                let before = self.0.iter().find(|(q, _)| q == p).map(|(_, c)| *c);
                Some(now.saturating_sub(before.unwrap_or_default()))
            })
            .sum()
    }
}

/// Resident memory of another process, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss(me).unwrap() > 1 << 20);
        // Spin until this process has used 20 ms more CPU (on a loaded box wall time says
        // nothing about CPU): the reading must move, within a bound.
        let (start, spin) = (self_cpu(), std::time::Instant::now());
        while self_cpu() < start + Duration::from_millis(20) {
            assert!(
                spin.elapsed() < Duration::from_secs(20),
                "the CPU time never moved"
            );
        }
        assert!(self_cpu() >= Duration::from_millis(20));
        assert!(cpu(me).is_some());
        assert!(cpu(u32::MAX).is_none());
    }
}

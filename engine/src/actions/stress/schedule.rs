//! The open-loop schedule: when request number `i` is due, for a target rate that holds or ramps
//! linearly through stages (k6's ramping-arrival-rate). Latency is measured from these intended
//! times, so a slow server cannot hide behind a busy client (coordinated omission).

use std::time::Duration;

/// One stage: ramp linearly from the previous rate to `rate` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Requests per second at the end of the stage.
    pub rate: f64,
    /// Stage length.
    pub duration: Duration,
}

/// A piecewise-linear arrival schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// (start time s, start rate, end rate, length s, requests before this stage)
    segments: Vec<(f64, f64, f64, f64, f64)>,
    total: f64,
    length: f64,
}

impl Schedule {
    /// Builds a schedule starting at `start_rate`.
    pub fn new(start_rate: f64, stages: &[Stage]) -> Self {
        let mut segments = Vec::new();
        let (mut t, mut n, mut r0) = (0.0, 0.0, start_rate);
        for s in stages {
            let d = s.duration.as_secs_f64();
            segments.push((t, r0, s.rate, d, n));
            n += (r0 + s.rate) / 2.0 * d;
            t += d;
            r0 = s.rate;
        }
        Schedule {
            segments,
            total: n,
            length: t,
        }
    }

    /// Requests the whole schedule asks for.
    pub fn total(&self) -> u64 {
        self.total.floor() as u64
    }

    /// The schedule's length.
    pub fn length(&self) -> Duration {
        Duration::from_secs_f64(self.length)
    }

    /// The mean target rate over the schedule.
    pub fn mean_rate(&self) -> f64 {
        if self.length > 0.0 {
            self.total / self.length
        } else {
            0.0
        }
    }

    /// The rate asked for at `t` from the start (0 past the end).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        self.segments
            .iter()
            .find(|(t0, _, _, d, _)| t >= *t0 && t < t0 + d)
            .map_or(0.0, |&(t0, r0, r1, d, _)| r0 + (r1 - r0) * (t - t0) / d)
    }

    /// When request `i` (0-based) is due, from the start; `None` past the end.
    pub fn due(&self, i: u64) -> Option<Duration> {
        let k = i as f64;
        if k >= self.total.floor() {
            return None;
        }
        for &(t0, r0, r1, d, n0) in &self.segments {
            let n_seg = (r0 + r1) / 2.0 * d;
            if k < n0 + n_seg {
                let x = k - n0;
                // Solve n(t) = r0 t + (r1 - r0) t² / (2d) = x for t in [0, d].
                let a = (r1 - r0) / (2.0 * d);
                let t = if a.abs() < 1e-12 {
                    x / r0
                } else {
                    (-r0 + (r0 * r0 + 4.0 * a * x).max(0.0).sqrt()) / (2.0 * a)
                };
                return Some(Duration::from_secs_f64(t0 + t.clamp(0.0, d)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_spaces_requests_evenly() {
        let s = Schedule::new(
            100.0,
            &[Stage {
                rate: 100.0,
                duration: Duration::from_secs(2),
            }],
        );
        assert_eq!(s.total(), 200);
        assert_eq!(s.due(0), Some(Duration::ZERO));
        assert!((s.due(50).unwrap().as_secs_f64() - 0.5).abs() < 1e-9);
        assert_eq!(s.due(200), None);
    }

    #[test]
    fn ramps_linearly_between_stages() {
        // Hold 100/s for 1 s, then ramp to 300/s over 1 s: 100 + 200 requests.
        let s = Schedule::new(
            100.0,
            &[
                Stage {
                    rate: 100.0,
                    duration: Duration::from_secs(1),
                },
                Stage {
                    rate: 300.0,
                    duration: Duration::from_secs(1),
                },
            ],
        );
        assert_eq!(s.total(), 300);
        assert!((s.mean_rate() - 150.0).abs() < 1e-9);
        assert!((s.rate_at(Duration::from_millis(500)) - 100.0).abs() < 1e-9);
        assert!((s.rate_at(Duration::from_millis(1500)) - 200.0).abs() < 1e-9);
        assert_eq!(s.rate_at(Duration::from_secs(3)), 0.0);
        // Half-way through the ramp (t = 1.5 s): n(0.5) = 100·0.5 + 100·0.5² = 75 more than the first 100.
        assert!((s.due(175).unwrap().as_secs_f64() - 1.5).abs() < 1e-6);
        let mut last = Duration::ZERO;
        for i in 0..300 {
            let d = s.due(i).unwrap();
            assert!(d >= last);
            last = d;
        }
    }
}

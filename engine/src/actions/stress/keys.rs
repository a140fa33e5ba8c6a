//! The key model of a stress step: which key each request touches (sequential, uniform or zipfian
//! over a key space) and how large keys and values are.

use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use serde::Deserialize;

use super::super::{Error, Result};

/// How keys are chosen from the key space.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// 0, 1, 2, ... wrapping at the key space.
    #[default]
    Sequential,
    /// Uniformly at random.
    Uniform,
    /// Zipf-distributed: a few hot keys, a long tail (exponent `zipf_s`, default 0.99).
    Zipfian,
}

/// The key model, from the step's options.
#[derive(Debug, Clone)]
pub struct KeyModel {
    base: String,
    width: usize,
    space: u64,
    pattern: Pattern,
    zipf: Option<Zipf<f64>>,
}

impl KeyModel {
    /// `base` is the full prefix (run prefix + key prefix); `key_size` the total key length in
    /// bytes (at least the prefix plus the digits of the largest index).
    pub fn new(
        base: String,
        key_size: usize,
        space: u64,
        pattern: Pattern,
        zipf_s: f64,
    ) -> Result<Self> {
        if space == 0 {
            return Err(Error::Options("key_space must be at least 1".into()));
        }
        let digits = (space.max(2) - 1).to_string().len();
        let width = key_size.saturating_sub(base.len()).max(digits);
        let zipf = match pattern {
            Pattern::Zipfian => Some(
                Zipf::new(space as f64, zipf_s)
                    .map_err(|e| Error::Options(format!("zipfian key choice: {e}")))?,
            ),
            _ => None,
        };
        Ok(KeyModel {
            base,
            width,
            space,
            pattern,
            zipf,
        })
    }

    /// The index of the key request `seq` (the worker's running count) touches.
    pub fn pick(&self, seq: u64, rng: &mut SmallRng) -> u64 {
        match self.pattern {
            Pattern::Sequential => seq % self.space,
            Pattern::Uniform => rng.random_range(0..self.space),
            Pattern::Zipfian => (self
                .zipf
                .as_ref()
                .expect("zipf set for zipfian")
                .sample(rng) as u64)
                .saturating_sub(1),
        }
    }

    /// Writes the key with index `i` into `buf` (reused between requests).
    pub fn key(&self, i: u64, buf: &mut Vec<u8>) {
        use std::io::Write;
        buf.clear();
        buf.extend_from_slice(self.base.as_bytes());
        let _ = write!(buf, "{i:0width$}", width = self.width);
    }
}

/// Value sizes: fixed, or uniformly between `min` and `max` bytes.
#[derive(Debug, Clone, Copy)]
pub struct ValueModel {
    /// Smallest value.
    pub min: usize,
    /// Largest value.
    pub max: usize,
}

impl ValueModel {
    /// The size of the next value.
    pub fn size(&self, rng: &mut SmallRng) -> usize {
        if self.min == self.max {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_have_the_requested_size_and_stay_in_the_space() {
        let m = KeyModel::new("/scen/r/stress/".into(), 256, 1000, Pattern::Uniform, 0.99).unwrap();
        let mut buf = Vec::new();
        let mut rng = SmallRng::seed_from_u64(1);
        for s in 0..1000 {
            let i = m.pick(s, &mut rng);
            assert!(i < 1000);
            m.key(i, &mut buf);
            assert_eq!(buf.len(), 256);
            assert!(buf.starts_with(b"/scen/r/stress/"));
        }
        let m = KeyModel::new("p/".into(), 0, 100, Pattern::Sequential, 0.99).unwrap();
        m.key(m.pick(105, &mut rng), &mut buf);
        assert_eq!(buf, b"p/05");
    }

    #[test]
    fn zipfian_prefers_low_indices() {
        let m = KeyModel::new("k/".into(), 0, 10_000, Pattern::Zipfian, 0.99).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let hot = (0..10_000).filter(|s| m.pick(*s, &mut rng) < 100).count();
        assert!(
            hot > 3_000,
            "1% of keys should get far more than 1% of requests, got {hot}"
        );
    }
}

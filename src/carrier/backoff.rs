//! Reconnect delays: exponential backoff with jitter, pure and seedable.

use std::time::Duration;

use serde::Deserialize;

/// How a bind slot waits between connection attempts. In a carrier config this is the
/// `[reconnect]` table; every key is optional.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectConfig {
    /// The first delay, in milliseconds. Default 1 000.
    pub initial_ms: u64,
    /// The longest delay, in milliseconds. Default 60 000.
    pub max_ms: u64,
    /// Each failed attempt multiplies the delay by this. Default 2.
    pub multiplier: f64,
    /// The SMSC said ESME_RALYBND (it still holds our previous session): wait at least this
    /// long, in milliseconds, for it to time that session out. Default 30 000.
    pub already_bound_ms: u64,
    /// A bind that stayed up this long, in milliseconds, counts as healthy: the next failure
    /// starts again from `initial_ms`. Default 30 000.
    pub stable_after_ms: u64,
    /// Seed for the jitter; 0 (the default) seeds from the clock. Tests set it.
    pub seed: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_ms: 1_000,
            max_ms: 60_000,
            multiplier: 2.0,
            already_bound_ms: 30_000,
            stable_after_ms: 30_000,
            seed: 0,
        }
    }
}

impl ReconnectConfig {
    /// Checks the values; the error names the key (relative to the table).
    pub fn validate(&self) -> Result<(), String> {
        if self.initial_ms > self.max_ms {
            return Err(format!(
                "initial_ms ({}) is above max_ms ({})",
                self.initial_ms, self.max_ms
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(format!(
                "multiplier must be at least 1, not {}",
                self.multiplier
            ));
        }
        Ok(())
    }
}

/// The delay sequence of one bind slot.
///
/// Attempt `k` (from 0) waits a random time in `[d/2, d]` where `d = min(max, initial *
/// multiplier^k)` ("equal jitter"): never less than half the backoff, so a whole fleet
/// reconnecting after an outage spreads out instead of arriving at once.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: ReconnectConfig,
    attempt: u32,
    rng: SplitMix,
}

impl Backoff {
    /// A fresh sequence; `salt` separates the slots of one carrier that share a seed.
    pub fn new(config: ReconnectConfig, salt: u64) -> Backoff {
        let seed = if config.seed == 0 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        } else {
            config.seed
        };
        Backoff {
            config,
            attempt: 0,
            rng: SplitMix(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// The delay before the next attempt; counts an attempt.
    pub fn next_delay(&mut self) -> Duration {
        let initial = self.config.initial_ms as f64;
        let d = (initial * self.config.multiplier.powi(self.attempt.min(64) as i32))
            .min(self.config.max_ms as f64);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2.0;
        Duration::from_secs_f64((half + half * self.rng.unit()) / 1000.0)
    }

    /// The delay after ESME_RALYBND: the next backoff, but at least `already_bound_ms`.
    pub fn already_bound_delay(&mut self) -> Duration {
        self.next_delay()
            .max(Duration::from_millis(self.config.already_bound_ms))
    }

    /// The bind was healthy: start over from the initial delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts counted since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// SplitMix64: tiny, seedable, good enough for jitter.
#[derive(Clone, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ReconnectConfig {
        ReconnectConfig {
            initial_ms: 100,
            max_ms: 1_000,
            multiplier: 2.0,
            already_bound_ms: 5_000,
            stable_after_ms: 1_000,
            seed: 7,
        }
    }

    #[test]
    fn delays_double_within_half_jitter_up_to_the_maximum() {
        let mut b = Backoff::new(config(), 0);
        for ceiling in [100u64, 200, 400, 800, 1000, 1000] {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(ceiling / 2) && d <= Duration::from_millis(ceiling),
                "{d:?} outside [{}, {ceiling}] ms",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn slots_with_one_seed_get_different_jitter() {
        let mut a = Backoff::new(config(), 1);
        let mut b = Backoff::new(config(), 2);
        let (da, db): (Vec<_>, Vec<_>) = (0..4).map(|_| (a.next_delay(), b.next_delay())).unzip();
        assert_ne!(da, db);
    }

    #[test]
    fn already_bound_waits_at_least_its_own_delay() {
        let mut b = Backoff::new(config(), 0);
        assert!(b.already_bound_delay() >= Duration::from_millis(5_000));
    }
}

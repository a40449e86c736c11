//! The per-bind send rate: a configured limit in PDUs per second (every part counts), lowered
//! when the SMSC says it is overloaded and raised back step by step.
//!
//! [`AdaptiveRate`] is the pure controller (time passed in). [`Throttle`] applies its rate
//! with a GCRA limiter from `governor`.
//!
//! The limit holds over any one-second window: the limiter lets a small burst through at once
//! (enough for one message's parts) and spaces the rest so that burst plus steady flow never
//! exceed the rate within a second.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// How a bind reacts to ESME_RTHROTTLED and ESME_RMSGQFUL. In a carrier config this is the
/// `[throttle]` table; every key is optional.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// After a throttling response, send nothing on the bind for this long, in milliseconds.
    /// Default 1 000.
    pub pause_ms: u64,
    /// Multiply the rate by this on a throttling response (at most once per pause).
    /// Default 0.5.
    pub decrease: f64,
    /// The rate never goes below this share of the configured rate. Default 0.1.
    pub min_share: f64,
    /// Without throttling for this long, raise the rate by one step, in milliseconds.
    /// Default 2 000.
    pub recover_interval_ms: u64,
    /// One step, as a share of the configured rate. Default 0.1.
    pub recover_step: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            pause_ms: 1_000,
            decrease: 0.5,
            min_share: 0.1,
            recover_interval_ms: 2_000,
            recover_step: 0.1,
        }
    }
}

impl ThrottleConfig {
    /// Checks the values; the error names the key (relative to the table).
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: &str, v: f64, zero_ok: bool| {
            if v.is_finite() && v <= 1.0 && (v > 0.0 || (zero_ok && v == 0.0)) {
                Ok(())
            } else {
                Err(format!("{name} must be above 0 and at most 1, not {v}"))
            }
        };
        share("decrease", self.decrease, false)?;
        share("min_share", self.min_share, false)?;
        share("recover_step", self.recover_step, false)?;
        if self.recover_interval_ms == 0 {
            return Err("recover_interval_ms must be above 0".into());
        }
        Ok(())
    }
}

/// The adaptive controller: the share of the configured rate the bind may use now, and whether
/// it is paused. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AdaptiveRate {
    config: ThrottleConfig,
    /// The configured rate, PDUs per second; `None` for no limit.
    base: Option<f64>,
    /// The share of `base` in force, in `min_share..=1`.
    share: f64,
    /// No sending before this instant.
    paused_until: Option<Instant>,
    /// When the share last went down or up; recovery counts from here.
    last_change: Instant,
}

impl AdaptiveRate {
    /// A controller at the full configured rate (`None`: no limit; throttling then only
    /// pauses the bind).
    pub fn new(config: ThrottleConfig, base: Option<f64>, now: Instant) -> AdaptiveRate {
        AdaptiveRate {
            config,
            base,
            share: 1.0,
            paused_until: None,
            last_change: now,
        }
    }

    /// The rate in force, PDUs per second; `None` for no limit.
    pub fn rate(&self) -> Option<f64> {
        self.base.map(|b| b * self.share)
    }

    /// The share of the configured rate in force.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// When the pause ends, if one is in force at `now`.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|&until| until > now)
    }

    /// A throttling response arrived at `now`: pause, and lower the rate unless it was
    /// lowered within the last pause already (one overloaded moment yields many such
    /// responses for the PDUs already in flight). Returns true if the rate changed.
    pub fn on_throttled(&mut self, now: Instant) -> bool {
        let pause = Duration::from_millis(self.config.pause_ms);
        let recently = now.saturating_duration_since(self.last_change) < pause && self.share < 1.0;
        self.paused_until = Some(now + pause);
        if recently {
            return false;
        }
        let share = (self.share * self.config.decrease).max(self.config.min_share);
        let changed = share < self.share;
        self.share = share;
        self.last_change = now;
        changed && self.base.is_some()
    }

    /// Raises the rate one step if `recover_interval` has passed since the last change and the
    /// bind is not paused. Returns true if the rate changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.share >= 1.0 || self.paused_until(now).is_some() {
            return false;
        }
        let interval = Duration::from_millis(self.config.recover_interval_ms);
        if now.saturating_duration_since(self.last_change) < interval {
            return false;
        }
        self.share = (self.share + self.config.recover_step).min(1.0);
        self.last_change = now;
        self.base.is_some()
    }
}

/// Why a bind could not take a message's parts now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Try again after this long.
    Wait(Duration),
    /// The message has more parts than the limiter ever lets through at once.
    TooManyParts,
}

/// A bind's rate limit: the adaptive controller applied through a GCRA limiter.
pub struct Throttle {
    adaptive: AdaptiveRate,
    limiter: Option<DefaultDirectRateLimiter>,
    /// The most parts let through at once.
    max_burst: u32,
    /// The rate went up since [`Throttle::take_changed`] was last called.
    changed: bool,
}

impl Throttle {
    /// A throttle at `tps` PDUs per second (`None`: unlimited) that lets up to `max_burst`
    /// parts (one message's) through at once.
    pub fn new(config: ThrottleConfig, tps: Option<f64>, max_burst: u32, now: Instant) -> Self {
        let adaptive = AdaptiveRate::new(config, tps, now);
        let limiter = adaptive.rate().map(|r| limiter(r, max_burst));
        Throttle {
            adaptive,
            limiter,
            max_burst,
            changed: false,
        }
    }

    /// The controller.
    pub fn adaptive(&self) -> &AdaptiveRate {
        &self.adaptive
    }

    /// Takes `n` tokens now, or says how long to wait. May raise the rate a step (see
    /// [`AdaptiveRate::poll`]; [`Throttle::take_changed`] tells).
    pub fn try_acquire(&mut self, now: Instant, n: u32) -> Result<(), Refusal> {
        if let Some(until) = self.adaptive.paused_until(now) {
            return Err(Refusal::Wait(until - now));
        }
        if self.adaptive.poll(now) {
            self.rebuild();
            self.changed = true;
        }
        let (Some(limiter), Some(n)) = (&self.limiter, NonZeroU32::new(n)) else {
            return Ok(());
        };
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::Wait(not_until.wait_time_from(
                governor::clock::Clock::now(&governor::clock::DefaultClock::default()),
            ))),
            Err(_) => Err(Refusal::TooManyParts),
        }
    }

    /// True once after the rate went up in [`Throttle::try_acquire`], to update a gauge.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// A throttling response arrived.
    pub fn on_throttled(&mut self, now: Instant) {
        if self.adaptive.on_throttled(now) {
            self.rebuild();
        }
    }

    /// The rate in force, PDUs per second; 0 for unlimited.
    pub fn rate(&self) -> f64 {
        self.adaptive.rate().unwrap_or(0.0)
    }

    fn rebuild(&mut self) {
        self.limiter = self.adaptive.rate().map(|r| limiter(r, self.max_burst));
    }
}

/// A limiter that never exceeds `rate` in any one-second window: a burst `b` of at most
/// `max_burst` (and at most half the rate), then one PDU every `1 / (rate - b)` seconds.
fn limiter(rate: f64, max_burst: u32) -> DefaultDirectRateLimiter {
    let rate = rate.max(0.001);
    let burst = (rate / 2.0)
        .floor()
        .min(f64::from(max_burst.max(1)))
        .max(1.0);
    let steady = (rate - burst).max(rate / 2.0);
    let period = Duration::from_secs_f64(1.0 / steady).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(burst as u32).unwrap_or(NonZeroU32::MIN);
    // with_period is None only for a zero period, excluded just above.
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            pause_ms: 100,
            decrease: 0.5,
            min_share: 0.2,
            recover_interval_ms: 1000,
            recover_step: 0.25,
        }
    }

    #[test]
    fn a_throttling_response_pauses_and_halves_the_rate() {
        let t0 = Instant::now();
        let mut a = AdaptiveRate::new(config(), Some(100.0), t0);
        assert!(a.on_throttled(t0));
        assert_eq!(a.rate(), Some(50.0));
        assert_eq!(a.paused_until(t0 + ms(50)), Some(t0 + ms(100)));
        assert_eq!(a.paused_until(t0 + ms(100)), None);
    }

    #[test]
    fn a_burst_of_throttling_responses_lowers_the_rate_once() {
        let t0 = Instant::now();
        let mut a = AdaptiveRate::new(config(), Some(100.0), t0);
        a.on_throttled(t0);
        for i in 1..10 {
            assert!(!a.on_throttled(t0 + ms(i)), "same overload, same step");
        }
        assert_eq!(a.rate(), Some(50.0));
        assert_eq!(
            a.paused_until(t0 + ms(9)),
            Some(t0 + ms(109)),
            "pause extended"
        );
        // After the pause, a new throttling response is a new overload.
        assert!(a.on_throttled(t0 + ms(200)));
        assert_eq!(a.rate(), Some(25.0));
    }

    #[test]
    fn never_goes_below_the_floor() {
        let t0 = Instant::now();
        let mut a = AdaptiveRate::new(config(), Some(100.0), t0);
        for i in 0..10 {
            a.on_throttled(t0 + ms(i * 1000));
        }
        assert_eq!(a.rate(), Some(20.0));
    }

    #[test]
    fn recovers_one_step_per_quiet_interval_up_to_the_configured_rate() {
        let t0 = Instant::now();
        let mut a = AdaptiveRate::new(config(), Some(100.0), t0);
        a.on_throttled(t0);
        assert!(!a.poll(t0 + ms(999)), "not yet");
        assert!(a.poll(t0 + ms(1000)));
        assert_eq!(a.rate(), Some(75.0));
        assert!(!a.poll(t0 + ms(1500)), "one step per interval");
        assert!(a.poll(t0 + ms(2000)));
        assert_eq!(a.rate(), Some(100.0));
        assert!(!a.poll(t0 + ms(9000)), "already at the configured rate");
    }

    #[test]
    fn throttling_during_recovery_starts_it_over() {
        let t0 = Instant::now();
        let mut a = AdaptiveRate::new(config(), Some(100.0), t0);
        a.on_throttled(t0);
        a.poll(t0 + ms(1000));
        assert_eq!(a.rate(), Some(75.0));
        a.on_throttled(t0 + ms(1500));
        assert_eq!(a.rate(), Some(37.5));
        assert!(!a.poll(t0 + ms(2400)));
        assert!(a.poll(t0 + ms(2500)));
    }

    #[test]
    fn an_unlimited_bind_only_pauses() {
        let t0 = Instant::now();
        let mut a = AdaptiveRate::new(config(), None, t0);
        assert!(!a.on_throttled(t0), "no rate to change");
        assert_eq!(a.rate(), None);
        assert!(a.paused_until(t0).is_some());
    }

    #[test]
    fn throttle_refuses_while_paused_and_says_how_long() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config(), None, 10, t0);
        assert_eq!(t.try_acquire(t0, 3), Ok(()));
        t.on_throttled(t0);
        assert_eq!(t.try_acquire(t0 + ms(40), 1), Err(Refusal::Wait(ms(60))));
        assert_eq!(t.try_acquire(t0 + ms(100), 1), Ok(()));
    }

    #[test]
    fn limiter_lets_a_burst_through_then_spaces_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config(), Some(100.0), 10, t0);
        assert_eq!(t.try_acquire(t0, 10), Ok(()), "one message's parts at once");
        assert!(matches!(t.try_acquire(t0, 10), Err(Refusal::Wait(_))));
        assert_eq!(t.try_acquire(t0, 11), Err(Refusal::TooManyParts));
    }

    #[test]
    fn config_validation_names_the_key() {
        let bad = ThrottleConfig {
            decrease: 0.0,
            ..config()
        };
        assert!(bad.validate().unwrap_err().contains("decrease"));
        assert!(ThrottleConfig::default().validate().is_ok());
    }
}

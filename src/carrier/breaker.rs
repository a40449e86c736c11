//! A circuit breaker as a pure state machine: no clock reads, time passed in as `now`.
//!
//! - **Closed**: traffic flows. It opens after `consecutive_failures` failures in a row, or
//!   when, over the last `window`, at least `min_requests` results were seen and the share of
//!   failures reached `error_rate`.
//! - **Open**: no traffic, for `cooldown`.
//! - **Half-open**: at most `probes` requests in flight at once; `probes` successes close it,
//!   any failure opens it again for another cooldown.
//!
//! What counts as a failure is the caller's decision (the pool's is in [`super`]): timeouts,
//! transient errors and bind failures do; throttling never does, and a permanent error is a
//! carrier that works (the message was at fault).

use std::time::{Duration, Instant};

use serde::Deserialize;

/// Where a breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// A few probe requests test whether the peer has recovered.
    HalfOpen,
    /// No traffic until the cooldown ends.
    Open,
}

impl BreakerState {
    /// The name used in logs and metric labels: `closed`, `half_open`, `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The value of the [`crate::metrics::BREAKER_STATE`] gauge.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// A state change, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
}

/// A breaker's thresholds. In a carrier config these are the `[breaker]` and
/// `[carrier_breaker]` tables; every key is optional.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Open after this many failures in a row. Default 5. 0 turns this trigger off.
    pub consecutive_failures: u32,
    /// Open when failures reach this share of the results in the window. Default 0.5.
    /// 0 (or above 1) turns this trigger off.
    pub error_rate: f64,
    /// The sliding window for the error rate, in milliseconds. Default 10 000.
    pub window_ms: u64,
    /// The error rate only counts once the window holds this many results. Default 20.
    pub min_requests: u32,
    /// How long the breaker stays open before probing, in milliseconds. Default 10 000.
    pub cooldown_ms: u64,
    /// Probe requests in half-open state, and the successes needed to close. Default 3.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            error_rate: 0.5,
            window_ms: 10_000,
            min_requests: 20,
            cooldown_ms: 10_000,
            probes: 3,
        }
    }
}

impl BreakerConfig {
    /// Checks the values; the error names the key (relative to the table).
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) && self.error_rate.is_finite() {
            return Err(format!(
                "error_rate must be between 0 and 1, not {}",
                self.error_rate
            ));
        }
        if !self.error_rate.is_finite() {
            return Err("error_rate must be a number between 0 and 1".into());
        }
        if self.window_ms == 0 {
            return Err("window_ms must be above 0".into());
        }
        if self.probes == 0 {
            return Err("probes must be at least 1".into());
        }
        Ok(())
    }
}

/// The error-rate window is kept as this many buckets.
const BUCKETS: usize = 10;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which slice of time this bucket counts (now / bucket width).
    epoch: u64,
    successes: u32,
    failures: u32,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Closed {
        consecutive: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        /// Probes admitted and not yet answered.
        in_flight: u32,
        /// Probes answered with success.
        succeeded: u32,
    },
}

/// A circuit breaker. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    buckets: [Bucket; BUCKETS],
    /// The instant the buckets' epochs are counted from.
    origin: Instant,
    bucket_width: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Breaker {
        let window = Duration::from_millis(config.window_ms.max(1));
        Breaker {
            config,
            state: State::Closed { consecutive: 0 },
            buckets: [Bucket::default(); BUCKETS],
            origin: now,
            bucket_width: (window / BUCKETS as u32).max(Duration::from_micros(1)),
        }
    }

    /// The state, as of the last input. An open breaker whose cooldown has passed reports
    /// `Open` until [`Breaker::try_acquire`] or [`Breaker::poll`] moves it on.
    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When an open breaker starts probing; `None` unless open.
    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Moves an open breaker whose cooldown has passed to half-open.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen {
                    in_flight: 0,
                    succeeded: 0,
                };
                Some(Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                })
            }
            _ => None,
        }
    }

    /// Whether `n` requests may go now. Closed: yes. Open: no, until the cooldown has passed
    /// (then half-open). Half-open: yes while fewer than `probes` are in flight (a request of
    /// more than `probes` parts is let through alone); the requests admitted are counted as
    /// probes until their results come in through [`Breaker::record`] or
    /// [`Breaker::release`].
    pub fn try_acquire(&mut self, now: Instant, n: u32) -> (bool, Option<Transition>) {
        let transition = self.poll(now);
        let allowed = match &mut self.state {
            State::Closed { .. } => true,
            State::Open { .. } => false,
            State::HalfOpen { in_flight, .. } => {
                if *in_flight == 0 || *in_flight + n <= self.config.probes {
                    *in_flight += n;
                    true
                } else {
                    false
                }
            }
        };
        (allowed, transition)
    }

    /// Whether a request could go now, without admitting it.
    pub fn would_allow(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { in_flight, .. } => in_flight < self.config.probes,
        }
    }

    /// Gives back `n` admitted requests that produced no result (never sent, or throttled).
    pub fn release(&mut self, n: u32) {
        if let State::HalfOpen { in_flight, .. } = &mut self.state {
            *in_flight = in_flight.saturating_sub(n);
        }
    }

    /// Records results: `successes` and `failures` that came in at `now`. A batch is read as
    /// its successes first, so a failure in it is the most recent result.
    pub fn record(&mut self, now: Instant, successes: u32, failures: u32) -> Option<Transition> {
        if successes == 0 && failures == 0 {
            return None;
        }
        let transition = self.poll(now);
        let bucket = self.bucket(now);
        bucket.successes = bucket.successes.saturating_add(successes);
        bucket.failures = bucket.failures.saturating_add(failures);
        let next = match &mut self.state {
            State::Closed { consecutive } => {
                if failures == 0 {
                    *consecutive = 0;
                    None
                } else {
                    *consecutive = if successes > 0 {
                        failures
                    } else {
                        consecutive.saturating_add(failures)
                    };
                    let limit = self.config.consecutive_failures;
                    let tripped = (limit > 0 && *consecutive >= limit) || self.rate_exceeded(now);
                    tripped.then_some(BreakerState::Open)
                }
            }
            State::Open { .. } => None,
            State::HalfOpen {
                in_flight,
                succeeded,
            } => {
                *in_flight = in_flight.saturating_sub(successes + failures);
                if failures > 0 {
                    Some(BreakerState::Open)
                } else {
                    *succeeded += successes;
                    (*succeeded >= self.config.probes).then_some(BreakerState::Closed)
                }
            }
        };
        match next {
            Some(to) => Some(self.enter(now, to)),
            None => transition,
        }
    }

    /// Opens the breaker now whatever its state (e.g. the operator asked, or a fatal error).
    pub fn trip(&mut self, now: Instant) -> Option<Transition> {
        (self.state() != BreakerState::Open).then(|| self.enter(now, BreakerState::Open))
    }

    fn enter(&mut self, now: Instant, to: BreakerState) -> Transition {
        let from = self.state();
        self.state = match to {
            BreakerState::Closed => {
                // Start the error-rate window afresh: the failures that opened it are history.
                self.buckets = [Bucket::default(); BUCKETS];
                State::Closed { consecutive: 0 }
            }
            BreakerState::Open => State::Open {
                until: now + Duration::from_millis(self.config.cooldown_ms),
            },
            BreakerState::HalfOpen => State::HalfOpen {
                in_flight: 0,
                succeeded: 0,
            },
        };
        Transition { from, to }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        (since.as_nanos() / self.bucket_width.as_nanos().max(1)) as u64
    }

    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let epoch = self.epoch(now);
        let bucket = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket {
                epoch,
                successes: 0,
                failures: 0,
            };
        }
        bucket
    }

    fn rate_exceeded(&self, now: Instant) -> bool {
        let rate = self.config.error_rate;
        if rate <= 0.0 || rate > 1.0 {
            return false;
        }
        let epoch = self.epoch(now);
        let (mut ok, mut failed) = (0u64, 0u64);
        for b in &self.buckets {
            if epoch.saturating_sub(b.epoch) < BUCKETS as u64 {
                ok += u64::from(b.successes);
                failed += u64::from(b.failures);
            }
        }
        let total = ok + failed;
        total >= u64::from(self.config.min_requests.max(1)) && failed as f64 >= rate * total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            error_rate: 0.5,
            window_ms: 1000,
            min_requests: 10,
            cooldown_ms: 500,
            probes: 2,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        assert_eq!(b.record(t0, 0, 2), None);
        assert_eq!(b.record(t0, 1, 0), None, "a success resets the run");
        assert_eq!(b.record(t0, 0, 2), None);
        let t = b
            .record(t0 + ms(1), 0, 1)
            .expect("third failure in a row opens it");
        assert_eq!(t.to, BreakerState::Open);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire(t0 + ms(2), 1).0);
    }

    #[test]
    fn opens_on_error_rate_over_the_window_once_enough_requests_were_seen() {
        let t0 = Instant::now();
        let config = BreakerConfig {
            consecutive_failures: 0,
            ..config()
        };
        let mut b = Breaker::new(config, t0);
        // Alternating results: never two failures in a row, but half of them failures.
        for i in 0..4 {
            assert_eq!(b.record(t0 + ms(i * 10), 1, 1), None, "below min_requests");
        }
        let t = b
            .record(t0 + ms(50), 1, 1)
            .expect("10 results, half failed");
        assert_eq!(t.to, BreakerState::Open);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let config = BreakerConfig {
            consecutive_failures: 0,
            ..config()
        };
        let mut b = Breaker::new(config, t0);
        b.record(t0, 0, 8);
        // Two seconds later the window (one second) holds only new results.
        assert_eq!(b.record(t0 + ms(2000), 10, 2), None);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_opens_after_the_cooldown_and_closes_after_the_probes_succeed() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        b.record(t0, 0, 3);
        assert!(!b.try_acquire(t0 + ms(499), 1).0, "still cooling down");
        let (allowed, t) = b.try_acquire(t0 + ms(500), 1);
        assert!(allowed);
        assert_eq!(t.map(|t| t.to), Some(BreakerState::HalfOpen));
        assert!(b.try_acquire(t0 + ms(500), 1).0, "second probe");
        assert!(!b.try_acquire(t0 + ms(500), 1).0, "only two probes at once");
        assert_eq!(b.record(t0 + ms(510), 1, 0), None);
        let t = b
            .record(t0 + ms(520), 1, 0)
            .expect("two successes close it");
        assert_eq!(t.to, BreakerState::Closed);
        assert!(b.try_acquire(t0 + ms(521), 5).0);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_full_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        b.record(t0, 0, 3);
        assert!(b.try_acquire(t0 + ms(600), 1).0);
        let t = b.record(t0 + ms(610), 0, 1).expect("reopens");
        assert_eq!((t.from, t.to), (BreakerState::HalfOpen, BreakerState::Open));
        assert_eq!(b.open_until(), Some(t0 + ms(1110)));
        assert!(!b.would_allow(t0 + ms(1100)));
        assert!(b.would_allow(t0 + ms(1110)));
    }

    #[test]
    fn released_probes_make_room_for_others() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        b.record(t0, 0, 3);
        assert!(b.try_acquire(t0 + ms(500), 2).0);
        assert!(!b.try_acquire(t0 + ms(500), 1).0);
        b.release(2);
        assert!(b.try_acquire(t0 + ms(500), 1).0);
    }

    #[test]
    fn a_message_larger_than_the_probe_allowance_goes_alone() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(), t0);
        b.record(t0, 0, 3);
        assert!(b.try_acquire(t0 + ms(500), 5).0, "nothing else in flight");
        assert!(!b.try_acquire(t0 + ms(500), 1).0);
    }

    #[test]
    fn rejects_out_of_range_config() {
        for bad in [
            BreakerConfig {
                error_rate: 1.5,
                ..config()
            },
            BreakerConfig {
                error_rate: f64::NAN,
                ..config()
            },
            BreakerConfig {
                probes: 0,
                ..config()
            },
            BreakerConfig {
                window_ms: 0,
                ..config()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(BreakerConfig::default().validate().is_ok());
    }
}

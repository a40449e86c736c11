//! What the pool knows about one bind slot, shared between the submitters and the slot's
//! supervisor; and the supervisor's [`Observer`] that keeps it current.
//!
//! The hot fields are atomics (state, window in use); the throttle and the breaker sit behind
//! a mutex that is held for a few instructions and never across an await.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram};
use tokio::sync::mpsc;

use super::breaker::{Breaker, BreakerState, Transition};
use super::throttle::Throttle;
use super::{BindId, CarrierEvent, Delivery, PoolShared};
use crate::conn::{Inbound, InboundPdu, Observer, PartOutcome, SubmitCommand};
use crate::metrics as m;
use crate::pdu::StatusClass;
use crate::session::{Anomaly, BindType, CloseReason};

/// Where a bind slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindState {
    /// Not connected; waiting to reconnect.
    Disconnected,
    /// Opening the TCP connection (and TLS).
    Connecting,
    /// bind sent, its response awaited.
    Binding,
    /// Bound: takes traffic.
    Bound,
    /// Unbinding: takes no new traffic.
    Unbinding,
    /// Stopped: shut down, or halted by an authentication failure.
    Stopped,
}

impl BindState {
    const ALL: [BindState; 6] = [
        BindState::Disconnected,
        BindState::Connecting,
        BindState::Binding,
        BindState::Bound,
        BindState::Unbinding,
        BindState::Stopped,
    ];

    /// The name used in logs: `disconnected`, `connecting`, `binding`, `bound`, `unbinding`,
    /// `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindState::Disconnected => "disconnected",
            BindState::Connecting => "connecting",
            BindState::Binding => "binding",
            BindState::Bound => "bound",
            BindState::Unbinding => "unbinding",
            BindState::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> BindState {
        BindState::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(BindState::Stopped)
    }
}

/// Throttle and breaker of one bind; locked briefly.
pub(crate) struct Health {
    pub(crate) throttle: Throttle,
    pub(crate) breaker: Breaker,
    pub(crate) last_close: Option<CloseReason>,
}

/// Metric handles of one bind, registered once.
pub(crate) struct BindMetrics {
    pub(crate) carrier: Arc<str>,
    pub(crate) bind: Arc<str>,
    pub(crate) state: Gauge,
    pub(crate) reconnects: Counter,
    pub(crate) submits_ok: Counter,
    pub(crate) rtt: Histogram,
    pub(crate) window: Gauge,
    pub(crate) throttle_waits: Counter,
    pub(crate) throttled: Counter,
    pub(crate) rate: Gauge,
    pub(crate) breaker: Gauge,
    pub(crate) in_doubt_timeout: Counter,
    pub(crate) in_doubt_lost: Counter,
    pub(crate) late: Counter,
    pub(crate) enquire_link_failures: Counter,
    pub(crate) inbound_deliver: Counter,
    pub(crate) inbound_data: Counter,
    pub(crate) inbound_deferred: Counter,
}

impl BindMetrics {
    fn new(carrier: &Arc<str>, bind: &Arc<str>) -> BindMetrics {
        let l = |k: &'static str, v: &Arc<str>| (k, v.to_string());
        let c = l("carrier", carrier);
        let b = l("bind", bind);
        let labels = [c.clone(), b.clone()];
        BindMetrics {
            carrier: carrier.clone(),
            bind: bind.clone(),
            state: metrics::gauge!(m::BIND_STATE, &labels),
            reconnects: metrics::counter!(m::RECONNECTS, &labels),
            submits_ok: metrics::counter!(
                m::SUBMITS,
                &[c.clone(), b.clone(), ("status", "ESME_ROK".into())]
            ),
            rtt: metrics::histogram!(m::SUBMIT_RTT, &labels),
            window: metrics::gauge!(m::WINDOW_IN_USE, &labels),
            throttle_waits: metrics::counter!(m::THROTTLE_WAITS, &labels),
            throttled: metrics::counter!(m::THROTTLED_RESPONSES, &labels),
            rate: metrics::gauge!(m::THROTTLE_RATE, &labels),
            breaker: metrics::gauge!(m::BREAKER_STATE, &labels),
            in_doubt_timeout: metrics::counter!(
                m::IN_DOUBT,
                &[c.clone(), b.clone(), ("reason", "timeout".into())]
            ),
            in_doubt_lost: metrics::counter!(
                m::IN_DOUBT,
                &[c.clone(), b.clone(), ("reason", "bind_lost".into())]
            ),
            late: metrics::counter!(m::LATE_RESPONSES, &labels),
            enquire_link_failures: metrics::counter!(m::ENQUIRE_LINK_FAILURES, &labels),
            inbound_deliver: metrics::counter!(
                m::INBOUND,
                &[c.clone(), b.clone(), ("command", "deliver_sm".into())]
            ),
            inbound_data: metrics::counter!(
                m::INBOUND,
                &[c.clone(), b.clone(), ("command", "data_sm".into())]
            ),
            inbound_deferred: metrics::counter!(m::INBOUND_DEFERRED, &labels),
        }
    }

    /// A counter with the bind's labels and one more, for values known only at run time.
    pub(crate) fn counter_with(
        &self,
        name: &'static str,
        key: &'static str,
        value: &str,
    ) -> Counter {
        metrics::counter!(
            name,
            "carrier" => self.carrier.to_string(),
            "bind" => self.bind.to_string(),
            key => value.to_owned()
        )
    }
}

/// One bind slot as the pool sees it.
pub(crate) struct BindShared {
    pub(crate) slot: usize,
    pub(crate) name: Arc<str>,
    pub(crate) bind_type: BindType,
    pub(crate) window: usize,
    state: AtomicU8,
    /// Parts handed to this bind and not yet resolved: in the channel, the driver's backlog or
    /// the session's window.
    pub(crate) outstanding: AtomicUsize,
    /// Connections opened so far; the current one's number identifies it in [`BindId`].
    pub(crate) connections: AtomicU64,
    /// The breaker's state, mirrored so that the submit path can skip the lock when closed.
    breaker_state: AtomicU8,
    pub(crate) health: Mutex<Health>,
    pub(crate) submit_tx: mpsc::Sender<SubmitCommand>,
    pub(crate) metrics: BindMetrics,
}

fn breaker_code(s: BreakerState) -> u8 {
    match s {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

impl BindShared {
    pub(crate) fn new(
        slot: usize,
        carrier: &Arc<str>,
        name: Arc<str>,
        bind_type: BindType,
        window: usize,
        health: Health,
        submit_tx: mpsc::Sender<SubmitCommand>,
    ) -> BindShared {
        let metrics = BindMetrics::new(carrier, &name);
        metrics.rate.set(health.throttle.rate());
        BindShared {
            slot,
            name,
            bind_type,
            window,
            state: AtomicU8::new(0),
            outstanding: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            breaker_state: AtomicU8::new(0),
            health: Mutex::new(health),
            submit_tx,
            metrics,
        }
    }

    pub(crate) fn state(&self) -> BindState {
        BindState::from_u8(self.state.load(Relaxed))
    }

    pub(crate) fn set_state(&self, state: BindState) {
        let code = BindState::ALL.iter().position(|s| *s == state).unwrap_or(5);
        self.state.store(code as u8, Relaxed);
        self.metrics.state.set(code as f64);
    }

    pub(crate) fn breaker_closed(&self) -> bool {
        self.breaker_state.load(Relaxed) == 0
    }

    pub(crate) fn mirror_breaker(&self, s: BreakerState) {
        self.breaker_state.store(breaker_code(s), Relaxed);
        self.metrics.breaker.set(s.gauge());
    }

    pub(crate) fn can_submit(&self) -> bool {
        self.bind_type != BindType::Receiver
    }

    pub(crate) fn id(&self) -> BindId {
        BindId {
            slot: self.slot,
            connection: self.connections.load(Relaxed),
        }
    }

    /// Reserves room for `n` parts if the window has a free slot; the parts beyond the window
    /// wait in the driver's backlog.
    pub(crate) fn reserve(&self, n: usize) -> bool {
        self.outstanding
            .fetch_update(Relaxed, Relaxed, |cur| {
                (cur < self.window).then_some(cur + n)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, n: usize) {
        let before = self.outstanding.fetch_sub(n, Relaxed);
        self.metrics.window.set(before.saturating_sub(n) as f64);
    }

    pub(crate) fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        // A panic while holding this lock leaves plain counters behind; carrying on with them
        // is better than taking the bind down.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a result weighs on a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The carrier answered as a working carrier does (accepted, or a permanent error that is
    /// the message's fault).
    Success,
    /// A timeout, a transient error, a session error, a lost bind.
    Failure,
    /// Says nothing about health (throttling, never sent); gives back a half-open probe.
    Neutral,
}

pub(crate) fn verdict(outcome: &PartOutcome) -> Verdict {
    match outcome {
        PartOutcome::Accepted { .. } => Verdict::Success,
        PartOutcome::Rejected { class, .. } => match class {
            StatusClass::Permanent | StatusClass::Ok => Verdict::Success,
            StatusClass::Transient | StatusClass::Session => Verdict::Failure,
            StatusClass::Throttle => Verdict::Neutral,
        },
        // A lost bind is one failure, counted by the supervisor, however many parts it held.
        PartOutcome::Throttled { .. } | PartOutcome::NotSent(_) | PartOutcome::BindLost { .. } => {
            Verdict::Neutral
        }
        PartOutcome::TimedOut { .. } => Verdict::Failure,
    }
}

/// Tallies of one round, applied under one lock at [`Observer::flush`].
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) released: usize,
    pub(crate) successes: u32,
    pub(crate) failures: u32,
    pub(crate) neutral: u32,
    pub(crate) throttled: bool,
}

/// Feeds a pool's view of one bind from its driver.
pub(crate) struct SlotObserver {
    pub(crate) pool: Arc<PoolShared>,
    pub(crate) bind: Arc<BindShared>,
    pub(crate) tally: Tally,
}

impl SlotObserver {
    /// Applies a tally to the bind's and the carrier's health.
    pub(crate) fn apply(pool: &PoolShared, bind: &BindShared, now: Instant, tally: &Tally) {
        if tally.released > 0 {
            bind.release(tally.released);
            pool.capacity_freed(tally.released);
        }
        if tally.successes == 0 && tally.failures == 0 && tally.neutral == 0 && !tally.throttled {
            return;
        }
        {
            let mut health = bind.lock_health();
            if tally.throttled {
                health.throttle.on_throttled(now);
                bind.metrics.rate.set(health.throttle.rate());
            }
            health.breaker.release(tally.neutral);
            let t = health.breaker.record(now, tally.successes, tally.failures);
            let state = health.breaker.state();
            drop(health);
            bind.mirror_breaker(state);
            if let Some(t) = t {
                pool.breaker_transition(Some(bind), t);
            }
        }
        pool.record_carrier(now, tally.successes, tally.failures, tally.neutral);
    }
}

impl Observer for SlotObserver {
    fn bound(&mut self, _now: Instant) {
        self.bind
            .set_state(if self.pool.shutdown.graceful.is_cancelled() {
                BindState::Unbinding
            } else {
                BindState::Bound
            });
        self.pool.bound_changed();
        self.pool.capacity_freed(self.bind.window);
        tracing::info!(carrier = %self.pool.name, bind = %self.bind.name, "bound");
        self.pool.event(CarrierEvent::BindUp {
            bind: self.bind.id(),
        });
    }

    fn part_done(&mut self, _now: Instant, outcome: &PartOutcome, round_trip: Option<Duration>) {
        let metrics = &self.bind.metrics;
        self.tally.released += 1;
        if let Some(rtt) = round_trip {
            metrics.rtt.record(rtt.as_secs_f64());
        }
        match outcome {
            PartOutcome::Accepted { .. } => metrics.submits_ok.increment(1),
            PartOutcome::TimedOut { .. } => {
                metrics.in_doubt_timeout.increment(1);
                metrics
                    .counter_with(m::SUBMITS, "status", outcome.label())
                    .increment(1);
            }
            PartOutcome::BindLost { .. } => {
                metrics.in_doubt_lost.increment(1);
                metrics
                    .counter_with(m::SUBMITS, "status", outcome.label())
                    .increment(1);
            }
            PartOutcome::Throttled { .. } => {
                self.tally.throttled = true;
                metrics.throttled.increment(1);
                metrics
                    .counter_with(m::SUBMITS, "status", outcome.label())
                    .increment(1);
            }
            _ => metrics
                .counter_with(m::SUBMITS, "status", outcome.label())
                .increment(1),
        }
        match verdict(outcome) {
            Verdict::Success => self.tally.successes += 1,
            Verdict::Failure => self.tally.failures += 1,
            Verdict::Neutral => self.tally.neutral += 1,
        }
    }

    fn inbound(&mut self, inbound: Inbound) -> Option<Inbound> {
        let metrics = &self.bind.metrics;
        let Some(tx) = &self.pool.inbound else {
            metrics.inbound_deferred.increment(1);
            return Some(inbound);
        };
        let is_deliver = matches!(inbound.pdu, InboundPdu::DeliverSm(_));
        let delivery = Delivery {
            carrier: self.pool.name.clone(),
            bind: self.bind.id(),
            pdu: inbound.pdu,
            responder: inbound.responder,
        };
        match tx.try_send(delivery) {
            Ok(()) => {
                if is_deliver {
                    metrics.inbound_deliver.increment(1);
                } else {
                    metrics.inbound_data.increment(1);
                }
                None
            }
            Err(e) => {
                metrics.inbound_deferred.increment(1);
                let d = e.into_inner();
                Some(Inbound {
                    pdu: d.pdu,
                    responder: d.responder,
                })
            }
        }
    }

    fn late_response(&mut self, reference: u64, part: usize, outcome: PartOutcome) {
        self.bind.metrics.late.increment(1);
        self.pool.event(CarrierEvent::LateResponse {
            bind: self.bind.id(),
            reference,
            part,
            outcome,
        });
    }

    fn anomaly(&mut self, anomaly: &Anomaly) {
        let kind = match anomaly {
            Anomaly::UnknownCommand { .. } => "unknown_command",
            Anomaly::BadBody(_) => "bad_body",
            Anomaly::Refused { .. } => "refused",
            Anomaly::UnexpectedResponse { .. } => "unexpected_response",
            Anomaly::Ignored { .. } => "ignored",
        };
        self.bind
            .metrics
            .counter_with(m::ANOMALIES, "kind", kind)
            .increment(1);
        tracing::warn!(carrier = %self.pool.name, bind = %self.bind.name, ?anomaly, "session anomaly");
    }

    fn flush(&mut self, now: Instant) {
        let tally = std::mem::take(&mut self.tally);
        SlotObserver::apply(&self.pool, &self.bind, now, &tally);
    }
}

/// Used when a transition is logged.
pub(crate) fn describe(t: Transition) -> (&'static str, &'static str) {
    (t.from.as_str(), t.to.as_str())
}

//! A carrier's pool of binds: one supervisor per bind slot (connect, bind, reconnect with
//! backoff), a throttle and a breaker per bind, a breaker for the carrier, bind choice, and
//! graceful shutdown.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(config: smppd::carrier::config::CarrierConfig, parts: Vec<smppd::pdu::Body>) {
//! use smppd::carrier::{CarrierPool, PoolOptions};
//! use tokio_util::{sync::CancellationToken, task::TaskTracker};
//! let spec = config.validate().expect("valid carrier");
//! let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
//! let (deliveries_tx, mut deliveries) = tokio::sync::mpsc::channel(1024);
//! let (pool, mut events) = CarrierPool::start(spec, PoolOptions::new(Some(deliveries_tx)), &tracker, &cancel);
//! // Submit one message's parts, all on one bind; wait for room if the binds are busy.
//! let mut parts = parts;
//! match pool.submit(&mut parts, 42).await {
//!     Ok(submission) => {
//!         let bind = submission.bind();          // for the attempt record
//!         let outcome = submission.await;         // one PartOutcome per part
//!     }
//!     Err(e) if e.is_failover() => { /* try the next carrier of the route */ }
//!     Err(e) => { /* shutting down, or the message cannot go on this carrier */ }
//! }
//! // Receipts and MO: store, then answer.
//! if let Some(d) = deliveries.recv().await {
//!     let _ = d.responder.respond(smppd::pdu::CommandStatus::ESME_ROK).await;
//! }
//! pool.shutdown(std::time::Duration::from_secs(10)).await;
//! # }
//! ```
//!
//! # Bind choice
//!
//! Among the binds that are bound, may submit, whose breaker lets traffic through, and whose
//! window has a free slot, the one with the fewest parts outstanding that also has throttle
//! tokens for every part of the message. All parts of a message go through that one bind; parts
//! beyond the window wait in the bind's driver until slots free up.
//!
//! # Health
//!
//! Results weigh on the bind's breaker and the carrier's: accepted and permanent errors (the
//! message's fault) are successes; timeouts, transient and session errors, lost binds and bind
//! failures are failures; throttling counts for nothing but slows the bind down
//! ([`throttle`]). While the carrier's breaker is open, submits fail with
//! [`SubmitError::BreakerOpen`] so the dispatcher fails over to the next carrier of the route.

pub mod backoff;
mod bind;
pub mod breaker;
pub mod config;
mod supervisor;
pub mod throttle;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics::Gauge;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::{InboundPdu, PartOutcome, Responder, Shutdown, SubmitCommand};
use crate::metrics as m;
use crate::pdu::{Body, CommandStatus};
use crate::session::{BindType, CloseReason};

pub use crate::conn::{NotSentReason, RespondError};
pub use bind::BindState;
pub use breaker::{BreakerState, Transition};
pub use config::{BindConfig, BindKind, CarrierConfig, CarrierSpec, ConfigError};

use bind::{BindShared, Health};
use breaker::Breaker;
use throttle::{Refusal, Throttle};

/// Identifies the bind that carried a message: the slot, and which of its connections (a
/// reconnect is a new session whose responses cannot answer the old one's requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindId {
    /// The slot's index in [`CarrierSpec::slots`].
    pub slot: usize,
    /// The connection's number within the slot, from 1.
    pub connection: u64,
}

/// Why a message could not be handed to a bind. Nothing was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The carrier's breaker is open: fail over to the next carrier. It probes again after
    /// `retry_after` (zero while half-open with every probe slot in use).
    #[error("carrier breaker open; probing again in {retry_after:?}")]
    BreakerOpen {
        /// Until the breaker half-opens.
        retry_after: Duration,
    },
    /// No bind that may submit is bound and healthy (all connecting or reconnecting, or their
    /// breakers open).
    #[error("no bind available")]
    NoBind,
    /// Every bound bind's window is full: wait for a response, or fail over.
    #[error("all windows full")]
    WindowsFull,
    /// Binds have window room but no throttle tokens (or are paused after throttling):
    /// wait `retry_after`.
    #[error("throttled; retry in {retry_after:?}")]
    Throttled {
        /// The shortest wait among the binds.
        retry_after: Duration,
    },
    /// The carrier halted after the SMSC refused its credentials or system_type; it needs an
    /// operator (see [`CarrierPool::resume`]).
    #[error("carrier halted: the SMSC refused the credentials ({0})")]
    AuthFailed(CommandStatus),
    /// The message has more parts than this carrier can take at once (more than 255, or more
    /// than a bind's throttle burst): it can never go on this carrier.
    #[error("{0} parts is more than the carrier takes at once")]
    TooManyParts(usize),
    /// The message has no parts.
    #[error("no parts")]
    NoParts,
    /// The pool is shutting down and takes no new messages.
    #[error("shutting down")]
    ShuttingDown,
}

impl SubmitError {
    /// True when another carrier may take the message now (this one is unavailable):
    /// `BreakerOpen`, `NoBind`, `AuthFailed`. Busy carriers (`WindowsFull`, `Throttled`) are
    /// better waited for, unless the message is urgent.
    pub fn is_failover(&self) -> bool {
        matches!(
            self,
            SubmitError::BreakerOpen { .. } | SubmitError::NoBind | SubmitError::AuthFailed(_)
        )
    }
}

/// A message handed to a bind: await it for the outcome of every part.
#[must_use = "the outcome reports what the SMSC did with each part"]
#[derive(Debug)]
pub struct Submission {
    bind: BindId,
    parts: usize,
    rx: oneshot::Receiver<Vec<PartOutcome>>,
}

impl Submission {
    /// The bind carrying the message.
    pub fn bind(&self) -> BindId {
        self.bind
    }
}

/// Every part's outcome, and the bind that carried them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageOutcome {
    /// The bind.
    pub bind: BindId,
    /// One outcome per part, in part order.
    pub parts: Vec<PartOutcome>,
}

impl MessageOutcome {
    /// True when every part was accepted.
    pub fn all_accepted(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, PartOutcome::Accepted { .. }))
    }
}

impl Future for Submission {
    type Output = MessageOutcome;

    /// Cancel safe: dropping a submission only drops the report; the parts still go out.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MessageOutcome> {
        let bind = self.bind;
        let parts = self.parts;
        Pin::new(&mut self.rx).poll(cx).map(|r| MessageOutcome {
            bind,
            // Every command is answered by the driver or the supervisor; a missing reply means
            // the runtime is going away with the bind, so the parts are in doubt.
            parts: r.unwrap_or_else(|_| {
                vec![
                    PartOutcome::BindLost {
                        sequence_number: 0,
                        reason: CloseReason::Local,
                    };
                    parts
                ]
            }),
        })
    }
}

/// A deliver_sm or data_sm from one of the carrier's binds. Store it, then answer through
/// `responder` (dropping it answers ESME_RX_T_APPN, so the SMSC redelivers).
#[derive(Debug)]
pub struct Delivery {
    /// The carrier's name.
    pub carrier: Arc<str>,
    /// The bind it came on.
    pub bind: BindId,
    /// The request.
    pub pdu: InboundPdu,
    /// Answers it, on the bind it came on.
    pub responder: Responder,
}

/// Things that happen on the carrier outside any one submit call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CarrierEvent {
    /// A response came for a part that was reported [`PartOutcome::TimedOut`]: it settles
    /// the doubt (`outcome` is Accepted, Rejected or Throttled).
    LateResponse {
        /// The bind it came on.
        bind: BindId,
        /// The reference the message was submitted with.
        reference: u64,
        /// The part's index.
        part: usize,
        /// What the SMSC said.
        outcome: PartOutcome,
    },
    /// A bind came up.
    BindUp {
        /// The bind.
        bind: BindId,
    },
    /// A bound bind closed.
    BindDown {
        /// The bind.
        bind: BindId,
        /// Why.
        reason: CloseReason,
    },
    /// The SMSC refused the credentials: the carrier is halted (alarm).
    AuthFailed {
        /// The bind that was refused.
        bind: BindId,
        /// The refusal.
        status: CommandStatus,
    },
    /// A breaker changed state; `bind` is `None` for the carrier's breaker.
    Breaker {
        /// The bind, or `None` for the carrier.
        bind: Option<BindId>,
        /// The change.
        transition: Transition,
    },
}

/// What a pool is started with besides its spec.
#[derive(Debug)]
pub struct PoolOptions {
    /// Where deliver_sm/data_sm go. `None`: the carrier takes no inbound traffic; any that
    /// comes is answered ESME_RX_T_APPN.
    pub inbound: Option<mpsc::Sender<Delivery>>,
    /// Capacity of the event channel. Default 1024. Events that find it full are dropped and
    /// counted ([`crate::metrics::EVENTS_DROPPED`]).
    pub events_capacity: usize,
}

impl PoolOptions {
    /// Options with this inbound handler and the defaults otherwise.
    pub fn new(inbound: Option<mpsc::Sender<Delivery>>) -> PoolOptions {
        PoolOptions {
            inbound,
            events_capacity: 1024,
        }
    }
}

/// One bind in [`CarrierStatus`].
#[derive(Clone, Debug, PartialEq)]
pub struct BindStatus {
    /// The slot's index.
    pub slot: usize,
    /// The slot's label (`trx0`).
    pub name: Arc<str>,
    /// The bind type.
    pub bind_type: BindType,
    /// Where it is.
    pub state: BindState,
    /// Parts outstanding.
    pub outstanding: usize,
    /// The window.
    pub window: usize,
    /// The bind's breaker.
    pub breaker: BreakerState,
    /// The rate limit in force, PDUs per second; 0 for none.
    pub rate: f64,
    /// Connections opened so far.
    pub connections: u64,
    /// Why the last connection closed.
    pub last_close: Option<CloseReason>,
}

/// A carrier's state, for `/readyz` and status pages.
#[derive(Clone, Debug, PartialEq)]
pub struct CarrierStatus {
    /// The carrier's name.
    pub name: Arc<str>,
    /// Whether it takes messages now ([`CarrierPool::is_available`]).
    pub available: bool,
    /// The carrier's breaker.
    pub breaker: BreakerState,
    /// Set while halted by an authentication failure.
    pub auth_failed: Option<CommandStatus>,
    /// Binds bound now.
    pub binds_up: usize,
    /// Every bind.
    pub binds: Vec<BindStatus>,
}

/// State shared by the pool handle, the supervisors and their observers.
pub(crate) struct PoolShared {
    pub(crate) name: Arc<str>,
    pub(crate) spec: CarrierSpec,
    pub(crate) binds: Vec<Arc<BindShared>>,
    breaker: Mutex<Breaker>,
    breaker_state: AtomicU8,
    closing: AtomicBool,
    /// The refusal that halted the carrier, as its status value; 0 when running.
    halted: std::sync::atomic::AtomicU32,
    pub(crate) resumed: Notify,
    /// Woken when window slots free up, for submitters waiting for room.
    capacity: Notify,
    waiters: AtomicUsize,
    pub(crate) inbound: Option<mpsc::Sender<Delivery>>,
    events: mpsc::Sender<CarrierEvent>,
    pub(crate) shutdown: Shutdown,
    binds_up: Gauge,
    breaker_gauge: Gauge,
    auth_gauge: Gauge,
}

impl PoolShared {
    pub(crate) fn event(&self, event: CarrierEvent) {
        if self.events.try_send(event).is_err() {
            metrics::counter!(m::EVENTS_DROPPED, "carrier" => self.name.to_string()).increment(1);
        }
    }

    /// `slots` window slots came free (responses, or a bind came up): wakes as many waiting
    /// submitters, oldest first. Waking one per slot rather than all of them keeps a deep
    /// queue of waiters from being polled on every response; a woken waiter that finds no
    /// room waits again, and one dropped after its wake passes the wake on.
    pub(crate) fn capacity_freed(&self, slots: usize) {
        let waiting = self.waiters.load(Relaxed);
        for _ in 0..slots.min(waiting) {
            self.capacity.notify_one();
        }
    }

    pub(crate) fn bound_changed(&self) {
        let up = self
            .binds
            .iter()
            .filter(|b| b.state() == BindState::Bound)
            .count();
        self.binds_up.set(up as f64);
    }

    pub(crate) fn is_halted(&self) -> bool {
        self.halted.load(Relaxed) != 0
    }

    /// Halts the carrier after an authentication failure: the alarm.
    pub(crate) fn halt(&self, bind: &BindShared, status: CommandStatus) {
        self.halted.store(status.0.max(1), Relaxed);
        self.auth_gauge.set(1.0);
        tracing::error!(
            carrier = %self.name, bind = %bind.name, %status,
            "the SMSC refused the credentials: carrier halted, no more bind attempts until it is resumed"
        );
        self.event(CarrierEvent::AuthFailed {
            bind: bind.id(),
            status,
        });
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record_carrier(&self, now: Instant, successes: u32, failures: u32, neutral: u32) {
        let mut breaker = self.lock_breaker();
        breaker.release(neutral);
        let t = breaker.record(now, successes, failures);
        let state = breaker.state();
        drop(breaker);
        self.mirror_breaker(state);
        if let Some(t) = t {
            self.breaker_transition(None, t);
        }
    }

    fn mirror_breaker(&self, state: BreakerState) {
        self.breaker_state.store(state.gauge() as u8, Relaxed);
        self.breaker_gauge.set(state.gauge());
    }

    pub(crate) fn breaker_transition(&self, bind: Option<&BindShared>, t: Transition) {
        let bind_label = bind.map_or_else(|| "carrier".to_owned(), |b| b.name.to_string());
        metrics::counter!(
            m::BREAKER_TRANSITIONS,
            "carrier" => self.name.to_string(),
            "bind" => bind_label.clone(),
            "to" => t.to.as_str()
        )
        .increment(1);
        let (from, to) = bind::describe(t);
        if t.to == BreakerState::Open {
            tracing::warn!(carrier = %self.name, bind = %bind_label, from, to, "breaker opened");
        } else {
            tracing::info!(carrier = %self.name, bind = %bind_label, from, to, "breaker changed");
        }
        self.event(CarrierEvent::Breaker {
            bind: bind.map(|b| b.id()),
            transition: t,
        });
    }

    fn carrier_breaker_allows(&self, now: Instant, n: u32) -> Result<bool, SubmitError> {
        if self.breaker_state.load(Relaxed) == 0 {
            return Ok(false);
        }
        let mut breaker = self.lock_breaker();
        let (allowed, t) = breaker.try_acquire(now, n);
        let state = breaker.state();
        let until = breaker.open_until();
        drop(breaker);
        self.mirror_breaker(state);
        if let Some(t) = t {
            self.breaker_transition(None, t);
        }
        if allowed {
            Ok(true)
        } else {
            Err(SubmitError::BreakerOpen {
                retry_after: until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now)),
            })
        }
    }

    fn release_carrier_probe(&self, probed: bool, n: u32) {
        if probed {
            self.lock_breaker().release(n);
        }
    }
}

/// A carrier's pool of binds. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct CarrierPool {
    shared: Arc<PoolShared>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for CarrierPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierPool")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl CarrierPool {
    /// Builds the pool and starts one supervisor per bind slot. The supervisors run on a
    /// tracker of the pool's own; one task on `tracker` waits for them, so `tracker.wait()`
    /// covers the pool. Cancelling `cancel` starts the pool's graceful shutdown (as
    /// [`CarrierPool::shutdown`] does, without its deadline).
    ///
    /// Returns the pool and its event stream (late responses, binds up and down, alarms,
    /// breaker changes).
    ///
    /// Call from within a tokio runtime. Install the metrics recorder first: handles are
    /// registered here.
    pub fn start(
        spec: CarrierSpec,
        options: PoolOptions,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) -> (CarrierPool, mpsc::Receiver<CarrierEvent>) {
        let now = Instant::now();
        let name = spec.name.clone();
        let (events, events_rx) = mpsc::channel(options.events_capacity.max(1));
        let max_burst = u32::from(spec.text.max_parts.max(1));
        let mut binds = Vec::with_capacity(spec.slots.len());
        let mut receivers = Vec::with_capacity(spec.slots.len());
        for (i, slot) in spec.slots.iter().enumerate() {
            let window = slot.session.window.max(1);
            // At most one command per window slot can be in flight (a command needs a free
            // slot), so the channel never refuses a reserved command.
            let (tx, rx) = mpsc::channel(window);
            let health = Health {
                throttle: Throttle::new(spec.throttle, slot.tps, max_burst, now),
                breaker: Breaker::new(spec.breaker, now),
                last_close: None,
            };
            binds.push(Arc::new(BindShared::new(
                i,
                &name,
                slot.name.clone(),
                slot.session.bind_type,
                window,
                health,
                tx,
            )));
            receivers.push(rx);
        }
        let carrier_label = [("carrier", name.to_string())];
        let shared = Arc::new(PoolShared {
            breaker: Mutex::new(Breaker::new(spec.carrier_breaker, now)),
            breaker_state: AtomicU8::new(0),
            closing: AtomicBool::new(false),
            halted: std::sync::atomic::AtomicU32::new(0),
            resumed: Notify::new(),
            capacity: Notify::new(),
            waiters: AtomicUsize::new(0),
            inbound: options.inbound,
            events,
            shutdown: Shutdown {
                graceful: cancel.child_token(),
                abort: CancellationToken::new(),
            },
            binds_up: metrics::gauge!(m::BINDS_UP, &carrier_label),
            breaker_gauge: metrics::gauge!(
                m::BREAKER_STATE,
                "carrier" => name.to_string(),
                "bind" => "carrier"
            ),
            auth_gauge: metrics::gauge!(m::AUTH_FAILED, &carrier_label),
            binds,
            name,
            spec,
        });
        shared.binds_up.set(0.0);
        shared.auth_gauge.set(0.0);
        shared.breaker_gauge.set(0.0);
        let own = TaskTracker::new();
        for (bind, rx) in shared.binds.iter().zip(receivers) {
            bind.set_state(BindState::Disconnected);
            bind.mirror_breaker(BreakerState::Closed);
            own.spawn(supervisor::supervise(shared.clone(), bind.clone(), rx));
        }
        own.close();
        let waiter = own.clone();
        tracker.spawn(async move { waiter.wait().await });
        (
            CarrierPool {
                shared,
                tracker: own,
            },
            events_rx,
        )
    }

    /// The carrier's name.
    pub fn name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// The validated config the pool runs.
    pub fn spec(&self) -> &CarrierSpec {
        &self.shared.spec
    }

    /// The label of a bind (`trx0`), for attempt records and logs.
    pub fn bind_name(&self, bind: BindId) -> Option<&str> {
        self.shared.binds.get(bind.slot).map(|b| &*b.name)
    }

    /// Hands a message to one bind without waiting. `parts` are the message's requests
    /// (submit_sm or data_sm bodies, already segmented); on success they are taken out of the
    /// vector, on error they are left in it, so the caller can retry or fail over with them.
    /// `reference` comes back with late responses ([`CarrierEvent::LateResponse`]).
    pub fn try_submit(
        &self,
        parts: &mut Vec<Body>,
        reference: u64,
    ) -> Result<Submission, SubmitError> {
        let pool = &*self.shared;
        if pool.closing.load(Relaxed) || pool.shutdown.graceful.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }
        let halted = pool.halted.load(Relaxed);
        if halted != 0 {
            return Err(SubmitError::AuthFailed(CommandStatus(halted)));
        }
        let n = parts.len();
        if n == 0 {
            return Err(SubmitError::NoParts);
        }
        if n > 255 {
            return Err(SubmitError::TooManyParts(n));
        }
        let now = Instant::now();
        let probed = pool.carrier_breaker_allows(now, n as u32)?;
        let result = self.place(parts, reference, now, n);
        if result.is_err() {
            pool.release_carrier_probe(probed, n as u32);
        }
        result
    }

    fn place(
        &self,
        parts: &mut Vec<Body>,
        reference: u64,
        now: Instant,
        n: usize,
    ) -> Result<Submission, SubmitError> {
        let pool = &*self.shared;
        let mut tried: u64 = 0;
        let mut window_full = false;
        let mut wait: Option<Duration> = None;
        let mut too_many = false;
        // At most 64 candidates are considered per call: carriers rarely have more binds.
        for _ in 0..pool.binds.len().min(64) {
            let mut best: Option<(&Arc<BindShared>, usize)> = None;
            for (i, bind) in pool.binds.iter().enumerate().take(64) {
                if tried & (1 << i) != 0 || !bind.can_submit() || bind.state() != BindState::Bound {
                    continue;
                }
                let outstanding = bind.outstanding.load(Relaxed);
                if outstanding >= bind.window {
                    window_full = true;
                    continue;
                }
                if best.is_none_or(|(_, o)| outstanding < o) {
                    best = Some((bind, i));
                }
            }
            let Some((bind, i)) = best else { break };
            tried |= 1 << i;
            if !bind.reserve(n) {
                window_full = true;
                continue;
            }
            // Breaker and throttle of the chosen bind, under its lock.
            let mut health = bind.lock_health();
            let mut probe = false;
            if !bind.breaker_closed() {
                let (allowed, t) = health.breaker.try_acquire(now, n as u32);
                let state = health.breaker.state();
                if let Some(t) = t {
                    drop(health);
                    bind.mirror_breaker(state);
                    pool.breaker_transition(Some(bind), t);
                    health = bind.lock_health();
                }
                if !allowed {
                    drop(health);
                    bind.release(n);
                    continue;
                }
                probe = true;
            }
            let acquired = health.throttle.try_acquire(now, n as u32);
            if health.throttle.take_changed() {
                bind.metrics.rate.set(health.throttle.rate());
            }
            if let Err(refusal) = acquired {
                if probe {
                    health.breaker.release(n as u32);
                }
                drop(health);
                bind.release(n);
                bind.metrics.throttle_waits.increment(1);
                match refusal {
                    Refusal::Wait(d) => wait = Some(wait.map_or(d, |w| w.min(d))),
                    Refusal::TooManyParts => too_many = true,
                }
                continue;
            }
            drop(health);
            let (reply, rx) = oneshot::channel();
            let command = SubmitCommand {
                parts: std::mem::take(parts),
                reference,
                reply,
            };
            match bind.submit_tx.try_send(command) {
                Ok(()) => {
                    bind.metrics
                        .window
                        .set(bind.outstanding.load(Relaxed) as f64);
                    return Ok(Submission {
                        bind: bind.id(),
                        parts: n,
                        rx,
                    });
                }
                Err(e) => {
                    // The supervisor is gone (shutdown): give the parts back.
                    *parts = e.into_inner().parts;
                    if probe {
                        bind.lock_health().breaker.release(n as u32);
                    }
                    bind.release(n);
                }
            }
        }
        if let Some(retry_after) = wait {
            return Err(SubmitError::Throttled { retry_after });
        }
        if too_many {
            return Err(SubmitError::TooManyParts(n));
        }
        if window_full {
            return Err(SubmitError::WindowsFull);
        }
        // Nothing bound, or every bound bind's breaker is open.
        Err(SubmitError::NoBind)
    }

    /// Hands a message to one bind, waiting while the carrier is only busy (windows full,
    /// throttled). Fails at once when the carrier is unavailable (breaker open, no bind,
    /// halted) or shutting down, so the caller can fail over. Parts are taken as by
    /// [`CarrierPool::try_submit`].
    ///
    /// Cancel safe: nothing is reserved or sent until it returns `Ok`.
    pub async fn submit(
        &self,
        parts: &mut Vec<Body>,
        reference: u64,
    ) -> Result<Submission, SubmitError> {
        // Nobody waiting: try at once, without registering as a waiter (the common case).
        // With waiters, queue behind them, so a newcomer never takes the slot a woken
        // waiter was woken for.
        if self.shared.waiters.load(Relaxed) == 0 {
            match self.try_submit(parts, reference) {
                Ok(s) => return Ok(s),
                Err(SubmitError::WindowsFull | SubmitError::Throttled { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            let notified = self.shared.capacity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.shared.waiters.fetch_add(1, Relaxed);
            let _guard = WaiterGuard(&self.shared.waiters);
            match self.try_submit(parts, reference) {
                Ok(s) => return Ok(s),
                // Room frees up when a response arrives, or a bind comes up: both notify.
                Err(SubmitError::WindowsFull) => tokio::select! {
                    () = notified => {}
                    () = self.shared.shutdown.graceful.cancelled() => {}
                },
                // A token comes with time; a response may free a bind that has one sooner.
                Err(SubmitError::Throttled { retry_after }) => {
                    let wait = retry_after.max(Duration::from_micros(100));
                    let _ = tokio::time::timeout(wait, notified).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the carrier takes messages now: not shutting down, not halted, its breaker not
    /// open (half-open counts: probes go through), and at least one bind that may submit is
    /// bound. What the dispatcher checks to skip a carrier of a route.
    pub fn is_available(&self) -> bool {
        let pool = &*self.shared;
        if pool.closing.load(Relaxed) || pool.is_halted() || pool.shutdown.graceful.is_cancelled() {
            return false;
        }
        if pool.breaker_state.load(Relaxed) != 0 && !pool.lock_breaker().would_allow(Instant::now())
        {
            return false;
        }
        pool.binds
            .iter()
            .any(|b| b.can_submit() && b.state() == BindState::Bound)
    }

    /// Binds bound now.
    pub fn binds_up(&self) -> usize {
        self.shared
            .binds
            .iter()
            .filter(|b| b.state() == BindState::Bound)
            .count()
    }

    /// The carrier's breaker state.
    pub fn breaker_state(&self) -> BreakerState {
        self.shared.lock_breaker().state()
    }

    /// A snapshot of the carrier and every bind.
    pub fn status(&self) -> CarrierStatus {
        let pool = &*self.shared;
        let binds = pool
            .binds
            .iter()
            .map(|b| {
                let health = b.lock_health();
                BindStatus {
                    slot: b.slot,
                    name: b.name.clone(),
                    bind_type: b.bind_type,
                    state: b.state(),
                    outstanding: b.outstanding.load(Relaxed),
                    window: b.window,
                    breaker: health.breaker.state(),
                    rate: health.throttle.rate(),
                    connections: b.connections.load(Relaxed),
                    last_close: health.last_close,
                }
            })
            .collect::<Vec<_>>();
        let halted = pool.halted.load(Relaxed);
        CarrierStatus {
            name: pool.name.clone(),
            available: self.is_available(),
            breaker: self.breaker_state(),
            auth_failed: (halted != 0).then_some(CommandStatus(halted)),
            binds_up: binds.iter().filter(|b| b.state == BindState::Bound).count(),
            binds,
        }
    }

    /// Lifts an authentication halt (after the credentials were fixed at the carrier): the
    /// slots try to bind again.
    pub fn resume(&self) {
        self.shared.halted.store(0, Relaxed);
        self.shared.auth_gauge.set(0.0);
        self.shared.resumed.notify_waiters();
    }

    /// Shuts the pool down: stops taking messages, lets each bind's window drain, unbinds and
    /// awaits unbind_resp, closes. If that has not finished by `deadline`, the binds are closed
    /// at once and the parts still awaiting a response are handed back as
    /// [`PartOutcome::BindLost`] with [`CloseReason::Local`]; messages not yet sent as
    /// [`PartOutcome::NotSent`]. Returns true if every bind finished within the deadline.
    ///
    /// Cancel safe: the shutdown goes on (without the deadline) if the future is dropped.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        let pool = &*self.shared;
        pool.closing.store(true, Relaxed);
        for bind in &pool.binds {
            if bind.state() == BindState::Bound {
                bind.set_state(BindState::Unbinding);
            }
        }
        pool.shutdown.graceful.cancel();
        pool.capacity.notify_waiters();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            pool.bound_changed();
            return true;
        }
        tracing::warn!(carrier = %pool.name, "shutdown deadline passed: closing binds without waiting");
        pool.shutdown.abort.cancel();
        self.tracker.wait().await;
        pool.bound_changed();
        false
    }
}

impl Drop for CarrierPool {
    /// A pool dropped without [`CarrierPool::shutdown`] still unbinds its binds gracefully,
    /// in the background (on the tracker it was started with).
    fn drop(&mut self) {
        self.shared.closing.store(true, Relaxed);
        self.shared.shutdown.graceful.cancel();
    }
}

struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

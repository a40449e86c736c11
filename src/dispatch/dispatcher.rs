//! The dispatch loop: claim ready messages, segment them for a carrier, route, submit all
//! parts through one bind, record every outcome, and decide what comes next.
//!
//! Each claimed message is handled by its own task, bounded by a semaphore; what its attempt
//! did is recorded in batches (see [`outcomes`](super::outcomes)), which the store
//! group-commits. A throttled or unavailable carrier gives the
//! message back untouched (no attempt is spent); a transient error backs off and moves to the
//! next carrier; a permanent one fails the message with the status as reason; a missing
//! response follows the carrier's in-doubt policy, and every resubmit of an in-doubt message
//! is counted on it (DESIGN promise 4). Under `wait_for_receipt`, late responses are recorded
//! on their parts, and a message whose parts all turn out accepted is not sent again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::outcomes::{Outcomes, Record};
use super::policy::{AttemptOutcome, Decision, InDoubtPolicy, RetryPolicy};
use crate::api::validate::sender;
use crate::carrier::{CarrierPool, SubmitError};
use crate::conn::PartOutcome;
use crate::pdu::{
    Body, COctetString, CommandStatus, EsmClass, Npi, RegisteredDelivery, ShortMessage, SubmitSm,
    TlvsBuilder, Ton,
};
use crate::routing::Router;
use crate::sms::{
    self, IdFormat, IdNormalizer, PayloadField, RefWidth, ReferenceAllocator,
    ReferenceAllocatorConfig, SegmentationMethod,
};
use crate::store::{
    AfterAttempt, AttemptOutcome as StoredOutcome, FinalState, FreshClaims, Message, MessageId,
    NewAttempt, Reason, Store, StoreError, Timestamp, Update, UpdateOutcome,
};
use crate::webhook::Webhooks;

/// How a carrier writes its message ids, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormatName {
    /// Compare as given (after trimming); when both sides look numeric they still match.
    #[default]
    Opaque,
    /// Hexadecimal.
    Hex,
    /// Decimal.
    Decimal,
}

impl From<IdFormatName> for IdFormat {
    fn from(f: IdFormatName) -> IdFormat {
        match f {
            IdFormatName::Opaque => IdFormat::Opaque,
            IdFormatName::Hex => IdFormat::Hex,
            IdFormatName::Decimal => IdFormat::Decimal,
        }
    }
}

/// Which parts of a long message the carrier sends receipts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptParts {
    /// A receipt per part; the message is delivered when every part is.
    #[default]
    Every,
    /// A receipt for the first part only, standing for the whole message.
    First,
}

/// What the dispatcher needs to know of a carrier beyond its binds (`[carriers.dispatch]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchOptions {
    /// Retry policy and status classes for this carrier.
    pub retry: RetryPolicy,
    /// What to do when a submit's response never comes. Default resubmit.
    pub in_doubt: InDoubtPolicy,
    /// The form of message_id in submit_sm_resp. Default opaque.
    pub submit_id_format: IdFormatName,
    /// The form of the id in receipts. Default opaque.
    pub receipt_id_format: IdFormatName,
    /// Receipts for every part or the first part only. Default every.
    pub receipt_parts: ReceiptParts,
    /// Whether ACCEPTD in a receipt means delivered. Default true (3.4 calls it final).
    pub accepted_is_final: bool,
    /// Price per part, for least-cost routes. Default 0.
    pub price: f64,
    /// How long to wait for receipts after submission, seconds. Default 259 200 (72 h).
    pub receipt_timeout_secs: u64,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            retry: RetryPolicy::default(),
            in_doubt: InDoubtPolicy::Resubmit,
            submit_id_format: IdFormatName::Opaque,
            receipt_id_format: IdFormatName::Opaque,
            receipt_parts: ReceiptParts::Every,
            accepted_is_final: true,
            price: 0.0,
            receipt_timeout_secs: 72 * 3600,
        }
    }
}

/// A carrier as the dispatcher uses it.
pub struct CarrierEntry {
    /// Its binds.
    pub pool: CarrierPool,
    /// Its dispatch settings.
    pub options: DispatchOptions,
    /// How its ids are compared.
    pub normalizer: IdNormalizer,
    references: Mutex<ReferenceAllocator>,
    /// Its per-message metrics, looked up once.
    parts_submitted: metrics::Counter,
    accept_to_submit: metrics::Histogram,
}

impl CarrierEntry {
    /// A carrier entry for this pool.
    pub fn new(pool: CarrierPool, options: DispatchOptions) -> CarrierEntry {
        let width = match pool.spec().text.segmentation {
            SegmentationMethod::Udh8 => RefWidth::Bits8,
            _ => RefWidth::Bits16,
        };
        let normalizer = IdNormalizer {
            submit_resp: options.submit_id_format.into(),
            receipt: options.receipt_id_format.into(),
        };
        // A seed that differs between runs, so that references after a restart do not start
        // where the last run's did while its long messages may still be reassembling.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let name = pool.name().to_owned();
        CarrierEntry {
            references: Mutex::new(ReferenceAllocator::new(ReferenceAllocatorConfig {
                width,
                seed,
                ..ReferenceAllocatorConfig::default()
            })),
            parts_submitted: metrics::counter!(
                crate::metrics::PIPELINE_PARTS_SUBMITTED,
                "carrier" => name.clone()
            ),
            accept_to_submit: metrics::histogram!(crate::metrics::ACCEPT_TO_SUBMIT, "carrier" => name),
            pool,
            options,
            normalizer,
        }
    }

    /// The carrier's name.
    pub fn name(&self) -> &str {
        self.pool.name()
    }
}

/// Dispatch loop settings (`[dispatch]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// The most messages claimed per store call (at most 1 000). A claim waits for its commit
    /// to be on the disk and two run at once, so this bounds the rate of claims at about twice
    /// `claim_batch` per commit round trip. It also bounds the room the store is given to
    /// claim fresh messages as it accepts them. Default 1 000.
    pub claim_batch: usize,
    /// Messages being handled at once. Default 20 000.
    pub max_in_flight: usize,
    /// How often to look for ready messages when nothing wakes the loop, ms. Default 200.
    pub poll_interval_ms: u64,
    /// How often submitted messages past their receipt timeout are looked for (and finished
    /// as `unknown`), ms. Default 5 000.
    pub receipt_scan_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            claim_batch: 1_000,
            max_in_flight: 20_000,
            poll_interval_ms: 200,
            receipt_scan_ms: crate::receipts::RECEIPT_TIMEOUT_SCAN.as_millis() as u64,
        }
    }
}

/// A submission whose parts were not all answered in time, kept so that a late response can
/// still record what the SMSC did with a part (for carriers whose in-doubt policy waits).
#[derive(Clone, Debug)]
struct Unanswered {
    id: MessageId,
    carrier: usize,
    bind: String,
    since: Instant,
    /// When the message's wait ends and it is sent again: later responses are not recorded,
    /// they would overwrite the parts of the new attempt.
    until: Instant,
}

/// Claims under way at once (see [`Dispatcher::run`]).
const CLAIMS_AHEAD: usize = 2;

type Claimed = (usize, Result<Vec<Message>, StoreError>);

/// The claims under way, each with the room it asked for (permits it may take).
#[derive(Default)]
struct Claims {
    set: JoinSet<Claimed>,
    rooms: Vec<(tokio::task::Id, usize)>,
}

impl Claims {
    fn start(&mut self, store: Arc<dyn Store>, room: usize) {
        let handle = self
            .set
            .spawn(async move { (room, store.claim(room).await) });
        self.rooms.push((handle.id(), room));
    }

    fn reserved(&self) -> usize {
        self.rooms.iter().map(|(_, room)| room).sum()
    }

    /// A claim that ended: what it claimed (nothing if it failed), and whether it filled
    /// its room (so more may be ready).
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Claimed), tokio::task::JoinError>,
    ) -> (Vec<Message>, bool) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        self.rooms.retain(|(claim, _)| *claim != id);
        match done {
            Ok((_, (room, Ok(claimed)))) => {
                let full = claimed.len() == room;
                (claimed, full)
            }
            Ok((_, (_, Err(e)))) => {
                tracing::warn!(error = %e, "claim failed");
                (Vec::new(), false)
            }
            Err(e) => {
                tracing::error!(error = %e, "a claim's task ended without an answer");
                (Vec::new(), false)
            }
        }
    }
}

/// Unanswered submissions kept at most; beyond it, late responses go unrecorded (the message
/// is resubmitted after its wait, and the resubmit counted).
const MAX_UNANSWERED: usize = 100_000;
/// How long an unanswered submission is kept for a late response.
const UNANSWERED_FOR: Duration = Duration::from_secs(3600);

/// The dispatcher: shared by the loop and the message tasks.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    carriers: Vec<Arc<CarrierEntry>>,
    by_name: HashMap<String, usize>,
    router: Router,
    webhooks: Option<Webhooks>,
    wake: Arc<Notify>,
    config: DispatchConfig,
    draws: Mutex<u64>,
    references: std::sync::atomic::AtomicU64,
    unanswered: Mutex<HashMap<u64, Unanswered>>,
    outcomes: Outcomes,
}

fn now_ts() -> Timestamp {
    Timestamp::now()
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(t.as_millis()).unwrap_or(0))
}

fn at(delay: Duration) -> Timestamp {
    now_ts().saturating_add(delay)
}

impl Dispatcher {
    /// A dispatcher over these carriers (in the order the router's indexes refer to).
    pub fn new(
        store: Arc<dyn Store>,
        carriers: Vec<Arc<CarrierEntry>>,
        router: Router,
        webhooks: Option<Webhooks>,
        wake: Arc<Notify>,
        config: DispatchConfig,
    ) -> Dispatcher {
        let by_name = carriers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name().to_owned(), i))
            .collect();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Dispatcher {
            store,
            carriers,
            by_name,
            router,
            webhooks,
            wake,
            config,
            draws: Mutex::new(seed | 1),
            references: std::sync::atomic::AtomicU64::new(1),
            unanswered: Mutex::new(HashMap::new()),
            outcomes: Outcomes::default(),
        }
    }

    /// The carriers.
    pub fn carriers(&self) -> &[Arc<CarrierEntry>] {
        &self.carriers
    }

    /// A carrier by name.
    pub fn carrier(&self, name: &str) -> Option<&Arc<CarrierEntry>> {
        self.by_name.get(name).map(|&i| &self.carriers[i])
    }

    fn draw(&self) -> u64 {
        let Ok(mut state) = self.draws.lock() else {
            return 0;
        };
        // SplitMix64.
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Runs until `cancel` fires: claims ready messages and hands each to a task.
    ///
    /// A claim answers only once its commit is on the disk (a message must be `submitting`
    /// durably before it goes out). While one waits for that, a second claim runs in the
    /// store's next commit, so under load messages are claimed twice per sync, not once.
    /// Claims under way when `cancel` fires are finished and their messages handed out, as
    /// every claimed message is.
    ///
    /// The store also claims fresh messages as it accepts them, while nothing else is ready
    /// (see [`Store::claim_fresh`]), within the room this loop keeps it informed of: they
    /// arrive here without a claim of their own.
    pub async fn run(self: Arc<Self>, tracker: TaskTracker, cancel: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        let mut claims = Claims::default();
        let room = Arc::new(AtomicUsize::new(0));
        let (to, mut fresh) = tokio::sync::mpsc::unbounded_channel();
        self.store.claim_fresh(FreshClaims {
            room: Arc::clone(&room),
            to,
        });
        // The last claim found less than it asked for (or there is no room): wait for news
        // before asking again.
        let mut idle = false;
        loop {
            while !idle && claims.set.len() < CLAIMS_AHEAD {
                let ask = permits
                    .available_permits()
                    .saturating_sub(claims.reserved())
                    .min(self.config.claim_batch.max(1));
                if ask == 0 {
                    idle = true;
                    break;
                }
                claims.start(Arc::clone(&self.store), ask);
            }
            // What the store may claim as it accepts: the room the claims under way left.
            room.store(
                permits
                    .available_permits()
                    .saturating_sub(claims.reserved())
                    .min(self.config.claim_batch.max(1)),
                AtomicOrdering::Release,
            );
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(done) = claims.set.join_next_with_id(), if !claims.set.is_empty() => {
                    let (claimed, full) = claims.finished(done);
                    idle = !full;
                    if !self.hand_out(claimed, &permits, &tracker).await {
                        return;
                    }
                }
                Some(claimed) = fresh.recv() => {
                    if !self.hand_out(claimed, &permits, &tracker).await {
                        return;
                    }
                }
                () = self.wake.notified(), if idle => idle = false,
                () = tokio::time::sleep(poll), if idle => idle = false,
            }
        }
        room.store(0, AtomicOrdering::Release);
        // Messages the store claimed before the room closed may still be on their way: a
        // write queued now is answered after theirs (the store answers in commit order). A
        // full queue refuses it at once: try again while it drains (bounded).
        for _ in 0..100 {
            match self.store.writable().await {
                Err(StoreError::Backlogged { .. }) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break,
            }
        }
        while let Some(done) = claims.set.join_next_with_id().await {
            let (claimed, _) = claims.finished(done);
            if !self.hand_out(claimed, &permits, &tracker).await {
                return;
            }
        }
        while let Ok(claimed) = fresh.try_recv() {
            if !self.hand_out(claimed, &permits, &tracker).await {
                return;
            }
        }
    }

    /// Starts a task for each claimed message, each holding a permit; false if the permits
    /// are gone.
    async fn hand_out(
        self: &Arc<Self>,
        claimed: Vec<Message>,
        permits: &Arc<Semaphore>,
        tracker: &TaskTracker,
    ) -> bool {
        for message in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return false;
            };
            let this = self.clone();
            tracker.spawn(async move {
                // An attempt's future is large (it awaits the carrier and the store). Boxed,
                // it is moved once, not at every step of spawning, polling and finishing the
                // task.
                Box::pin(this.handle(message, permit)).await;
            });
        }
        true
    }

    /// Reports a state change to the log and the message's webhook. Called before the change is
    /// committed, so it is queued ahead of anything a receipt can cause afterwards: a
    /// producer sees `submitted` before `delivered`.
    fn notify(&self, message: &Message, status: &str, reason: Option<&Reason>) {
        crate::receipts::log_change(message, status, reason);
        if let Some(webhooks) = &self.webhooks {
            webhooks.message_changed(message, status, reason);
        }
    }

    async fn apply(&self, updates: Vec<Update>) -> Vec<UpdateOutcome> {
        match self.store.apply(updates).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "recording an outcome failed");
                Vec::new()
            }
        }
    }

    async fn finish(&self, message: &Message, state: FinalState, reason: Reason) {
        self.notify(message, crate::receipts::final_name(state), Some(&reason));
        self.apply(vec![Update::Finish {
            id: message.id,
            state,
            reason,
        }])
        .await;
    }

    /// Gives the message back to the queue without spending an attempt.
    async fn release(&self, message: &Message, delay: Duration) {
        self.apply(vec![Update::Release {
            id: message.id,
            at: at(delay),
        }])
        .await;
    }

    /// The carriers to try, best first.
    fn candidates(&self, message: &Message) -> Vec<usize> {
        match &message.carrier {
            Some(name) => self.by_name.get(name).copied().into_iter().collect(),
            None => self.router.candidates(&message.to, self.draw()),
        }
    }

    /// Handles one claimed message through one attempt; `permit` is released once what
    /// the attempt did is recorded.
    async fn handle(&self, message: Message, permit: OwnedSemaphorePermit) {
        // Boxed: rare, and its future (it may roll receipts up) would otherwise make every
        // attempt's future, which is moved as it is spawned, several times larger.
        if waited_to_settle(&message) && Box::pin(self.settled_while_waiting(&message)).await {
            return;
        }
        let now = now_ts();
        if now >= message.expires_at {
            return self
                .finish(
                    &message,
                    FinalState::Expired,
                    Reason::new("expired", "the TTL passed before it could be sent"),
                )
                .await;
        }
        let candidates = self.candidates(&message);
        if candidates.is_empty() {
            return self
                .finish(
                    &message,
                    FinalState::Failed,
                    Reason::new("no_route", format!("no route to {}", mask(&message.to))),
                )
                .await;
        }
        let rotate = self.first_candidate(&message, &candidates).await;
        let mut order: Vec<usize> = candidates
            .iter()
            .cycle()
            .skip(rotate)
            .take(candidates.len())
            .copied()
            .collect();
        order.retain(|&i| self.carriers[i].pool.is_available());
        let Some(&first) = order.first() else {
            // Every candidate is down: wait without spending an attempt.
            let delay = Duration::from_millis(500);
            if system_time(now) + delay >= system_time(message.expires_at) {
                return self
                    .finish(
                        &message,
                        FinalState::Expired,
                        Reason::new("expired", "no carrier was available before the TTL"),
                    )
                    .await;
            }
            return self.release(&message, delay).await;
        };
        let mut chosen = first;
        let mut attempt = None;
        for &i in &order {
            match self.submit_to(&message, i).await {
                Ok(done) => {
                    chosen = i;
                    attempt = Some(done);
                    break;
                }
                Err(Failure::Failover) => continue,
                Err(Failure::Busy(delay)) => return self.release(&message, delay).await,
                Err(Failure::Final(reason)) => {
                    return self.finish(&message, FinalState::Failed, reason).await;
                }
            }
        }
        let Some(attempt) = attempt else {
            return self.release(&message, Duration::from_millis(500)).await;
        };
        let record = self.recorded(&message, chosen, attempt, permit);
        drop(message);
        self.outcomes
            .record(&*self.store, self.webhooks.as_ref(), record)
            .await;
    }

    /// Where in `candidates` this attempt starts. After a throttled attempt, at the carrier
    /// that throttled: throttling asks for patience, and the message waits for the same
    /// carrier (DESIGN, default error classification). Otherwise one carrier further along
    /// per attempt made, so a transient failure moves the message on to the next carrier.
    async fn first_candidate(&self, message: &Message, candidates: &[usize]) -> usize {
        if message.attempts == 0 || candidates.is_empty() {
            return 0;
        }
        let throttled = message
            .reason
            .as_ref()
            .is_some_and(|r| r.code == "throttled");
        if throttled
            && candidates.len() > 1
            && let Ok(Some(detail)) = self.store.get(message.id).await
            && let Some(last) = detail.attempts.last()
            && let Some(at) = candidates
                .iter()
                .position(|&i| self.carriers[i].name() == last.attempt.carrier)
        {
            return at;
        }
        message.attempts as usize % candidates.len()
    }

    /// Segments and submits the message on carrier `i`.
    async fn submit_to(&self, message: &Message, i: usize) -> Result<Attempted, Failure> {
        let carrier = &self.carriers[i];
        let text = &carrier.pool.spec().text;
        // Only a message that goes in parts needs a concatenation reference: taking one for
        // every message would use up a destination's references (256 of them with an 8-bit
        // reference) on single messages.
        let concatenated = sms::plan(&message.body, text).map_or(true, |p| p.parts > 1);
        let reference = if concatenated {
            let allocated = match carrier.references.lock() {
                Ok(mut refs) => refs.allocate(&message.to, Instant::now()),
                Err(poisoned) => poisoned.into_inner().allocate(&message.to, Instant::now()),
            };
            match allocated {
                Ok(reference) => reference,
                // Every reference of this destination may still be reassembling on the
                // handset: reusing one could splice two messages together. Wait for one.
                Err(sms::SmsError::ReferencesExhausted { available_at }) => {
                    tracing::warn!(
                        carrier = carrier.name(),
                        to = %mask(&message.to),
                        "no free concatenation reference; the message waits for one"
                    );
                    let wait = available_at.saturating_duration_since(Instant::now());
                    return Err(Failure::Busy(wait.max(Duration::from_millis(50))));
                }
                Err(_) => 0,
            }
        } else {
            0
        };
        let segments = sms::segment(&message.body, text, reference).map_err(|e| {
            Failure::Final(Reason::new(
                "body_too_long",
                format!("cannot split for {}: {e}", carrier.name()),
            ))
        })?;
        let sender = sender(&message.from).map_err(|_| {
            Failure::Final(Reason::new("invalid_sender", "the sender cannot be sent"))
        })?;
        let receipt_every = carrier.options.receipt_parts == ReceiptParts::Every;
        let mut parts: Vec<Body> = segments
            .parts
            .iter()
            .enumerate()
            .map(|(n, part)| {
                let (short_message, mut tlvs) = match part.field {
                    PayloadField::ShortMessage => (
                        ShortMessage::new(part.payload.clone()).unwrap_or_default(),
                        TlvsBuilder::new(),
                    ),
                    PayloadField::MessagePayload => (
                        ShortMessage::empty(),
                        TlvsBuilder::new()
                            .message_payload(&part.payload)
                            .unwrap_or_default(),
                    ),
                };
                if let Some(sar) = part.sar {
                    tlvs = tlvs.sar(crate::pdu::Sar {
                        msg_ref_num: sar.ref_num,
                        total_segments: sar.total,
                        segment_seqnum: sar.seq,
                    });
                }
                Body::SubmitSm(SubmitSm {
                    source_addr_ton: sender.ton,
                    source_addr_npi: sender.npi,
                    source_addr: COctetString::new(&sender.addr).unwrap_or_default(),
                    dest_addr_ton: Ton::INTERNATIONAL,
                    dest_addr_npi: Npi::ISDN,
                    destination_addr: COctetString::new(&message.to).unwrap_or_default(),
                    esm_class: EsmClass(part.esm_class_bits()),
                    priority_flag: message.priority.get().min(3),
                    registered_delivery: if receipt_every || n == 0 {
                        RegisteredDelivery::FINAL
                    } else {
                        RegisteredDelivery::NONE
                    },
                    data_coding: crate::pdu::DataCoding(part.data_coding),
                    short_message,
                    tlvs: tlvs.build(),
                    ..SubmitSm::default()
                })
            })
            .collect();
        let token = self
            .references
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started_at = now_ts();
        let submission = match carrier.pool.submit(&mut parts, token).await {
            Ok(s) => s,
            Err(SubmitError::Throttled { retry_after }) => return Err(Failure::Busy(retry_after)),
            Err(SubmitError::WindowsFull) => return Err(Failure::Busy(Duration::from_millis(50))),
            Err(SubmitError::ShuttingDown) => return Err(Failure::Busy(Duration::from_secs(1))),
            Err(SubmitError::TooManyParts(n)) => {
                return Err(Failure::Final(Reason::new(
                    "body_too_long",
                    format!("{n} parts is more than {} takes", carrier.name()),
                )));
            }
            Err(e) if e.is_failover() => return Err(Failure::Failover),
            Err(_) => return Err(Failure::Failover),
        };
        let outcome = submission.await;
        if let InDoubtPolicy::WaitForReceipt { wait_secs } = carrier.options.in_doubt
            && outcome
                .parts
                .iter()
                .any(|p| matches!(p, PartOutcome::TimedOut { .. }))
        {
            let now = Instant::now();
            self.remember_unanswered(
                token,
                Unanswered {
                    id: message.id,
                    carrier: i,
                    bind: carrier
                        .pool
                        .bind_name(outcome.bind)
                        .unwrap_or("?")
                        .to_owned(),
                    since: now,
                    until: now + Duration::from_secs(wait_secs),
                },
            );
        }
        Ok(Attempted {
            bind: carrier
                .pool
                .bind_name(outcome.bind)
                .unwrap_or("?")
                .to_owned(),
            parts: outcome.parts,
            started_at,
        })
    }

    fn remember_unanswered(&self, token: u64, unanswered: Unanswered) {
        let Ok(mut map) = self.unanswered.lock() else {
            return;
        };
        if map.len() >= MAX_UNANSWERED {
            let now = Instant::now();
            map.retain(|_, u| now.duration_since(u.since) < UNANSWERED_FOR);
        }
        if map.len() < MAX_UNANSWERED {
            map.insert(token, unanswered);
        }
    }

    /// A response that came after its part was reported in doubt (`reference` is the token
    /// the message was submitted with): records what the SMSC did with the part, so that a
    /// message waiting to settle its doubt need not be sent again (DESIGN promise 4).
    pub async fn late_response(&self, reference: u64, part: usize, outcome: PartOutcome) {
        let found = match self.unanswered.lock() {
            Ok(map) => map.get(&reference).cloned(),
            Err(_) => None,
        };
        let Some(u) = found.filter(|u| Instant::now() < u.until) else {
            return;
        };
        let carrier = &self.carriers[u.carrier];
        let Ok(part) = u16::try_from(part) else {
            return;
        };
        let update = match outcome {
            PartOutcome::Accepted { message_id, .. } => {
                let raw = message_id.to_string_lossy();
                Update::PartSubmitted {
                    id: u.id,
                    part,
                    carrier: carrier.name().to_owned(),
                    bind: u.bind,
                    key: carrier.normalizer.submit_resp_key(&raw),
                    carrier_message_id: raw,
                }
            }
            PartOutcome::Rejected { status, .. } | PartOutcome::Throttled { status, .. } => {
                Update::PartRejected {
                    id: u.id,
                    part,
                    carrier: carrier.name().to_owned(),
                    bind: u.bind,
                    status,
                }
            }
            _ => return,
        };
        self.apply(vec![update]).await;
    }

    /// A message that waited to settle a doubt and whose late responses all came, accepted,
    /// meanwhile: it is submitted after all, and is not sent again. The store needs an attempt
    /// to move it to `submitted`; the one recorded says that nothing new was sent.
    async fn settled_while_waiting(&self, message: &Message) -> bool {
        if !waited_to_settle(message) {
            return false;
        }
        let Ok(Some(detail)) = self.store.get(message.id).await else {
            return false;
        };
        let Some(last) = detail.attempts.last() else {
            return false;
        };
        let Some(carrier) = self.carrier(&last.attempt.carrier).cloned() else {
            return false;
        };
        let settled = last.attempt.outcome == StoredOutcome::NoResponse
            && detail
                .parts
                .iter()
                .filter(|p| {
                    p.carrier == last.attempt.carrier
                        && p.state != crate::store::PartState::Rejected
                        && p.submitted_at >= Some(last.attempt.started_at)
                })
                .count()
                == usize::from(message.parts);
        if !settled {
            return false;
        }
        self.notify(message, "submitted", None);
        let now = now_ts();
        self.apply(vec![Update::AttemptFinished {
            id: message.id,
            attempt: NewAttempt {
                carrier: last.attempt.carrier.clone(),
                bind: last.attempt.bind.clone(),
                parts: message.parts,
                command_status: Some(CommandStatus::ESME_ROK),
                outcome: StoredOutcome::Accepted,
                detail: Some(format!(
                    "nothing sent: the late responses to attempt {} settled the doubt",
                    last.number
                )),
                started_at: now,
                ended_at: now,
            },
            next: AfterAttempt::Submitted {
                receipt_deadline: at(Duration::from_secs(carrier.options.receipt_timeout_secs)),
            },
        }])
        .await;
        // Receipts may have come while it waited.
        let stored = crate::receipts::stored_match(&detail);
        crate::receipts::roll_up(
            &*self.store,
            self.webhooks.as_ref(),
            vec![(carrier, stored)],
        )
        .await;
        true
    }

    /// What to record of the attempt's outcome and what follows it. (Built outside any
    /// future: the attempt's future, moved as it is spawned, stays small.)
    fn recorded(
        &self,
        message: &Message,
        i: usize,
        attempt: Attempted,
        permit: OwnedSemaphorePermit,
    ) -> Record {
        let carrier = &self.carriers[i];
        let name = carrier.name().to_owned();
        let mut updates = Vec::new();
        let mut accepted = 0;
        for (index, part) in attempt.parts.iter().enumerate() {
            match part {
                PartOutcome::Accepted { message_id, .. } => {
                    accepted += 1;
                    let raw = message_id.to_string_lossy();
                    updates.push(Update::PartSubmitted {
                        id: message.id,
                        part: index as u16,
                        carrier: name.clone(),
                        bind: attempt.bind.clone(),
                        key: carrier.normalizer.submit_resp_key(&raw),
                        carrier_message_id: raw,
                    });
                }
                PartOutcome::Rejected { status, .. } | PartOutcome::Throttled { status, .. } => {
                    updates.push(Update::PartRejected {
                        id: message.id,
                        part: index as u16,
                        carrier: name.clone(),
                        bind: attempt.bind.clone(),
                        status: *status,
                    });
                }
                _ => {}
            }
        }
        let (outcome, status, stored, mut detail) = summarize(&attempt.parts);
        // A message that waited to settle a doubt (or came back in doubt from a restart)
        // and is sent again now: the SMSC may have the first copy (DESIGN promise 4).
        let resubmitting_doubt = message
            .reason
            .as_ref()
            .is_some_and(|r| r.code == "in_doubt");
        if resubmitting_doubt {
            updates.push(Update::InDoubtResubmit { id: message.id });
            metrics::counter!(crate::metrics::IN_DOUBT_RESUBMITS, "carrier" => name.clone())
                .increment(1);
        }
        // Every attempt after the first says what it retries.
        if message.attempts > 0
            && let Some(previous) = &message.reason
        {
            let retry = format!("retry after {}: {}", previous.code, previous.text);
            detail = Some(match detail {
                Some(d) => format!("{d}; {retry}"),
                None => retry,
            });
        }
        let attempts_made = message.attempts + 1;
        // One reading of the clock for everything recorded.
        let now = SystemTime::now();
        let ended_at = Timestamp::from_system_time(now);
        let at = |delay: Duration| ended_at.saturating_add(delay);
        let decision = carrier.options.retry.after_attempt(
            outcome,
            attempts_made,
            now,
            system_time(message.expires_at),
            carrier.options.in_doubt,
            self.draw(),
        );
        let (next, webhook_status, reason) = match decision {
            Decision::Submitted => {
                let waited = ended_at
                    .as_millis()
                    .saturating_sub(message.created_at.as_millis());
                carrier.accept_to_submit.record(waited as f64 / 1000.0);
                (
                    AfterAttempt::Submitted {
                        receipt_deadline: at(Duration::from_secs(
                            carrier.options.receipt_timeout_secs,
                        )),
                    },
                    "submitted",
                    None,
                )
            }
            Decision::Requeue { delay } => {
                // Throttled: give it back without spending the attempt, on any part state.
                metrics::counter!(crate::metrics::RETRIES, "reason" => "throttled").increment(1);
                let reason = Reason::new("throttled", format!("{name} is throttling"));
                (
                    AfterAttempt::Retry {
                        at: at(delay),
                        reason: reason.clone(),
                    },
                    "retrying",
                    Some(reason),
                )
            }
            Decision::Retry {
                delay, in_doubt, ..
            } => {
                if in_doubt {
                    updates.push(Update::InDoubtResubmit { id: message.id });
                    metrics::counter!(crate::metrics::IN_DOUBT_RESUBMITS, "carrier" => name.clone()).increment(1);
                }
                let why = if in_doubt { "in_doubt" } else { "transient" };
                metrics::counter!(crate::metrics::RETRIES, "reason" => why).increment(1);
                let reason = match status {
                    Some(s) => Reason::from_status(s, format!("{name} answered {s}")),
                    None => Reason::new(stored.as_str(), detail.clone().unwrap_or_default()),
                };
                (
                    AfterAttempt::Retry {
                        at: at(delay),
                        reason: reason.clone(),
                    },
                    "retrying",
                    Some(reason),
                )
            }
            Decision::AwaitSettlement { wait } => {
                metrics::counter!(crate::metrics::RETRIES, "reason" => "in_doubt").increment(1);
                let reason = Reason::new("in_doubt", "waiting for a receipt or a late response");
                (
                    AfterAttempt::Retry {
                        at: at(wait),
                        reason: reason.clone(),
                    },
                    "retrying",
                    Some(reason),
                )
            }
            Decision::Fail(r) => {
                let reason = Reason::new(r.code, r.message);
                (
                    AfterAttempt::Final {
                        state: FinalState::Failed,
                        reason: reason.clone(),
                    },
                    "failed",
                    Some(reason),
                )
            }
            Decision::Expire => {
                let reason = Reason::new("expired", "the TTL would pass before the next attempt");
                (
                    AfterAttempt::Final {
                        state: FinalState::Expired,
                        reason: reason.clone(),
                    },
                    "expired",
                    Some(reason),
                )
            }
        };
        carrier.parts_submitted.increment(accepted);
        updates.push(Update::AttemptFinished {
            id: message.id,
            attempt: NewAttempt {
                carrier: name,
                bind: attempt.bind,
                parts: attempt.parts.len() as u16,
                command_status: status,
                outcome: stored,
                detail,
                started_at: attempt.started_at,
                ended_at,
            },
            next,
        });
        self.notify(message, webhook_status, reason.as_ref());
        Record {
            updates,
            roll_up: (webhook_status == "submitted").then(|| carrier.clone()),
            permit: Some(permit),
        }
    }
}

/// What one attempt produced.
struct Attempted {
    bind: String,
    parts: Vec<PartOutcome>,
    started_at: Timestamp,
}

/// Why a carrier did not take the message.
enum Failure {
    /// Unavailable: try the next carrier.
    Failover,
    /// Busy: give the message back and try again after this long.
    Busy(Duration),
    /// It can never go: fail the message.
    Final(Reason),
}

/// Whether the message waited to settle a doubt: an attempt went unanswered, and the
/// late responses may have settled it meanwhile.
fn waited_to_settle(message: &Message) -> bool {
    message.attempts > 0
        && message
            .reason
            .as_ref()
            .is_some_and(|r| r.code == "in_doubt")
}

/// The attempt in one word: the worst part decides (a refusal, then doubt, then throttling).
fn summarize(
    parts: &[PartOutcome],
) -> (
    AttemptOutcome,
    Option<CommandStatus>,
    StoredOutcome,
    Option<String>,
) {
    let mut throttled = None;
    let mut doubt = None;
    let mut lost = false;
    let mut not_sent = false;
    for p in parts {
        match p {
            PartOutcome::Rejected { status, class, .. } => {
                let stored = if *class == crate::pdu::StatusClass::Permanent {
                    StoredOutcome::Permanent
                } else {
                    StoredOutcome::Transient
                };
                return (
                    AttemptOutcome::Rejected(*status),
                    Some(*status),
                    stored,
                    None,
                );
            }
            PartOutcome::Throttled { status, .. } => throttled = Some(*status),
            PartOutcome::TimedOut { .. } => doubt = Some("no response"),
            PartOutcome::BindLost { reason, .. } => {
                lost = true;
                doubt.get_or_insert(reason.as_str());
            }
            PartOutcome::NotSent(_) => not_sent = true,
            PartOutcome::Accepted { .. } => {}
        }
    }
    if let Some(why) = doubt {
        let outcome = if lost {
            AttemptOutcome::BindLost
        } else {
            AttemptOutcome::InDoubt
        };
        return (
            outcome,
            None,
            StoredOutcome::NoResponse,
            Some(why.to_owned()),
        );
    }
    if let Some(status) = throttled {
        return (
            AttemptOutcome::Rejected(status),
            Some(status),
            StoredOutcome::Throttled,
            None,
        );
    }
    if not_sent {
        return (
            AttemptOutcome::Unavailable,
            None,
            StoredOutcome::Transient,
            Some("a part could not be sent".into()),
        );
    }
    (
        AttemptOutcome::Accepted,
        Some(CommandStatus::ESME_ROK),
        StoredOutcome::Accepted,
        None,
    )
}

/// A phone number for logs: its country code and last two digits, every other digit starred
/// (`447700900123` → `44********23`, `+12025550143` → `+1*******43`). Anything that is not an
/// E.164 number of more than four digits is starred whole.
pub fn mask(number: &str) -> String {
    let (plus, digits) = match number.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", number),
    };
    let n = digits.len();
    if n <= 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return "*".repeat(number.chars().count());
    }
    // Keep at least two digits hidden, whatever the country code's length.
    let cc = country_code_len(digits).min(n - 4);
    format!(
        "{plus}{}{}{}",
        &digits[..cc],
        "*".repeat(n - cc - 2),
        &digits[n - 2..]
    )
}

/// The length of the E.164 country code `digits` start with (ITU-T E.164 assignments: one
/// digit for zones 1 and 7, two or three elsewhere).
fn country_code_len(digits: &str) -> usize {
    let d = digits.as_bytes();
    let second = d.get(1).copied().unwrap_or(b'0');
    match (d[0], second) {
        (b'1' | b'7', _) => 1,
        (b'2', b'0' | b'7') => 2,
        (b'2', _) => 3,
        (b'3', b'5' | b'7' | b'8') => 3,
        (b'3', _) => 2,
        (b'4', b'2') => 3,
        (b'4', _) => 2,
        (b'5', b'0' | b'9') => 3,
        (b'5', _) => 2,
        (b'6', b'7' | b'8' | b'9') => 3,
        (b'6', _) => 2,
        (b'8', b'1' | b'2' | b'4' | b'6') => 2,
        (b'8', _) => 3,
        (b'9', b'6' | b'7' | b'9') => 3,
        (b'9', _) => 2,
        _ => 1,
    }
}

/// The id of a message, for callers that hold only its text form.
pub fn parse_id(text: &str) -> Option<MessageId> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masked_numbers_keep_their_country_code_and_last_two_digits() {
        assert_eq!(mask("447700900123"), "44********23");
        assert_eq!(mask("+447700900123"), "+44********23");
        assert_eq!(mask("+12025550143"), "+1********43");
        assert_eq!(mask("79161234567"), "7********67");
        assert_eq!(mask("353861234567"), "353*******67");
        assert_eq!(mask("2348031234567"), "234********67");
        assert_eq!(mask("27821234567"), "27*******67");
        assert_eq!(mask("8613812345678"), "86*********78");
        assert_eq!(mask("85291234567"), "852******67");
        assert_eq!(mask("971501234567"), "971*******67");
        // Short numbers keep two digits hidden; anything else is starred whole.
        assert_eq!(mask("35312"), "3**12");
        assert_eq!(mask("1234"), "****");
        assert_eq!(mask("Brand"), "*****");
        assert_eq!(mask("+44 77é"), "*******");
        assert_eq!(mask(""), "");
    }
}

//! Delivery receipts and MO messages: built when a submit is accepted (or an MO is injected),
//! held by one scheduler until due, and handed to any receiving bind of the account.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use smppd::pdu::{
    Body, COctetString, DataCoding, EsmClass, MessageState, NetworkErrorCode, Npi, Pdu,
    ShortMessage, SubmitSm, TlvsBuilder, Ton,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Outcome, ReceiptFormat, ReceiptIdStyle};
use crate::{Outbound, Shared};

/// The message_state a receipt `stat` stands for (3.4 Table B-2, §4.9).
pub(crate) fn stat_state(stat: &str) -> Option<MessageState> {
    Some(match stat {
        "ENROUTE" => MessageState::ENROUTE,
        "DELIVRD" => MessageState::DELIVERED,
        "EXPIRED" => MessageState::EXPIRED,
        "DELETED" => MessageState::DELETED,
        "UNDELIV" => MessageState::UNDELIVERABLE,
        "ACCEPTD" => MessageState::ACCEPTED,
        "UNKNOWN" => MessageState::UNKNOWN,
        "REJECTD" => MessageState::REJECTED,
        _ => return None,
    })
}

/// What a job carries to the ESME.
#[derive(Clone, Debug)]
pub(crate) enum JobKind {
    /// A delivery receipt for the message with this id counter (the table's key).
    Receipt { message: u64 },
    /// One part of a mobile-originated message.
    Mo,
}

/// A deliver_sm waiting to be sent (or sent again).
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) account: usize,
    pub(crate) kind: JobKind,
    /// The whole deliver_sm, encoded once with sequence_number 0: sending it (again) is a
    /// copy and a patch, and a job stays small as it moves between queues.
    pdu: Bytes,
    /// Times it was written to an ESME already.
    pub(crate) attempts: u32,
    /// When the job was made; one that cannot be delivered for an hour is given up.
    pub(crate) created: Instant,
}

impl Job {
    /// A job carrying `body` as a deliver_sm.
    pub(crate) fn new(account: usize, kind: JobKind, body: SubmitSm, created: Instant) -> Job {
        Job {
            account,
            kind,
            pdu: Pdu::new(0, Body::DeliverSm(body)).to_bytes(),
            attempts: 0,
            created,
        }
    }

    /// Appends the deliver_sm to `buf` with `sequence_number`.
    pub(crate) fn write(&self, sequence_number: u32, buf: &mut BytesMut) {
        let start = buf.len();
        buf.extend_from_slice(&self.pdu);
        // The header's fourth word (3.4 §3.2); every PDU has the 16-octet header.
        if let Some(seq) = buf.get_mut(start + 12..start + 16) {
            seq.copy_from_slice(&sequence_number.to_be_bytes());
        }
    }
}

/// A job held until due: the heap orders these small entries, the job itself waits in a slot
/// (a heap of whole jobs would move hundreds of octets on every sift).
struct Held {
    due: Instant,
    order: u64,
    slot: usize,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// How long an undeliverable job is kept trying (no receiving bind, every bind full).
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);
/// How soon an account without a receiving bind is tried again (a new bind wakes it sooner).
const RETRY_NO_BIND: Duration = Duration::from_millis(100);
/// How soon an account whose receiving binds were all full is tried again (a bind that
/// drains its queue wakes it sooner).
const RETRY_FULL: Duration = Duration::from_millis(5);
/// Most jobs taken from the channel at once.
const BATCH: usize = 1024;

/// Why a due job could not be handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// The account has no receiving bind.
    NoReceiver,
    /// Every receiving bind of the account has its queue full.
    Full,
}

impl Blocked {
    fn retry_in(self) -> Duration {
        match self {
            Blocked::NoReceiver => RETRY_NO_BIND,
            Blocked::Full => RETRY_FULL,
        }
    }
}

/// Where due jobs go: a receiving bind of their account.
pub(crate) trait Deliver {
    /// Hands `job` over, or gives it back with the reason.
    fn deliver(&mut self, job: Job) -> Result<(), (Job, Blocked)>;
    /// `job` waited longer than [`GIVE_UP_AFTER`] and is dropped.
    fn give_up(&mut self, job: Job);
}

/// Due jobs of one account that its binds could not take yet, oldest first.
#[derive(Default)]
struct Parked {
    jobs: VecDeque<Job>,
    /// When to try the front again; set while `jobs` is not empty.
    retry_at: Option<Instant>,
}

/// The scheduler's state, without I/O: jobs wait in a heap until due, then go to their
/// account's binds. An account whose binds cannot take a job gets a queue of its own, which
/// keeps the order they fell due in and is retried from the front only, so a blocked account
/// costs one attempt per retry whatever its backlog, and never delays another account.
pub(crate) struct Scheduler {
    heap: BinaryHeap<Reverse<Held>>,
    /// The held jobs, by slot; `free` lists the empty slots.
    slots: Vec<Option<Job>>,
    free: Vec<usize>,
    order: u64,
    /// By account index.
    parked: Vec<Parked>,
}

impl Scheduler {
    pub(crate) fn new(accounts: usize) -> Scheduler {
        Scheduler {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            order: 0,
            parked: (0..accounts).map(|_| Parked::default()).collect(),
        }
    }

    fn parked(&mut self, account: usize) -> &mut Parked {
        if account >= self.parked.len() {
            self.parked.resize_with(account + 1, Parked::default);
        }
        &mut self.parked[account]
    }

    /// Takes a job due at `due`: handed over now when it is due and nothing held is due
    /// before it (receipts without delay, MO), else held.
    pub(crate) fn add(&mut self, now: Instant, due: Instant, job: Job, out: &mut impl Deliver) {
        if due <= now && self.heap.peek().is_none_or(|h| h.0.due > due) {
            self.fall_due(now, job, out);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(job);
                slot
            }
            None => {
                self.slots.push(Some(job));
                self.slots.len() - 1
            }
        };
        self.order += 1;
        self.heap.push(Reverse(Held {
            due,
            order: self.order,
            slot,
        }));
    }

    /// A job is due: to its account's binds, unless jobs due before it still wait.
    fn fall_due(&mut self, now: Instant, job: Job, out: &mut impl Deliver) {
        let parked = self.parked(job.account);
        if !parked.jobs.is_empty() {
            parked.jobs.push_back(job);
            return;
        }
        if let Err((job, why)) = out.deliver(job) {
            parked.jobs.push_back(job);
            parked.retry_at = Some(now + why.retry_in());
        }
    }

    /// Does what is due at `now`: retries parked accounts whose retry time came (all of
    /// them when `room`: a bind drained its queue or appeared), then hands over held jobs
    /// that fell due.
    pub(crate) fn poll(&mut self, now: Instant, room: bool, out: &mut impl Deliver) {
        for account in 0..self.parked.len() {
            let p = &self.parked[account];
            if !p.jobs.is_empty() && (room || p.retry_at.is_some_and(|t| t <= now)) {
                self.retry(now, account, out);
            }
        }
        while self.heap.peek().is_some_and(|h| h.0.due <= now) {
            let Some(Reverse(held)) = self.heap.pop() else {
                break;
            };
            self.free.push(held.slot);
            // Every slot in the heap holds its job until popped here.
            if let Some(job) = self.slots[held.slot].take() {
                self.fall_due(now, job, out);
            }
        }
    }

    /// Hands over an account's parked jobs from the front until one is refused.
    fn retry(&mut self, now: Instant, account: usize, out: &mut impl Deliver) {
        let parked = &mut self.parked[account];
        while let Some(job) = parked.jobs.pop_front() {
            if now.saturating_duration_since(job.created) > GIVE_UP_AFTER {
                out.give_up(job);
                continue;
            }
            if let Err((job, why)) = out.deliver(job) {
                parked.jobs.push_front(job);
                parked.retry_at = Some(now + why.retry_in());
                return;
            }
        }
        parked.retry_at = None;
    }

    /// When [`Scheduler::poll`] has something to do next, if ever.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let parked = self
            .parked
            .iter()
            .filter(|p| !p.jobs.is_empty())
            .filter_map(|p| p.retry_at);
        self.heap
            .peek()
            .map(|h| h.0.due)
            .into_iter()
            .chain(parked)
            .min()
    }

    /// Jobs held or parked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len() + self.parked.iter().map(|p| p.jobs.len()).sum::<usize>()
    }
}

/// Runs until cancelled: holds jobs until due, then hands each to a receiving bind.
pub(crate) async fn scheduler(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(Instant, Job)>,
    shutdown: CancellationToken,
) {
    let mut core = Scheduler::new(shared.accounts.len());
    let mut binds = Binds {
        shared: &shared,
        next_receiver: vec![0; shared.accounts.len()],
    };
    let mut batch = Vec::with_capacity(BATCH);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let next = core.next_wake();
        if next != armed {
            if let Some(d) = next {
                timer.as_mut().reset(d.into());
            }
            armed = next;
        }
        let mut room = false;
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                let now = Instant::now();
                for (due, job) in batch.drain(..) {
                    core.add(now, due, job, &mut binds);
                }
            }
            () = &mut timer, if armed.is_some() => {
                armed = None;
            }
            () = shared.room.notified() => room = true,
            () = shutdown.cancelled() => return,
        }
        // Whichever branch woke us: under load jobs arrive due.
        core.poll(Instant::now(), room, &mut binds);
    }
}

/// The accounts' receiving binds, as the scheduler hands jobs to them.
struct Binds<'a> {
    shared: &'a Shared,
    /// Per account, where the round robin over its receiving binds starts next.
    next_receiver: Vec<usize>,
}

impl Deliver for Binds<'_> {
    /// Gives the job to a receiving bind of its account, round robin.
    fn deliver(&mut self, job: Job) -> Result<(), (Job, Blocked)> {
        let index = job.account;
        let account = &self.shared.accounts[index];
        let Ok(binds) = account.binds.lock() else {
            return Err((job, Blocked::NoReceiver));
        };
        let receivers = binds.iter().filter(|b| b.bind_type.can_receive()).count();
        if receivers == 0 {
            return Err((job, Blocked::NoReceiver));
        }
        let start = self.next_receiver[index];
        self.next_receiver[index] = start.wrapping_add(1);
        let mut job = job;
        let candidates = binds
            .iter()
            .filter(|b| b.bind_type.can_receive())
            .cycle()
            .skip(start % receivers)
            .take(receivers);
        for bind in candidates {
            match bind.tx.try_send(Outbound::Deliver(job)) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(Outbound::Deliver(j)))
                | Err(mpsc::error::TrySendError::Closed(Outbound::Deliver(j))) => job = j,
                Err(_) => return Ok(()),
            }
        }
        // Asks the binds to say when one drains its queue.
        account.wants_room.store(true, Relaxed);
        Err((job, Blocked::Full))
    }

    fn give_up(&mut self, job: Job) {
        // (An MO part given up is not a receipt: it is not counted as one.)
        if matches!(job.kind, JobKind::Receipt { .. }) {
            self.shared.stats.receipts_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// `YYMMDDhhmm` in UTC, as Appendix B writes receipt dates.
pub(crate) fn receipt_date(t: SystemTime) -> String {
    let mut out = String::with_capacity(10);
    write_receipt_date(&mut out, t);
    out
}

/// Appends `YYMMDDhhmm` in UTC.
fn write_receipt_date(out: &mut String, t: SystemTime) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    for part in [
        year.rem_euclid(100) as u64,
        month as u64,
        day as u64,
        rem / 3600,
        (rem / 60) % 60,
    ] {
        push_decimal(out, part, 2);
    }
}

/// Appends `value` in decimal, zero-padded to `width` digits. (Receipt text is written for
/// every message: by hand, not through `fmt`.)
fn push_decimal(out: &mut String, value: u64, width: usize) {
    let (digits, n) = crate::ids::decimal_digits(value);
    for _ in n..width {
        out.push('0');
    }
    for &d in digits[..n].iter().rev() {
        out.push(char::from(d));
    }
}

/// Appends `value` in upper-case hex, without leading zeros.
fn push_hex(out: &mut String, value: u64) {
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(char::from(
            b"0123456789ABCDEF"[((value >> (4 * i)) & 0xF) as usize],
        ));
    }
}

/// Everything needed to write one receipt.
pub(crate) struct ReceiptFacts<'a> {
    pub(crate) message_id: &'a str,
    /// The id's value as a number (hex and decimal ids), for writing it in the other base.
    pub(crate) numeric_id: Option<u64>,
    pub(crate) text_id: ReceiptIdStyle,
    pub(crate) format: ReceiptFormat,
    pub(crate) outcome: &'a Outcome,
    /// The submit's source, which becomes the receipt's destination.
    pub(crate) source: (Ton, Npi, &'a str),
    /// The submit's destination, which becomes the receipt's source.
    pub(crate) destination: (Ton, Npi, &'a str),
    pub(crate) submitted: SystemTime,
    pub(crate) done: SystemTime,
    /// The start of the message text (Appendix B: its first 20 characters).
    pub(crate) text: &'a str,
}

/// Appends the id as the receipt text writes it.
fn write_id(out: &mut String, facts: &ReceiptFacts<'_>) {
    match (facts.text_id, facts.numeric_id) {
        (ReceiptIdStyle::Hex, Some(v)) => push_hex(out, v),
        (ReceiptIdStyle::Decimal, Some(v)) => push_decimal(out, v, 10),
        _ => out.push_str(facts.message_id),
    }
}

/// A deliver_sm body carrying the receipt (esm_class 0x04, 3.4 §2.11, Appendix B).
pub(crate) fn receipt_body(facts: &ReceiptFacts<'_>) -> SubmitSm {
    let state = stat_state(&facts.outcome.stat).unwrap_or(MessageState::UNKNOWN);
    let delivered = state == MessageState::DELIVERED;
    let short_message = if facts.format == ReceiptFormat::Tlvs {
        ShortMessage::empty()
    } else {
        // id:… sub:001 dlvrd:… submit date:… done date:… stat:… err:… Text:…, written in
        // place (this runs for every receipt).
        let mut text = String::with_capacity(128);
        text.push_str("id:");
        write_id(&mut text, facts);
        text.push_str(" sub:001 dlvrd:");
        text.push_str(if delivered { "001" } else { "000" });
        text.push_str(" submit date:");
        write_receipt_date(&mut text, facts.submitted);
        text.push_str(" done date:");
        write_receipt_date(&mut text, facts.done);
        text.push_str(" stat:");
        text.push_str(&facts.outcome.stat);
        text.push_str(" err:");
        push_decimal(&mut text, u64::from(facts.outcome.err), 3);
        text.push_str(" Text:");
        text.extend(facts.text.chars().take(20));
        // The text is ASCII with 20 characters of message at most: under 254 octets unless
        // the id is very long, in which case the message text is what gets cut.
        let mut octets = text.into_bytes();
        octets.truncate(ShortMessage::MAX_LEN);
        ShortMessage::new(octets).unwrap_or_default()
    };
    let tlvs = if facts.format == ReceiptFormat::Text {
        TlvsBuilder::new().build()
    } else {
        let builder = TlvsBuilder::new()
            .receipted_message_id(facts.message_id.as_bytes())
            .unwrap_or_default()
            .message_state(state);
        if facts.outcome.err != 0 {
            builder
                .network_error_code(NetworkErrorCode {
                    network_type: 3,
                    error_code: facts.outcome.err,
                })
                .build()
        } else {
            builder.build()
        }
    };
    SubmitSm {
        source_addr_ton: facts.destination.0,
        source_addr_npi: facts.destination.1,
        source_addr: COctetString::new(facts.destination.2).unwrap_or_default(),
        dest_addr_ton: facts.source.0,
        dest_addr_npi: facts.source.1,
        destination_addr: COctetString::new(facts.source.2).unwrap_or_default(),
        esm_class: EsmClass::DELIVERY_RECEIPT,
        data_coding: DataCoding::DEFAULT,
        short_message,
        tlvs,
        ..SubmitSm::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Binds that take `room[account]` more jobs (an account missing has no receiver).
    #[derive(Default)]
    struct FakeBinds {
        room: HashMap<usize, usize>,
        /// (account, message id) in the order handed over.
        delivered: Vec<(usize, u64)>,
        attempts: HashMap<usize, usize>,
        given_up: Vec<u64>,
    }

    fn id_of(job: &Job) -> u64 {
        match job.kind {
            JobKind::Receipt { message } => message,
            JobKind::Mo => 0,
        }
    }

    impl Deliver for FakeBinds {
        fn deliver(&mut self, job: Job) -> Result<(), (Job, Blocked)> {
            *self.attempts.entry(job.account).or_default() += 1;
            match self.room.get_mut(&job.account) {
                None => Err((job, Blocked::NoReceiver)),
                Some(0) => Err((job, Blocked::Full)),
                Some(n) => {
                    *n -= 1;
                    self.delivered.push((job.account, id_of(&job)));
                    Ok(())
                }
            }
        }

        fn give_up(&mut self, job: Job) {
            self.given_up.push(id_of(&job));
        }
    }

    fn job(account: usize, message: u64, created: Instant) -> Job {
        Job::new(
            account,
            JobKind::Receipt { message },
            SubmitSm::default(),
            created,
        )
    }

    fn ids_of(binds: &FakeBinds, account: usize) -> Vec<u64> {
        binds
            .delivered
            .iter()
            .filter(|(a, _)| *a == account)
            .map(|&(_, id)| id)
            .collect()
    }

    #[test]
    fn parks_a_full_accounts_jobs_in_order_without_holding_up_another_account() {
        let t0 = Instant::now();
        let mut binds = FakeBinds::default();
        binds.room.insert(0, 2);
        binds.room.insert(1, usize::MAX);
        let mut s = Scheduler::new(2);
        for i in 0..5 {
            s.add(t0, t0, job(0, 100 + i, t0), &mut binds);
            s.add(t0, t0, job(1, 200 + i, t0), &mut binds);
        }
        assert_eq!(ids_of(&binds, 0), [100, 101]);
        assert_eq!(ids_of(&binds, 1), [200, 201, 202, 203, 204]);
        // Once refused, the account's later jobs queue up without trying its binds.
        assert_eq!(binds.attempts[&0], 3);
        assert_eq!(s.len(), 3);
        assert_eq!(s.next_wake(), Some(t0 + RETRY_FULL));

        // Not yet due for a retry: nothing tried.
        s.poll(t0 + Duration::from_millis(1), false, &mut binds);
        assert_eq!(binds.attempts[&0], 3);
        // A retry tries from the front and stops at the first refusal.
        binds.room.insert(0, 1);
        s.poll(t0 + RETRY_FULL, false, &mut binds);
        assert_eq!(ids_of(&binds, 0), [100, 101, 102]);
        assert_eq!(binds.attempts[&0], 5);
        // A job falling due meanwhile goes behind those still waiting.
        let t1 = t0 + RETRY_FULL;
        s.add(
            t1,
            t1 + Duration::from_millis(1),
            job(0, 105, t0),
            &mut binds,
        );
        binds.room.insert(0, usize::MAX);
        s.poll(t1 + Duration::from_millis(1), true, &mut binds);
        assert_eq!(ids_of(&binds, 0), [100, 101, 102, 103, 104, 105]);
        assert_eq!(s.len(), 0);
        assert_eq!(s.next_wake(), None);
    }

    #[test]
    fn holds_jobs_until_due_in_due_order() {
        let t0 = Instant::now();
        let mut binds = FakeBinds::default();
        binds.room.insert(0, usize::MAX);
        let mut s = Scheduler::new(1);
        let ms = Duration::from_millis;
        s.add(t0, t0 + ms(30), job(0, 30, t0), &mut binds);
        s.add(t0, t0 + ms(10), job(0, 10, t0), &mut binds);
        s.add(t0, t0 + ms(20), job(0, 20, t0), &mut binds);
        assert_eq!(s.next_wake(), Some(t0 + ms(10)));
        s.poll(t0 + ms(5), false, &mut binds);
        assert!(binds.delivered.is_empty());
        // Due now, but one held is due before it: it waits its turn.
        s.add(t0 + ms(25), t0 + ms(25), job(0, 25, t0), &mut binds);
        s.poll(t0 + ms(25), false, &mut binds);
        assert_eq!(ids_of(&binds, 0), [10, 20, 25]);
        s.poll(t0 + ms(30), false, &mut binds);
        assert_eq!(ids_of(&binds, 0), [10, 20, 25, 30]);
    }

    #[test]
    fn retries_an_account_without_receivers_slowly_and_gives_up_after_an_hour() {
        let t0 = Instant::now();
        let mut binds = FakeBinds::default();
        let mut s = Scheduler::new(1);
        s.add(t0, t0, job(0, 1, t0), &mut binds);
        let t1 = t0 + Duration::from_secs(1800);
        s.add(t1, t1, job(0, 2, t1), &mut binds);
        assert_eq!(s.next_wake(), Some(t0 + RETRY_NO_BIND));
        assert_eq!(binds.attempts[&0], 1);

        let late = t0 + GIVE_UP_AFTER + Duration::from_secs(1);
        s.poll(late, false, &mut binds);
        assert_eq!(binds.given_up, [1]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_wake(), Some(late + RETRY_NO_BIND));

        // A receiving bind appears: the one left goes at once.
        binds.room.insert(0, usize::MAX);
        s.poll(late, true, &mut binds);
        assert_eq!(ids_of(&binds, 0), [2]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn receipt_dates_are_utc_yymmddhhmm() {
        // 2024-01-15 12:30:00 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_705_321_800);
        assert_eq!(receipt_date(t), "2401151230");
        // 2000-02-29 00:00 (a leap day)
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(receipt_date(t), "0002290000");
    }

    #[test]
    fn numbers_are_written_as_fmt_would() {
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            999,
            1000,
            65_535,
            4_294_967_295,
            u64::MAX,
        ] {
            for width in [0, 2, 3, 10, 25] {
                let mut out = String::new();
                push_decimal(&mut out, v, width);
                assert_eq!(out, format!("{v:0width$}"));
            }
            let mut out = String::new();
            push_hex(&mut out, v);
            assert_eq!(out, format!("{v:X}"));
        }
    }

    #[test]
    fn receipt_text_follows_appendix_b_and_converts_the_id() {
        let outcome = Outcome {
            stat: "UNDELIV".into(),
            weight: 1.0,
            err: 1,
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_705_321_800);
        let facts = ReceiptFacts {
            message_id: "1A2B3C4D",
            numeric_id: Some(0x1A2B_3C4D),
            text_id: ReceiptIdStyle::Decimal,
            format: ReceiptFormat::Both,
            outcome: &outcome,
            source: (Ton(1), Npi(1), "447700900001"),
            destination: (Ton(1), Npi(1), "447700900123"),
            submitted: t,
            done: t,
            text: "Hello there, this is longer than twenty",
        };
        let body = receipt_body(&facts);
        assert_eq!(
            std::str::from_utf8(body.short_message.as_bytes()).unwrap(),
            "id:0439041101 sub:001 dlvrd:000 submit date:2401151230 done date:2401151230 \
             stat:UNDELIV err:001 Text:Hello there, this is"
        );
        assert_eq!(body.source_addr.as_str(), Some("447700900123"));
        assert_eq!(body.destination_addr.as_str(), Some("447700900001"));
        assert_eq!(body.tlvs.receipted_message_id().unwrap(), &b"1A2B3C4D"[..]);
        assert_eq!(body.tlvs.message_state(), Some(MessageState::UNDELIVERABLE));
        assert_eq!(body.tlvs.network_error_code().unwrap().error_code, 1);
    }
}

//! Delivery receipts and MO messages: built when a submit is accepted (or an MO is injected),
//! held by one scheduler until due, and handed to any receiving bind of the account.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smppd::pdu::{
    COctetString, DataCoding, EsmClass, MessageState, NetworkErrorCode, Npi, ShortMessage,
    SubmitSm, TlvsBuilder, Ton,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Outcome, ReceiptFormat, ReceiptIdStyle};
use crate::ids::{MessageIdFormat, numeric_value};
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
    /// A delivery receipt for this message id.
    Receipt { message_id: String },
    /// One part of a mobile-originated message.
    Mo,
}

/// A deliver_sm waiting to be sent (or sent again).
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) account: usize,
    pub(crate) kind: JobKind,
    pub(crate) body: SubmitSm,
    /// Times it was written to an ESME already.
    pub(crate) attempts: u32,
    /// When the job was made; one that cannot be delivered for an hour is given up.
    pub(crate) created: Instant,
}

struct Scheduled {
    due: Instant,
    order: u64,
    job: Job,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// How long an undeliverable job is kept trying (no receiving bind, every bind full).
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);
/// How soon a job that found no receiving bind is tried again.
const RETRY_NO_BIND: Duration = Duration::from_millis(100);
/// How soon a job is tried again when every receiving bind had its queue full.
const RETRY_FULL: Duration = Duration::from_millis(5);
/// Most jobs taken from the channel at once.
const BATCH: usize = 1024;

/// Runs until cancelled: holds jobs until due, then hands each to a receiving bind.
pub(crate) async fn scheduler(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<(Instant, Job)>,
    shutdown: CancellationToken,
) {
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let next = heap.peek().map(|s| s.0.due);
        if next != armed {
            if let Some(d) = next {
                timer.as_mut().reset(d.into());
            }
            armed = next;
        }
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                let now = Instant::now();
                for (due, job) in batch.drain(..) {
                    // Due already, and nothing held is due before it: hand it over without
                    // a trip through the heap (receipts without delay, MO).
                    let job = if due <= now && heap.peek().is_none_or(|s| s.0.due > due) {
                        match hand_over(&shared, job) {
                            None => continue,
                            Some((job, retry)) => {
                                order += 1;
                                heap.push(Reverse(Scheduled { due: now + retry, order, job }));
                                continue;
                            }
                        }
                    } else {
                        job
                    };
                    order += 1;
                    heap.push(Reverse(Scheduled { due, order, job }));
                }
            }
            () = &mut timer, if armed.is_some() => {
                armed = None;
            }
            () = shutdown.cancelled() => return,
        }
        // Hand over whatever is due, whichever branch woke us: under load jobs arrive due.
        let now = Instant::now();
        while heap.peek().is_some_and(|s| s.0.due <= now) {
            let Some(Reverse(s)) = heap.pop() else { break };
            if let Some((job, retry)) = hand_over(&shared, s.job) {
                if now.duration_since(job.created) > GIVE_UP_AFTER {
                    shared
                        .stats
                        .receipts_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                order += 1;
                heap.push(Reverse(Scheduled {
                    due: now + retry,
                    order,
                    job,
                }));
            }
        }
    }
}

/// Gives the job to a receiving bind of its account, round robin. Returns it, with when to
/// try again, when none can take it now.
fn hand_over(shared: &Shared, job: Job) -> Option<(Job, Duration)> {
    let account = &shared.accounts[job.account];
    let Ok(binds) = account.binds.lock() else {
        return Some((job, RETRY_NO_BIND));
    };
    let receivers = binds.iter().filter(|b| b.bind_type.can_receive()).count();
    if receivers == 0 {
        return Some((job, RETRY_NO_BIND));
    }
    let start = account
        .next_receiver
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut job = job;
    let mut candidates = binds
        .iter()
        .filter(|b| b.bind_type.can_receive())
        .cycle()
        .skip(start % receivers)
        .take(receivers);
    for bind in candidates.by_ref() {
        match bind.tx.try_send(Outbound::Deliver(job)) {
            Ok(()) => return None,
            Err(mpsc::error::TrySendError::Full(Outbound::Deliver(j)))
            | Err(mpsc::error::TrySendError::Closed(Outbound::Deliver(j))) => job = j,
            Err(_) => return None,
        }
    }
    Some((job, RETRY_FULL))
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
    let _ = write!(
        out,
        "{:02}{:02}{:02}{:02}{:02}",
        year.rem_euclid(100),
        month,
        day,
        rem / 3600,
        (rem / 60) % 60
    );
}

/// Everything needed to write one receipt.
pub(crate) struct ReceiptFacts<'a> {
    pub(crate) message_id: &'a str,
    pub(crate) id_format: MessageIdFormat,
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
    let value = match facts.text_id {
        ReceiptIdStyle::Same => None,
        _ => numeric_value(facts.message_id, facts.id_format),
    };
    let _ = match (facts.text_id, value) {
        (ReceiptIdStyle::Hex, Some(v)) => write!(out, "{v:X}"),
        (ReceiptIdStyle::Decimal, Some(v)) => write!(out, "{v:010}"),
        _ => out.write_str(facts.message_id),
    };
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
        let _ = write!(
            text,
            " stat:{} err:{:03} Text:",
            facts.outcome.stat, facts.outcome.err
        );
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
    fn receipt_text_follows_appendix_b_and_converts_the_id() {
        let outcome = Outcome {
            stat: "UNDELIV".into(),
            weight: 1.0,
            err: 1,
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_705_321_800);
        let facts = ReceiptFacts {
            message_id: "1A2B3C4D",
            id_format: MessageIdFormat::Hex,
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

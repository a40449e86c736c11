//! Inbound traffic: delivery receipts and mobile-originated messages from every carrier's
//! receiving binds.
//!
//! Receipts are read TLV-first with the text as fallback, keyed by (carrier, canonical id),
//! stored and correlated in one commit, rolled up into their messages, and only then
//! acknowledged (DESIGN promise 2): a stop anywhere before the answer makes the SMSC send them
//! again. The parts' receipts are rolled up into the message: delivered when every part is (or
//! the first part, for carriers that receipt only that one), failed when a part failed for
//! good, and sent again when the failure is worth a retry. A message whose roll-up was lost
//! anyway (a receipt matched as its part was recorded, then a stop) is rolled up from its
//! stored receipts at its receipt deadline. MO messages are reassembled, stored, and their
//! keywords (STOP, START, ...) update the suppression list.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::carrier::Delivery;
use crate::conn::{InboundPdu, Responder};
use crate::dispatch::dispatcher::{CarrierEntry, ReceiptParts};
use crate::dispatch::policy::ReceiptClass;
use crate::pdu::{CommandStatus, TlvTag, Tlvs};
use crate::sms::{
    self, Accepted, Fragment, Reassembler, ReassemblyConfig, ReceiptStat, ReceiptTlvs,
};
use crate::store::{
    AttemptOutcome, FinalState, Message, MessageDetail, MessageId, MessageState, NewMo, NewReceipt,
    PartReceiptState, PartState, Reason, ReceiptMatch, ReceiptOutcome, RollUp, Store,
    SuppressionSource, Timestamp, Update, UpdateOutcome,
};
use crate::webhook::Webhooks;

/// MO keywords (`[mo]`): a message whose whole text is one of these (any case) opts the
/// sender out or back in.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoConfig {
    /// Opt-out words. Default STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT.
    pub stop: Vec<String>,
    /// Opt-in words. Default START, UNSTOP.
    pub start: Vec<String>,
}

impl Default for MoConfig {
    fn default() -> Self {
        MoConfig {
            stop: ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
                .map(String::from)
                .to_vec(),
            start: ["START", "UNSTOP"].map(String::from).to_vec(),
        }
    }
}

/// Receipts handled per store call.
const BATCH: usize = 512;
/// Batches of receipts being recorded at once.
const DEPTH: usize = 4;

/// Handles everything carriers deliver.
pub struct Inbound {
    store: Arc<dyn Store>,
    carriers: Arc<HashMap<String, Arc<CarrierEntry>>>,
    rule: RollUp,
    mo: MoConfig,
    reassembler: Reassembler,
    webhooks: Option<Webhooks>,
}

/// Receipts of one batch with what recording them needs.
struct ReceiptBatch {
    store: Arc<dyn Store>,
    carriers: Arc<HashMap<String, Arc<CarrierEntry>>>,
    rule: RollUp,
    webhooks: Option<Webhooks>,
    receipts: Vec<NewReceipt>,
    responders: Vec<Responder>,
}

/// Counts of one batch's receipts, added to the metrics once per label set.
#[derive(Default)]
struct Tally<'a> {
    by_stat: HashMap<(&'a str, &'static str), u64>,
    correlated: HashMap<(&'a str, &'static str), u64>,
}

impl Tally<'_> {
    fn flush(self) {
        for ((carrier, stat), n) in self.by_stat {
            metrics::counter!(crate::metrics::RECEIPTS, "carrier" => carrier.to_owned(), "stat" => stat)
                .increment(n);
        }
        for ((carrier, result), n) in self.correlated {
            metrics::counter!(crate::metrics::RECEIPTS_MATCHED, "carrier" => carrier.to_owned(), "result" => result)
                .increment(n);
        }
    }
}

impl ReceiptBatch {
    /// Stores the receipts and rolls what matched up into their messages, the plain cases
    /// (delivered; failed for good) in the same commit, then answers each deliver_sm:
    /// ESME_ROK once all of that is recorded, else ESME_RX_T_APPN (send again). The
    /// messages finished are reported to their webhooks after the answers.
    async fn record(self) {
        let ReceiptBatch {
            store,
            carriers,
            rule,
            webhooks,
            receipts,
            responders,
        } = self;
        let carriers_of: Vec<(String, &'static str)> = receipts
            .iter()
            .map(|r| {
                (
                    r.carrier.clone(),
                    r.stat.as_ref().map_or("none", stat_label),
                )
            })
            .collect();
        let mut tally = Tally::default();
        for (carrier, stat) in &carriers_of {
            *tally.by_stat.entry((carrier, stat)).or_default() += 1;
        }
        let mut finished = Vec::new();
        let status = match store.store_receipts_rolling_up(receipts, Some(rule)).await {
            Ok(outcomes) => {
                let now = Timestamp::now();
                let mut latency: HashMap<&str, metrics::Histogram> = HashMap::new();
                let mut matched = Vec::new();
                for ((carrier, _), outcome) in carriers_of.iter().zip(outcomes) {
                    let m = match outcome {
                        ReceiptOutcome::Matched(m) => m,
                        ReceiptOutcome::Unmatched { .. } => {
                            *tally.correlated.entry((carrier, "unmatched")).or_default() += 1;
                            continue;
                        }
                    };
                    *tally.correlated.entry((carrier, "matched")).or_default() += 1;
                    latency
                        .entry(carrier)
                        .or_insert_with(|| {
                            metrics::histogram!(crate::metrics::ACCEPT_TO_RECEIPT, "carrier" => carrier.clone())
                        })
                        .record(
                            now.as_millis().saturating_sub(m.accepted_at.as_millis()) as f64
                                / 1000.0,
                        );
                    if let Some((state, reason)) = m.finished {
                        finished.push((m.message_id, m.has_callback_url, state, reason));
                    } else if m.message_state == MessageState::Submitted
                        && let Some(entry) = carriers.get(carrier)
                    {
                        // Left to decide here: failures worth sending again. (A part of an
                        // earlier attempt matched while the message is being sent again says
                        // nothing about the new attempt.)
                        matched.push((entry.clone(), m));
                    }
                }
                // Acknowledged once what they mean is recorded too: a stop between the two
                // would otherwise leave a delivered message waiting for a receipt that the
                // SMSC, answered already, never sends again. Not recorded: have them resent.
                if roll_up(&*store, webhooks.as_ref(), matched).await {
                    CommandStatus::ESME_ROK
                } else {
                    CommandStatus::ESME_RX_T_APPN
                }
            }
            Err(e) => {
                // Not stored: have the SMSC send them again later.
                tracing::error!(error = %e, "storing receipts failed");
                CommandStatus::ESME_RX_T_APPN
            }
        };
        for responder in responders {
            let _ = responder.try_respond(status);
        }
        tally.flush();
        notify_finished(&*store, webhooks.as_ref(), finished).await;
    }
}

/// A receipt stat as a metric label: the standard ones by name, every other value as
/// `other` (a carrier's own words must not grow the label set without bound).
fn stat_label(stat: &ReceiptStat) -> &'static str {
    stat.standard_name().unwrap_or("other")
}

/// Reports messages a receipt finished to their webhooks and the log, reading only the
/// messages one of the two wants: (message, has its own callback URL, state, reason).
async fn notify_finished(
    store: &dyn Store,
    webhooks: Option<&Webhooks>,
    mut finished: Vec<(MessageId, bool, FinalState, Reason)>,
) {
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let info = tracing::enabled!(tracing::Level::INFO);
    finished.retain(|(_, own_url, state, _)| {
        webhooks.is_some_and(|w| w.has_url(*own_url))
            || match state {
                FinalState::Delivered => debug,
                _ => info,
            }
    });
    for chunk in finished.chunks(crate::store::MAX_BATCH) {
        let ids = chunk.iter().map(|(id, _, _, _)| *id).collect();
        let messages = match store.messages(ids).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::error!(error = %e, "reading finished messages to report them failed");
                continue;
            }
        };
        for ((_, _, state, reason), message) in chunk.iter().zip(messages) {
            let Some(message) = message else { continue };
            let status = final_name(*state);
            log_change(&message, status, Some(reason));
            if let Some(webhooks) = webhooks {
                webhooks.message_changed(&message, status, Some(reason));
            }
        }
    }
}

/// The stat of a receipt as a final message state, for a part that failed for good.
fn failed_state(stat: &ReceiptStat) -> FinalState {
    match stat {
        ReceiptStat::Expired => FinalState::Expired,
        ReceiptStat::Rejected => FinalState::Rejected,
        _ => FinalState::Failed,
    }
}

impl Inbound {
    /// A handler for these carriers; state changes the receipts cause go to `webhooks`.
    pub fn new(
        store: Arc<dyn Store>,
        carriers: &[Arc<CarrierEntry>],
        mo: MoConfig,
        webhooks: Option<Webhooks>,
    ) -> Inbound {
        let carriers: Arc<HashMap<String, Arc<CarrierEntry>>> = Arc::new(
            carriers
                .iter()
                .map(|c| (c.name().to_owned(), c.clone()))
                .collect(),
        );
        let rule = rule_for(Arc::clone(&carriers));
        Inbound {
            store,
            carriers,
            rule,
            mo,
            reassembler: Reassembler::new(ReassemblyConfig::default()),
            webhooks,
        }
    }

    /// Runs until `cancel` fires or every sender is gone, then lets the receipt batches in
    /// flight finish (their deliver_sm_resp go out only once they are recorded).
    ///
    /// Up to four batches of receipts are in flight at once, so a batch's store and
    /// roll-up commits overlap the next batch's. Every receipt is stored before its batch
    /// rolls up, and the writer applies batches in the order they were handed over, so a
    /// later batch sees the receipts of every earlier one; two batches deciding one message
    /// race only as the store's guarded transitions allow (the first change wins).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Delivery>, cancel: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut in_flight = JoinSet::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                }
            }
            let deliveries = std::mem::take(&mut batch);
            if let Some(receipts) = self.handle(deliveries).await {
                while in_flight.len() >= DEPTH {
                    in_flight.join_next().await;
                }
                in_flight.spawn(receipts.record());
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// Handles the MO messages of a batch now; returns its receipts, to be recorded.
    async fn handle(&mut self, deliveries: Vec<Delivery>) -> Option<ReceiptBatch> {
        let mut receipts = Vec::new();
        let mut responders = Vec::new();
        for d in deliveries {
            let (esm_class, short_message, tlvs) = match &d.pdu {
                InboundPdu::DeliverSm(sm) => (
                    sm.esm_class,
                    sm.short_message.bytes().clone(),
                    sm.tlvs.clone(),
                ),
                InboundPdu::DataSm(ds) => (ds.esm_class, bytes::Bytes::new(), ds.tlvs.clone()),
            };
            let payload = if short_message.is_empty() {
                tlvs.message_payload().unwrap_or_default()
            } else {
                short_message
            };
            if esm_class.is_receipt() {
                receipts.push(self.receipt(&d, &payload, &tlvs));
                responders.push(d.responder);
            } else {
                self.mo(d, &payload, &tlvs).await;
            }
        }
        (!receipts.is_empty()).then(|| ReceiptBatch {
            store: Arc::clone(&self.store),
            carriers: Arc::clone(&self.carriers),
            rule: Arc::clone(&self.rule),
            webhooks: self.webhooks.clone(),
            receipts,
            responders,
        })
    }
    fn receipt(&self, d: &Delivery, payload: &[u8], tlvs: &Tlvs) -> NewReceipt {
        let text = String::from_utf8_lossy(payload).into_owned();
        let id_tlv = tlvs.get(TlvTag::RECEIPTED_MESSAGE_ID);
        let network = tlvs.get(TlvTag::NETWORK_ERROR_CODE);
        let report = sms::extract_receipt(
            &ReceiptTlvs {
                receipted_message_id: id_tlv.as_deref(),
                message_state: tlvs.get_u8(TlvTag::MESSAGE_STATE),
                network_error_code: network.as_deref().and_then(|n| <[u8; 3]>::try_from(n).ok()),
            },
            &text,
        );
        let carrier = d.carrier.to_string();
        let raw_id = report.message_id.unwrap_or_default();
        let key = match self.carriers.get(&carrier) {
            Some(c) => c.normalizer.receipt_key(&raw_id),
            None => sms::normalize_message_id(&raw_id, sms::IdFormat::Opaque),
        };
        let stat = report
            .receipt
            .stat
            .or_else(|| report.state.and_then(stat_for_state));
        NewReceipt {
            carrier,
            carrier_message_id: raw_id,
            key,
            stat,
            err: report.receipt.err,
            raw: text,
        }
    }

    async fn mo(&mut self, d: Delivery, payload: &[u8], tlvs: &Tlvs) {
        let (source, destination, esm_class, data_coding) = match &d.pdu {
            InboundPdu::DeliverSm(sm) => (
                sm.source_addr.to_string(),
                sm.destination_addr.to_string(),
                sm.esm_class,
                sm.data_coding.0,
            ),
            InboundPdu::DataSm(ds) => (
                ds.source_addr.to_string(),
                ds.destination_addr.to_string(),
                ds.esm_class,
                ds.data_coding.0,
            ),
        };
        let carrier = d.carrier.to_string();
        let options = self
            .carriers
            .get(&carrier)
            .map(|c| c.pool.spec().text.clone())
            .unwrap_or_default();
        let key = format!("{carrier}\u{1}{source}\u{1}{destination}");
        let sar = tlvs.sar().map(|s| sms::Sar {
            ref_num: s.msg_ref_num,
            total: s.total_segments,
            seq: s.segment_seqnum,
        });
        let accepted = self.reassembler.accept(
            Instant::now(),
            &Fragment {
                key: &key,
                data_coding,
                udhi: esm_class.has_udhi(),
                sar,
                payload,
            },
            &options,
        );
        let (text, complete) = match accepted {
            Ok(Accepted::Complete(m)) => (m.text(), true),
            Ok(Accepted::Pending { .. }) | Ok(Accepted::Duplicate) => (
                sms::decode_text(data_coding, esm_class.has_udhi(), payload, &options),
                false,
            ),
            Err(_) => (String::from_utf8_lossy(payload).into_owned(), true),
        };
        // Every part is stored before it is acknowledged; the whole text once complete.
        let stored = self
            .store
            .store_mo(NewMo {
                carrier: carrier.clone(),
                from: source.clone(),
                to: destination,
                text: text.clone(),
            })
            .await;
        let status = if stored.is_ok() {
            CommandStatus::ESME_ROK
        } else {
            CommandStatus::ESME_RX_T_APPN
        };
        let _ = d.responder.try_respond(status);
        if stored.is_err() || !complete {
            return;
        }
        metrics::counter!(crate::metrics::MO, "carrier" => carrier).increment(1);
        let word = text.trim().to_ascii_uppercase();
        let number: String = source.chars().filter(char::is_ascii_digit).collect();
        if self.mo.stop.iter().any(|w| w.eq_ignore_ascii_case(&word)) {
            let reason = format!("MO keyword {word}");
            if let Err(e) = self
                .store
                .put_suppression(number, reason, SuppressionSource::MoKeyword)
                .await
            {
                tracing::error!(error = %e, "suppression from MO failed");
            }
        } else if self.mo.start.iter().any(|w| w.eq_ignore_ascii_case(&word)) {
            let _ = self.store.delete_suppression(number).await;
        }
    }
}

/// The receipt stat a message_state TLV stands for, when the text had none.
fn stat_for_state(state: crate::pdu::MessageState) -> Option<ReceiptStat> {
    use crate::pdu::MessageState as S;
    Some(match state {
        S::ENROUTE => ReceiptStat::Enroute,
        S::DELIVERED => ReceiptStat::Delivered,
        S::EXPIRED => ReceiptStat::Expired,
        S::DELETED => ReceiptStat::Deleted,
        S::UNDELIVERABLE => ReceiptStat::Undeliverable,
        S::ACCEPTED => ReceiptStat::Accepted,
        S::UNKNOWN => ReceiptStat::Unknown,
        S::REJECTED => ReceiptStat::Rejected,
        _ => return None,
    })
}

/// What the receipts so far mean for a message.
enum Verdict {
    /// Every part that speaks for the message was delivered.
    Delivered,
    /// A part failed: for good, or worth sending again.
    Failed {
        class: ReceiptClass,
        stat: ReceiptStat,
        err: Option<String>,
    },
}

/// Reads the parts' receipts (pure). `None` while the message is still waiting: a part has no
/// final receipt yet, or a part was never stored (a receipt matched while the other parts'
/// responses were still being recorded).
fn verdict(carrier: &CarrierEntry, m: &ReceiptMatch) -> Option<Verdict> {
    let policy = &carrier.options.retry;
    // The receipts that speak for the message: every part's, or the first part's only.
    let speaking: Vec<_> = match carrier.options.receipt_parts {
        ReceiptParts::Every => m.parts.iter().collect(),
        ReceiptParts::First => m.parts.iter().filter(|p| p.index == 0).collect(),
    };
    let complete = match carrier.options.receipt_parts {
        ReceiptParts::Every => {
            usize::from(m.parts_total) == m.parts.len()
                && m.parts.iter().map(|p| p.index).eq(0..m.parts_total)
        }
        ReceiptParts::First => speaking.len() == 1,
    };
    let mut all_delivered = complete;
    for p in &speaking {
        let class = match &p.stat {
            Some(stat) => {
                policy.classify_receipt(stat, p.err.as_deref(), carrier.options.accepted_is_final)
            }
            None => ReceiptClass::Pending,
        };
        match class {
            ReceiptClass::Delivered => {}
            ReceiptClass::Pending => all_delivered = false,
            ReceiptClass::Transient | ReceiptClass::Permanent => {
                // One failed part decides for the whole message.
                return Some(Verdict::Failed {
                    class,
                    stat: p.stat.clone().unwrap_or(ReceiptStat::Unknown),
                    err: p.err.clone(),
                });
            }
        }
        if p.state == PartState::Rejected {
            all_delivered = false;
        }
    }
    all_delivered.then_some(Verdict::Delivered)
}

/// Every round of receipts follows one attempt whose parts were all accepted: their number
/// is the rounds so far, the current one included.
fn rounds(detail: &MessageDetail) -> usize {
    detail
        .attempts
        .iter()
        .filter(|a| a.attempt.outcome == AttemptOutcome::Accepted)
        .count()
}

/// Whether deciding the match needs the message's attempts ([`rounds`]): only a failure
/// worth sending again does.
fn needs_rounds(carrier: &CarrierEntry, m: &ReceiptMatch) -> bool {
    matches!(
        verdict(carrier, m),
        Some(Verdict::Failed {
            class: ReceiptClass::Transient,
            ..
        })
    )
}

/// What a message's receipts make of it, given the message as stored and its [`rounds`]
/// (read only when [`needs_rounds`]): the webhook status and the update, or `None` while it
/// still waits for receipts.
fn decide(
    carrier: &CarrierEntry,
    m: &ReceiptMatch,
    message: &Message,
    rounds: usize,
) -> Option<(&'static str, Update)> {
    let policy = &carrier.options.retry;
    Some(match verdict(carrier, m)? {
        Verdict::Delivered => {
            let (state, reason) = delivered();
            (
                "delivered",
                Update::Finish {
                    id: m.message_id,
                    state,
                    reason,
                },
            )
        }
        Verdict::Failed { class, stat, err } => {
            let text = failure_text(&stat, err.as_deref());
            let retry = class == ReceiptClass::Transient
                && rounds <= policy.max_receipt_retries as usize
                && Timestamp::now() < message.expires_at;
            if retry {
                metrics::counter!(crate::metrics::RETRIES, "reason" => "receipt").increment(1);
                let draw = Timestamp::now().as_millis() as u64;
                (
                    "retrying",
                    Update::ScheduleRetry {
                        id: m.message_id,
                        at: Timestamp::now().saturating_add(policy.backoff(1, draw)),
                        reason: Reason::new(stat.to_string(), format!("{text}; sending again")),
                    },
                )
            } else {
                let state = failed_state(&stat);
                (
                    final_name(state),
                    Update::Finish {
                        id: m.message_id,
                        state,
                        reason: Reason::new(stat.to_string(), text),
                    },
                )
            }
        }
    })
}

/// The final state and reason of a message every part of which was delivered.
fn delivered() -> (FinalState, Reason) {
    (
        FinalState::Delivered,
        Reason::new("DELIVRD", "the carrier reported delivery"),
    )
}

/// What a failed part's receipt says, for a reason's text.
fn failure_text(stat: &ReceiptStat, err: Option<&str>) -> String {
    format!(
        "the carrier reported {stat}{}",
        err.map(|e| format!(" (err {e})")).unwrap_or_default()
    )
}

/// The roll-up the store makes while it records receipts: a message every part of which was
/// delivered, or one part of which failed for good, is finished in the same commit. A failure
/// worth sending again is left to [`roll_up`], which needs the message's attempts.
fn rule_for(carriers: Arc<HashMap<String, Arc<CarrierEntry>>>) -> RollUp {
    Arc::new(
        move |carrier: &str, m: &ReceiptMatch| match verdict(carriers.get(carrier)?, m)? {
            Verdict::Delivered => Some(delivered()),
            Verdict::Failed {
                class: ReceiptClass::Permanent,
                stat,
                err,
            } => {
                let text = failure_text(&stat, err.as_deref());
                Some((failed_state(&stat), Reason::new(stat.to_string(), text)))
            }
            Verdict::Failed { .. } => None,
        },
    )
}

/// Rolls matched receipts up into their messages: delivered, failed, or sent again. Each
/// message is decided once, on its latest match (the one that saw the most parts), all
/// outcomes are recorded in one commit, and each change that took is reported to the
/// message's webhook.
///
/// `matches` pairs each match with the carrier whose receipt (or response) it came from;
/// matches of messages already final, or not `submitted`/`submitting`, are skipped. Returns
/// false when something could not be read or recorded (the receipts should come again).
pub async fn roll_up(
    store: &dyn Store,
    webhooks: Option<&Webhooks>,
    matches: Vec<(Arc<CarrierEntry>, ReceiptMatch)>,
) -> bool {
    // The last match of a message is its latest view of the parts.
    let mut latest: Vec<(Arc<CarrierEntry>, ReceiptMatch)> = Vec::with_capacity(matches.len());
    let mut seen: HashMap<MessageId, usize> = HashMap::with_capacity(matches.len());
    for (carrier, m) in matches {
        match seen.entry(m.message_id) {
            Entry::Occupied(at) => latest[*at.get()] = (carrier, m),
            Entry::Vacant(at) => {
                at.insert(latest.len());
                latest.push((carrier, m));
            }
        }
    }
    latest.retain(|(carrier, m)| {
        matches!(
            m.message_state,
            MessageState::Submitted | MessageState::Submitting
        ) && verdict(carrier, m).is_some()
    });
    let mut complete = true;
    let mut changes = Vec::new();
    for chunk in latest.chunks(crate::store::MAX_BATCH) {
        // The messages themselves (webhook URLs), in one read.
        let ids = chunk.iter().map(|(_, m)| m.message_id).collect();
        let messages = match store.messages(ids).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::error!(error = %e, "reading messages to roll up their receipts failed");
                complete = false;
                continue;
            }
        };
        for ((carrier, m), message) in chunk.iter().zip(messages) {
            let Some(message) = message else { continue };
            // How often it went out, for a failure that may be sent again (rare).
            let rounds = if needs_rounds(carrier, m) {
                match store.get(m.message_id).await {
                    Ok(Some(detail)) => rounds(&detail),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "reading a message to roll up its receipts failed");
                        complete = false;
                        continue;
                    }
                }
            } else {
                0
            };
            if let Some(change) = decide(carrier, m, &message, rounds) {
                changes.push((message, change));
            }
        }
    }
    apply_and_notify(store, webhooks, changes).await && complete
}

/// Records the changes in commits of at most [`MAX_BATCH`](crate::store::MAX_BATCH), then
/// reports each that took to its message's webhook (after the commit, so a producer never
/// hears of a state the API does not show yet). False if a commit failed.
async fn apply_and_notify(
    store: &dyn Store,
    webhooks: Option<&Webhooks>,
    changes: Vec<(Message, (&'static str, Update))>,
) -> bool {
    let mut recorded = true;
    for chunk in changes.chunks(crate::store::MAX_BATCH) {
        let updates: Vec<Update> = chunk.iter().map(|(_, (_, u))| u.clone()).collect();
        let outcomes = match store.apply(updates).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "recording receipt outcomes failed");
                recorded = false;
                continue;
            }
        };
        for ((message, (status, update)), outcome) in chunk.iter().zip(outcomes) {
            if outcome != UpdateOutcome::Applied {
                continue;
            }
            let reason = match update {
                Update::Finish { reason, .. } | Update::ScheduleRetry { reason, .. } => {
                    Some(reason)
                }
                _ => None,
            };
            log_change(message, status, reason);
            if let Some(webhooks) = webhooks {
                webhooks.message_changed(message, status, reason);
            }
        }
    }
    recorded
}

/// Logs a message's new state, with its id as the correlation id and its number masked: a
/// failure at info level (nothing fails silently, DESIGN promise 3), the rest at debug.
pub fn log_change(message: &Message, status: &str, reason: Option<&Reason>) {
    let failure = matches!(status, "failed" | "expired" | "rejected" | "unknown");
    // Nothing is formatted for a line no one reads.
    let wanted = if failure {
        tracing::enabled!(tracing::Level::INFO)
    } else {
        tracing::enabled!(tracing::Level::DEBUG)
    };
    if !wanted {
        return;
    }
    let id = message.id.to_string();
    let to = crate::dispatch::dispatcher::mask(&message.to);
    let code = reason.map_or("", |r| r.code.as_str());
    let text = reason.map_or("", |r| r.text.as_str());
    match status {
        _ if failure => {
            tracing::info!(message = %id, to = %to, status, reason = code, text, "message finished");
        }
        "delivered" => {
            tracing::debug!(message = %id, to = %to, status, reason = code, "message finished")
        }
        _ => tracing::debug!(message = %id, to = %to, status, reason = code, text, "message"),
    }
}

/// The API's name of a final state.
pub fn final_name(state: FinalState) -> &'static str {
    MessageState::from(state).as_str()
}

/// How often overdue receipts are looked for, unless `[dispatch] receipt_scan_ms` says
/// otherwise.
pub const RECEIPT_TIMEOUT_SCAN: Duration = Duration::from_secs(5);

/// Finishes as `unknown` every submitted message whose receipt deadline passed, looking every
/// `every`; each is reported to its webhook.
///
/// A message whose parts do have their final receipts is rolled up instead: its roll-up was
/// lost (the engine stopped between matching the last receipt and recording what it meant),
/// and the receipts still say how it ended.
pub async fn expire_overdue(
    store: Arc<dyn Store>,
    carriers: Vec<Arc<CarrierEntry>>,
    webhooks: Option<Webhooks>,
    every: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let Ok(ids) = store.receipt_overdue(crate::store::MAX_BATCH).await else {
            continue;
        };
        let Ok(details) = store.get_many(ids.clone()).await else {
            continue;
        };
        let mut changes = Vec::with_capacity(ids.len());
        for (id, detail) in ids.into_iter().zip(details) {
            let Some(detail) = detail else { continue };
            let decided = detail
                .parts
                .first()
                .and_then(|p| carriers.iter().find(|c| c.name() == p.carrier))
                .and_then(|carrier| {
                    decide(
                        carrier,
                        &stored_match(&detail),
                        &detail.message,
                        rounds(&detail),
                    )
                });
            let change = decided.unwrap_or((
                "unknown",
                Update::Finish {
                    id,
                    state: FinalState::Unknown,
                    reason: Reason::new(
                        "no_receipt",
                        "no delivery receipt came within the receipt timeout",
                    ),
                },
            ));
            changes.push((detail.message, change));
        }
        apply_and_notify(&*store, webhooks.as_ref(), changes).await;
    }
}

/// The receipt position of a stored message, as a receipt match would give it.
pub fn stored_match(detail: &MessageDetail) -> ReceiptMatch {
    ReceiptMatch {
        receipt_id: 0,
        message_id: detail.message.id,
        part: 0,
        message_state: detail.message.state,
        accepted_at: detail.message.created_at,
        has_callback_url: detail.message.callback_url.is_some(),
        parts_total: detail.message.parts,
        parts: detail
            .parts
            .iter()
            .map(|p| PartReceiptState {
                index: p.index,
                state: p.state,
                stat: p.receipt_stat.clone(),
                err: p.receipt_err.clone(),
            })
            .collect(),
        finished: None,
    }
}

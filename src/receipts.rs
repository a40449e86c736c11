//! Inbound traffic: delivery receipts and mobile-originated messages from every carrier's
//! receiving binds.
//!
//! Receipts are read TLV-first with the text as fallback, keyed by (carrier, canonical id),
//! stored and correlated in one commit, and only then acknowledged (DESIGN promise 2). The
//! parts' receipts are rolled up into the message: delivered when every part is (or the first
//! part, for carriers that receipt only that one), failed when a part failed for good, and
//! sent again when the failure is worth a retry. MO messages are reassembled, stored, and
//! their keywords (STOP, START, ...) update the suppression list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::carrier::Delivery;
use crate::conn::InboundPdu;
use crate::dispatch::dispatcher::{CarrierEntry, ReceiptParts};
use crate::dispatch::policy::ReceiptClass;
use crate::pdu::{CommandStatus, TlvTag, Tlvs};
use crate::sms::{
    self, Accepted, Fragment, Reassembler, ReassemblyConfig, ReceiptStat, ReceiptTlvs,
};
use crate::store::{
    FinalState, NewMo, NewReceipt, PartState, Reason, ReceiptMatch, ReceiptOutcome, Store,
    SuppressionSource, Timestamp, Update,
};

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

/// Handles everything carriers deliver.
pub struct Inbound {
    store: Arc<dyn Store>,
    carriers: HashMap<String, Arc<CarrierEntry>>,
    mo: MoConfig,
    reassembler: Reassembler,
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
    /// A handler for these carriers.
    pub fn new(store: Arc<dyn Store>, carriers: &[Arc<CarrierEntry>], mo: MoConfig) -> Inbound {
        Inbound {
            store,
            carriers: carriers
                .iter()
                .map(|c| (c.name().to_owned(), c.clone()))
                .collect(),
            mo,
            reassembler: Reassembler::new(ReassemblyConfig::default()),
        }
    }

    /// Runs until `cancel` fires or every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Delivery>, cancel: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                }
            }
            let deliveries = std::mem::take(&mut batch);
            self.handle(deliveries).await;
        }
    }

    async fn handle(&mut self, deliveries: Vec<Delivery>) {
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
        if receipts.is_empty() {
            return;
        }
        let stats: Vec<(String, Option<ReceiptStat>)> = receipts
            .iter()
            .map(|r| (r.carrier.clone(), r.stat.clone()))
            .collect();
        match self.store.store_receipts(receipts).await {
            Ok(outcomes) => {
                for responder in responders {
                    let _ = responder.try_respond(CommandStatus::ESME_ROK);
                }
                for ((carrier, stat), outcome) in stats.into_iter().zip(outcomes) {
                    let stat_label = stat.as_ref().map_or("none".to_owned(), |s| s.to_string());
                    metrics::counter!(crate::metrics::RECEIPTS, "carrier" => carrier.clone(), "stat" => stat_label).increment(1);
                    match outcome {
                        ReceiptOutcome::Matched(m) => {
                            metrics::counter!(crate::metrics::RECEIPTS_MATCHED, "carrier" => carrier.clone(), "result" => "matched").increment(1);
                            if let Some(entry) = self.carriers.get(&carrier).cloned() {
                                roll_up(&*self.store, &entry, &m).await;
                            }
                        }
                        ReceiptOutcome::Unmatched { .. } => {
                            metrics::counter!(crate::metrics::RECEIPTS_MATCHED, "carrier" => carrier, "result" => "unmatched").increment(1);
                        }
                    }
                }
            }
            Err(e) => {
                // Not stored: have the SMSC send them again later.
                tracing::error!(error = %e, "storing receipts failed");
                for responder in responders {
                    let _ = responder.try_respond(CommandStatus::ESME_RX_T_APPN);
                }
            }
        }
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
        let raw_id = report.message_id.clone().unwrap_or_default();
        let key = match self.carriers.get(&carrier) {
            Some(c) => c.normalizer.receipt_key(&raw_id),
            None => sms::normalize_message_id(&raw_id, sms::IdFormat::Opaque),
        };
        let stat = report
            .receipt
            .stat
            .clone()
            .or_else(|| report.state.and_then(stat_for_state));
        NewReceipt {
            carrier,
            carrier_message_id: raw_id,
            key,
            stat,
            err: report.receipt.err.clone(),
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

/// Rolls a matched receipt up into its message: delivered, failed, or sent again.
pub async fn roll_up(store: &dyn Store, carrier: &CarrierEntry, m: &ReceiptMatch) {
    if m.message_state.is_final() {
        return;
    }
    let policy = &carrier.options.retry;
    let classify = |stat: &ReceiptStat, err: Option<&str>| {
        policy.classify_receipt(stat, err, carrier.options.accepted_is_final)
    };
    // The receipts that speak for the message: every part's, or the first part's only.
    let speaking: Vec<_> = match carrier.options.receipt_parts {
        ReceiptParts::Every => m.parts.iter().collect(),
        ReceiptParts::First => m.parts.iter().filter(|p| p.index == 0).collect(),
    };
    let mut all_delivered = !speaking.is_empty();
    let mut failure = None;
    for p in &speaking {
        let class = match &p.stat {
            Some(stat) => classify(stat, p.err.as_deref()),
            None => ReceiptClass::Pending,
        };
        match class {
            ReceiptClass::Delivered => {}
            ReceiptClass::Pending => all_delivered = false,
            ReceiptClass::Transient | ReceiptClass::Permanent => {
                all_delivered = false;
                if failure.is_none() {
                    failure = Some((class, p.stat.clone(), p.err.clone()));
                }
            }
        }
        if p.state == PartState::Rejected {
            all_delivered = false;
        }
    }
    let update = if all_delivered {
        Update::Finish {
            id: m.message_id,
            state: FinalState::Delivered,
            reason: Reason::new("DELIVRD", "the carrier reported delivery"),
        }
    } else if let Some((class, stat, err)) = failure {
        let stat = stat.unwrap_or(ReceiptStat::Unknown);
        let text = format!(
            "the carrier reported {stat}{}",
            err.as_deref()
                .map(|e| format!(" (err {e})"))
                .unwrap_or_default()
        );
        let retry_allowed = class == ReceiptClass::Transient
            && match store.get(m.message_id).await {
                Ok(Some(detail)) => detail.message.attempts <= policy.max_receipt_retries,
                _ => false,
            };
        if retry_allowed {
            metrics::counter!(crate::metrics::RETRIES, "reason" => "receipt").increment(1);
            Update::ScheduleRetry {
                id: m.message_id,
                at: Timestamp::now()
                    .saturating_add(policy.backoff(1, Timestamp::now().as_millis() as u64)),
                reason: Reason::new(stat.to_string(), format!("{text}; sending again")),
            }
        } else {
            Update::Finish {
                id: m.message_id,
                state: failed_state(&stat),
                reason: Reason::new(stat.to_string(), text),
            }
        }
    } else {
        return;
    };
    if let Err(e) = store.apply(vec![update]).await {
        tracing::error!(error = %e, "rolling up a receipt failed");
    }
}

/// How often overdue receipts are looked for.
pub const RECEIPT_TIMEOUT_SCAN: Duration = Duration::from_secs(5);

/// Finishes as `unknown` every submitted message whose receipt deadline passed.
pub async fn expire_overdue(store: Arc<dyn Store>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(RECEIPT_TIMEOUT_SCAN) => {}
        }
        let Ok(ids) = store.receipt_overdue(crate::store::MAX_BATCH).await else {
            continue;
        };
        if ids.is_empty() {
            continue;
        }
        let updates = ids
            .into_iter()
            .map(|id| Update::Finish {
                id,
                state: FinalState::Unknown,
                reason: Reason::new(
                    "no_receipt",
                    "no delivery receipt came within the receipt timeout",
                ),
            })
            .collect();
        if let Err(e) = store.apply(updates).await {
            tracing::error!(error = %e, "finishing overdue messages failed");
        }
    }
}

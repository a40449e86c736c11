//! The simulator's memory: the message table (query, cancel, replace, receipts) and the handset
//! view (what each destination's phone would show). Both are bounded; the oldest go first.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use smppd::pdu::MessageState;
use smppd::sms::{
    CarrierTextOptions, Concat, ConcatKind, Fragment, Reassembler, ReassemblyConfig, Sar,
};

/// One accepted short message.
#[derive(Clone, Debug)]
pub(crate) struct StoredMessage {
    pub(crate) account: usize,
    pub(crate) source_addr: String,
    pub(crate) destination_addr: String,
    pub(crate) state: MessageState,
    pub(crate) done: Option<SystemTime>,
    pub(crate) error_code: u8,
    /// The data_coding it was submitted with; replace_sm text is read in it (replace_sm has
    /// no data_coding of its own, 3.4 §4.10.1).
    pub(crate) data_coding: u8,
}

/// Messages by id, bounded: inserting past the limit forgets the oldest.
pub(crate) struct MessageTable {
    by_id: HashMap<String, StoredMessage>,
    order: VecDeque<String>,
    max: usize,
}

impl MessageTable {
    pub(crate) fn new(max: usize) -> Self {
        MessageTable {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    pub(crate) fn insert(&mut self, id: String, message: StoredMessage) {
        while self.order.len() >= self.max {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, message);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&StoredMessage> {
        self.by_id.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut StoredMessage> {
        self.by_id.get_mut(id)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut StoredMessage> {
        self.by_id.values_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// A message as the handset shows it: reassembled and decoded.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HandsetMessage {
    /// The account that submitted it.
    pub account: String,
    /// The sender (source_addr).
    pub from: String,
    /// The handset (destination_addr).
    pub to: String,
    /// The decoded text.
    pub text: String,
    /// How many parts it came in.
    pub parts: u8,
    /// The data_coding of its first part.
    pub data_coding: u8,
    /// The message ids the SMSC gave its parts, in the order they were submitted.
    pub message_ids: Vec<String>,
}

/// Reassembles what arrives per (account, source, destination) and keeps the last messages.
pub(crate) struct Handset {
    reassembler: Reassembler,
    /// Ids of parts whose set is not complete yet, by set ([`set_key`]): two long messages
    /// to one handset may arrive interleaved, with single ones in between.
    pending_ids: HashMap<String, Vec<String>>,
    messages: VecDeque<HandsetMessage>,
    max: usize,
}

/// One submitted part, as the handset view needs it.
pub(crate) struct Arrival<'a> {
    pub(crate) account: &'a str,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) data_coding: u8,
    pub(crate) udhi: bool,
    pub(crate) sar: Option<Sar>,
    pub(crate) payload: &'a [u8],
    pub(crate) message_id: &'a str,
}

/// Names one concatenated set as the reassembler groups them: fragment key, mechanism,
/// reference and total.
fn set_key(key: &str, kind: ConcatKind, reference: u16, total: u8) -> String {
    format!("{key}\u{1}{kind:?}\u{1}{reference}\u{1}{total}")
}

/// The part's concatenation info, read as the reassembler reads it: the UDH first, else
/// valid SAR values.
fn concat_of(arrival: &Arrival<'_>) -> Option<Concat> {
    if arrival.udhi
        && let Ok((udh, _)) = smppd::sms::parse_udh(arrival.payload)
        && let Some(c) = udh.concat_info()
    {
        return Some(c);
    }
    arrival
        .sar
        .filter(|s| s.total > 0 && s.seq > 0 && s.seq <= s.total)
        .map(|s| Concat {
            reference: s.ref_num,
            total: s.total,
            seq: s.seq,
            kind: ConcatKind::Sar,
        })
}

impl Handset {
    pub(crate) fn new(max: usize) -> Self {
        Handset {
            reassembler: Reassembler::new(ReassemblyConfig::default()),
            pending_ids: HashMap::new(),
            messages: VecDeque::new(),
            max: max.max(1),
        }
    }

    pub(crate) fn record(
        &mut self,
        now: Instant,
        arrival: Arrival<'_>,
        options: &CarrierTextOptions,
    ) {
        let key = format!(
            "{}\u{1}{}\u{1}{}",
            arrival.account, arrival.from, arrival.to
        );
        let fragment = Fragment {
            key: &key,
            data_coding: arrival.data_coding,
            udhi: arrival.udhi,
            sar: arrival.sar,
            payload: arrival.payload,
        };
        let result = self.reassembler.accept(now, &fragment, options);
        // Parts of sets that time out are forgotten with them.
        while let Some(expired) = self.reassembler.poll_expired() {
            self.pending_ids.remove(&set_key(
                &expired.key,
                expired.kind,
                expired.reference,
                expired.total,
            ));
        }
        match result {
            Ok(smppd::sms::Accepted::Complete(message)) => {
                let mut ids = match message.concat {
                    Some(c) if c.total > 1 => self
                        .pending_ids
                        .remove(&set_key(&key, c.kind, c.reference, c.total))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                ids.push(arrival.message_id.to_owned());
                let parts = message.concat.map_or(1, |c| c.total);
                self.push(HandsetMessage {
                    account: arrival.account.to_owned(),
                    from: arrival.from.to_owned(),
                    to: arrival.to.to_owned(),
                    text: message.text(),
                    parts,
                    data_coding: message.data_coding,
                    message_ids: ids,
                });
            }
            Ok(smppd::sms::Accepted::Pending { .. }) => {
                // Pending means the part carried concatenation info.
                if let Some(c) = concat_of(&arrival) {
                    self.pending_ids
                        .entry(set_key(&key, c.kind, c.reference, c.total))
                        .or_default()
                        .push(arrival.message_id.to_owned());
                }
            }
            Ok(smppd::sms::Accepted::Duplicate) => {}
            Err(_) => {
                // A broken UDH: the handset would show the raw octets as best it can.
                self.push(HandsetMessage {
                    account: arrival.account.to_owned(),
                    from: arrival.from.to_owned(),
                    to: arrival.to.to_owned(),
                    text: String::from_utf8_lossy(arrival.payload).into_owned(),
                    parts: 1,
                    data_coding: arrival.data_coding,
                    message_ids: vec![arrival.message_id.to_owned()],
                });
            }
        }
    }

    fn push(&mut self, message: HandsetMessage) {
        while self.messages.len() >= self.max {
            self.messages.pop_front();
        }
        self.messages.push_back(message);
    }

    pub(crate) fn messages(&self, to: Option<&str>, limit: usize) -> Vec<HandsetMessage> {
        let mut out: Vec<HandsetMessage> = self
            .messages
            .iter()
            .rev()
            .filter(|m| to.is_none_or(|to| m.to == to))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// replace_sm: the message with this id now shows `text`.
    pub(crate) fn replace_text(&mut self, message_id: &str, text: String) {
        if let Some(m) = self
            .messages
            .iter_mut()
            .rev()
            .find(|m| m.message_ids.iter().any(|id| id == message_id))
        {
            m.text = text;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.messages.clear();
    }
}

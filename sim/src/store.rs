//! The simulator's memory: the message table (query, cancel, replace, receipts) and the handset
//! view (what each destination's phone would show). Both are bounded; the oldest go first.
//!
//! Both sit on the path of every submit. The table allocates nothing per message: it is a ring
//! indexed by the id's counter, its addresses held inline. The handset view, once full, reuses
//! the strings of the entry it forgets for the one it adds.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use smppd::pdu::{COctetString, MessageState};
use smppd::sms::{
    CarrierTextOptions, Concat, ConcatKind, Encoding, Fragment, Reassembler, ReassemblyConfig, Sar,
};

/// A fast, non-cryptographic hasher (the Fx hash of rustc) for keys made here: message ids
/// and sequence numbers, nothing an attacker would pick.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Replaces the contents of `buf` with `text`, keeping its allocation when it is big enough.
fn set(buf: &mut String, text: &str) {
    buf.clear();
    buf.push_str(text);
}

/// One accepted short message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoredMessage {
    pub(crate) account: usize,
    pub(crate) source_addr: COctetString<21>,
    /// data_sm destinations are C65, submit_sm ones C21.
    pub(crate) destination_addr: COctetString<65>,
    pub(crate) state: MessageState,
    pub(crate) done: Option<SystemTime>,
    pub(crate) error_code: u8,
    /// The data_coding it was submitted with; replace_sm text is read in it (replace_sm has
    /// no data_coding of its own, 3.4 §4.10.1).
    pub(crate) data_coding: u8,
}

/// A slot of the table: the message and the id counter it was stored under (0: empty).
#[derive(Clone, Copy)]
struct Slot {
    counter: u64,
    message: StoredMessage,
}

/// Messages by id counter ([`crate::ids::IdCodec`]), bounded: a ring of `max` slots in which
/// message `n` sits at `n % max`, so the newest overwrites the oldest and neither insert nor
/// look-up hashes anything. The ring grows to `max` as messages arrive.
pub(crate) struct MessageTable {
    slots: Vec<Slot>,
    max: usize,
    len: usize,
}

impl MessageTable {
    pub(crate) fn new(max: usize) -> Self {
        MessageTable {
            slots: Vec::new(),
            max: max.max(1),
            len: 0,
        }
    }

    fn index(&self, counter: u64) -> usize {
        // The remainder is below `max`, a usize.
        (counter % self.max as u64) as usize
    }

    /// Stores message `counter`; an older one in its slot is forgotten. (Counters are taken
    /// before the table's lock, so a newer one may already be there: then this one is the
    /// oldest and is not kept.)
    pub(crate) fn insert(&mut self, counter: u64, message: StoredMessage) {
        let i = self.index(counter);
        if i >= self.slots.len() {
            let empty = Slot {
                counter: 0,
                message,
            };
            self.slots.resize(i + 1, empty);
        }
        let slot = &mut self.slots[i];
        if slot.counter >= counter {
            return;
        }
        if slot.counter == 0 {
            self.len += 1;
        }
        *slot = Slot { counter, message };
    }

    pub(crate) fn get(&self, counter: u64) -> Option<&StoredMessage> {
        self.slots
            .get(self.index(counter))
            .filter(|s| s.counter == counter && counter != 0)
            .map(|s| &s.message)
    }

    pub(crate) fn get_mut(&mut self, counter: u64) -> Option<&mut StoredMessage> {
        let i = self.index(counter);
        self.slots
            .get_mut(i)
            .filter(|s| s.counter == counter && counter != 0)
            .map(|s| &mut s.message)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut StoredMessage> {
        self.slots
            .iter_mut()
            .filter(|s| s.counter != 0)
            .map(|s| &mut s.message)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// A message as the handset shows it: reassembled and decoded.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
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

/// Sets everything but the text, reusing the strings already there.
fn fill(m: &mut HandsetMessage, arrival: &Arrival<'_>, parts: u8) {
    set(&mut m.account, arrival.account);
    set(&mut m.from, arrival.from);
    set(&mut m.to, arrival.to);
    m.parts = parts;
    m.data_coding = arrival.data_coding;
    m.message_ids.truncate(1);
    match m.message_ids.first_mut() {
        Some(id) => set(id, arrival.message_id),
        None => m.message_ids.push(arrival.message_id.to_owned()),
    }
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
        // A message without UDH or SAR is whole: no reassembly, decoded straight into a
        // recycled entry.
        if !arrival.udhi && arrival.sar.is_none() {
            let mut m = self.recycled();
            fill(&mut m, &arrival, 1);
            m.text.clear();
            match Encoding::from_data_coding(arrival.data_coding, options) {
                Some(Encoding::Gsm7) if !options.packed => {
                    smppd::sms::gsm::decode_into(arrival.payload, &mut m.text)
                }
                _ => {
                    m.text = smppd::sms::decode_text(
                        arrival.data_coding,
                        false,
                        arrival.payload,
                        options,
                    )
                }
            }
            self.messages.push_back(m);
            return;
        }
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

    /// An entry to fill: the oldest one when the view is full (it is forgotten), else a new
    /// one.
    fn recycled(&mut self) -> HandsetMessage {
        if self.messages.len() >= self.max {
            self.messages.pop_front().unwrap_or_default()
        } else {
            HandsetMessage::default()
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

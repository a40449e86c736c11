//! Putting concatenated incoming messages (MO, or submits in the simulator) back together.
//!
//! Parts are grouped by the caller's key (who sent to whom), the concatenation mechanism, the
//! reference and the total, as a handset does (GSM 03.40 §9.2.3.24.1). They may arrive in any
//! order; a repeated part is ignored, also for a while after its message completed (an SMSC
//! redelivers a part whose deliver_sm_resp it missed), recognised by its content so that a new
//! message reusing the reference is not mistaken for a repeat. A set that stays incomplete
//! past the timeout is handed back as [`Incomplete`]. Memory is bounded by a number of sets
//! and of buffered octets.
//!
//! Sans-IO: `now` is an argument, [`Reassembler::poll_timeout`] says when to call
//! [`Reassembler::handle_timeout`], and [`Reassembler::poll_expired`] drains what expired.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use super::SmsError;
use super::charset;
use super::gsm;
use super::plan::{CarrierTextOptions, Encoding};
use super::segment::Sar;
use super::udh::{self, Concat, ConcatKind, Udh};

/// Settings of a [`Reassembler`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReassemblyConfig {
    /// How long after its first part an incomplete set is given up. Default 10 minutes.
    pub timeout: Duration,
    /// The most incomplete sets held, expired ones not yet polled included. Default 10 000.
    pub max_pending: usize,
    /// The most user-data octets buffered across them. Default 16 MiB.
    pub max_buffered_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(600),
            max_pending: 10_000,
            max_buffered_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One received short message, as plain values from its PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment<'a> {
    /// Who sent it to whom, in whatever form the caller likes (e.g. `"447700900123>12345"`);
    /// parts are only combined when their keys are equal.
    pub key: &'a str,
    /// The PDU's `data_coding`.
    pub data_coding: u8,
    /// Whether esm_class has UDHI (0x40) set, i.e. the payload starts with a UDH.
    pub udhi: bool,
    /// The `sar_*` TLV values, if all three were present. Ignored when a UDH carries
    /// concatenation, and when they are invalid (total 0, seq 0 or above total).
    pub sar: Option<Sar>,
    /// `short_message`, or the `message_payload` TLV when `short_message` was empty.
    pub payload: &'a [u8],
}

/// What became of an accepted fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The message is whole: a single part, or the last missing one arrived.
    Complete(ReassembledMessage),
    /// Stored; the set is still missing parts.
    Pending {
        /// Parts held so far.
        received: u8,
        /// Parts the message has.
        total: u8,
    },
    /// A part that was already held; ignored (the first copy counts).
    Duplicate,
}

/// A whole incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassembledMessage {
    /// The fragments' key.
    pub key: String,
    /// The `data_coding` of the first part.
    pub data_coding: u8,
    /// The alphabet that `data_coding` announces, if this module knows it.
    pub encoding: Option<Encoding>,
    /// The concatenation info (with `seq` of the last part to arrive), or `None` for a single
    /// short message.
    pub concat: Option<Concat>,
    /// The UDH of the first part to arrive, if there was one (for port addressing and other
    /// elements).
    pub udh: Option<Udh>,
    /// The user data of all parts in order, headers removed. GSM 7-bit is held as septets,
    /// one per octet, whether or not the carrier packed it.
    pub user_data: Vec<u8>,
}

impl ReassembledMessage {
    /// The message text (never fails; undecodable octets become U+FFFD).
    pub fn text(&self) -> String {
        decode(self.encoding, &self.user_data)
    }
}

/// A set given up because its parts did not all arrive in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    /// The fragments' key.
    pub key: String,
    /// The concatenation reference.
    pub reference: u16,
    /// How the parts were numbered.
    pub kind: ConcatKind,
    /// Parts the message should have had.
    pub total: u8,
    /// The `data_coding` of the first part.
    pub data_coding: u8,
    /// The alphabet that `data_coding` announces, if known.
    pub encoding: Option<Encoding>,
    /// The parts that did arrive, `(seq, user data)`, in order of seq.
    pub parts: Vec<(u8, Vec<u8>)>,
    /// When the first part arrived.
    pub first_seen: Instant,
}

impl Incomplete {
    /// The text of the parts that arrived, in order, with the gaps left out.
    pub fn partial_text(&self) -> String {
        let joined: Vec<u8> = self
            .parts
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        decode(self.encoding, &joined)
    }
}

/// Decodes user data as held by the reassembler (GSM already as septets).
fn decode(encoding: Option<Encoding>, user_data: &[u8]) -> String {
    charset::decode_user_data(encoding, user_data, false, 0)
}

/// What identifies one concatenated message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SetKey {
    key: String,
    kind: ConcatKind,
    reference: u16,
    total: u8,
}

/// An incomplete set.
#[derive(Debug)]
struct Pending {
    id: u64,
    deadline: Instant,
    first_seen: Instant,
    data_coding: u8,
    encoding: Option<Encoding>,
    udh: Option<Udh>,
    /// `(seq, user data)`, in arrival order.
    parts: Vec<(u8, Vec<u8>)>,
    bytes: usize,
}

/// A completed set, remembered for the timeout so late repeats of its parts are recognised.
#[derive(Debug)]
struct Completed {
    until: Instant,
    /// `(seq, hash of the user data)` of each part.
    parts: Vec<(u8, u64)>,
}

/// Reassembles concatenated messages. See the module docs.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    pending: HashMap<SetKey, Pending>,
    deadlines: BTreeMap<(Instant, u64), SetKey>,
    expired: VecDeque<Incomplete>,
    completed: HashMap<SetKey, Completed>,
    /// Completed sets in order of completion, for expiry and for the size bound.
    completed_order: VecDeque<(Instant, SetKey)>,
    bytes: usize,
    next_id: u64,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler {
            config,
            pending: HashMap::new(),
            deadlines: BTreeMap::new(),
            expired: VecDeque::new(),
            completed: HashMap::new(),
            completed_order: VecDeque::new(),
            bytes: 0,
            next_id: 0,
        }
    }

    /// Takes one received short message. `options` are the sending carrier's (the meaning of
    /// data_coding 0, and whether GSM is packed).
    ///
    /// Expires due sets first. Fails with [`SmsError::MalformedUdh`] when UDHI is set but the
    /// header is broken, and with [`SmsError::ReassemblyFull`] when a new set (or more octets)
    /// would exceed the bounds; the caller should then answer with a transient error so the
    /// SMSC retries.
    pub fn accept(
        &mut self,
        now: Instant,
        fragment: &Fragment<'_>,
        options: &CarrierTextOptions,
    ) -> Result<Accepted, SmsError> {
        self.handle_timeout(now);

        let (udh, user_data) = if fragment.udhi {
            let (udh, rest) = udh::parse_udh(fragment.payload)?;
            (Some(udh), rest)
        } else {
            (None, fragment.payload)
        };
        let header_len = fragment.payload.len() - user_data.len();
        let concat = udh
            .as_ref()
            .and_then(Udh::concat_info)
            .or_else(|| fragment.sar.and_then(sar_concat));
        let encoding = Encoding::from_data_coding(fragment.data_coding, options);
        let data = match encoding {
            Some(Encoding::Gsm7) if options.packed => {
                gsm::unpack(user_data, gsm::fill_bits(header_len))
            }
            _ => user_data.to_vec(),
        };

        let concat = match concat {
            Some(c) if c.total > 1 => c,
            concat => {
                return Ok(Accepted::Complete(ReassembledMessage {
                    key: fragment.key.to_owned(),
                    data_coding: fragment.data_coding,
                    encoding,
                    concat,
                    udh,
                    user_data: data,
                }));
            }
        };

        let set_key = SetKey {
            key: fragment.key.to_owned(),
            kind: concat.kind,
            reference: concat.reference,
            total: concat.total,
        };
        if let Some(held) = self.pending.get(&set_key) {
            if held.parts.iter().any(|(seq, _)| *seq == concat.seq) {
                return Ok(Accepted::Duplicate);
            }
        } else if let Some(done) = self.completed.get(&set_key) {
            let part = (concat.seq, content_hash(&data));
            if done.parts.contains(&part) {
                return Ok(Accepted::Duplicate);
            }
        }
        let len = data.len();
        if self.bytes + len > self.config.max_buffered_bytes {
            return Err(self.full());
        }
        if !self.pending.contains_key(&set_key) {
            if self.pending.len() + self.expired.len() >= self.config.max_pending {
                return Err(self.full());
            }
            let id = self.next_id;
            self.next_id += 1;
            let deadline = now.checked_add(self.config.timeout).unwrap_or(now);
            self.deadlines.insert((deadline, id), set_key.clone());
            self.pending.insert(
                set_key.clone(),
                Pending {
                    id,
                    deadline,
                    first_seen: now,
                    data_coding: fragment.data_coding,
                    encoding,
                    udh,
                    parts: Vec::with_capacity(usize::from(concat.total)),
                    bytes: 0,
                },
            );
        }
        let Some(pending) = self.pending.get_mut(&set_key) else {
            // Inserted just above when absent.
            return Ok(Accepted::Duplicate);
        };
        pending.parts.push((concat.seq, data));
        pending.bytes += len;
        self.bytes += len;
        let received = pending.parts.len();
        if received < usize::from(concat.total) {
            return Ok(Accepted::Pending {
                received: received as u8,
                total: concat.total,
            });
        }

        // Every seq in 1..=total is distinct and present, so the set is whole.
        let Some(mut done) = self.pending.remove(&set_key) else {
            return Ok(Accepted::Duplicate);
        };
        self.deadlines.remove(&(done.deadline, done.id));
        self.bytes -= done.bytes;
        done.parts.sort_unstable_by_key(|(seq, _)| *seq);
        self.remember_completed(now, &set_key, &done.parts);
        let mut user_data = Vec::with_capacity(done.bytes);
        for (_, d) in &done.parts {
            user_data.extend_from_slice(d);
        }
        Ok(Accepted::Complete(ReassembledMessage {
            key: set_key.key,
            data_coding: done.data_coding,
            encoding: done.encoding,
            concat: Some(concat),
            udh: done.udh,
            user_data,
        }))
    }

    /// Remembers a completed set's parts until the timeout, dropping the oldest memory when
    /// more than `max_pending` sets are remembered.
    fn remember_completed(&mut self, now: Instant, set_key: &SetKey, parts: &[(u8, Vec<u8>)]) {
        let until = now.checked_add(self.config.timeout).unwrap_or(now);
        let parts = parts
            .iter()
            .map(|(seq, data)| (*seq, content_hash(data)))
            .collect();
        self.completed
            .insert(set_key.clone(), Completed { until, parts });
        self.completed_order.push_back((until, set_key.clone()));
        while self.completed_order.len() > self.config.max_pending {
            self.forget_oldest_completed();
        }
    }

    /// Drops the oldest remembered set, unless it was completed again since.
    fn forget_oldest_completed(&mut self) {
        if let Some((until, key)) = self.completed_order.pop_front() {
            if self.completed.get(&key).is_some_and(|c| c.until == until) {
                self.completed.remove(&key);
            }
        }
    }

    /// Gives up every set whose timeout has passed; poll them with [`Self::poll_expired`].
    pub fn handle_timeout(&mut self, now: Instant) {
        while self
            .completed_order
            .front()
            .is_some_and(|(until, _)| *until <= now)
        {
            self.forget_oldest_completed();
        }
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let set_key = entry.remove();
            let Some(mut pending) = self.pending.remove(&set_key) else {
                continue;
            };
            pending.parts.sort_unstable_by_key(|(seq, _)| *seq);
            // The octets stay counted until the caller polls the expired set.
            self.expired.push_back(Incomplete {
                key: set_key.key,
                reference: set_key.reference,
                kind: set_key.kind,
                total: set_key.total,
                data_coding: pending.data_coding,
                encoding: pending.encoding,
                parts: pending.parts,
                first_seen: pending.first_seen,
            });
        }
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(deadline, _)| *deadline)
    }

    /// The next set given up by [`Self::handle_timeout`].
    pub fn poll_expired(&mut self) -> Option<Incomplete> {
        let incomplete = self.expired.pop_front()?;
        let bytes: usize = incomplete.parts.iter().map(|(_, d)| d.len()).sum();
        self.bytes -= bytes;
        Some(incomplete)
    }

    /// Incomplete sets held, expired ones not yet polled included.
    pub fn pending(&self) -> usize {
        self.pending.len() + self.expired.len()
    }

    /// User-data octets buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn full(&self) -> SmsError {
        SmsError::ReassemblyFull {
            pending: self.pending(),
            bytes: self.bytes,
        }
    }
}

/// A hash of a part's user data, to tell a repeat from a new part with the same number.
fn content_hash(data: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    data.hash(&mut hasher);
    hasher.finish()
}

/// SAR values as concatenation info, if valid (SMPP 3.4 §5.3.2.23-24: total and seq from 1).
fn sar_concat(sar: Sar) -> Option<Concat> {
    (sar.total != 0 && sar.seq != 0 && sar.seq <= sar.total).then_some(Concat {
        reference: sar.ref_num,
        total: sar.total,
        seq: sar.seq,
        kind: ConcatKind::Sar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::{SegmentationMethod, segment};

    fn parts_of(text: &str, options: &CarrierTextOptions) -> Vec<crate::sms::Part> {
        segment(text, options, 0x4242).unwrap().parts
    }

    fn fragment<'a>(p: &'a crate::sms::Part, key: &'a str) -> Fragment<'a> {
        Fragment {
            key,
            data_coding: p.data_coding,
            udhi: p.udhi,
            sar: p.sar,
            payload: &p.payload,
        }
    }

    #[test]
    fn single_message_is_complete_at_once() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let options = CarrierTextOptions::default();
        let parts = parts_of("Hello", &options);
        let got = r
            .accept(Instant::now(), &fragment(&parts[0], "a>b"), &options)
            .unwrap();
        let Accepted::Complete(m) = got else {
            panic!("{got:?}")
        };
        assert_eq!(m.text(), "Hello");
        assert_eq!(m.concat, None);
    }

    #[test]
    fn parts_in_reverse_order_with_duplicates_reassemble() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let options = CarrierTextOptions::default();
        let text = "x".repeat(400);
        let parts = parts_of(&text, &options);
        let now = Instant::now();
        assert_eq!(
            r.accept(now, &fragment(&parts[2], "k"), &options).unwrap(),
            Accepted::Pending {
                received: 1,
                total: 3
            }
        );
        assert_eq!(
            r.accept(now, &fragment(&parts[2], "k"), &options).unwrap(),
            Accepted::Duplicate
        );
        r.accept(now, &fragment(&parts[1], "k"), &options).unwrap();
        let Accepted::Complete(m) = r.accept(now, &fragment(&parts[0], "k"), &options).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.text(), text);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn a_part_repeated_after_completion_is_a_duplicate() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let options = CarrierTextOptions::default();
        let parts = parts_of(&"q".repeat(200), &options);
        let now = Instant::now();
        r.accept(now, &fragment(&parts[0], "k"), &options).unwrap();
        assert!(matches!(
            r.accept(now, &fragment(&parts[1], "k"), &options).unwrap(),
            Accepted::Complete(_)
        ));
        assert_eq!(
            r.accept(now, &fragment(&parts[0], "k"), &options).unwrap(),
            Accepted::Duplicate
        );
        assert_eq!(r.pending(), 0);
        // A new message reusing the reference is not a repeat: its content differs.
        let other = parts_of(&"r".repeat(200), &options);
        assert!(matches!(
            r.accept(now, &fragment(&other[0], "k"), &options).unwrap(),
            Accepted::Pending { .. }
        ));
    }

    #[test]
    fn parts_with_different_keys_do_not_mix() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let options = CarrierTextOptions::default();
        let parts = parts_of(&"y".repeat(200), &options);
        let now = Instant::now();
        r.accept(now, &fragment(&parts[0], "a"), &options).unwrap();
        assert!(matches!(
            r.accept(now, &fragment(&parts[1], "b"), &options).unwrap(),
            Accepted::Pending { .. }
        ));
        assert_eq!(r.pending(), 2);
    }

    #[test]
    fn sar_parts_reassemble() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let options = CarrierTextOptions {
            segmentation: SegmentationMethod::Sar,
            ..CarrierTextOptions::default()
        };
        let text = "\u{416}\u{1F600}".repeat(50);
        let parts = parts_of(&text, &options);
        let now = Instant::now();
        let mut last = None;
        for p in parts.iter().rev() {
            last = Some(r.accept(now, &fragment(p, "k"), &options).unwrap());
        }
        let Some(Accepted::Complete(m)) = last else {
            panic!()
        };
        assert_eq!(m.text(), text);
        assert_eq!(m.concat.map(|c| c.kind), Some(ConcatKind::Sar));
    }

    #[test]
    fn incomplete_set_expires_after_the_timeout() {
        let config = ReassemblyConfig {
            timeout: Duration::from_secs(5),
            ..ReassemblyConfig::default()
        };
        let mut r = Reassembler::new(config);
        let options = CarrierTextOptions::default();
        let parts = parts_of(&"z".repeat(200), &options);
        let t0 = Instant::now();
        r.accept(t0, &fragment(&parts[1], "k"), &options).unwrap();
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        r.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(r.poll_expired(), None);
        r.handle_timeout(t0 + Duration::from_secs(5));
        let gone = r.poll_expired().unwrap();
        assert_eq!(gone.total, 2);
        assert_eq!(gone.parts.len(), 1);
        assert_eq!(gone.partial_text(), "z".repeat(47));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.buffered_bytes(), 0);
        // A late part then starts a new set.
        assert!(matches!(
            r.accept(
                t0 + Duration::from_secs(6),
                &fragment(&parts[0], "k"),
                &options
            )
            .unwrap(),
            Accepted::Pending { .. }
        ));
    }

    #[test]
    fn pushes_back_when_too_many_sets_are_pending() {
        let config = ReassemblyConfig {
            max_pending: 1,
            ..ReassemblyConfig::default()
        };
        let mut r = Reassembler::new(config);
        let options = CarrierTextOptions::default();
        let parts = parts_of(&"w".repeat(200), &options);
        let now = Instant::now();
        r.accept(now, &fragment(&parts[0], "a"), &options).unwrap();
        assert!(matches!(
            r.accept(now, &fragment(&parts[0], "b"), &options),
            Err(SmsError::ReassemblyFull { pending: 1, .. })
        ));
        // The held set can still complete.
        assert!(matches!(
            r.accept(now, &fragment(&parts[1], "a"), &options).unwrap(),
            Accepted::Complete(_)
        ));
    }

    #[test]
    fn pushes_back_when_too_many_octets_are_buffered() {
        let config = ReassemblyConfig {
            max_buffered_bytes: 200,
            ..ReassemblyConfig::default()
        };
        let mut r = Reassembler::new(config);
        let options = CarrierTextOptions::default();
        let parts = parts_of(&"v".repeat(400), &options);
        let now = Instant::now();
        r.accept(now, &fragment(&parts[0], "a"), &options).unwrap();
        assert!(matches!(
            r.accept(now, &fragment(&parts[1], "a"), &options),
            Err(SmsError::ReassemblyFull { .. })
        ));
    }

    #[test]
    fn broken_udh_is_an_error_not_a_panic() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let f = Fragment {
            key: "k",
            data_coding: 0,
            udhi: true,
            sar: None,
            payload: &[0x05, 0x00, 0x03],
        };
        assert!(matches!(
            r.accept(Instant::now(), &f, &CarrierTextOptions::default()),
            Err(SmsError::MalformedUdh { .. })
        ));
    }

    #[test]
    fn invalid_sar_values_mean_a_single_message() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let f = Fragment {
            key: "k",
            data_coding: 0,
            udhi: false,
            sar: Some(Sar {
                ref_num: 1,
                total: 2,
                seq: 3,
            }),
            payload: b"hi",
        };
        let got = r
            .accept(Instant::now(), &f, &CarrierTextOptions::default())
            .unwrap();
        assert!(matches!(got, Accepted::Complete(ref m) if m.text() == "hi"));
    }

    #[test]
    fn keeps_port_addressing_of_the_first_part() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let payload = [
            0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x07, 0x01, 0x01, 0xAA,
        ];
        let f = Fragment {
            key: "k",
            data_coding: 4,
            udhi: true,
            sar: None,
            payload: &payload,
        };
        let Accepted::Complete(m) = r
            .accept(Instant::now(), &f, &CarrierTextOptions::default())
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(m.user_data, vec![0xAA]);
        assert_eq!(
            m.udh.and_then(|u| u.ports()).map(|p| p.destination),
            Some(2948)
        );
    }
}

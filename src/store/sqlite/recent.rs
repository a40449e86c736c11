//! Receipt correlation for the parts sent lately, held in memory by the writer.
//!
//! Carriers hand out message ids that look random, so an index keyed by them takes every new
//! part into a random page: about one page more written per message at every commit, the
//! largest single cost of the write cycle. Most receipts arrive within seconds, though, so
//! the writer keeps the latest parts' (carrier, key) in memory and matches receipts there
//! first. A part enters the on-disk index (`parts_key`, over the parts marked `indexed`) only
//! when it leaves memory while its message is not finished; the parts of finished messages
//! are forgotten. Receipts that miss memory are looked up on disk, so what is matched does
//! not change, with one exception: a receipt that comes after its message finished, once
//! the part has left memory, is stored unmatched (it could not change the message anyway).
//!
//! The table is bounded ([`SqliteConfig::recent_parts`](super::SqliteConfig::recent_parts)
//! entries, up to about 130 bytes each): beyond that the oldest part leaves. It holds a 64-bit
//! hash of (carrier, key) and the part's row; a hit is checked against the part's row, so a
//! collision only costs a look on disk. Two parts with the same hash cannot both be held: the
//! older leaves, as if evicted.
//!
//! Most messages are one part sent once, and most receipts finish them. For such a part the
//! table also holds what the receipt's roll-up needs of its message ([`OnePart`]) and a
//! second, independent 64-bit hash of (carrier, key): a receipt whose two hashes match, and
//! whose stat finishes a `submitted` message, finishes it without reading the part or the
//! message (the transition itself checks that the message is `submitted`). Anything else
//! (an intermediate receipt, a message in another state) is looked up on disk as above. The
//! writer drops that knowledge when the part's row is written again (see
//! [`RecentParts::forget_one`]), so it always describes the part's current submission. Which messages finished is known from the writer's own
//! transitions, for the last [`FINISHED_SPAN`] row numbers; a part whose message is not known
//! to be finished goes to the index.
//!
//! Nothing of this is written down, so the table is rebuilt from the file when the store
//! opens (and after a rolled-back transaction, which may have changed it): the parts of
//! `submitting` and `submitted` messages that are not in the on-disk index are taken back in.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use rusqlite::{Connection, params};

use crate::store::StoreError;

use super::rows;

/// A part's row: the message's row number and the part's index.
pub(super) type PartRow = (i64, u16);

/// Marks a part as in the on-disk index, because it leaves memory without a final receipt.
pub(super) const SPILL: &str = "UPDATE OR FAIL parts SET indexed = 1 \
     WHERE rid = ?1 AND idx = ?2 AND indexed = 0 AND id_key IS NOT NULL";

/// The parts the table holds when it is built: those of messages in `submitting` (found from
/// the floor ?1, see [`inflight`](super::inflight)) or `submitted` not yet in the on-disk
/// index.
const UNINDEXED_SUBMITTING: &str = "SELECT p.rid, p.idx, p.carrier, p.id_key, p.state \
     FROM messages AS m NOT INDEXED JOIN parts AS p ON p.rid = m.rid \
     WHERE m.rid >= ?1 AND m.state = 1 AND p.indexed = 0 AND p.id_key IS NOT NULL";
const UNINDEXED_SUBMITTED: &str = "SELECT p.rid, p.idx, p.carrier, p.id_key, p.state \
     FROM messages AS m INDEXED BY messages_waiting JOIN parts AS p ON p.rid = m.rid \
     WHERE m.state = 2 AND p.indexed = 0 AND p.id_key IS NOT NULL";

/// How many of the latest row numbers the table remembers as finished.
pub(super) const FINISHED_SPAN: i64 = 1 << 22;

/// What the roll-up of a receipt needs of a one-part message, held with its part (see the
/// module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OnePart {
    /// The message's whole id.
    pub(super) id: [u8; 16],
    /// When it was accepted, in milliseconds.
    pub(super) accepted_at: i64,
    pub(super) has_callback_url: bool,
    /// [`check`] of the part's (carrier, key).
    pub(super) check: u64,
}

/// A held part, packed: 40 bytes.
#[derive(Clone, Copy)]
struct Slot {
    rid: i64,
    /// With a message held: the high half of its id (the low half is the row number).
    id_high: u64,
    accepted_at: i64,
    check: u64,
    idx: u16,
    /// Which entry of `order` stands for this slot (older ones for the same hash are stale).
    /// It wraps, harmlessly: a stale entry lives at most until `order` is next compacted,
    /// far fewer insertions than the stamp takes to come round.
    stamp: u32,
    /// [`NO_MESSAGE`], [`MESSAGE`] or [`MESSAGE_WITH_CALLBACK`].
    one: u8,
}

const NO_MESSAGE: u8 = 0;
const MESSAGE: u8 = 1;
const MESSAGE_WITH_CALLBACK: u8 = 2;

impl Slot {
    fn new((rid, idx): PartRow, one: Option<OnePart>, stamp: u32) -> Slot {
        let id = one.map(|o| u128::from_be_bytes(o.id));
        // The low half of a message's id is its row number; a message held must be that row's.
        let one = one.filter(|_| id.is_some_and(|id| id as u64 == rid as u64));
        Slot {
            rid,
            id_high: id.map_or(0, |id| (id >> 64) as u64),
            accepted_at: one.map_or(0, |o| o.accepted_at),
            check: one.map_or(0, |o| o.check),
            idx,
            stamp,
            one: match one {
                None => NO_MESSAGE,
                Some(o) if o.has_callback_url => MESSAGE_WITH_CALLBACK,
                Some(_) => MESSAGE,
            },
        }
    }

    fn part(&self) -> PartRow {
        (self.rid, self.idx)
    }

    fn one(&self) -> Option<OnePart> {
        (self.one != NO_MESSAGE).then(|| OnePart {
            id: (u128::from(self.id_high) << 64 | u128::from(self.rid as u64)).to_be_bytes(),
            accepted_at: self.accepted_at,
            has_callback_url: self.one == MESSAGE_WITH_CALLBACK,
            check: self.check,
        })
    }
}

/// The in-memory table (see the module docs).
pub(super) struct RecentParts {
    slots: HashMap<u64, Slot>,
    /// Hashes in the order they were put in, with the stamp they were put in with.
    order: VecDeque<(u64, u32)>,
    next_stamp: u32,
    capacity: usize,
    finished: Finished,
    /// A transaction that may have changed the table rolled back: rebuild before use.
    stale: bool,
}

/// The parts that must enter the on-disk index after one change (at most two: one pushed out
/// by a hash it shared, one by the bound).
#[derive(Default)]
pub(super) struct Leaving([Option<PartRow>; 2]);

impl Leaving {
    fn push(&mut self, part: PartRow) {
        if let Some(free) = self.0.iter_mut().find(|p| p.is_none()) {
            *free = Some(part);
        }
    }
}

impl IntoIterator for Leaving {
    type Item = PartRow;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<PartRow>, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// The hash a part is held under.
pub(super) fn hash(carrier: &str, key: &str) -> u64 {
    // SipHash with fixed keys: the same in every run. A carrier that forged colliding ids
    // would only send its own receipts to the on-disk index.
    let mut h = std::hash::DefaultHasher::new();
    carrier.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// A second hash of (carrier, key), independent of [`hash`]: together they tell two keys
/// apart as surely as comparing them (a chance of 2^-128 per pair).
pub(super) fn check(carrier: &str, key: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    0xA5_u8.hash(&mut h);
    key.hash(&mut h);
    carrier.hash(&mut h);
    h.finish()
}

impl RecentParts {
    pub(super) fn new(capacity: usize) -> RecentParts {
        RecentParts {
            slots: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
            capacity,
            finished: Finished::new(),
            stale: false,
        }
    }

    /// The part last put in under `hash`, if it is still held.
    pub(super) fn get(&self, hash: u64) -> Option<PartRow> {
        self.slots.get(&hash).map(Slot::part)
    }

    /// The part last put in under `hash` with its one-part message, if it is held with one.
    pub(super) fn get_one(&self, hash: u64) -> Option<(PartRow, OnePart)> {
        let slot = self.slots.get(&hash)?;
        Some((slot.part(), slot.one()?))
    }

    /// The part `part`, held under `hash`, is being written again (sent again, rejected, or
    /// a late response): its message is no longer known from memory, only from the file.
    pub(super) fn forget_one(&mut self, hash: u64, part: PartRow) {
        if let Some(slot) = self.slots.get_mut(&hash)
            && slot.part() == part
        {
            slot.one = NO_MESSAGE;
        }
    }

    /// Holds `part` under `hash`, with its message if it is a one-part message; answers the
    /// parts that leave for the on-disk index.
    #[must_use]
    pub(super) fn insert(&mut self, hash: u64, part: PartRow, one: Option<OnePart>) -> Leaving {
        let mut leaving = Leaving::default();
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        let slot = Slot::new(part, one, stamp);
        match self.slots.entry(hash) {
            Entry::Occupied(mut held) => {
                let old = held.insert(slot);
                if old.part() != part && !self.finished.contains(old.rid) {
                    leaving.push(old.part());
                }
            }
            Entry::Vacant(free) => {
                free.insert(slot);
            }
        }
        self.order.push_back((hash, stamp));
        while self.slots.len() > self.capacity {
            match self.pop_oldest() {
                Some(Some(part)) => leaving.push(part),
                Some(None) => {}
                None => break,
            }
        }
        // Entries whose slot was replaced stay in `order` until they reach its front; keep
        // them from outgrowing the table.
        if self.order.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.order
                .retain(|(h, s)| slots.get(h).is_some_and(|slot| slot.stamp == *s));
        }
        leaving
    }

    /// Takes the oldest held part out: `Some(Some(part))` if it must be indexed, `Some(None)`
    /// if it is forgotten, `None` if nothing is held.
    fn pop_oldest(&mut self) -> Option<Option<PartRow>> {
        while let Some((hash, stamp)) = self.order.pop_front() {
            if let Entry::Occupied(held) = self.slots.entry(hash)
                && held.get().stamp == stamp
            {
                let part = held.remove().part();
                return Some((!self.finished.contains(part.0)).then_some(part));
            }
        }
        None
    }

    /// The message at row `rid` reached a final state (in the open transaction).
    pub(super) fn finished(&mut self, rid: i64) {
        self.finished.insert(rid);
    }

    /// Something may have changed the table inside a transaction that rolled back.
    pub(super) fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Whether [`RecentParts::rebuild`] must run before the table is used.
    pub(super) fn is_stale(&self) -> bool {
        self.stale
    }

    /// Builds the table from the file (inside the caller's transaction, which must commit
    /// for the parts that do not fit to be indexed).
    pub(super) fn rebuild(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.slots.clear();
        self.order.clear();
        self.finished = Finished::new();
        let mut waiting: Vec<(i64, u16, u64)> = Vec::new();
        let floor = super::inflight::floor(conn)?;
        let mut read = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            let mut stmt = conn.prepare(sql)?;
            let mut q = stmt.query(params)?;
            while let Some(row) = q.next()? {
                let carrier: String = row.get(2)?;
                let key: String = row.get(3)?;
                waiting.push((
                    row.get(0)?,
                    rows::u16_of(row.get(1)?, "part index")?,
                    hash(&carrier, &key),
                ));
            }
            Ok::<_, StoreError>(())
        };
        read(UNINDEXED_SUBMITTING, &[&floor])?;
        read(UNINDEXED_SUBMITTED, &[])?;
        // Oldest first, so the newest stay if they do not all fit.
        waiting.sort_unstable();
        let mut spill = conn.prepare_cached(SPILL)?;
        for (rid, idx, h) in waiting {
            for (rid, idx) in self.insert(h, (rid, idx), None) {
                spill.execute(params![rid, idx])?;
            }
        }
        self.stale = false;
        Ok(())
    }

    #[cfg(test)]
    fn held(&self) -> Vec<PartRow> {
        let mut parts: Vec<PartRow> = self.slots.values().map(Slot::part).collect();
        parts.sort_unstable();
        parts
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

/// The finished messages among the last [`FINISHED_SPAN`] row numbers: one bit each, in a
/// ring. Row numbers grow with every accepted message, so a message finishes within the span
/// unless it waited behind millions of newer ones; one that does not is simply not known to
/// be finished.
struct Finished {
    bits: Vec<u64>,
    /// The highest row number marked; the ring covers the span below and including it.
    high: i64,
}

impl Finished {
    fn new() -> Finished {
        Finished {
            bits: vec![0; (FINISHED_SPAN / 64) as usize],
            high: 0,
        }
    }

    /// The bit of `rid`: its word and mask.
    fn at(rid: i64) -> (usize, u64) {
        let i = rid.rem_euclid(FINISHED_SPAN);
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn covers(&self, rid: i64) -> bool {
        rid <= self.high && rid > self.high - FINISHED_SPAN
    }

    fn insert(&mut self, rid: i64) {
        if rid > self.high {
            // Moving the ring forward: the row numbers it now covers anew start unmarked.
            if rid - self.high >= FINISHED_SPAN {
                self.bits.fill(0);
            } else {
                for r in self.high + 1..=rid {
                    let (word, mask) = Finished::at(r);
                    self.bits[word] &= !mask;
                }
            }
            self.high = rid;
        } else if !self.covers(rid) {
            return;
        }
        let (word, mask) = Finished::at(rid);
        self.bits[word] |= mask;
    }

    fn contains(&self, rid: i64) -> bool {
        let (word, mask) = Finished::at(rid);
        self.covers(rid) && self.bits[word] & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaving(l: Leaving) -> Vec<PartRow> {
        l.into_iter().collect()
    }

    #[test]
    fn the_oldest_leaves_beyond_the_bound_and_only_unfinished_messages_parts_are_indexed() {
        let mut t = RecentParts::new(2);
        assert!(leaving(t.insert(1, (1, 0), None)).is_empty());
        assert!(leaving(t.insert(2, (2, 0), None)).is_empty());
        // A third part pushes the first out: its message is not finished, so it is indexed.
        assert_eq!(leaving(t.insert(3, (3, 0), None)), vec![(1, 0)]);
        assert_eq!(t.get(1), None);
        assert_eq!(t.held(), vec![(2, 0), (3, 0)]);
        // A finished message's part leaves without being indexed.
        t.finished(2);
        assert!(leaving(t.insert(4, (4, 0), None)).is_empty());
        assert_eq!(t.held(), vec![(3, 0), (4, 0)]);
        assert_eq!(leaving(t.insert(5, (5, 0), None)), vec![(3, 0)]);
    }

    #[test]
    fn a_new_part_under_a_held_hash_pushes_the_old_one_out() {
        let mut t = RecentParts::new(10);
        assert!(leaving(t.insert(7, (1, 0), None)).is_empty());
        assert_eq!(leaving(t.insert(7, (2, 1), None)), vec![(1, 0)]);
        assert_eq!(t.get(7), Some((2, 1)));
        assert_eq!(t.len(), 1);
        // The same part again is not a displacement.
        assert!(leaving(t.insert(7, (2, 1), None)).is_empty());
        // The stale entries for hash 7 do not evict the live one.
        let mut t2 = RecentParts::new(1);
        assert!(leaving(t2.insert(7, (1, 0), None)).is_empty());
        assert_eq!(leaving(t2.insert(7, (2, 0), None)), vec![(1, 0)]);
        assert_eq!(t2.get(7), Some((2, 0)));
        assert_eq!(leaving(t2.insert(8, (3, 0), None)), vec![(2, 0)]);
        assert_eq!(t2.held(), vec![(3, 0)]);
    }

    #[test]
    fn with_no_room_every_part_goes_to_the_index_at_once() {
        let mut t = RecentParts::new(0);
        assert_eq!(leaving(t.insert(1, (1, 0), None)), vec![(1, 0)]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn replaced_entries_do_not_pile_up() {
        let mut t = RecentParts::new(4);
        for i in 0..10_000 {
            let _ = t.insert(i % 3, (i as i64, 0), None);
        }
        assert_eq!(t.len(), 3);
        assert!(t.order.len() <= 2 * 3 + 64 + 1, "{}", t.order.len());
    }

    #[test]
    fn finished_rows_are_remembered_for_the_span_below_the_highest() {
        let mut f = Finished::new();
        f.insert(10);
        f.insert(5);
        assert!(f.contains(10) && f.contains(5));
        assert!(!f.contains(6) && !f.contains(11) && !f.contains(0));
        // Forward by less than the span: bits within it stay, the positions passed are cleared.
        f.insert(FINISHED_SPAN + 4);
        assert!(f.contains(10) && f.contains(5), "still within the span");
        assert!(f.contains(FINISHED_SPAN + 4));
        assert!(
            !f.contains(4),
            "below the span, though its position is marked"
        );
        f.insert(FINISHED_SPAN + 6);
        assert!(!f.contains(5), "fell out of the span");
        assert!(
            !f.contains(FINISHED_SPAN + 5),
            "its position was cleared on the way"
        );
        // A row below the span is neither marked nor reported.
        f.insert(3);
        assert!(!f.contains(3));
        // A jump beyond the span forgets everything before it.
        f.insert(10 * FINISHED_SPAN);
        assert!(!f.contains(FINISHED_SPAN + 4));
        assert!(f.contains(10 * FINISHED_SPAN));
        // The ring position of an old row that was reused is not taken for the old row.
        assert!(!f.contains(9 * FINISHED_SPAN));
    }

    #[test]
    fn a_one_part_message_is_held_with_its_part_until_the_part_is_written_again() {
        let one = |rid: i64| OnePart {
            id: (9 << 64 | u128::from(rid as u64)).to_be_bytes(),
            accepted_at: 1_000,
            has_callback_url: rid % 2 == 0,
            check: check("a", "k1"),
        };
        let mut t = RecentParts::new(10);
        assert!(leaving(t.insert(1, (4, 0), Some(one(4)))).is_empty());
        assert!(leaving(t.insert(2, (5, 0), None)).is_empty());
        assert_eq!(t.get_one(1), Some(((4, 0), one(4))));
        assert_eq!(t.get_one(2), None, "held without its message");
        assert_eq!(t.get(2), Some((5, 0)));
        // Another part under the same hash is left alone.
        t.forget_one(1, (4, 1));
        assert_eq!(t.get_one(1), Some(((4, 0), one(4))));
        t.forget_one(1, (4, 0));
        assert_eq!(t.get_one(1), None);
        assert_eq!(
            t.get(1),
            Some((4, 0)),
            "the part itself stays, checked on disk"
        );
        // A new part under the hash brings its own.
        assert_eq!(leaving(t.insert(1, (7, 0), Some(one(7)))), vec![(4, 0)]);
        assert_eq!(t.get_one(1), Some(((7, 0), one(7))));
        // A message whose id is not its part's row is not held.
        assert!(leaving(t.insert(3, (8, 0), Some(one(5)))).is_empty());
        assert_eq!(t.get_one(3), None);
        assert_eq!(t.get(3), Some((8, 0)));
        assert_eq!(std::mem::size_of::<Slot>(), 40);
    }

    #[test]
    fn the_check_hash_is_not_the_hash() {
        assert_ne!(check("a", "123"), hash("a", "123"));
        assert_ne!(check("a", "123"), check("b", "123"));
        assert_ne!(check("a", "123"), check("a", "124"));
        assert_eq!(check("a", "123"), check("a", "123"));
    }

    #[test]
    fn hashes_tell_carriers_apart() {
        assert_ne!(hash("a", "123"), hash("b", "123"));
        assert_ne!(hash("a1", "23"), hash("a", "123"));
        assert_eq!(hash("a", "123"), hash("a", "123"));
    }
}

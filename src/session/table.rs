//! The bookkeeping behind the window: our requests awaiting a response, and the requests that
//! timed out but may still be answered late.
//!
//! Every operation is O(1) and neither table grows past the bound it was built with, so the
//! hot path (submit, response) does no allocation once the tables have warmed up.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::pdu::CommandId;

/// One of our requests, as the session hands it back: the caller's token, the sequence number
/// it went out with, and its command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// The opaque token the caller passed to [`super::Session::submit`].
    pub token: u64,
    /// The sequence_number the request was sent with.
    pub sequence_number: u32,
    /// The request's command_id (submit_sm, data_sm, query_sm, ...).
    pub command_id: CommandId,
}

/// Hashes a sequence number with one multiplication (Fibonacci hashing).
///
/// Keys are either our own sequence numbers or the SMSC's, and every map keyed by them is
/// bounded (window, pending inbound limit, late-response memory), so a peer choosing colliding
/// keys can cost at most a bounded probe, never unbounded growth. SipHash would buy nothing here
/// and costs more than the rest of a lookup.
#[derive(Default)]
pub(super) struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        // The high bits pick hashbrown's control byte and the low bits the bucket; the golden
        // ratio multiplier spreads consecutive sequence numbers over both.
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by sequence number.
pub(super) type SeqMap<V> = HashMap<u32, V, BuildHasherDefault<SeqHasher>>;

/// No slot: the end of the deadline list.
const NIL: u32 = u32::MAX;

struct Slot {
    request: Request,
    /// When the request was handed to the session: its round trip counts from here.
    sent_at: Instant,
    deadline: Instant,
    /// The slot sent just before this one (earlier deadline), or NIL.
    prev: u32,
    /// The slot sent just after this one (later deadline), or NIL.
    next: u32,
}

/// Our requests awaiting a response, at most `capacity` of them.
///
/// A slab of slots indexed from a map keyed by sequence number, threaded by a doubly linked list
/// in send order. Every request gets the same response timeout, so send order is deadline
/// order: the list's head is always the next request to time out, and a response unlinks its
/// slot wherever it sits. Lookup, insert, remove and "next deadline" are all O(1).
pub(super) struct InFlight {
    slots: Vec<Slot>,
    /// Slots not in use; the slab only grows while this is empty and it is below capacity.
    free: Vec<u32>,
    index: SeqMap<u32>,
    head: u32,
    tail: u32,
    capacity: usize,
}

impl InFlight {
    pub(super) fn new(capacity: usize) -> Self {
        let mut index = SeqMap::default();
        index.reserve(capacity);
        InFlight {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            index,
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub(super) fn is_full(&self) -> bool {
        self.index.len() >= self.capacity
    }

    pub(super) fn contains(&self, sequence_number: u32) -> bool {
        self.index.contains_key(&sequence_number)
    }

    /// Adds a request at the end of the deadline list. The caller has checked `!is_full()` and
    /// that the sequence number is not in the table.
    pub(super) fn insert(&mut self, request: Request, sent_at: Instant, deadline: Instant) {
        debug_assert!(!self.is_full() && !self.contains(request.sequence_number));
        let slot = Slot {
            request,
            sent_at,
            deadline,
            prev: self.tail,
            next: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => {
                // The window bounds the slab far below u32::MAX slots.
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        match self.tail {
            NIL => self.head = at,
            tail => self.slots[tail as usize].next = at,
        }
        self.tail = at;
        self.index.insert(request.sequence_number, at);
    }

    /// Takes the request with this sequence number out of the table.
    pub(super) fn remove(&mut self, sequence_number: u32) -> Option<Request> {
        let at = self.index.remove(&sequence_number)?;
        Some(self.unlink(at).0)
    }

    /// Takes the request with this sequence number out of the table if `answers` says the
    /// response is for it, with the instant it was sent; one lookup.
    pub(super) fn take_if(
        &mut self,
        sequence_number: u32,
        answers: impl FnOnce(&Request) -> bool,
    ) -> Option<(Request, Instant)> {
        let Entry::Occupied(entry) = self.index.entry(sequence_number) else {
            return None;
        };
        if !answers(&self.slots[*entry.get() as usize].request) {
            return None;
        }
        let at = entry.remove();
        Some(self.unlink(at))
    }

    /// Unlinks a slot already taken out of the index and frees it.
    fn unlink(&mut self, at: u32) -> (Request, Instant) {
        let Slot {
            request,
            sent_at,
            prev,
            next,
            ..
        } = self.slots[at as usize];
        match prev {
            NIL => self.head = next,
            prev => self.slots[prev as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slots[next as usize].prev = prev,
        }
        self.free.push(at);
        (request, sent_at)
    }

    /// The deadline of the request that times out first.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        (self.head != NIL).then(|| self.slots[self.head as usize].deadline)
    }

    /// Takes out the oldest request if its deadline is at or before `now`.
    pub(super) fn pop_expired(&mut self, now: Instant) -> Option<Request> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let sequence_number = self.slots[self.head as usize].request.sequence_number;
        self.remove(sequence_number)
    }

    /// Empties the table, oldest request first.
    pub(super) fn drain(&mut self) -> Vec<Request> {
        let mut out = Vec::with_capacity(self.len());
        let mut at = self.head;
        while at != NIL {
            let slot = &self.slots[at as usize];
            out.push(slot.request);
            at = slot.next;
        }
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
        out
    }
}

/// Requests that timed out, remembered so a late response can still be matched to its token
/// (it settles an in-doubt submit), and so their sequence numbers are not reused while an
/// answer might still arrive.
///
/// A ring of `capacity` entries: when it is full the oldest is forgotten. Forgetting is safe
/// because a response to a forgotten request is reported as an unexpected response, not
/// matched to something else: its number is free again only after the counter wraps.
pub(super) struct TimedOut {
    ring: Vec<Option<Request>>,
    /// The ring position the next entry goes to.
    next: usize,
    index: SeqMap<usize>,
    capacity: usize,
}

impl TimedOut {
    pub(super) fn new(capacity: usize) -> Self {
        TimedOut {
            ring: Vec::new(),
            next: 0,
            index: SeqMap::default(),
            capacity,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn contains(&self, sequence_number: u32) -> bool {
        self.index.contains_key(&sequence_number)
    }

    pub(super) fn get(&self, sequence_number: u32) -> Option<&Request> {
        let &at = self.index.get(&sequence_number)?;
        self.ring[at].as_ref()
    }

    /// Remembers a timed-out request, forgetting the oldest one when full.
    pub(super) fn remember(&mut self, request: Request) {
        if self.capacity == 0 {
            return;
        }
        if self.ring.len() < self.capacity {
            // Grows only until the ring is full; timeouts are rare, so most sessions never
            // allocate the whole ring.
            self.ring.push(None);
        }
        if let Some(old) = self.ring[self.next].replace(request) {
            self.index.remove(&old.sequence_number);
        }
        self.index.insert(request.sequence_number, self.next);
        self.next = (self.next + 1) % self.capacity;
    }

    pub(super) fn take(&mut self, sequence_number: u32) -> Option<Request> {
        let at = self.index.remove(&sequence_number)?;
        self.ring[at].take()
    }

    pub(super) fn clear(&mut self) {
        self.ring.clear();
        self.index.clear();
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn req(sequence_number: u32) -> Request {
        Request {
            token: u64::from(sequence_number) * 10,
            sequence_number,
            command_id: CommandId::SUBMIT_SM,
        }
    }

    #[test]
    fn in_flight_keeps_deadline_order_through_removals() {
        let t0 = Instant::now();
        let mut table = InFlight::new(4);
        for seq in 1..=4 {
            table.insert(req(seq), t0, t0 + Duration::from_secs(u64::from(seq)));
        }
        assert!(table.is_full());
        assert_eq!(table.remove(1), Some(req(1)));
        assert_eq!(table.remove(3), Some(req(3)));
        assert_eq!(table.remove(3), None);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(2)));
        // A freed slot is reused; the new request goes to the end of the list.
        table.insert(req(5), t0, t0 + Duration::from_secs(5));
        table.insert(req(6), t0, t0 + Duration::from_secs(6));
        assert!(table.is_full());
        assert_eq!(table.slots.len(), 4, "slab grew past its capacity");
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(1)), None);
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(4)), Some(req(2)));
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(4)), Some(req(4)));
        assert_eq!(table.pop_expired(t0 + Duration::from_secs(4)), None);
        assert_eq!(table.drain(), vec![req(5), req(6)]);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn timed_out_memory_forgets_the_oldest_when_full() {
        let mut memory = TimedOut::new(2);
        memory.remember(req(1));
        memory.remember(req(2));
        memory.remember(req(3));
        assert!(!memory.contains(1));
        assert_eq!(memory.take(2), Some(req(2)));
        assert_eq!(memory.take(2), None);
        memory.remember(req(4));
        assert_eq!(memory.len(), 2);
        assert_eq!(memory.get(3), Some(&req(3)));
        assert_eq!(memory.take(4), Some(req(4)));
    }

    #[test]
    fn timed_out_memory_of_zero_remembers_nothing() {
        let mut memory = TimedOut::new(0);
        memory.remember(req(1));
        assert!(!memory.contains(1));
    }
}

//! Concatenation references: a fresh one per long message, never one that a handset may still
//! be using to reassemble an earlier message from the same sender.
//!
//! A handset groups parts by originator and reference (GSM 03.40 §9.2.3.24.1), so two long
//! messages to one destination must not share a reference while the first may still be
//! incomplete. References are handed out per destination from a rotating counter; a counter
//! may only wrap onto references whose messages are at least `hold` old.
//!
//! Memory is fixed: destinations are hashed onto a table of counters. Destinations that share
//! a counter each see a subsequence of its values, which keeps the guarantee; they only
//! exhaust it sooner.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use super::SmsError;

/// How wide the reference is: 8 bits for UDH IEI 0x00, 16 bits for IEI 0x08 and the
/// `sar_msg_ref_num` TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RefWidth {
    /// References 0-255.
    #[default]
    Bits8,
    /// References 0-65535.
    Bits16,
}

impl RefWidth {
    /// How many distinct references there are.
    const fn modulus(self) -> u32 {
        match self {
            RefWidth::Bits8 => 1 << 8,
            RefWidth::Bits16 => 1 << 16,
        }
    }
}

/// Settings of a [`ReferenceAllocator`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceAllocatorConfig {
    /// The reference width. Use one allocator per width. Default 8 bits.
    pub width: RefWidth,
    /// How long a reference stays reserved after it was handed out: the longest time the parts
    /// of one message may take to reach the handset. Default one hour.
    pub hold: Duration,
    /// How many counters destinations are hashed onto. Default 16384 (about 40 octets each).
    pub slots: usize,
    /// Seeds the hash and the counters' starting points, so references after a restart do not
    /// all begin at 0. Default 0; pass something that differs between runs in production.
    pub seed: u64,
}

impl Default for ReferenceAllocatorConfig {
    fn default() -> Self {
        ReferenceAllocatorConfig {
            width: RefWidth::Bits8,
            hold: Duration::from_secs(3600),
            slots: 16 * 1024,
            seed: 0,
        }
    }
}

/// One counter, shared by the destinations that hash to it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The next reference to hand out.
    next: u16,
    /// References handed out since the counter last wrapped (or went idle).
    used: u32,
    /// When the last reference was handed out.
    last: Option<Instant>,
    /// When the previous cycle's last reference was handed out: every reference of that cycle
    /// is free from `previous_cycle_end + hold` on.
    previous_cycle_end: Option<Instant>,
}

/// Hands out concatenation references per destination. Pure: time is passed in.
#[derive(Debug, Clone)]
pub struct ReferenceAllocator {
    config: ReferenceAllocatorConfig,
    slots: Vec<Slot>,
}

impl ReferenceAllocator {
    /// An allocator with the given settings (at least one counter).
    pub fn new(config: ReferenceAllocatorConfig) -> Self {
        let modulus = config.width.modulus();
        let slots = (0..config.slots.max(1))
            .map(|i| Slot {
                next: (mix(config.seed, i as u64) % u64::from(modulus)) as u16,
                used: 0,
                last: None,
                previous_cycle_end: None,
            })
            .collect();
        ReferenceAllocator { config, slots }
    }

    /// The settings.
    pub fn config(&self) -> &ReferenceAllocatorConfig {
        &self.config
    }

    /// A reference for a new message to `destination` (any key naming the handset; include the
    /// sender if different senders should count apart).
    ///
    /// Fails with [`SmsError::ReferencesExhausted`] when every reference of the destination's
    /// counter was handed out within the hold time; the error says when one frees up. The
    /// check is conservative: once a counter wraps, the whole new cycle waits for the hold time
    /// of the previous cycle's last message.
    pub fn allocate(&mut self, destination: &str, now: Instant) -> Result<u16, SmsError> {
        let hold = self.config.hold;
        let modulus = self.config.width.modulus();
        let index = self.slot_index(destination);
        let slot = &mut self.slots[index];
        let expired = |at: Instant| at.checked_add(hold).is_some_and(|free| now >= free);

        if slot.last.is_some_and(expired) {
            // Everything this counter ever handed out is older than the hold time.
            slot.used = 0;
            slot.previous_cycle_end = None;
        }
        if slot.used >= modulus {
            slot.previous_cycle_end = slot.last;
            slot.used = 0;
        }
        if let Some(end) = slot.previous_cycle_end {
            if !expired(end) {
                // An Instant too far in the future to add to cannot happen with real clocks;
                // then report `end` itself rather than fail differently.
                let available_at = end.checked_add(hold).unwrap_or(end);
                return Err(SmsError::ReferencesExhausted { available_at });
            }
            slot.previous_cycle_end = None;
        }

        let reference = slot.next;
        slot.next = ((u32::from(reference) + 1) % modulus) as u16;
        slot.used += 1;
        slot.last = Some(now);
        Ok(reference)
    }

    fn slot_index(&self, destination: &str) -> usize {
        let mut hasher = DefaultHasher::new();
        self.config.seed.hash(&mut hasher);
        destination.hash(&mut hasher);
        (hasher.finish() % self.slots.len() as u64) as usize
    }
}

/// A 64-bit mixer (splitmix64's finaliser) for the counters' starting points.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn allocator(width: RefWidth, slots: usize) -> ReferenceAllocator {
        ReferenceAllocator::new(ReferenceAllocatorConfig {
            width,
            hold: Duration::from_secs(60),
            slots,
            seed: 7,
        })
    }

    #[test]
    fn never_reuses_a_reference_within_the_hold_time() {
        let mut refs = allocator(RefWidth::Bits8, 1);
        let t0 = Instant::now();
        let mut seen = HashSet::new();
        for i in 0..256u64 {
            let r = refs
                .allocate("447700900123", t0 + Duration::from_millis(i))
                .unwrap();
            assert!(seen.insert(r), "reference {r} reused");
        }
        let err = refs.allocate("447700900123", t0 + Duration::from_secs(30));
        assert_eq!(
            err,
            Err(SmsError::ReferencesExhausted {
                available_at: t0 + Duration::from_millis(255) + Duration::from_secs(60)
            })
        );
        let later = t0 + Duration::from_millis(255) + Duration::from_secs(60);
        assert!(refs.allocate("447700900123", later).is_ok());
    }

    #[test]
    fn consecutive_messages_get_consecutive_references() {
        let mut refs = allocator(RefWidth::Bits16, 64);
        let now = Instant::now();
        let a = refs.allocate("dest", now).unwrap();
        let b = refs.allocate("dest", now).unwrap();
        assert_eq!(b, a.wrapping_add(1));
    }

    #[test]
    fn an_idle_destination_starts_fresh() {
        let mut refs = allocator(RefWidth::Bits8, 1);
        let t0 = Instant::now();
        for _ in 0..256 {
            refs.allocate("d", t0).unwrap();
        }
        assert!(refs.allocate("d", t0).is_err());
        let t1 = t0 + Duration::from_secs(61);
        for _ in 0..256 {
            refs.allocate("d", t1).unwrap();
        }
        assert!(refs.allocate("d", t1).is_err());
    }

    #[test]
    fn destinations_sharing_a_counter_still_never_collide() {
        let mut refs = allocator(RefWidth::Bits8, 1);
        let now = Instant::now();
        let mut per_dest: [HashSet<u16>; 2] = Default::default();
        for i in 0..256 {
            let d = i % 2;
            let r = refs.allocate(["a", "b"][d], now).unwrap();
            assert!(per_dest[d].insert(r));
        }
    }

    #[test]
    fn different_seeds_start_at_different_references() {
        let now = Instant::now();
        let starts: HashSet<u16> = (0..8)
            .map(|seed| {
                ReferenceAllocator::new(ReferenceAllocatorConfig {
                    width: RefWidth::Bits16,
                    seed,
                    ..ReferenceAllocatorConfig::default()
                })
                .allocate("dest", now)
                .unwrap()
            })
            .collect();
        assert!(starts.len() > 1);
    }
}

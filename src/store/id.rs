//! Message ids: 128-bit, time-ordered, written as 26 characters of Crockford base32.
//!
//! The layout follows ULID's: the top 48 bits are the creation time in milliseconds since the
//! Unix epoch, and the string form sorts like the number. The low 80 bits are a 16-bit random
//! salt, drawn afresh each millisecond, and a 64-bit sequence number that the store makes
//! its row number, so a lookup by id is a lookup by row without a second index. Within one
//! millisecond (or when the clock steps back) the salt is kept, so ids made by one
//! [`IdGenerator`] with increasing sequence numbers are strictly increasing. Sorting ids as
//! strings, as bytes or as numbers gives the same order, which the store uses for paging.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;

use super::Timestamp;

/// The Crockford base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The number of characters of a written id.
pub const MESSAGE_ID_LEN: usize = 26;

const RANDOM_BITS: u32 = 80;
const SEQUENCE_BITS: u32 = 64;
const MAX_MILLIS: u64 = (1 << 48) - 1;

/// Our id of one accepted message (see the module docs for the layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u128);

impl MessageId {
    /// The id with this 128-bit value.
    pub const fn from_u128(value: u128) -> MessageId {
        MessageId(value)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The id as 16 big-endian bytes (its storage form; byte order is time order).
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id stored as 16 big-endian bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<MessageId> {
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        Some(MessageId(u128::from_be_bytes(bytes)))
    }

    /// The sequence number written in the id (the store's row number).
    pub const fn sequence(self) -> u64 {
        self.0 as u64
    }

    /// The creation time written in the id.
    pub fn timestamp(self) -> Timestamp {
        // 48 bits always fit an i64.
        Timestamp::from_millis((self.0 >> RANDOM_BITS) as i64)
    }

    /// The smallest id that can carry this time: every id made at or after `at` is greater
    /// or equal, every id made before is smaller. Times outside the 48-bit range are clamped.
    pub fn lower_bound(at: Timestamp) -> MessageId {
        let ms = at.as_millis().clamp(0, MAX_MILLIS as i64) as u128;
        MessageId(ms << RANDOM_BITS)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; MESSAGE_ID_LEN];
        for (i, c) in out.iter_mut().enumerate() {
            // 26 × 5 = 130 bits: the first character carries the top 3 bits.
            let shift = 5 * (MESSAGE_ID_LEN - 1 - i);
            *c = ALPHABET[((self.0 >> shift) & 0x1F) as usize];
        }
        // The alphabet is ASCII.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// Why a string is not a [`MessageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The string does not have 26 characters.
    #[error("a message id has 26 characters, this one has {0}")]
    Length(usize),
    /// A character outside Crockford base32.
    #[error("{0:?} is not a Crockford base32 character")]
    Character(char),
    /// The first character is above `7`, so the value does not fit 128 bits.
    #[error("the id's value does not fit 128 bits")]
    Overflow,
}

impl FromStr for MessageId {
    type Err = ParseIdError;

    /// Reads an id case-insensitively; as Crockford allows, `I` and `L` read as 1 and `O` as 0.
    fn from_str(s: &str) -> Result<MessageId, ParseIdError> {
        let count = s.chars().count();
        if count != MESSAGE_ID_LEN {
            return Err(ParseIdError::Length(count));
        }
        let mut value: u128 = 0;
        for (i, c) in s.chars().enumerate() {
            let digit = decode_char(c).ok_or(ParseIdError::Character(c))?;
            if i == 0 && digit > 7 {
                return Err(ParseIdError::Overflow);
            }
            value = (value << 5) | u128::from(digit);
        }
        Ok(MessageId(value))
    }
}

fn decode_char(c: char) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        'O' => 0,
        'I' | 'L' => 1,
        'A'..='H' => c as u8 - b'A' + 10,
        'J' | 'K' => c as u8 - b'J' + 18,
        'M' | 'N' => c as u8 - b'M' + 20,
        'P'..='T' => c as u8 - b'P' + 22,
        'V'..='Z' => c as u8 - b'V' + 27,
        _ => return None,
    })
}

/// A source of random bits for ids. Ids need uniqueness, not secrecy: a seeded generator is
/// enough, and tests pass a fixed seed.
pub trait RandomSource: Send + 'static {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64: a small, fast generator with a 64-bit state and full period.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator seeded from the process's hash keys (which the standard library draws from
    /// the operating system), the process id and the clock, so two processes differ.
    pub fn from_entropy() -> SplitMix64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_i64(Timestamp::now().as_millis());
        SplitMix64::new(hasher.finish())
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Makes [`MessageId`]s from a time, a [`RandomSource`] and a sequence number.
pub struct IdGenerator {
    rng: Box<dyn RandomSource>,
    /// The millisecond and salt of the last id.
    last: Option<(u128, u128)>,
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdGenerator")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl IdGenerator {
    /// A generator drawing its salts from `rng`.
    pub fn new(rng: Box<dyn RandomSource>) -> IdGenerator {
        IdGenerator { rng, last: None }
    }

    /// The id for a message made at `now` with sequence number `seq`. If `seq` is greater
    /// than every sequence number given before, the id is greater than every id made before,
    /// even if `now` went backwards.
    pub fn next_id(&mut self, now: Timestamp, seq: u64) -> MessageId {
        let ms = now.as_millis().clamp(0, MAX_MILLIS as i64) as u128;
        let (ms, salt) = match self.last {
            // Same millisecond, or the clock stepped back: keep the last time and salt, so
            // the order is the sequence's.
            Some((last_ms, salt)) if last_ms >= ms => (last_ms, salt),
            _ => (ms, u128::from(self.rng.next_u64() & 0xFFFF)),
        };
        self.last = Some((ms, salt));
        MessageId((ms << RANDOM_BITS) | (salt << SEQUENCE_BITS) | u128::from(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_26_crockford_characters_and_parse_back() {
        let mut ids = IdGenerator::new(Box::new(SplitMix64::new(7)));
        for (seq, ms) in [0, 1, 1_700_000_000_000, MAX_MILLIS as i64]
            .into_iter()
            .enumerate()
        {
            let id = ids.next_id(Timestamp::from_millis(ms), seq as u64 + 1);
            assert_eq!(id.sequence(), seq as u64 + 1);
            let text = id.to_string();
            assert_eq!(text.len(), MESSAGE_ID_LEN);
            assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(text.parse::<MessageId>(), Ok(id));
            assert_eq!(text.to_ascii_lowercase().parse::<MessageId>(), Ok(id));
            assert_eq!(MessageId::from_slice(&id.to_bytes()), Some(id));
        }
    }

    #[test]
    fn known_values_encode_like_ulid() {
        assert_eq!(MessageId(0).to_string(), "00000000000000000000000000");
        assert_eq!(
            MessageId(u128::MAX).to_string(),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert_eq!(
            "01ARYZ6S41TSV4RRFFQ69G5FAV"
                .parse::<MessageId>()
                .map(|id| id.timestamp()),
            Ok(Timestamp::from_millis(1_469_918_176_385))
        );
    }

    #[test]
    fn parse_rejects_bad_length_characters_and_overflow() {
        assert_eq!("ABC".parse::<MessageId>(), Err(ParseIdError::Length(3)));
        assert_eq!(
            "0000000000000000000000000U".parse::<MessageId>(),
            Err(ParseIdError::Character('U'))
        );
        assert_eq!(
            "80000000000000000000000000".parse::<MessageId>(),
            Err(ParseIdError::Overflow)
        );
        assert_eq!(
            "0000000000000000000000000é".parse::<MessageId>(),
            Err(ParseIdError::Character('é'))
        );
        assert_eq!(
            "0O0000000000000000000000IL".parse::<MessageId>(),
            Ok(MessageId(33))
        );
    }

    #[test]
    fn ids_increase_within_a_millisecond_and_when_the_clock_steps_back() {
        let mut ids = IdGenerator::new(Box::new(SplitMix64::new(1)));
        let t = Timestamp::from_millis(1_700_000_000_000);
        let mut prev = ids.next_id(t, 1);
        for (seq, ms) in [0, 0, 0, -5, -1000, 1, 1, 2].into_iter().enumerate() {
            let id = ids.next_id(Timestamp::from_millis(t.as_millis() + ms), seq as u64 + 2);
            assert!(id > prev, "{id} after {prev}");
            assert!(id.to_string() > prev.to_string());
            prev = id;
        }
        assert_eq!(prev.timestamp().as_millis(), t.as_millis() + 2);
        let later = ids.next_id(Timestamp::from_millis(t.as_millis() + 10), 100);
        assert_eq!(later.timestamp().as_millis(), t.as_millis() + 10);
        assert_eq!(later.sequence(), 100);
    }

    #[test]
    fn equal_seeds_make_equal_ids() {
        let t = Timestamp::from_millis(1_700_000_000_000);
        let a = IdGenerator::new(Box::new(SplitMix64::new(42))).next_id(t, 1);
        let b = IdGenerator::new(Box::new(SplitMix64::new(42))).next_id(t, 1);
        let c = IdGenerator::new(Box::new(SplitMix64::new(43))).next_id(t, 1);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn lower_bound_orders_against_ids_of_that_time() {
        let mut ids = IdGenerator::new(Box::new(SplitMix64::new(3)));
        let t = Timestamp::from_millis(1_000);
        let id = ids.next_id(t, u64::MAX);
        assert!(MessageId::lower_bound(t) <= id);
        assert!(MessageId::lower_bound(Timestamp::from_millis(1_001)) > id);
    }
}

//! Seedable randomness and message ids: the same seed gives the same run.

use serde::{Deserialize, Serialize};

/// SplitMix64: small, fast, and good enough to pick faults and outcomes. Not for secrets.
#[derive(Clone, Debug)]
pub struct Rng(u64);

const MIX_A: u64 = 0xBF58_476D_1CE4_E5B9;
const MIX_B: u64 = 0x94D0_49BB_1331_11EB;

/// The SplitMix64 output function: a bijection on u64, so distinct inputs give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(MIX_A);
    z = (z ^ (z >> 27)).wrapping_mul(MIX_B);
    z ^ (z >> 31)
}

/// The inverse of an odd number modulo 2^64 (Newton's iteration: each step doubles the
/// correct low bits, from 3 for `x = a`).
const fn inverse(a: u64) -> u64 {
    let mut x = a;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// Undoes `z ^ (z >> shift)`.
fn unshift(y: u64, shift: u32) -> u64 {
    let mut x = y;
    let mut s = shift;
    while s < 64 {
        x ^= y >> s;
        s += shift;
    }
    x
}

/// The inverse of [`mix`]: message ids are read back into the counter that made them.
fn unmix(mut z: u64) -> u64 {
    z = unshift(z, 31).wrapping_mul(const { inverse(MIX_B) });
    z = unshift(z, 27).wrapping_mul(const { inverse(MIX_A) });
    unshift(z, 30)
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.next_f64() < p)
    }

    /// A uniform integer in `min..=max` (`min` when the range is empty).
    pub fn range(&mut self, min: u64, max: u64) -> u64 {
        if max <= min {
            return min;
        }
        match (max - min).checked_add(1) {
            Some(span) => min + self.next_u64() % span,
            // The whole u64 range.
            None => self.next_u64(),
        }
    }
}

/// How the simulator writes the message ids it hands out in submit_sm_resp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageIdFormat {
    /// 16 upper-case hex digits, e.g. `"3F2A9C0011D4E7B2"`.
    #[default]
    Hex,
    /// Decimal digits, e.g. `"4402119871"`.
    Decimal,
    /// UUID-like text, e.g. `"1f0c2b3a-9d8e-4f70-a1b2-c3d4e5f60718"`.
    Uuid,
}

/// A message id as text, held inline: making one allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct IdText {
    len: u8,
    octets: [u8; IdText::MAX],
}

impl IdText {
    /// The longest id: the UUID-like form.
    const MAX: usize = 36;

    fn new() -> IdText {
        IdText {
            len: 0,
            octets: [0; IdText::MAX],
        }
    }

    /// The id.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits, letters and '-' are ever pushed.
        std::str::from_utf8(&self.octets[..usize::from(self.len)]).unwrap_or_default()
    }

    fn push(&mut self, octet: u8) {
        if let Some(slot) = self.octets.get_mut(usize::from(self.len)) {
            *slot = octet;
            self.len += 1;
        }
    }

    /// Appends the low `digits` nibbles of `value` in hex.
    fn hex(&mut self, value: u64, digits: u32, upper: bool) {
        let table = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        for i in (0..digits).rev() {
            self.push(table[((value >> (4 * i)) & 0xF) as usize]);
        }
    }

    fn decimal(&mut self, value: u64) {
        let (digits, n) = decimal_digits(value);
        for &d in digits[..n].iter().rev() {
            self.push(d);
        }
    }
}

/// `value`'s decimal digits as ASCII, least significant first, and how many there are
/// (u64::MAX has 20). Ids and receipt text are written for every message: by hand, not
/// through `fmt`.
pub(crate) fn decimal_digits(mut value: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 {
            return (digits, n);
        }
    }
}

impl std::fmt::Debug for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// How the n-th message id is written, and read back: ids are a bijective scramble of a
/// counter, so they look random, never repeat within 2^64 ids, are the same for the same
/// seed, and give back their counter (the message table is indexed by it, not hashed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdCodec {
    format: MessageIdFormat,
    key: u64,
}

impl IdCodec {
    pub(crate) fn new(format: MessageIdFormat, seed: u64) -> IdCodec {
        IdCodec {
            format,
            key: mix(seed ^ 0x5EED_1D5E_ED1D_5EED),
        }
    }

    /// The id of the `counter`-th message (counting from 1).
    pub(crate) fn id(&self, counter: u64) -> IdText {
        let n = self.key.wrapping_add(counter);
        let mut out = IdText::new();
        match self.format {
            MessageIdFormat::Hex => out.hex(mix(n), 16, true),
            // Ten digits or more, like Appendix B's receipts; counting from a seeded start
            // keeps them unique.
            MessageIdFormat::Decimal => out.decimal(self.decimal_base().wrapping_add(counter)),
            // A version-4 look: the third group starts with 4. The last two groups carry
            // all 64 bits of `b`, from which the counter is read back.
            MessageIdFormat::Uuid => {
                let a = mix(n);
                let b = mix(n ^ 0xA5A5_A5A5_A5A5_A5A5);
                out.hex(a >> 32, 8, false);
                out.push(b'-');
                out.hex(a >> 16, 4, false);
                out.push(b'-');
                out.push(b'4');
                out.hex(a, 3, false);
                out.push(b'-');
                out.hex(b >> 48, 4, false);
                out.push(b'-');
                out.hex(b, 12, false);
            }
        }
        out
    }

    fn decimal_base(&self) -> u64 {
        1_000_000_000 + (self.key % 1_000_000_000)
    }

    /// The counter `id` was made from, if it is one of ours.
    pub(crate) fn counter(&self, id: &str) -> Option<u64> {
        let counter = match self.format {
            MessageIdFormat::Hex => {
                let v = u64::from_str_radix(id, 16).ok()?;
                unmix(v).wrapping_sub(self.key)
            }
            MessageIdFormat::Decimal => id.parse::<u64>().ok()?.checked_sub(self.decimal_base())?,
            MessageIdFormat::Uuid => {
                let (head, low) = id.rsplit_once('-')?;
                let (_, high) = head.rsplit_once('-')?;
                let b = (u64::from_str_radix(high, 16).ok()? << 48)
                    | u64::from_str_radix(low, 16).ok()?;
                (unmix(b) ^ 0xA5A5_A5A5_A5A5_A5A5).wrapping_sub(self.key)
            }
        };
        // Anything parsing the same but written otherwise (case, signs, leading zeros,
        // other groups) is not an id we gave.
        (counter != 0 && self.id(counter).as_str() == id).then_some(counter)
    }

    /// The id's value as a number, for writing it in the other base in receipts.
    pub(crate) fn numeric(&self, counter: u64) -> Option<u64> {
        match self.format {
            MessageIdFormat::Hex => Some(mix(self.key.wrapping_add(counter))),
            MessageIdFormat::Decimal => Some(self.decimal_base().wrapping_add(counter)),
            MessageIdFormat::Uuid => None,
        }
    }
}

/// Hands out unique message ids in one format. Ids are a bijective scramble of a counter, so
/// they look random, never repeat within 2^64 ids, and are the same for the same seed.
#[derive(Clone, Debug)]
pub struct IdGenerator {
    codec: IdCodec,
    counter: u64,
}

impl IdGenerator {
    /// A generator for `format`, seeded.
    pub fn new(format: MessageIdFormat, seed: u64) -> IdGenerator {
        IdGenerator {
            codec: IdCodec::new(format, seed),
            counter: 0,
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        self.codec.id(self.counter).as_str().to_owned()
    }
}

/// The numeric value of an id in `format`, for writing it in the other base in receipts.
pub fn numeric_value(id: &str, format: MessageIdFormat) -> Option<u64> {
    match format {
        MessageIdFormat::Hex => u64::from_str_radix(id, 16).ok(),
        MessageIdFormat::Decimal => id.parse().ok(),
        MessageIdFormat::Uuid => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_repeatable_per_seed() {
        for format in [
            MessageIdFormat::Hex,
            MessageIdFormat::Decimal,
            MessageIdFormat::Uuid,
        ] {
            let mut a = IdGenerator::new(format, 7);
            let mut b = IdGenerator::new(format, 7);
            let ids: Vec<String> = (0..10_000).map(|_| a.next_id()).collect();
            let again: Vec<String> = (0..10_000).map(|_| b.next_id()).collect();
            assert_eq!(ids, again);
            assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
            assert!(ids.iter().all(|id| id.len() <= 64));
        }
    }

    #[test]
    fn hex_and_decimal_ids_have_a_numeric_value() {
        let mut g = IdGenerator::new(MessageIdFormat::Hex, 1);
        let id = g.next_id();
        assert_eq!(
            format!("{:016X}", numeric_value(&id, MessageIdFormat::Hex).unwrap()),
            id
        );
        let mut g = IdGenerator::new(MessageIdFormat::Decimal, 1);
        let id = g.next_id();
        assert_eq!(
            numeric_value(&id, MessageIdFormat::Decimal)
                .unwrap()
                .to_string(),
            id
        );
    }

    #[test]
    fn unmix_inverts_mix() {
        let mut rng = Rng::new(9);
        for z in [0, 1, u64::MAX, 0x8000_0000_0000_0000]
            .into_iter()
            .chain((0..10_000).map(|_| rng.next_u64()))
        {
            assert_eq!(unmix(mix(z)), z, "{z:#x}");
        }
    }

    #[test]
    fn ids_give_back_their_counter_and_nothing_else_does() {
        for format in [
            MessageIdFormat::Hex,
            MessageIdFormat::Decimal,
            MessageIdFormat::Uuid,
        ] {
            let codec = IdCodec::new(format, 11);
            let mut g = IdGenerator::new(format, 11);
            for counter in 1..=2000 {
                let id = g.next_id();
                assert_eq!(codec.id(counter).as_str(), id);
                assert_eq!(codec.counter(&id), Some(counter), "{format:?} {id}");
                let other = match format {
                    MessageIdFormat::Uuid => id.to_uppercase(),
                    _ => id.to_lowercase().replace(|c: char| c.is_ascii_digit(), "0") + "0",
                };
                assert_eq!(codec.counter(&other), None, "{format:?} {other}");
            }
            for junk in ["", "0", "-", "zz", "0000", "1-2-3-4-5", "+1000000001"] {
                assert_eq!(codec.counter(junk), None, "{format:?} {junk:?}");
            }
            if format != MessageIdFormat::Uuid {
                let id = codec.id(77);
                assert_eq!(codec.numeric(77), numeric_value(id.as_str(), format));
            }
        }
    }

    #[test]
    fn chance_is_exact_at_the_edges() {
        let mut rng = Rng::new(3);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        let hits = (0..10_000).filter(|_| rng.chance(0.3)).count();
        assert!((2500..3500).contains(&hits), "{hits}");
    }
}

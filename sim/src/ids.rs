//! Seedable randomness and message ids: the same seed gives the same run.

use serde::{Deserialize, Serialize};

/// SplitMix64: small, fast, and good enough to pick faults and outcomes. Not for secrets.
#[derive(Clone, Debug)]
pub struct Rng(u64);

/// The SplitMix64 output function: a bijection on u64, so distinct inputs give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

/// Hands out unique message ids in one format. Ids are a bijective scramble of a counter, so
/// they look random, never repeat within 2^64 ids, and are the same for the same seed.
#[derive(Clone, Debug)]
pub struct IdGenerator {
    format: MessageIdFormat,
    key: u64,
    counter: u64,
}

impl IdGenerator {
    /// A generator for `format`, seeded.
    pub fn new(format: MessageIdFormat, seed: u64) -> IdGenerator {
        IdGenerator {
            format,
            key: mix(seed ^ 0x5EED_1D5E_ED1D_5EED),
            counter: 0,
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        let n = self.key.wrapping_add(self.counter);
        match self.format {
            MessageIdFormat::Hex => format!("{:016X}", mix(n)),
            // Ten digits or more, like Appendix B's receipts; counting from a seeded start
            // keeps them unique.
            MessageIdFormat::Decimal => {
                format!(
                    "{}",
                    1_000_000_000 + (self.key % 1_000_000_000) + self.counter
                )
            }
            MessageIdFormat::Uuid => {
                let a = mix(n);
                let b = mix(n ^ 0xA5A5_A5A5_A5A5_A5A5);
                format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xFFFF,
                    a & 0x0FFF,
                    (b >> 48) & 0xFFFF,
                    b & 0xFFFF_FFFF_FFFF
                )
            }
        }
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
    fn chance_is_exact_at_the_edges() {
        let mut rng = Rng::new(3);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        let hits = (0..10_000).filter(|_| rng.chance(0.3)).count();
        assert!((2500..3500).contains(&hits), "{hits}");
    }
}

//! One canonical key per carrier message id, whichever form the carrier writes it in.
//!
//! SMPP 3.4 makes `message_id` an opaque string of up to 64 characters, while Appendix B says
//! the receipt's `id` is decimal; carriers mix the two, typically hex in submit_sm_resp and
//! decimal in the receipt, sometimes zero-padded or in another case. Each side is configured
//! with its [`IdFormat`]; numeric ids become the number itself, so `1A2B3C4D` (hex) and
//! `0439041101` (decimal) give the same key.

use std::fmt;

/// How a carrier writes a message id on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdFormat {
    /// A string compared exactly (after trimming whitespace and NULs). The default, and right
    /// whenever the carrier echoes its submit_sm_resp id unchanged.
    #[default]
    Opaque,
    /// A hexadecimal number, any case, optionally zero-padded or prefixed `0x`.
    Hex,
    /// A decimal number, optionally zero-padded.
    Decimal,
}

/// A normalised message id: equal keys mean the same message.
///
/// Numbers are held as lower-case hex without leading zeros, under a prefix that keeps them
/// apart from opaque ids; the whole key is a plain string for storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageIdKey(String);

impl MessageIdKey {
    /// The key as a string, for storage and lookups.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A carrier's id formats on both sides of the correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IdNormalizer {
    /// The form of `message_id` in submit_sm_resp (and data_sm_resp).
    pub submit_resp: IdFormat,
    /// The form of the id in receipts: the `receipted_message_id` TLV and the text's `id`.
    pub receipt: IdFormat,
}

impl IdNormalizer {
    /// The key of an id from submit_sm_resp.
    pub fn submit_resp_key(&self, id: &str) -> MessageIdKey {
        normalize_message_id(id, self.submit_resp)
    }

    /// The key of an id from a receipt.
    pub fn receipt_key(&self, id: &str) -> MessageIdKey {
        normalize_message_id(id, self.receipt)
    }
}

/// Normalises an id written in `format`. An id that is not a number in the configured base
/// falls back to its opaque key, so a misconfigured carrier fails to match rather than
/// matching the wrong message.
pub fn normalize_message_id(id: &str, format: IdFormat) -> MessageIdKey {
    let id = id.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    // Built in one string: the receipt and the submit_sm_resp of every message take a key.
    let mut key = String::with_capacity(id.len() + 2);
    let numeric = match format {
        IdFormat::Opaque => false,
        IdFormat::Hex => {
            let digits = id
                .strip_prefix("0x")
                .or_else(|| id.strip_prefix("0X"))
                .unwrap_or(id);
            push_hex_key(&mut key, digits)
        }
        IdFormat::Decimal => push_decimal_as_hex(&mut key, id),
    };
    if !numeric {
        key.push_str("s:");
        key.push_str(id);
    }
    MessageIdKey(key)
}

/// Appends `n:` and the hex digits as lower case without leading zeros ("0" for zero);
/// false, appending nothing, if they are not hex.
fn push_hex_key(out: &mut String, digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let trimmed = digits.trim_start_matches('0');
    out.push_str("n:");
    if trimmed.is_empty() {
        out.push('0');
    } else {
        out.extend(trimmed.chars().map(|c| c.to_ascii_lowercase()));
    }
    true
}

/// Appends `n:` and a decimal number of any length as lower-case hex without leading zeros;
/// false, appending nothing, if it is not decimal. Ids are at most 64 characters, so the
/// schoolbook conversion is cheap.
fn push_decimal_as_hex(out: &mut String, digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Little-endian base-2^32 limbs.
    let mut limbs: Vec<u32> = vec![0];
    for b in digits.bytes() {
        let mut carry = u64::from(b - b'0');
        for limb in &mut limbs {
            let v = u64::from(*limb) * 10 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    out.push_str("n:");
    let mut started = false;
    for limb in limbs.iter().rev() {
        for shift in (0..8).rev() {
            let digit = (limb >> (shift * 4)) & 0xf;
            if started || digit != 0 {
                started = true;
                out.push(char::from(b"0123456789abcdef"[digit as usize]));
            }
        }
    }
    if !started {
        out.push('0');
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_decimal_forms_of_one_number_share_a_key() {
        let n = IdNormalizer {
            submit_resp: IdFormat::Hex,
            receipt: IdFormat::Decimal,
        };
        assert_eq!(n.submit_resp_key("1A2B3C4D"), n.receipt_key("0439041101"));
        assert_eq!(n.submit_resp_key("1a2b3c4d"), n.receipt_key("439041101"));
        assert_eq!(n.submit_resp_key("001A2B3C4D").as_str(), "n:1a2b3c4d");
    }

    #[test]
    fn decimal_conversion_handles_ids_longer_than_a_machine_word() {
        let big = "340282366920938463463374607431768211456"; // 2^128
        assert_eq!(
            normalize_message_id(big, IdFormat::Decimal),
            normalize_message_id("100000000000000000000000000000000", IdFormat::Hex)
        );
        assert_eq!(normalize_message_id("0", IdFormat::Decimal).as_str(), "n:0");
        assert_eq!(normalize_message_id("000", IdFormat::Hex).as_str(), "n:0");
        assert_eq!(
            normalize_message_id("18446744073709551615", IdFormat::Decimal).as_str(),
            "n:ffffffffffffffff"
        );
    }

    #[test]
    fn opaque_ids_compare_exactly() {
        let a = normalize_message_id("AbC-12", IdFormat::Opaque);
        assert_eq!(a, normalize_message_id(" AbC-12\0", IdFormat::Opaque));
        assert_ne!(a, normalize_message_id("abc-12", IdFormat::Opaque));
        assert_ne!(
            normalize_message_id("1a", IdFormat::Opaque),
            normalize_message_id("1a", IdFormat::Hex)
        );
    }

    #[test]
    fn an_id_not_in_the_configured_base_falls_back_to_opaque() {
        assert_eq!(
            normalize_message_id("12G4", IdFormat::Hex).as_str(),
            "s:12G4"
        );
        assert_eq!(
            normalize_message_id("1A", IdFormat::Decimal).as_str(),
            "s:1A"
        );
        assert_eq!(normalize_message_id("", IdFormat::Decimal).as_str(), "s:");
        assert_eq!(normalize_message_id("0x1F", IdFormat::Hex).as_str(), "n:1f");
    }
}

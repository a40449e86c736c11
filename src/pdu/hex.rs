//! Hex text for operators and tests: `"00 00 00 10"`, `"0000_0010"` and `"00000010"` all read.

/// Lower-case hex without separators.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0F)] as char);
    }
    out
}

/// Why a hex string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// A character that is not a hex digit nor a separator (space, `_`, `:`, `-`).
    #[error("'{ch}' at position {pos} is not a hex digit")]
    BadDigit {
        /// The character.
        ch: char,
        /// Its index in the input, in characters.
        pos: usize,
    },
    /// An odd number of hex digits.
    #[error("odd number of hex digits")]
    OddLength,
}

/// Reads hex digits, ignoring whitespace and `_ : -` separators and an optional `0x` prefix.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (pos, ch) in text.chars().enumerate() {
        if ch.is_whitespace() || matches!(ch, '_' | ':' | '-') {
            continue;
        }
        let nibble = ch.to_digit(16).ok_or(HexError::BadDigit { ch, pos })? as u8;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        return Err(HexError::OddLength);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spaced_and_prefixed_hex() {
        assert_eq!(decode("0x00 0A ff").unwrap(), vec![0, 10, 255]);
        assert_eq!(decode("de:ad_be-ef").unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(encode(&[0, 10, 255]), "000aff");
    }

    #[test]
    fn rejects_bad_digits_and_odd_length() {
        assert_eq!(decode("0g"), Err(HexError::BadDigit { ch: 'g', pos: 1 }));
        assert_eq!(decode("abc"), Err(HexError::OddLength));
    }
}

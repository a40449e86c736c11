//! The GSM 03.38 (3GPP TS 23.038 §6.2.1) default alphabet, its extension table, and septet
//! packing (TS 23.038 §6.1.2.1.1, TS 23.040 §9.2.3.24).
//!
//! Over SMPP the usual form is *unpacked*: one septet per octet (0x00-0x7F). Packing is only
//! for carriers that ask for it.

/// The escape septet that announces a character of the extension table (TS 23.038 §6.2.1.1).
pub const ESCAPE: u8 = 0x1B;

/// The default alphabet, indexed by septet. Index 0x1B is the escape, never produced by a
/// lookup; the entry is a placeholder.
const BASE: [char; 128] = [
    // 0x00
    '@', '\u{A3}', '$', '\u{A5}', '\u{E8}', '\u{E9}', '\u{F9}', '\u{EC}', '\u{F2}', '\u{C7}', '\n',
    '\u{D8}', '\u{F8}', '\r', '\u{C5}', '\u{E5}', // 0x10
    '\u{394}', '_', '\u{3A6}', '\u{393}', '\u{39B}', '\u{3A9}', '\u{3A0}', '\u{3A8}', '\u{3A3}',
    '\u{398}', '\u{39E}', '\u{1B}', '\u{C6}', '\u{E6}', '\u{DF}', '\u{C9}', // 0x20
    ' ', '!', '"', '#', '\u{A4}', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    // 0x30
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    // 0x40
    '\u{A1}', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    // 0x50
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', '\u{C4}', '\u{D6}', '\u{D1}', '\u{DC}',
    '\u{A7}', // 0x60
    '\u{BF}', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    // 0x70
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '\u{E4}', '\u{F6}', '\u{F1}', '\u{FC}',
    '\u{E0}',
];

/// The extension table (TS 23.038 §6.2.1.1): code after the escape, and its character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '\u{20AC}'), // euro sign
];

/// Lookup value meaning "not in the GSM alphabet".
const NONE: u16 = 0xFFFF;
/// Lookup flag meaning "extension table: escape, then the low byte".
const EXT_FLAG: u16 = 0x0100;

/// ASCII to GSM, built at compile time from the two tables above so the tables stay the one
/// source of truth.
const ASCII_TO_GSM: [u16; 128] = {
    let mut table = [NONE; 128];
    let mut code = 0;
    while code < 128 {
        let c = BASE[code] as u32;
        if code != ESCAPE as usize && c < 128 {
            table[c as usize] = code as u16;
        }
        code += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        let (code, c) = EXTENSION[i];
        let c = c as u32;
        if c < 128 {
            table[c as usize] = EXT_FLAG | code as u16;
        }
        i += 1;
    }
    table
};

/// How one character is written in GSM 7-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GsmChar {
    /// A default-alphabet character: one septet.
    Base(u8),
    /// An extension-table character: the escape 0x1B, then this code (two septets).
    Extended(u8),
}

impl GsmChar {
    /// The number of septets the character occupies (1 or 2).
    pub const fn septets(self) -> usize {
        match self {
            GsmChar::Base(_) => 1,
            GsmChar::Extended(_) => 2,
        }
    }
}

/// Looks a character up in the default alphabet and the extension table.
///
/// Both `Ç` (U+00C7) and `ç` (U+00E7) map to 0x09: TS 23.038 puts capital Ç there, while
/// Unicode's GSM0338.TXT says small ç, and handsets differ, so accept either on the way out.
#[inline(always)]
pub fn lookup(c: char) -> Option<GsmChar> {
    let cp = c as u32;
    if cp < 128 {
        match ASCII_TO_GSM[cp as usize] {
            NONE => None,
            v if v & EXT_FLAG != 0 => Some(GsmChar::Extended(v as u8)),
            v => Some(GsmChar::Base(v as u8)),
        }
    } else {
        lookup_non_ascii(c)
    }
}

/// The non-ASCII part of [`lookup`], kept out of line so the ASCII path inlines.
#[inline(never)]
fn lookup_non_ascii(c: char) -> Option<GsmChar> {
    let base = match c {
        '\u{A3}' => 0x01,
        '\u{A5}' => 0x03,
        '\u{E8}' => 0x04,
        '\u{E9}' => 0x05,
        '\u{F9}' => 0x06,
        '\u{EC}' => 0x07,
        '\u{F2}' => 0x08,
        '\u{C7}' | '\u{E7}' => 0x09,
        '\u{D8}' => 0x0B,
        '\u{F8}' => 0x0C,
        '\u{C5}' => 0x0E,
        '\u{E5}' => 0x0F,
        '\u{394}' => 0x10,
        '\u{3A6}' => 0x12,
        '\u{393}' => 0x13,
        '\u{39B}' => 0x14,
        '\u{3A9}' => 0x15,
        '\u{3A0}' => 0x16,
        '\u{3A8}' => 0x17,
        '\u{3A3}' => 0x18,
        '\u{398}' => 0x19,
        '\u{39E}' => 0x1A,
        '\u{C6}' => 0x1C,
        '\u{E6}' => 0x1D,
        '\u{DF}' => 0x1E,
        '\u{C9}' => 0x1F,
        '\u{A4}' => 0x24,
        '\u{A1}' => 0x40,
        '\u{C4}' => 0x5B,
        '\u{D6}' => 0x5C,
        '\u{D1}' => 0x5D,
        '\u{DC}' => 0x5E,
        '\u{A7}' => 0x5F,
        '\u{BF}' => 0x60,
        '\u{E4}' => 0x7B,
        '\u{F6}' => 0x7C,
        '\u{F1}' => 0x7D,
        '\u{FC}' => 0x7E,
        '\u{E0}' => 0x7F,
        '\u{20AC}' => return Some(GsmChar::Extended(0x65)),
        _ => return None,
    };
    Some(GsmChar::Base(base))
}

/// Whether the character can be written in GSM 7-bit at all.
#[inline]
pub fn is_gsm(c: char) -> bool {
    lookup(c).is_some()
}

/// The number of septets the text needs, or `None` if some character is not in the alphabet.
pub fn septet_count(text: &str) -> Option<usize> {
    text.chars()
        .try_fold(0usize, |n, c| Some(n + lookup(c)?.septets()))
}

/// Writes the text as unpacked septets (one per octet). The caller has checked that every
/// character is representable; one that is not is written as `?` so encoding never fails.
pub fn encode_unpacked_into(text: &str, out: &mut Vec<u8>) {
    // Every character takes at most two septets and at least one octet of UTF-8, so twice the
    // UTF-8 length is enough. Writing through a slice keeps the length in a register instead
    // of updating the Vec per octet.
    let start = out.len();
    out.resize(start + 2 * text.len(), 0);
    let buf = &mut out[start..];
    let mut n = 0;
    for (b, c) in Chars::new(text) {
        let code = if b < 0x80 {
            // Most text is ASCII: one table load, no UTF-8 decoding.
            ASCII_TO_GSM[usize::from(b)]
        } else {
            match lookup(c) {
                Some(GsmChar::Base(s)) => u16::from(s),
                Some(GsmChar::Extended(s)) => EXT_FLAG | u16::from(s),
                None => NONE,
            }
        };
        match code {
            NONE => {
                buf[n] = b'?';
                n += 1;
            }
            code if code & EXT_FLAG != 0 => {
                buf[n] = ESCAPE;
                buf[n + 1] = code as u8;
                n += 2;
            }
            code => {
                buf[n] = code as u8;
                n += 1;
            }
        }
    }
    out.truncate(start + n);
}

/// The septets of an ASCII octet: 1, 2 (extension table) or 0 (not in the alphabet).
#[inline(always)]
pub(crate) fn ascii_septets(b: u8) -> usize {
    match ASCII_TO_GSM[usize::from(b & 0x7F)] {
        NONE => 0,
        code if code & EXT_FLAG != 0 => 2,
        _ => 1,
    }
}

/// Iterates a string's characters with the first octet of each, decoding UTF-8 only for
/// non-ASCII characters. Yields `(first octet, char)`.
pub(crate) struct Chars<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Chars<'a> {
    /// Starts at the beginning of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Chars { text, at: 0 }
    }

    /// The byte offset of the next character.
    #[inline(always)]
    pub(crate) fn offset(&self) -> usize {
        self.at
    }
}

impl Iterator for Chars<'_> {
    type Item = (u8, char);

    #[inline(always)]
    fn next(&mut self) -> Option<(u8, char)> {
        let b = *self.text.as_bytes().get(self.at)?;
        if b < 0x80 {
            self.at += 1;
            return Some((b, char::from(b)));
        }
        // `at` is always on a char boundary: it only advances by whole characters.
        let c = self.text.get(self.at..)?.chars().next()?;
        self.at += c.len_utf8();
        Some((b, c))
    }
}

/// The text as unpacked septets, or `None` if some character is not in the alphabet.
pub fn encode_unpacked(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(septet_count(text)?);
    encode_unpacked_into(text, &mut out);
    Some(out)
}

/// Packs the text's septets straight into `out`, LSB first, after `fill_bits` zero bits.
/// Characters outside the alphabet are written as `?`, as in [`encode_unpacked_into`].
pub fn encode_packed_into(text: &str, fill_bits: u8, out: &mut Vec<u8>) {
    let mut packer = Packer::new(fill_bits);
    for c in text.chars() {
        match lookup(c) {
            Some(GsmChar::Base(s)) => packer.push(s, out),
            Some(GsmChar::Extended(s)) => {
                packer.push(ESCAPE, out);
                packer.push(s, out);
            }
            None => packer.push(b'?', out),
        }
    }
    packer.finish(out);
}

/// Decodes unpacked septets (one per octet).
///
/// Never fails: an octet above 0x7F becomes U+FFFD. After an escape, a code that is not in
/// the extension table shows as the default-alphabet character of that code, and escape-escape
/// (reserved for a further extension table) as a space, as TS 23.038 §6.2.1.1 tells a receiver
/// to do. A lone escape at the very end shows as a space too.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    decode_into(septets, &mut out);
    out
}

/// As [`decode`], appending to `out`.
pub fn decode_into(septets: &[u8], out: &mut String) {
    let mut iter = septets.iter().copied();
    while let Some(s) = iter.next() {
        if s == ESCAPE {
            match iter.next() {
                None | Some(ESCAPE) => out.push(' '),
                Some(code) => out.push(decode_extended(code)),
            }
        } else {
            out.push(decode_base(s));
        }
    }
}

/// One default-alphabet septet as a character (U+FFFD above 0x7F, space for a stray escape).
#[inline]
fn decode_base(s: u8) -> char {
    match s {
        ESCAPE => ' ',
        0..=0x7F => BASE[usize::from(s)],
        _ => char::REPLACEMENT_CHARACTER,
    }
}

/// The character for `code` after an escape, falling back to the default alphabet.
fn decode_extended(code: u8) -> char {
    EXTENSION
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| decode_base(code), |(_, ch)| *ch)
}

/// The zero bits inserted after a UDH of `udh_octets` octets (UDHL included) so that packed
/// text starts on a septet boundary (TS 23.040 §9.2.3.24): 6 octets need 1, 7 need 0.
pub const fn fill_bits(udh_octets: usize) -> u8 {
    ((7 - (udh_octets * 8) % 7) % 7) as u8
}

/// The septets a UDH of `udh_octets` octets takes out of the 160 (its bits plus fill, in
/// septets): 6 octets take 7, 7 take 8.
pub const fn udh_septets(udh_octets: usize) -> usize {
    (udh_octets * 8).div_ceil(7)
}

/// Packs septets LSB first after `fill_bits` zero bits (TS 23.038 §6.1.2.1.1). Spare bits in
/// the last octet are zero.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity((usize::from(fill_bits) + septets.len() * 7).div_ceil(8));
    pack_into(septets, fill_bits, &mut out);
    out
}

/// As [`pack`], writing into `out`.
pub fn pack_into(septets: &[u8], fill_bits: u8, out: &mut Vec<u8>) {
    let mut packer = Packer::new(fill_bits);
    for &s in septets {
        packer.push(s, out);
    }
    packer.finish(out);
}

/// A little-endian bit accumulator for septet packing.
struct Packer {
    acc: u32,
    bits: u32,
    any: bool,
}

impl Packer {
    fn new(fill_bits: u8) -> Self {
        // Fill bits are zeros in the low end of the first octet after the UDH.
        Packer {
            acc: 0,
            bits: u32::from(fill_bits % 8),
            any: false,
        }
    }

    #[inline]
    fn push(&mut self, septet: u8, out: &mut Vec<u8>) {
        self.any = true;
        // Invariant: bits < 8 before the push, so at most 14 bits are held.
        self.acc |= u32::from(septet & 0x7F) << self.bits;
        self.bits += 7;
        if self.bits >= 8 {
            out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        if self.any && self.bits > 0 {
            out.push(self.acc as u8);
        }
    }
}

/// Unpacks exactly `count` septets that start after `fill_bits` bits. Septets that would run
/// past the end of `octets` are not produced.
pub fn unpack_exact(octets: &[u8], fill_bits: u8, count: usize) -> Vec<u8> {
    let available = (octets.len() * 8).saturating_sub(usize::from(fill_bits)) / 7;
    let count = count.min(available);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = usize::from(fill_bits) + 7 * i;
        let lo = octets.get(bit / 8).copied().unwrap_or(0);
        let hi = octets.get(bit / 8 + 1).copied().unwrap_or(0);
        let window = u16::from(lo) | (u16::from(hi) << 8);
        out.push(((window >> (bit % 8)) & 0x7F) as u8);
    }
    out
}

/// Unpacks packed septets when only the octet length is known, as over SMPP (which has no
/// TP-UDL septet count).
///
/// If the septets end exactly on the last bit and the last one is zero, it is taken to be the
/// seven zero spare bits that packing leaves when the septet count is 8n-1, not an `@`; the
/// count is ambiguous there and a padding `@` is far more common than a real final one.
pub fn unpack(octets: &[u8], fill_bits: u8) -> Vec<u8> {
    let bits = (octets.len() * 8).saturating_sub(usize::from(fill_bits));
    let mut septets = unpack_exact(octets, fill_bits, bits / 7);
    if bits % 7 == 0 && septets.last() == Some(&0) {
        septets.pop();
    }
    septets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::pdu::hex::decode(s).unwrap()
    }

    #[test]
    fn every_default_alphabet_character_round_trips() {
        for code in 0u8..128 {
            if code == ESCAPE {
                continue;
            }
            let c = BASE[usize::from(code)];
            assert_eq!(lookup(c), Some(GsmChar::Base(code)), "{c:?}");
            let s = c.to_string();
            assert_eq!(encode_unpacked(&s).unwrap(), vec![code]);
            assert_eq!(decode(&[code]), s);
        }
    }

    #[test]
    fn every_extension_character_round_trips_as_two_septets() {
        for (code, c) in EXTENSION {
            assert_eq!(lookup(c), Some(GsmChar::Extended(code)));
            let s = c.to_string();
            assert_eq!(encode_unpacked(&s).unwrap(), vec![ESCAPE, code]);
            assert_eq!(septet_count(&s), Some(2));
            assert_eq!(decode(&[ESCAPE, code]), s);
        }
    }

    #[test]
    fn table_matches_the_reference_code_points() {
        // A few cells of reference §7.1 that are easy to get wrong.
        assert_eq!(lookup('$'), Some(GsmChar::Base(0x02)));
        assert_eq!(lookup('@'), Some(GsmChar::Base(0x00)));
        assert_eq!(lookup('\u{A4}'), Some(GsmChar::Base(0x24)));
        assert_eq!(lookup('_'), Some(GsmChar::Base(0x11)));
        assert_eq!(lookup('\u{3A9}'), Some(GsmChar::Base(0x15)));
        assert_eq!(lookup('\u{2126}'), None, "ohm sign is not omega");
        assert_eq!(lookup('`'), None);
        assert_eq!(lookup('\u{E7}'), Some(GsmChar::Base(0x09)));
        assert_eq!(lookup('\u{C7}'), Some(GsmChar::Base(0x09)));
        assert_eq!(decode(&[0x09]), "\u{C7}");
    }

    #[test]
    fn unknown_escape_code_falls_back_to_the_default_alphabet() {
        assert_eq!(decode(&[ESCAPE, 0x41]), "A");
        assert_eq!(decode(&[ESCAPE, ESCAPE]), " ");
        assert_eq!(decode(b"ab\x1b"), "ab ");
        assert_eq!(decode(&[0x80, 0xFF]), "\u{FFFD}\u{FFFD}");
        assert_eq!(decode(&[ESCAPE, 0x80]), "\u{FFFD}");
    }

    #[test]
    fn fill_bits_and_udh_cost_match_the_segment_arithmetic() {
        assert_eq!(fill_bits(6), 1);
        assert_eq!(fill_bits(7), 0);
        assert_eq!(fill_bits(0), 0);
        assert_eq!(udh_septets(6), 7);
        assert_eq!(udh_septets(7), 8);
    }

    fn packs(text: &str, fill: u8, septets: &str, packed: &str) {
        let s = encode_unpacked(text).unwrap();
        assert_eq!(s, hex(septets), "septets of {text:?}");
        assert_eq!(pack(&s, fill), hex(packed), "packing {text:?} fill {fill}");
        let mut direct = Vec::new();
        encode_packed_into(text, fill, &mut direct);
        assert_eq!(direct, hex(packed));
        assert_eq!(unpack_exact(&hex(packed), fill, s.len()), s);
        assert_eq!(decode(&unpack_exact(&hex(packed), fill, s.len())), text);
    }

    #[test]
    fn packs_hello() {
        packs("Hello", 0, "48 65 6C 6C 6F", "C8 32 9B FD 06");
    }

    #[test]
    fn packs_hellohello() {
        packs(
            "hellohello",
            0,
            "68 65 6C 6C 6F 68 65 6C 6C 6F",
            "E8 32 9B FD 46 97 D9 EC 37",
        );
    }

    #[test]
    fn packs_abcdefg_without_fill() {
        packs("ABCDEFG", 0, "41 42 43 44 45 46 47", "41 E1 90 58 34 1E 01");
    }

    #[test]
    fn packs_abcdefg_after_one_fill_bit() {
        packs("ABCDEFG", 1, "41 42 43 44 45 46 47", "82 C2 21 B1 68 3C 02");
    }

    #[test]
    fn packs_eight_digits_into_seven_octets() {
        packs(
            "12345678",
            0,
            "31 32 33 34 35 36 37 38",
            "31 D9 8C 56 B3 DD 70",
        );
    }

    #[test]
    fn packs_escape_pairs() {
        packs("[\u{20AC}]", 0, "1B 3C 1B 65 1B 3E", "1B DE A6 BC F1 01");
    }

    #[test]
    fn packs_after_a_concatenation_udh() {
        // Reference §8: UDH 05 00 03 03 03 03, then "QRSTUVWXYZ" after one fill bit.
        packs(
            "QRSTUVWXYZ",
            fill_bits(6),
            "51 52 53 54 55 56 57 58 59 5A",
            "A2 D2 29 B5 6A BD 62 B3 5A",
        );
        // Reference §8: UDH 05 00 03 42 02 02 + "BBBBBBB".
        packs(
            "BBBBBBB",
            fill_bits(6),
            "42 42 42 42 42 42 42",
            "84 42 A1 50 28 14 02",
        );
    }

    #[test]
    fn unpack_without_count_drops_seven_bit_zero_padding() {
        // 7 septets leave 7 zero spare bits; without a count they look like an 8th septet '@'.
        assert_eq!(unpack(&hex("41 E1 90 58 34 1E 01"), 0), b"ABCDEFG");
        // 8 septets fill 7 octets exactly.
        assert_eq!(unpack(&hex("31 D9 8C 56 B3 DD 70"), 0), b"12345678");
        assert_eq!(unpack(&hex("C8 32 9B FD 06"), 0), b"Hello");
        assert_eq!(unpack(&hex("82 C2 21 B1 68 3C 02"), 1), b"ABCDEFG");
        assert_eq!(unpack(&[], 1), b"");
    }

    #[test]
    fn septet_count_counts_escapes_twice() {
        assert_eq!(septet_count("a{b}"), Some(6));
        assert_eq!(septet_count("\u{20AC}"), Some(2));
        assert_eq!(septet_count("hi \u{1F600}"), None);
        assert_eq!(septet_count(""), Some(0));
    }
}

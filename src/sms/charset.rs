//! Latin-1, ASCII (IA5) and UCS2 (as UTF-16BE), and decoding a `short_message` by its
//! `data_coding` (SMPP 3.4 §5.2.19).
//!
//! Decoding never fails: an octet the character set cannot express, a truncated UCS2 code unit
//! or an unpaired surrogate becomes U+FFFD.

use super::gsm;
use super::plan::{CarrierTextOptions, Encoding};
use super::udh;

/// Whether the character has a Latin-1 (ISO-8859-1) octet.
#[inline]
pub fn is_latin1(c: char) -> bool {
    (c as u32) < 0x100
}

/// Writes the text as Latin-1; a character outside Latin-1 is written as `?` so encoding
/// never fails (the planner only picks Latin-1 for text that fits).
pub fn encode_latin1_into(text: &str, out: &mut Vec<u8>) {
    out.extend(
        text.chars()
            .map(|c| if is_latin1(c) { c as u8 } else { b'?' }),
    );
}

/// Decodes Latin-1: every octet is the code point of the same value.
pub fn decode_latin1(octets: &[u8]) -> String {
    octets.iter().map(|&b| char::from(b)).collect()
}

/// Writes the text as ASCII (IA5, CCITT T.50); a character outside ASCII is written as `?`.
pub fn encode_ascii_into(text: &str, out: &mut Vec<u8>) {
    out.extend(
        text.chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' }),
    );
}

/// Decodes ASCII; an octet above 0x7F becomes U+FFFD.
pub fn decode_ascii(octets: &[u8]) -> String {
    octets
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

/// Writes the text as UTF-16 big-endian. Characters above U+FFFF become surrogate pairs: UCS2
/// proper cannot express them, but handsets and SMSCs treat data_coding 8 as UTF-16BE
/// (reference §7.5).
pub fn encode_ucs2_into(text: &str, out: &mut Vec<u8>) {
    // A character of n UTF-8 octets is one UTF-16 unit (two octets) when n < 4 and two units
    // when n = 4, so twice the UTF-8 length always suffices.
    let start = out.len();
    out.resize(start + 2 * text.len(), 0);
    let mut n = start;
    for unit in text.encode_utf16() {
        out[n..n + 2].copy_from_slice(&unit.to_be_bytes());
        n += 2;
    }
    out.truncate(n);
}

/// The text as UTF-16BE octets.
pub fn encode_ucs2(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    encode_ucs2_into(text, &mut out);
    out
}

/// Decodes UTF-16BE. An unpaired surrogate, or a final odd octet, becomes U+FFFD.
pub fn decode_ucs2(octets: &[u8]) -> String {
    let units = octets
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut out: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if octets.len() % 2 == 1 {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}

/// Decodes user data (no UDH) in the given encoding. For GSM, `packed` says whether the
/// carrier packs septets, and `fill_bits` how many bits precede the first septet.
///
/// Binary data and character sets this module does not implement decode as ASCII where they
/// can, U+FFFD elsewhere.
pub fn decode_user_data(
    encoding: Option<Encoding>,
    user_data: &[u8],
    packed: bool,
    fill_bits: u8,
) -> String {
    match encoding {
        Some(Encoding::Gsm7) if packed => gsm::decode(&gsm::unpack(user_data, fill_bits)),
        Some(Encoding::Gsm7) => gsm::decode(user_data),
        Some(Encoding::Latin1) => decode_latin1(user_data),
        Some(Encoding::Ucs2) => decode_ucs2(user_data),
        Some(Encoding::Ascii | Encoding::Binary) | None => decode_ascii(user_data),
    }
}

/// Decodes the text of one `short_message` (or `message_payload`) given its `data_coding`,
/// whether UDHI (esm_class 0x40) was set, and the carrier's options (the meaning of
/// data_coding 0 and whether GSM is packed).
///
/// With UDHI set the header is skipped, and for packed GSM the fill bits after it are too.
/// A header that does not parse is treated as text, so the caller always gets something to
/// show. Never fails.
pub fn decode_text(
    data_coding: u8,
    udhi: bool,
    short_message: &[u8],
    options: &CarrierTextOptions,
) -> String {
    let (user_data, fill) = if udhi {
        match udh::parse_udh(short_message) {
            Ok((_, rest)) => {
                let header_len = short_message.len() - rest.len();
                (rest, gsm::fill_bits(header_len))
            }
            Err(_) => (short_message, 0),
        }
    } else {
        (short_message, 0)
    };
    let encoding = Encoding::from_data_coding(data_coding, options);
    decode_user_data(encoding, user_data, options.packed, fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::pdu::hex::decode(s).unwrap()
    }

    #[test]
    fn ucs2_encodes_ascii_as_two_octets() {
        assert_eq!(encode_ucs2("Hi"), hex("00 48 00 69"));
    }

    #[test]
    fn ucs2_encodes_euro_sign() {
        assert_eq!(encode_ucs2("\u{20AC}"), hex("20 AC"));
    }

    #[test]
    fn ucs2_encodes_cyrillic() {
        assert_eq!(
            encode_ucs2("\u{41F}\u{440}\u{438}\u{432}\u{435}\u{442}"),
            hex("04 1F 04 40 04 38 04 32 04 35 04 42")
        );
    }

    #[test]
    fn ucs2_encodes_emoji_as_surrogate_pair() {
        assert_eq!(encode_ucs2("\u{1F600}"), hex("D8 3D DE 00"));
        assert_eq!(decode_ucs2(&hex("D8 3D DE 00")), "\u{1F600}");
    }

    #[test]
    fn ucs2_vectors_decode_back() {
        for text in [
            "Hi",
            "\u{20AC}",
            "\u{41F}\u{440}\u{438}\u{432}\u{435}\u{442}",
        ] {
            assert_eq!(decode_ucs2(&encode_ucs2(text)), text);
        }
    }

    #[test]
    fn unpaired_surrogates_and_odd_octets_become_replacement_characters() {
        assert_eq!(decode_ucs2(&hex("D8 3D 00 41")), "\u{FFFD}A");
        assert_eq!(decode_ucs2(&hex("DE 00")), "\u{FFFD}");
        assert_eq!(decode_ucs2(&hex("00 41 00")), "A\u{FFFD}");
        assert_eq!(decode_ucs2(&hex("00 41 D8 3D")), "A\u{FFFD}");
    }

    #[test]
    fn latin1_and_ascii_decode_every_octet() {
        let all: Vec<u8> = (0..=255).collect();
        let latin1 = decode_latin1(&all);
        assert_eq!(latin1.chars().count(), 256);
        assert!(latin1.chars().enumerate().all(|(i, c)| c as usize == i));
        let ascii = decode_ascii(&all);
        assert_eq!(ascii.chars().filter(|&c| c == '\u{FFFD}').count(), 128);
        let mut out = Vec::new();
        encode_latin1_into("caf\u{E9} \u{20AC}", &mut out);
        assert_eq!(out, b"caf\xE9 ?");
    }

    #[test]
    fn decode_text_skips_the_udh_and_its_fill_bits() {
        let options = CarrierTextOptions::default();
        let mut sm = hex("05 00 03 42 02 01");
        sm.extend_from_slice(b"Hello");
        assert_eq!(decode_text(0, true, &sm, &options), "Hello");
        let packed = CarrierTextOptions {
            packed: true,
            ..CarrierTextOptions::default()
        };
        let sm = hex("05 00 03 42 02 02 84 42 A1 50 28 14 02");
        assert_eq!(decode_text(0, true, &sm, &packed), "BBBBBBB");
        assert_eq!(decode_text(8, false, &hex("00 48 00 69"), &options), "Hi");
    }

    #[test]
    fn decode_text_treats_a_broken_udh_as_text() {
        let options = CarrierTextOptions::default();
        assert_eq!(decode_text(0, true, &[0x09, b'A'], &options), "\u{C7}A");
    }
}

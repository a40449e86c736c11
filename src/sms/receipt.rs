//! Delivery receipts: the text of SMPP 3.4 Appendix B, read tolerantly, and merged with the
//! receipt TLVs, which win when present.
//!
//! The typical text is
//! `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
//! err:E Text:...`, but the format is "SMSC vendor specific" and carriers vary it: fields are
//! found by label, in any order, with labels in any case; missing fields are `None`, unknown
//! ones are skipped, dates may have 10, 12 or 14 digits, and `stat` may be a value outside
//! Table B-2.

use std::fmt;

use crate::pdu::MessageState;

/// The `stat` field of a receipt (SMPP 3.4 Table B-2, plus ENROUTE, which is widely sent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReceiptStat {
    /// `ENROUTE`.
    Enroute,
    /// `DELIVRD`.
    Delivered,
    /// `EXPIRED`.
    Expired,
    /// `DELETED`.
    Deleted,
    /// `UNDELIV`.
    Undeliverable,
    /// `ACCEPTD`.
    Accepted,
    /// `UNKNOWN`.
    Unknown,
    /// `REJECTD`.
    Rejected,
    /// Anything else (`ACKED`, `BUFFRED`, `SUBMITTED`, `FAILED`...), upper-cased.
    Other(String),
}

impl ReceiptStat {
    /// Reads a stat value, case-insensitively; the unabbreviated state names are accepted too.
    pub fn parse(value: &str) -> ReceiptStat {
        let upper = value.to_ascii_uppercase();
        match upper.as_str() {
            "ENROUTE" => ReceiptStat::Enroute,
            "DELIVRD" | "DELIVERED" => ReceiptStat::Delivered,
            "EXPIRED" => ReceiptStat::Expired,
            "DELETED" => ReceiptStat::Deleted,
            "UNDELIV" | "UNDELIVERABLE" => ReceiptStat::Undeliverable,
            "ACCEPTD" | "ACCEPTED" => ReceiptStat::Accepted,
            "UNKNOWN" => ReceiptStat::Unknown,
            "REJECTD" | "REJECTED" => ReceiptStat::Rejected,
            _ => ReceiptStat::Other(upper),
        }
    }

    /// The message state this stat reports. Of the non-standard values, those that mean
    /// "buffered, still trying" (ACKED, BUFFRED, BUFFERD, SUBMITTED; Kannel reads them so)
    /// map to ENROUTE; the rest have no state.
    pub fn message_state(&self) -> Option<MessageState> {
        Some(match self {
            ReceiptStat::Enroute => MessageState::ENROUTE,
            ReceiptStat::Delivered => MessageState::DELIVERED,
            ReceiptStat::Expired => MessageState::EXPIRED,
            ReceiptStat::Deleted => MessageState::DELETED,
            ReceiptStat::Undeliverable => MessageState::UNDELIVERABLE,
            ReceiptStat::Accepted => MessageState::ACCEPTED,
            ReceiptStat::Unknown => MessageState::UNKNOWN,
            ReceiptStat::Rejected => MessageState::REJECTED,
            ReceiptStat::Other(s) => match s.as_str() {
                "ACKED" | "BUFFRED" | "BUFFERD" | "BUFFERED" | "SUBMITTED" => MessageState::ENROUTE,
                _ => return None,
            },
        })
    }

    /// Whether the stat reports a final state; unrecognised values are not final.
    pub fn is_final(&self) -> bool {
        self.message_state().is_some_and(MessageState::is_final)
    }
}

impl ReceiptStat {
    /// The stat's Appendix B name (`DELIVRD`, `UNDELIV`, ...); `None` for a value of the
    /// carrier's own.
    pub fn standard_name(&self) -> Option<&'static str> {
        Some(match self {
            ReceiptStat::Enroute => "ENROUTE",
            ReceiptStat::Delivered => "DELIVRD",
            ReceiptStat::Expired => "EXPIRED",
            ReceiptStat::Deleted => "DELETED",
            ReceiptStat::Undeliverable => "UNDELIV",
            ReceiptStat::Accepted => "ACCEPTD",
            ReceiptStat::Unknown => "UNKNOWN",
            ReceiptStat::Rejected => "REJECTD",
            ReceiptStat::Other(_) => return None,
        })
    }
}

impl fmt::Display for ReceiptStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.standard_name()) {
            (_, Some(name)) => f.write_str(name),
            (ReceiptStat::Other(s), None) => f.write_str(s),
            (_, None) => Ok(()),
        }
    }
}

/// A receipt date, in the SMSC's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptDate {
    /// Four-digit year; two-digit years pivot at 38 (00-37 are 20xx, 38-99 are 19xx, as
    /// SMPP 3.4 Appendix C suggests).
    pub year: u16,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
    /// 0-60, when the date had seconds (12 or 14 digits).
    pub second: Option<u8>,
}

impl ReceiptDate {
    /// Reads `YYMMDDhhmm`, `YYMMDDhhmmss` or `YYYYMMDDhhmmss`; `None` for anything else or an
    /// impossible value.
    pub fn parse(digits: &str) -> Option<ReceiptDate> {
        let d = digits.as_bytes();
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| (d[i] - b'0') * 10 + (d[i + 1] - b'0');
        let (year, rest) = match d.len() {
            10 | 12 => {
                let yy = u16::from(two(0));
                (if yy < 38 { 2000 + yy } else { 1900 + yy }, 2)
            }
            14 => (u16::from(two(0)) * 100 + u16::from(two(2)), 4),
            _ => return None,
        };
        let date = ReceiptDate {
            year,
            month: two(rest),
            day: two(rest + 2),
            hour: two(rest + 4),
            minute: two(rest + 6),
            second: (d.len() > rest + 8).then(|| two(rest + 8)),
        };
        let valid = (1..=12).contains(&date.month)
            && (1..=31).contains(&date.day)
            && date.hour <= 23
            && date.minute <= 59
            && date.second.is_none_or(|s| s <= 60);
        valid.then_some(date)
    }
}

/// The fields of a receipt text; each is `None` when missing or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Receipt {
    /// `id`: the SMSC message id of the original submission, as written.
    pub id: Option<String>,
    /// `sub`: messages originally submitted.
    pub sub: Option<u32>,
    /// `dlvrd`: messages delivered.
    pub dlvrd: Option<u32>,
    /// `submit date`.
    pub submit_date: Option<ReceiptDate>,
    /// `done date`.
    pub done_date: Option<ReceiptDate>,
    /// `stat`.
    pub stat: Option<ReceiptStat>,
    /// `err`, kept as written (carriers send more than three digits, or hex).
    pub err: Option<String>,
    /// `text`: the start of the original message, to the end of the receipt.
    pub text: Option<String>,
}

impl Receipt {
    /// The message state `stat` reports.
    pub fn message_state(&self) -> Option<MessageState> {
        self.stat.as_ref().and_then(ReceiptStat::message_state)
    }

    /// Whether neither an id nor a stat was found: probably not a receipt at all.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.stat.is_none()
    }
}

/// The receipt fields, by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

impl Field {
    const ALL: [Field; 8] = [
        Field::Id,
        Field::Sub,
        Field::Dlvrd,
        Field::SubmitDate,
        Field::DoneDate,
        Field::Stat,
        Field::Err,
        Field::Text,
    ];

    /// The label's words; two-word labels may be joined by a space, an underscore or nothing.
    const fn words(self) -> &'static [&'static [u8]] {
        match self {
            Field::Id => &[b"id"],
            Field::Sub => &[b"sub"],
            Field::Dlvrd => &[b"dlvrd"],
            Field::SubmitDate => &[b"submit", b"date"],
            Field::DoneDate => &[b"done", b"date"],
            Field::Stat => &[b"stat"],
            Field::Err => &[b"err"],
            Field::Text => &[b"text"],
        }
    }

    /// This field's bit in a set of fields.
    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Whether some label starts with octet `b` (in any case).
    fn may_start(b: u8) -> bool {
        LABEL_START[usize::from(b)]
    }

    /// If `rest` starts with this label and its colon, the offset just after the colon.
    fn matches(self, rest: &[u8]) -> Option<usize> {
        let mut at = 0;
        for (i, word) in self.words().iter().enumerate() {
            if i > 0 && matches!(rest.get(at), Some(b' ' | b'_')) {
                at += 1;
            }
            let candidate = rest.get(at..at + word.len())?;
            if !candidate.eq_ignore_ascii_case(word) {
                return None;
            }
            at += word.len();
        }
        while rest.get(at) == Some(&b' ') {
            at += 1;
        }
        (rest.get(at) == Some(&b':')).then_some(at + 1)
    }
}

/// Octets that may precede a label, and that end a field's value.
fn is_separator(b: u8) -> bool {
    SEPARATOR[usize::from(b)]
}

/// [`is_separator`] for every octet: whitespace, controls, `,`, `;` and `|`.
const SEPARATOR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let o = b as u8;
        table[b] =
            o.is_ascii_whitespace() || o.is_ascii_control() || matches!(o, b',' | b';' | b'|');
        b += 1;
    }
    table
};

/// The octets some label starts with, in either case.
const LABEL_START: [bool; 256] = {
    let mut table = [false; 256];
    let mut f = 0;
    while f < Field::ALL.len() {
        let first = Field::ALL[f].words()[0][0];
        table[first.to_ascii_lowercase() as usize] = true;
        table[first.to_ascii_uppercase() as usize] = true;
        f += 1;
    }
    table
};

/// Reads a receipt text. Never fails: whatever is not found is `None`.
///
/// A label counts where it starts the text or follows a separator (whitespace, `,`, `;`, `|`),
/// and only its first occurrence counts, so a later `id:` inside the message text is text.
/// Each value ends where the next counted label begins; `text` takes everything up to there
/// (usually the end), the other fields their first word.
pub fn parse_receipt(text: &str) -> Receipt {
    let bytes = text.as_bytes();
    // (field, label start, value start), in order of appearance.
    let mut found: Vec<(Field, usize, usize)> = Vec::with_capacity(Field::ALL.len());
    // The fields found so far, a bit each.
    let mut seen = 0u8;
    let mut i = 0;
    // Whether octet i starts the text or follows a separator.
    let mut at_boundary = true;
    while let Some(&b) = bytes.get(i) {
        if at_boundary && Field::may_start(b) {
            let hit = Field::ALL
                .iter()
                .filter(|f| seen & f.bit() == 0)
                .find_map(|f| f.matches(&bytes[i..]).map(|len| (*f, i + len)));
            if let Some((field, value_start)) = hit {
                seen |= field.bit();
                found.push((field, i, value_start));
                // The value follows a colon: not a boundary.
                i = value_start;
                at_boundary = false;
                continue;
            }
        }
        at_boundary = is_separator(b);
        i += 1;
    }

    let mut receipt = Receipt::default();
    for (k, &(field, _, start)) in found.iter().enumerate() {
        let end = found.get(k + 1).map_or(bytes.len(), |&(_, next, _)| next);
        // Both ends sit next to ASCII octets (a colon, a separator), so they are char
        // boundaries; `get` keeps that an assumption rather than a panic.
        let raw = text.get(start..end).unwrap_or_default();
        if field == Field::Text {
            let body = raw.trim_matches(|c: char| c.is_whitespace() || c.is_control());
            receipt.text = (!body.is_empty()).then(|| body.to_owned());
            continue;
        }
        let Some(word) = raw
            .split(|c: char| c.is_ascii() && is_separator(c as u8))
            .find(|w| !w.is_empty())
        else {
            continue;
        };
        match field {
            Field::Id => receipt.id = Some(word.to_owned()),
            Field::Sub => receipt.sub = parse_count(word),
            Field::Dlvrd => receipt.dlvrd = parse_count(word),
            Field::SubmitDate => receipt.submit_date = ReceiptDate::parse(word),
            Field::DoneDate => receipt.done_date = ReceiptDate::parse(word),
            Field::Stat => receipt.stat = Some(ReceiptStat::parse(word)),
            Field::Err => receipt.err = Some(word.to_owned()),
            Field::Text => {}
        }
    }
    receipt
}

/// A zero-padded count.
fn parse_count(word: &str) -> Option<u32> {
    if word.bytes().all(|b| b.is_ascii_digit()) {
        word.parse().ok()
    } else {
        None
    }
}

/// The receipt TLVs of a deliver_sm / data_sm, as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReceiptTlvs<'a> {
    /// `receipted_message_id` (0x001E), a C-Octet String (the NUL may or may not be there).
    pub receipted_message_id: Option<&'a [u8]>,
    /// `message_state` (0x0427).
    pub message_state: Option<u8>,
    /// `network_error_code` (0x0423): network type, then a 2-octet error code.
    pub network_error_code: Option<[u8; 3]>,
}

/// Why a message failed, as the receipt says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReceiptError {
    /// From the `network_error_code` TLV.
    Network {
        /// 1 ANSI-136, 2 IS-95, 3 GSM (5.0 adds more, e.g. 7 SMPP error, 8 MC specific).
        network_type: u8,
        /// The network's error code.
        code: u16,
    },
    /// The `err` field of the text, as written.
    Text(String),
}

/// A receipt with the TLVs and the text merged: each TLV wins over the text when present.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptReport {
    /// The message id: `receipted_message_id`, else the text's `id`.
    pub message_id: Option<String>,
    /// The state: `message_state`, else the text's `stat`.
    pub state: Option<MessageState>,
    /// The error: `network_error_code`, else the text's `err`.
    pub error: Option<ReceiptError>,
    /// The text as parsed.
    pub receipt: Receipt,
}

impl ReceiptReport {
    /// Whether the state is known and final.
    pub fn is_final(&self) -> bool {
        self.state.is_some_and(MessageState::is_final)
    }
}

/// Merges the receipt TLVs with the receipt text (SMPP 3.4 §5.3.2.12, .35, .31): the TLVs win,
/// the text fills in what they lack.
pub fn extract_receipt(tlvs: &ReceiptTlvs<'_>, text: &str) -> ReceiptReport {
    let receipt = parse_receipt(text);
    let tlv_id = tlvs.receipted_message_id.and_then(|raw| {
        let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
        let id = String::from_utf8_lossy(raw);
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_owned())
    });
    let message_id = tlv_id.or_else(|| receipt.id.clone());
    let state = tlvs
        .message_state
        .map(MessageState)
        .or_else(|| receipt.message_state());
    let error = tlvs
        .network_error_code
        .map(|[network_type, hi, lo]| ReceiptError::Network {
            network_type,
            code: u16::from_be_bytes([hi, lo]),
        })
        .or_else(|| receipt.err.clone().map(ReceiptError::Text));
    ReceiptReport {
        message_id,
        state,
        error,
        receipt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_appendix_b_form() {
        let r = parse_receipt(
            "id:1A2B3C4D sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
             stat:DELIVRD err:000 Text:Hello",
        );
        assert_eq!(r.id.as_deref(), Some("1A2B3C4D"));
        assert_eq!((r.sub, r.dlvrd), (Some(1), Some(1)));
        assert_eq!(
            r.submit_date,
            Some(ReceiptDate {
                year: 2024,
                month: 1,
                day: 15,
                hour: 12,
                minute: 30,
                second: None
            })
        );
        assert_eq!(r.stat, Some(ReceiptStat::Delivered));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.text.as_deref(), Some("Hello"));
    }

    #[test]
    fn dates_pivot_two_digit_years_and_reject_impossible_values() {
        assert_eq!(ReceiptDate::parse("9912312359").map(|d| d.year), Some(1999));
        assert_eq!(ReceiptDate::parse("3712312359").map(|d| d.year), Some(2037));
        assert_eq!(
            ReceiptDate::parse("20240115123045").map(|d| (d.year, d.second)),
            Some((2024, Some(45)))
        );
        assert_eq!(ReceiptDate::parse("2413151230"), None);
        assert_eq!(ReceiptDate::parse("24011512"), None);
        assert_eq!(ReceiptDate::parse("24O1151230"), None);
        assert_eq!(ReceiptDate::parse("\u{663}\u{663}"), None);
    }

    #[test]
    fn message_states_map_to_and_from_the_tlv_values() {
        for v in 0..=255u8 {
            assert_eq!(MessageState(v).0, v);
        }
        assert!(MessageState::DELIVERED.is_final());
        assert!(MessageState::ACCEPTED.is_final());
        assert!(!MessageState::ENROUTE.is_final());
        assert!(!MessageState(42).is_final());
    }

    #[test]
    fn tlvs_win_over_the_text() {
        let text = "id:0439041101 stat:UNDELIV err:001 text:x";
        let tlvs = ReceiptTlvs {
            receipted_message_id: Some(b"1A2B3C4D\0"),
            message_state: Some(2),
            network_error_code: Some([3, 0x00, 0x22]),
        };
        let r = extract_receipt(&tlvs, text);
        assert_eq!(r.message_id.as_deref(), Some("1A2B3C4D"));
        assert_eq!(r.state, Some(MessageState::DELIVERED));
        assert_eq!(
            r.error,
            Some(ReceiptError::Network {
                network_type: 3,
                code: 0x22
            })
        );
        assert_eq!(r.receipt.id.as_deref(), Some("0439041101"));
        assert!(r.is_final());
    }

    #[test]
    fn text_fills_in_missing_or_empty_tlvs() {
        let text = "id:77 stat:EXPIRED err:027";
        let tlvs = ReceiptTlvs {
            receipted_message_id: Some(b"\0"),
            ..ReceiptTlvs::default()
        };
        let r = extract_receipt(&tlvs, text);
        assert_eq!(r.message_id.as_deref(), Some("77"));
        assert_eq!(r.state, Some(MessageState::EXPIRED));
        assert_eq!(r.error, Some(ReceiptError::Text("027".into())));
    }

    #[test]
    fn only_tlvs_and_no_text_still_gives_a_report() {
        let tlvs = ReceiptTlvs {
            receipted_message_id: Some(b"abc"),
            message_state: Some(8),
            network_error_code: None,
        };
        let r = extract_receipt(&tlvs, "");
        assert_eq!(r.message_id.as_deref(), Some("abc"));
        assert_eq!(r.state, Some(MessageState::REJECTED));
        assert!(r.receipt.is_empty());
    }
}

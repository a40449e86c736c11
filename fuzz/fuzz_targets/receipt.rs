//! Arbitrary bytes as a delivery receipt: the text parser, the TLV merge and the id normaliser
//! must never panic, and whatever they report must come from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smppd::sms::{IdFormat, ReceiptTlvs, extract_receipt, normalize_message_id, parse_receipt};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let receipt = parse_receipt(&text);
    for field in [&receipt.id, &receipt.err, &receipt.text].into_iter().flatten() {
        assert!(text.contains(field.as_str()), "{field:?} not in the input");
    }

    // The first octets play the TLVs, the rest the text.
    let (head, rest) = data.split_at(data.len().min(6));
    let tlvs = ReceiptTlvs {
        receipted_message_id: head.get(..head.len().min(3)).filter(|id| !id.is_empty()),
        message_state: head.get(3).copied(),
        network_error_code: head.get(3..6).and_then(|c| c.try_into().ok()),
    };
    let report = extract_receipt(&tlvs, &String::from_utf8_lossy(rest));
    if let Some(id) = &report.message_id {
        for format in [IdFormat::Hex, IdFormat::Decimal, IdFormat::Opaque] {
            let key = normalize_message_id(id, format);
            assert_eq!(key, normalize_message_id(key_source(id), format));
        }
    }
});

/// The id with the whitespace and NULs the normaliser ignores.
fn key_source(id: &str) -> &str {
    id.trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

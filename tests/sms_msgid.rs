//! The message-id normaliser: a carrier's submit_sm_resp id and its receipt id map to one key
//! whichever of hex and decimal each side uses, whatever the case and zero padding.

use proptest::prelude::*;
use smppd::sms::{IdFormat, IdNormalizer, normalize_message_id};

const HEX_DEC: IdNormalizer = IdNormalizer {
    submit_resp: IdFormat::Hex,
    receipt: IdFormat::Decimal,
};
const DEC_HEX: IdNormalizer = IdNormalizer {
    submit_resp: IdFormat::Decimal,
    receipt: IdFormat::Hex,
};

#[test]
fn hex_submit_id_matches_decimal_receipt_id() {
    // Reference §8: submit_sm_resp says 1A2B3C4D; a decimal receipt says 0439041101.
    let key = HEX_DEC.submit_resp_key("1A2B3C4D");
    for receipt_id in [
        "0439041101",
        "439041101",
        "000000439041101",
        " 0439041101\0",
    ] {
        assert_eq!(HEX_DEC.receipt_key(receipt_id), key, "{receipt_id:?}");
    }
}

#[test]
fn decimal_submit_id_matches_hex_receipt_id() {
    let key = DEC_HEX.submit_resp_key("0000029095");
    for receipt_id in ["71A7", "71a7", "000071A7", "0x71a7"] {
        assert_eq!(DEC_HEX.receipt_key(receipt_id), key, "{receipt_id:?}");
    }
}

#[test]
fn case_and_zero_padding_do_not_matter_for_hex() {
    let n = IdNormalizer {
        submit_resp: IdFormat::Hex,
        receipt: IdFormat::Hex,
    };
    assert_eq!(n.submit_resp_key("00ABCDEF"), n.receipt_key("abcdef"));
    assert_eq!(n.submit_resp_key("AbCdEf"), n.receipt_key("0000abcdef"));
}

#[test]
fn zero_padding_does_not_matter_for_decimal() {
    let n = IdNormalizer {
        submit_resp: IdFormat::Decimal,
        receipt: IdFormat::Decimal,
    };
    assert_eq!(n.submit_resp_key("29095"), n.receipt_key("0000029095"));
    assert_ne!(n.submit_resp_key("29095"), n.receipt_key("2909"));
}

#[test]
fn opaque_ids_compare_as_exact_strings() {
    let n = IdNormalizer::default();
    assert_eq!(n.submit_resp_key("msg-00A1"), n.receipt_key("msg-00A1"));
    assert_ne!(n.submit_resp_key("msg-00A1"), n.receipt_key("msg-00a1"));
    assert_ne!(n.submit_resp_key("0042"), n.receipt_key("42"));
}

#[test]
fn different_numbers_get_different_keys() {
    assert_ne!(
        HEX_DEC.submit_resp_key("1A2B3C4D"),
        HEX_DEC.receipt_key("439041102")
    );
    assert_ne!(HEX_DEC.submit_resp_key("10"), HEX_DEC.receipt_key("10"));
}

/// `n` in hex, upper or lower case, padded with `pad` zeros.
fn hex_form(n: u128, upper: bool, pad: usize) -> String {
    let digits = if upper {
        format!("{n:X}")
    } else {
        format!("{n:x}")
    };
    format!("{}{digits}", "0".repeat(pad))
}

proptest! {
    #[test]
    fn every_hex_decimal_pair_of_one_number_shares_a_key(
        n in any::<u128>(),
        upper in any::<bool>(),
        hex_pad in 0usize..6,
        dec_pad in 0usize..6,
    ) {
        let hex = hex_form(n, upper, hex_pad);
        let dec = format!("{}{n}", "0".repeat(dec_pad));
        prop_assert_eq!(HEX_DEC.submit_resp_key(&hex), HEX_DEC.receipt_key(&dec));
        prop_assert_eq!(DEC_HEX.submit_resp_key(&dec), DEC_HEX.receipt_key(&hex));
        prop_assert_eq!(
            normalize_message_id(&hex, IdFormat::Hex),
            normalize_message_id(&hex.to_ascii_lowercase(), IdFormat::Hex)
        );
    }

    #[test]
    fn distinct_numbers_never_share_a_key(a in any::<u64>(), b in any::<u64>()) {
        prop_assume!(a != b);
        prop_assert_ne!(
            HEX_DEC.submit_resp_key(&format!("{a:X}")),
            HEX_DEC.receipt_key(&b.to_string())
        );
    }

    #[test]
    fn any_text_normalises_without_panicking(id in ".{0,80}") {
        for format in [IdFormat::Hex, IdFormat::Decimal, IdFormat::Opaque] {
            let _ = normalize_message_id(&id, format);
        }
    }
}

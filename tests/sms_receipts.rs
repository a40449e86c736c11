//! Delivery-receipt texts as carriers send them (SMPP 3.4 Appendix B and the variations in
//! reference §5), each with the fields it must yield.

use smppd::pdu::MessageState;
use smppd::sms::{
    Receipt, ReceiptDate, ReceiptError, ReceiptStat, ReceiptTlvs, extract_receipt, parse_receipt,
};

/// `YYMMDDhhmm[ss]` or `YYYYMMDDhhmmss` as the expected date.
fn date(digits: &str) -> Option<ReceiptDate> {
    let d = ReceiptDate::parse(digits);
    assert!(d.is_some(), "test date {digits} must be valid");
    d
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

struct Case {
    name: &'static str,
    text: &'static str,
    want: Receipt,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "appendix B form with hex id (reference section 8 deliver_sm)",
            text: "id:1A2B3C4D sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                   stat:DELIVRD err:000 Text:Hello",
            want: Receipt {
                id: s("1A2B3C4D"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("Hello"),
            },
        },
        Case {
            name: "ten-digit decimal id and lower-case text: label (jsmpp, cloudhopper)",
            text: "id:0123456789 sub:001 dlvrd:001 submit date:1702281424 done date:1702281425 \
                   stat:DELIVRD err:000 text:Your code is 1234",
            want: Receipt {
                id: s("0123456789"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("1702281424"),
                done_date: date("1702281425"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("Your code is 1234"),
            },
        },
        Case {
            name: "zero-padded decimal id, undelivered, empty text",
            text: "id:0000029095 sub:001 dlvrd:000 submit date:1910101200 done date:1910101205 \
                   stat:UNDELIV err:001 text:",
            want: Receipt {
                id: s("0000029095"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("1910101200"),
                done_date: date("1910101205"),
                stat: Some(ReceiptStat::Undeliverable),
                err: s("001"),
                text: None,
            },
        },
        Case {
            name: "12-digit dates with seconds (node-smpp sample)",
            text: "id:4219184 sub:001 dlvrd:001 submit date:211125034959 \
                   done date:211125035003 stat:DELIVRD err:000 text:Test",
            want: Receipt {
                id: s("4219184"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("211125034959"),
                done_date: date("211125035003"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("Test"),
            },
        },
        Case {
            name: "14-digit dates with a four-digit year",
            text: "id:abc123 sub:001 dlvrd:001 submit date:20240115123000 \
                   done date:20240115123107 stat:DELIVRD err:000 text:hi",
            want: Receipt {
                id: s("abc123"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("20240115123000"),
                done_date: date("20240115123107"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("hi"),
            },
        },
        Case {
            name: "no text field at all",
            text: "id:991 sub:001 dlvrd:000 submit date:2401151230 done date:2401161230 \
                   stat:EXPIRED err:000",
            want: Receipt {
                id: s("991"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("2401151230"),
                done_date: date("2401161230"),
                stat: Some(ReceiptStat::Expired),
                err: s("000"),
                text: None,
            },
        },
        Case {
            name: "fields in another order",
            text: "stat:REJECTD err:0x1B id:A7F3 done date:2401151231 sub:001 \
                   submit date:2401151230 dlvrd:000",
            want: Receipt {
                id: s("A7F3"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Rejected),
                err: s("0x1B"),
                text: None,
            },
        },
        Case {
            name: "vendor extra fields between the standard ones",
            text: "id:55501 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                   stat:DELIVRD err:000 mcc:234 mnc:15 imsi:234150000000001 text:Hi",
            want: Receipt {
                id: s("55501"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("Hi"),
            },
        },
        Case {
            name: "lower-case stat",
            text: "id:1 sub:1 dlvrd:1 submit date:2401151230 done date:2401151231 \
                   stat:delivrd err:0 text:x",
            want: Receipt {
                id: s("1"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("0"),
                text: s("x"),
            },
        },
        Case {
            name: "upper-case labels",
            text: "ID:77 SUB:001 DLVRD:001 SUBMIT DATE:2401151230 DONE DATE:2401151231 \
                   STAT:DELIVRD ERR:000 TEXT:Hello",
            want: Receipt {
                id: s("77"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("Hello"),
            },
        },
        Case {
            name: "ENROUTE intermediate notification",
            text: "id:300 sub:001 dlvrd:000 submit date:2401151230 done date:2401151230 \
                   stat:ENROUTE err:000 text:",
            want: Receipt {
                id: s("300"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("2401151230"),
                done_date: date("2401151230"),
                stat: Some(ReceiptStat::Enroute),
                err: s("000"),
                text: None,
            },
        },
        Case {
            name: "non-standard ACKED",
            text: "id:301 sub:001 dlvrd:000 submit date:2401151230 done date:2401151230 \
                   stat:ACKED err:000",
            want: Receipt {
                id: s("301"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("2401151230"),
                done_date: date("2401151230"),
                stat: Some(ReceiptStat::Other("ACKED".into())),
                err: s("000"),
                text: None,
            },
        },
        Case {
            name: "non-standard BUFFRED, lower case",
            text: "id:302 sub:001 dlvrd:000 submit date:2401151230 done date:2401151230 \
                   stat:buffred err:000",
            want: Receipt {
                id: s("302"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("2401151230"),
                done_date: date("2401151230"),
                stat: Some(ReceiptStat::Other("BUFFRED".into())),
                err: s("000"),
                text: None,
            },
        },
        Case {
            name: "unpadded counts and one-digit err (go example)",
            text: "id:123A456B sub:1 dlvrd:1 submit date:1702281424 done date:1702281424 \
                   stat:DELIVRD err:0 text:",
            want: Receipt {
                id: s("123A456B"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("1702281424"),
                done_date: date("1702281424"),
                stat: Some(ReceiptStat::Delivered),
                err: s("0"),
                text: None,
            },
        },
        Case {
            name: "missing sub and dlvrd",
            text: "id:c0ffee submit date:2401151230 done date:2401151231 stat:DELIVRD err:000",
            want: Receipt {
                id: s("c0ffee"),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                ..Receipt::default()
            },
        },
        Case {
            name: "trailing NULs and garbage after the text",
            text: "id:42 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                   stat:DELIVRD err:000 Text:Hello there ]]]\0\0",
            want: Receipt {
                id: s("42"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("Hello there ]]]"),
            },
        },
        Case {
            name: "space after colons and a long non-numeric err",
            text: "id: 9001 sub: 001 dlvrd: 000 submit date: 2401151230 done date: 2401151231 \
                   stat: UNDELIV err: E-0041 text: Hi",
            want: Receipt {
                id: s("9001"),
                sub: Some(1),
                dlvrd: Some(0),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Undeliverable),
                err: s("E-0041"),
                text: s("Hi"),
            },
        },
        Case {
            name: "underscored date labels",
            text: "id:5 sub:001 dlvrd:001 submit_date:2401151230 done_date:2401151231 \
                   stat:DELIVRD err:000",
            want: Receipt {
                id: s("5"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: None,
            },
        },
        Case {
            name: "labels inside the message text stay text",
            text: "id:8 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                   stat:DELIVRD err:000 text:your id:12 stat:ok",
            want: Receipt {
                id: s("8"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Delivered),
                err: s("000"),
                text: s("your id:12 stat:ok"),
            },
        },
        Case {
            name: "impossible date is dropped, other fields kept",
            text: "id:9 sub:001 dlvrd:001 submit date:2413991230 done date:2401151231 \
                   stat:DELETED err:000",
            want: Receipt {
                id: s("9"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: None,
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Deleted),
                err: s("000"),
                text: None,
            },
        },
        Case {
            name: "not a receipt at all",
            text: "Hello, this is a normal message: nothing to see",
            want: Receipt::default(),
        },
        Case {
            name: "comma-separated fields",
            text: "id:12,sub:001,dlvrd:001,submit date:2401151230,done date:2401151231,\
                   stat:ACCEPTD,err:000",
            want: Receipt {
                id: s("12"),
                sub: Some(1),
                dlvrd: Some(1),
                submit_date: date("2401151230"),
                done_date: date("2401151231"),
                stat: Some(ReceiptStat::Accepted),
                err: s("000"),
                text: None,
            },
        },
    ]
}

#[test]
fn real_world_receipt_texts_yield_their_fields() {
    let cases = cases();
    assert!(cases.len() >= 15);
    for case in cases {
        let got = parse_receipt(case.text);
        assert_eq!(got, case.want, "case: {}", case.name);
    }
}

#[test]
fn stats_map_to_message_states_and_finality() {
    let table = [
        ("DELIVRD", Some(MessageState::DELIVERED), true),
        ("EXPIRED", Some(MessageState::EXPIRED), true),
        ("DELETED", Some(MessageState::DELETED), true),
        ("UNDELIV", Some(MessageState::UNDELIVERABLE), true),
        ("ACCEPTD", Some(MessageState::ACCEPTED), true),
        ("UNKNOWN", Some(MessageState::UNKNOWN), true),
        ("REJECTD", Some(MessageState::REJECTED), true),
        ("ENROUTE", Some(MessageState::ENROUTE), false),
        ("ACKED", Some(MessageState::ENROUTE), false),
        ("BUFFRED", Some(MessageState::ENROUTE), false),
        ("BUFFERD", Some(MessageState::ENROUTE), false),
        ("SUBMITTED", Some(MessageState::ENROUTE), false),
        ("FAILED", None, false),
        ("WHATEVER", None, false),
    ];
    for (stat, state, is_final) in table {
        let parsed = ReceiptStat::parse(stat);
        assert_eq!(parsed.message_state(), state, "{stat}");
        assert_eq!(parsed.is_final(), is_final, "{stat}");
        assert_eq!(parsed.to_string(), stat);
    }
}

#[test]
fn reference_receipt_with_tlvs_merges_to_one_report() {
    // Reference §8 deliver_sm: text plus receipted_message_id and message_state TLVs.
    let text = "id:1A2B3C4D sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                stat:DELIVRD err:000 Text:Hello";
    let tlvs = ReceiptTlvs {
        receipted_message_id: Some(b"1A2B3C4D\0"),
        message_state: Some(2),
        network_error_code: None,
    };
    let report = extract_receipt(&tlvs, text);
    assert_eq!(report.message_id.as_deref(), Some("1A2B3C4D"));
    assert_eq!(report.state, Some(MessageState::DELIVERED));
    assert_eq!(report.error, Some(ReceiptError::Text("000".into())));
    assert!(report.is_final());
}

#[test]
fn tlvs_win_when_they_disagree_with_the_text() {
    let text = "id:0439041101 stat:DELIVRD err:000";
    let tlvs = ReceiptTlvs {
        receipted_message_id: Some(b"1A2B3C4D"),
        message_state: Some(5),
        network_error_code: Some([3, 0x00, 0x01]),
    };
    let report = extract_receipt(&tlvs, text);
    assert_eq!(report.message_id.as_deref(), Some("1A2B3C4D"));
    assert_eq!(report.state, Some(MessageState::UNDELIVERABLE));
    assert_eq!(
        report.error,
        Some(ReceiptError::Network {
            network_type: 3,
            code: 1
        })
    );
    assert_eq!(report.receipt.stat, Some(ReceiptStat::Delivered));
}

#[test]
fn non_standard_stat_without_tlv_is_not_final() {
    let report = extract_receipt(&ReceiptTlvs::default(), "id:1 stat:FAILED err:x");
    assert_eq!(report.state, None);
    assert!(!report.is_final());
}

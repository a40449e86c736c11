//! Requirement 5: mobile-originated messages, injected through `SimHandle::inject_mo` and
//! `POST /mo`, arrive as deliver_sm (not receipts) and reassemble to the original text.

mod common;

use std::time::Instant;

use common::*;
use smppd::pdu::*;
use smppd::sms::{Accepted, CarrierTextOptions, Fragment, Reassembler, ReassemblyConfig};

const FROM: &str = "447700900777";
const SHORT_CODE: &str = "12345";

/// What the ESME's handset-facing side would make of the deliver_sm it received.
fn reassemble(parts: &[DeliverSm]) -> Vec<String> {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let mut out = Vec::new();
    for d in parts {
        let key = format!("{}>{}", d.source_addr, d.destination_addr);
        let fragment = Fragment {
            key: &key,
            data_coding: d.data_coding.0,
            udhi: d.esm_class.has_udhi(),
            sar: None,
            payload: d.short_message.as_bytes(),
        };
        match r
            .accept(Instant::now(), &fragment, &CarrierTextOptions::default())
            .unwrap()
        {
            Accepted::Complete(m) => out.push(m.text()),
            Accepted::Pending { .. } => {}
            Accepted::Duplicate => panic!("a duplicate part"),
        }
    }
    out
}

fn long_text() -> String {
    "Please STOP sending me offers about {discounts} and €uro deals, thank you! ".repeat(4)
}

fn assert_mo(d: &DeliverSm) {
    assert!(!d.esm_class.is_receipt(), "{:?}", d.esm_class);
    assert_eq!(d.esm_class.message_type(), 0);
    assert_eq!(d.source_addr.as_str(), Some(FROM));
    assert_eq!(d.destination_addr.as_str(), Some(SHORT_CODE));
}

#[tokio::test]
async fn injects_a_single_stop_as_a_plain_deliver_sm() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let parts = sim
        .handle
        .inject_mo("esme", &format!("+{FROM}"), SHORT_CODE, "STOP")
        .unwrap();
    assert_eq!(parts, 1);
    let d = rx.delivers(1, Vec::new()).await.remove(0);
    assert_mo(&d);
    assert!(!d.esm_class.has_udhi());
    assert_eq!(d.source_addr_ton, Ton::INTERNATIONAL);
    assert_eq!(reassemble(&[d]), ["STOP"]);
    eventually("the MO is acknowledged and counted", || {
        sim.handle.stats().mo_sent == 1
    })
    .await;
}

#[tokio::test]
async fn injects_a_long_text_as_concatenated_parts_that_reassemble() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut trx = Esme::bound(sim.addr, "esme").await;
    let text = long_text();
    let n = sim
        .handle
        .inject_mo("esme", FROM, SHORT_CODE, &text)
        .unwrap();
    assert!(n >= 2, "{n} parts");
    let parts = trx.delivers(n, Vec::new()).await;
    for d in &parts {
        assert_mo(d);
        assert!(d.esm_class.has_udhi());
    }
    assert_eq!(reassemble(&parts), [text]);
    assert_eq!(sim.handle.stats().mo_sent, n as u64);
}

#[tokio::test]
async fn injects_ucs2_text_with_emoji() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let text = "Стоп 🛑 ".repeat(20);
    let n = sim
        .handle
        .inject_mo("esme", FROM, SHORT_CODE, &text)
        .unwrap();
    let parts = rx.delivers(n, Vec::new()).await;
    assert!(parts.iter().all(|d| d.data_coding == DataCoding::UCS2));
    assert_eq!(reassemble(&parts), [text]);
}

#[tokio::test]
async fn two_long_texts_injected_back_to_back_do_not_share_a_reference() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let first = long_text();
    // As long as the first, so both have the same number of parts.
    let second = first.replace("STOP", "STAY");
    // Injected before any bind exists, so neither has been sent when the other is split.
    let a = sim
        .handle
        .inject_mo("esme", FROM, SHORT_CODE, &first)
        .unwrap();
    let b = sim
        .handle
        .inject_mo("esme", FROM, SHORT_CODE, &second)
        .unwrap();
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let parts = rx.delivers(a + b, Vec::new()).await;
    // A handset told apart by reference only (GSM 03.40 §9.2.3.24.1): two at once need two.
    let references: std::collections::HashSet<u16> = parts
        .iter()
        .map(|d| {
            let (udh, _) = smppd::sms::parse_udh(d.short_message.as_bytes()).unwrap();
            udh.concat_info().unwrap().reference
        })
        .collect();
    assert_eq!(references.len(), 2, "{references:?}");
    let mut texts = reassemble(&parts);
    texts.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn injects_mo_through_post_mo() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let body = format!(r#"{{"account":"esme","from":"{FROM}","to":"{SHORT_CODE}","text":"STOP"}}"#);
    let (status, reply) = http(sim.control, "POST", "/mo", Some(&body)).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply, r#"{"parts":1}"#);
    let d = rx.delivers(1, Vec::new()).await.remove(0);
    assert_mo(&d);
    assert_eq!(reassemble(&[d]), ["STOP"]);

    let text = long_text();
    let body = serde_json::json!({"account": "esme", "from": FROM, "to": SHORT_CODE, "text": text})
        .to_string();
    let (status, reply) = http(sim.control, "POST", "/mo", Some(&body)).await;
    assert_eq!(status, 202, "{reply}");
    let n: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let n = n["parts"].as_u64().unwrap() as usize;
    assert!(n >= 2);
    let parts = rx.delivers(n, Vec::new()).await;
    assert_eq!(reassemble(&parts), [text]);
}

#[tokio::test]
async fn refuses_mo_for_an_unknown_account() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    assert!(
        sim.handle
            .inject_mo("nobody", FROM, SHORT_CODE, "hi")
            .is_err()
    );
    let body = r#"{"account":"nobody","from":"1","to":"2","text":"hi"}"#;
    let (status, reply) = http(sim.control, "POST", "/mo", Some(body)).await;
    assert_eq!(status, 404, "{reply}");
    assert!(reply.contains("unknown_account"), "{reply}");
}

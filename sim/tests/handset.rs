//! Requirement 3: the handset view. Concatenated messages (UDH 8-bit, UDH 16-bit, SAR TLVs,
//! message_payload) are put back together per destination and decoded, so each test checks
//! exactly what a phone would show.

mod common;

use common::*;
use smppd::pdu::*;
use smppd::sms::{self, CarrierTextOptions, SegmentationMethod};
use smsc_sim::HandsetMessage;

const TO: &str = "447700900123";

fn options(segmentation: SegmentationMethod) -> CarrierTextOptions {
    CarrierTextOptions {
        segmentation,
        ..CarrierTextOptions::default()
    }
}

/// Submits every part of `text` split with `options`; returns the message ids in order.
async fn submit_text(
    esme: &mut Esme,
    to: &str,
    text: &str,
    options: &CarrierTextOptions,
    reference: u16,
) -> Vec<String> {
    let segments = sms::segment(text, options, reference).unwrap();
    let mut ids = Vec::new();
    for part in &segments.parts {
        ids.push(esme.submit_ok(sm_part(to, part)).await.0);
    }
    ids
}

fn only(sim: &TestSim, to: &str) -> HandsetMessage {
    let mut seen = sim.handle.messages(Some(to), 10);
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen.remove(0)
}

/// GSM 03.38 with characters from the extension table (two septets each).
fn gsm_text() -> String {
    "Price: 10€ [promo] {code} ^caret~ |pipe| back\\slash. ".repeat(5)
}

/// Beyond the BMP (surrogate pairs in UCS2), Cyrillic and accents.
fn ucs2_text() -> String {
    "Привет, мир! 👋🏽 Ça va? 🎉 ".repeat(4)
}

#[tokio::test]
async fn shows_a_udh8_concatenated_gsm_text_with_extension_characters() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let text = gsm_text();
    let opts = options(SegmentationMethod::Udh8);
    let ids = submit_text(&mut esme, TO, &text, &opts, 0x42).await;
    assert!(ids.len() >= 2, "{} parts", ids.len());
    let m = only(&sim, TO);
    assert_eq!(m.text, text);
    assert_eq!(usize::from(m.parts), ids.len());
    assert_eq!(m.message_ids, ids);
    assert_eq!(m.data_coding, 0);
    assert_eq!(m.from, "447700900001");
    assert_eq!(m.account, "esme");
}

#[tokio::test]
async fn shows_a_udh16_concatenated_ucs2_text_with_emoji() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let text = ucs2_text();
    let ids = submit_text(
        &mut esme,
        TO,
        &text,
        &options(SegmentationMethod::Udh16),
        0x1234,
    )
    .await;
    assert!(ids.len() >= 2);
    let m = only(&sim, TO);
    assert_eq!(m.text, text);
    assert_eq!(m.data_coding, 8);
    assert_eq!(m.message_ids, ids);
}

#[tokio::test]
async fn shows_a_text_split_with_sar_tlvs() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let text = format!("{}{}", gsm_text(), ucs2_text());
    let ids = submit_text(
        &mut esme,
        TO,
        &text,
        &options(SegmentationMethod::Sar),
        0x0777,
    )
    .await;
    assert!(ids.len() >= 3);
    assert_eq!(only(&sim, TO).text, text);
}

#[tokio::test]
async fn shows_a_long_text_sent_whole_in_message_payload() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let text = ucs2_text().repeat(3);
    let ids = submit_text(
        &mut esme,
        TO,
        &text,
        &options(SegmentationMethod::MessagePayload),
        0,
    )
    .await;
    assert_eq!(ids.len(), 1);
    let m = only(&sim, TO);
    assert_eq!(m.text, text);
    assert_eq!(m.parts, 1);
}

/// A part built by hand: UDH `05 00 03 ref total seq` and unpacked GSM septets.
fn hand_part(reference: u8, total: u8, seq: u8, text: &str) -> SubmitSm {
    let mut octets = vec![0x05, 0x00, 0x03, reference, total, seq];
    octets.extend(sms::gsm::encode_unpacked(text).unwrap());
    let mut m = sm(TO, "");
    m.esm_class = EsmClass::DEFAULT.with_udhi();
    m.short_message = ShortMessage::new(octets).unwrap();
    m
}

#[tokio::test]
async fn reassembles_hand_built_udh_parts_that_arrive_out_of_order() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id2, _) = esme.submit_ok(hand_part(7, 3, 2, "second @ ")).await;
    assert!(sim.handle.messages(Some(TO), 10).is_empty());
    let (id3, _) = esme.submit_ok(hand_part(7, 3, 3, "third {€}")).await;
    let (id1, _) = esme.submit_ok(hand_part(7, 3, 1, "first £ ")).await;
    let m = only(&sim, TO);
    assert_eq!(m.text, "first £ second @ third {€}");
    assert_eq!(m.parts, 3);
    // In the order they were submitted.
    assert_eq!(m.message_ids, [id2, id3, id1]);
}

#[tokio::test]
async fn keeps_interleaved_long_messages_to_different_handsets_apart() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let opts = options(SegmentationMethod::Udh8);
    // The same reference on purpose: only the destination tells them apart.
    let a = sms::segment(&gsm_text(), &opts, 9).unwrap();
    let b = sms::segment(&ucs2_text(), &opts, 9).unwrap();
    let (mut ids_a, mut ids_b) = (Vec::new(), Vec::new());
    for i in 0..a.parts.len().max(b.parts.len()) {
        if let Some(p) = a.parts.get(i) {
            ids_a.push(esme.submit_ok(sm_part("447700900111", p)).await.0);
        }
        if let Some(p) = b.parts.get(i) {
            ids_b.push(esme.submit_ok(sm_part("447700900222", p)).await.0);
        }
    }
    let ma = only(&sim, "447700900111");
    let mb = only(&sim, "447700900222");
    assert_eq!(ma.text, gsm_text());
    assert_eq!(mb.text, ucs2_text());
    assert_eq!(ma.message_ids, ids_a);
    assert_eq!(mb.message_ids, ids_b);
}

#[tokio::test]
async fn gives_each_message_to_one_handset_its_own_part_ids_when_they_interleave() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let opts = options(SegmentationMethod::Udh8);
    let long_a = sms::segment(&gsm_text(), &opts, 1).unwrap();
    let long_b = sms::segment(&ucs2_text(), &opts, 2).unwrap();
    assert!(long_a.parts.len() >= 2 && long_b.parts.len() >= 2);
    let mut ids_a = vec![esme.submit_ok(sm_part(TO, &long_a.parts[0])).await.0];
    let mut ids_b = vec![esme.submit_ok(sm_part(TO, &long_b.parts[0])).await.0];
    // A single short message in between.
    let (short_id, _) = esme.submit_ok(sm(TO, "short one")).await;
    for p in &long_a.parts[1..] {
        ids_a.push(esme.submit_ok(sm_part(TO, p)).await.0);
    }
    for p in &long_b.parts[1..] {
        ids_b.push(esme.submit_ok(sm_part(TO, p)).await.0);
    }
    let seen = sim.handle.messages(Some(TO), 10);
    let texts: Vec<&str> = seen.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["short one", &gsm_text(), &ucs2_text()]);
    assert_eq!(seen[0].message_ids, [short_id]);
    assert_eq!(seen[1].message_ids, ids_a);
    assert_eq!(seen[2].message_ids, ids_b);
}

#[tokio::test]
async fn reads_packed_gsm_on_an_account_that_packs() {
    let mut acct = account("esme");
    acct.packed = true;
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let opts = CarrierTextOptions {
        packed: true,
        ..options(SegmentationMethod::Udh8)
    };
    let text = gsm_text();
    submit_text(&mut esme, TO, &text, &opts, 3).await;
    assert_eq!(only(&sim, TO).text, text);
}

#[tokio::test]
async fn shows_handsets_separately_and_forgets_on_request() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    esme.submit_ok(sm("447700900111", "to one")).await;
    esme.submit_ok(sm("447700900222", "to two")).await;
    assert_eq!(only(&sim, "447700900111").text, "to one");
    assert_eq!(only(&sim, "447700900222").text, "to two");
    assert_eq!(sim.handle.messages(None, 10).len(), 2);
    assert_eq!(sim.handle.messages(None, 1)[0].text, "to two");
    sim.handle.clear_messages();
    assert!(sim.handle.messages(None, 10).is_empty());
}

#[tokio::test]
async fn keeps_only_the_newest_messages_up_to_its_bound() {
    let config = smsc_sim::config::SimConfig {
        max_handset_messages: 5,
        max_messages: 5,
        ..config_with(vec![account("esme")])
    };
    let sim = TestSim::start(config).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    for i in 0..12 {
        esme.submit_ok(sm(TO, &format!("n{i}"))).await;
    }
    let texts: Vec<String> = sim
        .handle
        .messages(None, 100)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["n7", "n8", "n9", "n10", "n11"]);
    let stats = sim.handle.stats();
    assert_eq!(stats.handset_messages, 5);
    assert_eq!(stats.messages_stored, 5);
}

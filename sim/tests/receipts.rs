//! Requirement 4: delivery receipts. When registered_delivery asks, after the delay, with the
//! configured outcome mix, on any receiving bind of the account, as text and/or TLVs, with the
//! id written as configured, per part or for the first part only, and sent again when the
//! ESME refuses or ignores them.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use smppd::pdu::*;
use smppd::sms::{self, IdFormat, IdNormalizer, ReceiptStat, normalize_message_id, parse_receipt};
use smsc_sim::config::{
    AccountConfig, DelayRange, Outcome, ReceiptFormat, ReceiptIdStyle, SimConfig,
};
use smsc_sim::ids::MessageIdFormat;

fn outcome(stat: &str, weight: f64, err: u16) -> Outcome {
    Outcome {
        stat: stat.into(),
        weight,
        err,
    }
}

fn always(id: &str, stat: &str, err: u16) -> AccountConfig {
    let mut a = account(id);
    a.receipts.outcomes = vec![outcome(stat, 1.0, err)];
    a
}

fn asking(to: &str, text: &str, registered_delivery: u8) -> SubmitSm {
    let mut m = sm(to, text);
    m.registered_delivery = RegisteredDelivery(registered_delivery);
    m
}

/// Submits with each registered_delivery value and returns which ones got a receipt.
async fn receipted(sim: &TestSim, system_id: &str) -> Vec<u8> {
    let mut esme = Esme::bound(sim.addr, system_id).await;
    let mut by_id = HashMap::new();
    let mut early = Vec::new();
    for rd in 0..=3u8 {
        let (id, e) = esme
            .submit_ok(asking("447700900123", &format!("rd {rd}"), rd))
            .await;
        by_id.insert(id, rd);
        early.extend(e);
    }
    let mut got = Vec::new();
    for pdu in early {
        if let Body::DeliverSm(d) = pdu.body {
            got.push(d);
        }
    }
    while let Some(pdu) = esme.next_deliver(Duration::from_millis(300)).await {
        esme.answer(&pdu).await;
        if let Body::DeliverSm(d) = pdu.body {
            got.push(d);
        }
    }
    let mut rds: Vec<u8> = got
        .iter()
        .map(|d| {
            let id = String::from_utf8(d.tlvs.receipted_message_id().unwrap().to_vec()).unwrap();
            by_id[&id]
        })
        .collect();
    rds.sort();
    rds
}

#[tokio::test]
async fn sends_receipts_only_as_registered_delivery_asks() {
    let sim = TestSim::start(config_with(vec![
        always("good", "DELIVRD", 0),
        always("bad", "UNDELIV", 1),
    ]))
    .await;
    // 1: any final outcome; 2: failures only; 3: successes only.
    assert_eq!(receipted(&sim, "good").await, [1, 3]);
    assert_eq!(receipted(&sim, "bad").await, [1, 2]);
}

#[tokio::test]
async fn sends_the_receipt_no_earlier_than_the_configured_delay() {
    let mut acct = account("esme");
    acct.receipts.delay = DelayRange::fixed(200);
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let sent = Instant::now();
    let (id, early) = esme.submit_ok(asking("447700900123", "later", 1)).await;
    assert!(early.is_empty());
    let receipt = esme.delivers(1, early).await.remove(0);
    assert!(sent.elapsed() >= Duration::from_millis(195));
    assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
}

#[tokio::test]
async fn mixes_outcomes_and_reports_each_in_text_and_tlvs_alike() {
    let mut acct = account("esme");
    acct.receipts.outcomes = vec![
        outcome("DELIVRD", 1.0, 0),
        outcome("UNDELIV", 1.0, 1),
        outcome("EXPIRED", 1.0, 27),
        outcome("REJECTD", 1.0, 11),
    ];
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let n = 120;
    let mut texts = HashMap::new();
    let mut early = Vec::new();
    for i in 0..n {
        let text = format!("message number {i} with a tail past twenty");
        let (id, e) = esme.submit_ok(asking("447700900123", &text, 1)).await;
        texts.insert(id, text);
        early.extend(e);
    }
    let receipts = esme.delivers(n, early).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for d in &receipts {
        assert_eq!(d.esm_class, EsmClass::DELIVERY_RECEIPT);
        // The receipt goes back from the handset to the sender.
        assert_eq!(d.source_addr.as_str(), Some("447700900123"));
        assert_eq!(d.destination_addr.as_str(), Some("447700900001"));
        let id = String::from_utf8(d.tlvs.receipted_message_id().unwrap().to_vec()).unwrap();
        let r = parse_receipt(&text_of(d));
        assert_eq!(r.id.as_deref(), Some(id.as_str()));
        let stat = r.stat.clone().unwrap();
        let (state, err, dlvrd) = match stat {
            ReceiptStat::Delivered => (MessageState::DELIVERED, 0, 1),
            ReceiptStat::Undeliverable => (MessageState::UNDELIVERABLE, 1, 0),
            ReceiptStat::Expired => (MessageState::EXPIRED, 27, 0),
            ReceiptStat::Rejected => (MessageState::REJECTED, 11, 0),
            other => panic!("unexpected stat {other:?}"),
        };
        assert_eq!(d.tlvs.message_state(), Some(state));
        assert_eq!(r.err.as_deref(), Some(format!("{err:03}").as_str()));
        assert_eq!(
            d.tlvs.network_error_code().map(|c| c.error_code),
            (err != 0).then_some(err)
        );
        assert_eq!((r.sub, r.dlvrd), (Some(1), Some(dlvrd)));
        assert!(r.submit_date.is_some() && r.done_date.is_some());
        // Appendix B: the first 20 characters of the message.
        let original: String = texts[&id].chars().take(20).collect();
        assert_eq!(r.text.as_deref(), Some(original.as_str()));
        *seen.entry(format!("{stat:?}")).or_default() += 1;
    }
    assert_eq!(seen.len(), 4, "every outcome drawn: {seen:?}");
    assert_eq!(seen.values().sum::<usize>(), n);
    assert_eq!(sim.handle.stats().receipts_sent, n as u64);
}

#[tokio::test]
async fn sends_receipts_for_a_transmitter_to_a_separate_receiver_bind() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut tx = Esme::bound_as(sim.addr, CommandId::BIND_TRANSMITTER, "esme").await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let (id, early) = tx.submit_ok(asking("447700900123", "split binds", 1)).await;
    assert!(early.is_empty(), "a transmitter gets no deliver_sm");
    let receipt = rx.delivers(1, Vec::new()).await.remove(0);
    assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
    assert!(tx.quiet_for(Duration::from_millis(200)).await);
    eventually("the receipt is acknowledged", || {
        sim.handle.stats().receipts_acked == 1
    })
    .await;
}

async fn one_receipt(acct: AccountConfig, format: MessageIdFormat) -> (String, DeliverSm) {
    let config = SimConfig {
        message_id_format: format,
        ..config_with(vec![acct])
    };
    let sim = TestSim::start(config).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id, early) = esme.submit_ok(asking("447700900123", "Hello", 1)).await;
    (id, esme.delivers(1, early).await.remove(0))
}

#[tokio::test]
async fn writes_receipts_as_text_only_tlvs_only_or_both() {
    let with = |format| {
        let mut a = account("esme");
        a.receipts.format = format;
        a
    };
    let (id, text_only) = one_receipt(with(ReceiptFormat::Text), MessageIdFormat::Hex).await;
    assert_eq!(
        parse_receipt(&text_of(&text_only)).id.as_deref(),
        Some(id.as_str())
    );
    assert!(text_only.tlvs.receipted_message_id().is_none());
    assert!(text_only.tlvs.message_state().is_none());

    let (id, tlvs_only) = one_receipt(with(ReceiptFormat::Tlvs), MessageIdFormat::Hex).await;
    assert!(tlvs_only.short_message.is_empty());
    assert_eq!(
        tlvs_only.tlvs.receipted_message_id().unwrap(),
        id.as_bytes()
    );
    assert_eq!(
        tlvs_only.tlvs.message_state(),
        Some(MessageState::DELIVERED)
    );
    assert_eq!(tlvs_only.esm_class, EsmClass::DELIVERY_RECEIPT);

    let (id, both) = one_receipt(with(ReceiptFormat::Both), MessageIdFormat::Hex).await;
    assert_eq!(
        parse_receipt(&text_of(&both)).id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(both.tlvs.receipted_message_id().unwrap(), id.as_bytes());
}

#[tokio::test]
async fn writes_a_hex_submit_id_as_decimal_in_the_text_when_asked() {
    let mut acct = account("esme");
    acct.receipts.text_id = ReceiptIdStyle::Decimal;
    let (id, receipt) = one_receipt(acct, MessageIdFormat::Hex).await;
    let in_text = parse_receipt(&text_of(&receipt)).id.unwrap();
    assert!(in_text.chars().all(|c| c.is_ascii_digit()), "{in_text}");
    assert!(in_text.len() >= 10);
    let ids = IdNormalizer {
        submit_resp: IdFormat::Hex,
        receipt: IdFormat::Decimal,
    };
    assert_eq!(ids.receipt_key(&in_text), ids.submit_resp_key(&id));
    // The TLV keeps the id as submit_sm_resp gave it.
    assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
}

#[tokio::test]
async fn writes_a_decimal_submit_id_as_hex_in_the_text_when_asked() {
    let mut acct = account("esme");
    acct.receipts.text_id = ReceiptIdStyle::Hex;
    let (id, receipt) = one_receipt(acct, MessageIdFormat::Decimal).await;
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
    let in_text = parse_receipt(&text_of(&receipt)).id.unwrap();
    assert_ne!(in_text, id);
    assert_eq!(
        normalize_message_id(&in_text, IdFormat::Hex),
        normalize_message_id(&id, IdFormat::Decimal)
    );
}

async fn receipts_for_a_long_message(per_part: bool) -> (Vec<String>, Vec<DeliverSm>) {
    let mut acct = account("esme");
    acct.receipts.per_part = per_part;
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let text = "A long message that needs three parts. ".repeat(10);
    let parts = sms::segment(&text, &sms::CarrierTextOptions::default(), 5).unwrap();
    assert_eq!(parts.parts.len(), 3);
    let mut ids = Vec::new();
    let mut early = Vec::new();
    for p in &parts.parts {
        let mut m = sm_part("447700900123", p);
        m.registered_delivery = RegisteredDelivery::FINAL;
        let (id, e) = esme.submit_ok(m).await;
        ids.push(id);
        early.extend(e);
    }
    let expected = if per_part { 3 } else { 1 };
    let receipts = esme.delivers(expected, early).await;
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    (ids, receipts)
}

#[tokio::test]
async fn sends_a_receipt_for_every_part_when_per_part() {
    let (ids, receipts) = receipts_for_a_long_message(true).await;
    let mut named: Vec<String> = receipts
        .iter()
        .map(|d| String::from_utf8(d.tlvs.receipted_message_id().unwrap().to_vec()).unwrap())
        .collect();
    named.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(named, ids);
}

#[tokio::test]
async fn sends_one_receipt_for_the_first_part_only_when_not_per_part() {
    let (ids, receipts) = receipts_for_a_long_message(false).await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0].tlvs.receipted_message_id().unwrap(),
        ids[0].as_bytes()
    );
}

/// The next deliver_sm, not answered.
async fn raw_deliver(esme: &mut Esme) -> Pdu {
    esme.next_deliver(WAIT).await.expect("a deliver_sm")
}

#[tokio::test]
async fn resends_a_receipt_the_esme_answered_with_an_error() {
    let sim = TestSim::start(quick_config(vec![account("esme")])).await;
    let mut esme = Esme::bound_as(sim.addr, CommandId::BIND_TRANSMITTER, "esme").await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let (id, _) = esme.submit_ok(asking("447700900123", "again", 1)).await;
    let first = raw_deliver(&mut rx).await;
    rx.send(&Pdu {
        command_status: CommandStatus::ESME_RX_T_APPN,
        sequence_number: first.sequence_number,
        body: Body::DeliverSmResp(None),
    })
    .await;
    let again = raw_deliver(&mut rx).await;
    let (Body::DeliverSm(a), Body::DeliverSm(b)) = (&first.body, &again.body) else {
        unreachable!()
    };
    assert_eq!(a.tlvs.receipted_message_id().unwrap(), id.as_bytes());
    assert_eq!(b.tlvs.receipted_message_id().unwrap(), id.as_bytes());
    assert_ne!(first.sequence_number, again.sequence_number);
    rx.answer(&again).await;
    eventually("the resend is acknowledged", || {
        let s = sim.handle.stats();
        s.receipts_acked == 1 && s.receipts_resent == 1 && s.receipts_sent == 2
    })
    .await;
}

#[tokio::test]
async fn resends_a_receipt_the_esme_did_not_answer() {
    // quick_config: the SMSC waits 300 ms for deliver_sm_resp.
    let sim = TestSim::start(quick_config(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let seq = esme
        .request(Body::SubmitSm(asking("447700900123", "hello?", 1)))
        .await;
    let mut first = None;
    while first.is_none() {
        let pdu = esme.recv().await;
        if matches!(pdu.body, Body::DeliverSm(_)) {
            first = Some(pdu);
        } else {
            assert_eq!(pdu.sequence_number, seq);
        }
    }
    let first = first.unwrap();
    // Not answered; the same receipt comes again.
    let again = raw_deliver(&mut esme).await;
    let (Body::DeliverSm(a), Body::DeliverSm(b)) = (&first.body, &again.body) else {
        unreachable!()
    };
    assert_eq!(a.tlvs.receipted_message_id(), b.tlvs.receipted_message_id());
    esme.answer(&again).await;
    eventually("the resend is counted and acknowledged", || {
        let s = sim.handle.stats();
        s.receipts_resent == 1 && s.receipts_acked == 1
    })
    .await;
}

#[tokio::test]
async fn gives_a_receipt_up_after_max_resends() {
    let mut acct = account("esme");
    acct.receipts.max_resends = 1;
    let sim = TestSim::start(quick_config(vec![acct])).await;
    let mut tx = Esme::bound_as(sim.addr, CommandId::BIND_TRANSMITTER, "esme").await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    tx.submit_ok(asking("447700900123", "refused", 1)).await;
    for _ in 0..2 {
        let d = raw_deliver(&mut rx).await;
        rx.send(&Pdu {
            command_status: CommandStatus::ESME_RX_P_APPN,
            sequence_number: d.sequence_number,
            body: Body::DeliverSmResp(None),
        })
        .await;
    }
    eventually("the receipt is given up", || {
        sim.handle.stats().receipts_dropped == 1
    })
    .await;
    assert!(rx.quiet_for(Duration::from_millis(1300)).await);
    let s = sim.handle.stats();
    assert_eq!(
        (s.receipts_sent, s.receipts_resent, s.receipts_acked),
        (2, 1, 0)
    );
}

#[tokio::test]
async fn holds_receipts_in_order_until_a_receiving_bind_appears() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut tx = Esme::bound_as(sim.addr, CommandId::BIND_TRANSMITTER, "esme").await;
    let ids = submit_many(&mut tx, 5, 5, "wait for me").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.handle.stats().receipts_sent, 0);
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    assert_eq!(receipted_ids(&mut rx, 5).await, ids);
}

/// Submits `n` messages asking for receipts on a transmitter, `batch` written at a time
/// before their responses are read; returns their ids in order.
async fn submit_many(tx: &mut Esme, n: usize, batch: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let k = batch.min(n - ids.len());
        let mut seqs = Vec::with_capacity(k);
        for i in 0..k {
            let text = format!("{prefix} {}", ids.len() + i);
            seqs.push(
                tx.request(Body::SubmitSm(asking("447700900123", &text, 1)))
                    .await,
            );
        }
        for seq in seqs {
            let resp = tx.recv().await;
            assert_eq!(resp.sequence_number, seq);
            assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
            ids.push(message_id(&resp));
        }
    }
    ids
}

/// The receipted ids of the next `n` deliver_sm, in arrival order, each answered.
async fn receipted_ids(rx: &mut Esme, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let pdu = rx.next_deliver(WAIT).await.expect("a deliver_sm");
        rx.answer(&pdu).await;
        let Body::DeliverSm(d) = &pdu.body else {
            unreachable!()
        };
        ids.push(String::from_utf8(d.tlvs.receipted_message_id().unwrap().to_vec()).unwrap());
    }
    ids
}

#[tokio::test]
async fn holds_receipts_back_in_order_while_the_receiver_stops_reading_and_serves_other_accounts() {
    let sim = TestSim::start(config_with(vec![account("slow"), account("busy")])).await;
    let mut tx = Esme::bound_as(sim.addr, CommandId::BIND_TRANSMITTER, "slow").await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "slow").await;
    let mut busy = Esme::bound(sim.addr, "busy").await;

    // The receiver reads nothing: the simulator writes a window of deliver_sm (1000
    // unanswered), fills the bind's queue (1000) and must hold the rest back.
    let mut ids = submit_many(&mut tx, 3000, 250, "first").await;
    eventually("the receiver's window is full", || {
        sim.handle.stats().receipts_sent == 1000
    })
    .await;

    // Another account is served meanwhile, at once.
    for i in 0..20 {
        let started = Instant::now();
        let (id, early) = busy
            .submit_ok(asking("447700900123", &format!("busy {i}"), 1))
            .await;
        let receipt = busy.delivers(1, early).await.remove(0);
        assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.handle.stats().receipts_sent, 1000 + 20);

    // The receiver reads again while more receipts fall due: every receipt arrives once, in
    // the order its message was submitted, none dropped or resent.
    let reader = tokio::spawn(async move { receipted_ids(&mut rx, 3500).await });
    ids.extend(submit_many(&mut tx, 500, 50, "second").await);
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("every receipt within the wait")
        .unwrap();
    assert!(got == ids, "receipts out of order or missing");
    eventually("every receipt is acknowledged", || {
        sim.handle.stats().receipts_acked == 3500 + 20
    })
    .await;
    let s = sim.handle.stats();
    assert_eq!(
        (s.receipts_sent, s.receipts_dropped, s.receipts_resent),
        (3520, 0, 0)
    );
}

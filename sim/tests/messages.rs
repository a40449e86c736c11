//! Requirement 2: submit_sm, submit_multi, data_sm, query_sm, cancel_sm and replace_sm against
//! the message table, and message ids from a seedable generator.

mod common;

use std::time::Duration;

use common::*;
use smppd::pdu::*;
use smsc_sim::config::{AccountConfig, DelayRange, Outcome, SimConfig};
use smsc_sim::ids::MessageIdFormat;

const SRC: &str = "447700900001";

/// An account whose receipts come `delay_ms` after the submit, so messages stay pending.
fn slow(delay_ms: u64) -> AccountConfig {
    let mut a = account("esme");
    a.receipts.delay = DelayRange::fixed(delay_ms);
    a
}

fn query(id: &str) -> Body {
    Body::QuerySm(QuerySm {
        message_id: COctetString::try_from(id).unwrap(),
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from(SRC).unwrap(),
        ..QuerySm::default()
    })
}

fn query_resp(pdu: &Pdu) -> QuerySmResp {
    assert_eq!(pdu.command_status, CommandStatus::ESME_ROK, "{pdu:?}");
    match &pdu.body {
        Body::QuerySmResp(Some(r)) => r.clone(),
        other => panic!("not a query_sm_resp: {other:?}"),
    }
}

fn cancel(id: &str, to: &str) -> Body {
    Body::CancelSm(CancelSm {
        message_id: COctetString::try_from(id).unwrap(),
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from(SRC).unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::try_from(to).unwrap(),
        ..CancelSm::default()
    })
}

fn with_receipt(mut m: SubmitSm) -> SubmitSm {
    m.registered_delivery = RegisteredDelivery::FINAL;
    m
}

#[tokio::test]
async fn submit_multi_delivers_to_each_sme_and_refuses_distribution_lists() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let dest = |n: &str| DestAddress::Sme {
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::try_from(n).unwrap(),
    };
    let multi = SubmitMulti {
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from(SRC).unwrap(),
        dest_addresses: DestList::new(vec![
            dest("447700900123"),
            DestAddress::DistributionList {
                dl_name: COctetString::try_from("staff").unwrap(),
            },
            dest("447700900456"),
        ])
        .unwrap(),
        registered_delivery: RegisteredDelivery::FINAL,
        short_message: ShortMessage::new(&b"Hi all"[..]).unwrap(),
        ..SubmitMulti::default()
    };
    let seq = esme.request(Body::SubmitMulti(multi)).await;
    let (resp, early) = esme.response(seq).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let Body::SubmitMultiResp(Some(r)) = &resp.body else {
        panic!("{resp:?}")
    };
    let id = r.message_id.to_string();
    assert!(!id.is_empty());
    let failed = r.unsuccess_smes.as_slice();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].destination_addr.as_str(), Some("staff"));
    assert_eq!(failed[0].error_status_code, CommandStatus::ESME_RINVDLNAME);

    for to in ["447700900123", "447700900456"] {
        let seen = sim.handle.messages(Some(to), 10);
        assert_eq!(seen.len(), 1, "{to}");
        assert_eq!(seen[0].text, "Hi all");
        assert_eq!(seen[0].from, SRC);
    }
    // One receipt per delivered SME, each naming the id submit_multi_resp gave.
    let receipts = esme.delivers(2, early).await;
    let mut from: Vec<String> = receipts
        .iter()
        .map(|d| {
            assert_eq!(d.tlvs.receipted_message_id().unwrap(), id.as_bytes());
            d.source_addr.to_string()
        })
        .collect();
    from.sort();
    assert_eq!(from, ["447700900123", "447700900456"]);
    assert_eq!(sim.handle.stats().messages_accepted, 2);
}

#[tokio::test]
async fn data_sm_is_accepted_with_its_payload_and_answered_with_an_id() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let text = "x".repeat(300);
    let data = DataSm {
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from(SRC).unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::try_from("447700900123").unwrap(),
        registered_delivery: RegisteredDelivery::FINAL,
        tlvs: TlvsBuilder::new()
            .message_payload(text.as_bytes())
            .unwrap()
            .build(),
        ..DataSm::default()
    };
    let seq = esme.request(Body::DataSm(data)).await;
    let (resp, early) = esme.response(seq).await;
    assert_eq!(resp.command_id(), CommandId::DATA_SM_RESP);
    let id = message_id(&resp);
    let seen = sim.handle.messages(Some("447700900123"), 10);
    assert_eq!(seen[0].text, text);
    assert_eq!(seen[0].message_ids, std::slice::from_ref(&id));
    let receipt = esme.delivers(1, early).await.remove(0);
    assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
}

#[tokio::test]
async fn query_sm_reports_enroute_then_the_final_state_and_error() {
    let mut acct = slow(300);
    acct.receipts.outcomes = vec![Outcome {
        stat: "UNDELIV".into(),
        weight: 1.0,
        err: 34,
    }];
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id, _) = esme.submit_ok(sm("447700900123", "query me")).await;

    let r = query_resp(&esme.call(query(&id)).await);
    assert_eq!(r.message_id.to_string(), id);
    assert_eq!(r.message_state, MessageState::ENROUTE);
    assert!(r.final_date.is_empty());

    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = query_resp(&esme.call(query(&id)).await);
    assert_eq!(r.message_state, MessageState::UNDELIVERABLE);
    assert_eq!(r.error_code, 34);
    assert!(!r.final_date.is_empty());
}

#[tokio::test]
async fn query_sm_of_an_unknown_id_is_rinvmsgid() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let resp = esme.call(query("DEADBEEF")).await;
    assert_eq!(resp.command_id(), CommandId::QUERY_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVMSGID);
}

#[tokio::test]
async fn cancel_sm_by_id_deletes_the_message_and_its_receipt() {
    let sim = TestSim::start(config_with(vec![slow(300)])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id, _) = esme
        .submit_ok(with_receipt(sm("447700900123", "cancel me")))
        .await;
    let resp = esme.call(cancel(&id, "447700900123")).await;
    assert_eq!(resp.command_id(), CommandId::CANCEL_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let r = query_resp(&esme.call(query(&id)).await);
    assert_eq!(r.message_state, MessageState::DELETED);
    // Gone: a second cancel fails, and no receipt comes.
    let resp = esme.call(cancel(&id, "447700900123")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RCANCELFAIL);
    assert!(esme.quiet_for(Duration::from_millis(500)).await);
    assert_eq!(sim.handle.stats().receipts_sent, 0);
}

#[tokio::test]
async fn cancel_sm_with_an_empty_id_cancels_every_pending_message_from_source_to_destination() {
    let sim = TestSim::start(config_with(vec![slow(300)])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (a1, _) = esme.submit_ok(with_receipt(sm("447700900123", "a1"))).await;
    let (a2, _) = esme.submit_ok(with_receipt(sm("447700900123", "a2"))).await;
    let (b, _) = esme.submit_ok(with_receipt(sm("447700900456", "b"))).await;
    let resp = esme.call(cancel("", "447700900123")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    for id in [&a1, &a2] {
        let r = query_resp(&esme.call(query(id)).await);
        assert_eq!(r.message_state, MessageState::DELETED, "{id}");
    }
    let r = query_resp(&esme.call(query(&b)).await);
    assert_eq!(r.message_state, MessageState::ENROUTE);
    // Only the message to the other destination gets its receipt.
    let receipts = esme.delivers(1, Vec::new()).await;
    assert_eq!(
        receipts[0].tlvs.receipted_message_id().unwrap(),
        b.as_bytes()
    );
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn cancel_sm_of_a_delivered_message_is_rcancelfail() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id, _) = esme.submit_ok(sm("447700900123", "already there")).await;
    let resp = esme.call(cancel(&id, "447700900123")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RCANCELFAIL);
}

fn replace(id: &str, new: &[u8]) -> Body {
    Body::ReplaceSm(ReplaceSm {
        message_id: COctetString::try_from(id).unwrap(),
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from(SRC).unwrap(),
        short_message: ShortMessage::new(new.to_vec()).unwrap(),
        ..ReplaceSm::default()
    })
}

#[tokio::test]
async fn replace_sm_changes_what_the_handset_shows_in_the_original_encoding() {
    let sim = TestSim::start(config_with(vec![slow(400)])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let mut m = sm("447700900123", "");
    m.data_coding = DataCoding::UCS2;
    m.short_message = ShortMessage::new(smppd::sms::charset::encode_ucs2("Привет")).unwrap();
    let (id, _) = esme.submit_ok(m).await;
    assert_eq!(sim.handle.messages(None, 1)[0].text, "Привет");

    let resp = esme
        .call(replace(&id, &smppd::sms::charset::encode_ucs2("Пока 👋")))
        .await;
    assert_eq!(resp.command_id(), CommandId::REPLACE_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    assert_eq!(sim.handle.messages(None, 1)[0].text, "Пока 👋");

    // GSM text keeps its alphabet too: '@' is septet 0x00.
    let (id, _) = esme.submit_ok(sm("447700900456", "first")).await;
    let gsm = smppd::sms::gsm::encode_unpacked("me@home").unwrap();
    let resp = esme.call(replace(&id, &gsm)).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    assert_eq!(
        sim.handle.messages(Some("447700900456"), 1)[0].text,
        "me@home"
    );
}

#[tokio::test]
async fn replace_sm_of_a_delivered_or_unknown_message_is_rreplacefail() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id, _) = esme.submit_ok(sm("447700900123", "done")).await;
    let resp = esme.call(replace(&id, b"too late")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RREPLACEFAIL);
    let resp = esme.call(replace("0000", b"who?")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RREPLACEFAIL);
    assert_eq!(sim.handle.messages(None, 1)[0].text, "done");
}

async fn ids(format: MessageIdFormat, seed: u64, n: usize) -> Vec<String> {
    let config = SimConfig {
        message_id_format: format,
        seed,
        ..config_with(vec![account("esme")])
    };
    let sim = TestSim::start(config).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let mut out = Vec::new();
    for i in 0..n {
        out.push(esme.submit_ok(sm("447700900123", &format!("{i}"))).await.0);
    }
    out
}

#[tokio::test]
async fn hands_out_hex_ids() {
    let ids = ids(MessageIdFormat::Hex, 1, 20).await;
    for id in &ids {
        assert_eq!(id.len(), 16, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{id}"
        );
    }
    assert_distinct(&ids);
}

#[tokio::test]
async fn hands_out_decimal_ids() {
    let ids = ids(MessageIdFormat::Decimal, 1, 20).await;
    for id in &ids {
        assert!(id.len() >= 10, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
    }
    assert_distinct(&ids);
}

#[tokio::test]
async fn hands_out_uuid_like_ids() {
    let ids = ids(MessageIdFormat::Uuid, 1, 20).await;
    for id in &ids {
        let groups: Vec<&str> = id.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
        assert!(
            groups
                .iter()
                .all(|g| g.chars().all(|c| c.is_ascii_hexdigit())),
            "{id}"
        );
    }
    assert_distinct(&ids);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_ids_and_another_seed_other_ids() {
    for format in [
        MessageIdFormat::Hex,
        MessageIdFormat::Decimal,
        MessageIdFormat::Uuid,
    ] {
        let a = ids(format, 42, 5).await;
        let b = ids(format, 42, 5).await;
        let c = ids(format, 43, 5).await;
        assert_eq!(a, b, "{format:?}");
        assert_ne!(a, c, "{format:?}");
    }
}

fn assert_distinct(ids: &[String]) {
    let set: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "{ids:?}");
}

#[tokio::test]
async fn another_account_can_neither_query_nor_replace_a_message() {
    let mut other = slow(400);
    other.system_id = "other".into();
    let sim = TestSim::start(config_with(vec![slow(400), other])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let mut stranger = Esme::bound(sim.addr, "other").await;
    let (id, _) = esme.submit_ok(sm("447700900123", "mine")).await;
    let resp = stranger.call(query(&id)).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVMSGID);
    let resp = stranger.call(replace(&id, b"yours")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RREPLACEFAIL);
    let resp = stranger.call(cancel(&id, "447700900123")).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RCANCELFAIL);
    assert_eq!(sim.handle.messages(None, 1)[0].text, "mine");
    let r = query_resp(&esme.call(query(&id)).await);
    assert_eq!(r.message_state, MessageState::ENROUTE);
}

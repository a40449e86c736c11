//! The simulator end to end: bind, submit, receipt, handset view, over a real socket.

mod common;

use common::*;
use smppd::pdu::*;

#[tokio::test]
async fn binds_submits_and_sends_a_receipt_on_the_same_transceiver() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let mut m = sm("447700900123", "Hello");
    m.registered_delivery = RegisteredDelivery::FINAL;
    let (resp, mut early) = esme.submit(m).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let id = message_id(&resp);
    let receipt = match early.pop() {
        Some(r) => r,
        None => esme.next_deliver(WAIT).await.expect("a receipt"),
    };
    let Body::DeliverSm(r) = &receipt.body else {
        panic!()
    };
    assert!(r.esm_class.is_receipt());
    assert_eq!(r.tlvs.receipted_message_id().unwrap(), id.as_bytes());
    let text = String::from_utf8_lossy(r.short_message.as_bytes()).into_owned();
    assert!(text.starts_with(&format!("id:{id} ")), "{text}");
    assert!(text.contains("stat:DELIVRD"), "{text}");
    esme.answer(&receipt).await;
    let handset = sim.handle.messages(Some("447700900123"), 10);
    assert_eq!(handset.len(), 1);
    assert_eq!(handset[0].text, "Hello");
    let (status, body) = http(sim.control, "GET", "/stats", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"messages_accepted\":1"), "{body}");
    let stats = sim.stop().await;
    assert_eq!(stats.receipts_acked, 1);
}

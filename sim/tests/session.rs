//! Requirement 1: a real SMSC server. TCP and TLS, accounts, the 3.4 session rules, enquire_link
//! both ways, the unbind handshake, generic_nack, and the session timers.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use smppd::pdu::*;
use smsc_sim::Sim;
use smsc_sim::config::{BindType, SimConfig};
use tokio::net::TcpStream;

#[tokio::test]
async fn serves_tls_with_the_given_certificate() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = key.cert.pem();
    let key_pem = key.signing_key.serialize_pem();
    let sim = Sim::new(config_with(vec![account("esme")]))
        .unwrap()
        .with_tls(cert_pem.as_bytes(), key_pem.as_bytes())
        .unwrap();
    let sim = TestSim::start_sim(sim).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(key.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(sim.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let mut esme = Esme::over(tls);

    let resp = esme.bind(CommandId::BIND_TRANSCEIVER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let mut m = sm("447700900123", "over TLS");
    m.registered_delivery = RegisteredDelivery::FINAL;
    let (id, early) = esme.submit_ok(m).await;
    let receipt = esme.delivers(1, early).await.remove(0);
    assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
    assert_eq!(sim.handle.messages(None, 10)[0].text, "over TLS");
}

#[tokio::test]
async fn a_plain_client_gets_nothing_from_the_tls_listener() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let sim = Sim::new(config_with(vec![account("esme")]))
        .unwrap()
        .with_tls(
            key.cert.pem().as_bytes(),
            key.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
    let sim = TestSim::start_sim(sim).await;
    let mut esme = Esme::connect(sim.addr).await;
    let seq = esme.next_seq();
    esme.send(&Pdu::new(seq, Body::EnquireLink)).await;
    // The bytes are not a TLS ClientHello: at most a TLS alert comes back, then the close.
    assert!(esme.closed_within(WAIT).await);
    assert!(sim.handle.stats().pdus_sent.is_empty());
    assert_eq!(sim.handle.stats().binds_total, 0);
}

#[tokio::test]
async fn refuses_a_wrong_password_with_rinvpaswd() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme.bind(CommandId::BIND_TRANSCEIVER, "esme", "nope").await;
    assert_eq!(resp.command_id(), CommandId::BIND_TRANSCEIVER_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVPASWD);
    // The right password on the same connection still works.
    let resp = esme.bind(CommandId::BIND_TRANSCEIVER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    assert_eq!(sim.handle.stats().binds_refused, 1);
}

#[tokio::test]
async fn refuses_an_unknown_system_id_with_rinvsysid() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme
        .bind(CommandId::BIND_TRANSMITTER, "stranger", "pw")
        .await;
    assert_eq!(resp.command_id(), CommandId::BIND_TRANSMITTER_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVSYSID);
}

#[tokio::test]
async fn refuses_a_bind_type_the_account_does_not_allow() {
    let mut tx_only = account("esme");
    tx_only.bind_types = vec![BindType::Transmitter];
    let sim = TestSim::start(config_with(vec![tx_only])).await;
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme.bind(CommandId::BIND_RECEIVER, "esme", "pw").await;
    assert_eq!(resp.command_id(), CommandId::BIND_RECEIVER_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RBINDFAIL);
    let resp = esme.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
}

#[tokio::test]
async fn refuses_a_bind_beyond_max_binds_with_ralybnd_and_accepts_one_after_an_unbind() {
    let mut acct = account("esme");
    acct.max_binds = 2;
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut first = Esme::bound(sim.addr, "esme").await;
    let _second = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let mut third = Esme::connect(sim.addr).await;
    let resp = third.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RALYBND);
    assert_eq!(sim.handle.bound("esme"), 2);

    let resp = first.call(Body::Unbind).await;
    assert_eq!(resp.command_id(), CommandId::UNBIND_RESP);
    eventually("the unbound session is forgotten", || {
        sim.handle.bound("esme") == 1
    })
    .await;
    let resp = third.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
}

#[tokio::test]
async fn refuses_a_second_bind_on_one_connection_with_ralybnd_and_keeps_the_first() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let resp = esme.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_id(), CommandId::BIND_TRANSMITTER_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RALYBND);
    esme.submit_ok(sm("447700900123", "still bound")).await;
    assert_eq!(sim.handle.bound("esme"), 1);
}

#[tokio::test]
async fn answers_submit_before_bind_with_rinvbndsts() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::connect(sim.addr).await;
    let (resp, _) = esme.submit(sm("447700900123", "too early")).await;
    assert_eq!(resp.command_id(), CommandId::SUBMIT_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
    let resp = esme
        .call(Body::QuerySm(QuerySm {
            message_id: COctetString::try_from("1").unwrap(),
            ..QuerySm::default()
        }))
        .await;
    assert_eq!(resp.command_id(), CommandId::QUERY_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
    // The connection is still usable: bind and submit.
    let resp = esme.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    esme.submit_ok(sm("447700900123", "now")).await;
    assert_eq!(sim.handle.stats().messages_accepted, 1);
}

#[tokio::test]
async fn answers_submit_on_a_receiver_bind_with_rinvbndsts() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut rx = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    let (resp, _) = rx.submit(sm("447700900123", "not here")).await;
    assert_eq!(resp.command_id(), CommandId::SUBMIT_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
    let resp = rx
        .call(Body::DataSm(DataSm {
            destination_addr: COctetString::try_from("447700900123").unwrap(),
            ..DataSm::default()
        }))
        .await;
    assert_eq!(resp.command_id(), CommandId::DATA_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(sim.handle.stats().messages_accepted, 0);
}

#[tokio::test]
async fn answers_deliver_sm_from_an_esme_with_rinvbndsts() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let resp = esme
        .call(Body::DeliverSm(sm("447700900123", "wrong way")))
        .await;
    assert_eq!(resp.command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
}

#[tokio::test]
async fn answers_enquire_link_before_and_after_bind() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme.call(Body::EnquireLink).await;
    assert_eq!(resp.command_id(), CommandId::ENQUIRE_LINK_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let resp = esme.bind(CommandId::BIND_TRANSCEIVER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let seq = esme.request(Body::EnquireLink).await;
    let resp = esme.recv().await;
    assert_eq!(resp.command_id(), CommandId::ENQUIRE_LINK_RESP);
    assert_eq!(resp.sequence_number, seq);
}

#[tokio::test]
async fn completes_the_unbind_handshake_and_closes_the_connection() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let seq = esme.request(Body::Unbind).await;
    let resp = esme.recv().await;
    assert_eq!(resp.command_id(), CommandId::UNBIND_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    assert_eq!(resp.sequence_number, seq);
    assert!(esme.closed_within(WAIT).await);
    eventually("the bind is gone", || sim.handle.bound("esme") == 0).await;
}

#[tokio::test]
async fn answers_unbind_before_bind_with_rinvbndsts() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme.call(Body::Unbind).await;
    assert_eq!(resp.command_id(), CommandId::UNBIND_RESP);
    assert_eq!(resp.command_status, CommandStatus::ESME_RINVBNDSTS);
}

#[tokio::test]
async fn nacks_an_unknown_command_and_keeps_the_bind() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    // command_id 0x00000099 does not exist in 3.4 (reference §8).
    esme.send_raw(&[0, 0, 0, 16, 0, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 5])
        .await;
    let nack = esme.recv().await;
    assert_eq!(nack.command_id(), CommandId::GENERIC_NACK);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDID);
    assert_eq!(nack.sequence_number, 5);
    esme.submit_ok(sm("447700900123", "after the nack")).await;
    assert_eq!(sim.handle.messages(None, 10)[0].text, "after the nack");
}

#[tokio::test]
async fn answers_a_submit_with_a_bad_body_and_keeps_the_bind() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    // submit_sm whose body stops inside service_type (no NUL, nothing after).
    let mut frame = vec![0, 0, 0, 19, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 42];
    frame.extend_from_slice(b"abc");
    esme.send_raw(&frame).await;
    let resp = esme.recv().await;
    assert_eq!(resp.sequence_number, 42);
    assert!(
        matches!(
            resp.command_id(),
            CommandId::SUBMIT_SM_RESP | CommandId::GENERIC_NACK
        ),
        "{resp:?}"
    );
    assert!(!resp.command_status.is_ok(), "{resp:?}");
    // A bad body of a PDU that has no response of its own gets generic_nack.
    let mut frame = vec![0, 0, 0, 18, 0, 0, 0, 0x0B, 0, 0, 0, 0, 0, 0, 0, 43];
    frame.extend_from_slice(b"ab");
    esme.send_raw(&frame).await;
    let nack = esme.recv().await;
    assert_eq!(nack.command_id(), CommandId::GENERIC_NACK);
    assert_eq!(nack.sequence_number, 43);
    assert!(!nack.command_status.is_ok());

    esme.submit_ok(sm("447700900123", "still bound")).await;
    assert_eq!(sim.handle.bound("esme"), 1);
}

#[tokio::test]
async fn nacks_a_broken_frame_length_and_closes_that_connection_only() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut other = Esme::bound(sim.addr, "esme").await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    // command_length 8 is below the header size: framing is lost (3.4 §4.3).
    esme.send_raw(&[0, 0, 0, 8, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 9])
        .await;
    let nack = esme.recv().await;
    assert_eq!(nack.command_id(), CommandId::GENERIC_NACK);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert!(esme.closed_within(WAIT).await);
    other.submit_ok(sm("447700900123", "unaffected")).await;
}

fn timers(enquire_link_interval_ms: u64) -> SimConfig {
    SimConfig {
        enquire_link_interval_ms,
        response_timeout_ms: 200,
        ..config_with(vec![account("esme")])
    }
}

#[tokio::test]
async fn sends_enquire_link_to_an_idle_esme() {
    let sim = TestSim::start(timers(100)).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let bound_at = Instant::now();
    let pdu = esme.recv().await;
    assert_eq!(pdu.command_id(), CommandId::ENQUIRE_LINK);
    assert!(bound_at.elapsed() >= Duration::from_millis(90));
    esme.answer(&pdu).await;
    // Answered: the link stays up and the next one comes.
    let pdu = esme.recv().await;
    assert_eq!(pdu.command_id(), CommandId::ENQUIRE_LINK);
    esme.answer(&pdu).await;
    esme.submit_ok(sm("447700900123", "alive")).await;
    assert!(sim.handle.stats().pdus_received["enquire_link_resp"] >= 2);
}

#[tokio::test]
async fn closes_the_link_when_its_enquire_link_goes_unanswered() {
    let sim = TestSim::start(timers(100)).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let pdu = esme.recv().await;
    assert_eq!(pdu.command_id(), CommandId::ENQUIRE_LINK);
    // Not answered: after response_timeout_ms the SMSC drops the link.
    assert!(esme.closed_within(WAIT).await);
    eventually("the bind is gone", || sim.handle.bound("esme") == 0).await;
}

#[tokio::test]
async fn never_sends_enquire_link_before_the_bind() {
    let config = SimConfig {
        session_init_timeout_ms: 600,
        ..timers(50)
    };
    let sim = TestSim::start(config).await;
    let mut esme = Esme::connect(sim.addr).await;
    // Nothing arrives on an unbound connection until it is closed for not binding.
    assert!(esme.recv_within(WAIT).await.is_none());
    assert!(!sim.handle.stats().pdus_sent.contains_key("enquire_link"));
}

#[tokio::test]
async fn closes_an_unbound_connection_after_the_session_init_timeout() {
    let config = SimConfig {
        session_init_timeout_ms: 150,
        ..config_with(vec![account("esme")])
    };
    let sim = TestSim::start(config).await;
    let mut esme = Esme::connect(sim.addr).await;
    let opened = Instant::now();
    assert!(esme.closed_within(WAIT).await);
    assert!(opened.elapsed() >= Duration::from_millis(140));
    // A bound connection is not subject to it.
    let mut bound = Esme::bound(sim.addr, "esme").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bound.submit_ok(sm("447700900123", "bound")).await;
}

#[tokio::test]
async fn unbinds_every_esme_when_it_shuts_down() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    sim.shutdown.cancel();
    let pdu = esme.recv().await;
    assert_eq!(pdu.command_id(), CommandId::UNBIND);
    esme.answer(&pdu).await;
    assert!(esme.closed_within(WAIT).await);
    let stats = sim.task.await.unwrap();
    assert_eq!(stats.binds_active, 0);
}

//! Requirement 6: faults per account, set at start and changed while running (through
//! `SimHandle::set_faults` and `POST /faults` with partial fields).

mod common;

use std::time::{Duration, Instant};

use common::*;
use smppd::pdu::*;
use smsc_sim::config::{AccountConfig, DelayRange, Faults};

const TO: &str = "447700900123";

fn faulty(faults: Faults) -> AccountConfig {
    let mut a = account("esme");
    a.faults = faults;
    a
}

/// Sends `n` submit_sm back to back, then collects the `n` responses' statuses in order of
/// arrival (answering deliver_sm meanwhile).
async fn burst(esme: &mut Esme, n: usize) -> Vec<CommandStatus> {
    let mut seqs = Vec::new();
    let mut frames = Vec::new();
    for i in 0..n {
        let seq = esme.next_seq();
        seqs.push(seq);
        frames
            .extend_from_slice(&Pdu::new(seq, Body::SubmitSm(sm(TO, &format!("{i}")))).to_bytes());
    }
    esme.send_raw(&frames).await;
    let mut statuses = Vec::new();
    while statuses.len() < n {
        let pdu = esme.recv().await;
        if pdu.command_id() == CommandId::SUBMIT_SM_RESP {
            assert!(seqs.contains(&pdu.sequence_number));
            statuses.push(pdu.command_status);
        } else {
            esme.answer(&pdu).await;
        }
    }
    statuses
}

fn count(statuses: &[CommandStatus], status: CommandStatus) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn post_faults(sim: &TestSim, json: &str) {
    let (status, body) = http(sim.control, "POST", "/faults", Some(json)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn throttles_above_the_tps_limit_set_at_start() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        tps_limit: Some(5),
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let statuses = burst(&mut esme, 30).await;
    assert!(count(&statuses, CommandStatus::ESME_ROK) >= 1);
    assert!(count(&statuses, CommandStatus::ESME_RTHROTTLED) >= 1);
    assert_eq!(
        count(&statuses, CommandStatus::ESME_ROK)
            + count(&statuses, CommandStatus::ESME_RTHROTTLED),
        30
    );
    let throttled = sim.handle.stats().responses["submit_sm_resp"]["ESME_RTHROTTLED"];
    assert_eq!(
        throttled as usize,
        count(&statuses, CommandStatus::ESME_RTHROTTLED)
    );
}

#[tokio::test]
async fn throttles_when_a_tps_limit_is_set_at_run_time_and_stops_when_cleared() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    assert_eq!(
        count(&burst(&mut esme, 20).await, CommandStatus::ESME_ROK),
        20
    );
    sim.handle
        .set_faults(
            "esme",
            Faults {
                tps_limit: Some(3),
                ..Faults::default()
            },
        )
        .unwrap();
    assert!(count(&burst(&mut esme, 20).await, CommandStatus::ESME_RTHROTTLED) >= 1);
    post_faults(&sim, r#"{"account":"esme","tps_limit":null}"#).await;
    assert_eq!(
        count(&burst(&mut esme, 20).await, CommandStatus::ESME_ROK),
        20
    );
}

#[tokio::test]
async fn answers_rmsgqful_beyond_the_window_while_responses_are_held() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        window_limit: Some(2),
        latency: DelayRange::fixed(300),
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let statuses = burst(&mut esme, 5).await;
    assert_eq!(count(&statuses, CommandStatus::ESME_ROK), 2);
    assert_eq!(count(&statuses, CommandStatus::ESME_RMSGQFUL), 3);
}

#[tokio::test]
async fn applies_a_window_limit_posted_at_run_time() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    post_faults(
        &sim,
        r#"{"account":"esme","window_limit":3,"latency":{"min_ms":300,"max_ms":300}}"#,
    )
    .await;
    let statuses = burst(&mut esme, 6).await;
    assert_eq!(count(&statuses, CommandStatus::ESME_ROK), 3);
    assert_eq!(count(&statuses, CommandStatus::ESME_RMSGQFUL), 3);
}

#[tokio::test]
async fn answers_the_chosen_error_statuses_at_the_error_rate() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        error_rate: 1.0,
        error_statuses: vec!["ESME_RSUBMITFAIL".into(), "0x00000014".into()],
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let statuses = burst(&mut esme, 40).await;
    let fail = count(&statuses, CommandStatus::ESME_RSUBMITFAIL);
    let full = count(&statuses, CommandStatus::ESME_RMSGQFUL);
    assert!(fail >= 1 && full >= 1, "{statuses:?}");
    assert_eq!(fail + full, 40);
    assert_eq!(sim.handle.stats().messages_accepted, 0);
    assert!(sim.handle.messages(None, 10).is_empty());

    // Half the time, with another status, set while running.
    sim.handle
        .set_faults(
            "esme",
            Faults {
                error_rate: 0.5,
                error_statuses: vec!["ESME_RX_T_APPN".into()],
                ..Faults::default()
            },
        )
        .unwrap();
    let statuses = burst(&mut esme, 100).await;
    let ok = count(&statuses, CommandStatus::ESME_ROK);
    let refused = count(&statuses, CommandStatus::ESME_RX_T_APPN);
    assert!(ok >= 20 && refused >= 20, "{ok} ok, {refused} refused");
    assert_eq!(ok + refused, 100);
}

#[tokio::test]
async fn holds_responses_for_at_least_the_latency() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        latency: DelayRange::fixed(200),
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let sent = Instant::now();
    esme.submit_ok(sm(TO, "slow")).await;
    assert!(sent.elapsed() >= Duration::from_millis(195));

    post_faults(
        &sim,
        r#"{"account":"esme","latency":{"min_ms":120,"max_ms":150}}"#,
    )
    .await;
    let sent = Instant::now();
    esme.submit_ok(sm(TO, "slow again")).await;
    assert!(sent.elapsed() >= Duration::from_millis(115));
}

#[tokio::test]
async fn drops_responses_but_keeps_the_message() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        drop_response_rate: 1.0,
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    esme.request(Body::SubmitSm(sm(TO, "lost answer"))).await;
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    assert_eq!(sim.handle.messages(Some(TO), 1)[0].text, "lost answer");
    assert_eq!(sim.handle.stats().responses_dropped, 1);
    // Cleared at run time: answers come again, and other PDUs were answered all along.
    post_faults(&sim, r#"{"account":"esme","drop_response_rate":0}"#).await;
    esme.submit_ok(sm(TO, "answered")).await;
    assert_eq!(
        esme.call(Body::EnquireLink).await.command_id(),
        CommandId::ENQUIRE_LINK_RESP
    );
}

#[tokio::test]
async fn drops_responses_when_set_at_run_time() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                drop_response_rate: 1.0,
                ..Faults::default()
            },
        )
        .unwrap();
    esme.request(Body::SubmitSm(sm(TO, "lost"))).await;
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    assert_eq!(sim.handle.stats().responses_dropped, 1);
}

#[tokio::test]
async fn disconnects_after_n_pdus() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        disconnect_after_pdus: Some(3),
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await; // PDU 1
    esme.submit_ok(sm(TO, "second")).await; // PDU 2
    esme.request(Body::SubmitSm(sm(TO, "third"))).await; // PDU 3: the link drops
    assert!(esme.closed_within(WAIT).await);
    assert_eq!(sim.handle.stats().disconnects_injected, 1);
    eventually("the bind is gone", || sim.handle.bound("esme") == 0).await;
}

#[tokio::test]
async fn disconnects_after_n_pdus_set_at_run_time() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    esme.submit_ok(sm(TO, "before")).await;
    post_faults(&sim, r#"{"account":"esme","disconnect_after_pdus":4}"#).await;
    esme.submit_ok(sm(TO, "third")).await;
    esme.request(Body::SubmitSm(sm(TO, "fourth"))).await;
    assert!(esme.closed_within(WAIT).await);
    assert_eq!(sim.handle.stats().disconnects_injected, 1);
}

#[tokio::test]
async fn disconnects_n_seconds_after_the_bind() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        disconnect_after_secs: Some(0.2),
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let bound = Instant::now();
    assert!(esme.closed_within(WAIT).await);
    assert!(bound.elapsed() >= Duration::from_millis(190));
    assert_eq!(sim.handle.stats().disconnects_injected, 1);
}

#[tokio::test]
async fn disconnects_an_open_bind_when_set_at_run_time() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                disconnect_after_secs: Some(0.2),
                ..Faults::default()
            },
        )
        .unwrap();
    assert!(esme.closed_within(WAIT).await);
    assert_eq!(sim.handle.stats().disconnects_injected, 1);
}

#[tokio::test]
async fn refuses_binds_with_rbindfail_for_the_outage_then_accepts_them() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        refuse_binds_secs: Some(0.3),
        ..Faults::default()
    })]))
    .await;
    let started = Instant::now();
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme.bind(CommandId::BIND_TRANSCEIVER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RBINDFAIL);
    tokio::time::sleep(Duration::from_millis(300).saturating_sub(started.elapsed())).await;
    let resp = esme.bind(CommandId::BIND_TRANSCEIVER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
}

#[tokio::test]
async fn refuses_binds_from_when_an_outage_is_posted_and_not_again_on_other_changes() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    post_faults(&sim, r#"{"account":"esme","refuse_binds_secs":0.3}"#).await;
    let posted = Instant::now();
    let mut esme = Esme::connect(sim.addr).await;
    let resp = esme.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_RBINDFAIL);
    tokio::time::sleep(Duration::from_millis(320).saturating_sub(posted.elapsed())).await;
    // Another fault changes; the outage is over and stays over.
    post_faults(
        &sim,
        r#"{"account":"esme","latency":{"min_ms":1,"max_ms":1}}"#,
    )
    .await;
    let resp = esme.bind(CommandId::BIND_TRANSMITTER, "esme", "pw").await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let faults = sim.handle.faults("esme").unwrap();
    assert_eq!(faults.refuse_binds_secs, Some(0.3));
    assert_eq!(faults.latency, DelayRange::fixed(1));
}

#[tokio::test]
async fn stalls_without_answering_or_closing_then_answers_when_cleared() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    post_faults(&sim, r#"{"account":"esme","stall":true}"#).await;
    let seq = esme.request(Body::SubmitSm(sm(TO, "stuck"))).await;
    esme.request(Body::EnquireLink).await;
    // Nothing comes back, and the socket stays open (recv_within sees a timeout, not EOF).
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    assert_eq!(sim.handle.bound("esme"), 1);
    sim.handle.set_faults("esme", Faults::default()).unwrap();
    let (resp, _) = esme.response(seq).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let link = esme.recv().await;
    assert_eq!(link.command_id(), CommandId::ENQUIRE_LINK_RESP);
}

#[tokio::test]
async fn stalls_from_the_start_once_bound() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        stall: true,
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let seq = esme.request(Body::SubmitSm(sm(TO, "stuck"))).await;
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    post_faults(&sim, r#"{"account":"esme","stall":false}"#).await;
    let (resp, _) = esme.response(seq).await;
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
}

fn asking(text: &str) -> SubmitSm {
    let mut m = sm(TO, text);
    m.registered_delivery = RegisteredDelivery::FINAL;
    m
}

#[tokio::test]
async fn delays_receipts_by_the_fault_set_at_start_or_run_time() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        receipt_delay: DelayRange::fixed(200),
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let sent = Instant::now();
    let (_, early) = esme.submit_ok(asking("late")).await;
    esme.delivers(1, early).await;
    assert!(sent.elapsed() >= Duration::from_millis(195));

    post_faults(
        &sim,
        r#"{"account":"esme","receipt_delay":{"min_ms":250,"max_ms":300}}"#,
    )
    .await;
    let sent = Instant::now();
    let (_, early) = esme.submit_ok(asking("later")).await;
    esme.delivers(1, early).await;
    assert!(sent.elapsed() >= Duration::from_millis(245));
}

#[tokio::test]
async fn drops_receipts_at_the_drop_rate() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        receipt_drop_rate: 1.0,
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    esme.submit_ok(asking("no receipt")).await;
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    assert_eq!(sim.handle.stats().receipts_dropped, 1);
    post_faults(&sim, r#"{"account":"esme","receipt_drop_rate":0.0}"#).await;
    let (_, early) = esme.submit_ok(asking("receipt")).await;
    esme.delivers(1, early).await;
}

#[tokio::test]
async fn drops_receipts_when_set_at_run_time() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                receipt_drop_rate: 1.0,
                ..Faults::default()
            },
        )
        .unwrap();
    esme.submit_ok(asking("no receipt")).await;
    assert!(esme.quiet_for(Duration::from_millis(300)).await);
    assert_eq!(sim.handle.stats().receipts_dropped, 1);
}

/// Sends one submit asking for a receipt and returns the command ids in arrival order until
/// both the response and the receipt are in.
async fn arrival_order(esme: &mut Esme) -> Vec<CommandId> {
    esme.request(Body::SubmitSm(asking("who first?"))).await;
    let mut order = Vec::new();
    while order.len() < 2 {
        let pdu = esme.recv().await;
        esme.answer(&pdu).await;
        if pdu.command_id() != CommandId::ENQUIRE_LINK {
            order.push(pdu.command_id());
        }
    }
    order
}

#[tokio::test]
async fn sends_the_receipt_before_the_submit_response_on_a_transceiver() {
    let sim = TestSim::start(config_with(vec![faulty(Faults {
        receipt_before_response: true,
        ..Faults::default()
    })]))
    .await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    for _ in 0..5 {
        assert_eq!(
            arrival_order(&mut esme).await,
            [CommandId::DELIVER_SM, CommandId::SUBMIT_SM_RESP]
        );
    }
}

#[tokio::test]
async fn sends_the_receipt_first_when_switched_on_at_run_time() {
    let mut acct = account("esme");
    acct.receipts.delay = DelayRange::fixed(50);
    let sim = TestSim::start(config_with(vec![acct])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    assert_eq!(
        arrival_order(&mut esme).await,
        [CommandId::SUBMIT_SM_RESP, CommandId::DELIVER_SM]
    );
    post_faults(&sim, r#"{"account":"esme","receipt_before_response":true}"#).await;
    assert_eq!(
        arrival_order(&mut esme).await,
        [CommandId::DELIVER_SM, CommandId::SUBMIT_SM_RESP]
    );
}

#[tokio::test]
async fn keeps_faults_to_their_own_account() {
    let mut other = account("other");
    other.faults.error_rate = 1.0;
    let sim = TestSim::start(config_with(vec![account("esme"), other])).await;
    let mut good = Esme::bound(sim.addr, "esme").await;
    let mut bad = Esme::bound(sim.addr, "other").await;
    assert_eq!(
        count(&burst(&mut good, 10).await, CommandStatus::ESME_ROK),
        10
    );
    assert_eq!(
        count(&burst(&mut bad, 10).await, CommandStatus::ESME_RSYSERR),
        10
    );
    post_faults(&sim, r#"{"account":"esme","stall":true}"#).await;
    assert_eq!(
        count(&burst(&mut bad, 3).await, CommandStatus::ESME_RSYSERR),
        3
    );
}

#[tokio::test]
async fn rejects_invalid_faults_and_unknown_accounts() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    for body in [
        r#"{"account":"esme","error_rate":2}"#,
        r#"{"account":"esme","error_statuses":["ESME_NOPE"]}"#,
        r#"{"account":"esme","no_such_fault":1}"#,
        r#"{"account":"esme","refuse_binds_secs":-1}"#,
        r#"{"account":"esme","latency":{"min_ms":5,"max_ms":1}}"#,
        r#"{"stall":true}"#,
    ] {
        let (status, reply) = http(sim.control, "POST", "/faults", Some(body)).await;
        assert_eq!(status, 400, "{body}: {reply}");
    }
    let (status, _) = http(sim.control, "POST", "/faults", Some(r#"{"account":"x"}"#)).await;
    assert_eq!(status, 404);
    assert_eq!(sim.handle.faults("esme").unwrap(), Faults::default());
}

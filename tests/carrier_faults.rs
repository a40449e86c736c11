//! The carrier pool against smsc-sim over real sockets, one fault at a time.

mod carrier_support;

use std::time::Duration;

use bytes::Bytes;
use carrier_support::*;
use smppd::carrier::{BindKind, BindState, BreakerState, CarrierEvent, SubmitError};
use smppd::conn::{InboundPdu, PartOutcome};
use smppd::pdu::{CommandStatus, RegisteredDelivery, StatusClass};
use smppd::session::CloseReason;
use smsc_sim::config::{DelayRange, Faults};

fn with_receipt(body: smppd::pdu::Body) -> smppd::pdu::Body {
    match body {
        smppd::pdu::Body::SubmitSm(mut sm) => {
            sm.registered_delivery = RegisteredDelivery::FINAL;
            smppd::pdu::Body::SubmitSm(sm)
        }
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_all_parts_on_one_bind_and_acks_the_receipt_only_when_answered() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.binds[0].count = 2;
    let mut s = start(config);
    until("two binds up", || s.pool.binds_up() == 2).await;

    let mut parts = vec![
        with_receipt(sm("447700900123", "part one")),
        sm("447700900123", "part two"),
        sm("447700900123", "part three"),
    ];
    let submission = s.pool.submit(&mut parts, 7).await.expect("a bind takes it");
    assert!(parts.is_empty(), "the parts were taken");
    let bind = submission.bind();
    let outcome = submission.await;
    assert_eq!(outcome.bind, bind);
    assert_eq!(outcome.parts.len(), 3);
    assert!(outcome.all_accepted(), "{outcome:?}");

    let delivery = tokio::time::timeout(WAIT, s.deliveries.recv())
        .await
        .expect("a receipt within the wait")
        .expect("the pool is running");
    let InboundPdu::DeliverSm(receipt) = &delivery.pdu else {
        panic!("a deliver_sm")
    };
    assert!(receipt.esm_class.is_receipt());
    // Not answered yet: the simulator has not seen a deliver_sm_resp.
    tokio::task::yield_now().await;
    assert_eq!(sim.handle.stats().receipts_acked, 0);
    delivery
        .responder
        .respond(CommandStatus::ESME_ROK)
        .await
        .unwrap();
    until("the receipt acked", || {
        sim.handle.stats().receipts_acked == 1
    })
    .await;

    assert!(s.pool.shutdown(WAIT).await, "clean shutdown");
    let stats = sim.stop().await;
    assert_eq!(stats.messages_accepted, 3);
    assert_eq!(
        stats.pdus_received.get("unbind").copied(),
        Some(2),
        "both binds unbound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_responder_makes_the_smsc_redeliver() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut s = start(carrier("acme", sim.addr, "esme"));
    until("bound", || s.pool.binds_up() == 1).await;
    sim.handle
        .inject_mo("esme", "447700900555", "447700900001", "STOP")
        .unwrap();
    let first = tokio::time::timeout(WAIT, s.deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    drop(first);
    // The simulator resends a deliver_sm answered with an error.
    let again = tokio::time::timeout(WAIT, s.deliveries.recv())
        .await
        .expect("redelivered")
        .unwrap();
    again
        .responder
        .respond(CommandStatus::ESME_ROK)
        .await
        .unwrap();
    s.pool.shutdown(WAIT).await;
    let stats = sim.stop().await;
    assert!(
        stats.receipts_resent >= 1 || stats.mo_sent >= 2,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_window_reports_in_flight_reconnects_and_loses_nothing() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.window = 20;
    let mut s = start(config);
    until("bound", || s.pool.binds_up() == 1).await;
    // Responses held back 200 ms so the window is full when the SMSC hangs up on its sixth
    // PDU (the bind was the first).
    sim.handle
        .set_faults(
            "esme",
            Faults {
                latency: DelayRange::fixed(200),
                disconnect_after_pdus: Some(6),
                ..Faults::default()
            },
        )
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..10u64 {
        let mut parts = vec![sm("447700900123", &format!("m{i}"))];
        pending.push((i, s.pool.submit(&mut parts, i).await.unwrap()));
    }
    let mut lost = Vec::new();
    let (mut accepted, mut in_doubt) = (0, 0);
    for (i, submission) in pending {
        let outcome = submission.await;
        match &outcome.parts[0] {
            PartOutcome::Accepted { .. } => accepted += 1,
            PartOutcome::BindLost { reason, .. } => {
                assert_eq!(*reason, CloseReason::ConnectionLost);
                in_doubt += 1;
                lost.push(i);
            }
            // Handed over while the bind was going down: never sent.
            PartOutcome::NotSent(_) => lost.push(i),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every message has exactly one outcome, and those in the window are reported in doubt.
    assert_eq!(accepted + lost.len(), 10);
    assert!(
        in_doubt >= 1,
        "in-flight parts reported as lost with the bind"
    );
    sim.handle.set_faults("esme", Faults::default()).unwrap();
    until("reconnected", || {
        s.pool.binds_up() == 1 && s.pool.status().binds[0].connections >= 2
    })
    .await;
    let mut down = false;
    while let Ok(e) = s.events.try_recv() {
        down |= matches!(
            e,
            CarrierEvent::BindDown {
                reason: CloseReason::ConnectionLost,
                ..
            }
        );
    }
    // Resubmit what was lost: all of it goes through on the new bind.
    for i in &lost {
        let mut parts = vec![sm("447700900123", &format!("m{i}"))];
        let outcome = s.pool.submit(&mut parts, *i).await.unwrap().await;
        assert!(outcome.all_accepted(), "{outcome:?}");
    }
    assert!(down, "the disconnect was reported as an event");
    s.pool.shutdown(WAIT).await;
    let stats = sim.stop().await;
    assert!(stats.disconnects_injected >= 1);
    assert!(stats.messages_accepted >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_smsc_is_detected_by_enquire_link_and_the_bind_replaced() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.enquire_link_interval_ms = 100;
    config.response_timeout_ms = 300;
    let mut s = start(config);
    until("bound", || s.pool.binds_up() == 1).await;
    let stalled = Faults {
        stall: true,
        ..Faults::default()
    };
    sim.handle.set_faults("esme", stalled).unwrap();
    let down = tokio::time::timeout(WAIT, async {
        loop {
            match s.events.recv().await {
                Some(CarrierEvent::BindDown { reason, .. }) => return reason,
                Some(_) => continue,
                None => panic!("events closed"),
            }
        }
    })
    .await
    .expect("the dead link is noticed");
    assert_eq!(down, CloseReason::LinkDead);
    sim.handle.set_faults("esme", Faults::default()).unwrap();
    until("a new bind", || {
        s.pool.binds_up() == 1 && s.pool.status().binds[0].connections >= 2
    })
    .await;
    let mut parts = vec![sm("447700900123", "after the stall")];
    assert!(
        s.pool
            .submit(&mut parts, 1)
            .await
            .unwrap()
            .await
            .all_accepted()
    );
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_halts_the_carrier_without_a_reconnect_storm() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.password = "wrong".into();
    config.binds[0].count = 2;
    let mut s = start(config);
    let status = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(CarrierEvent::AuthFailed { status, .. }) = s.events.recv().await {
                return status;
            }
        }
    })
    .await
    .expect("the alarm");
    assert_eq!(status, CommandStatus::ESME_RINVPASWD);
    // Many backoff periods (20..200 ms) later, nobody tried again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stats = sim.handle.stats();
    assert!(
        stats.binds_refused <= 2,
        "one attempt per slot at most, got {}",
        stats.binds_refused
    );
    assert!(stats.connections_total <= 2);
    let status = s.pool.status();
    assert_eq!(status.auth_failed, Some(CommandStatus::ESME_RINVPASWD));
    assert!(!s.pool.is_available());
    assert!(status.binds.iter().all(|b| b.state == BindState::Stopped));
    let mut parts = vec![sm("447700900123", "x")];
    assert_eq!(
        s.pool.try_submit(&mut parts, 1).unwrap_err(),
        SubmitError::AuthFailed(CommandStatus::ESME_RINVPASWD)
    );
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pdus_from_the_smsc_are_answered_and_the_bind_survives() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let s = start(carrier("acme", sim.addr, "esme"));
    until("bound", || s.pool.binds_up() == 1).await;
    // An unknown command id (0x00000099), sequence 5: generic_nack ESME_RINVCMDID.
    let unknown = Bytes::from_static(&[0, 0, 0, 16, 0, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 5]);
    sim.handle.inject_raw("esme", unknown).unwrap();
    // A deliver_sm whose body stops after service_type: answered with deliver_sm_resp
    // carrying the field's error, not handed to the application.
    let truncated = Bytes::from_static(&[0, 0, 0, 18, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]);
    sim.handle.inject_raw("esme", truncated).unwrap();
    until("generic_nack received by the SMSC", || {
        sim.handle
            .stats()
            .pdus_received
            .contains_key("generic_nack")
    })
    .await;
    until("deliver_sm_resp received by the SMSC", || {
        sim.handle
            .stats()
            .pdus_received
            .contains_key("deliver_sm_resp")
    })
    .await;
    let mut parts = vec![sm("447700900123", "still here")];
    assert!(
        s.pool
            .submit(&mut parts, 1)
            .await
            .unwrap()
            .await
            .all_accepted()
    );
    assert_eq!(s.pool.status().binds[0].connections, 1, "same bind");
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_responses_slow_the_bind_down_and_nothing_fails_for_good() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.tps = 400.0;
    config.window = 50;
    config.throttle.pause_ms = 50;
    config.throttle.recover_interval_ms = 60_000;
    let s = start(config);
    until("bound", || s.pool.binds_up() == 1).await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                tps_limit: Some(100),
                ..Faults::default()
            },
        )
        .unwrap();
    let total = 150;
    let mut accepted = 0;
    let mut throttled = 0;
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = 0u64;
    while accepted < total {
        while next < total as u64 && in_flight.len() < 50 {
            let mut parts = vec![sm("447700900123", "t")];
            in_flight.push_back((next, s.pool.submit(&mut parts, next).await.unwrap()));
            next += 1;
        }
        let Some((i, submission)) = in_flight.pop_front() else {
            break;
        };
        match submission.await.parts.remove(0) {
            PartOutcome::Accepted { .. } => accepted += 1,
            PartOutcome::Throttled { status, .. } => {
                assert_eq!(status.class(), StatusClass::Throttle);
                throttled += 1;
                // Requeue on the same carrier, as the dispatcher does.
                let mut parts = vec![sm("447700900123", "t")];
                in_flight.push_back((i, s.pool.submit(&mut parts, i).await.unwrap()));
            }
            other => panic!("a part failed: {other:?}"),
        }
    }
    assert!(throttled > 0, "the SMSC throttled");
    let rate = s.pool.status().binds[0].rate;
    assert!(rate < 400.0, "the bind slowed down, rate {rate}");
    assert_eq!(
        s.pool.breaker_state(),
        BreakerState::Closed,
        "throttling is not a failure"
    );
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_opens_the_breaker_traffic_fails_over_and_it_closes_after_recovery() {
    let sim = TestSim::start(vec![account("bad"), account("good")]).await;
    let mut config_a = carrier("a", sim.addr, "bad");
    config_a.carrier_breaker.consecutive_failures = 5;
    config_a.carrier_breaker.cooldown_ms = 300;
    config_a.carrier_breaker.probes = 2;
    config_a.breaker.consecutive_failures = 0;
    config_a.breaker.error_rate = 0.0;
    let a = start(config_a);
    let b = start(carrier("b", sim.addr, "good"));
    until("both carriers up", || {
        a.pool.binds_up() == 1 && b.pool.binds_up() == 1
    })
    .await;
    sim.handle
        .set_faults(
            "bad",
            Faults {
                error_rate: 1.0,
                error_statuses: vec!["ESME_RSYSERR".into()],
                ..Faults::default()
            },
        )
        .unwrap();
    // A route of [a, b]: each message tries a, then b.
    let mut via_b = 0;
    let mut failed_on_a = 0;
    for i in 0..30u64 {
        let mut parts = vec![sm("447700900123", "route")];
        match a.pool.try_submit(&mut parts, i) {
            Ok(submission) => {
                let outcome = submission.await;
                assert!(matches!(
                    outcome.parts[0],
                    PartOutcome::Rejected {
                        class: StatusClass::Transient,
                        ..
                    }
                ));
                failed_on_a += 1;
                // Transient: retried on the next carrier.
            }
            Err(e) => assert!(e.is_failover(), "{e}"),
        }
        let mut parts = vec![sm("447700900123", "route")];
        assert!(
            b.pool
                .submit(&mut parts, i)
                .await
                .unwrap()
                .await
                .all_accepted()
        );
        via_b += 1;
    }
    assert_eq!(
        failed_on_a, 5,
        "five failures open the breaker, then a is skipped"
    );
    assert_eq!(via_b, 30);
    assert_eq!(a.pool.breaker_state(), BreakerState::Open);
    assert!(!a.pool.is_available());

    // The fault clears; after the cooldown a half-opens and two probes close it.
    sim.handle.set_faults("bad", Faults::default()).unwrap();
    until("a half-opens", || a.pool.is_available()).await;
    for i in 0..2u64 {
        let mut parts = vec![sm("447700900123", "probe")];
        let outcome = a.pool.try_submit(&mut parts, 100 + i).unwrap().await;
        assert!(outcome.all_accepted());
    }
    assert_eq!(a.pool.breaker_state(), BreakerState::Closed);
    a.pool.shutdown(WAIT).await;
    b.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_window_then_unbinds() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.window = 20;
    let s = start(config);
    until("bound", || s.pool.binds_up() == 1).await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                latency: DelayRange::fixed(150),
                ..Faults::default()
            },
        )
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..15u64 {
        let mut parts = vec![sm("447700900123", "drain me")];
        pending.push(s.pool.submit(&mut parts, i).await.unwrap());
    }
    assert!(s.pool.shutdown(WAIT).await);
    for submission in pending {
        assert!(submission.await.all_accepted(), "drained before unbind");
    }
    let mut parts = vec![sm("447700900123", "late")];
    assert_eq!(
        s.pool.try_submit(&mut parts, 99).unwrap_err(),
        SubmitError::ShuttingDown
    );
    let stats = sim.stop().await;
    assert_eq!(stats.pdus_received.get("unbind").copied(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_deadline_hands_back_unanswered_parts_as_bind_lost() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let s = start(carrier("acme", sim.addr, "esme"));
    until("bound", || s.pool.binds_up() == 1).await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                drop_response_rate: 1.0,
                ..Faults::default()
            },
        )
        .unwrap();
    let mut parts = vec![sm("447700900123", "never answered")];
    let submission = s.pool.submit(&mut parts, 1).await.unwrap();
    assert!(!s.pool.shutdown(Duration::from_millis(100)).await);
    let outcome = submission.await;
    assert_eq!(
        outcome.parts[0],
        PartOutcome::BindLost {
            sequence_number: 2,
            reason: CloseReason::Local
        }
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transmitter_and_a_receiver_split_the_traffic() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.binds = vec![
        smppd::carrier::BindConfig {
            kind: BindKind::Transmitter,
            ..Default::default()
        },
        smppd::carrier::BindConfig {
            kind: BindKind::Receiver,
            ..Default::default()
        },
    ];
    let mut s = start(config);
    until("both up", || s.pool.binds_up() == 2).await;
    let mut parts = vec![with_receipt(sm("447700900123", "tx"))];
    let outcome = s.pool.submit(&mut parts, 1).await.unwrap().await;
    assert_eq!(outcome.bind.slot, 0, "only the transmitter submits");
    let delivery = tokio::time::timeout(WAIT, s.deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.bind.slot, 1, "the receipt comes on the receiver");
    delivery
        .responder
        .respond(CommandStatus::ESME_ROK)
        .await
        .unwrap();
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_response_to_an_in_doubt_part_reaches_the_event_stream() {
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.response_timeout_ms = 150;
    config.enquire_link_interval_ms = 0;
    let mut s = start(config);
    until("bound", || s.pool.binds_up() == 1).await;
    sim.handle
        .set_faults(
            "esme",
            Faults {
                latency: DelayRange::fixed(400),
                ..Faults::default()
            },
        )
        .unwrap();
    let mut parts = vec![sm("447700900123", "slow")];
    let outcome = s.pool.submit(&mut parts, 77).await.unwrap().await;
    let PartOutcome::TimedOut { sequence_number } = outcome.parts[0] else {
        panic!("in doubt: {outcome:?}")
    };
    assert!(outcome.parts[0].is_in_doubt());
    let late = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(CarrierEvent::LateResponse {
                reference,
                part,
                outcome,
                ..
            }) = s.events.recv().await
            {
                return (reference, part, outcome);
            }
        }
    })
    .await
    .expect("the late response");
    assert_eq!((late.0, late.1), (77, 0));
    assert!(
        matches!(late.2, PartOutcome::Accepted { sequence_number: seq, .. } if seq == sequence_number),
        "{late:?}"
    );
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_bound_makes_the_slot_wait_longer_before_trying_again() {
    let mut one_bind = account("esme");
    one_bind.max_binds = 1;
    let sim = TestSim::start(vec![one_bind]).await;
    let mut config = carrier("acme", sim.addr, "esme");
    config.binds[0].count = 2;
    config.reconnect.already_bound_ms = 60_000;
    let s = start(config);
    until("both slots answered, one of them ESME_RALYBND", || {
        s.pool.binds_up() == 1 && s.pool.status().binds.iter().any(|b| b.last_close.is_some())
    })
    .await;
    // Several ordinary backoffs (20..200 ms) later, the refused slot has not tried again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim.handle
            .stats()
            .pdus_received
            .get("bind_transceiver")
            .copied(),
        Some(2),
        "one bind each, no retry within already_bound_ms"
    );
    let refused = s
        .pool
        .status()
        .binds
        .iter()
        .filter(|b| b.last_close == Some(CloseReason::BindRefused(CommandStatus::ESME_RALYBND)))
        .count();
    assert_eq!(refused, 1);
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_on_to_the_next_host_when_one_refuses_connections() {
    let sim = TestSim::start(vec![account("esme")]).await;
    // A port nobody listens on any more.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut config = carrier("acme", sim.addr, "esme");
    config.hosts = vec![dead.to_string(), sim.addr.to_string()];
    let s = start(config);
    until("bound on the second host", || s.pool.binds_up() == 1).await;
    assert_eq!(
        s.pool.status().binds[0].connections,
        2,
        "one failed attempt first"
    );
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

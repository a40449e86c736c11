//! The session against a scripted SMSC, on a fake clock.
//!
//! Each test plays the SMSC's part by hand: it reads what the session transmitted (decoded
//! from the session's bytes with the real `PduCodec`, and checked to re-encode to the same
//! bytes), and feeds the session what an SMSC would send (encoded with `Pdu::to_bytes`, decoded
//! with `Pdu::decode`, exactly as the conn driver would). Time is a base `Instant` plus
//! durations; timers fire when the test advances the clock, at the instants the session asked
//! for through `poll_timeout`, as a driver would.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use smppd::pdu::*;
use smppd::session::*;
use tokio_util::codec::Decoder;

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// A session and the scripted SMSC on the other end of its connection.
struct Smsc {
    session: Session,
    t0: Instant,
    now: Instant,
    codec: PduCodec,
}

impl Smsc {
    /// A session just connected: its bind is queued, nothing answered.
    fn connect(config: SessionConfig) -> Smsc {
        let t0 = Instant::now();
        Smsc {
            session: Session::new(config, t0),
            t0,
            now: t0,
            codec: PduCodec::new(),
        }
    }

    /// A session whose bind the SMSC has accepted; its Bound event is consumed.
    fn bound(config: SessionConfig) -> Smsc {
        let mut smsc = Smsc::connect(config);
        let bind = smsc.expect_sent();
        smsc.send(Pdu::new(
            bind.sequence_number,
            Body::empty_response(bind.command_id())
                .map(|body| match body {
                    Body::BindTransceiverResp(_) => Body::BindTransceiverResp(Some(bind_resp())),
                    Body::BindTransmitterResp(_) => Body::BindTransmitterResp(Some(bind_resp())),
                    Body::BindReceiverResp(_) => Body::BindReceiverResp(Some(bind_resp())),
                    other => panic!("not a bind: {other:?}"),
                })
                .unwrap(),
        ));
        assert!(matches!(smsc.events()[..], [Event::Bound { .. }]));
        assert_eq!(smsc.session.state(), SessionState::Bound);
        smsc
    }

    fn default_bound() -> Smsc {
        Smsc::bound(config())
    }

    /// Time since the session was created.
    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Moves the clock forward by `by`, firing every timer due on the way at the instant the
    /// session asked for, as a driver re-arming one timer to `poll_timeout` would.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..10_000 {
            match self.session.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.session.handle_timeout(self.now);
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!(
            "timer keeps firing without moving: {:?}",
            self.session.poll_timeout()
        );
    }

    /// Everything the session transmitted since last asked, decoded with the real codec.
    fn sent(&mut self) -> Vec<Pdu> {
        let mut wire = BytesMut::new();
        let count = self.session.poll_transmit(&mut wire);
        let bytes = Bytes::copy_from_slice(&wire);
        let mut pdus = Vec::new();
        while let Some(item) = self.codec.decode(&mut wire).expect("framing") {
            pdus.push(item.expect("the session only sends PDUs that decode"));
        }
        assert!(wire.is_empty(), "a partial PDU was transmitted");
        assert_eq!(pdus.len(), count, "poll_transmit miscounted");
        let mut again = BytesMut::new();
        for pdu in &pdus {
            pdu.encode(&mut again);
        }
        assert_eq!(
            again.freeze(),
            bytes,
            "decoded PDUs re-encode to other bytes"
        );
        pdus
    }

    /// The one PDU the session transmitted.
    fn expect_sent(&mut self) -> Pdu {
        let mut sent = self.sent();
        assert_eq!(sent.len(), 1, "expected one PDU, got {sent:?}");
        sent.remove(0)
    }

    /// Asserts the session transmitted nothing.
    fn expect_silence(&mut self) {
        let sent = self.sent();
        assert!(sent.is_empty(), "expected silence, got {sent:?}");
    }

    /// The SMSC sends a PDU.
    fn send(&mut self, pdu: Pdu) {
        self.send_frame(pdu.to_bytes());
    }

    /// The SMSC sends a frame as octets, possibly malformed.
    fn send_frame(&mut self, frame: Bytes) {
        self.session.handle_pdu(self.now, Pdu::decode(&frame));
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn expect_event(&mut self) -> Event {
        let mut events = self.events();
        assert_eq!(events.len(), 1, "expected one event, got {events:?}");
        events.remove(0)
    }

    /// Submits a submit_sm and returns the PDU the SMSC receives.
    fn submit(&mut self, token: u64) -> Pdu {
        let sequence_number = self.session.submit(self.now, submit_sm(), token).unwrap();
        let pdu = self.expect_sent();
        assert_eq!(pdu.sequence_number, sequence_number);
        assert_eq!(pdu.command_id(), CommandId::SUBMIT_SM);
        pdu
    }

    /// The SMSC accepts a request with a message id.
    fn accept(&mut self, request: &Pdu, message_id: &str) {
        self.send(submit_sm_resp(request.sequence_number, message_id));
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        system_id: COctetString::try_from("esme1").unwrap(),
        password: COctetString::try_from("secret").unwrap(),
        ..SessionConfig::default()
    }
}

fn bind_resp() -> BindResp {
    BindResp {
        system_id: COctetString::try_from("SMSC").unwrap(),
        tlvs: TlvsBuilder::new()
            .u8(TlvTag::SC_INTERFACE_VERSION, 0x34)
            .build(),
    }
}

fn submit_sm() -> Body {
    Body::SubmitSm(SubmitSm {
        source_addr: COctetString::try_from("MyBrand").unwrap(),
        destination_addr: COctetString::try_from("447700900123").unwrap(),
        short_message: ShortMessage::new(&b"Hello"[..]).unwrap(),
        ..SubmitSm::default()
    })
}

fn submit_sm_resp(sequence_number: u32, message_id: &str) -> Pdu {
    Pdu::new(
        sequence_number,
        Body::SubmitSmResp(Some(SmResp {
            message_id: COctetString::try_from(message_id).unwrap(),
            tlvs: Tlvs::new(),
        })),
    )
}

fn error_resp(request: &Pdu, status: CommandStatus) -> Pdu {
    Pdu {
        body: Body::empty_response(request.command_id()).unwrap(),
        command_status: status,
        sequence_number: request.sequence_number,
    }
}

fn receipt(sequence_number: u32) -> Pdu {
    Pdu::new(
        sequence_number,
        Body::DeliverSm(SubmitSm {
            source_addr: COctetString::try_from("447700900123").unwrap(),
            destination_addr: COctetString::try_from("MyBrand").unwrap(),
            esm_class: EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(
                &b"id:1A2B3C4D sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                   stat:DELIVRD err:000 Text:Hello"[..],
            )
            .unwrap(),
            ..SubmitSm::default()
        }),
    )
}

/// A frame built by hand: header fields and raw body octets.
fn raw_frame(command_id: u32, command_status: u32, sequence_number: u32, body: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(16 + body.len());
    frame.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&command_id.to_be_bytes());
    frame.extend_from_slice(&command_status.to_be_bytes());
    frame.extend_from_slice(&sequence_number.to_be_bytes());
    frame.extend_from_slice(body);
    Bytes::from(frame)
}

fn closed(event: &Event) -> (CloseReason, Vec<Request>, Vec<u32>) {
    match event {
        Event::Closed {
            reason,
            in_flight,
            unanswered,
        } => (*reason, in_flight.clone(), unanswered.clone()),
        other => panic!("expected Closed, got {other:?}"),
    }
}

// ---- the bind -------------------------------------------------------------------------------

#[test]
fn sends_the_configured_bind_as_the_first_pdu() {
    let mut smsc = Smsc::connect(config());
    let bind = smsc.expect_sent();
    assert_eq!(bind.sequence_number, 1);
    let Body::BindTransceiver(body) = bind.body else {
        panic!("expected bind_transceiver, got {bind:?}");
    };
    assert_eq!(body.system_id.as_str(), Some("esme1"));
    assert_eq!(body.password.as_str(), Some("secret"));
    assert_eq!(body.interface_version, InterfaceVersion::V34);
    assert_eq!(smsc.session.state(), SessionState::Open);
    assert!(smsc.events().is_empty());
}

#[test]
fn binds_with_the_configured_bind_type() {
    for (bind_type, command_id) in [
        (BindType::Transmitter, CommandId::BIND_TRANSMITTER),
        (BindType::Receiver, CommandId::BIND_RECEIVER),
        (BindType::Transceiver, CommandId::BIND_TRANSCEIVER),
    ] {
        let mut smsc = Smsc::connect(SessionConfig {
            bind_type,
            ..config()
        });
        assert_eq!(smsc.expect_sent().command_id(), command_id);
    }
}

#[test]
fn reports_bound_with_the_smsc_system_id_and_interface_version() {
    let mut smsc = Smsc::connect(config());
    let bind = smsc.expect_sent();
    smsc.send(Pdu::new(
        bind.sequence_number,
        Body::BindTransceiverResp(Some(bind_resp())),
    ));
    assert_eq!(
        smsc.expect_event(),
        Event::Bound {
            system_id: COctetString::try_from("SMSC").unwrap(),
            sc_interface_version: Some(0x34),
        }
    );
    assert_eq!(smsc.session.state(), SessionState::Bound);
    smsc.expect_silence();
}

#[test]
fn accepts_a_bind_resp_without_body_or_interface_version() {
    let mut smsc = Smsc::connect(config());
    let bind = smsc.expect_sent();
    smsc.send(Pdu::new(
        bind.sequence_number,
        Body::BindTransceiverResp(None),
    ));
    assert_eq!(
        smsc.expect_event(),
        Event::Bound {
            system_id: COctetString::empty(),
            sc_interface_version: None,
        }
    );
}

#[test]
fn refused_bind_reports_the_status_and_closes() {
    let mut smsc = Smsc::connect(config());
    let bind = smsc.expect_sent();
    smsc.send(error_resp(&bind, CommandStatus::ESME_RINVPASWD));
    let (reason, in_flight, unanswered) = closed(&smsc.expect_event());
    assert_eq!(
        reason,
        CloseReason::BindRefused(CommandStatus::ESME_RINVPASWD)
    );
    // The supervisor stops reconnecting on a session-class status.
    let CloseReason::BindRefused(status) = reason else {
        unreachable!()
    };
    assert_eq!(status.class(), StatusClass::Session);
    assert!(in_flight.is_empty() && unanswered.is_empty());
    assert!(smsc.session.is_closed());
    assert_eq!(smsc.session.poll_timeout(), None);
    smsc.expect_silence();
}

#[test]
fn generic_nack_for_the_bind_refuses_it() {
    let mut smsc = Smsc::connect(config());
    let bind = smsc.expect_sent();
    smsc.send(Pdu {
        body: Body::GenericNack,
        command_status: CommandStatus::ESME_RINVCMDID,
        sequence_number: bind.sequence_number,
    });
    let (reason, ..) = closed(&smsc.expect_event());
    assert_eq!(
        reason,
        CloseReason::BindRefused(CommandStatus::ESME_RINVCMDID)
    );
    smsc.expect_silence();
}

#[test]
fn closes_when_the_bind_resp_does_not_come_in_time() {
    let mut smsc = Smsc::connect(config());
    smsc.expect_sent();
    assert_eq!(
        smsc.session.poll_timeout(),
        Some(smsc.t0 + SessionConfig::DEFAULT_BIND_TIMEOUT)
    );
    smsc.advance(SessionConfig::DEFAULT_BIND_TIMEOUT - MILLI);
    assert!(smsc.events().is_empty());
    smsc.advance(MILLI);
    let (reason, ..) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::BindTimeout);
    assert_eq!(smsc.elapsed(), SessionConfig::DEFAULT_BIND_TIMEOUT);
}

#[test]
fn refuses_submits_before_the_bind_completes() {
    let mut smsc = Smsc::connect(config());
    smsc.expect_sent();
    assert_eq!(
        smsc.session.submit(smsc.now, submit_sm(), 1),
        Err(SubmitError::NotBound)
    );
    smsc.expect_silence();
}

#[test]
fn does_not_enquire_link_before_the_bind_completes_but_answers_one() {
    let mut smsc = Smsc::connect(SessionConfig {
        bind_timeout: Duration::from_secs(600),
        ..config()
    });
    smsc.expect_sent();
    smsc.advance(Duration::from_secs(300));
    smsc.expect_silence();
    smsc.send(Pdu::new(42, Body::EnquireLink));
    assert_eq!(smsc.expect_sent(), Pdu::new(42, Body::EnquireLinkResp));
    assert_eq!(smsc.session.state(), SessionState::Open);
}

#[test]
fn deliver_sm_before_the_bind_completes_gets_invalid_bind_status() {
    let mut smsc = Smsc::connect(config());
    smsc.expect_sent();
    smsc.send(receipt(3));
    let answer = smsc.expect_sent();
    assert_eq!(answer.command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(answer.sequence_number, 3);
}

// ---- requests and their outcomes --------------------------------------------------------------

#[test]
fn accepted_submit_reports_message_id_and_token() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(77);
    assert_eq!(smsc.session.outstanding(), 1);
    smsc.accept(&request, "1A2B3C4D");
    let Event::Accepted(response) = smsc.expect_event() else {
        panic!("expected Accepted");
    };
    assert_eq!(response.token, 77);
    assert_eq!(response.sequence_number, request.sequence_number);
    assert_eq!(response.request, CommandId::SUBMIT_SM);
    assert_eq!(response.command_status, CommandStatus::ESME_ROK);
    assert_eq!(
        response.message_id().and_then(|id| id.as_str()),
        Some("1A2B3C4D")
    );
    assert_eq!(smsc.session.outstanding(), 0);
    // A response is never answered.
    smsc.expect_silence();
}

#[test]
fn rejected_submit_reports_the_status() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(5);
    smsc.send(error_resp(&request, CommandStatus::ESME_RINVDSTADR));
    let Event::Rejected(response) = smsc.expect_event() else {
        panic!("expected Rejected");
    };
    assert_eq!(response.token, 5);
    assert_eq!(response.command_status, CommandStatus::ESME_RINVDSTADR);
    assert_eq!(response.message_id(), None);
    assert!(!response.is_generic_nack());
    smsc.expect_silence();
}

#[test]
fn throttled_response_is_a_rejection_with_that_status() {
    let mut smsc = Smsc::default_bound();
    for status in [CommandStatus::ESME_RTHROTTLED, CommandStatus::ESME_RMSGQFUL] {
        let request = smsc.submit(1);
        smsc.send(error_resp(&request, status));
        let Event::Rejected(response) = smsc.expect_event() else {
            panic!("expected Rejected");
        };
        assert_eq!(response.command_status, status);
        assert_eq!(response.command_status.class(), StatusClass::Throttle);
    }
    assert_eq!(smsc.session.state(), SessionState::Bound);
}

#[test]
fn generic_nack_for_our_request_completes_it_as_rejected() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(9);
    smsc.send(Pdu {
        body: Body::GenericNack,
        command_status: CommandStatus::ESME_RINVCMDLEN,
        sequence_number: request.sequence_number,
    });
    let Event::Rejected(response) = smsc.expect_event() else {
        panic!("expected Rejected");
    };
    assert_eq!(response.token, 9);
    assert!(response.is_generic_nack());
    assert_eq!(response.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert_eq!(smsc.session.outstanding(), 0);
    // Never answer a generic_nack.
    smsc.expect_silence();
    assert_eq!(smsc.session.state(), SessionState::Bound);
}

#[test]
fn out_of_order_responses_complete_their_own_requests() {
    let mut smsc = Smsc::default_bound();
    let requests: Vec<Pdu> = (0..3).map(|token| smsc.submit(token)).collect();
    for (i, request) in requests.iter().enumerate().rev() {
        smsc.accept(request, &format!("id{i}"));
    }
    let tokens: Vec<(u64, String)> = smsc
        .events()
        .into_iter()
        .map(|event| match event {
            Event::Accepted(r) => (r.token, r.message_id().unwrap().to_string()),
            other => panic!("expected Accepted, got {other:?}"),
        })
        .collect();
    assert_eq!(
        tokens,
        [(2, "id2".into()), (1, "id1".into()), (0, "id0".into())]
    );
}

#[test]
fn submits_data_sm_query_sm_cancel_sm_and_replace_sm() {
    let mut smsc = Smsc::default_bound();
    let requests = [
        Body::DataSm(DataSm::default()),
        Body::QuerySm(QuerySm::default()),
        Body::CancelSm(CancelSm::default()),
        Body::ReplaceSm(ReplaceSm::default()),
        Body::SubmitMulti(SubmitMulti::default()),
    ];
    for (token, body) in requests.into_iter().enumerate() {
        let command_id = body.command_id();
        let sequence_number = smsc.session.submit(smsc.now, body, token as u64).unwrap();
        let sent = smsc.expect_sent();
        assert_eq!(sent.command_id(), command_id);
        assert_eq!(sent.sequence_number, sequence_number);
        let response_body = match command_id {
            CommandId::DATA_SM => Body::DataSmResp(Some(SmResp {
                message_id: COctetString::try_from("88").unwrap(),
                tlvs: Tlvs::new(),
            })),
            CommandId::QUERY_SM => Body::QuerySmResp(Some(QuerySmResp {
                message_id: COctetString::try_from("77").unwrap(),
                message_state: MessageState::DELIVERED,
                ..QuerySmResp::default()
            })),
            id => Body::empty_response(id).unwrap(),
        };
        smsc.send(Pdu::new(sequence_number, response_body.clone()));
        let Event::Accepted(response) = smsc.expect_event() else {
            panic!("expected Accepted for {command_id}");
        };
        assert_eq!(response.token, token as u64);
        assert_eq!(response.request, command_id);
        assert_eq!(response.body, response_body);
    }
    assert_eq!(smsc.session.outstanding(), 0);
}

#[test]
fn refuses_bodies_that_are_not_application_requests() {
    let mut smsc = Smsc::default_bound();
    for body in [
        Body::EnquireLink,
        Body::Unbind,
        Body::BindTransceiver(Bind::default()),
        Body::DeliverSm(SubmitSm::default()),
        Body::SubmitSmResp(None),
        Body::GenericNack,
    ] {
        let command_id = body.command_id();
        assert_eq!(
            smsc.session.submit(smsc.now, body, 1),
            Err(SubmitError::NotARequest(command_id))
        );
    }
    smsc.expect_silence();
}

#[test]
fn receiver_bind_refuses_submit_sm() {
    let mut smsc = Smsc::bound(SessionConfig {
        bind_type: BindType::Receiver,
        ..config()
    });
    assert_eq!(
        smsc.session.submit(smsc.now, submit_sm(), 1),
        Err(SubmitError::NotAllowed {
            command_id: CommandId::SUBMIT_SM,
            bind_type: BindType::Receiver,
        })
    );
    smsc.expect_silence();
}

#[test]
fn full_window_refuses_submits_until_a_response_frees_a_slot() {
    let mut smsc = Smsc::bound(SessionConfig {
        window: 3,
        ..config()
    });
    let requests: Vec<Pdu> = (0..3).map(|token| smsc.submit(token)).collect();
    assert_eq!(
        smsc.session.submit(smsc.now, submit_sm(), 3),
        Err(SubmitError::WindowFull(3))
    );
    assert_eq!(
        smsc.session.check_submit(CommandId::SUBMIT_SM),
        Err(SubmitError::WindowFull(3))
    );
    smsc.expect_silence();
    smsc.accept(&requests[1], "x");
    smsc.events();
    assert_eq!(smsc.session.check_submit(CommandId::SUBMIT_SM), Ok(()));
    smsc.submit(3);
    assert_eq!(smsc.session.outstanding(), 3);
}

#[test]
fn stats_report_state_outstanding_and_window() {
    let mut smsc = Smsc::bound(SessionConfig {
        window: 4,
        ..config()
    });
    smsc.submit(1);
    smsc.submit(2);
    smsc.send(receipt(10));
    assert_eq!(
        smsc.session.stats(),
        SessionStats {
            state: SessionState::Bound,
            outstanding: 2,
            window: 4,
            pending_inbound: 1,
            timed_out_remembered: 0,
        }
    );
    assert_eq!(smsc.session.state().as_str(), "bound");
}

// ---- timers ---------------------------------------------------------------------------------

#[test]
fn response_timeout_reports_the_request_in_doubt_and_frees_its_slot() {
    let mut smsc = Smsc::bound(SessionConfig {
        window: 1,
        enquire_link_interval: Duration::ZERO,
        ..config()
    });
    let request = smsc.submit(31);
    let timeout = SessionConfig::DEFAULT_RESPONSE_TIMEOUT;
    assert_eq!(smsc.session.poll_timeout(), Some(smsc.now + timeout));
    smsc.advance(timeout - MILLI);
    assert!(smsc.events().is_empty());
    smsc.advance(MILLI);
    assert_eq!(
        smsc.expect_event(),
        Event::TimedOut(Request {
            token: 31,
            sequence_number: request.sequence_number,
            command_id: CommandId::SUBMIT_SM,
        })
    );
    assert_eq!(smsc.session.outstanding(), 0);
    assert_eq!(smsc.session.state(), SessionState::Bound);
    smsc.submit(32);
}

#[test]
fn late_response_after_a_timeout_is_reported_with_its_token() {
    let mut smsc = Smsc::bound(SessionConfig {
        response_timeout: 5 * SECOND,
        ..config()
    });
    let request = smsc.submit(404);
    smsc.advance(5 * SECOND);
    assert!(matches!(smsc.expect_event(), Event::TimedOut(_)));
    assert_eq!(smsc.session.stats().timed_out_remembered, 1);
    smsc.advance(20 * SECOND);
    smsc.accept(&request, "LATE1");
    let Event::LateResponse(response) = smsc.expect_event() else {
        panic!("expected LateResponse");
    };
    assert_eq!(response.token, 404);
    assert_eq!(response.command_status, CommandStatus::ESME_ROK);
    assert_eq!(response.message_id().unwrap().as_str(), Some("LATE1"));
    // Reported once; a second copy is unexpected.
    smsc.accept(&request, "LATE1");
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::UnexpectedResponse { .. })
    ));
    smsc.expect_silence();
}

#[test]
fn late_generic_nack_after_a_timeout_is_reported() {
    let mut smsc = Smsc::bound(SessionConfig {
        response_timeout: 5 * SECOND,
        ..config()
    });
    let request = smsc.submit(8);
    smsc.advance(5 * SECOND);
    smsc.events();
    smsc.send(Pdu {
        body: Body::GenericNack,
        command_status: CommandStatus::ESME_RSYSERR,
        sequence_number: request.sequence_number,
    });
    let Event::LateResponse(response) = smsc.expect_event() else {
        panic!("expected LateResponse");
    };
    assert!(response.is_generic_nack());
    smsc.expect_silence();
}

#[test]
fn response_with_an_unknown_sequence_number_is_counted_and_dropped() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(1);
    smsc.send(submit_sm_resp(request.sequence_number + 100, "nope"));
    assert_eq!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::UnexpectedResponse {
            command_id: CommandId::SUBMIT_SM_RESP,
            sequence_number: request.sequence_number + 100,
            command_status: CommandStatus::ESME_ROK,
        })
    );
    smsc.expect_silence();
    assert_eq!(smsc.session.outstanding(), 1);
}

#[test]
fn response_of_another_command_does_not_complete_a_request() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(1);
    smsc.send(Pdu::new(request.sequence_number, Body::CancelSmResp));
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::UnexpectedResponse { .. })
    ));
    assert_eq!(smsc.session.outstanding(), 1);
    smsc.accept(&request, "ok");
    assert!(matches!(smsc.expect_event(), Event::Accepted(_)));
}

#[test]
fn sends_enquire_link_after_the_idle_interval() {
    let mut smsc = Smsc::default_bound();
    let interval = SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL;
    smsc.advance(interval - MILLI);
    smsc.expect_silence();
    smsc.advance(MILLI);
    let enquire = smsc.expect_sent();
    assert_eq!(enquire.body, Body::EnquireLink);
    assert_eq!(enquire.command_status, CommandStatus::ESME_ROK);
    smsc.advance(SECOND);
    smsc.send(Pdu::new(enquire.sequence_number, Body::EnquireLinkResp));
    assert!(smsc.events().is_empty(), "link checks are not events");
    smsc.expect_silence();
    // The next one an interval after the answer.
    smsc.advance(interval - MILLI);
    smsc.expect_silence();
    smsc.advance(MILLI);
    assert_eq!(smsc.expect_sent().body, Body::EnquireLink);
}

#[test]
fn traffic_from_the_smsc_postpones_enquire_link() {
    let mut smsc = Smsc::default_bound();
    let interval = SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL;
    let request = smsc.submit(1);
    smsc.advance(interval - SECOND);
    smsc.accept(&request, "a");
    smsc.advance(interval - MILLI);
    smsc.expect_silence();
    smsc.advance(MILLI);
    assert_eq!(smsc.expect_sent().body, Body::EnquireLink);
}

#[test]
fn declares_the_link_dead_when_enquire_link_goes_unanswered() {
    let mut smsc = Smsc::bound(SessionConfig {
        response_timeout: 10 * SECOND,
        ..config()
    });
    let interval = SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL;
    smsc.advance(interval);
    assert_eq!(smsc.expect_sent().body, Body::EnquireLink);
    // A submit goes out meanwhile and is never answered either.
    smsc.advance(SECOND);
    let request = smsc.submit(12);
    smsc.advance(9 * SECOND - MILLI);
    assert!(smsc.events().is_empty());
    smsc.advance(MILLI);
    let (reason, in_flight, _) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::LinkDead);
    assert_eq!(
        in_flight,
        [Request {
            token: 12,
            sequence_number: request.sequence_number,
            command_id: CommandId::SUBMIT_SM,
        }]
    );
    assert_eq!(smsc.session.poll_timeout(), None);
    smsc.expect_silence();
}

#[test]
fn any_pdu_from_the_smsc_keeps_the_link_alive_while_enquire_link_is_pending() {
    let mut smsc = Smsc::bound(SessionConfig {
        response_timeout: 10 * SECOND,
        ..config()
    });
    smsc.advance(SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL);
    let enquire = smsc.expect_sent();
    smsc.advance(5 * SECOND);
    smsc.send(receipt(1));
    smsc.events();
    smsc.advance(20 * SECOND);
    assert_eq!(smsc.session.state(), SessionState::Bound);
    // Its answer, slow as it is, is still recognised.
    smsc.send(Pdu::new(enquire.sequence_number, Body::EnquireLinkResp));
    assert!(smsc.events().is_empty());
}

#[test]
fn enquire_link_can_be_turned_off() {
    let mut smsc = Smsc::bound(SessionConfig {
        enquire_link_interval: Duration::ZERO,
        ..config()
    });
    assert_eq!(smsc.session.poll_timeout(), None);
    smsc.advance(Duration::from_secs(3600));
    smsc.expect_silence();
}

#[test]
fn inactivity_timeout_unbinds_and_enquire_link_does_not_count_as_activity() {
    let mut smsc = Smsc::bound(SessionConfig {
        inactivity_timeout: Duration::from_secs(100),
        ..config()
    });
    let request = smsc.submit(1);
    smsc.advance(SECOND);
    smsc.accept(&request, "a");
    smsc.events();
    // Link checks at 31 s, 61 s and 91 s, all answered.
    for _ in 0..3 {
        smsc.advance(SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL);
        let enquire = smsc.expect_sent();
        assert_eq!(enquire.body, Body::EnquireLink);
        smsc.send(Pdu::new(enquire.sequence_number, Body::EnquireLinkResp));
    }
    assert_eq!(smsc.elapsed(), Duration::from_secs(91));
    smsc.advance(Duration::from_secs(10) - MILLI);
    smsc.expect_silence();
    smsc.advance(MILLI);
    assert_eq!(smsc.expect_event(), Event::InactivityTimeout);
    let unbind = smsc.expect_sent();
    assert_eq!(unbind.body, Body::Unbind);
    assert_eq!(smsc.session.state(), SessionState::Unbinding);
    smsc.send(Pdu::new(unbind.sequence_number, Body::UnbindResp));
    assert_eq!(closed(&smsc.expect_event()).0, CloseReason::Unbound);
}

#[test]
fn closes_when_unbind_resp_does_not_come_in_time() {
    let mut smsc = Smsc::default_bound();
    smsc.session.unbind(smsc.now);
    assert_eq!(smsc.expect_sent().body, Body::Unbind);
    smsc.advance(SessionConfig::DEFAULT_UNBIND_TIMEOUT - MILLI);
    assert!(smsc.events().is_empty());
    smsc.advance(MILLI);
    assert_eq!(closed(&smsc.expect_event()).0, CloseReason::UnbindTimeout);
}

// ---- sequence numbers -----------------------------------------------------------------------

#[test]
fn sequence_numbers_wrap_from_the_maximum_to_one_and_never_use_zero() {
    let mut smsc = Smsc::connect(SessionConfig {
        first_sequence_number: MAX_SEQUENCE - 2,
        ..config()
    });
    let bind = smsc.expect_sent();
    assert_eq!(bind.sequence_number, MAX_SEQUENCE - 2);
    smsc.send(Pdu::new(
        bind.sequence_number,
        Body::BindTransceiverResp(None),
    ));
    smsc.events();
    let numbers: Vec<u32> = (0..4).map(|t| smsc.submit(t).sequence_number).collect();
    assert_eq!(numbers, [MAX_SEQUENCE - 1, MAX_SEQUENCE, 1, 2]);
    // All four in flight across the wrap, each matched to its own response.
    for (token, &seq) in numbers.iter().enumerate().rev() {
        smsc.send(submit_sm_resp(seq, "m"));
        let Event::Accepted(response) = smsc.expect_event() else {
            panic!("expected Accepted");
        };
        assert_eq!(response.token, token as u64);
    }
}

#[test]
fn first_sequence_number_out_of_range_is_read_as_one() {
    for first in [0, MAX_SEQUENCE + 1, u32::MAX] {
        let mut smsc = Smsc::connect(SessionConfig {
            first_sequence_number: first,
            ..config()
        });
        assert_eq!(smsc.expect_sent().sequence_number, 1);
    }
}

#[test]
fn sequence_numbers_in_flight_are_distinct_through_many_cycles() {
    let mut smsc = Smsc::bound(SessionConfig {
        first_sequence_number: MAX_SEQUENCE - 50,
        window: 10,
        ..config()
    });
    let mut in_flight: Vec<u32> = Vec::new();
    for token in 0..200u64 {
        if in_flight.len() == 10 {
            // Answer the oldest but one, so an old number stays in flight throughout.
            let seq = in_flight.remove(1);
            smsc.send(submit_sm_resp(seq, "m"));
            smsc.events();
        }
        let seq = smsc.submit(token).sequence_number;
        assert_ne!(seq, 0);
        assert!(seq <= MAX_SEQUENCE);
        assert!(!in_flight.contains(&seq), "{seq} reused while in flight");
        in_flight.push(seq);
    }
}

// ---- unbind ---------------------------------------------------------------------------------

#[test]
fn our_unbind_drains_the_window_refuses_new_submits_and_closes_on_unbind_resp() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(1);
    smsc.session.unbind(smsc.now);
    assert_eq!(smsc.session.state(), SessionState::Draining);
    // The request in flight gets its chance before unbind goes out.
    smsc.expect_silence();
    assert_eq!(
        smsc.session.submit(smsc.now, submit_sm(), 2),
        Err(SubmitError::Unbinding)
    );
    smsc.accept(&request, "a");
    assert!(matches!(smsc.expect_event(), Event::Accepted(_)));
    let unbind = smsc.expect_sent();
    assert_eq!(unbind.body, Body::Unbind);
    assert_eq!(smsc.session.state(), SessionState::Unbinding);
    assert_eq!(
        smsc.session.submit(smsc.now, submit_sm(), 3),
        Err(SubmitError::Unbinding)
    );
    smsc.send(Pdu::new(unbind.sequence_number, Body::UnbindResp));
    let (reason, in_flight, unanswered) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::Unbound);
    assert!(in_flight.is_empty() && unanswered.is_empty());
    assert_eq!(
        smsc.session.submit(smsc.now, submit_sm(), 4),
        Err(SubmitError::Closed)
    );
    // unbind_resp is a response: never answered.
    smsc.expect_silence();
}

#[test]
fn our_unbind_goes_out_at_once_when_nothing_is_outstanding() {
    let mut smsc = Smsc::default_bound();
    smsc.session.unbind(smsc.now);
    assert_eq!(smsc.expect_sent().body, Body::Unbind);
    smsc.session.unbind(smsc.now);
    smsc.expect_silence();
}

#[test]
fn our_unbind_waits_at_most_the_response_timeout_for_the_window() {
    let mut smsc = Smsc::bound(SessionConfig {
        response_timeout: 10 * SECOND,
        enquire_link_interval: Duration::ZERO,
        ..config()
    });
    smsc.submit(1);
    smsc.advance(4 * SECOND);
    smsc.session.unbind(smsc.now);
    // The request times out at 10 s after its submit; unbind follows at once.
    smsc.advance(6 * SECOND);
    assert!(matches!(smsc.expect_event(), Event::TimedOut(_)));
    assert_eq!(smsc.expect_sent().body, Body::Unbind);
}

#[test]
fn our_unbind_waits_for_pending_deliver_sm_to_be_answered() {
    let mut smsc = Smsc::default_bound();
    smsc.send(receipt(70));
    smsc.events();
    smsc.session.unbind(smsc.now);
    smsc.expect_silence();
    smsc.session
        .respond(smsc.now, 70, CommandStatus::ESME_ROK)
        .unwrap();
    let sent = smsc.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(sent[1].body, Body::Unbind);
}

#[test]
fn deliver_sm_after_our_unbind_gets_a_temporary_error() {
    let mut smsc = Smsc::default_bound();
    smsc.session.unbind(smsc.now);
    smsc.expect_sent();
    smsc.send(receipt(9));
    let answer = smsc.expect_sent();
    assert_eq!(answer.command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(answer.command_status, CommandStatus::ESME_RX_T_APPN);
    assert_eq!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::Refused {
            command_id: CommandId::DELIVER_SM,
            sequence_number: 9,
            status: CommandStatus::ESME_RX_T_APPN,
            reason: RefuseReason::Unbinding,
        })
    );
}

#[test]
fn responses_still_settle_requests_while_unbinding() {
    let mut smsc = Smsc::bound(SessionConfig {
        response_timeout: 10 * SECOND,
        ..config()
    });
    let request = smsc.submit(1);
    smsc.session.unbind(smsc.now);
    smsc.advance(10 * SECOND);
    smsc.events();
    let unbind = smsc.expect_sent();
    assert_eq!(unbind.body, Body::Unbind);
    smsc.accept(&request, "late");
    assert!(matches!(smsc.expect_event(), Event::LateResponse(_)));
    smsc.send(Pdu::new(unbind.sequence_number, Body::UnbindResp));
    assert_eq!(closed(&smsc.expect_event()).0, CloseReason::Unbound);
}

#[test]
fn unbind_from_the_smsc_is_answered_and_hands_back_what_is_outstanding() {
    let mut smsc = Smsc::default_bound();
    let a = smsc.submit(1);
    let b = smsc.submit(2);
    smsc.send(receipt(55));
    smsc.events();
    smsc.send(Pdu::new(900, Body::Unbind));
    assert_eq!(smsc.expect_sent(), Pdu::new(900, Body::UnbindResp));
    let (reason, in_flight, unanswered) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::PeerUnbind);
    assert_eq!(
        in_flight
            .iter()
            .map(|r| (r.token, r.sequence_number))
            .collect::<Vec<_>>(),
        [(1, a.sequence_number), (2, b.sequence_number)]
    );
    assert_eq!(unanswered, [55]);
    assert_eq!(
        smsc.session.respond(smsc.now, 55, CommandStatus::ESME_ROK),
        Err(RespondError::Closed)
    );
    // Nothing more from a closed session.
    smsc.send(receipt(56));
    smsc.advance(Duration::from_secs(100));
    smsc.expect_silence();
    assert!(smsc.events().is_empty());
}

#[test]
fn unbind_before_the_bind_completes_closes_at_once() {
    let mut smsc = Smsc::connect(config());
    smsc.expect_sent();
    smsc.session.unbind(smsc.now);
    assert_eq!(closed(&smsc.expect_event()).0, CloseReason::Local);
    smsc.expect_silence();
}

// ---- inbound requests -----------------------------------------------------------------------

#[test]
fn deliver_sm_is_not_answered_until_respond_is_called() {
    let mut smsc = Smsc::default_bound();
    let delivered = receipt(71);
    smsc.send(delivered.clone());
    let Event::DeliverSm {
        sequence_number,
        pdu,
    } = smsc.expect_event()
    else {
        panic!("expected DeliverSm");
    };
    assert_eq!(sequence_number, 71);
    assert_eq!(Body::DeliverSm(pdu), delivered.body);
    // Stored later; until then nothing goes back.
    smsc.advance(5 * SECOND);
    smsc.expect_silence();
    assert_eq!(smsc.session.pending_inbound(), 1);
    smsc.session
        .respond(smsc.now, 71, CommandStatus::ESME_ROK)
        .unwrap();
    assert_eq!(
        smsc.expect_sent(),
        Pdu::new(71, Body::DeliverSmResp(Some(SmResp::default())))
    );
    assert_eq!(smsc.session.pending_inbound(), 0);
    assert_eq!(
        smsc.session.respond(smsc.now, 71, CommandStatus::ESME_ROK),
        Err(RespondError::NotPending(71))
    );
    smsc.expect_silence();
}

#[test]
fn respond_can_ask_the_smsc_to_retry_later() {
    let mut smsc = Smsc::default_bound();
    smsc.send(receipt(3));
    smsc.events();
    smsc.session
        .respond(smsc.now, 3, CommandStatus::ESME_RX_T_APPN)
        .unwrap();
    let answer = smsc.expect_sent();
    assert_eq!(answer.command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(answer.command_status, CommandStatus::ESME_RX_T_APPN);
}

#[test]
fn data_sm_from_the_smsc_is_answered_with_data_sm_resp() {
    let mut smsc = Smsc::default_bound();
    smsc.send(Pdu::new(12, Body::DataSm(DataSm::default())));
    assert!(matches!(
        smsc.expect_event(),
        Event::DataSm {
            sequence_number: 12,
            ..
        }
    ));
    smsc.expect_silence();
    smsc.session
        .respond(smsc.now, 12, CommandStatus::ESME_ROK)
        .unwrap();
    assert_eq!(
        smsc.expect_sent(),
        Pdu::new(12, Body::DataSmResp(Some(SmResp::default())))
    );
}

#[test]
fn pending_inbound_requests_are_bounded() {
    let mut smsc = Smsc::bound(SessionConfig {
        max_pending_inbound: 2,
        ..config()
    });
    smsc.send(receipt(1));
    smsc.send(receipt(2));
    assert_eq!(smsc.events().len(), 2);
    smsc.expect_silence();
    smsc.send(receipt(3));
    let answer = smsc.expect_sent();
    assert_eq!(answer.sequence_number, 3);
    assert_eq!(answer.command_status, CommandStatus::ESME_RX_T_APPN);
    assert_eq!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::Refused {
            command_id: CommandId::DELIVER_SM,
            sequence_number: 3,
            status: CommandStatus::ESME_RX_T_APPN,
            reason: RefuseReason::TooManyPending,
        })
    );
    smsc.session
        .respond(smsc.now, 1, CommandStatus::ESME_ROK)
        .unwrap();
    smsc.expect_sent();
    smsc.send(receipt(4));
    assert!(matches!(
        smsc.expect_event(),
        Event::DeliverSm {
            sequence_number: 4,
            ..
        }
    ));
}

#[test]
fn inbound_reusing_a_pending_sequence_number_gets_a_temporary_error() {
    let mut smsc = Smsc::default_bound();
    smsc.send(receipt(5));
    smsc.events();
    smsc.send(receipt(5));
    assert_eq!(
        smsc.expect_sent().command_status,
        CommandStatus::ESME_RX_T_APPN
    );
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::Refused {
            reason: RefuseReason::DuplicateSequence,
            ..
        })
    ));
    assert_eq!(smsc.session.pending_inbound(), 1);
}

#[test]
fn transmitter_bind_refuses_deliver_sm_with_invalid_bind_status() {
    let mut smsc = Smsc::bound(SessionConfig {
        bind_type: BindType::Transmitter,
        ..config()
    });
    smsc.send(receipt(8));
    let answer = smsc.expect_sent();
    assert_eq!(answer.command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVBNDSTS);
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::Refused {
            reason: RefuseReason::WrongState,
            ..
        })
    ));
    assert_eq!(smsc.session.state(), SessionState::Bound);
}

#[test]
fn alert_notification_is_reported_and_not_answered() {
    let mut smsc = Smsc::default_bound();
    let alert = AlertNotification {
        source_addr: COctetString::try_from("447700900123").unwrap(),
        ..AlertNotification::default()
    };
    smsc.send(Pdu::new(4, Body::AlertNotification(alert.clone())));
    assert_eq!(smsc.expect_event(), Event::AlertNotification(alert));
    smsc.expect_silence();
}

#[test]
fn close_hands_back_unanswered_inbound_and_in_flight() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(6);
    smsc.send(receipt(20));
    smsc.send(receipt(10));
    smsc.events();
    smsc.session.close();
    let (reason, in_flight, unanswered) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::Local);
    assert_eq!(in_flight.len(), 1);
    assert_eq!(in_flight[0].sequence_number, request.sequence_number);
    assert_eq!(unanswered, [10, 20]);
    smsc.session.close();
    assert!(smsc.events().is_empty(), "Closed is reported once");
}

#[test]
fn connection_loss_hands_back_in_flight() {
    let mut smsc = Smsc::default_bound();
    smsc.submit(1);
    smsc.session.connection_lost();
    let (reason, in_flight, _) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::ConnectionLost);
    assert_eq!(in_flight.len(), 1);
}

// ---- malformed and unexpected input ---------------------------------------------------------

#[test]
fn nacks_unknown_command_id_and_keeps_bind() {
    let mut smsc = Smsc::default_bound();
    smsc.send_frame(raw_frame(0x0000_0099, 0, 5, b"\x01\x02"));
    assert_eq!(
        smsc.expect_sent(),
        Pdu {
            body: Body::GenericNack,
            command_status: CommandStatus::ESME_RINVCMDID,
            sequence_number: 5,
        }
    );
    assert_eq!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::UnknownCommand {
            command_id: CommandId(0x99),
            sequence_number: 5,
        })
    );
    assert_eq!(smsc.session.state(), SessionState::Bound);
    let request = smsc.submit(1);
    smsc.accept(&request, "still-up");
    assert!(matches!(smsc.expect_event(), Event::Accepted(_)));
}

#[test]
fn unknown_response_command_is_dropped_without_an_answer() {
    let mut smsc = Smsc::default_bound();
    smsc.send_frame(raw_frame(0x8000_0099, 0, 5, b""));
    smsc.expect_silence();
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::UnexpectedResponse { .. })
    ));
}

#[test]
fn answers_a_bad_body_and_keeps_bind() {
    let mut smsc = Smsc::default_bound();
    // A deliver_sm whose service_type never ends.
    let frame = raw_frame(0x0000_0005, 0, 17, b"CMTCMTCMT");
    let error = Pdu::decode(&frame).unwrap_err();
    smsc.send_frame(frame);
    let answer = smsc.expect_sent();
    assert_eq!(answer.command_id(), CommandId::DELIVER_SM_RESP);
    assert_eq!(answer.sequence_number, 17);
    assert_eq!(answer.command_status, error.status);
    assert_ne!(answer.command_status, CommandStatus::ESME_ROK);
    assert_eq!(smsc.expect_event(), Event::Anomaly(Anomaly::BadBody(error)));
    assert_eq!(smsc.session.state(), SessionState::Bound);
    assert_eq!(smsc.session.pending_inbound(), 0);
    let request = smsc.submit(1);
    smsc.accept(&request, "still-up");
    assert!(matches!(smsc.expect_event(), Event::Accepted(_)));
}

#[test]
fn header_only_request_with_a_body_is_answered_with_an_error() {
    let mut smsc = Smsc::default_bound();
    smsc.send_frame(raw_frame(0x0000_0015, 0, 8, b"junk"));
    let answer = smsc.expect_sent();
    assert_eq!(answer.body, Body::EnquireLinkResp);
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::BadBody(_))
    ));
    assert_eq!(smsc.session.state(), SessionState::Bound);
}

#[test]
fn unreadable_response_body_still_completes_the_request() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(3);
    // ESME_ROK, but a message_id without its terminating NUL.
    smsc.send_frame(raw_frame(0x8000_0004, 0, request.sequence_number, b"ABC"));
    let events = smsc.events();
    assert!(matches!(events[0], Event::Anomaly(Anomaly::BadBody(_))));
    let Event::Accepted(response) = &events[1] else {
        panic!("expected Accepted, got {events:?}");
    };
    assert_eq!(response.token, 3);
    assert_eq!(response.body, Body::SubmitSmResp(None));
    assert_eq!(response.message_id(), None);
    smsc.expect_silence();
}

#[test]
fn never_answers_a_response_or_generic_nack() {
    let mut smsc = Smsc::default_bound();
    for pdu in [
        Pdu {
            body: Body::GenericNack,
            command_status: CommandStatus::ESME_RINVCMDID,
            sequence_number: 999,
        },
        Pdu {
            body: Body::GenericNack,
            command_status: CommandStatus::ESME_RINVCMDLEN,
            sequence_number: 0,
        },
        submit_sm_resp(1000, "x"),
        Pdu::new(1001, Body::EnquireLinkResp),
        Pdu::new(1002, Body::UnbindResp),
        Pdu::new(1003, Body::DeliverSmResp(None)),
    ] {
        smsc.send(pdu);
        smsc.expect_silence();
    }
    // A generic_nack with a body it should not have: still not answered.
    smsc.send_frame(raw_frame(0x8000_0000, 0, 1004, b"x"));
    smsc.expect_silence();
    assert_eq!(smsc.session.state(), SessionState::Bound);
}

#[test]
fn esme_only_request_from_the_smsc_gets_invalid_bind_status() {
    let mut smsc = Smsc::default_bound();
    smsc.send(Pdu::new(30, submit_sm()));
    let answer = smsc.expect_sent();
    assert_eq!(answer.body, Body::SubmitSmResp(None));
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVBNDSTS);
    assert_eq!(answer.sequence_number, 30);
    assert_eq!(smsc.session.state(), SessionState::Bound);
}

#[test]
fn outbind_on_an_open_connection_is_ignored() {
    let mut smsc = Smsc::default_bound();
    smsc.send(Pdu::new(1, Body::Outbind(Outbind::default())));
    smsc.expect_silence();
    assert!(matches!(
        smsc.expect_event(),
        Event::Anomaly(Anomaly::Ignored {
            command_id: CommandId::OUTBIND,
            ..
        })
    ));
}

#[test]
fn broken_framing_sends_generic_nack_and_closes() {
    let mut smsc = Smsc::default_bound();
    smsc.submit(1);
    let mut wire = BytesMut::from(&raw_frame(0, 0, 0, b"")[..]);
    // command_length 8: below the header size.
    wire[..4].copy_from_slice(&8u32.to_be_bytes());
    wire[12..16].copy_from_slice(&61u32.to_be_bytes());
    let error = PduCodec::new().decode(&mut wire).unwrap_err();
    smsc.session.handle_frame_error(&error);
    assert_eq!(
        smsc.expect_sent(),
        Pdu {
            body: Body::GenericNack,
            command_status: CommandStatus::ESME_RINVCMDLEN,
            sequence_number: 61,
        }
    );
    let (reason, in_flight, _) = closed(&smsc.expect_event());
    assert_eq!(reason, CloseReason::BadFrame);
    assert_eq!(in_flight.len(), 1);
}

#[test]
fn many_pdus_come_out_of_one_poll_transmit_in_order() {
    let mut smsc = Smsc::default_bound();
    let sequence_numbers: Vec<u32> = (0..5)
        .map(|token| smsc.session.submit(smsc.now, submit_sm(), token).unwrap())
        .collect();
    smsc.send(Pdu::new(77, Body::EnquireLink));
    let sent = smsc.sent();
    assert_eq!(sent.len(), 6);
    for (pdu, seq) in sent.iter().zip(&sequence_numbers) {
        assert_eq!(pdu.sequence_number, *seq);
    }
    assert_eq!(sent[5], Pdu::new(77, Body::EnquireLinkResp));
    // Appending to a buffer that already holds data keeps it.
    let mut buf = BytesMut::from(&b"prefix"[..]);
    smsc.session.submit(smsc.now, submit_sm(), 9).unwrap();
    assert_eq!(smsc.session.poll_transmit(&mut buf), 1);
    assert_eq!(&buf[..6], b"prefix");
}

#[test]
fn generic_nack_with_a_stray_body_still_completes_our_request() {
    let mut smsc = Smsc::default_bound();
    let request = smsc.submit(4);
    smsc.send_frame(raw_frame(
        0x8000_0000,
        CommandStatus::ESME_RSYSERR.0,
        request.sequence_number,
        b"\0",
    ));
    let events = smsc.events();
    assert!(matches!(events[0], Event::Anomaly(Anomaly::BadBody(_))));
    let Event::Rejected(response) = &events[1] else {
        panic!("expected Rejected, got {events:?}");
    };
    assert!(response.is_generic_nack());
    assert_eq!(response.command_status, CommandStatus::ESME_RSYSERR);
    smsc.expect_silence();
}

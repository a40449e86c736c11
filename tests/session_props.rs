//! The session against a random SMSC: random interleavings of submits, answers in any order
//! (accepts, errors, generic_nack), deliveries and the application's answers, link checks,
//! unknown and malformed PDUs, unbinds from either side, closes and the passage of time.
//!
//! Whatever happens, the session must keep its promises:
//! - no more than `window` requests await a response;
//! - every submitted request ends exactly once (accepted, rejected, timed out, or handed back
//!   on close), and only a timed-out one gets a late response;
//! - a sequence number in use is never issued again, and none is 0 or above 0x7FFFFFFF;
//! - every response it sends answers one request of the SMSC, once; it never answers a
//!   response;
//! - deliver_sm is answered only through `respond`, and anything unanswered is handed back;
//! - `Closed` comes once, last, and the session is silent afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use smppd::pdu::*;
use smppd::session::*;
use tokio_util::codec::Decoder;

#[derive(Clone, Debug)]
enum Op {
    Submit,
    /// The SMSC answers one of the session's unanswered requests.
    Answer {
        pick: usize,
        status: CommandStatus,
        nack: bool,
    },
    Advance(Duration),
    Deliver,
    Respond {
        pick: usize,
    },
    SmscEnquireLink,
    UnknownCommand,
    StrayResponse(u32),
    BadBody,
    SmscUnbind,
    OurUnbind,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::sample::select(vec![
        CommandStatus::ESME_ROK,
        CommandStatus::ESME_ROK,
        CommandStatus::ESME_RTHROTTLED,
        CommandStatus::ESME_RINVDSTADR,
        CommandStatus::ESME_RSYSERR,
    ]);
    prop_oneof![
        12 => Just(Op::Submit),
        12 => (any::<usize>(), status, prop::bool::weighted(0.1))
            .prop_map(|(pick, status, nack)| Op::Answer { pick, status, nack }),
        6 => (0u64..45_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        4 => Just(Op::Deliver),
        4 => any::<usize>().prop_map(|pick| Op::Respond { pick }),
        2 => Just(Op::SmscEnquireLink),
        1 => Just(Op::UnknownCommand),
        1 => (1u32..=MAX_SEQUENCE).prop_map(Op::StrayResponse),
        1 => Just(Op::BadBody),
        1 => prop::bool::weighted(0.15).prop_map(|b| if b { Op::SmscUnbind } else { Op::SmscEnquireLink }),
        1 => prop::bool::weighted(0.25).prop_map(|b| if b { Op::OurUnbind } else { Op::Deliver }),
        1 => prop::bool::weighted(0.1).prop_map(|b| if b { Op::Close } else { Op::Submit }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pending,
    TimedOut,
    Done,
}

struct World {
    session: Session,
    now: Instant,
    window: usize,
    codec: PduCodec,
    /// Requests the session sent that the SMSC has not answered: sequence number → command.
    smsc_unanswered: Vec<(u32, CommandId)>,
    /// Requests the SMSC sent that the session has not answered: sequence number → the
    /// response command expected (generic_nack for unknown commands).
    session_owes: HashMap<u32, CommandId>,
    smsc_next_sequence: u32,
    /// Submitted tokens and where they stand; token → (sequence number, fate).
    tokens: HashMap<u64, (u32, Fate)>,
    next_token: u64,
    /// deliver_sm the application was given and has not answered.
    app_pending: Vec<u32>,
    /// A token whose request the SMSC just answered: it must be settled by the next check
    /// (accepted, rejected, or a late response if it had timed out).
    must_settle: Option<u64>,
    closed: bool,
}

impl World {
    fn new(window: usize, first_sequence_number: u32) -> World {
        let now = Instant::now();
        let config = SessionConfig {
            window,
            first_sequence_number,
            response_timeout: Duration::from_secs(20),
            ..SessionConfig::default()
        };
        let mut world = World {
            session: Session::new(config, now),
            now,
            window,
            codec: PduCodec::new(),
            smsc_unanswered: Vec::new(),
            session_owes: HashMap::new(),
            smsc_next_sequence: 1,
            tokens: HashMap::new(),
            next_token: 0,
            app_pending: Vec::new(),
            must_settle: None,
            closed: false,
        };
        let sent = world.transmitted();
        assert_eq!(sent.len(), 1);
        world.feed(Pdu::new(
            sent[0].sequence_number,
            Body::BindTransceiverResp(None),
        ));
        assert!(matches!(
            world.session.poll_event(),
            Some(Event::Bound { .. })
        ));
        world
    }

    fn transmitted(&mut self) -> Vec<Pdu> {
        let mut wire = BytesMut::new();
        let count = self.session.poll_transmit(&mut wire);
        let mut out = Vec::new();
        while let Some(item) = self.codec.decode(&mut wire).expect("framing") {
            out.push(item.expect("decodes"));
        }
        assert!(wire.is_empty());
        assert_eq!(out.len(), count);
        out
    }

    fn feed(&mut self, pdu: Pdu) {
        self.feed_frame(pdu.to_bytes());
    }

    fn feed_frame(&mut self, frame: Bytes) {
        self.session.handle_pdu(self.now, Pdu::decode(&frame));
    }

    fn smsc_sequence(&mut self) -> u32 {
        let seq = self.smsc_next_sequence;
        self.smsc_next_sequence += 1;
        seq
    }

    /// The SMSC sends a request the session owes an answer to (from the session itself, or
    /// through `respond`).
    fn smsc_request(&mut self, body: Body) -> u32 {
        let seq = self.smsc_sequence();
        let answer = match &body {
            Body::Unknown { .. } => CommandId::GENERIC_NACK,
            body => body.command_id().response().unwrap(),
        };
        if !self.closed {
            self.session_owes.insert(seq, answer);
        }
        self.feed(Pdu::new(seq, body));
        seq
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Submit => {
                let token = self.next_token;
                self.next_token += 1;
                let outstanding = self.session.outstanding();
                let body = Body::SubmitSm(SubmitSm {
                    destination_addr: COctetString::try_from("447700900123").unwrap(),
                    ..SubmitSm::default()
                });
                match self.session.submit(self.now, body, token) {
                    Ok(seq) => {
                        assert_eq!(self.session.state(), SessionState::Bound);
                        self.tokens.insert(token, (seq, Fate::Pending));
                    }
                    Err(SubmitError::WindowFull(n)) => {
                        assert_eq!(n, self.window);
                        assert_eq!(outstanding, self.window);
                    }
                    Err(SubmitError::Unbinding) => assert!(matches!(
                        self.session.state(),
                        SessionState::Draining | SessionState::Unbinding
                    )),
                    Err(SubmitError::Closed) => assert!(self.closed),
                    Err(other) => panic!("unexpected refusal {other}"),
                }
            }
            Op::Answer { pick, status, nack } => {
                if self.smsc_unanswered.is_empty() {
                    return;
                }
                let (seq, command_id) = self
                    .smsc_unanswered
                    .remove(pick % self.smsc_unanswered.len());
                if !self.closed {
                    self.must_settle = self
                        .tokens
                        .iter()
                        .find(|(_, (s, _))| *s == seq)
                        .map(|(&token, _)| token);
                }
                let pdu = if nack {
                    Pdu {
                        body: Body::GenericNack,
                        command_status: CommandStatus::ESME_RSYSERR,
                        sequence_number: seq,
                    }
                } else if command_id == CommandId::SUBMIT_SM && status.is_ok() {
                    Pdu::new(
                        seq,
                        Body::SubmitSmResp(Some(SmResp {
                            message_id: COctetString::try_from(format!("m{seq}").as_str()).unwrap(),
                            tlvs: Tlvs::new(),
                        })),
                    )
                } else if command_id == CommandId::SUBMIT_SM {
                    Pdu {
                        body: Body::SubmitSmResp(None),
                        command_status: status,
                        sequence_number: seq,
                    }
                } else {
                    Pdu::new(seq, Body::empty_response(command_id).unwrap())
                };
                self.feed(pdu);
            }
            Op::Advance(by) => {
                let until = self.now + by;
                for _ in 0..1000 {
                    match self.session.poll_timeout() {
                        Some(at) if at <= until => {
                            self.now = self.now.max(at);
                            self.session.handle_timeout(self.now);
                        }
                        _ => break,
                    }
                }
                self.now = until;
                self.session.handle_timeout(self.now);
            }
            Op::Deliver => {
                self.smsc_request(Body::DeliverSm(SubmitSm {
                    esm_class: EsmClass::DELIVERY_RECEIPT,
                    ..SubmitSm::default()
                }));
            }
            Op::Respond { pick } => {
                if self.app_pending.is_empty() {
                    return;
                }
                let seq = self.app_pending.remove(pick % self.app_pending.len());
                let result = self.session.respond(self.now, seq, CommandStatus::ESME_ROK);
                assert_eq!(result.is_ok(), !self.closed, "{result:?}");
            }
            Op::SmscEnquireLink => {
                self.smsc_request(Body::EnquireLink);
            }
            Op::UnknownCommand => {
                self.smsc_request(Body::Unknown {
                    command_id: CommandId(0x0000_0099),
                    body: Bytes::new(),
                });
            }
            Op::StrayResponse(seq) => {
                // A response the session is not waiting on, with a number it is not using.
                let in_use = self.smsc_unanswered.iter().any(|&(s, _)| s == seq)
                    || self.tokens.values().any(|&(s, _)| s == seq);
                if !in_use {
                    self.feed(Pdu::new(seq, Body::QuerySmResp(None)));
                }
            }
            Op::BadBody => {
                let seq = self.smsc_sequence();
                if !self.closed {
                    self.session_owes.insert(seq, CommandId::DELIVER_SM_RESP);
                }
                let mut frame = Pdu::new(seq, Body::EnquireLink).to_bytes().to_vec();
                frame[4..8].copy_from_slice(&CommandId::DELIVER_SM.0.to_be_bytes());
                frame.extend_from_slice(b"CMTCMTCMT");
                let len = frame.len() as u32;
                frame[..4].copy_from_slice(&len.to_be_bytes());
                self.feed_frame(Bytes::from(frame));
            }
            Op::SmscUnbind => {
                self.smsc_request(Body::Unbind);
            }
            Op::OurUnbind => self.session.unbind(self.now),
            Op::Close => self.session.close(),
        }
    }

    /// Reads everything the session produced and checks it against the model.
    fn check(&mut self) {
        let sent = self.transmitted();
        if self.closed {
            assert!(sent.is_empty(), "sent after Closed: {sent:?}");
        }
        for pdu in sent {
            let command_id = pdu.command_id();
            let seq = pdu.sequence_number;
            if command_id.is_response() {
                let expected = self
                    .session_owes
                    .remove(&seq)
                    .unwrap_or_else(|| panic!("{command_id} {seq} answers nothing"));
                assert_eq!(command_id, expected);
            } else {
                assert!((1..=MAX_SEQUENCE).contains(&seq), "sequence {seq}");
                assert!(
                    !self.smsc_unanswered.iter().any(|&(s, _)| s == seq),
                    "{seq} reused while the SMSC still owes its answer"
                );
                assert!(matches!(
                    command_id,
                    CommandId::SUBMIT_SM | CommandId::ENQUIRE_LINK | CommandId::UNBIND
                ));
                self.smsc_unanswered.push((seq, command_id));
            }
        }
        while let Some(event) = self.session.poll_event() {
            assert!(!self.closed, "event after Closed: {event:?}");
            match event {
                Event::Accepted(r) | Event::Rejected(r) => {
                    let entry = self.tokens.get_mut(&r.token).expect("known token");
                    assert_eq!(entry.1, Fate::Pending);
                    assert_eq!(entry.0, r.sequence_number);
                    entry.1 = Fate::Done;
                }
                Event::TimedOut(r) => {
                    let entry = self.tokens.get_mut(&r.token).expect("known token");
                    assert_eq!(entry.1, Fate::Pending);
                    entry.1 = Fate::TimedOut;
                }
                Event::LateResponse(r) => {
                    let entry = self.tokens.get_mut(&r.token).expect("known token");
                    assert_eq!(entry.1, Fate::TimedOut);
                    entry.1 = Fate::Done;
                }
                Event::DeliverSm {
                    sequence_number, ..
                } => self.app_pending.push(sequence_number),
                Event::Closed {
                    in_flight,
                    mut unanswered,
                    ..
                } => {
                    for r in in_flight {
                        let entry = self.tokens.get_mut(&r.token).expect("known token");
                        assert_eq!(entry.1, Fate::Pending);
                        entry.1 = Fate::Done;
                    }
                    let mut pending = std::mem::take(&mut self.app_pending);
                    pending.sort_unstable();
                    unanswered.sort_unstable();
                    assert_eq!(unanswered, pending, "unanswered deliveries handed back");
                    self.closed = true;
                    // Nothing the session still owes can be answered now.
                    self.session_owes.clear();
                }
                Event::Bound { .. } => panic!("bound twice"),
                Event::InactivityTimeout
                | Event::Anomaly(_)
                | Event::DataSm { .. }
                | Event::AlertNotification(_) => {}
            }
        }
        if let Some(token) = self.must_settle.take() {
            assert_eq!(
                self.tokens[&token].1,
                Fate::Done,
                "answer to token {token} unreported"
            );
        }
        assert!(self.session.outstanding() <= self.window);
        assert_eq!(self.session.is_closed(), self.closed);
        let pending = self
            .tokens
            .values()
            .filter(|(_, fate)| *fate == Fate::Pending)
            .count();
        assert_eq!(self.session.outstanding(), pending);
        if !self.closed {
            // Whatever the SMSC sent that the session answers itself is answered at once;
            // only the application's deliveries may wait.
            let owed = self.session_owes.len();
            assert_eq!(owed, self.app_pending.len(), "{:?}", self.session_owes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn keeps_its_promises_against_a_random_smsc(
        window in 1usize..6,
        near_wrap in any::<bool>(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let first = if near_wrap { MAX_SEQUENCE - 20 } else { 1 };
        let mut world = World::new(window, first);
        for op in ops {
            world.apply(op);
            world.check();
        }
        world.session.close();
        world.check();
        prop_assert!(world.closed);
        prop_assert!(world.tokens.values().all(|(_, fate)| *fate != Fate::Pending));
    }
}

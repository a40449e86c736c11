//! Internals the public API cannot reach quickly: the sequence counter's skipping.

use super::*;

fn bound(config: SessionConfig, now: Instant) -> Session {
    let mut session = Session::new(config, now);
    let State::Open { bind_sequence, .. } = session.state else {
        panic!("a new session is OPEN");
    };
    session.handle_pdu(
        now,
        Ok(Pdu::new(bind_sequence, Body::BindTransceiverResp(None))),
    );
    assert_eq!(session.state(), SessionState::Bound);
    session
}

fn submit_sm() -> Body {
    Body::SubmitSm(Default::default())
}

#[test]
fn allocation_skips_numbers_still_in_flight_or_remembered() {
    let now = Instant::now();
    let mut session = bound(SessionConfig::default(), now);
    let a = session.submit(now, submit_sm(), 1).unwrap();
    let b = session.submit(now, submit_sm(), 2).unwrap();
    // b times out and is remembered; a stays in flight.
    session.in_flight.remove(b);
    session.timed_out.remember(Request {
        token: 2,
        sequence_number: b,
        command_id: CommandId::SUBMIT_SM,
    });
    // Pretend the counter went all the way round.
    session.next_sequence = a;
    let c = session.submit(now, submit_sm(), 3).unwrap();
    assert_eq!(c, b + 1, "skipped {a} (in flight) and {b} (remembered)");
}

#[test]
fn allocation_skips_the_outstanding_enquire_link() {
    let now = Instant::now();
    let mut session = bound(SessionConfig::default(), now);
    let later = now + SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL;
    session.handle_timeout(later);
    let State::Bound { link, .. } = session.state else {
        panic!("still bound");
    };
    let enquire = link.sequence_number.unwrap();
    session.next_sequence = enquire;
    assert_eq!(session.submit(later, submit_sm(), 1).unwrap(), enquire + 1);
}

#[test]
fn allocation_wraps_past_the_maximum_to_one() {
    let now = Instant::now();
    let mut session = bound(SessionConfig::default(), now);
    session.next_sequence = MAX_SEQUENCE;
    assert_eq!(session.submit(now, submit_sm(), 1).unwrap(), MAX_SEQUENCE);
    // 1 was the bind's, answered long ago: free again.
    assert_eq!(session.submit(now, submit_sm(), 2).unwrap(), 1);
}

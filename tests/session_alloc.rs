//! The hot path allocates nothing once warm: submit, transmit, submit_sm_resp, event, timer,
//! and deliver_sm, event, respond, checked with a counting global allocator (dhat in testing
//! mode). dhat allows one profiler per process and counts every thread's allocations, so this
//! binary runs without the test harness (whose own thread allocates while a test runs).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use smppd::pdu::*;
use smppd::session::*;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn submit_sm() -> Body {
    Body::SubmitSm(SubmitSm {
        destination_addr: COctetString::try_from("447700900123").unwrap(),
        short_message: ShortMessage::new(Bytes::from_static(&[b'A'; 160])).unwrap(),
        ..SubmitSm::default()
    })
}

fn receipt_frame(sequence_number: u32) -> Bytes {
    Pdu::new(
        sequence_number,
        Body::DeliverSm(SubmitSm {
            esm_class: EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(Bytes::from_static(b"id:1 stat:DELIVRD")).unwrap(),
            ..SubmitSm::default()
        }),
    )
    .to_bytes()
}

/// One round of the driver loop: answer the oldest request, take a receipt and answer it,
/// submit a new request, drain everything.
fn round(
    session: &mut Session,
    now: Instant,
    in_flight: &mut VecDeque<u32>,
    receipt: &Bytes,
    wire: &mut BytesMut,
) {
    let oldest = in_flight.pop_front().unwrap();
    let resp = Pdu::new(
        oldest,
        Body::SubmitSmResp(Some(SmResp {
            message_id: COctetString::try_from("0f1e2d3c").unwrap(),
            tlvs: Tlvs::new(),
        })),
    );
    session.handle_pdu(now, Ok(resp));
    session.handle_pdu(now, Pdu::decode(receipt));
    while let Some(event) = session.poll_event() {
        match event {
            Event::Accepted(_) => {}
            Event::DeliverSm {
                sequence_number, ..
            } => session
                .respond(now, sequence_number, CommandStatus::ESME_ROK)
                .unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    in_flight.push_back(session.submit(now, submit_sm(), 1).unwrap());
    session.poll_transmit(wire);
    wire.clear();
    session.handle_timeout(now);
    std::hint::black_box(session.poll_timeout());
}

fn main() {
    request_and_receipt_cycles_allocate_nothing_once_warm();
    println!("session_alloc: request and receipt cycles allocate nothing once warm: ok");
}

fn request_and_receipt_cycles_allocate_nothing_once_warm() {
    let t0 = Instant::now();
    let window = 10;
    let mut session = Session::new(
        SessionConfig {
            window,
            ..SessionConfig::default()
        },
        t0,
    );
    let mut wire = BytesMut::with_capacity(64 * 1024);
    session.poll_transmit(&mut wire);
    wire.clear();
    session.handle_pdu(t0, Ok(Pdu::new(1, Body::BindTransceiverResp(None))));
    while session.poll_event().is_some() {}
    let mut in_flight = VecDeque::with_capacity(window);
    for _ in 0..window {
        in_flight.push_back(session.submit(t0, submit_sm(), 0).unwrap());
    }
    let receipt = receipt_frame(500);
    // Warm up: the buffers the session and the driver swap reach their working size.
    for i in 0..100 {
        round(
            &mut session,
            t0 + Duration::from_micros(i),
            &mut in_flight,
            &receipt,
            &mut wire,
        );
    }

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    for i in 100..1100 {
        round(
            &mut session,
            t0 + Duration::from_micros(i),
            &mut in_flight,
            &receipt,
            &mut wire,
        );
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
}

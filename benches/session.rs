//! Session benches: one request cycle as the conn driver runs it, with the window full. Each
//! iteration answers the oldest request (`handle_pdu` with a decoded submit_sm_resp), drains
//! its event, submits a new submit_sm (encoded into the outbox), drains the transmit buffer
//! and re-reads the timer, so the in-flight table holds `window` requests throughout.
//!
//! Run: `cargo bench --bench session`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smppd::pdu::*;
use smppd::session::*;

fn submit_sm() -> Body {
    Body::SubmitSm(SubmitSm {
        source_addr_ton: Ton::ALPHANUMERIC,
        source_addr: COctetString::try_from("MyBrand").unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::try_from("447700900123").unwrap(),
        registered_delivery: RegisteredDelivery::FINAL,
        short_message: ShortMessage::new(Bytes::from_static(&[b'A'; 160])).unwrap(),
        ..SubmitSm::default()
    })
}

fn submit_sm_resp(sequence_number: u32) -> Pdu {
    Pdu::new(
        sequence_number,
        Body::SubmitSmResp(Some(SmResp {
            message_id: COctetString::try_from("0f1e2d3c4b5a6978").unwrap(),
            tlvs: Tlvs::new(),
        })),
    )
}

/// A bound session with a full window, and the sequence numbers in flight, oldest first.
fn full_window(window: usize, now: Instant) -> (Session, VecDeque<u32>, BytesMut) {
    let config = SessionConfig {
        window,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, now);
    let mut wire = BytesMut::with_capacity(64 * 1024);
    session.poll_transmit(&mut wire);
    session.handle_pdu(now, Ok(Pdu::new(1, Body::BindTransceiverResp(None))));
    while session.poll_event().is_some() {}
    let mut in_flight = VecDeque::with_capacity(window);
    for token in 0..window as u64 {
        in_flight.push_back(session.submit(now, submit_sm(), token).unwrap());
    }
    wire.clear();
    session.poll_transmit(&mut wire);
    wire.clear();
    (session, in_flight, wire)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_cycle");
    group.throughput(Throughput::Elements(1));
    for window in [10, 100] {
        group.bench_with_input(
            BenchmarkId::from_parameter(window),
            &window,
            |b, &window| {
                let t0 = Instant::now();
                let (mut session, mut in_flight, mut wire) = full_window(window, t0);
                let body = submit_sm();
                let mut now = t0;
                let mut token = window as u64;
                b.iter(|| {
                    // Stay well inside the response timeout: a few microseconds per cycle.
                    now += Duration::from_nanos(1);
                    let oldest = in_flight.pop_front().unwrap();
                    session.handle_pdu(now, Ok(submit_sm_resp(oldest)));
                    while let Some(event) = session.poll_event() {
                        black_box(event);
                    }
                    token += 1;
                    let seq = session.submit(now, body.clone(), token).unwrap();
                    in_flight.push_back(seq);
                    let sent = session.poll_transmit(&mut wire);
                    black_box((sent, wire.len()));
                    wire.clear();
                    black_box(session.poll_timeout())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

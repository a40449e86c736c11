//! Codec benches: decode and encode of a submit_sm carrying 160 GSM characters and two TLVs
//! (about 230 octets), a submit_sm_resp, and a deliver_sm delivery receipt.
//!
//! Run: `cargo bench --bench codec`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smppd::pdu::*;

fn submit_sm() -> Pdu {
    let text = "The quick brown fox jumps over the lazy dog; 0123456789. ".repeat(3);
    Pdu::new(
        0x0102_0304,
        Body::SubmitSm(SubmitSm {
            source_addr_ton: Ton::ALPHANUMERIC,
            source_addr: COctetString::try_from("MyBrand").unwrap(),
            dest_addr_ton: Ton::INTERNATIONAL,
            dest_addr_npi: Npi::ISDN,
            destination_addr: COctetString::try_from("447700900123").unwrap(),
            registered_delivery: RegisteredDelivery::FINAL,
            short_message: ShortMessage::new(text.as_bytes()[..160].to_vec()).unwrap(),
            tlvs: TlvsBuilder::new()
                .u16(TlvTag::USER_MESSAGE_REFERENCE, 0x1234)
                .u8(TlvTag::PAYLOAD_TYPE, 0)
                .build(),
            ..SubmitSm::default()
        }),
    )
}

fn submit_sm_resp() -> Pdu {
    Pdu::new(
        7,
        Body::SubmitSmResp(Some(SmResp {
            message_id: COctetString::try_from("0f1e2d3c4b5a6978").unwrap(),
            tlvs: Tlvs::new(),
        })),
    )
}

fn receipt() -> Pdu {
    let text = "id:0f1e2d3c4b5a6978 sub:001 dlvrd:001 submit date:2401151230 \
                done date:2401151231 stat:DELIVRD err:000 Text:The quick brown fox";
    Pdu::new(
        9,
        Body::DeliverSm(SubmitSm {
            source_addr_ton: Ton::INTERNATIONAL,
            source_addr: COctetString::try_from("447700900123").unwrap(),
            destination_addr: COctetString::try_from("MyBrand").unwrap(),
            esm_class: EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(text.as_bytes().to_vec()).unwrap(),
            tlvs: TlvsBuilder::new()
                .receipted_message_id(b"0f1e2d3c4b5a6978")
                .unwrap()
                .message_state(MessageState::DELIVERED)
                .build(),
            ..SubmitSm::default()
        }),
    )
}

/// The frame as the codec hands it over: split from a read buffer, so slicing it is a
/// reference-count increment.
fn frame(pdu: &Pdu) -> Bytes {
    let mut buf = BytesMut::with_capacity(4096);
    pdu.encode(&mut buf);
    let len = buf.len();
    buf.split_to(len).freeze()
}

fn bench(c: &mut Criterion) {
    for (name, pdu) in [
        ("submit_sm_160", submit_sm()),
        ("submit_sm_resp", submit_sm_resp()),
        ("deliver_sm_receipt", receipt()),
    ] {
        let wire = frame(&pdu);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function("decode", |b| {
            b.iter(|| Pdu::decode(black_box(&wire)).unwrap())
        });
        let mut buf = BytesMut::with_capacity(4096);
        group.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&pdu).encode(&mut buf);
                black_box(buf.len())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Decoding allocates nothing beyond the frame's own `Bytes`: checked with a counting global
//! allocator (dhat in testing mode), on frames cut from a read buffer as `PduCodec` cuts them.
//! One check per binary, as dhat's testing mode requires, so this file runs without the
//! test harness.

use bytes::{Bytes, BytesMut};
use smppd::pdu::*;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn frame(pdu: &Pdu) -> Bytes {
    let mut buf = BytesMut::with_capacity(4096);
    pdu.encode(&mut buf);
    let len = buf.len();
    buf.split_to(len).freeze()
}

fn main() {
    let submit = Pdu::new(
        1,
        Body::SubmitSm(SubmitSm {
            source_addr: COctetString::try_from("MyBrand").unwrap(),
            destination_addr: COctetString::try_from("447700900123").unwrap(),
            short_message: ShortMessage::new(vec![b'A'; 160]).unwrap(),
            tlvs: TlvsBuilder::new()
                .u16(TlvTag::USER_MESSAGE_REFERENCE, 7)
                .u8(TlvTag::PAYLOAD_TYPE, 0)
                .build(),
            ..SubmitSm::default()
        }),
    );
    let resp = Pdu::new(
        1,
        Body::SubmitSmResp(Some(SmResp {
            message_id: COctetString::try_from("1A2B3C4D").unwrap(),
            tlvs: Tlvs::new(),
        })),
    );
    let frames = [frame(&submit), frame(&resp)];

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    for _ in 0..100 {
        for f in &frames {
            let pdu = Pdu::decode(f).expect("decodes");
            std::hint::black_box(&pdu);
        }
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
    println!("decode allocations: 0 over 200 decodes");
}

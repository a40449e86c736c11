//! One PDU frame: decode must never panic, and whatever decodes must re-encode to the same
//! bytes and decode again to the same PDU.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use smppd::pdu::Pdu;

fuzz_target!(|data: &[u8]| {
    // Give the input a consistent command_length so the body decoders are reached, not just the
    // length check; the raw input is tried as it is as well.
    let raw = Bytes::copy_from_slice(data);
    check(&raw);
    if data.len() >= 16 {
        let mut fixed = data.to_vec();
        fixed[..4].copy_from_slice(&(data.len() as u32).to_be_bytes());
        check(&Bytes::from(fixed));
    }
});

fn check(frame: &Bytes) {
    match Pdu::decode(frame) {
        Ok(pdu) => {
            let wire = pdu.to_bytes();
            assert_eq!(&wire, frame, "re-encoding {pdu:?}");
            let again = Pdu::decode(&wire).expect("re-encoded PDU decodes");
            assert_eq!(again, pdu);
            let json = serde_json::to_string(&pdu).expect("serializes");
            assert_eq!(Pdu::from_json(&json).expect("JSON reads back"), pdu);
        }
        Err(e) => {
            // An error always names what to answer with, and the answer encodes.
            if let Some(answer) = e.response() {
                let _ = answer.to_bytes();
            }
        }
    }
}

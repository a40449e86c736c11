//! The framing matrix through `PduCodec`, and malformed bodies that must come out as answerable
//! items, never as panics or stream errors.

use bytes::{Bytes, BytesMut};
use smppd::pdu::*;
use tokio_util::codec::{Decoder, Encoder};

fn enquire_link(seq: u32) -> Bytes {
    Pdu::new(seq, Body::EnquireLink).to_bytes()
}

fn submit_sm(seq: u32, text: &str) -> Bytes {
    Pdu::new(
        seq,
        Body::SubmitSm(SubmitSm {
            destination_addr: COctetString::try_from("447700900123").unwrap(),
            short_message: ShortMessage::new(text.as_bytes().to_vec()).unwrap(),
            ..SubmitSm::default()
        }),
    )
    .to_bytes()
}

/// Feeds `chunks` one read at a time, collecting every item the codec yields.
fn feed(codec: &mut PduCodec, chunks: &[&[u8]]) -> Result<Vec<Pdu>, FrameError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf)? {
            out.push(item.expect("well-formed PDU"));
        }
    }
    Ok(out)
}

#[test]
fn one_frame_per_read() {
    let a = submit_sm(1, "one");
    let b = enquire_link(2);
    let pdus = feed(&mut PduCodec::new(), &[&a, &b]).unwrap();
    assert_eq!(pdus.len(), 2);
    assert_eq!(pdus[0].sequence_number, 1);
    assert_eq!(pdus[1].body, Body::EnquireLink);
}

#[test]
fn one_frame_over_many_reads() {
    let frame = submit_sm(7, "split across reads");
    let chunks: Vec<&[u8]> = frame.chunks(1).collect();
    let pdus = feed(&mut PduCodec::new(), &chunks).unwrap();
    assert_eq!(pdus.len(), 1);
    assert_eq!(pdus[0].to_bytes(), frame);
    // Split inside the length field, inside the header, inside the body.
    for cut in [2, 9, 20, frame.len() - 1] {
        let pdus = feed(&mut PduCodec::new(), &[&frame[..cut], &frame[cut..]]).unwrap();
        assert_eq!(pdus.len(), 1, "cut at {cut}");
    }
}

#[test]
fn many_frames_per_read() {
    let mut stream = Vec::new();
    for seq in 1..=50 {
        stream.extend_from_slice(&submit_sm(seq, "batch"));
        stream.extend_from_slice(&enquire_link(seq + 1000));
    }
    let pdus = feed(&mut PduCodec::new(), &[&stream]).unwrap();
    assert_eq!(pdus.len(), 100);
    assert_eq!(pdus[99].sequence_number, 1050);
}

#[test]
fn truncated_header_waits_for_more() {
    let frame = enquire_link(3);
    let mut buf = BytesMut::from(&frame[..10]);
    let mut codec = PduCodec::new();
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 10, "nothing consumed");
    // At end of stream a partial header is an error, not a silent drop.
    assert!(matches!(codec.decode_eof(&mut buf), Err(FrameError::Io(_))));
}

#[test]
fn truncated_body_waits_for_more() {
    let frame = submit_sm(4, "body");
    let mut buf = BytesMut::from(&frame[..frame.len() - 3]);
    let mut codec = PduCodec::new();
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&frame[frame.len() - 3..]);
    assert!(codec.decode(&mut buf).unwrap().is_some());
}

#[test]
fn length_below_header_size_breaks_framing_and_is_nacked() {
    let mut buf = BytesMut::from(&hex::decode("0000000F 00000015 00000000 00000009").unwrap()[..]);
    let err = PduCodec::new().decode(&mut buf).unwrap_err();
    let FrameError::BadLength {
        command_length,
        sequence_number,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*command_length, *sequence_number), (15, Some(9)));
    let nack = err.response().unwrap();
    assert_eq!(nack.body, Body::GenericNack);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert_eq!(nack.sequence_number, 9);
}

#[test]
fn length_over_the_maximum_breaks_framing() {
    let mut codec = PduCodec::with_max_len(1024);
    let mut buf = BytesMut::from(&hex::decode("00000401").unwrap()[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        FrameError::BadLength {
            command_length: 1025,
            max: 1024,
            sequence_number: None
        }
    ));
    assert_eq!(err.response().unwrap().sequence_number, 0);
    // The default admits a full 64 KiB message_payload.
    assert_eq!(PduCodec::new().max_len(), 65536 + 16);
}

#[test]
fn encoder_writes_many_pdus_into_one_buffer() {
    let mut codec = PduCodec::new();
    let mut out = BytesMut::new();
    for seq in 1..=3 {
        codec
            .encode(Pdu::new(seq, Body::EnquireLink), &mut out)
            .unwrap();
    }
    assert_eq!(out.len(), 48);
    assert_eq!(feed(&mut codec, &[&out]).unwrap().len(), 3);
}

/// Decodes a frame built from a header and a hex body.
fn decode_body(command_id: u32, body_hex: &str) -> Result<Pdu, DecodeError> {
    let body = hex::decode(body_hex).unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&command_id.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 42]);
    frame.extend_from_slice(&body);
    // Through the codec: a bad body is an item, not a stream error.
    let mut buf = BytesMut::from(&frame[..]);
    PduCodec::new().decode(&mut buf).unwrap().unwrap()
}

#[test]
fn truncated_field_is_answered_with_invcmdlen() {
    // submit_sm cut after source_addr_ton.
    let err = decode_body(4, "00 01").unwrap_err();
    assert_eq!(err.field, "source_addr_npi");
    assert_eq!(err.status, CommandStatus::ESME_RINVCMDLEN);
    let answer = err.response().unwrap();
    assert_eq!(answer.body, Body::SubmitSmResp(None));
    assert_eq!(answer.sequence_number, 42);
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVCMDLEN);
}

#[test]
fn c_string_without_its_nul_is_answered() {
    // query_sm whose message_id runs to the end of the body.
    let err = decode_body(3, "31 32 33").unwrap_err();
    assert_eq!(err.field, "message_id");
    assert_eq!(err.reason, FailReason::Truncated);
    assert_eq!(err.response().unwrap().body, Body::QuerySmResp(None));
}

#[test]
fn c_string_over_its_maximum_gets_the_field_status() {
    // submit_sm whose source_addr has 21 characters (C21 allows 20).
    let body = format!("00 01 01 {} 00", "31 ".repeat(21));
    let err = decode_body(4, &body).unwrap_err();
    assert_eq!(err.field, "source_addr");
    assert_eq!(err.reason, FailReason::TooLong);
    assert_eq!(err.status, CommandStatus::ESME_RINVSRCADR);
    // A bind with a 16-character system_id (C16 allows 15).
    let body = format!("{} 00 00 00 34 00 00 00", "41 ".repeat(16));
    assert_eq!(
        decode_body(9, &body).unwrap_err().status,
        CommandStatus::ESME_RINVSYSID
    );
}

#[test]
fn tlv_running_past_the_end_is_answered() {
    // deliver_sm with an empty body up to sm_length, then a TLV claiming 9 octets but having 2.
    let body = "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1E 00 09 31 32";
    let err = decode_body(5, body).unwrap_err();
    assert_eq!(err.status, CommandStatus::ESME_RINVOPTPARSTREAM);
    assert_eq!(err.field, "receipted_message_id");
    let answer = err.response().unwrap();
    assert_eq!(answer.body, Body::DeliverSmResp(None));
    assert_eq!(answer.command_status, CommandStatus::ESME_RINVOPTPARSTREAM);
}

#[test]
fn sm_length_past_the_end_is_answered_with_invmsglen() {
    let body = "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 48 69";
    let err = decode_body(4, body).unwrap_err();
    assert_eq!(err.field, "short_message");
    assert_eq!(err.status, CommandStatus::ESME_RINVMSGLEN);
}

#[test]
fn unknown_command_id_is_kept_and_nacked() {
    let pdu = decode_body(0x0001_0200, "de ad be ef").unwrap();
    assert_eq!(pdu.command_id(), CommandId(0x0001_0200));
    let nack = pdu.unknown_command_response().unwrap();
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDID);
    assert_eq!(nack.sequence_number, 42);
    assert_eq!(nack.body, Body::GenericNack);
    // An unknown response is never answered.
    let pdu = decode_body(0x8001_0200, "").unwrap();
    assert_eq!(pdu.unknown_command_response(), None);
}

#[test]
fn error_responses_decode_with_or_without_a_body() {
    // No body, a bare NUL, a message_id: all three seen from real SMSCs with status != 0.
    for (body, expected) in [("", None), ("00", Some("")), ("31 32 33 00", Some("123"))] {
        let pdu = decode_body(0x8000_0004, body).unwrap();
        let Body::SubmitSmResp(resp) = pdu.body else {
            panic!()
        };
        assert_eq!(
            resp.map(|r| r.message_id.as_str().unwrap().to_owned()),
            expected.map(str::to_owned)
        );
    }
    // bind_transceiver_resp with and without sc_interface_version.
    let Body::BindTransceiverResp(Some(r)) = decode_body(0x8000_0009, "53 00").unwrap().body else {
        panic!()
    };
    assert_eq!(r.tlvs.sc_interface_version(), None);
}

#[test]
fn header_only_pdu_with_a_body_is_answered() {
    let err = decode_body(0x15, "00").unwrap_err();
    assert_eq!(err.reason, FailReason::UnexpectedBody);
    assert_eq!(err.response().unwrap().body, Body::EnquireLinkResp);
}

#[test]
fn bad_dest_flag_is_answered_with_invdestflag() {
    // submit_multi with number_of_dests 1 and dest_flag 7.
    let err = decode_body(0x21, "00 00 00 00 01 07").unwrap_err();
    assert_eq!(err.status, CommandStatus::ESME_RINVDESTFLAG);
}

#[test]
fn frame_whose_length_disagrees_with_its_size_is_refused() {
    let err = Pdu::decode(&Bytes::from_static(&[
        0, 0, 0, 17, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1,
    ]))
    .unwrap_err();
    assert_eq!(err.status, CommandStatus::ESME_RINVCMDLEN);
    let err = Pdu::decode(&Bytes::from_static(&[0, 0, 0])).unwrap_err();
    assert_eq!(err.response(), None);
}

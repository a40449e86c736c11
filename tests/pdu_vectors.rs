//! Every PDU test vector of the reference (docs/smpp34-reference.md section 8) as a named test:
//! decoded to the fields the reference describes, and re-encoded to the same bytes.

use bytes::Bytes;
use smppd::pdu::{
    Body, CommandId, CommandStatus, DataCoding, DestAddress, EsmClass, MessageState, Npi, Pdu,
    RegisteredDelivery, Ton, hex,
};

fn bytes(hex_text: &str) -> Bytes {
    Bytes::from(hex::decode(hex_text).expect("vector is valid hex"))
}

/// Decodes a vector, checks that re-encoding gives the same bytes, and returns the PDU.
fn round_trip(hex_text: &str) -> Pdu {
    let wire = bytes(hex_text);
    let pdu = Pdu::decode(&wire).expect("vector decodes");
    assert_eq!(pdu.to_bytes(), wire, "re-encoding {pdu:?}");
    pdu
}

fn s<const N: usize>(c: &smppd::pdu::COctetString<N>) -> &str {
    c.as_str().expect("ascii")
}

/// bind_transmitter  seq=1  system_id="SMPP3TEST" password="secret08" system_type="SUBMIT1" interf
const BIND_TRANSMITTER: &str = concat!(
    "00 00 00 2F 00 00 00 02 00 00 00 00 00 00 00 01 53 4D 50 50 33 54 45 53 ",
    "54 00 73 65 63 72 65 74 30 38 00 53 55 42 4D 49 54 31 00 34 01 01 00 "
);
/// bind_transceiver  seq=1  system_id="esme1" password="pw" system_type="" interface_version=0x34
const BIND_TRANSCEIVER: &str = concat!(
    "00 00 00 1E 00 00 00 09 00 00 00 00 00 00 00 01 65 73 6D 65 31 00 70 77 ",
    "00 00 34 00 00 00 "
);
/// bind_transceiver_resp  seq=1  status=ESME_ROK  system_id="SMSC" + TLV sc_interface_version(0x02
const BIND_TRANSCEIVER_RESP: &str = concat!(
    "00 00 00 1A 80 00 00 09 00 00 00 00 00 00 00 01 53 4D 53 43 00 02 10 00 ",
    "01 34 "
);
/// bind_transmitter_resp  seq=1  status=ESME_RINVPASWD (0x0E), body omitted per 3.4
const BIND_TRANSMITTER_RESP_INVPASWD: &str = "00 00 00 10 80 00 00 02 00 00 00 0E 00 00 00 01 ";
/// generic_nack  seq=0  status=ESME_RINVCMDLEN (header unreadable, e.g. command_length < 16)
const GENERIC_NACK_INVCMDLEN: &str = "00 00 00 10 80 00 00 00 00 00 00 02 00 00 00 00 ";
/// enquire_link  seq=2
const ENQUIRE_LINK: &str = "00 00 00 10 00 00 00 15 00 00 00 00 00 00 00 02 ";
/// enquire_link_resp  seq=2
const ENQUIRE_LINK_RESP: &str = "00 00 00 10 80 00 00 15 00 00 00 00 00 00 00 02 ";
/// unbind  seq=7
const UNBIND: &str = "00 00 00 10 00 00 00 06 00 00 00 00 00 00 00 07 ";
/// unbind_resp  seq=7
const UNBIND_RESP: &str = "00 00 00 10 80 00 00 06 00 00 00 00 00 00 00 07 ";
/// generic_nack  seq=5  status=ESME_RINVCMDID (reply to unknown command_id 0x00000099 carrying seq
const GENERIC_NACK_INVCMDID: &str = "00 00 00 10 80 00 00 00 00 00 00 03 00 00 00 05 ";
/// submit_sm  seq=3  service_type="" src=1/1/"447700900001" dst=1/1/"447700900123" esm_class=0 pid
const SUBMIT_SM_HELLO: &str = concat!(
    "00 00 00 3E 00 00 00 04 00 00 00 00 00 00 00 03 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 30 30 31 00 01 01 34 34 37 37 30 30 39 30 30 31 32 33 00 00 ",
    "00 00 00 00 01 00 00 00 05 48 65 6C 6C 6F "
);
/// submit_sm_resp  seq=3  status=ESME_ROK  message_id="1A2B3C4D"
const SUBMIT_SM_RESP: &str = concat!(
    "00 00 00 19 80 00 00 04 00 00 00 00 00 00 00 03 31 41 32 42 33 43 34 44 ",
    "00 "
);
/// submit_sm_resp  seq=4  status=ESME_RTHROTTLED (0x58), no body
const SUBMIT_SM_RESP_THROTTLED: &str = "00 00 00 10 80 00 00 04 00 00 00 58 00 00 00 04 ";
/// submit_sm  seq=6  "Привет" data_coding=8 (UCS-2 big-endian, 12 octets)
const SUBMIT_SM_UCS2: &str = concat!(
    "00 00 00 45 00 00 00 04 00 00 00 00 00 00 00 06 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 30 30 31 00 01 01 34 34 37 37 30 30 39 30 30 31 32 33 00 00 ",
    "00 00 00 00 00 00 08 00 0C 04 1F 04 40 04 38 04 32 04 35 04 42 "
);
/// submit_sm  seq=8  part 1/2 of a 160-char GSM text (153 "A"), esm_class=0x40 (UDHI), UDH 05 00 0
const SUBMIT_SM_UDH_PART1: &str = concat!(
    "00 00 00 D8 00 00 00 04 00 00 00 00 00 00 00 08 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 30 30 31 00 01 01 34 34 37 37 30 30 39 30 30 31 32 33 00 40 ",
    "00 00 00 00 00 00 00 00 9F 05 00 03 42 02 01 41 41 41 41 41 41 41 41 41 ",
    "41 41 41 41 41 41 41 41 "
);
/// deliver_sm  seq=1 (SMSC-originated)  delivery receipt: esm_class=0x04, src/dst swapped vs the s
const DELIVER_SM_RECEIPT: &str = concat!(
    "00 00 00 B4 00 00 00 05 00 00 00 00 00 00 00 01 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 31 32 33 00 01 01 34 34 37 37 30 30 39 30 30 30 30 31 00 04 ",
    "00 00 00 00 00 00 00 00 69 69 64 3A 31 41 32 42 33 43 34 44 20 73 75 62 ",
    "3A 30 30 31 20 64 6C 76 72 64 3A 30 30 31 20 73 75 62 6D 69 74 20 64 61 ",
    "74 65 3A 32 34 30 31 31 35 31 32 33 30 20 64 6F 6E 65 20 64 61 74 65 3A ",
    "32 34 30 31 31 35 31 32 33 31 20 73 74 61 74 3A 44 45 4C 49 56 52 44 20 ",
    "65 72 72 3A 30 30 30 20 54 65 78 74 3A 48 65 6C 6C 6F 00 1E 00 09 31 41 ",
    "32 42 33 43 34 44 00 04 27 00 01 02 "
);
/// deliver_sm_resp  seq=1  status=ESME_ROK  message_id="" (single NUL)
const DELIVER_SM_RESP: &str = "00 00 00 11 80 00 00 05 00 00 00 00 00 00 00 01 00 ";
/// data_sm  seq=9  service_type="" src 1/1/"447700900001" dst 1/1/"447700900123" esm_class=0 regis
const DATA_SM_PAYLOAD: &str = concat!(
    "00 00 01 62 00 00 01 03 00 00 00 00 00 00 00 09 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 30 30 31 00 01 01 34 34 37 37 30 30 39 30 30 31 32 33 00 00 ",
    "00 00 04 24 01 2C 78 78 78 78 78 78 78 78 78 78 78 78 78 78 78 78 78 78 ",
    "78 78 78 78 78 78 78 78 "
);
/// query_sm  seq=10  message_id="1A2B3C4D" source 1/1/"447700900001"
const QUERY_SM: &str = concat!(
    "00 00 00 28 00 00 00 03 00 00 00 00 00 00 00 0A 31 41 32 42 33 43 34 44 ",
    "00 01 01 34 34 37 37 30 30 39 30 30 30 30 31 00 "
);
/// query_sm_resp  seq=10  message_id="1A2B3C4D" final_date="240115123100000+" message_state=2 erro
const QUERY_SM_RESP: &str = concat!(
    "00 00 00 2C 80 00 00 03 00 00 00 00 00 00 00 0A 31 41 32 42 33 43 34 44 ",
    "00 32 34 30 31 31 35 31 32 33 31 30 30 30 30 30 2B 00 02 00 "
);
/// cancel_sm  seq=11  service_type="" message_id="1A2B3C4D" source 1/1/"447700900001" dest 1/1/"44
const CANCEL_SM: &str = concat!(
    "00 00 00 38 00 00 00 08 00 00 00 00 00 00 00 0B 00 31 41 32 42 33 43 34 ",
    "44 00 01 01 34 34 37 37 30 30 39 30 30 30 30 31 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 31 32 33 00 "
);
/// replace_sm  seq=12  message_id="1A2B3C4D" source 1/1/"447700900001" sched="" validity="00000700
const REPLACE_SM: &str = concat!(
    "00 00 00 40 00 00 00 07 00 00 00 00 00 00 00 0C 31 41 32 42 33 43 34 44 ",
    "00 01 01 34 34 37 37 30 30 39 30 30 30 30 31 00 00 30 30 30 30 30 37 30 ",
    "30 30 30 30 30 30 30 30 52 00 01 00 03 42 79 65 "
);
/// submit_multi  seq=13  service_type="" src 1/1/"447700900001" number_of_dests=2 [SME 1/1/"447700
const SUBMIT_MULTI: &str = concat!(
    "00 00 00 44 00 00 00 21 00 00 00 00 00 00 00 0D 00 01 01 34 34 37 37 30 ",
    "30 39 30 30 30 30 31 00 02 01 01 01 34 34 37 37 30 30 39 30 30 31 32 33 ",
    "00 02 73 74 61 66 66 00 00 00 00 00 00 00 00 00 00 02 48 69 "
);
/// submit_multi_resp  seq=13  message_id="77" no_unsuccess=1 [1/1/"447700900999" error_status_code
const SUBMIT_MULTI_RESP: &str = concat!(
    "00 00 00 27 80 00 00 21 00 00 00 00 00 00 00 0D 37 37 00 01 01 01 34 34 ",
    "37 37 30 30 39 30 30 39 39 39 00 00 00 00 0B "
);
/// alert_notification  seq=14  source 1/1/"447700900123" esme 1/1/"12345" + TLV ms_availability_st
const ALERT_NOTIFICATION: &str = concat!(
    "00 00 00 2C 00 00 01 02 00 00 00 00 00 00 00 0E 01 01 34 34 37 37 30 30 ",
    "39 30 30 31 32 33 00 01 01 31 32 33 34 35 00 04 22 00 01 00 "
);
/// outbind  seq=1  system_id="SMSC" password="secret"
const OUTBIND: &str = concat!(
    "00 00 00 1C 00 00 00 0B 00 00 00 00 00 00 00 01 53 4D 53 43 00 73 65 63 ",
    "72 65 74 00 "
);
/// data_sm_resp  seq=9  status=ESME_ROK message_id="88"
const DATA_SM_RESP: &str = "00 00 00 13 80 00 01 03 00 00 00 00 00 00 00 09 38 38 00 ";

#[test]
fn bind_transmitter_vector() {
    let pdu = round_trip(BIND_TRANSMITTER);
    assert_eq!(pdu.sequence_number, 1);
    let Body::BindTransmitter(b) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&b.system_id), "SMPP3TEST");
    assert_eq!(s(&b.password), "secret08");
    assert_eq!(s(&b.system_type), "SUBMIT1");
    assert_eq!(b.interface_version.0, 0x34);
    assert_eq!((b.addr_ton, b.addr_npi), (Ton::INTERNATIONAL, Npi::ISDN));
    assert!(b.address_range.is_empty());
}

#[test]
fn bind_transceiver_vector() {
    let pdu = round_trip(BIND_TRANSCEIVER);
    let Body::BindTransceiver(b) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&b.system_id), "esme1");
    assert_eq!(s(&b.password), "pw");
    assert!(b.system_type.is_empty());
    assert_eq!(b.interface_version.0, 0x34);
}

#[test]
fn bind_transceiver_resp_vector_with_sc_interface_version() {
    let pdu = round_trip(BIND_TRANSCEIVER_RESP);
    assert_eq!(pdu.command_status, CommandStatus::ESME_ROK);
    let Body::BindTransceiverResp(Some(b)) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&b.system_id), "SMSC");
    assert_eq!(b.tlvs.sc_interface_version(), Some(0x34));
}

#[test]
fn bind_transmitter_resp_error_vector_without_body() {
    let pdu = round_trip(BIND_TRANSMITTER_RESP_INVPASWD);
    assert_eq!(pdu.command_status, CommandStatus::ESME_RINVPASWD);
    assert_eq!(pdu.body, Body::BindTransmitterResp(None));
}

#[test]
fn generic_nack_invcmdlen_vector() {
    let pdu = round_trip(GENERIC_NACK_INVCMDLEN);
    assert_eq!(pdu.command_status, CommandStatus::ESME_RINVCMDLEN);
    assert_eq!(pdu.sequence_number, 0);
    assert_eq!(pdu.body, Body::GenericNack);
}

#[test]
fn enquire_link_vectors() {
    let pdu = round_trip(ENQUIRE_LINK);
    assert_eq!((pdu.body, pdu.sequence_number), (Body::EnquireLink, 2));
    let pdu = round_trip(ENQUIRE_LINK_RESP);
    assert_eq!((pdu.body, pdu.sequence_number), (Body::EnquireLinkResp, 2));
}

#[test]
fn unbind_vectors() {
    let pdu = round_trip(UNBIND);
    assert_eq!((pdu.body, pdu.sequence_number), (Body::Unbind, 7));
    let pdu = round_trip(UNBIND_RESP);
    assert_eq!((pdu.body, pdu.sequence_number), (Body::UnbindResp, 7));
}

#[test]
fn generic_nack_invcmdid_vector_answers_an_unknown_command() {
    let nack = round_trip(GENERIC_NACK_INVCMDID);
    // The reference's nack answers command_id 0x00000099 carrying sequence 5.
    let unknown = Pdu::decode(&bytes("00 00 00 10 00 00 00 99 00 00 00 00 00 00 00 05")).unwrap();
    assert_eq!(unknown.command_id(), CommandId(0x99));
    assert_eq!(unknown.unknown_command_response(), Some(nack));
}

#[test]
fn submit_sm_hello_vector() {
    let pdu = round_trip(SUBMIT_SM_HELLO);
    assert_eq!(pdu.sequence_number, 3);
    let Body::SubmitSm(m) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(m.service_type.is_empty());
    assert_eq!((m.source_addr_ton, m.source_addr_npi), (Ton(1), Npi(1)));
    assert_eq!(s(&m.source_addr), "447700900001");
    assert_eq!((m.dest_addr_ton, m.dest_addr_npi), (Ton(1), Npi(1)));
    assert_eq!(s(&m.destination_addr), "447700900123");
    assert_eq!(m.esm_class, EsmClass::DEFAULT);
    assert_eq!((m.protocol_id, m.priority_flag), (0, 0));
    assert!(m.schedule_delivery_time.is_empty() && m.validity_period.is_empty());
    assert_eq!(m.registered_delivery, RegisteredDelivery::FINAL);
    assert_eq!(m.data_coding, DataCoding::DEFAULT);
    assert_eq!(m.short_message.as_bytes(), b"Hello");
    assert!(m.tlvs.is_empty());
}

#[test]
fn submit_sm_resp_vector() {
    let pdu = round_trip(SUBMIT_SM_RESP);
    let Body::SubmitSmResp(Some(r)) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&r.message_id), "1A2B3C4D");
}

#[test]
fn submit_sm_resp_throttled_vector_without_body() {
    let pdu = round_trip(SUBMIT_SM_RESP_THROTTLED);
    assert_eq!(pdu.command_status, CommandStatus::ESME_RTHROTTLED);
    assert_eq!(pdu.sequence_number, 4);
    assert_eq!(pdu.body, Body::SubmitSmResp(None));
}

#[test]
fn submit_sm_ucs2_vector() {
    let pdu = round_trip(SUBMIT_SM_UCS2);
    let Body::SubmitSm(m) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(m.data_coding, DataCoding::UCS2);
    let units: Vec<u16> = m
        .short_message
        .as_bytes()
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(String::from_utf16(&units).unwrap(), "Привет");
}

#[test]
fn submit_sm_udh_part_vector() {
    let full = format!("{SUBMIT_SM_UDH_PART1}{}", "41 ".repeat(136));
    let pdu = round_trip(&full);
    assert_eq!(pdu.to_bytes().len(), 216);
    let Body::SubmitSm(m) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(m.esm_class.has_udhi());
    let sm = m.short_message.as_bytes();
    assert_eq!(sm.len(), 159);
    assert_eq!(&sm[..6], [0x05, 0x00, 0x03, 0x42, 0x02, 0x01]);
    assert!(sm[6..].iter().all(|&b| b == b'A'));
}

#[test]
fn deliver_sm_receipt_vector() {
    let pdu = round_trip(DELIVER_SM_RECEIPT);
    let Body::DeliverSm(m) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(m.esm_class, EsmClass::DELIVERY_RECEIPT);
    assert!(m.esm_class.is_receipt());
    assert_eq!(s(&m.source_addr), "447700900123");
    assert_eq!(s(&m.destination_addr), "447700900001");
    assert!(
        m.short_message
            .as_bytes()
            .starts_with(b"id:1A2B3C4D sub:001")
    );
    assert!(m.short_message.as_bytes().ends_with(b"Text:Hello"));
    assert_eq!(m.tlvs.receipted_message_id().unwrap(), &b"1A2B3C4D"[..]);
    assert_eq!(m.tlvs.message_state(), Some(MessageState::DELIVERED));
}

#[test]
fn deliver_sm_resp_vector_with_a_single_nul() {
    let pdu = round_trip(DELIVER_SM_RESP);
    let Body::DeliverSmResp(Some(r)) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(r.message_id.is_empty());
}

#[test]
fn data_sm_message_payload_vector() {
    let full = format!("{DATA_SM_PAYLOAD}{}", "78 ".repeat(274));
    let pdu = round_trip(&full);
    assert_eq!(pdu.to_bytes().len(), 354);
    let Body::DataSm(m) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&m.source_addr), "447700900001");
    let payload = m.tlvs.message_payload().unwrap();
    assert_eq!(payload.len(), 300);
    assert!(payload.iter().all(|&b| b == b'x'));
}

#[test]
fn query_sm_vector() {
    let pdu = round_trip(QUERY_SM);
    let Body::QuerySm(q) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&q.message_id), "1A2B3C4D");
    assert_eq!(s(&q.source_addr), "447700900001");
}

#[test]
fn query_sm_resp_vector() {
    let pdu = round_trip(QUERY_SM_RESP);
    let Body::QuerySmResp(Some(q)) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&q.message_id), "1A2B3C4D");
    assert_eq!(
        q.final_date.as_c_octet_string().as_str(),
        Some("240115123100000+")
    );
    assert_eq!(q.message_state, MessageState::DELIVERED);
    assert_eq!(q.error_code, 0);
}

#[test]
fn cancel_sm_vector() {
    let pdu = round_trip(CANCEL_SM);
    let Body::CancelSm(c) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&c.message_id), "1A2B3C4D");
    assert_eq!(s(&c.source_addr), "447700900001");
    assert_eq!(s(&c.destination_addr), "447700900123");
}

#[test]
fn replace_sm_vector_has_no_service_type() {
    let pdu = round_trip(REPLACE_SM);
    let Body::ReplaceSm(r) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&r.message_id), "1A2B3C4D");
    assert!(r.schedule_delivery_time.is_empty());
    assert_eq!(
        r.validity_period.as_c_octet_string().as_str(),
        Some("000007000000000R")
    );
    assert_eq!(r.registered_delivery, RegisteredDelivery::FINAL);
    assert_eq!(r.short_message.as_bytes(), b"Bye");
}

#[test]
fn submit_multi_vector() {
    let pdu = round_trip(SUBMIT_MULTI);
    let Body::SubmitMulti(m) = pdu.body else {
        panic!("{pdu:?}")
    };
    let dests = m.dest_addresses.as_slice();
    assert_eq!(dests.len(), 2);
    assert!(
        matches!(&dests[0], DestAddress::Sme { destination_addr, .. } if s(destination_addr) == "447700900123")
    );
    assert!(
        matches!(&dests[1], DestAddress::DistributionList { dl_name } if s(dl_name) == "staff")
    );
    assert_eq!(m.short_message.as_bytes(), b"Hi");
}

#[test]
fn submit_multi_resp_vector() {
    let pdu = round_trip(SUBMIT_MULTI_RESP);
    let Body::SubmitMultiResp(Some(r)) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&r.message_id), "77");
    let failed = r.unsuccess_smes.as_slice();
    assert_eq!(failed.len(), 1);
    assert_eq!(s(&failed[0].destination_addr), "447700900999");
    assert_eq!(failed[0].error_status_code, CommandStatus::ESME_RINVDSTADR);
}

#[test]
fn alert_notification_vector() {
    let pdu = round_trip(ALERT_NOTIFICATION);
    let Body::AlertNotification(a) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&a.source_addr), "447700900123");
    assert_eq!(s(&a.esme_addr), "12345");
    assert_eq!(
        a.tlvs.get_u8(smppd::pdu::TlvTag::MS_AVAILABILITY_STATUS),
        Some(0)
    );
}

#[test]
fn outbind_vector() {
    let pdu = round_trip(OUTBIND);
    let Body::Outbind(o) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&o.system_id), "SMSC");
    assert_eq!(s(&o.password), "secret");
}

#[test]
fn data_sm_resp_vector() {
    let pdu = round_trip(DATA_SM_RESP);
    let Body::DataSmResp(Some(r)) = pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(s(&r.message_id), "88");
}

#[test]
fn every_vector_survives_the_json_form() {
    for vector in [
        BIND_TRANSMITTER,
        BIND_TRANSCEIVER,
        BIND_TRANSCEIVER_RESP,
        BIND_TRANSMITTER_RESP_INVPASWD,
        GENERIC_NACK_INVCMDLEN,
        ENQUIRE_LINK,
        ENQUIRE_LINK_RESP,
        UNBIND,
        UNBIND_RESP,
        GENERIC_NACK_INVCMDID,
        SUBMIT_SM_HELLO,
        SUBMIT_SM_RESP,
        SUBMIT_SM_RESP_THROTTLED,
        SUBMIT_SM_UCS2,
        DELIVER_SM_RECEIPT,
        DELIVER_SM_RESP,
        QUERY_SM,
        QUERY_SM_RESP,
        CANCEL_SM,
        REPLACE_SM,
        SUBMIT_MULTI,
        SUBMIT_MULTI_RESP,
        ALERT_NOTIFICATION,
        OUTBIND,
        DATA_SM_RESP,
    ] {
        let pdu = round_trip(vector);
        let json = pdu.to_json().to_string();
        let back = Pdu::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, pdu, "{json}");
        assert_eq!(back.to_bytes(), bytes(vector));
    }
}

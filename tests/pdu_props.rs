//! Round trips both ways, for every PDU type: `decode(encode(pdu)) == pdu`, and any input the
//! decoder accepts re-encodes to its own bytes.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use smppd::pdu::*;

fn c_string<const N: usize>() -> impl Strategy<Value = COctetString<N>> {
    vec(1u8..=255, 0..N).prop_map(|v| COctetString::new(v).expect("within limits"))
}

fn time() -> impl Strategy<Value = TimeString> {
    prop_oneof![
        Just(TimeString::empty()),
        "[0-9]{15}[+R-]".prop_map(|t| TimeString::try_from(t.as_str()).expect("16 chars")),
        "[0-9]{12}".prop_map(|t| TimeString::try_from(t.as_str()).expect("12 chars")),
    ]
}

fn short_message() -> impl Strategy<Value = ShortMessage> {
    vec(any::<u8>(), 0..=254).prop_map(|v| ShortMessage::new(v).expect("within 254"))
}

fn tlv() -> impl Strategy<Value = (TlvTag, Vec<u8>)> {
    let known = prop::sample::select(vec![
        TlvTag::MESSAGE_PAYLOAD,
        TlvTag::RECEIPTED_MESSAGE_ID,
        TlvTag::MESSAGE_STATE,
        TlvTag::NETWORK_ERROR_CODE,
        TlvTag::SAR_MSG_REF_NUM,
        TlvTag::SAR_TOTAL_SEGMENTS,
        TlvTag::SAR_SEGMENT_SEQNUM,
        TlvTag::QOS_TIME_TO_LIVE,
        TlvTag::SC_INTERFACE_VERSION,
        TlvTag::USER_MESSAGE_REFERENCE,
        TlvTag::ALERT_ON_MESSAGE_DELIVERY,
        TlvTag::CALLBACK_NUM,
    ]);
    let tag = prop_oneof![3 => known, 1 => any::<u16>().prop_map(TlvTag)];
    tag.prop_flat_map(|tag| {
        let len = match tag.kind().fixed_len() {
            Some(n) => n..=n,
            None => 0..=300,
        };
        (Just(tag), vec(any::<u8>(), len))
    })
}

fn tlvs() -> impl Strategy<Value = Tlvs> {
    vec(tlv(), 0..4).prop_map(|list| {
        list.into_iter()
            .fold(TlvsBuilder::new(), |b, (tag, value)| {
                b.octets(tag, &value).expect("shaped for its tag")
            })
            .build()
    })
}

fn ton() -> impl Strategy<Value = Ton> {
    any::<u8>().prop_map(Ton)
}

fn npi() -> impl Strategy<Value = Npi> {
    any::<u8>().prop_map(Npi)
}

prop_compose! {
    fn bind()(
        system_id in c_string::<16>(), password in c_string::<9>(),
        system_type in c_string::<13>(), version in any::<u8>(), addr_ton in ton(),
        addr_npi in npi(), address_range in c_string::<41>(), tlvs in tlvs(),
    ) -> Bind {
        Bind {
            system_id, password, system_type, interface_version: InterfaceVersion(version),
            addr_ton, addr_npi, address_range, tlvs,
        }
    }
}

prop_compose! {
    fn submit_sm()(
        service_type in c_string::<6>(), source in (ton(), npi(), c_string::<21>()),
        dest in (ton(), npi(), c_string::<21>()),
        octets in (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(),
                   any::<u8>()),
        schedule_delivery_time in time(), validity_period in time(),
        short_message in short_message(), tlvs in tlvs(),
    ) -> SubmitSm {
        SubmitSm {
            service_type,
            source_addr_ton: source.0, source_addr_npi: source.1, source_addr: source.2,
            dest_addr_ton: dest.0, dest_addr_npi: dest.1, destination_addr: dest.2,
            esm_class: EsmClass(octets.0), protocol_id: octets.1, priority_flag: octets.2,
            schedule_delivery_time, validity_period,
            registered_delivery: RegisteredDelivery(octets.3), replace_if_present_flag: octets.4,
            data_coding: DataCoding(octets.5), sm_default_msg_id: octets.6,
            short_message, tlvs,
        }
    }
}

prop_compose! {
    fn sm_resp()(message_id in c_string::<65>(), tlvs in tlvs()) -> SmResp {
        SmResp { message_id, tlvs }
    }
}

fn dest_address() -> impl Strategy<Value = DestAddress> {
    prop_oneof![
        (ton(), npi(), c_string::<21>()).prop_map(|(t, n, a)| DestAddress::Sme {
            dest_addr_ton: t,
            dest_addr_npi: n,
            destination_addr: a,
        }),
        c_string::<21>().prop_map(|dl_name| DestAddress::DistributionList { dl_name }),
    ]
}

prop_compose! {
    fn submit_multi()(
        base in submit_sm(), dests in vec(dest_address(), 0..5),
    ) -> SubmitMulti {
        SubmitMulti {
            service_type: base.service_type, source_addr_ton: base.source_addr_ton,
            source_addr_npi: base.source_addr_npi, source_addr: base.source_addr,
            dest_addresses: DestList::new(dests).expect("few"), esm_class: base.esm_class,
            protocol_id: base.protocol_id, priority_flag: base.priority_flag,
            schedule_delivery_time: base.schedule_delivery_time,
            validity_period: base.validity_period, registered_delivery: base.registered_delivery,
            replace_if_present_flag: base.replace_if_present_flag, data_coding: base.data_coding,
            sm_default_msg_id: base.sm_default_msg_id, short_message: base.short_message,
            tlvs: base.tlvs,
        }
    }
}

prop_compose! {
    fn submit_multi_resp()(
        message_id in c_string::<65>(),
        failed in vec((ton(), npi(), c_string::<21>(), any::<u32>()), 0..5), tlvs in tlvs(),
    ) -> SubmitMultiResp {
        let failed = failed.into_iter().map(|(t, n, a, s)| UnsuccessSme {
            dest_addr_ton: t, dest_addr_npi: n, destination_addr: a,
            error_status_code: CommandStatus(s),
        }).collect();
        SubmitMultiResp {
            message_id, unsuccess_smes: UnsuccessList::new(failed).expect("few"), tlvs,
        }
    }
}

prop_compose! {
    fn data_sm()(
        service_type in c_string::<6>(), source in (ton(), npi(), c_string::<65>()),
        dest in (ton(), npi(), c_string::<65>()), octets in (any::<u8>(), any::<u8>(), any::<u8>()),
        tlvs in tlvs(),
    ) -> DataSm {
        DataSm {
            service_type,
            source_addr_ton: source.0, source_addr_npi: source.1, source_addr: source.2,
            dest_addr_ton: dest.0, dest_addr_npi: dest.1, destination_addr: dest.2,
            esm_class: EsmClass(octets.0), registered_delivery: RegisteredDelivery(octets.1),
            data_coding: DataCoding(octets.2), tlvs,
        }
    }
}

prop_compose! {
    fn query_sm()(
        message_id in c_string::<65>(), source in (ton(), npi(), c_string::<21>()), tlvs in tlvs(),
    ) -> QuerySm {
        QuerySm {
            message_id, source_addr_ton: source.0, source_addr_npi: source.1,
            source_addr: source.2, tlvs,
        }
    }
}

prop_compose! {
    fn query_sm_resp()(
        message_id in c_string::<65>(), final_date in time(), state in any::<u8>(),
        error_code in any::<u8>(), tlvs in tlvs(),
    ) -> QuerySmResp {
        QuerySmResp { message_id, final_date, message_state: MessageState(state), error_code, tlvs }
    }
}

prop_compose! {
    fn cancel_sm()(
        service_type in c_string::<6>(), message_id in c_string::<65>(),
        source in (ton(), npi(), c_string::<21>()), dest in (ton(), npi(), c_string::<21>()),
        tlvs in tlvs(),
    ) -> CancelSm {
        CancelSm {
            service_type, message_id,
            source_addr_ton: source.0, source_addr_npi: source.1, source_addr: source.2,
            dest_addr_ton: dest.0, dest_addr_npi: dest.1, destination_addr: dest.2, tlvs,
        }
    }
}

prop_compose! {
    fn replace_sm()(
        message_id in c_string::<65>(), source in (ton(), npi(), c_string::<21>()),
        schedule_delivery_time in time(), validity_period in time(),
        octets in (any::<u8>(), any::<u8>()), short_message in short_message(), tlvs in tlvs(),
    ) -> ReplaceSm {
        ReplaceSm {
            message_id, source_addr_ton: source.0, source_addr_npi: source.1,
            source_addr: source.2, schedule_delivery_time, validity_period,
            registered_delivery: RegisteredDelivery(octets.0), sm_default_msg_id: octets.1,
            short_message, tlvs,
        }
    }
}

prop_compose! {
    fn alert_notification()(
        source in (ton(), npi(), c_string::<65>()), esme in (ton(), npi(), c_string::<65>()),
        tlvs in tlvs(),
    ) -> AlertNotification {
        AlertNotification {
            source_addr_ton: source.0, source_addr_npi: source.1, source_addr: source.2,
            esme_addr_ton: esme.0, esme_addr_npi: esme.1, esme_addr: esme.2, tlvs,
        }
    }
}

fn bind_resp() -> impl Strategy<Value = Option<BindResp>> {
    proptest::option::of(
        (c_string::<16>(), tlvs()).prop_map(|(system_id, tlvs)| BindResp { system_id, tlvs }),
    )
}

fn unknown_command_id() -> impl Strategy<Value = CommandId> {
    any::<u32>()
        .prop_map(CommandId)
        .prop_filter("not a 3.4 command", |id| id.name().is_none())
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::GenericNack),
        bind().prop_map(Body::BindReceiver),
        bind_resp().prop_map(Body::BindReceiverResp),
        bind().prop_map(Body::BindTransmitter),
        bind_resp().prop_map(Body::BindTransmitterResp),
        bind().prop_map(Body::BindTransceiver),
        bind_resp().prop_map(Body::BindTransceiverResp),
        (c_string::<16>(), c_string::<9>(), tlvs()).prop_map(|(system_id, password, tlvs)| {
            Body::Outbind(Outbind {
                system_id,
                password,
                tlvs,
            })
        }),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        submit_sm().prop_map(Body::SubmitSm),
        proptest::option::of(sm_resp()).prop_map(Body::SubmitSmResp),
        submit_sm().prop_map(Body::DeliverSm),
        proptest::option::of(sm_resp()).prop_map(Body::DeliverSmResp),
        submit_multi().prop_map(Body::SubmitMulti),
        proptest::option::of(submit_multi_resp()).prop_map(Body::SubmitMultiResp),
        data_sm().prop_map(Body::DataSm),
        proptest::option::of(sm_resp()).prop_map(Body::DataSmResp),
        query_sm().prop_map(Body::QuerySm),
        proptest::option::of(query_sm_resp()).prop_map(Body::QuerySmResp),
        cancel_sm().prop_map(Body::CancelSm),
        Just(Body::CancelSmResp),
        replace_sm().prop_map(Body::ReplaceSm),
        Just(Body::ReplaceSmResp),
        alert_notification().prop_map(Body::AlertNotification),
        (unknown_command_id(), vec(any::<u8>(), 0..64)).prop_map(|(command_id, body)| {
            Body::Unknown {
                command_id,
                body: Bytes::from(body),
            }
        }),
    ]
}

prop_compose! {
    fn pdu()(body in body(), status in any::<u32>(), sequence_number in any::<u32>()) -> Pdu {
        Pdu { command_status: CommandStatus(status), sequence_number, body }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_of_encode_is_identity(pdu in pdu()) {
        let wire = pdu.to_bytes();
        prop_assert_eq!(wire.len(), u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize);
        let back = Pdu::decode(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, pdu);
    }

    #[test]
    fn json_form_round_trips(pdu in pdu()) {
        let json = serde_json::to_string(&pdu).expect("serializes");
        let back = Pdu::from_json(&json).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
        prop_assert_eq!(back, pdu);
    }

    /// Damage one octet of a valid PDU: whatever still decodes must re-encode byte for byte,
    /// and whatever does not must come with an answer or be a response.
    #[test]
    fn accepted_input_re_encodes_to_its_bytes(pdu in pdu(), at in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut wire = BytesMut::from(&pdu.to_bytes()[..]);
        let i = at.index(wire.len() - 4) + 4; // keep command_length consistent
        wire[i] = value;
        let wire = wire.freeze();
        match Pdu::decode(&wire) {
            Ok(decoded) => prop_assert_eq!(decoded.to_bytes(), wire),
            Err(e) => {
                let answerable = Body::empty_response(e.command_id).is_some();
                prop_assert_eq!(e.response().is_some(), answerable);
            }
        }
    }

    /// Random bodies behind a well-formed header never panic, and what decodes re-encodes.
    #[test]
    fn random_bodies_never_panic(id in prop::sample::select(vec![
        1u32, 2, 3, 4, 5, 6, 7, 8, 9, 0x0B, 0x15, 0x21, 0x102, 0x103,
        0x8000_0000, 0x8000_0001, 0x8000_0002, 0x8000_0003, 0x8000_0004, 0x8000_0005,
        0x8000_0009, 0x8000_0021, 0x8000_0103,
    ]), body in vec(any::<u8>(), 0..200)) {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
        wire.extend_from_slice(&id.to_be_bytes());
        wire.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        wire.extend_from_slice(&body);
        let wire = wire.freeze();
        if let Ok(decoded) = Pdu::decode(&wire) {
            prop_assert_eq!(decoded.to_bytes(), wire);
        }
    }
}

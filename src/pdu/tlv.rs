//! Optional parameters (TLVs, 3.4 §3.2.4 and §5.3).
//!
//! A PDU's TLV section is kept as the octets that came off the wire, checked once on decode:
//! every TLV is complete, and every TLV whose value has a fixed size in the spec has that size.
//! Reading a TLV walks the section; it costs no allocation, unknown tags survive untouched,
//! and re-encoding gives back the same bytes. [`TlvsBuilder`] makes new sections.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::status::CommandStatus;
use super::types::{FieldError, MessageState};

/// A TLV tag (3.4 §5.3.1, Table 5-5). Unknown tags are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlvTag(pub u16);

/// The shape of a TLV's value, as the spec defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlvKind {
    /// One-octet integer.
    U8,
    /// Two-octet big-endian integer.
    U16,
    /// Four-octet big-endian integer.
    U32,
    /// C-Octet String (the NUL is part of the value).
    CString,
    /// Octets of variable length.
    Octets,
    /// `network_error_code`: network type (I1) and error code (I2).
    NetworkErrorCode,
}

impl TlvKind {
    /// The exact value length for fixed-size kinds.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            TlvKind::U8 => Some(1),
            TlvKind::U16 => Some(2),
            TlvKind::U32 => Some(4),
            TlvKind::NetworkErrorCode => Some(3),
            TlvKind::CString | TlvKind::Octets => None,
        }
    }
}

macro_rules! tlv_tags {
    ($( $name:ident = $val:literal, $wire:literal, $kind:ident; )*) => {
        impl TlvTag {
            $( #[doc = concat!("`", $wire, "`.")] pub const $name: TlvTag = TlvTag($val); )*

            /// The spec's name (`"receipted_message_id"`), or `None` for an unknown tag.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($wire), )*
                    _ => None,
                }
            }

            /// The tag with this spec name.
            pub fn from_name(name: &str) -> Option<TlvTag> {
                match name {
                    $( $wire => Some(TlvTag($val)), )*
                    _ => None,
                }
            }

            /// The value's shape. Unknown tags are octets.
            pub fn kind(self) -> TlvKind {
                match self.0 {
                    $( $val => TlvKind::$kind, )*
                    _ => TlvKind::Octets,
                }
            }
        }
    };
}

tlv_tags! {
    DEST_ADDR_SUBUNIT = 0x0005, "dest_addr_subunit", U8;
    DEST_NETWORK_TYPE = 0x0006, "dest_network_type", U8;
    DEST_BEARER_TYPE = 0x0007, "dest_bearer_type", U8;
    DEST_TELEMATICS_ID = 0x0008, "dest_telematics_id", U16;
    SOURCE_ADDR_SUBUNIT = 0x000D, "source_addr_subunit", U8;
    SOURCE_NETWORK_TYPE = 0x000E, "source_network_type", U8;
    SOURCE_BEARER_TYPE = 0x000F, "source_bearer_type", U8;
    SOURCE_TELEMATICS_ID = 0x0010, "source_telematics_id", U8;
    QOS_TIME_TO_LIVE = 0x0017, "qos_time_to_live", U32;
    PAYLOAD_TYPE = 0x0019, "payload_type", U8;
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D, "additional_status_info_text", CString;
    RECEIPTED_MESSAGE_ID = 0x001E, "receipted_message_id", CString;
    MS_MSG_WAIT_FACILITIES = 0x0030, "ms_msg_wait_facilities", U8;
    PRIVACY_INDICATOR = 0x0201, "privacy_indicator", U8;
    SOURCE_SUBADDRESS = 0x0202, "source_subaddress", Octets;
    DEST_SUBADDRESS = 0x0203, "dest_subaddress", Octets;
    USER_MESSAGE_REFERENCE = 0x0204, "user_message_reference", U16;
    USER_RESPONSE_CODE = 0x0205, "user_response_code", U8;
    SOURCE_PORT = 0x020A, "source_port", U16;
    DESTINATION_PORT = 0x020B, "destination_port", U16;
    SAR_MSG_REF_NUM = 0x020C, "sar_msg_ref_num", U16;
    LANGUAGE_INDICATOR = 0x020D, "language_indicator", U8;
    SAR_TOTAL_SEGMENTS = 0x020E, "sar_total_segments", U8;
    SAR_SEGMENT_SEQNUM = 0x020F, "sar_segment_seqnum", U8;
    SC_INTERFACE_VERSION = 0x0210, "sc_interface_version", U8;
    CALLBACK_NUM_PRES_IND = 0x0302, "callback_num_pres_ind", U8;
    CALLBACK_NUM_ATAG = 0x0303, "callback_num_atag", Octets;
    NUMBER_OF_MESSAGES = 0x0304, "number_of_messages", U8;
    CALLBACK_NUM = 0x0381, "callback_num", Octets;
    DPF_RESULT = 0x0420, "dpf_result", U8;
    SET_DPF = 0x0421, "set_dpf", U8;
    MS_AVAILABILITY_STATUS = 0x0422, "ms_availability_status", U8;
    NETWORK_ERROR_CODE = 0x0423, "network_error_code", NetworkErrorCode;
    MESSAGE_PAYLOAD = 0x0424, "message_payload", Octets;
    DELIVERY_FAILURE_REASON = 0x0425, "delivery_failure_reason", U8;
    MORE_MESSAGES_TO_SEND = 0x0426, "more_messages_to_send", U8;
    MESSAGE_STATE = 0x0427, "message_state", U8;
    CONGESTION_STATE = 0x0428, "congestion_state", U8;
    USSD_SERVICE_OP = 0x0501, "ussd_service_op", U8;
    BROADCAST_CHANNEL_INDICATOR = 0x0600, "broadcast_channel_indicator", Octets;
    BROADCAST_CONTENT_TYPE = 0x0601, "broadcast_content_type", Octets;
    BROADCAST_CONTENT_TYPE_INFO = 0x0602, "broadcast_content_type_info", Octets;
    BROADCAST_MESSAGE_CLASS = 0x0603, "broadcast_message_class", Octets;
    BROADCAST_REP_NUM = 0x0604, "broadcast_rep_num", Octets;
    BROADCAST_FREQUENCY_INTERVAL = 0x0605, "broadcast_frequency_interval", Octets;
    BROADCAST_AREA_IDENTIFIER = 0x0606, "broadcast_area_identifier", Octets;
    BROADCAST_ERROR_STATUS = 0x0607, "broadcast_error_status", Octets;
    BROADCAST_AREA_SUCCESS = 0x0608, "broadcast_area_success", Octets;
    BROADCAST_END_TIME = 0x0609, "broadcast_end_time", Octets;
    BROADCAST_SERVICE_GROUP = 0x060A, "broadcast_service_group", Octets;
    BILLING_IDENTIFICATION = 0x060B, "billing_identification", Octets;
    SOURCE_NETWORK_ID = 0x060D, "source_network_id", Octets;
    DEST_NETWORK_ID = 0x060E, "dest_network_id", Octets;
    SOURCE_NODE_ID = 0x060F, "source_node_id", Octets;
    DEST_NODE_ID = 0x0610, "dest_node_id", Octets;
    DEST_ADDR_NP_RESOLUTION = 0x0611, "dest_addr_np_resolution", Octets;
    DEST_ADDR_NP_INFORMATION = 0x0612, "dest_addr_np_information", Octets;
    DEST_ADDR_NP_COUNTRY = 0x0613, "dest_addr_np_country", Octets;
    DISPLAY_TIME = 0x1201, "display_time", U8;
    SMS_SIGNAL = 0x1203, "sms_signal", U16;
    MS_VALIDITY = 0x1204, "ms_validity", U8;
    ALERT_ON_MESSAGE_DELIVERY = 0x130C, "alert_on_message_delivery", Octets;
    ITS_REPLY_TYPE = 0x1380, "its_reply_type", U8;
    ITS_SESSION_INFO = 0x1383, "its_session_info", Octets;
}

impl fmt::Debug for TlvTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TlvTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "0x{:04X}", self.0),
        }
    }
}

/// One TLV as it is on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlv {
    /// The tag.
    pub tag: TlvTag,
    /// The value octets (for a C-Octet String, including its NUL).
    pub value: Bytes,
}

/// `network_error_code` (0x0423): the network type and its error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetworkErrorCode {
    /// 1 ANSI-136, 2 IS-95, 3 GSM (5.0 adds 4–8, among them 7 = SMPP error).
    pub network_type: u8,
    /// The network's error code.
    pub error_code: u16,
}

/// The three `sar_*` TLVs, meaningful only together (3.4 §5.3.2.22–24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sar {
    /// `sar_msg_ref_num`: the reference shared by all segments.
    pub msg_ref_num: u16,
    /// `sar_total_segments`.
    pub total_segments: u8,
    /// `sar_segment_seqnum`, from 1.
    pub segment_seqnum: u8,
}

/// Why a TLV section was rejected on decode: the field to name and the status to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TlvError {
    pub(crate) field: &'static str,
    pub(crate) status: CommandStatus,
}

/// A PDU's TLV section: zero or more TLVs in wire order, as checked octets.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Tlvs(Bytes);

impl Tlvs {
    /// No TLVs.
    pub const fn new() -> Self {
        Tlvs(Bytes::new())
    }

    /// Checks a TLV section from the wire: every TLV complete (else ESME_RINVOPTPARSTREAM) and
    /// every fixed-size value of its size (else ESME_RINVPARLEN). Unknown tags pass.
    pub(crate) fn parse(section: Bytes) -> Result<Tlvs, TlvError> {
        let mut rest: &[u8] = &section;
        while !rest.is_empty() {
            let [t0, t1, l0, l1, value @ ..] = rest else {
                return Err(TlvError {
                    field: "tlv",
                    status: CommandStatus::ESME_RINVOPTPARSTREAM,
                });
            };
            let tag = TlvTag(u16::from_be_bytes([*t0, *t1]));
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            if len > value.len() {
                return Err(TlvError {
                    field: tag.name().unwrap_or("tlv"),
                    status: CommandStatus::ESME_RINVOPTPARSTREAM,
                });
            }
            if let Some(fixed) = tag.kind().fixed_len()
                && fixed != len
            {
                return Err(TlvError {
                    field: tag.name().unwrap_or("tlv"),
                    status: CommandStatus::ESME_RINVPARLEN,
                });
            }
            rest = &value[len..];
        }
        Ok(Tlvs(section))
    }

    /// The section's octets, as written on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True when there are no TLVs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Octets on the wire.
    pub fn encoded_len(&self) -> usize {
        self.0.len()
    }

    /// The TLVs in wire order.
    pub fn iter(&self) -> TlvIter<'_> {
        TlvIter {
            section: &self.0,
            offset: 0,
        }
    }

    /// The value of the first TLV with this tag.
    pub fn get(&self, tag: TlvTag) -> Option<Bytes> {
        self.iter().find(|t| t.tag == tag).map(|t| t.value)
    }

    /// True when a TLV with this tag is present.
    pub fn contains(&self, tag: TlvTag) -> bool {
        self.iter().any(|t| t.tag == tag)
    }

    /// A one-octet value.
    pub fn get_u8(&self, tag: TlvTag) -> Option<u8> {
        match *self.get(tag)? {
            [v] => Some(v),
            _ => None,
        }
    }

    /// A two-octet value.
    pub fn get_u16(&self, tag: TlvTag) -> Option<u16> {
        match *self.get(tag)? {
            [a, b] => Some(u16::from_be_bytes([a, b])),
            _ => None,
        }
    }

    /// A four-octet value.
    pub fn get_u32(&self, tag: TlvTag) -> Option<u32> {
        match *self.get(tag)? {
            [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// A C-Octet String value without its NUL. Carriers that leave the NUL out are tolerated:
    /// the value then ends where the TLV ends.
    pub fn get_c_string(&self, tag: TlvTag) -> Option<Bytes> {
        let value = self.get(tag)?;
        let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        Some(value.slice(..end))
    }

    /// `message_payload` (0x0424).
    pub fn message_payload(&self) -> Option<Bytes> {
        self.get(TlvTag::MESSAGE_PAYLOAD)
    }

    /// `receipted_message_id` (0x001E), without its NUL.
    pub fn receipted_message_id(&self) -> Option<Bytes> {
        self.get_c_string(TlvTag::RECEIPTED_MESSAGE_ID)
    }

    /// `message_state` (0x0427).
    pub fn message_state(&self) -> Option<MessageState> {
        self.get_u8(TlvTag::MESSAGE_STATE).map(MessageState)
    }

    /// `network_error_code` (0x0423).
    pub fn network_error_code(&self) -> Option<NetworkErrorCode> {
        match *self.get(TlvTag::NETWORK_ERROR_CODE)? {
            [network_type, a, b] => Some(NetworkErrorCode {
                network_type,
                error_code: u16::from_be_bytes([a, b]),
            }),
            _ => None,
        }
    }

    /// The `sar_*` triple, when all three are present (one alone is ignored, 3.4 §5.3.2.22).
    pub fn sar(&self) -> Option<Sar> {
        Some(Sar {
            msg_ref_num: self.get_u16(TlvTag::SAR_MSG_REF_NUM)?,
            total_segments: self.get_u8(TlvTag::SAR_TOTAL_SEGMENTS)?,
            segment_seqnum: self.get_u8(TlvTag::SAR_SEGMENT_SEQNUM)?,
        })
    }

    /// `sc_interface_version` (0x0210) from a bind response.
    pub fn sc_interface_version(&self) -> Option<u8> {
        self.get_u8(TlvTag::SC_INTERFACE_VERSION)
    }

    /// `user_message_reference` (0x0204).
    pub fn user_message_reference(&self) -> Option<u16> {
        self.get_u16(TlvTag::USER_MESSAGE_REFERENCE)
    }

    /// `source_port` (0x020A).
    pub fn source_port(&self) -> Option<u16> {
        self.get_u16(TlvTag::SOURCE_PORT)
    }

    /// `destination_port` (0x020B).
    pub fn destination_port(&self) -> Option<u16> {
        self.get_u16(TlvTag::DESTINATION_PORT)
    }
}

impl fmt::Debug for Tlvs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<Tlv> for Result<Tlvs, FieldError> {
    fn from_iter<I: IntoIterator<Item = Tlv>>(iter: I) -> Self {
        let mut builder = TlvsBuilder::new();
        for tlv in iter {
            builder = builder.octets(tlv.tag, &tlv.value)?;
        }
        Ok(builder.build())
    }
}

/// Iterator over the TLVs of a checked section.
#[derive(Clone, Debug)]
pub struct TlvIter<'a> {
    section: &'a Bytes,
    offset: usize,
}

impl Iterator for TlvIter<'_> {
    type Item = Tlv;

    fn next(&mut self) -> Option<Tlv> {
        let rest = self.section.get(self.offset..)?;
        // The section was checked when it was made; a short tail cannot occur, but ending the
        // walk is the safe answer if it did.
        let [t0, t1, l0, l1, ..] = *rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let start = self.offset + 4;
        let end = start + len;
        if end > self.section.len() {
            return None;
        }
        self.offset = end;
        Some(Tlv {
            tag: TlvTag(u16::from_be_bytes([t0, t1])),
            value: self.section.slice(start..end),
        })
    }
}

/// Builds a TLV section. Values are checked against the spec's shape for their tag.
#[derive(Default, Debug)]
pub struct TlvsBuilder {
    buf: BytesMut,
}

impl TlvsBuilder {
    /// An empty section.
    pub fn new() -> Self {
        TlvsBuilder::default()
    }

    fn put(mut self, tag: TlvTag, value: &[u8]) -> Self {
        // Callers check value.len() <= u16::MAX.
        self.buf.put_u16(tag.0);
        self.buf.put_u16(value.len() as u16);
        self.buf.put_slice(value);
        self
    }

    /// Adds a one-octet value.
    pub fn u8(self, tag: TlvTag, value: u8) -> Self {
        self.put(tag, &[value])
    }

    /// Adds a two-octet value.
    pub fn u16(self, tag: TlvTag, value: u16) -> Self {
        self.put(tag, &value.to_be_bytes())
    }

    /// Adds a four-octet value.
    pub fn u32(self, tag: TlvTag, value: u32) -> Self {
        self.put(tag, &value.to_be_bytes())
    }

    /// Adds a C-Octet String value; the NUL is appended here.
    pub fn c_string(mut self, tag: TlvTag, value: &[u8]) -> Result<Self, FieldError> {
        if value.contains(&0) {
            return Err(FieldError::ContainsNul);
        }
        if value.len() >= usize::from(u16::MAX) {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: usize::from(u16::MAX) - 1,
            });
        }
        self.buf.put_u16(tag.0);
        self.buf.put_u16(value.len() as u16 + 1);
        self.buf.put_slice(value);
        self.buf.put_u8(0);
        Ok(self)
    }

    /// Adds raw octets. For a tag with a fixed size, the value must have that size.
    pub fn octets(self, tag: TlvTag, value: &[u8]) -> Result<Self, FieldError> {
        if value.len() > usize::from(u16::MAX) {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: usize::from(u16::MAX),
            });
        }
        if let Some(fixed) = tag.kind().fixed_len()
            && fixed != value.len()
        {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: fixed,
            });
        }
        Ok(self.put(tag, value))
    }

    /// Adds `message_payload`.
    pub fn message_payload(self, payload: &[u8]) -> Result<Self, FieldError> {
        self.octets(TlvTag::MESSAGE_PAYLOAD, payload)
    }

    /// Adds `receipted_message_id`.
    pub fn receipted_message_id(self, id: &[u8]) -> Result<Self, FieldError> {
        if id.len() > 64 {
            return Err(FieldError::TooLong {
                len: id.len(),
                max: 64,
            });
        }
        self.c_string(TlvTag::RECEIPTED_MESSAGE_ID, id)
    }

    /// Adds `message_state`.
    pub fn message_state(self, state: MessageState) -> Self {
        self.u8(TlvTag::MESSAGE_STATE, state.0)
    }

    /// Adds `network_error_code`.
    pub fn network_error_code(self, code: NetworkErrorCode) -> Self {
        let [a, b] = code.error_code.to_be_bytes();
        self.put(TlvTag::NETWORK_ERROR_CODE, &[code.network_type, a, b])
    }

    /// Adds the three `sar_*` TLVs.
    pub fn sar(self, sar: Sar) -> Self {
        self.u16(TlvTag::SAR_MSG_REF_NUM, sar.msg_ref_num)
            .u8(TlvTag::SAR_TOTAL_SEGMENTS, sar.total_segments)
            .u8(TlvTag::SAR_SEGMENT_SEQNUM, sar.segment_seqnum)
    }

    /// The section.
    pub fn build(self) -> Tlvs {
        Tlvs(self.buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_known_and_unknown_tags_in_order() {
        let tlvs = TlvsBuilder::new()
            .receipted_message_id(b"1A2B3C4D")
            .unwrap()
            .message_state(MessageState::DELIVERED)
            .octets(TlvTag(0x1401), b"vendor")
            .unwrap()
            .build();
        let tags: Vec<_> = tlvs.iter().map(|t| t.tag).collect();
        assert_eq!(
            tags,
            [
                TlvTag::RECEIPTED_MESSAGE_ID,
                TlvTag::MESSAGE_STATE,
                TlvTag(0x1401)
            ]
        );
        assert_eq!(tlvs.receipted_message_id().unwrap(), &b"1A2B3C4D"[..]);
        assert_eq!(tlvs.message_state(), Some(MessageState::DELIVERED));
        assert_eq!(tlvs.get(TlvTag(0x1401)).unwrap(), &b"vendor"[..]);
    }

    #[test]
    fn rejects_a_tlv_running_past_the_end() {
        let err = Tlvs::parse(Bytes::from_static(&[0x04, 0x27, 0x00, 0x02, 0x01])).unwrap_err();
        assert_eq!(err.status, CommandStatus::ESME_RINVOPTPARSTREAM);
        let err = Tlvs::parse(Bytes::from_static(&[0x04, 0x27, 0x00])).unwrap_err();
        assert_eq!(err.status, CommandStatus::ESME_RINVOPTPARSTREAM);
    }

    #[test]
    fn rejects_a_fixed_size_tlv_of_the_wrong_size() {
        let err =
            Tlvs::parse(Bytes::from_static(&[0x04, 0x27, 0x00, 0x02, 0x00, 0x02])).unwrap_err();
        assert_eq!(err.status, CommandStatus::ESME_RINVPARLEN);
        assert_eq!(err.field, "message_state");
    }

    #[test]
    fn tolerates_a_receipted_message_id_without_its_nul() {
        let tlvs = Tlvs::parse(Bytes::from_static(&[0x00, 0x1E, 0x00, 0x02, b'4', b'2'])).unwrap();
        assert_eq!(tlvs.receipted_message_id().unwrap(), &b"42"[..]);
    }

    #[test]
    fn sar_needs_all_three() {
        let only_ref = TlvsBuilder::new().u16(TlvTag::SAR_MSG_REF_NUM, 7).build();
        assert_eq!(only_ref.sar(), None);
        let sar = Sar {
            msg_ref_num: 0x1234,
            total_segments: 3,
            segment_seqnum: 2,
        };
        let all = TlvsBuilder::new().sar(sar).build();
        assert_eq!(all.sar(), Some(sar));
        // The reference's vector for the same segment info.
        assert_eq!(
            all.as_bytes(),
            [
                0x02, 0x0C, 0x00, 0x02, 0x12, 0x34, 0x02, 0x0E, 0x00, 0x01, 0x03, 0x02, 0x0F, 0x00,
                0x01, 0x02
            ]
        );
    }
}

//! The SMPP 3.4 wire format: PDU types, TLVs, command ids and statuses, decode, encode, framing.
//!
//! - [`Pdu::decode`] reads one whole frame (a `Bytes` of exactly `command_length` octets).
//!   Short strings are copied inline; `short_message`, TLVs and unknown bodies share the frame.
//!   Decoding allocates nothing of its own (submit_multi's destination lists aside).
//! - [`Pdu::encode`] cannot fail: every field type already holds the spec's limits. It sizes the
//!   PDU first, grows the `BytesMut` once, and stores each field.
//! - [`PduCodec`] frames a byte stream. Only broken framing is a stream error; a frame whose body
//!   is bad comes out as an item, a [`DecodeError`] that knows how to answer it
//!   ([`DecodeError::response`]), so the session can reply and keep the bind.
//!
//! Leniency that real SMSCs need: an error response may come with no body, a bare NUL, or a
//! message_id and TLVs (3.4 says no body; the field says otherwise); bind responses come with or
//! without `sc_interface_version`; unknown command ids and TLV tags are kept raw.

mod body;
mod codec;
mod command_id;
pub mod hex;
mod json;
mod status;
mod tlv;
mod types;
mod wire;

use bytes::{Bytes, BytesMut};

pub use body::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, DeliverSm, DestAddress, DestList, Outbind,
    QuerySm, QuerySmResp, ReplaceSm, SmResp, SubmitMulti, SubmitMultiResp, SubmitSm, UnsuccessList,
    UnsuccessSme,
};
pub use codec::{FrameError, PduCodec};
pub use command_id::CommandId;
pub use json::JsonError;
pub use status::{CommandStatus, StatusClass};
pub use tlv::{NetworkErrorCode, Sar, Tlv, TlvIter, TlvKind, TlvTag, Tlvs, TlvsBuilder};
pub use types::{
    COctetString, DataCoding, EsmClass, FieldError, InterfaceVersion, MessageState, Npi,
    RegisteredDelivery, ShortMessage, TimeString, Ton,
};
pub use wire::FailReason;

use wire::{Fail, Reader, Writer};

/// A 32-bit value written by an operator: `0x`-prefixed hex or decimal.
fn parse_u32(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Octets in the PDU header (3.4 §3.2).
pub const HEADER_LEN: usize = 16;

/// The largest sequence number (3.4 §5.1.4: 0x00000001–0x7FFFFFFF).
pub const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

/// One SMPP PDU: header fields and body. `command_length` and `command_id` are not stored:
/// they follow from the body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pdu {
    /// The command and its fields.
    #[serde(flatten)]
    pub body: Body,
    /// 0 in requests; the outcome in responses.
    #[serde(default)]
    pub command_status: CommandStatus,
    /// Chosen by the request's sender, echoed in the response.
    pub sequence_number: u32,
}

/// The command of a PDU with its fields. A response whose body may be left out (3.4 omits it
/// when command_status is not 0) carries an `Option`: `None` when the body was empty.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", content = "body", rename_all = "snake_case")]
pub enum Body {
    /// generic_nack (3.4 §4.3): a request whose header could not be processed.
    GenericNack,
    /// bind_receiver.
    BindReceiver(Bind),
    /// bind_receiver_resp.
    BindReceiverResp(Option<BindResp>),
    /// bind_transmitter.
    BindTransmitter(Bind),
    /// bind_transmitter_resp.
    BindTransmitterResp(Option<BindResp>),
    /// bind_transceiver.
    BindTransceiver(Bind),
    /// bind_transceiver_resp.
    BindTransceiverResp(Option<BindResp>),
    /// outbind: the SMSC asks the ESME to bind (no response PDU).
    Outbind(Outbind),
    /// unbind.
    Unbind,
    /// unbind_resp.
    UnbindResp,
    /// enquire_link.
    EnquireLink,
    /// enquire_link_resp.
    EnquireLinkResp,
    /// submit_sm.
    SubmitSm(SubmitSm),
    /// submit_sm_resp.
    SubmitSmResp(Option<SmResp>),
    /// deliver_sm.
    DeliverSm(DeliverSm),
    /// deliver_sm_resp.
    DeliverSmResp(Option<SmResp>),
    /// submit_multi.
    SubmitMulti(SubmitMulti),
    /// submit_multi_resp.
    SubmitMultiResp(Option<SubmitMultiResp>),
    /// data_sm.
    DataSm(DataSm),
    /// data_sm_resp.
    DataSmResp(Option<SmResp>),
    /// query_sm.
    QuerySm(QuerySm),
    /// query_sm_resp.
    QuerySmResp(Option<QuerySmResp>),
    /// cancel_sm.
    CancelSm(CancelSm),
    /// cancel_sm_resp.
    CancelSmResp,
    /// replace_sm.
    ReplaceSm(ReplaceSm),
    /// replace_sm_resp.
    ReplaceSmResp,
    /// alert_notification (no response PDU).
    AlertNotification(AlertNotification),
    /// A command_id SMPP 3.4 does not define, kept raw. A request of this kind is answered with
    /// generic_nack ESME_RINVCMDID ([`Pdu::unknown_command_response`]); a response is dropped.
    Unknown {
        /// The command_id as received.
        command_id: CommandId,
        /// The body octets as received.
        #[serde(with = "json::hex_bytes")]
        body: Bytes,
    },
}

impl Body {
    /// The command_id this body is sent with.
    pub fn command_id(&self) -> CommandId {
        match self {
            Body::GenericNack => CommandId::GENERIC_NACK,
            Body::BindReceiver(_) => CommandId::BIND_RECEIVER,
            Body::BindReceiverResp(_) => CommandId::BIND_RECEIVER_RESP,
            Body::BindTransmitter(_) => CommandId::BIND_TRANSMITTER,
            Body::BindTransmitterResp(_) => CommandId::BIND_TRANSMITTER_RESP,
            Body::BindTransceiver(_) => CommandId::BIND_TRANSCEIVER,
            Body::BindTransceiverResp(_) => CommandId::BIND_TRANSCEIVER_RESP,
            Body::Outbind(_) => CommandId::OUTBIND,
            Body::Unbind => CommandId::UNBIND,
            Body::UnbindResp => CommandId::UNBIND_RESP,
            Body::EnquireLink => CommandId::ENQUIRE_LINK,
            Body::EnquireLinkResp => CommandId::ENQUIRE_LINK_RESP,
            Body::SubmitSm(_) => CommandId::SUBMIT_SM,
            Body::SubmitSmResp(_) => CommandId::SUBMIT_SM_RESP,
            Body::DeliverSm(_) => CommandId::DELIVER_SM,
            Body::DeliverSmResp(_) => CommandId::DELIVER_SM_RESP,
            Body::SubmitMulti(_) => CommandId::SUBMIT_MULTI,
            Body::SubmitMultiResp(_) => CommandId::SUBMIT_MULTI_RESP,
            Body::DataSm(_) => CommandId::DATA_SM,
            Body::DataSmResp(_) => CommandId::DATA_SM_RESP,
            Body::QuerySm(_) => CommandId::QUERY_SM,
            Body::QuerySmResp(_) => CommandId::QUERY_SM_RESP,
            Body::CancelSm(_) => CommandId::CANCEL_SM,
            Body::CancelSmResp => CommandId::CANCEL_SM_RESP,
            Body::ReplaceSm(_) => CommandId::REPLACE_SM,
            Body::ReplaceSmResp => CommandId::REPLACE_SM_RESP,
            Body::AlertNotification(_) => CommandId::ALERT_NOTIFICATION,
            Body::Unknown { command_id, .. } => *command_id,
        }
    }

    /// The body of the response to a request with this command_id, with no fields: what an
    /// error response carries (3.4 omits the body when command_status is not 0). `None` when the
    /// id has no response PDU, or is itself a response.
    pub fn empty_response(request: CommandId) -> Option<Body> {
        Some(match request {
            CommandId::BIND_RECEIVER => Body::BindReceiverResp(None),
            CommandId::BIND_TRANSMITTER => Body::BindTransmitterResp(None),
            CommandId::BIND_TRANSCEIVER => Body::BindTransceiverResp(None),
            CommandId::UNBIND => Body::UnbindResp,
            CommandId::ENQUIRE_LINK => Body::EnquireLinkResp,
            CommandId::SUBMIT_SM => Body::SubmitSmResp(None),
            CommandId::DELIVER_SM => Body::DeliverSmResp(None),
            CommandId::SUBMIT_MULTI => Body::SubmitMultiResp(None),
            CommandId::DATA_SM => Body::DataSmResp(None),
            CommandId::QUERY_SM => Body::QuerySmResp(None),
            CommandId::CANCEL_SM => Body::CancelSmResp,
            CommandId::REPLACE_SM => Body::ReplaceSmResp,
            _ => return None,
        })
    }

    /// The body for `command_id` with every field at its zero value, ready for
    /// [`Body::read_into`]. A response whose body may be left out is `None` when `empty`.
    #[inline(always)]
    fn blank(command_id: CommandId, frame: &Bytes, empty: bool) -> Body {
        // A response body that may be left out: empty means None.
        fn optional<T: Default>(empty: bool) -> Option<T> {
            (!empty).then(T::default)
        }
        match command_id {
            CommandId::GENERIC_NACK => Body::GenericNack,
            CommandId::BIND_RECEIVER => Body::BindReceiver(Bind::default()),
            CommandId::BIND_RECEIVER_RESP => Body::BindReceiverResp(optional(empty)),
            CommandId::BIND_TRANSMITTER => Body::BindTransmitter(Bind::default()),
            CommandId::BIND_TRANSMITTER_RESP => Body::BindTransmitterResp(optional(empty)),
            CommandId::BIND_TRANSCEIVER => Body::BindTransceiver(Bind::default()),
            CommandId::BIND_TRANSCEIVER_RESP => Body::BindTransceiverResp(optional(empty)),
            CommandId::OUTBIND => Body::Outbind(Outbind::default()),
            CommandId::UNBIND => Body::Unbind,
            CommandId::UNBIND_RESP => Body::UnbindResp,
            CommandId::ENQUIRE_LINK => Body::EnquireLink,
            CommandId::ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
            CommandId::SUBMIT_SM => Body::SubmitSm(SubmitSm::default()),
            CommandId::SUBMIT_SM_RESP => Body::SubmitSmResp(optional(empty)),
            CommandId::DELIVER_SM => Body::DeliverSm(SubmitSm::default()),
            CommandId::DELIVER_SM_RESP => Body::DeliverSmResp(optional(empty)),
            CommandId::SUBMIT_MULTI => Body::SubmitMulti(SubmitMulti::default()),
            CommandId::SUBMIT_MULTI_RESP => Body::SubmitMultiResp(optional(empty)),
            CommandId::DATA_SM => Body::DataSm(DataSm::default()),
            CommandId::DATA_SM_RESP => Body::DataSmResp(optional(empty)),
            CommandId::QUERY_SM => Body::QuerySm(QuerySm::default()),
            CommandId::QUERY_SM_RESP => Body::QuerySmResp(optional(empty)),
            CommandId::CANCEL_SM => Body::CancelSm(CancelSm::default()),
            CommandId::CANCEL_SM_RESP => Body::CancelSmResp,
            CommandId::REPLACE_SM => Body::ReplaceSm(ReplaceSm::default()),
            CommandId::REPLACE_SM_RESP => Body::ReplaceSmResp,
            CommandId::ALERT_NOTIFICATION => Body::AlertNotification(AlertNotification::default()),
            command_id => Body::Unknown {
                command_id,
                body: frame.slice(HEADER_LEN..),
            },
        }
    }

    /// Reads the body's fields from `r` into this blank body.
    #[inline(always)]
    fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
        match self {
            Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => {
                b.read_into(r)?
            }
            Body::BindReceiverResp(Some(b))
            | Body::BindTransmitterResp(Some(b))
            | Body::BindTransceiverResp(Some(b)) => b.read_into(r)?,
            Body::Outbind(b) => b.read_into(r)?,
            Body::SubmitSm(b) | Body::DeliverSm(b) => b.read_into(r)?,
            Body::SubmitSmResp(Some(b))
            | Body::DeliverSmResp(Some(b))
            | Body::DataSmResp(Some(b)) => b.read_into(r)?,
            Body::SubmitMulti(b) => b.read_into(r)?,
            Body::SubmitMultiResp(Some(b)) => b.read_into(r)?,
            Body::DataSm(b) => b.read_into(r)?,
            Body::QuerySm(b) => b.read_into(r)?,
            Body::QuerySmResp(Some(b)) => b.read_into(r)?,
            Body::CancelSm(b) => b.read_into(r)?,
            Body::ReplaceSm(b) => b.read_into(r)?,
            Body::AlertNotification(b) => b.read_into(r)?,
            // The raw body is the whole of it.
            Body::Unknown { .. } => return Ok(()),
            // Header-only PDUs, and responses whose body was left out, read nothing.
            _ => {}
        }
        // Every body reads its TLVs to the end, so only a header-only PDU can have octets
        // left here.
        if !r.is_empty() {
            return Err(Fail {
                field: "body",
                status: CommandStatus::ESME_RINVCMDLEN,
                reason: FailReason::UnexpectedBody,
            });
        }
        Ok(())
    }

    fn wire_len(&self) -> usize {
        match self {
            Body::GenericNack
            | Body::Unbind
            | Body::UnbindResp
            | Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::CancelSmResp
            | Body::ReplaceSmResp => 0,
            Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => {
                b.wire_len()
            }
            Body::BindReceiverResp(b)
            | Body::BindTransmitterResp(b)
            | Body::BindTransceiverResp(b) => b.as_ref().map_or(0, |b| b.wire_len()),
            Body::Outbind(b) => b.wire_len(),
            Body::SubmitSm(b) | Body::DeliverSm(b) => b.wire_len(),
            Body::SubmitSmResp(b) | Body::DeliverSmResp(b) | Body::DataSmResp(b) => {
                b.as_ref().map_or(0, |b| b.wire_len())
            }
            Body::SubmitMulti(b) => b.wire_len(),
            Body::SubmitMultiResp(b) => b.as_ref().map_or(0, |b| b.wire_len()),
            Body::DataSm(b) => b.wire_len(),
            Body::QuerySm(b) => b.wire_len(),
            Body::QuerySmResp(b) => b.as_ref().map_or(0, |b| b.wire_len()),
            Body::CancelSm(b) => b.wire_len(),
            Body::ReplaceSm(b) => b.wire_len(),
            Body::AlertNotification(b) => b.wire_len(),
            Body::Unknown { body, .. } => body.len(),
        }
    }

    fn put(&self, w: &mut Writer<'_>) {
        match self {
            Body::GenericNack
            | Body::Unbind
            | Body::UnbindResp
            | Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::CancelSmResp
            | Body::ReplaceSmResp => {}
            Body::BindReceiver(b) | Body::BindTransmitter(b) | Body::BindTransceiver(b) => b.put(w),
            Body::BindReceiverResp(b)
            | Body::BindTransmitterResp(b)
            | Body::BindTransceiverResp(b) => {
                if let Some(b) = b {
                    b.put(w)
                }
            }
            Body::Outbind(b) => b.put(w),
            Body::SubmitSm(b) | Body::DeliverSm(b) => b.put(w),
            Body::SubmitSmResp(b) | Body::DeliverSmResp(b) | Body::DataSmResp(b) => {
                if let Some(b) = b {
                    b.put(w)
                }
            }
            Body::SubmitMulti(b) => b.put(w),
            Body::SubmitMultiResp(b) => {
                if let Some(b) = b {
                    b.put(w)
                }
            }
            Body::DataSm(b) => b.put(w),
            Body::QuerySm(b) => b.put(w),
            Body::QuerySmResp(b) => {
                if let Some(b) = b {
                    b.put(w)
                }
            }
            Body::CancelSm(b) => b.put(w),
            Body::ReplaceSm(b) => b.put(w),
            Body::AlertNotification(b) => b.put(w),
            Body::Unknown { body, .. } => w.slice(body),
        }
    }
}

/// A frame whose header was readable but whose body was not. It carries what is needed to
/// answer it: the request's own response with `status`, or generic_nack (3.4 §3.3, §4.3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{command_id} with sequence_number {sequence_number}: {field} {reason}; the answer is {status}"
)]
pub struct DecodeError {
    /// The frame's command_id.
    pub command_id: CommandId,
    /// The frame's command_status.
    pub command_status: CommandStatus,
    /// The frame's sequence_number.
    pub sequence_number: u32,
    /// The spec name of the field that was wrong.
    pub field: &'static str,
    /// What was wrong with it.
    pub reason: FailReason,
    /// The command_status to answer with.
    pub status: CommandStatus,
}

impl DecodeError {
    /// The PDU that answers the bad frame, if any: the request's own response carrying
    /// `status` with no body; nothing for a response or a PDU that has no response.
    pub fn response(&self) -> Option<Pdu> {
        Body::empty_response(self.command_id).map(|body| Pdu {
            command_status: self.status,
            sequence_number: self.sequence_number,
            body,
        })
    }
}

impl Pdu {
    /// A PDU with status ESME_ROK.
    pub fn new(sequence_number: u32, body: Body) -> Pdu {
        Pdu {
            command_status: CommandStatus::ESME_ROK,
            sequence_number,
            body,
        }
    }

    /// The command_id.
    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }

    /// Decodes one frame: exactly `command_length` octets, header included.
    ///
    /// A frame too short for a header, or whose command_length disagrees with its size, is
    /// answered with generic_nack ESME_RINVCMDLEN (the [`DecodeError`] says so); a bad body
    /// with the request's own response and a field-specific status.
    pub fn decode(frame: &Bytes) -> Result<Pdu, DecodeError> {
        let Some(header) = frame.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError {
                command_id: CommandId::GENERIC_NACK,
                command_status: CommandStatus::ESME_ROK,
                sequence_number: 0,
                field: "command_length",
                reason: FailReason::Truncated,
                status: CommandStatus::ESME_RINVCMDLEN,
            });
        };
        let word =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let command_length = word(0);
        let command_id = CommandId(word(4));
        let command_status = CommandStatus(word(8));
        let sequence_number = word(12);
        if command_length as usize != frame.len() {
            // Framing is the codec's job; a caller handing us a frame of the wrong size has
            // lost sync with the stream. Answer as for a bad length, with generic_nack.
            return Err(DecodeError {
                command_id: CommandId::GENERIC_NACK,
                command_status,
                sequence_number,
                field: "command_length",
                reason: FailReason::BadValue,
                status: CommandStatus::ESME_RINVCMDLEN,
            });
        }
        let body = &frame[HEADER_LEN..];
        let mut pdu = Pdu {
            command_status,
            sequence_number,
            body: Body::blank(command_id, frame, body.is_empty()),
        };
        match pdu.body.read_into(&mut Reader::new(frame, body)) {
            Ok(()) => Ok(pdu),
            Err(fail) => Err(DecodeError {
                command_id,
                command_status,
                sequence_number,
                field: fail.field,
                reason: fail.reason,
                status: fail.status,
            }),
        }
    }

    /// Octets on the wire: command_length.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.wire_len()
    }

    /// Appends the PDU to `buf`. Cannot fail.
    ///
    /// The length is computed first, so the buffer grows once and every field is a plain store
    /// into it; command_length is written from that same computation.
    pub fn encode(&self, buf: &mut BytesMut) {
        let len = self.encoded_len();
        let start = buf.len();
        buf.resize(start + len, 0);
        let mut w = Writer::new(&mut buf[start..]);
        // A PDU is far below 4 GiB: every field is bounded (C-strings, sm_length, TLV lengths).
        w.u32(len as u32);
        w.u32(self.command_id().0);
        w.u32(self.command_status.0);
        w.u32(self.sequence_number);
        self.body.put(&mut w);
        debug_assert_eq!(w.position(), len, "wire_len and put disagree");
    }

    /// The encoded PDU as `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }

    /// The answer to a request whose command_id is unknown: generic_nack ESME_RINVCMDID with
    /// its sequence number (3.4 §3.3). `None` for anything else, including unknown responses,
    /// which are never answered.
    pub fn unknown_command_response(&self) -> Option<Pdu> {
        match &self.body {
            Body::Unknown { command_id, .. } if !command_id.is_response() => Some(Pdu {
                command_status: CommandStatus::ESME_RINVCMDID,
                sequence_number: self.sequence_number,
                body: Body::GenericNack,
            }),
            _ => None,
        }
    }
}

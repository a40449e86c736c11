//! Field-level decode (nom `complete` parsers over the exact body slice) and encode (`BufMut`).

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::{take, take_till};
use nom::number::complete::{be_u8, be_u32};

use super::status::CommandStatus;
use super::tlv::Tlvs;
use super::types::{
    COctetString, DataCoding, EsmClass, InterfaceVersion, MessageState, Npi, RegisteredDelivery,
    ShortMessage, TimeString, Ton,
};

/// A mandatory field: its spec name, and the status that answers a bad value in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) status: CommandStatus,
}

/// Why a body failed to decode: the field and the status to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) field: &'static str,
    pub(crate) status: CommandStatus,
    pub(crate) reason: FailReason,
}

/// What was wrong with the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    /// The body ended inside this field.
    #[error("runs past the end of the PDU")]
    Truncated,
    /// A C-Octet String reached its maximum length without a NUL.
    #[error("is longer than its maximum (no NUL within it)")]
    TooLong,
    /// The value is not one the spec allows here.
    #[error("has a value the spec does not allow")]
    BadValue,
    /// The TLV section is malformed.
    #[error("is malformed")]
    BadTlv,
    /// A PDU that has no body carried one.
    #[error("is present where the PDU has no body")]
    UnexpectedBody,
}

type NomErr<'a> = nom::error::Error<&'a [u8]>;

/// Reads fields in order from one PDU body. Slices become `Bytes` that share the frame.
pub(crate) struct Reader<'a> {
    frame: &'a Bytes,
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// `body` must be a sub-slice of `frame`.
    pub(crate) fn new(frame: &'a Bytes, body: &'a [u8]) -> Self {
        Reader { frame, input: body }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    fn truncated(field: Field) -> Fail {
        Fail {
            field: field.name,
            status: CommandStatus::ESME_RINVCMDLEN,
            reason: FailReason::Truncated,
        }
    }

    fn share(&self, sub: &[u8]) -> Bytes {
        if sub.is_empty() {
            Bytes::new()
        } else {
            self.frame.slice_ref(sub)
        }
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, Fail> {
        let (rest, v) = be_u8::<_, NomErr<'a>>(self.input).map_err(|_| Self::truncated(field))?;
        self.input = rest;
        Ok(v)
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, Fail> {
        let (rest, v) = be_u32::<_, NomErr<'a>>(self.input).map_err(|_| Self::truncated(field))?;
        self.input = rest;
        Ok(v)
    }

    /// A C-Octet String of at most `max` octets including the NUL.
    pub(crate) fn c_string(&mut self, max: usize, field: Field) -> Result<Bytes, Fail> {
        let window = &self.input[..self.input.len().min(max)];
        let (_, content) = take_till::<_, _, NomErr<'a>>(|b| b == 0)(window)
            .map_err(|_| Self::truncated(field))?;
        if content.len() == window.len() {
            // No NUL inside the window: either the body ended or the string is too long.
            return Err(if window.len() < max {
                Self::truncated(field)
            } else {
                Fail {
                    field: field.name,
                    status: field.status,
                    reason: FailReason::TooLong,
                }
            });
        }
        self.input = &self.input[content.len() + 1..];
        Ok(self.share(content))
    }

    pub(crate) fn octets(&mut self, len: usize, field: Field) -> Result<Bytes, Fail> {
        let (rest, v) = take::<_, _, NomErr<'a>>(len)(self.input).map_err(|_| Fail {
            field: field.name,
            status: field.status,
            reason: FailReason::Truncated,
        })?;
        self.input = rest;
        Ok(self.share(v))
    }

    /// Everything left: the TLV section.
    pub(crate) fn tlvs(&mut self) -> Result<Tlvs, Fail> {
        let rest = self.share(self.input);
        self.input = &[];
        Tlvs::parse(rest).map_err(|e| Fail {
            field: e.field,
            status: e.status,
            reason: FailReason::BadTlv,
        })
    }
}

/// A field type that knows its own wire form.
pub(crate) trait WireField: Sized {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail>;
    fn write(&self, buf: &mut BytesMut);
}

impl WireField for u8 {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        r.u8(field)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(*self);
    }
}

impl WireField for CommandStatus {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        r.u32(field).map(CommandStatus)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_u32(self.0);
    }
}

macro_rules! octet_fields {
    ($($ty:ident),*) => {$(
        impl WireField for $ty {
            fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
                r.u8(field).map($ty)
            }
            fn write(&self, buf: &mut BytesMut) {
                buf.put_u8(self.0);
            }
        }
    )*};
}

octet_fields!(
    Ton,
    Npi,
    EsmClass,
    RegisteredDelivery,
    DataCoding,
    InterfaceVersion,
    MessageState
);

impl<const MAX: usize> WireField for COctetString<MAX> {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        r.c_string(MAX, field).map(COctetString::from_checked)
    }
    fn write(&self, buf: &mut BytesMut) {
        buf.put_slice(self.as_bytes());
        buf.put_u8(0);
    }
}

impl WireField for TimeString {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        let value = COctetString::<17>::read(r, field)?;
        if !TimeString::valid_len(value.len()) {
            return Err(Fail {
                field: field.name,
                status: field.status,
                reason: FailReason::BadValue,
            });
        }
        Ok(TimeString::from_checked(value))
    }
    fn write(&self, buf: &mut BytesMut) {
        self.as_c_octet_string().write(buf);
    }
}

/// `sm_length` followed by `short_message`.
impl WireField for ShortMessage {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        let len = usize::from(r.u8(field)?);
        if len > ShortMessage::MAX_LEN {
            return Err(Fail {
                field: field.name,
                status: field.status,
                reason: FailReason::BadValue,
            });
        }
        r.octets(len, field).map(ShortMessage::from_checked)
    }
    fn write(&self, buf: &mut BytesMut) {
        // The type keeps len <= 254.
        buf.put_u8(self.len() as u8);
        buf.put_slice(self.as_bytes());
    }
}

impl WireField for Tlvs {
    fn read(r: &mut Reader<'_>, _field: Field) -> Result<Self, Fail> {
        r.tlvs()
    }
    fn write(&self, buf: &mut BytesMut) {
        Tlvs::write(self, buf);
    }
}

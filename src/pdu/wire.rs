//! Field-level decode (nom `complete` parsers over the exact body slice) and encode (into a
//! slice sized exactly beforehand, so each field is a plain store, not a buffer call).

use bytes::Bytes;
use nom::bytes::complete::take_till;
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

    #[inline(always)]
    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, Fail> {
        let (rest, v) = be_u8::<_, NomErr<'a>>(self.input).map_err(|_| Self::truncated(field))?;
        self.input = rest;
        Ok(v)
    }

    #[inline(always)]
    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, Fail> {
        let (rest, v) = be_u32::<_, NomErr<'a>>(self.input).map_err(|_| Self::truncated(field))?;
        self.input = rest;
        Ok(v)
    }

    /// A C-Octet String of at most `MAX` octets including the NUL: its content length, and the
    /// `MAX` octets from where it starts (fewer only at the very end of the body), so the caller
    /// can take them with one fixed-size copy.
    #[inline(always)]
    pub(crate) fn c_string<const MAX: usize>(
        &mut self,
        field: Field,
    ) -> Result<(usize, &'a [u8]), Fail> {
        let window = &self.input[..self.input.len().min(MAX)];
        let (_, content) = take_till::<_, _, NomErr<'a>>(|b| b == 0)(window)
            .map_err(|_| Self::truncated(field))?;
        if content.len() == window.len() {
            // No NUL inside the window: either the body ended or the string is too long.
            return Err(if window.len() < MAX {
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
        Ok((content.len(), window))
    }

    #[inline(always)]
    pub(crate) fn octets(&mut self, len: usize, field: Field) -> Result<Bytes, Fail> {
        // A plain split: nom's `take` is the same check, but is not inlined here.
        let (v, rest) = self.input.split_at_checked(len).ok_or(Fail {
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

/// Writes fields into a slice that [`WireField::wire_len`] sized. Indexing checks bounds, so a
/// wrong length is a bug caught by a panic in tests, never memory unsafety.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    pub(crate) fn u8(&mut self, v: u8) {
        self.out[self.pos] = v;
        self.pos += 1;
    }

    #[inline(always)]
    pub(crate) fn u32(&mut self, v: u32) {
        self.slice(&v.to_be_bytes());
    }

    #[inline(always)]
    pub(crate) fn slice(&mut self, s: &[u8]) {
        self.out[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
    }
}

/// A field type that knows its own wire form.
pub(crate) trait WireField: Sized {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail>;
    /// Octets [`WireField::put`] writes.
    fn wire_len(&self) -> usize;
    fn put(&self, w: &mut Writer<'_>);
}

impl WireField for u8 {
    #[inline(always)]
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        r.u8(field)
    }
    fn wire_len(&self) -> usize {
        1
    }
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(*self);
    }
}

impl WireField for CommandStatus {
    #[inline(always)]
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        r.u32(field).map(CommandStatus)
    }
    fn wire_len(&self) -> usize {
        4
    }
    fn put(&self, w: &mut Writer<'_>) {
        w.u32(self.0);
    }
}

macro_rules! octet_fields {
    ($($ty:ident),*) => {$(
        impl WireField for $ty {
            #[inline(always)]
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
                r.u8(field).map($ty)
            }
            fn wire_len(&self) -> usize {
                1
            }
            fn put(&self, w: &mut Writer<'_>) {
                w.u8(self.0);
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
    #[inline(always)]
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        let (len, window) = r.c_string::<MAX>(field)?;
        Ok(COctetString::from_window(len, window))
    }
    fn wire_len(&self) -> usize {
        self.len() + 1
    }
    fn put(&self, w: &mut Writer<'_>) {
        w.slice(self.as_bytes());
        w.u8(0);
    }
}

impl WireField for TimeString {
    #[inline(always)]
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
    fn wire_len(&self) -> usize {
        self.as_c_octet_string().wire_len()
    }
    fn put(&self, w: &mut Writer<'_>) {
        self.as_c_octet_string().put(w);
    }
}

/// `sm_length` followed by `short_message`.
impl WireField for ShortMessage {
    #[inline(always)]
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
    fn wire_len(&self) -> usize {
        1 + self.len()
    }
    fn put(&self, w: &mut Writer<'_>) {
        // The type keeps len <= 254.
        w.u8(self.len() as u8);
        w.slice(self.as_bytes());
    }
}

impl WireField for Tlvs {
    fn read(r: &mut Reader<'_>, _field: Field) -> Result<Self, Fail> {
        r.tlvs()
    }
    fn wire_len(&self) -> usize {
        self.encoded_len()
    }
    fn put(&self, w: &mut Writer<'_>) {
        w.slice(self.as_bytes());
    }
}

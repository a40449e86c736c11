//! Field types that carry the spec's limits, so a value that exists is a value that encodes.

use std::fmt;

use bytes::Bytes;

/// A value was too long or malformed for the field it was meant for. Raised when building a
/// field from application data; wire data gets a [`super::DecodeError`] instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The value is longer than the field allows.
    #[error("{len} octets is longer than the maximum of {max}")]
    TooLong {
        /// The length that was given.
        len: usize,
        /// The field's maximum.
        max: usize,
    },
    /// A C-Octet String may not contain a NUL octet: it would end the string early.
    #[error("a C-Octet String cannot contain a NUL octet")]
    ContainsNul,
    /// A time field must be empty or 16 characters (`YYMMDDhhmmsstnnp`); 12 is accepted for
    /// SMSC-reported times (3.4 §7.1.1).
    #[error("a time string must be empty or 16 characters long, not {0}")]
    BadTimeLength(usize),
}

/// A C-Octet String (3.4 §3.1): octets up to a terminating NUL, at most `MAX` octets
/// *including* that NUL, as the spec's tables give it (C16 holds 15 characters).
///
/// The NUL is not stored. The content is usually ASCII but is kept as octets: carriers send
/// what they send, and it must round-trip. The octets live inline (these strings are at most
/// 64 characters), so decoding and cloning one touches no reference count and no heap.
#[derive(Clone, Copy)]
pub struct COctetString<const MAX: usize> {
    len: u8,
    octets: [u8; MAX],
}

impl<const MAX: usize> COctetString<MAX> {
    /// The empty string, encoded as a single NUL.
    pub const fn empty() -> Self {
        COctetString {
            len: 0,
            octets: [0; MAX],
        }
    }

    /// Checks length and content. `MAX - 1` octets at most, no NUL inside.
    pub fn new(value: impl AsRef<[u8]>) -> Result<Self, FieldError> {
        let value = value.as_ref();
        if value.len() >= MAX {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: MAX - 1,
            });
        }
        if value.contains(&0) {
            return Err(FieldError::ContainsNul);
        }
        Ok(Self::from_checked(value))
    }

    /// Builds from octets the decoder already checked (no NUL, fewer than `MAX`).
    pub(crate) fn from_checked(value: &[u8]) -> Self {
        debug_assert!(value.len() < MAX && !value.contains(&0));
        let mut s = Self::empty();
        s.octets[..value.len()].copy_from_slice(value);
        // Every MAX in the spec is at most 65, so the length fits an octet.
        s.len = value.len() as u8;
        s
    }

    /// Builds from the decoder's window: `len` content octets (no NUL, fewer than `MAX`) at the
    /// start of `window`. A full window is taken with one fixed-size copy; octets past `len`
    /// are never read.
    #[inline(always)]
    pub(crate) fn from_window(len: usize, window: &[u8]) -> Self {
        debug_assert!(len < MAX && len <= window.len());
        match window.first_chunk::<MAX>() {
            Some(octets) => COctetString {
                // len < MAX <= 65
                len: len as u8,
                octets: *octets,
            },
            None => Self::from_checked(&window[..len]),
        }
    }

    /// The octets without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.octets[..usize::from(self.len)]
    }

    /// The content as text when it is UTF-8 (it is ASCII in every sane PDU).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The octets as text, invalid UTF-8 replaced (as `Display` writes it), without going
    /// through a formatter.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// Octets without the NUL.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for the empty string (a lone NUL on the wire).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Octets on the wire, NUL included.
    pub fn encoded_len(&self) -> usize {
        self.len() + 1
    }
}

impl<const MAX: usize> Default for COctetString<MAX> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<const MAX: usize> PartialEq for COctetString<MAX> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const MAX: usize> Eq for COctetString<MAX> {}

impl<const MAX: usize> std::hash::Hash for COctetString<MAX> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl<const MAX: usize> TryFrom<&str> for COctetString<MAX> {
    type Error = FieldError;
    fn try_from(value: &str) -> Result<Self, FieldError> {
        COctetString::new(value)
    }
}

impl<const MAX: usize> fmt::Debug for COctetString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl<const MAX: usize> fmt::Display for COctetString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A time field (`schedule_delivery_time`, `validity_period`, `final_date`; 3.4 §7.1.1): empty
/// (a lone NUL, "not set") or `YYMMDDhhmmsstnnp`. The 12-character `YYMMDDhhmmss` form that
/// SMSCs use for reported times is accepted too.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeString(COctetString<17>);

impl TimeString {
    /// "Not set": a lone NUL.
    pub const fn empty() -> Self {
        TimeString(COctetString::empty())
    }

    /// Checks the length (0, 12 or 16 characters) and content.
    pub fn new(value: impl AsRef<[u8]>) -> Result<Self, FieldError> {
        let value = COctetString::<17>::new(value)?;
        if !Self::valid_len(value.len()) {
            return Err(FieldError::BadTimeLength(value.len()));
        }
        Ok(TimeString(value))
    }

    pub(crate) fn valid_len(len: usize) -> bool {
        matches!(len, 0 | 12 | 16)
    }

    pub(crate) fn from_checked(value: COctetString<17>) -> Self {
        TimeString(value)
    }

    /// The underlying string.
    pub fn as_c_octet_string(&self) -> &COctetString<17> {
        &self.0
    }

    /// True when the field is not set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<&str> for TimeString {
    type Error = FieldError;
    fn try_from(value: &str) -> Result<Self, FieldError> {
        TimeString::new(value)
    }
}

impl fmt::Debug for TimeString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The `short_message` field: up to 254 octets, its length carried in `sm_length` (3.4 §5.2.21;
/// 255 is forbidden). Longer user data travels in the `message_payload` TLV instead.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ShortMessage(Bytes);

impl ShortMessage {
    /// The largest `sm_length`.
    pub const MAX_LEN: usize = 254;

    /// An empty short_message (`sm_length` 0), as used with `message_payload`.
    pub const fn empty() -> Self {
        ShortMessage(Bytes::new())
    }

    /// Checks the length.
    pub fn new(value: impl Into<Bytes>) -> Result<Self, FieldError> {
        let value = value.into();
        if value.len() > Self::MAX_LEN {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(ShortMessage(value))
    }

    pub(crate) fn from_checked(value: Bytes) -> Self {
        debug_assert!(value.len() <= Self::MAX_LEN);
        ShortMessage(value)
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The octets as shared `Bytes`.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// `sm_length`.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when `sm_length` is 0.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ShortMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortMessage({})", super::hex::encode(&self.0))
    }
}

macro_rules! octet_newtype {
    ($(#[$meta:meta])* $name:ident { $( $(#[$cmeta:meta])* $cname:ident = $cval:literal; )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$cmeta])* pub const $cname: $name = $name($cval); )*
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(0x{:02X})", stringify!($name), self.0)
            }
        }
    };
}

octet_newtype! {
    /// Type of Number (3.4 §5.2.5, Table 5-3).
    Ton {
        /// Unknown.
        UNKNOWN = 0;
        /// International (E.164 without the `+`).
        INTERNATIONAL = 1;
        /// National.
        NATIONAL = 2;
        /// Network specific.
        NETWORK_SPECIFIC = 3;
        /// Subscriber number.
        SUBSCRIBER_NUMBER = 4;
        /// Alphanumeric sender id.
        ALPHANUMERIC = 5;
        /// Abbreviated (short code).
        ABBREVIATED = 6;
    }
}

octet_newtype! {
    /// Numbering Plan Indicator (3.4 §5.2.6, Table 5-4).
    Npi {
        /// Unknown.
        UNKNOWN = 0;
        /// ISDN / telephone numbering plan (E.163/E.164).
        ISDN = 1;
        /// Data (X.121).
        DATA = 3;
        /// Telex (F.69).
        TELEX = 4;
        /// Land mobile (E.212).
        LAND_MOBILE = 6;
        /// National.
        NATIONAL = 8;
        /// Private.
        PRIVATE = 9;
        /// ERMES.
        ERMES = 10;
        /// Internet (IP).
        INTERNET = 14;
        /// WAP client id.
        WAP_CLIENT_ID = 18;
    }
}

octet_newtype! {
    /// `esm_class` (3.4 §5.2.12): messaging mode, message type and GSM feature bits.
    EsmClass {
        /// Default SMSC mode, normal message.
        DEFAULT = 0x00;
        /// Message type: SMSC delivery receipt (SMSC → ESME).
        DELIVERY_RECEIPT = 0x04;
        /// Message type: SME delivery acknowledgement.
        DELIVERY_ACK = 0x08;
        /// Message type: SME manual/user acknowledgement.
        USER_ACK = 0x10;
        /// Message type: intermediate delivery notification.
        INTERMEDIATE_NOTIFICATION = 0x20;
        /// GSM: the user data starts with a User Data Header.
        UDHI = 0x40;
        /// GSM: reply path.
        REPLY_PATH = 0x80;
    }
}

impl EsmClass {
    /// Bits 5-2, the message type.
    pub fn message_type(self) -> u8 {
        self.0 & 0x3C
    }

    /// True when the message type says this deliver_sm/data_sm is a delivery receipt or
    /// acknowledgement rather than a mobile-originated message. Following the field practice of
    /// treating 0x04, 0x08 and 0x20 alike (reference §4.3).
    pub fn is_receipt(self) -> bool {
        self.0 & (0x04 | 0x08 | 0x20) != 0
    }

    /// True when the UDHI bit is set.
    pub fn has_udhi(self) -> bool {
        self.0 & 0x40 != 0
    }

    /// This value with the UDHI bit set.
    pub fn with_udhi(self) -> EsmClass {
        EsmClass(self.0 | 0x40)
    }
}

octet_newtype! {
    /// `registered_delivery` (3.4 §5.2.17).
    RegisteredDelivery {
        /// No receipt requested.
        NONE = 0x00;
        /// Receipt on the final outcome, success or failure.
        FINAL = 0x01;
        /// Receipt on failure only.
        FAILURE = 0x02;
        /// Receipt on success only (reserved in 3.4; SMPP 5.0 meaning).
        SUCCESS = 0x03;
        /// Intermediate notification requested.
        INTERMEDIATE = 0x10;
    }
}

impl RegisteredDelivery {
    /// Bits 1-0: which SMSC delivery receipt is asked for (0 none, 1 final, 2 failure, 3 success).
    pub fn smsc_receipt(self) -> u8 {
        self.0 & 0x03
    }
}

octet_newtype! {
    /// `data_coding` (3.4 §5.2.19).
    DataCoding {
        /// SMSC default alphabet (usually GSM 03.38; carrier specific).
        DEFAULT = 0x00;
        /// IA5 / ASCII.
        IA5 = 0x01;
        /// Octet unspecified (8-bit binary), TDMA/CDMA legacy.
        BINARY_02 = 0x02;
        /// Latin-1 (ISO-8859-1).
        LATIN1 = 0x03;
        /// Octet unspecified (8-bit binary).
        BINARY = 0x04;
        /// JIS (X 0208-1990).
        JIS = 0x05;
        /// Cyrillic (ISO-8859-5).
        CYRILLIC = 0x06;
        /// Latin/Hebrew (ISO-8859-8).
        HEBREW = 0x07;
        /// UCS2, big-endian.
        UCS2 = 0x08;
    }
}

octet_newtype! {
    /// `interface_version` / `sc_interface_version` (3.4 §5.2.4).
    InterfaceVersion {
        /// SMPP 3.3 or earlier.
        V33 = 0x33;
        /// SMPP 3.4.
        V34 = 0x34;
        /// SMPP 5.0.
        V50 = 0x50;
    }
}

octet_newtype! {
    /// `message_state` (3.4 §5.2.28), in query_sm_resp and the message_state TLV.
    MessageState {
        /// SMPP 5.0: scheduled.
        SCHEDULED = 0;
        /// In transit.
        ENROUTE = 1;
        /// Delivered.
        DELIVERED = 2;
        /// Validity period expired.
        EXPIRED = 3;
        /// Deleted.
        DELETED = 4;
        /// Undeliverable.
        UNDELIVERABLE = 5;
        /// Accepted (read on the subscriber's behalf by customer service).
        ACCEPTED = 6;
        /// Unknown (invalid state).
        UNKNOWN = 7;
        /// Rejected.
        REJECTED = 8;
        /// SMPP 5.0: skipped.
        SKIPPED = 9;
    }
}

impl MessageState {
    /// True for the states the spec calls final (2–9). ACCEPTED counts as final here, as 3.4
    /// has it; receipt handling may choose otherwise per carrier.
    pub fn is_final(self) -> bool {
        (2..=9).contains(&self.0)
    }
}

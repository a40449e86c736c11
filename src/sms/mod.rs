//! Text on the wire: character sets, encoding choice, segmentation, reassembly, receipts.
//!
//! Everything here is pure: no I/O, no clock reads (time arrives as a `now: Instant`
//! argument), no tasks. The module builds no PDUs (it shares only [`crate::pdu::MessageState`]
//! with the codec); it hands octets, flags and TLV values as plain primitives to the caller,
//! who puts them into `submit_sm` / `deliver_sm`.
//!
//! - [`gsm`]: the GSM 03.38 default alphabet and extension table, septet packing.
//! - [`charset`]: Latin-1, ASCII (IA5) and UCS2 (UTF-16BE), and decoding by `data_coding`.
//! - [`plan()`]: which encoding and `data_coding` a text gets on a carrier, and what it costs.
//! - [`segment()`] / [`segment_binary()`]: split into parts (UDH 8/16-bit, SAR, or
//!   message_payload); [`ReferenceAllocator`] hands out concatenation references.
//! - [`udh`]: the user data header (concatenation and port addressing IEs).
//! - [`Reassembler`]: concatenated incoming messages back into one.
//! - [`receipt`]: the delivery-receipt text of SMPP 3.4 Appendix B, merged with the TLVs.
//! - [`msgid`]: one canonical key for a carrier's message id in hex, decimal or opaque form.
//!
//! # Units and limits
//!
//! A GSM part carries at most 140 octets of TP-UD (GSM 03.40 §9.2.3.24): 160 septets alone,
//! 153 after an 8-bit-reference concatenation UDH, 152 after a 16-bit one. UCS2 gets 70 / 67 /
//! 66 UTF-16 code units, 8-bit data 140 / 134 / 133 octets. Over SMPP, GSM text is sent
//! unpacked by default (one septet per octet); the SMSC packs it for the air interface, so the
//! `short_message` of a 153-septet part is 6 + 153 = 159 octets long but still fills exactly
//! 140 octets on the air.

pub mod charset;
pub mod gsm;
pub mod msgid;
mod plan;
mod reassembly;
pub mod receipt;
mod reference;
mod segment;
pub mod udh;

use std::time::Instant;

pub use charset::decode_text;
pub use msgid::{IdFormat, IdNormalizer, MessageIdKey, normalize_message_id};
pub use plan::{
    CarrierTextOptions, DefaultAlphabet, Encoding, Plan, SegmentationMethod, Unit, plan,
    plan_binary,
};
pub use reassembly::{
    Accepted, Fragment, Incomplete, ReassembledMessage, Reassembler, ReassemblyConfig,
};
pub use receipt::{
    Receipt, ReceiptDate, ReceiptError, ReceiptReport, ReceiptStat, ReceiptTlvs, extract_receipt,
    parse_receipt,
};
pub use reference::{RefWidth, ReferenceAllocator, ReferenceAllocatorConfig};
pub use segment::{Part, PayloadField, Sar, Segments, segment, segment_binary};
pub use udh::{Concat, ConcatKind, InformationElement, Ports, Udh, parse_udh};

/// Everything that can go wrong in the text layer.
///
/// Each variant says whose fault it is, so the caller knows whether to reject the producer's
/// request, push back and retry later, or answer the peer with an error status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// The text (or binary payload) needs more parts than the carrier's `max_parts` allows.
    ///
    /// The producer's fault: the API should reject the message with a 4xx naming the limit.
    #[error("message needs {parts} parts but the limit is {max}")]
    TooManyParts {
        /// How many parts the message would need.
        parts: usize,
        /// The configured maximum (`CarrierTextOptions::max_parts`, never above 255).
        max: u8,
    },

    /// Every concatenation reference for this destination may still be in use by an earlier
    /// message that the handset is reassembling, so none can be handed out without risking a
    /// mix-up of two messages.
    ///
    /// Nobody's fault: too many long messages to one destination in the hold window. The
    /// caller should retry at or after `available_at`.
    #[error("no free concatenation reference for this destination before {available_at:?}")]
    ReferencesExhausted {
        /// The earliest instant at which a reference becomes free again.
        available_at: Instant,
    },

    /// The user data header announced by UDHI is truncated or its information elements
    /// overrun the header length (GSM 03.40 §9.2.3.24).
    ///
    /// The peer's fault.
    #[error("malformed user data header: {reason}")]
    MalformedUdh {
        /// What exactly is wrong with it.
        reason: &'static str,
    },

    /// The reassembler already holds as many incomplete messages, or as many buffered octets,
    /// as it is configured for.
    ///
    /// Ours (a bound): the caller should answer the part with a transient error
    /// (ESME_RX_T_APPN) so that the SMSC delivers it again later.
    #[error("reassembly buffer full ({pending} incomplete messages, {bytes} octets buffered)")]
    ReassemblyFull {
        /// Incomplete messages held (including expired ones not yet polled).
        pending: usize,
        /// Octets buffered across them.
        bytes: usize,
    },
}

//! Framing: a tokio-util `Decoder`/`Encoder` for SMPP's length-prefixed PDUs (3.4 §3.2.2).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{CommandStatus, DecodeError, HEADER_LEN, Pdu};

/// The stream cannot be framed any more: the connection must be closed (after answering with
/// [`FrameError::response`] where that is possible).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// command_length is below 16 or above the configured maximum. What follows cannot be
    /// trusted to start a PDU (3.4 §4.3).
    #[error("command_length {command_length} outside 16..={max}")]
    BadLength {
        /// The length read.
        command_length: u32,
        /// The configured maximum.
        max: usize,
        /// The sequence_number, when the header was complete enough to read it.
        sequence_number: Option<u32>,
    },
    /// Reading or writing the transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The generic_nack ESME_RINVCMDLEN that answers a bad length: with the PDU's sequence
    /// number if it could be read, else 0 (3.4 §4.3.1).
    pub fn response(&self) -> Option<Pdu> {
        match self {
            FrameError::BadLength {
                sequence_number, ..
            } => Some(Pdu {
                command_status: CommandStatus::ESME_RINVCMDLEN,
                sequence_number: sequence_number.unwrap_or(0),
                body: super::Body::GenericNack,
            }),
            FrameError::Io(_) => None,
        }
    }
}

/// Frames SMPP PDUs. Items are `Result<Pdu, DecodeError>`: a frame with a bad body is still a
/// frame, and the session answers it.
#[derive(Clone, Debug)]
pub struct PduCodec {
    max_len: usize,
}

impl PduCodec {
    /// The default maximum PDU size: 64 KiB of body plus the header, enough for any
    /// `message_payload` (its length is an I2).
    pub const DEFAULT_MAX_LEN: usize = 64 * 1024 + HEADER_LEN;

    /// A codec with the default maximum.
    pub fn new() -> Self {
        PduCodec {
            max_len: Self::DEFAULT_MAX_LEN,
        }
    }

    /// A codec that refuses frames longer than `max_len` octets (never below the header size).
    pub fn with_max_len(max_len: usize) -> Self {
        PduCodec {
            max_len: max_len.max(HEADER_LEN),
        }
    }

    /// The maximum frame size.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Default for PduCodec {
    fn default() -> Self {
        PduCodec::new()
    }
}

impl Decoder for PduCodec {
    type Item = Result<Pdu, DecodeError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        let Some(len_octets) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        let command_length = u32::from_be_bytes(*len_octets);
        let len = command_length as usize;
        if len < HEADER_LEN || len > self.max_len {
            let sequence_number = src
                .get(12..16)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
            return Err(FrameError::BadLength {
                command_length,
                max: self.max_len,
                sequence_number,
            });
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(len).freeze();
        Ok(Some(Pdu::decode(&frame)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() => Ok(None),
            None => {
                let left = src.remaining();
                src.clear();
                Err(FrameError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed inside a PDU ({left} octets of it received)"),
                )))
            }
        }
    }
}

impl Encoder<&Pdu> for PduCodec {
    type Error = FrameError;

    fn encode(&mut self, pdu: &Pdu, dst: &mut BytesMut) -> Result<(), FrameError> {
        pdu.encode(dst);
        Ok(())
    }
}

impl Encoder<Pdu> for PduCodec {
    type Error = FrameError;

    fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), FrameError> {
        pdu.encode(dst);
        Ok(())
    }
}

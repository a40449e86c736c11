//! PDUs as JSON, for operators (`smppd pdu decode|encode`) and test fixtures.
//!
//! The JSON form is faithful: `encode(decode(bytes)) == bytes` for any accepted input.
//! - Text fields (C-Octet Strings) are JSON strings when they are UTF-8, else `{"hex": "..."}`.
//! - Octet fields (`short_message`, octet TLVs) are `{"text": "..."}` when they are plain
//!   printable text, else a hex string; input may use either form.
//! - TLVs are a list of `{tag, value}`, the value typed by the tag (a number, a string, an
//!   object), or `{tag, hex}` for octets that do not have their tag's usual shape.
//! - Missing body fields take their zero value; unknown ones are refused.

use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::hex;
use super::{
    COctetString, CommandId, CommandStatus, Pdu, ShortMessage, TimeString, TlvKind, TlvTag, Tlvs,
    TlvsBuilder,
};

/// A JSON document could not be turned into a PDU.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct JsonError(#[from] serde_json::Error);

impl Pdu {
    /// The PDU as a JSON value: `command`, `command_status`, `sequence_number`, `body`.
    pub fn to_json(&self) -> Value {
        // Serializing these types only fails for non-string map keys, which they do not have.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads the JSON form written by [`Pdu::to_json`].
    pub fn from_json(text: &str) -> Result<Pdu, JsonError> {
        Ok(serde_json::from_str(text)?)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrHex {
    Text(String),
    Hex { hex: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HexOrText {
    Hex(String),
    Text { text: String },
}

fn text_or_hex(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "hex": hex::encode(bytes) }),
    }
}

fn read_text_or_hex<E: serde::de::Error>(value: TextOrHex) -> Result<Bytes, E> {
    match value {
        TextOrHex::Text(text) => Ok(Bytes::from(text.into_bytes())),
        TextOrHex::Hex { hex } => hex::decode(&hex).map(Bytes::from).map_err(E::custom),
    }
}

fn read_hex_or_text<E: serde::de::Error>(value: HexOrText) -> Result<Bytes, E> {
    match value {
        HexOrText::Hex(hex) => hex::decode(&hex).map(Bytes::from).map_err(E::custom),
        HexOrText::Text { text } => Ok(Bytes::from(text.into_bytes())),
    }
}

impl<const MAX: usize> Serialize for COctetString<MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        text_or_hex(self.as_bytes()).serialize(s)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for COctetString<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = read_text_or_hex(TextOrHex::deserialize(d)?)?;
        COctetString::new(bytes).map_err(D::Error::custom)
    }
}

impl Serialize for TimeString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_c_octet_string().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TimeString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = read_text_or_hex(TextOrHex::deserialize(d)?)?;
        TimeString::new(bytes).map_err(D::Error::custom)
    }
}

/// Octets that read as plain text (printable ASCII, CR, LF) are shown as `{"text": ...}`, all
/// others as a hex string; both forms read back to the same octets.
fn octets_json(octets: &[u8]) -> Value {
    let printable = |b: &u8| matches!(b, 0x20..=0x7E | b'\r' | b'\n');
    if !octets.is_empty() && octets.iter().all(printable) {
        // All printable ASCII, hence UTF-8.
        json!({ "text": String::from_utf8_lossy(octets) })
    } else {
        Value::String(hex::encode(octets))
    }
}

impl Serialize for ShortMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        octets_json(self.as_bytes()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for ShortMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = read_hex_or_text(HexOrText::deserialize(d)?)?;
        ShortMessage::new(bytes).map_err(D::Error::custom)
    }
}

impl Serialize for CommandStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CommandStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(CommandStatus)
                .ok_or_else(|| D::Error::custom(format!("command_status {n} is not a u32"))),
            Value::String(s) => CommandStatus::parse(&s)
                .ok_or_else(|| D::Error::custom(format!("unknown command_status {s:?}"))),
            other => Err(D::Error::custom(format!(
                "command_status must be a name or a number, not {other}"
            ))),
        }
    }
}

impl Serialize for CommandId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{:08X}", self.0))
    }
}

impl<'de> Deserialize<'de> for CommandId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CommandId::parse(&text).ok_or_else(|| D::Error::custom(format!("bad command_id {text:?}")))
    }
}

/// `Bytes` as a hex string.
pub(crate) mod hex_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        read_hex_or_text(HexOrText::deserialize(d)?)
    }
}

fn tag_json(tag: TlvTag) -> Value {
    match tag.name() {
        Some(name) => Value::String(name.to_owned()),
        None => Value::String(format!("0x{:04X}", tag.0)),
    }
}

/// The typed JSON value of a TLV, or `None` when its octets do not have the canonical shape
/// (then it is written as hex, so that it still round-trips).
fn typed_value(kind: TlvKind, value: &[u8]) -> Option<Value> {
    Some(match (kind, value) {
        (TlvKind::U8, [v]) => json!(v),
        (TlvKind::U16, [a, b]) => json!(u16::from_be_bytes([*a, *b])),
        (TlvKind::U32, [a, b, c, d]) => json!(u32::from_be_bytes([*a, *b, *c, *d])),
        (TlvKind::NetworkErrorCode, [t, a, b]) => {
            json!({ "network_type": t, "error_code": u16::from_be_bytes([*a, *b]) })
        }
        (TlvKind::CString, [content @ .., 0]) if !content.contains(&0) => {
            Value::String(std::str::from_utf8(content).ok()?.to_owned())
        }
        (TlvKind::Octets, octets) => octets_json(octets),
        _ => return None,
    })
}

impl Serialize for Tlvs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<Value> = self
            .iter()
            .map(|tlv| match typed_value(tlv.tag.kind(), &tlv.value) {
                Some(value) => json!({ "tag": tag_json(tlv.tag), "value": value }),
                None => json!({ "tag": tag_json(tlv.tag), "hex": hex::encode(&tlv.value) }),
            })
            .collect();
        list.serialize(s)
    }
}

fn read_tlv(builder: TlvsBuilder, entry: Map<String, Value>) -> Result<TlvsBuilder, String> {
    let tag_text = entry
        .get("tag")
        .and_then(Value::as_str)
        .ok_or("a TLV needs a \"tag\": a spec name or a hex number")?;
    let tag = TlvTag::from_name(tag_text)
        .or_else(|| {
            let hex = tag_text.strip_prefix("0x")?;
            u16::from_str_radix(hex, 16).ok().map(TlvTag)
        })
        .ok_or_else(|| format!("unknown TLV tag {tag_text:?}"))?;
    let bad = |what: &str| format!("TLV {tag}: {what}");
    if let Some(raw) = entry.get("hex") {
        let raw = raw
            .as_str()
            .ok_or_else(|| bad("\"hex\" must be a string"))?;
        let octets = hex::decode(raw).map_err(|e| bad(&e.to_string()))?;
        return builder
            .octets(tag, &octets)
            .map_err(|e| bad(&e.to_string()));
    }
    let value = entry
        .get("value")
        .ok_or_else(|| bad("needs a \"value\" or a \"hex\""))?;
    let number = |max: u64| {
        value
            .as_u64()
            .filter(|n| *n <= max)
            .ok_or_else(|| bad(&format!("value must be a number up to {max}")))
    };
    match tag.kind() {
        TlvKind::U8 => Ok(builder.u8(tag, number(u8::MAX.into())? as u8)),
        TlvKind::U16 => Ok(builder.u16(tag, number(u16::MAX.into())? as u16)),
        TlvKind::U32 => Ok(builder.u32(tag, number(u32::MAX.into())? as u32)),
        TlvKind::CString => {
            let text = value
                .as_str()
                .ok_or_else(|| bad("value must be a string"))?;
            builder
                .c_string(tag, text.as_bytes())
                .map_err(|e| bad(&e.to_string()))
        }
        TlvKind::NetworkErrorCode => {
            let field = |name: &str, max: u64| {
                value
                    .get(name)
                    .and_then(Value::as_u64)
                    .filter(|n| *n <= max)
                    .ok_or_else(|| bad(&format!("value needs \"{name}\" up to {max}")))
            };
            let network_type = field("network_type", u8::MAX.into())? as u8;
            let error_code = field("error_code", u16::MAX.into())? as u16;
            Ok(builder.network_error_code(super::NetworkErrorCode {
                network_type,
                error_code,
            }))
        }
        TlvKind::Octets => {
            let octets = match value {
                Value::String(hex) => hex::decode(hex).map_err(|e| bad(&e.to_string()))?,
                Value::Object(map) => match map.get("text").and_then(Value::as_str) {
                    Some(text) => text.as_bytes().to_vec(),
                    None => return Err(bad("value must be a hex string or {\"text\": ...}")),
                },
                _ => return Err(bad("value must be a hex string or {\"text\": ...}")),
            };
            builder
                .octets(tag, &octets)
                .map_err(|e| bad(&e.to_string()))
        }
    }
}

impl<'de> Deserialize<'de> for Tlvs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<Map<String, Value>>::deserialize(d)?;
        let mut builder = TlvsBuilder::new();
        for entry in entries {
            builder = read_tlv(builder, entry).map_err(D::Error::custom)?;
        }
        Ok(builder.build())
    }
}

//! `command_id` (3.4 §5.1.2, Table 5-1).

use std::fmt;

/// An SMPP `command_id`. Values SMPP 3.4 does not define are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u32);

/// Bit 31 marks a response: a response id is its request id with this bit set (3.4 §3.2.1).
const RESPONSE_BIT: u32 = 0x8000_0000;

macro_rules! command_ids {
    ($( $name:ident = $val:literal, $wire:literal; )*) => {
        impl CommandId {
            $( #[doc = concat!("`", $wire, "`.")] pub const $name: CommandId = CommandId($val); )*

            /// The spec's name (`"submit_sm_resp"`), or `None` for an id SMPP 3.4 does not define.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($wire), )*
                    _ => None,
                }
            }

            /// The id with this spec name, e.g. `"deliver_sm"`.
            pub fn from_name(name: &str) -> Option<CommandId> {
                match name {
                    $( $wire => Some(CommandId($val)), )*
                    _ => None,
                }
            }
        }
    };
}

command_ids! {
    GENERIC_NACK = 0x8000_0000, "generic_nack";
    BIND_RECEIVER = 0x0000_0001, "bind_receiver";
    BIND_RECEIVER_RESP = 0x8000_0001, "bind_receiver_resp";
    BIND_TRANSMITTER = 0x0000_0002, "bind_transmitter";
    BIND_TRANSMITTER_RESP = 0x8000_0002, "bind_transmitter_resp";
    QUERY_SM = 0x0000_0003, "query_sm";
    QUERY_SM_RESP = 0x8000_0003, "query_sm_resp";
    SUBMIT_SM = 0x0000_0004, "submit_sm";
    SUBMIT_SM_RESP = 0x8000_0004, "submit_sm_resp";
    DELIVER_SM = 0x0000_0005, "deliver_sm";
    DELIVER_SM_RESP = 0x8000_0005, "deliver_sm_resp";
    UNBIND = 0x0000_0006, "unbind";
    UNBIND_RESP = 0x8000_0006, "unbind_resp";
    REPLACE_SM = 0x0000_0007, "replace_sm";
    REPLACE_SM_RESP = 0x8000_0007, "replace_sm_resp";
    CANCEL_SM = 0x0000_0008, "cancel_sm";
    CANCEL_SM_RESP = 0x8000_0008, "cancel_sm_resp";
    BIND_TRANSCEIVER = 0x0000_0009, "bind_transceiver";
    BIND_TRANSCEIVER_RESP = 0x8000_0009, "bind_transceiver_resp";
    OUTBIND = 0x0000_000B, "outbind";
    ENQUIRE_LINK = 0x0000_0015, "enquire_link";
    ENQUIRE_LINK_RESP = 0x8000_0015, "enquire_link_resp";
    SUBMIT_MULTI = 0x0000_0021, "submit_multi";
    SUBMIT_MULTI_RESP = 0x8000_0021, "submit_multi_resp";
    ALERT_NOTIFICATION = 0x0000_0102, "alert_notification";
    DATA_SM = 0x0000_0103, "data_sm";
    DATA_SM_RESP = 0x8000_0103, "data_sm_resp";
}

impl CommandId {
    /// True when bit 31 is set: this id names a response PDU.
    pub fn is_response(self) -> bool {
        self.0 & RESPONSE_BIT != 0
    }

    /// The response id that answers this request id. `None` for outbind and
    /// alert_notification, which have no response (3.4 §4.1.7, §4.12), and for responses.
    pub fn response(self) -> Option<CommandId> {
        match self {
            CommandId::OUTBIND | CommandId::ALERT_NOTIFICATION => None,
            id if id.is_response() => None,
            id => Some(CommandId(id.0 | RESPONSE_BIT)),
        }
    }

    /// Parses an id written by an operator: a spec name or a hex/decimal value.
    pub fn parse(text: &str) -> Option<CommandId> {
        let text = text.trim();
        CommandId::from_name(text).or_else(|| super::parse_u32(text).map(CommandId))
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "0x{:08X}", self.0),
        }
    }
}

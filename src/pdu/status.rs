//! `command_status` (3.4 §5.1.3): the outcome code of a response, and what to do about it.

use std::fmt;

/// How an ESME should treat a `command_status` that came back in a response to its request.
///
/// The spec defines only the names; the classes follow the house policy (DESIGN.md, "Default
/// error classification") and the reference's table. Carriers may override per code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// ESME_ROK: the request succeeded.
    Ok,
    /// The peer is overloaded: slow the bind down and resend on the same carrier; never a
    /// failure of the message.
    Throttle,
    /// A later retry, possibly on another bind or carrier, may succeed.
    Transient,
    /// Resending the same PDU fails the same way.
    Permanent,
    /// A problem of the session or its configuration (bind state, credentials), not of the
    /// message: fix the bind, do not hammer it.
    Session,
}

/// An SMPP `command_status` value. Unknown values are kept as they are, so they round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CommandStatus(pub u32);

macro_rules! statuses {
    ($( $name:ident = $val:literal, $class:ident, $doc:literal; )*) => {
        impl CommandStatus {
            $( #[doc = $doc] pub const $name: CommandStatus = CommandStatus($val); )*

            /// The spec's name (`"ESME_RTHROTTLED"`), or `None` for a value SMPP does not name.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// The value with this spec name, e.g. `"ESME_RSYSERR"`.
            pub fn from_name(name: &str) -> Option<CommandStatus> {
                match name {
                    $( stringify!($name) => Some(CommandStatus($val)), )*
                    _ => None,
                }
            }

            /// The default class of this status (see [`StatusClass`]). Values SMPP does not
            /// name, including the vendor range 0x400–0x4FF, are permanent.
            pub fn class(self) -> StatusClass {
                match self.0 {
                    $( $val => StatusClass::$class, )*
                    _ => StatusClass::Permanent,
                }
            }
        }
    };
}

statuses! {
    ESME_ROK = 0x0000_0000, Ok, "No error.";
    ESME_RINVMSGLEN = 0x0000_0001, Permanent, "Message length is invalid.";
    ESME_RINVCMDLEN = 0x0000_0002, Permanent, "command_length is invalid.";
    ESME_RINVCMDID = 0x0000_0003, Permanent, "Invalid command_id.";
    ESME_RINVBNDSTS = 0x0000_0004, Session, "Incorrect bind status for the given command.";
    ESME_RALYBND = 0x0000_0005, Session, "ESME already in bound state.";
    ESME_RINVPRTFLG = 0x0000_0006, Permanent, "Invalid priority_flag.";
    ESME_RINVREGDLVFLG = 0x0000_0007, Permanent, "Invalid registered_delivery flag.";
    ESME_RSYSERR = 0x0000_0008, Transient, "System error.";
    ESME_RINVSRCADR = 0x0000_000A, Permanent, "Invalid source address.";
    ESME_RINVDSTADR = 0x0000_000B, Permanent, "Invalid destination address.";
    ESME_RINVMSGID = 0x0000_000C, Permanent, "message_id is invalid.";
    ESME_RBINDFAIL = 0x0000_000D, Session, "Bind failed.";
    ESME_RINVPASWD = 0x0000_000E, Session, "Invalid password.";
    ESME_RINVSYSID = 0x0000_000F, Session, "Invalid system_id.";
    ESME_RCANCELFAIL = 0x0000_0011, Permanent, "cancel_sm failed.";
    ESME_RREPLACEFAIL = 0x0000_0013, Permanent, "replace_sm failed.";
    ESME_RMSGQFUL = 0x0000_0014, Throttle, "Message queue full.";
    ESME_RINVSERTYP = 0x0000_0015, Permanent, "Invalid service_type.";
    ESME_RINVNUMDESTS = 0x0000_0033, Permanent, "Invalid number of destinations.";
    ESME_RINVDLNAME = 0x0000_0034, Permanent, "Invalid distribution list name.";
    ESME_RINVDESTFLAG = 0x0000_0040, Permanent, "Destination flag is invalid (submit_multi).";
    ESME_RINVSUBREP = 0x0000_0042, Permanent, "Invalid 'submit with replace' request.";
    ESME_RINVESMCLASS = 0x0000_0043, Permanent, "Invalid esm_class field data.";
    ESME_RCNTSUBDL = 0x0000_0044, Permanent, "Cannot submit to distribution list.";
    ESME_RSUBMITFAIL = 0x0000_0045, Transient, "submit_sm or submit_multi failed.";
    ESME_RINVSRCTON = 0x0000_0048, Permanent, "Invalid source address TON.";
    ESME_RINVSRCNPI = 0x0000_0049, Permanent, "Invalid source address NPI.";
    ESME_RINVDSTTON = 0x0000_0050, Permanent, "Invalid destination address TON.";
    ESME_RINVDSTNPI = 0x0000_0051, Permanent, "Invalid destination address NPI.";
    ESME_RINVSYSTYP = 0x0000_0053, Session, "Invalid system_type field.";
    ESME_RINVREPFLAG = 0x0000_0054, Permanent, "Invalid replace_if_present flag.";
    ESME_RINVNUMMSGS = 0x0000_0055, Permanent, "Invalid number of messages.";
    ESME_RTHROTTLED = 0x0000_0058, Throttle, "Throttling error: the ESME exceeded its allowed message limits.";
    ESME_RINVSCHED = 0x0000_0061, Permanent, "Invalid scheduled delivery time.";
    ESME_RINVEXPIRY = 0x0000_0062, Permanent, "Invalid message validity period (expiry time).";
    ESME_RINVDFTMSGID = 0x0000_0063, Permanent, "Predefined message invalid or not found.";
    ESME_RX_T_APPN = 0x0000_0064, Transient, "ESME receiver temporary application error.";
    ESME_RX_P_APPN = 0x0000_0065, Permanent, "ESME receiver permanent application error.";
    ESME_RX_R_APPN = 0x0000_0066, Permanent, "ESME receiver reject message error.";
    ESME_RQUERYFAIL = 0x0000_0067, Permanent, "query_sm request failed.";
    ESME_RINVOPTPARSTREAM = 0x0000_00C0, Permanent, "Error in the optional part of the PDU body (5.0: ESME_RINVTLVSTREAM).";
    ESME_ROPTPARNOTALLWD = 0x0000_00C1, Permanent, "Optional parameter not allowed (5.0: ESME_RTLVNOTALLWD).";
    ESME_RINVPARLEN = 0x0000_00C2, Permanent, "Invalid parameter length (5.0: ESME_RINVTLVLEN).";
    ESME_RMISSINGOPTPARAM = 0x0000_00C3, Permanent, "Expected optional parameter missing (5.0: ESME_RMISSINGTLV).";
    ESME_RINVOPTPARAMVAL = 0x0000_00C4, Permanent, "Invalid optional parameter value (5.0: ESME_RINVTLVVAL).";
    ESME_RDELIVERYFAILURE = 0x0000_00FE, Permanent, "Delivery failure (data_sm_resp in transaction mode); see delivery_failure_reason.";
    ESME_RUNKNOWNERR = 0x0000_00FF, Permanent, "Unknown error.";
    ESME_RSERTYPUNAUTH = 0x0000_0100, Permanent, "SMPP 5.0: not authorised to use this service_type.";
    ESME_RPROHIBITED = 0x0000_0101, Permanent, "SMPP 5.0: operation prohibited.";
    ESME_RSERTYPUNAVAIL = 0x0000_0102, Transient, "SMPP 5.0: service_type unavailable.";
    ESME_RSERTYPDENIED = 0x0000_0103, Permanent, "SMPP 5.0: service_type denied.";
    ESME_RINVDCS = 0x0000_0104, Permanent, "SMPP 5.0: invalid data_coding scheme.";
    ESME_RINVSRCADDRSUBUNIT = 0x0000_0105, Permanent, "SMPP 5.0: source address subunit invalid.";
    ESME_RINVDSTADDRSUBUNIT = 0x0000_0106, Permanent, "SMPP 5.0: destination address subunit invalid.";
    ESME_RINVBCASTFREQINT = 0x0000_0107, Permanent, "SMPP 5.0: broadcast frequency interval invalid.";
    ESME_RINVBCASTALIAS_NAME = 0x0000_0108, Permanent, "SMPP 5.0: broadcast alias name invalid.";
    ESME_RINVBCASTAREAFMT = 0x0000_0109, Permanent, "SMPP 5.0: broadcast area format invalid.";
    ESME_RINVNUMBCAST_AREAS = 0x0000_010A, Permanent, "SMPP 5.0: number of broadcast areas invalid.";
    ESME_RINVBCASTCNTTYPE = 0x0000_010B, Permanent, "SMPP 5.0: broadcast content type invalid.";
    ESME_RINVBCASTMSGCLASS = 0x0000_010C, Permanent, "SMPP 5.0: broadcast message class invalid.";
    ESME_RBCASTFAIL = 0x0000_010D, Permanent, "SMPP 5.0: broadcast_sm failed.";
    ESME_RBCASTQUERYFAIL = 0x0000_010E, Permanent, "SMPP 5.0: query_broadcast_sm failed.";
    ESME_RBCASTCANCELFAIL = 0x0000_010F, Permanent, "SMPP 5.0: cancel_broadcast_sm failed.";
    ESME_RINVBCAST_REP = 0x0000_0110, Permanent, "SMPP 5.0: number of repeated broadcasts invalid.";
    ESME_RINVBCASTSRVGRP = 0x0000_0111, Permanent, "SMPP 5.0: broadcast service group invalid.";
    ESME_RINVBCASTCHANIND = 0x0000_0112, Permanent, "SMPP 5.0: broadcast channel indicator invalid.";
}

impl CommandStatus {
    /// True for ESME_ROK.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Parses a status written by an operator: a spec name (`ESME_RTHROTTLED`), a hex value
    /// (`0x58`) or a decimal value (`88`).
    pub fn parse(text: &str) -> Option<CommandStatus> {
        let text = text.trim();
        CommandStatus::from_name(text).or_else(|| super::parse_u32(text).map(CommandStatus))
    }
}

impl fmt::Debug for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "0x{:08X}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_the_house_table() {
        assert_eq!(CommandStatus::ESME_ROK.class(), StatusClass::Ok);
        assert_eq!(
            CommandStatus::ESME_RTHROTTLED.class(),
            StatusClass::Throttle
        );
        assert_eq!(CommandStatus::ESME_RMSGQFUL.class(), StatusClass::Throttle);
        for transient in [0x08, 0x45, 0x64] {
            assert_eq!(CommandStatus(transient).class(), StatusClass::Transient);
        }
        for permanent in [0x01, 0x0A, 0x0B, 0x65, 0x400, 0x4FF, 0xDEAD] {
            assert_eq!(CommandStatus(permanent).class(), StatusClass::Permanent);
        }
        for session in [0x04, 0x05, 0x0D, 0x0E, 0x0F, 0x53] {
            assert_eq!(CommandStatus(session).class(), StatusClass::Session);
        }
    }

    #[test]
    fn names_round_trip_and_unknown_values_print_as_hex() {
        assert_eq!(CommandStatus(0x58).name(), Some("ESME_RTHROTTLED"));
        assert_eq!(
            CommandStatus::from_name("ESME_RINVPASWD"),
            Some(CommandStatus(0x0E))
        );
        assert_eq!(CommandStatus(0x0400).to_string(), "0x00000400");
        assert_eq!(CommandStatus::parse("0x58"), Some(CommandStatus(0x58)));
        assert_eq!(CommandStatus::parse("88"), Some(CommandStatus(0x58)));
        assert_eq!(CommandStatus::parse("nonsense"), None);
    }
}

//! The mandatory bodies of SMPP 3.4 PDUs (3.4 §4), in spec field order.
//!
//! Each body is declared once, as its field list; reading and writing follow from that list, so
//! the order can only be wrong in one place. Every body ends with its TLV section: 3.4 allows
//! TLVs only in some PDUs, but real peers (and SMPP 5.0) add them elsewhere, and keeping them is
//! what lets any accepted input re-encode to its own bytes.

use serde::{Deserialize, Serialize};

use super::status::CommandStatus;
use super::tlv::Tlvs;
use super::types::{
    COctetString, DataCoding, EsmClass, FieldError, InterfaceVersion, MessageState, Npi,
    RegisteredDelivery, ShortMessage, TimeString, Ton,
};
use super::wire::{Fail, FailReason, Field, Reader, WireField, Writer};

macro_rules! bodies {
    ($(
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $status:ident, )*
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// Reads the fields in spec order into `self`, in place: a decoded PDU is built
            /// where it will live instead of being assembled and moved.
            #[inline(always)]
            pub(crate) fn read_into(&mut self, r: &mut Reader<'_>) -> Result<(), Fail> {
                $( self.$field = <$ty as WireField>::read(
                    r,
                    Field { name: stringify!($field), status: CommandStatus::$status },
                )?; )*
                Ok(())
            }

            pub(crate) fn wire_len(&self) -> usize {
                0 $( + WireField::wire_len(&self.$field) )*
            }

            pub(crate) fn put(&self, w: &mut Writer<'_>) {
                $( WireField::put(&self.$field, w); )*
            }
        }
    )*};
}

bodies! {
    /// bind_transmitter, bind_receiver and bind_transceiver (3.4 §4.1.1, §4.1.3, §4.1.5).
    Bind {
        /// The ESME's identity (login).
        system_id: COctetString<16> = ESME_RINVSYSID,
        /// The password.
        password: COctetString<9> = ESME_RINVPASWD,
        /// The kind of ESME; often empty.
        system_type: COctetString<13> = ESME_RINVSYSTYP,
        /// The SMPP version the ESME speaks (0x34).
        interface_version: InterfaceVersion = ESME_RINVCMDLEN,
        /// TON of the addresses served.
        addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the addresses served.
        addr_npi: Npi = ESME_RINVSRCNPI,
        /// The addresses served (a regular expression); usually empty.
        address_range: COctetString<41> = ESME_RINVSRCADR,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// The body of bind_*_resp (3.4 §4.1.2): the SMSC's identity and `sc_interface_version`.
    BindResp {
        /// The SMSC's identity.
        system_id: COctetString<16> = ESME_RINVSYSID,
        /// Optional parameters (`sc_interface_version`).
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// outbind (3.4 §4.1.7): the SMSC asks the ESME to bind.
    Outbind {
        /// The SMSC's identity.
        system_id: COctetString<16> = ESME_RINVSYSID,
        /// The password.
        password: COctetString<9> = ESME_RINVPASWD,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// submit_sm (3.4 §4.4.1), and deliver_sm (§4.6.1), which has the same layout.
    SubmitSm {
        /// The SMS application service; empty for the default.
        service_type: COctetString<6> = ESME_RINVSERTYP,
        /// TON of the source address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the source address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The source address (for a receipt, the original destination).
        source_addr: COctetString<21> = ESME_RINVSRCADR,
        /// TON of the destination address.
        dest_addr_ton: Ton = ESME_RINVDSTTON,
        /// NPI of the destination address.
        dest_addr_npi: Npi = ESME_RINVDSTNPI,
        /// The destination address (for a receipt, the original source).
        destination_addr: COctetString<21> = ESME_RINVDSTADR,
        /// Messaging mode, message type and GSM features.
        esm_class: EsmClass = ESME_RINVESMCLASS,
        /// GSM TP-PID.
        protocol_id: u8 = ESME_RINVCMDLEN,
        /// Priority 0–3.
        priority_flag: u8 = ESME_RINVPRTFLG,
        /// When to deliver; empty for now.
        schedule_delivery_time: TimeString = ESME_RINVSCHED,
        /// Until when to try; empty for the SMSC's default.
        validity_period: TimeString = ESME_RINVEXPIRY,
        /// Which receipts are wanted.
        registered_delivery: RegisteredDelivery = ESME_RINVREGDLVFLG,
        /// Replace an earlier message with the same source, destination and service_type.
        replace_if_present_flag: u8 = ESME_RINVREPFLAG,
        /// The encoding of the user data.
        data_coding: DataCoding = ESME_RINVCMDLEN,
        /// A canned message index; 0 for none.
        sm_default_msg_id: u8 = ESME_RINVDFTMSGID,
        /// `sm_length` and the user data.
        short_message: ShortMessage = ESME_RINVMSGLEN,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// The body of submit_sm_resp, deliver_sm_resp and data_sm_resp: a message id and, for
    /// data_sm_resp, TLVs (3.4 §4.4.2, §4.6.2, §4.7.2).
    SmResp {
        /// The SMSC's id for the message (unused, empty, in deliver_sm_resp).
        message_id: COctetString<65> = ESME_RINVMSGID,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// submit_multi (3.4 §4.5.1).
    SubmitMulti {
        /// The SMS application service.
        service_type: COctetString<6> = ESME_RINVSERTYP,
        /// TON of the source address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the source address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The source address.
        source_addr: COctetString<21> = ESME_RINVSRCADR,
        /// `number_of_dests` and the destinations.
        dest_addresses: DestList = ESME_RINVNUMDESTS,
        /// Messaging mode, message type and GSM features.
        esm_class: EsmClass = ESME_RINVESMCLASS,
        /// GSM TP-PID.
        protocol_id: u8 = ESME_RINVCMDLEN,
        /// Priority 0–3.
        priority_flag: u8 = ESME_RINVPRTFLG,
        /// When to deliver.
        schedule_delivery_time: TimeString = ESME_RINVSCHED,
        /// Until when to try.
        validity_period: TimeString = ESME_RINVEXPIRY,
        /// Which receipts are wanted.
        registered_delivery: RegisteredDelivery = ESME_RINVREGDLVFLG,
        /// Reserved in submit_multi; 0.
        replace_if_present_flag: u8 = ESME_RINVREPFLAG,
        /// The encoding of the user data.
        data_coding: DataCoding = ESME_RINVCMDLEN,
        /// A canned message index.
        sm_default_msg_id: u8 = ESME_RINVDFTMSGID,
        /// `sm_length` and the user data.
        short_message: ShortMessage = ESME_RINVMSGLEN,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// The body of submit_multi_resp (3.4 §4.5.2).
    SubmitMultiResp {
        /// The SMSC's id for the message.
        message_id: COctetString<65> = ESME_RINVMSGID,
        /// `no_unsuccess` and the destinations that failed.
        unsuccess_smes: UnsuccessList = ESME_RINVNUMDESTS,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// data_sm (3.4 §4.7.1): user data travels in `message_payload`; addresses are C65 here.
    DataSm {
        /// The SMS application service.
        service_type: COctetString<6> = ESME_RINVSERTYP,
        /// TON of the source address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the source address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The source address.
        source_addr: COctetString<65> = ESME_RINVSRCADR,
        /// TON of the destination address.
        dest_addr_ton: Ton = ESME_RINVDSTTON,
        /// NPI of the destination address.
        dest_addr_npi: Npi = ESME_RINVDSTNPI,
        /// The destination address.
        destination_addr: COctetString<65> = ESME_RINVDSTADR,
        /// Messaging mode, message type and GSM features.
        esm_class: EsmClass = ESME_RINVESMCLASS,
        /// Which receipts are wanted.
        registered_delivery: RegisteredDelivery = ESME_RINVREGDLVFLG,
        /// The encoding of the user data.
        data_coding: DataCoding = ESME_RINVCMDLEN,
        /// Optional parameters, `message_payload` among them.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// query_sm (3.4 §4.8.1).
    QuerySm {
        /// The SMSC's id of the message asked about.
        message_id: COctetString<65> = ESME_RINVMSGID,
        /// TON of the original source address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the original source address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The original source address.
        source_addr: COctetString<21> = ESME_RINVSRCADR,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// The body of query_sm_resp (3.4 §4.8.2).
    QuerySmResp {
        /// The SMSC's id of the message.
        message_id: COctetString<65> = ESME_RINVMSGID,
        /// When the message reached its final state; empty if it has not.
        final_date: TimeString = ESME_RINVCMDLEN,
        /// The message's state.
        message_state: MessageState = ESME_RINVCMDLEN,
        /// A network-specific error code.
        error_code: u8 = ESME_RINVCMDLEN,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// cancel_sm (3.4 §4.9.1).
    CancelSm {
        /// The SMS application service.
        service_type: COctetString<6> = ESME_RINVSERTYP,
        /// The SMSC's id of the message; empty to cancel all matching messages.
        message_id: COctetString<65> = ESME_RINVMSGID,
        /// TON of the source address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the source address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The source address.
        source_addr: COctetString<21> = ESME_RINVSRCADR,
        /// TON of the destination address.
        dest_addr_ton: Ton = ESME_RINVDSTTON,
        /// NPI of the destination address.
        dest_addr_npi: Npi = ESME_RINVDSTNPI,
        /// The destination address.
        destination_addr: COctetString<21> = ESME_RINVDSTADR,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// replace_sm (3.4 §4.10.1). It has no service_type (reference §9).
    ReplaceSm {
        /// The SMSC's id of the message to replace.
        message_id: COctetString<65> = ESME_RINVMSGID,
        /// TON of the original source address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the original source address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The original source address.
        source_addr: COctetString<21> = ESME_RINVSRCADR,
        /// New delivery time; empty keeps the original.
        schedule_delivery_time: TimeString = ESME_RINVSCHED,
        /// New validity; empty keeps the original.
        validity_period: TimeString = ESME_RINVEXPIRY,
        /// Which receipts are wanted.
        registered_delivery: RegisteredDelivery = ESME_RINVREGDLVFLG,
        /// A canned message index.
        sm_default_msg_id: u8 = ESME_RINVDFTMSGID,
        /// `sm_length` and the new user data.
        short_message: ShortMessage = ESME_RINVMSGLEN,
        /// Optional parameters.
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }

    /// alert_notification (3.4 §4.12.1): a handset with a pending-delivery flag is reachable.
    AlertNotification {
        /// TON of the handset's address.
        source_addr_ton: Ton = ESME_RINVSRCTON,
        /// NPI of the handset's address.
        source_addr_npi: Npi = ESME_RINVSRCNPI,
        /// The handset's address.
        source_addr: COctetString<65> = ESME_RINVSRCADR,
        /// TON of the ESME's address.
        esme_addr_ton: Ton = ESME_RINVDSTTON,
        /// NPI of the ESME's address.
        esme_addr_npi: Npi = ESME_RINVDSTNPI,
        /// The ESME's address.
        esme_addr: COctetString<65> = ESME_RINVDSTADR,
        /// Optional parameters (`ms_availability_status`).
        tlvs: Tlvs = ESME_RINVOPTPARSTREAM,
    }
}

/// deliver_sm has the layout of submit_sm (3.4 §4.6.1).
pub type DeliverSm = SubmitSm;

/// One destination of a submit_multi (3.4 §4.5.1.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DestAddress {
    /// `dest_flag` 1: an SME address.
    Sme {
        /// TON.
        dest_addr_ton: Ton,
        /// NPI.
        dest_addr_npi: Npi,
        /// The address.
        destination_addr: COctetString<21>,
    },
    /// `dest_flag` 2: a distribution list held by the SMSC.
    DistributionList {
        /// The list's name.
        dl_name: COctetString<21>,
    },
}

/// The destinations of a submit_multi: at most 254 (`number_of_dests`, 3.4 §5.2.24).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct DestList(Vec<DestAddress>);

impl DestList {
    /// The most destinations one submit_multi may carry.
    pub const MAX: usize = 254;

    /// Checks the count.
    pub fn new(dests: Vec<DestAddress>) -> Result<Self, FieldError> {
        if dests.len() > Self::MAX {
            return Err(FieldError::TooLong {
                len: dests.len(),
                max: Self::MAX,
            });
        }
        Ok(DestList(dests))
    }

    /// The destinations.
    pub fn as_slice(&self) -> &[DestAddress] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DestList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DestList::new(Vec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl WireField for DestList {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        let count = usize::from(r.u8(field)?);
        if count > Self::MAX {
            return Err(Fail {
                field: field.name,
                status: field.status,
                reason: FailReason::BadValue,
            });
        }
        let mut dests = Vec::with_capacity(count);
        for _ in 0..count {
            let flag_field = Field {
                name: "dest_flag",
                status: CommandStatus::ESME_RINVDESTFLAG,
            };
            let addr_field = Field {
                name: "destination_addr",
                status: CommandStatus::ESME_RINVDSTADR,
            };
            dests.push(match r.u8(flag_field)? {
                1 => DestAddress::Sme {
                    dest_addr_ton: Ton::read(
                        r,
                        Field {
                            name: "dest_addr_ton",
                            status: CommandStatus::ESME_RINVDSTTON,
                        },
                    )?,
                    dest_addr_npi: Npi::read(
                        r,
                        Field {
                            name: "dest_addr_npi",
                            status: CommandStatus::ESME_RINVDSTNPI,
                        },
                    )?,
                    destination_addr: COctetString::read(r, addr_field)?,
                },
                2 => DestAddress::DistributionList {
                    dl_name: COctetString::read(
                        r,
                        Field {
                            name: "dl_name",
                            status: CommandStatus::ESME_RINVDLNAME,
                        },
                    )?,
                },
                _ => {
                    return Err(Fail {
                        field: flag_field.name,
                        status: flag_field.status,
                        reason: FailReason::BadValue,
                    });
                }
            });
        }
        Ok(DestList(dests))
    }

    fn wire_len(&self) -> usize {
        1 + self
            .0
            .iter()
            .map(|dest| match dest {
                DestAddress::Sme {
                    destination_addr, ..
                } => 3 + destination_addr.wire_len(),
                DestAddress::DistributionList { dl_name } => 1 + dl_name.wire_len(),
            })
            .sum::<usize>()
    }

    fn put(&self, w: &mut Writer<'_>) {
        // The type keeps the count within 254.
        w.u8(self.0.len() as u8);
        for dest in &self.0 {
            match dest {
                DestAddress::Sme {
                    dest_addr_ton,
                    dest_addr_npi,
                    destination_addr,
                } => {
                    w.u8(1);
                    dest_addr_ton.put(w);
                    dest_addr_npi.put(w);
                    destination_addr.put(w);
                }
                DestAddress::DistributionList { dl_name } => {
                    w.u8(2);
                    dl_name.put(w);
                }
            }
        }
    }
}

/// A destination a submit_multi could not be sent to (3.4 §4.5.2.1).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnsuccessSme {
    /// TON.
    pub dest_addr_ton: Ton,
    /// NPI.
    pub dest_addr_npi: Npi,
    /// The address.
    pub destination_addr: COctetString<21>,
    /// Why it failed.
    pub error_status_code: CommandStatus,
}

/// The failed destinations of a submit_multi_resp: at most 255 (`no_unsuccess` is one octet).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct UnsuccessList(Vec<UnsuccessSme>);

impl UnsuccessList {
    /// The most entries `no_unsuccess` can count.
    pub const MAX: usize = 255;

    /// Checks the count.
    pub fn new(entries: Vec<UnsuccessSme>) -> Result<Self, FieldError> {
        if entries.len() > Self::MAX {
            return Err(FieldError::TooLong {
                len: entries.len(),
                max: Self::MAX,
            });
        }
        Ok(UnsuccessList(entries))
    }

    /// The entries.
    pub fn as_slice(&self) -> &[UnsuccessSme] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for UnsuccessList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UnsuccessList::new(Vec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl WireField for UnsuccessList {
    fn read(r: &mut Reader<'_>, field: Field) -> Result<Self, Fail> {
        let count = usize::from(r.u8(field)?);
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(UnsuccessSme {
                dest_addr_ton: Ton::read(
                    r,
                    Field {
                        name: "dest_addr_ton",
                        status: CommandStatus::ESME_RINVDSTTON,
                    },
                )?,
                dest_addr_npi: Npi::read(
                    r,
                    Field {
                        name: "dest_addr_npi",
                        status: CommandStatus::ESME_RINVDSTNPI,
                    },
                )?,
                destination_addr: COctetString::read(
                    r,
                    Field {
                        name: "destination_addr",
                        status: CommandStatus::ESME_RINVDSTADR,
                    },
                )?,
                error_status_code: CommandStatus::read(
                    r,
                    Field {
                        name: "error_status_code",
                        status: CommandStatus::ESME_RINVCMDLEN,
                    },
                )?,
            });
        }
        Ok(UnsuccessList(entries))
    }

    fn wire_len(&self) -> usize {
        1 + self
            .0
            .iter()
            .map(|e| 6 + e.destination_addr.wire_len())
            .sum::<usize>()
    }

    fn put(&self, w: &mut Writer<'_>) {
        // The type keeps the count within 255.
        w.u8(self.0.len() as u8);
        for entry in &self.0 {
            entry.dest_addr_ton.put(w);
            entry.dest_addr_npi.put(w);
            entry.destination_addr.put(w);
            entry.error_status_code.put(w);
        }
    }
}

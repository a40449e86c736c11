//! What one bind is opened with: credentials, bind type, window and timers.

use std::time::Duration;

use crate::pdu::{Bind, COctetString, CommandId, InterfaceVersion, MAX_SEQUENCE, Npi, Ton};

/// Which bind the ESME asks for (3.4 §2.2, §4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BindType {
    /// bind_transmitter: the ESME submits; the SMSC delivers nothing on this bind (BOUND_TX).
    Transmitter,
    /// bind_receiver: the SMSC delivers; the ESME submits nothing on this bind (BOUND_RX).
    Receiver,
    /// bind_transceiver: both directions on one connection (BOUND_TRX, new in 3.4).
    #[default]
    Transceiver,
}

impl BindType {
    /// The bind request's command_id.
    pub fn command_id(self) -> CommandId {
        match self {
            BindType::Transmitter => CommandId::BIND_TRANSMITTER,
            BindType::Receiver => CommandId::BIND_RECEIVER,
            BindType::Transceiver => CommandId::BIND_TRANSCEIVER,
        }
    }

    /// The name used in logs and metric labels: `"transmitter"`, `"receiver"`, `"transceiver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindType::Transmitter => "transmitter",
            BindType::Receiver => "receiver",
            BindType::Transceiver => "transceiver",
        }
    }

    /// True if the ESME may send this request on this bind (3.4 Table 2-1).
    ///
    /// data_sm follows the 5.0 matrix (ESME to SMSC only on TX and TRX binds), which every
    /// 3.4 SMSC accepts. replace_sm is allowed on TRX although 3.4 lists it for TX only: 5.0
    /// allows it and an SMSC that disagrees answers ESME_RINVBNDSTS, which is reported like
    /// any other rejection. A command SMPP does not define is a vendor extension the session
    /// cannot judge, so it passes on any bind.
    pub fn may_send(self, command_id: CommandId) -> bool {
        match command_id {
            CommandId::SUBMIT_SM
            | CommandId::SUBMIT_MULTI
            | CommandId::DATA_SM
            | CommandId::QUERY_SM
            | CommandId::CANCEL_SM
            | CommandId::REPLACE_SM => self != BindType::Receiver,
            id => id.name().is_none() && !id.is_response(),
        }
    }

    /// True if the SMSC may send this request on this bind (3.4 Table 2-1; data_sm per the
    /// 5.0 matrix, SMSC to ESME only on RX and TRX binds).
    pub fn may_receive(self, command_id: CommandId) -> bool {
        match command_id {
            CommandId::DELIVER_SM | CommandId::DATA_SM | CommandId::ALERT_NOTIFICATION => {
                self != BindType::Transmitter
            }
            _ => false,
        }
    }
}

/// Everything one bind is opened with. Build it with struct update syntax over
/// [`SessionConfig::default`]; every default is a `DEFAULT_*` constant documented below.
///
/// The string fields are the codec's length-checked types, so a config that exists is one
/// whose bind PDU encodes. A duration of zero turns the timers documented as optional off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Which bind to ask for. Default: transceiver, so one connection carries submits and
    /// receipts.
    pub bind_type: BindType,
    /// Our login (3.4 §4.1.1 `system_id`, at most 15 characters). Default: empty.
    pub system_id: COctetString<16>,
    /// Our password (at most 8 characters). Default: empty.
    pub password: COctetString<9>,
    /// The kind of ESME (at most 12 characters); most carriers want it empty. Default: empty.
    pub system_type: COctetString<13>,
    /// The version we bind with. Default: 0x34, which is also what tells the SMSC we accept
    /// TLVs (3.4 §3.4).
    pub interface_version: InterfaceVersion,
    /// TON of the addresses this bind serves. Default: 0 (unknown).
    pub addr_ton: Ton,
    /// NPI of the addresses this bind serves. Default: 0 (unknown).
    pub addr_npi: Npi,
    /// The addresses this bind serves, a regular expression (3.4 Appendix A); usually empty.
    /// Default: empty.
    pub address_range: COctetString<41>,
    /// How many of our requests may await a response at once. Default:
    /// [`Self::DEFAULT_WINDOW`]. A value of 0 is read as 1. enquire_link and unbind are sent
    /// outside the window: they are needed exactly when the window is stuck.
    pub window: usize,
    /// How long to wait for bind_*_resp before giving up. Default: [`Self::DEFAULT_BIND_TIMEOUT`].
    pub bind_timeout: Duration,
    /// How long each of our requests may wait for its response before it is reported timed
    /// out (in doubt). Also the time an enquire_link has to be answered, and the longest a
    /// graceful unbind waits for the window to drain. Default:
    /// [`Self::DEFAULT_RESPONSE_TIMEOUT`].
    pub response_timeout: Duration,
    /// Send enquire_link when nothing has been received for this long (3.4 §2.9
    /// enquire_link_timer). Zero turns it off. Default: [`Self::DEFAULT_ENQUIRE_LINK_INTERVAL`].
    pub enquire_link_interval: Duration,
    /// Unbind when no PDU other than enquire_link and its response has gone either way for
    /// this long (3.4 §2.9 inactivity_timer). Zero turns it off. Default: off
    /// ([`Self::DEFAULT_INACTIVITY_TIMEOUT`]): a carrier bind is kept open while idle, and
    /// enquire_link already proves the link.
    pub inactivity_timeout: Duration,
    /// How long to wait for unbind_resp after sending unbind before closing anyway. Default:
    /// [`Self::DEFAULT_UNBIND_TIMEOUT`].
    pub unbind_timeout: Duration,
    /// How many deliver_sm/data_sm from the SMSC may await the application's answer. Past it
    /// the session answers ESME_RX_T_APPN itself, so the SMSC keeps the message and retries
    /// later. Default: [`Self::DEFAULT_MAX_PENDING_INBOUND`].
    pub max_pending_inbound: usize,
    /// How many timed-out requests are remembered so that a late response is still reported
    /// with its token (and their sequence numbers kept out of use); the oldest is forgotten
    /// first. Zero remembers none. Default: [`Self::DEFAULT_LATE_RESPONSE_MEMORY`].
    pub late_response_memory: usize,
    /// The sequence number of the bind, the first request of the session; later requests
    /// count up from it and wrap from 0x7FFFFFFF to 1 (3.4 §5.1.4). Default: 1, as the spec
    /// recommends. Values outside 1..=0x7FFFFFFF are read as 1.
    pub first_sequence_number: u32,
}

impl SessionConfig {
    /// 10 outstanding requests: the 3.4 recommendation (§2.5.2, §2.6.2 notes), and what Kannel
    /// and most carriers' documentation use.
    pub const DEFAULT_WINDOW: usize = 10;
    /// 10 s for bind_*_resp: long enough for an SMSC that checks credentials against a slow
    /// backend, short enough that a dead endpoint is retried soon (smppex uses 10 s).
    pub const DEFAULT_BIND_TIMEOUT: Duration = Duration::from_secs(10);
    /// 30 s for each response: well above a healthy SMSC's latency (tens of ms), and half of
    /// Kannel's 60 s so an in-doubt part is resolved sooner.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
    /// 30 s between link checks when idle (Kannel, smppex and Rusmpp all use 30 s).
    pub const DEFAULT_ENQUIRE_LINK_INTERVAL: Duration = Duration::from_secs(30);
    /// Off.
    pub const DEFAULT_INACTIVITY_TIMEOUT: Duration = Duration::ZERO;
    /// 5 s for unbind_resp: the SMSC answers at once or not at all, and shutdown should not
    /// wait long on a peer that is going away anyway.
    pub const DEFAULT_UNBIND_TIMEOUT: Duration = Duration::from_secs(5);
    /// 100 inbound requests awaiting the application: ten times the usual SMSC window, so a
    /// slow store commit does not turn receipts away.
    pub const DEFAULT_MAX_PENDING_INBOUND: usize = 100;
    /// 1024 timed-out requests remembered for late responses.
    pub const DEFAULT_LATE_RESPONSE_MEMORY: usize = 1024;

    /// The bind request this config sends (3.4 §4.1.1).
    pub fn bind_body(&self) -> Bind {
        Bind {
            system_id: self.system_id,
            password: self.password,
            system_type: self.system_type,
            interface_version: self.interface_version,
            addr_ton: self.addr_ton,
            addr_npi: self.addr_npi,
            address_range: self.address_range,
            tlvs: Default::default(),
        }
    }

    /// The window, at least 1.
    pub(super) fn effective_window(&self) -> usize {
        self.window.max(1)
    }

    /// The first sequence number, inside 1..=0x7FFFFFFF.
    pub(super) fn effective_first_sequence(&self) -> u32 {
        match self.first_sequence_number {
            n @ 1..=MAX_SEQUENCE => n,
            _ => 1,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            bind_type: BindType::default(),
            system_id: COctetString::empty(),
            password: COctetString::empty(),
            system_type: COctetString::empty(),
            interface_version: InterfaceVersion::V34,
            addr_ton: Ton::UNKNOWN,
            addr_npi: Npi::UNKNOWN,
            address_range: COctetString::empty(),
            window: Self::DEFAULT_WINDOW,
            bind_timeout: Self::DEFAULT_BIND_TIMEOUT,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            enquire_link_interval: Self::DEFAULT_ENQUIRE_LINK_INTERVAL,
            inactivity_timeout: Self::DEFAULT_INACTIVITY_TIMEOUT,
            unbind_timeout: Self::DEFAULT_UNBIND_TIMEOUT,
            max_pending_inbound: Self::DEFAULT_MAX_PENDING_INBOUND,
            late_response_memory: Self::DEFAULT_LATE_RESPONSE_MEMORY,
            first_sequence_number: 1,
        }
    }
}

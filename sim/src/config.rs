//! The simulator's configuration: accounts, receipts and faults. Every default is here.
//!
//! Read from TOML (`smsc-sim --config sim.toml`) or built in code for in-process tests. Faults
//! can be changed while it runs (`POST /faults`, or [`crate::SimHandle::set_faults`]).

use serde::{Deserialize, Serialize};
use smppd::pdu::CommandStatus;
use smppd::sms::{CarrierTextOptions, DefaultAlphabet};

use crate::ids::MessageIdFormat;

/// The whole simulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// The system_id the simulator gives in bind responses. Default `"SMSC-SIM"`.
    pub system_id: String,
    /// The ESME accounts it accepts. Default: none (every bind is refused).
    pub accounts: Vec<AccountConfig>,
    /// How message ids look. Default hex.
    pub message_id_format: MessageIdFormat,
    /// Seed for ids, faults and receipt outcomes. Default 1.
    pub seed: u64,
    /// How often it sends enquire_link to an idle bound ESME, in ms; 0 = never. Default 30 000.
    pub enquire_link_interval_ms: u64,
    /// How long a connection may stay unbound before it is closed, in ms. Default 10 000.
    pub session_init_timeout_ms: u64,
    /// How long it waits for the ESME's answer to a deliver_sm before sending it again, in ms.
    /// Default 5 000.
    pub response_timeout_ms: u64,
    /// Most messages kept for query_sm/cancel_sm/replace_sm and receipts; the oldest go first.
    /// Default 1 000 000.
    pub max_messages: usize,
    /// Most reassembled messages kept in the handset view. Default 10 000.
    pub max_handset_messages: usize,
    /// Largest PDU accepted, in octets. Default 65 552 (64 KiB body plus header).
    pub max_pdu_len: usize,
    /// Field quirk: error responses to submit_sm carry a message_id body anyway (3.4 says no
    /// body). Default false.
    pub error_response_with_id: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            system_id: "SMSC-SIM".into(),
            accounts: Vec::new(),
            message_id_format: MessageIdFormat::Hex,
            seed: 1,
            enquire_link_interval_ms: 30_000,
            session_init_timeout_ms: 10_000,
            response_timeout_ms: 5_000,
            max_messages: 1_000_000,
            max_handset_messages: 10_000,
            max_pdu_len: smppd::pdu::PduCodec::DEFAULT_MAX_LEN,
            error_response_with_id: false,
        }
    }
}

/// Which binds an account may open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindType {
    /// bind_transmitter: submit only.
    Transmitter,
    /// bind_receiver: receipts and MO only.
    Receiver,
    /// bind_transceiver: both.
    Transceiver,
}

impl BindType {
    /// True when this bind may submit.
    pub fn can_submit(self) -> bool {
        matches!(self, BindType::Transmitter | BindType::Transceiver)
    }

    /// True when this bind may be sent deliver_sm.
    pub fn can_receive(self) -> bool {
        matches!(self, BindType::Receiver | BindType::Transceiver)
    }
}

/// How the account's text is read (the meaning of data_coding 0, packing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAlphabetConfig {
    /// GSM 03.38 (the usual meaning).
    #[default]
    Gsm,
    /// Latin-1.
    Latin1,
    /// ASCII.
    Ascii,
}

/// One ESME account.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    /// Login. Default `"esme"`.
    pub system_id: String,
    /// Password. Default `"password"`.
    pub password: String,
    /// Bind types allowed. Default all three.
    pub bind_types: Vec<BindType>,
    /// Most simultaneous binds. Default 8.
    pub max_binds: usize,
    /// What data_coding 0 means for this account. Default GSM.
    pub default_alphabet: DefaultAlphabetConfig,
    /// Whether GSM text arrives packed. Default false.
    pub packed: bool,
    /// Delivery receipts.
    pub receipts: ReceiptConfig,
    /// Misbehaviour, changeable at run time.
    pub faults: Faults,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            system_id: "esme".into(),
            password: "password".into(),
            bind_types: vec![
                BindType::Transmitter,
                BindType::Receiver,
                BindType::Transceiver,
            ],
            max_binds: 8,
            default_alphabet: DefaultAlphabetConfig::Gsm,
            packed: false,
            receipts: ReceiptConfig::default(),
            faults: Faults::default(),
        }
    }
}

impl AccountConfig {
    /// An account with this login and the defaults otherwise.
    pub fn new(system_id: &str, password: &str) -> AccountConfig {
        AccountConfig {
            system_id: system_id.into(),
            password: password.into(),
            ..AccountConfig::default()
        }
    }

    /// The text options this account's messages are read with.
    pub fn text_options(&self) -> CarrierTextOptions {
        CarrierTextOptions {
            default_alphabet: match self.default_alphabet {
                DefaultAlphabetConfig::Gsm => DefaultAlphabet::Gsm,
                DefaultAlphabetConfig::Latin1 => DefaultAlphabet::Latin1,
                DefaultAlphabetConfig::Ascii => DefaultAlphabet::Ascii,
            },
            packed: self.packed,
            max_parts: 255,
            ..CarrierTextOptions::default()
        }
    }
}

/// A delay drawn uniformly from `min_ms..=max_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelayRange {
    /// Shortest delay, ms.
    pub min_ms: u64,
    /// Longest delay, ms.
    pub max_ms: u64,
}

impl DelayRange {
    /// A fixed delay.
    pub fn fixed(ms: u64) -> DelayRange {
        DelayRange {
            min_ms: ms,
            max_ms: ms,
        }
    }

    /// True when it never delays.
    pub fn is_zero(&self) -> bool {
        self.max_ms == 0
    }

    /// Checks `min_ms <= max_ms <= ` a year; `name` is the key to blame.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.min_ms > self.max_ms {
            return Err(format!("{name}.min_ms is above {name}.max_ms"));
        }
        if self.max_ms as f64 > MAX_FAULT_SECS * 1000.0 {
            return Err(format!("{name}.max_ms is above a year"));
        }
        Ok(())
    }
}

/// A receipt outcome and how often it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The receipt `stat`: DELIVRD, UNDELIV, EXPIRED, REJECTD, DELETED, ACCEPTD, UNKNOWN.
    pub stat: String,
    /// Relative weight. Default 1.
    #[serde(default = "one")]
    pub weight: f64,
    /// The `err` code in the text and the network_error_code TLV. Default 0.
    #[serde(default)]
    pub err: u16,
}

fn one() -> f64 {
    1.0
}

/// What carries the receipt's information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptFormat {
    /// The Appendix B text only.
    Text,
    /// The receipted_message_id, message_state and network_error_code TLVs only.
    Tlvs,
    /// Both.
    #[default]
    Both,
}

/// How the message id is written inside the receipt text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptIdStyle {
    /// As in submit_sm_resp.
    #[default]
    Same,
    /// As hex (converted when the ids are decimal).
    Hex,
    /// As decimal (converted when the ids are hex), zero-padded to 10 digits.
    Decimal,
}

/// Delivery receipts, sent when registered_delivery asks for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptConfig {
    /// Delay between the submit and the receipt. Default 0.
    pub delay: DelayRange,
    /// The outcome mix. Default: all DELIVRD.
    pub outcomes: Vec<Outcome>,
    /// Text, TLVs or both. Default both.
    pub format: ReceiptFormat,
    /// How the id is written in the text. Default as in submit_sm_resp.
    pub text_id: ReceiptIdStyle,
    /// A receipt for every part of a concatenated message (true) or for the first part only.
    /// Default true.
    pub per_part: bool,
    /// How often a receipt the ESME answered with an error, or did not answer, is sent again.
    /// Default 3.
    pub max_resends: u32,
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        ReceiptConfig {
            delay: DelayRange::default(),
            outcomes: vec![Outcome {
                stat: "DELIVRD".into(),
                weight: 1.0,
                err: 0,
            }],
            format: ReceiptFormat::Both,
            text_id: ReceiptIdStyle::Same,
            per_part: true,
            max_resends: 3,
        }
    }
}

/// Misbehaviour of one account, all off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// submit_sm per second across the account's binds above which it answers
    /// ESME_RTHROTTLED. Default none.
    pub tps_limit: Option<u32>,
    /// Outstanding (not yet answered) requests per bind above which it answers ESME_RMSGQFUL.
    /// Only matters with `latency`. Default none.
    pub window_limit: Option<u32>,
    /// Share of submits answered with an error from `error_statuses`. Default 0.
    pub error_rate: f64,
    /// The statuses used for `error_rate`, names or numbers. Default ESME_RSYSERR.
    pub error_statuses: Vec<String>,
    /// Delay before each response. Default 0.
    pub latency: DelayRange,
    /// Share of submit responses never sent. Default 0.
    pub drop_response_rate: f64,
    /// Close the connection after this many PDUs received on it. Default never.
    pub disconnect_after_pdus: Option<u64>,
    /// Close the connection this long after its bind, in seconds. Default never.
    pub disconnect_after_secs: Option<f64>,
    /// Refuse binds (ESME_RBINDFAIL) for this many seconds from when it is set: a carrier
    /// outage. Default none.
    pub refuse_binds_secs: Option<f64>,
    /// Stop reading and answering on every bind of the account, keeping the sockets open.
    /// Default false.
    pub stall: bool,
    /// Share of receipts never sent. Default 0.
    pub receipt_drop_rate: f64,
    /// Send the receipt before the submit_sm_resp. Default false.
    pub receipt_before_response: bool,
    /// Extra delay of every receipt, on top of `receipts.delay`: a slow network that can be
    /// switched on while running. Default 0.
    pub receipt_delay: DelayRange,
}

/// The longest period a fault or delay may name, in seconds (a year): longer is surely a
/// mistake, and it keeps deadlines far from the limits of `Instant` and `SystemTime`.
const MAX_FAULT_SECS: f64 = 365.0 * 86_400.0;

impl Faults {
    /// The error statuses, parsed; ESME_RSYSERR when none is given.
    pub fn parsed_error_statuses(&self) -> Result<Vec<CommandStatus>, String> {
        if self.error_statuses.is_empty() {
            return Ok(vec![CommandStatus::ESME_RSYSERR]);
        }
        self.error_statuses
            .iter()
            .map(|s| CommandStatus::parse(s).ok_or_else(|| format!("unknown status {s:?}")))
            .collect()
    }

    /// Checks ranges: rates within 0..=1, delays and periods within a year, known statuses.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("drop_response_rate", self.drop_response_rate),
            ("receipt_drop_rate", self.receipt_drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        self.latency.validate("latency")?;
        self.receipt_delay.validate("receipt_delay")?;
        for (name, secs) in [
            ("disconnect_after_secs", self.disconnect_after_secs),
            ("refuse_binds_secs", self.refuse_binds_secs),
        ] {
            if let Some(secs) = secs
                && !(0.0..=MAX_FAULT_SECS).contains(&secs)
            {
                return Err(format!(
                    "{name} must be between 0 and {MAX_FAULT_SECS}, not {secs}"
                ));
            }
        }
        self.parsed_error_statuses().map(drop)
    }
}

impl SimConfig {
    /// Checks the whole configuration; the error names the account and key.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for account in &self.accounts {
            let id = &account.system_id;
            if id.is_empty() || id.len() > 15 {
                return Err(format!("accounts.system_id {id:?}: 1 to 15 characters"));
            }
            if account.password.len() > 8 {
                return Err(format!("accounts[{id}].password: at most 8 characters"));
            }
            if !seen.insert(id.clone()) {
                return Err(format!("accounts.system_id {id:?} appears twice"));
            }
            account
                .faults
                .validate()
                .map_err(|e| format!("accounts[{id}].faults: {e}"))?;
            let r = &account.receipts;
            r.delay
                .validate("receipts.delay")
                .map_err(|e| format!("accounts[{id}]: {e}"))?;
            if r.outcomes.is_empty() || r.outcomes.iter().any(|o| o.weight < 0.0) {
                return Err(format!(
                    "accounts[{id}].receipts.outcomes: at least one, weights not negative"
                ));
            }
            for o in &r.outcomes {
                if crate::receipts::stat_state(&o.stat).is_none() {
                    return Err(format!(
                        "accounts[{id}].receipts.outcomes: unknown stat {:?}",
                        o.stat
                    ));
                }
            }
        }
        Ok(())
    }
}

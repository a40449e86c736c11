//! A carrier's configuration: the file form ([`CarrierConfig`], serde, every default here) and
//! the validated form ([`CarrierSpec`]) that nothing downstream re-checks.
//!
//! ```toml
//! name = "acme"
//! hosts = ["smsc1.acme.example:2775", "smsc2.acme.example:2775"]
//! system_id = "smppd"
//! password_env = "ACME_SMPP_PASSWORD"
//! binds = [{ type = "transmitter", count = 1 }, { type = "receiver", count = 1 }]
//! window = 10
//! tps = 50
//! [tls]
//! ca_file = "/etc/smppd/acme-ca.pem"
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::backoff::ReconnectConfig;
use super::breaker::BreakerConfig;
use super::throttle::ThrottleConfig;
use crate::conn::{TlsConfig, TlsError, TlsSettings};
use crate::pdu::{COctetString, InterfaceVersion, Npi, PduCodec, Ton};
use crate::session::{BindType, SessionConfig};
use crate::sms::{CarrierTextOptions, DefaultAlphabet, SegmentationMethod};

/// One carrier, as written in the config file. Keys left out take the default documented on
/// each field; `name`, `hosts` and `system_id` are required.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarrierConfig {
    /// The carrier's name, used in routes, logs and metric labels. Required.
    pub name: String,
    /// SMSC endpoints, `host:port`. A slot tries them in turn, starting from its own index,
    /// moving on after a failed attempt. Required (at least one).
    pub hosts: Vec<String>,
    /// The login (at most 15 characters). Required.
    pub system_id: String,
    /// The password (at most 8 characters). Default empty.
    pub password: String,
    /// Read the password from this environment variable instead (wins over `password`).
    /// Default none.
    pub password_env: Option<String>,
    /// `system_type` (at most 12 characters); most carriers want it empty. Default empty.
    pub system_type: String,
    /// `addr_ton` of the bind. Default 0.
    pub addr_ton: u8,
    /// `addr_npi` of the bind. Default 0.
    pub addr_npi: u8,
    /// `address_range` of the bind (at most 40 characters). Default empty.
    pub address_range: String,
    /// The binds to keep open. Default one transceiver.
    pub binds: Vec<BindConfig>,
    /// Requests awaiting a response per bind. Default 10.
    pub window: usize,
    /// The most PDUs per second per bind, every part counted; 0 for no limit. Default 100.
    /// The limit holds over any one-second window; a message's parts go out together, so a
    /// bind takes at most `tps / 2` parts at once (a longer message on a very slow bind is
    /// refused with [`super::SubmitError::TooManyParts`]).
    pub tps: f64,
    /// TCP connect (and TLS handshake) timeout, in milliseconds. Default 5 000.
    pub connect_timeout_ms: u64,
    /// How long to wait for bind_*_resp, in milliseconds. Default 10 000.
    pub bind_timeout_ms: u64,
    /// How long a request may wait for its response before it is in doubt, in milliseconds.
    /// Also the enquire_link answer time (a dead link is detected within
    /// `enquire_link_interval_ms + response_timeout_ms` of silence). Default 30 000.
    pub response_timeout_ms: u64,
    /// Send enquire_link after this much silence, in milliseconds; 0 turns it off.
    /// Default 30 000.
    pub enquire_link_interval_ms: u64,
    /// How long to wait for unbind_resp, in milliseconds. Default 5 000.
    pub unbind_timeout_ms: u64,
    /// deliver_sm/data_sm awaiting the application's answer per bind; past it they are
    /// answered ESME_RX_T_APPN. Default 100.
    pub max_pending_inbound: usize,
    /// Largest PDU accepted from the SMSC, in octets. Default 65 552.
    pub max_pdu_len: usize,
    /// Reconnect backoff.
    pub reconnect: ReconnectConfig,
    /// Adaptive throttling on ESME_RTHROTTLED / ESME_RMSGQFUL.
    pub throttle: ThrottleConfig,
    /// The circuit breaker of each bind.
    pub breaker: BreakerConfig,
    /// The carrier's circuit breaker (all binds' results together).
    pub carrier_breaker: BreakerConfig,
    /// TLS; absent for plain TCP. Default absent.
    pub tls: Option<TlsConfig>,
    /// How text is encoded and split for this carrier.
    pub text: TextConfig,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            name: String::new(),
            hosts: Vec::new(),
            system_id: String::new(),
            password: String::new(),
            password_env: None,
            system_type: String::new(),
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
            binds: vec![BindConfig::default()],
            window: SessionConfig::DEFAULT_WINDOW,
            tps: 100.0,
            connect_timeout_ms: 5_000,
            bind_timeout_ms: SessionConfig::DEFAULT_BIND_TIMEOUT.as_millis() as u64,
            response_timeout_ms: SessionConfig::DEFAULT_RESPONSE_TIMEOUT.as_millis() as u64,
            enquire_link_interval_ms: SessionConfig::DEFAULT_ENQUIRE_LINK_INTERVAL.as_millis()
                as u64,
            unbind_timeout_ms: SessionConfig::DEFAULT_UNBIND_TIMEOUT.as_millis() as u64,
            max_pending_inbound: SessionConfig::DEFAULT_MAX_PENDING_INBOUND,
            max_pdu_len: PduCodec::DEFAULT_MAX_LEN,
            reconnect: ReconnectConfig::default(),
            throttle: ThrottleConfig::default(),
            breaker: BreakerConfig::default(),
            carrier_breaker: BreakerConfig::default(),
            tls: None,
            text: TextConfig::default(),
        }
    }
}

/// Which bind an entry of `binds` opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindKind {
    /// bind_transmitter: submits only.
    Transmitter,
    /// bind_receiver: receipts and MO only.
    Receiver,
    /// bind_transceiver: both.
    #[default]
    Transceiver,
}

impl From<BindKind> for BindType {
    fn from(kind: BindKind) -> BindType {
        match kind {
            BindKind::Transmitter => BindType::Transmitter,
            BindKind::Receiver => BindType::Receiver,
            BindKind::Transceiver => BindType::Transceiver,
        }
    }
}

/// A group of identical binds: `{ type = "transceiver", count = 2 }`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BindConfig {
    /// The bind type. Default transceiver.
    #[serde(rename = "type")]
    pub kind: BindKind,
    /// How many. Default 1.
    pub count: usize,
    /// This group's window, instead of the carrier's. Default the carrier's.
    pub window: Option<usize>,
    /// This group's PDUs per second per bind, instead of the carrier's. Default the carrier's.
    pub tps: Option<f64>,
}

impl Default for BindConfig {
    fn default() -> Self {
        BindConfig {
            kind: BindKind::Transceiver,
            count: 1,
            window: None,
            tps: None,
        }
    }
}

/// Text options as written in the config (`[text]`); see [`CarrierTextOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// What data_coding 0 means: `gsm`, `latin1` or `ascii`. Default `gsm`.
    pub default_alphabet: AlphabetName,
    /// Allow Latin-1 (data_coding 3) when the default alphabet is ASCII. Default false.
    pub allow_latin1: bool,
    /// Pack GSM 7-bit text. Default false.
    pub packed: bool,
    /// How long text is split: `udh8`, `udh16`, `sar` or `payload`. Default `udh8`.
    pub segmentation: SegmentationName,
    /// The most parts per message. Default 10.
    pub max_parts: u8,
}

impl Default for TextConfig {
    fn default() -> Self {
        let d = CarrierTextOptions::default();
        TextConfig {
            default_alphabet: AlphabetName::Gsm,
            allow_latin1: d.allow_latin1,
            packed: d.packed,
            segmentation: SegmentationName::Udh8,
            max_parts: d.max_parts,
        }
    }
}

/// `text.default_alphabet`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphabetName {
    /// GSM 03.38.
    #[default]
    Gsm,
    /// ISO-8859-1.
    Latin1,
    /// IA5 / ASCII.
    Ascii,
}

/// `text.segmentation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentationName {
    /// UDH with an 8-bit reference.
    #[default]
    Udh8,
    /// UDH with a 16-bit reference.
    Udh16,
    /// SAR TLVs.
    Sar,
    /// One message_payload TLV.
    Payload,
}

impl From<TextConfig> for CarrierTextOptions {
    fn from(t: TextConfig) -> CarrierTextOptions {
        CarrierTextOptions {
            default_alphabet: match t.default_alphabet {
                AlphabetName::Gsm => DefaultAlphabet::Gsm,
                AlphabetName::Latin1 => DefaultAlphabet::Latin1,
                AlphabetName::Ascii => DefaultAlphabet::Ascii,
            },
            allow_latin1: t.allow_latin1,
            packed: t.packed,
            segmentation: match t.segmentation {
                SegmentationName::Udh8 => SegmentationMethod::Udh8,
                SegmentationName::Udh16 => SegmentationMethod::Udh16,
                SegmentationName::Sar => SegmentationMethod::Sar,
                SegmentationName::Payload => SegmentationMethod::MessagePayload,
            },
            max_parts: t.max_parts,
        }
    }
}

/// A carrier config that failed validation: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing or out of range.
    #[error("carrier {carrier:?}: {key}: {problem}")]
    Invalid {
        /// The carrier's name (may be empty when the name itself is the problem).
        carrier: String,
        /// The key, e.g. `binds[1].count`.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The TLS settings could not be loaded.
    #[error("carrier {carrier:?}: tls: {source}")]
    Tls {
        /// The carrier's name.
        carrier: String,
        /// What failed.
        #[source]
        source: TlsError,
    },
}

/// One bind slot of a validated carrier.
#[derive(Clone, Debug)]
pub struct SlotSpec {
    /// The slot's label: bind type and index among that type (`trx0`, `tx0`, `rx1`).
    pub name: Arc<str>,
    /// What the slot's session binds with.
    pub session: SessionConfig,
    /// The slot's rate limit, PDUs per second; `None` for no limit.
    pub tps: Option<f64>,
}

/// A carrier, validated: what a [`super::CarrierPool`] is built from.
#[derive(Clone, Debug)]
pub struct CarrierSpec {
    /// The carrier's name.
    pub name: Arc<str>,
    /// SMSC endpoints as `(host, port)`.
    pub hosts: Vec<(String, u16)>,
    /// The bind slots.
    pub slots: Vec<SlotSpec>,
    /// TCP connect and TLS handshake timeout.
    pub connect_timeout: Duration,
    /// Reconnect backoff.
    pub reconnect: ReconnectConfig,
    /// Adaptive throttling.
    pub throttle: ThrottleConfig,
    /// Each bind's breaker.
    pub breaker: BreakerConfig,
    /// The carrier's breaker.
    pub carrier_breaker: BreakerConfig,
    /// TLS, loaded.
    pub tls: Option<TlsSettings>,
    /// Text options for `smppd::sms`.
    pub text: CarrierTextOptions,
    /// Largest PDU accepted from the SMSC.
    pub max_pdu_len: usize,
}

impl TryFrom<CarrierConfig> for CarrierSpec {
    type Error = ConfigError;

    fn try_from(c: CarrierConfig) -> Result<CarrierSpec, ConfigError> {
        c.validate()
    }
}

impl CarrierConfig {
    /// Checks every key and builds the runtime form. Reads `password_env` and the TLS files.
    pub fn validate(&self) -> Result<CarrierSpec, ConfigError> {
        let carrier = self.name.clone();
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            carrier: carrier.clone(),
            key: key.into(),
            problem,
        };
        if self.name.is_empty() {
            return Err(invalid("name", "required".into()));
        }
        if self.hosts.is_empty() {
            return Err(invalid(
                "hosts",
                "at least one host:port is required".into(),
            ));
        }
        let mut hosts = Vec::with_capacity(self.hosts.len());
        for (i, h) in self.hosts.iter().enumerate() {
            let parsed = h
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .filter(|(host, port)| !host.is_empty() && *port != 0);
            let Some((host, port)) = parsed else {
                return Err(invalid(
                    &format!("hosts[{i}]"),
                    format!("{h:?} is not host:port"),
                ));
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            hosts.push((host.to_owned(), port));
        }
        if self.system_id.is_empty() {
            return Err(invalid("system_id", "required".into()));
        }
        let system_id = COctetString::new(&self.system_id)
            .map_err(|e| invalid("system_id", format!("{e} (at most 15 characters)")))?;
        let password_text = match &self.password_env {
            Some(var) => std::env::var(var).map_err(|_| {
                invalid(
                    "password_env",
                    format!("environment variable {var} is not set"),
                )
            })?,
            None => self.password.clone(),
        };
        let password = COctetString::new(&password_text)
            .map_err(|e| invalid("password", format!("{e} (at most 8 characters)")))?;
        let system_type = COctetString::new(&self.system_type)
            .map_err(|e| invalid("system_type", format!("{e} (at most 12 characters)")))?;
        let address_range = COctetString::new(&self.address_range)
            .map_err(|e| invalid("address_range", format!("{e} (at most 40 characters)")))?;
        let check_window = |key: &str, w: usize| {
            if w == 0 || w > 65_535 {
                Err(invalid(key, format!("must be 1..=65535, not {w}")))
            } else {
                Ok(w)
            }
        };
        let check_tps = |key: &str, t: f64| {
            if t.is_finite() && t >= 0.0 {
                Ok((t > 0.0).then_some(t))
            } else {
                Err(invalid(
                    key,
                    format!("must be 0 (no limit) or more, not {t}"),
                ))
            }
        };
        let window = check_window("window", self.window)?;
        let tps = check_tps("tps", self.tps)?;
        for (key, ms) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("bind_timeout_ms", self.bind_timeout_ms),
            ("response_timeout_ms", self.response_timeout_ms),
            ("unbind_timeout_ms", self.unbind_timeout_ms),
        ] {
            if ms == 0 {
                return Err(invalid(key, "must be above 0".into()));
            }
        }
        if self.max_pdu_len < 64 {
            return Err(invalid("max_pdu_len", "must be at least 64".into()));
        }
        if self.text.max_parts == 0 {
            return Err(invalid("text.max_parts", "must be at least 1".into()));
        }
        self.reconnect
            .validate()
            .map_err(|e| invalid("reconnect", e))?;
        self.throttle
            .validate()
            .map_err(|e| invalid("throttle", e))?;
        self.breaker.validate().map_err(|e| invalid("breaker", e))?;
        self.carrier_breaker
            .validate()
            .map_err(|e| invalid("carrier_breaker", e))?;

        let base = SessionConfig {
            system_id,
            password,
            system_type,
            interface_version: InterfaceVersion::V34,
            addr_ton: Ton(self.addr_ton),
            addr_npi: Npi(self.addr_npi),
            address_range,
            window,
            bind_timeout: Duration::from_millis(self.bind_timeout_ms),
            response_timeout: Duration::from_millis(self.response_timeout_ms),
            enquire_link_interval: Duration::from_millis(self.enquire_link_interval_ms),
            unbind_timeout: Duration::from_millis(self.unbind_timeout_ms),
            max_pending_inbound: self.max_pending_inbound.max(1),
            ..SessionConfig::default()
        };
        if self.binds.is_empty() {
            return Err(invalid("binds", "at least one bind is required".into()));
        }
        let mut slots = Vec::new();
        let mut per_kind = [0usize; 3];
        for (i, b) in self.binds.iter().enumerate() {
            if b.count == 0 || b.count > 64 {
                return Err(invalid(
                    &format!("binds[{i}].count"),
                    format!("must be 1..=64, not {}", b.count),
                ));
            }
            let window = match b.window {
                Some(w) => check_window(&format!("binds[{i}].window"), w)?,
                None => window,
            };
            let tps = match b.tps {
                Some(t) => check_tps(&format!("binds[{i}].tps"), t)?,
                None => tps,
            };
            let (prefix, k) = match b.kind {
                BindKind::Transmitter => ("tx", 0),
                BindKind::Receiver => ("rx", 1),
                BindKind::Transceiver => ("trx", 2),
            };
            for _ in 0..b.count {
                slots.push(SlotSpec {
                    name: format!("{prefix}{}", per_kind[k]).into(),
                    session: SessionConfig {
                        bind_type: b.kind.into(),
                        window,
                        ..base.clone()
                    },
                    tps,
                });
                per_kind[k] += 1;
            }
        }
        if slots.len() > 64 {
            return Err(invalid("binds", "at most 64 binds per carrier".into()));
        }
        let tls = match &self.tls {
            Some(t) => Some(t.load(&hosts[0].0).map_err(|source| ConfigError::Tls {
                carrier: carrier.clone(),
                source,
            })?),
            None => None,
        };
        Ok(CarrierSpec {
            name: self.name.as_str().into(),
            hosts,
            slots,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            reconnect: self.reconnect,
            throttle: self.throttle,
            breaker: self.breaker,
            carrier_breaker: self.carrier_breaker,
            tls,
            text: self.text.into(),
            max_pdu_len: self.max_pdu_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> CarrierConfig {
        CarrierConfig {
            name: "acme".into(),
            hosts: vec!["127.0.0.1:2775".into()],
            system_id: "esme".into(),
            password: "pw".into(),
            ..CarrierConfig::default()
        }
    }

    #[test]
    fn a_minimal_config_gets_one_transceiver_with_the_defaults() {
        let spec = minimal().validate().unwrap();
        assert_eq!(spec.slots.len(), 1);
        assert_eq!(&*spec.slots[0].name, "trx0");
        assert_eq!(spec.slots[0].session.bind_type, BindType::Transceiver);
        assert_eq!(spec.slots[0].session.window, 10);
        assert_eq!(spec.slots[0].tps, Some(100.0));
        assert_eq!(spec.hosts, vec![("127.0.0.1".to_owned(), 2775)]);
    }

    #[test]
    fn parses_toml_with_bind_groups_and_names_slots_per_type() {
        let text = r#"
            name = "acme"
            hosts = ["a.example:2775", "b.example:2776"]
            system_id = "esme"
            password = "pw"
            binds = [{ type = "transmitter", count = 2, tps = 0 }, { type = "receiver" }]
            window = 50
            [breaker]
            consecutive_failures = 9
        "#;
        let config: CarrierConfig = toml::from_str(text).unwrap();
        let spec = config.validate().unwrap();
        let names: Vec<&str> = spec.slots.iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["tx0", "tx1", "rx0"]);
        assert_eq!(spec.slots[0].tps, None, "tps 0 is no limit");
        assert_eq!(spec.slots[2].tps, Some(100.0));
        assert_eq!(spec.breaker.consecutive_failures, 9);
        assert_eq!(spec.slots[2].session.window, 50);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(CarrierConfig, &str)> = vec![
            (
                CarrierConfig {
                    name: String::new(),
                    ..minimal()
                },
                "name",
            ),
            (
                CarrierConfig {
                    hosts: vec!["nohost".into()],
                    ..minimal()
                },
                "hosts[0]",
            ),
            (
                CarrierConfig {
                    password: "far too long".into(),
                    ..minimal()
                },
                "password",
            ),
            (
                CarrierConfig {
                    window: 0,
                    ..minimal()
                },
                "window",
            ),
            (
                CarrierConfig {
                    binds: vec![BindConfig {
                        count: 0,
                        ..BindConfig::default()
                    }],
                    ..minimal()
                },
                "binds[0].count",
            ),
            (
                CarrierConfig {
                    tps: -1.0,
                    ..minimal()
                },
                "tps",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("{key}:")), "{err} should name {key}");
        }
    }
}

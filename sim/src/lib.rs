//! smsc-sim: an SMPP 3.4 SMSC simulator that plays honest and misbehaving carriers.
//!
//! It depends on `smppd::pdu` and `smppd::sms` only, never on the engine's session or dispatch
//! code, so it can misbehave in ways the engine itself never would.
//!
//! Module map:
//! - [`config`]: accounts, receipts, faults; every default.
//! - `session`: one ESME connection, SMSC side (3.4 session rules, message operations, faults).
//! - `receipts`: receipt and MO building, and the scheduler that sends them when due.
//! - `store`: the message table and the handset view.
//! - [`control`]: the HTTP control listener (`/stats`, `/messages`, `/faults`, `/mo`, `/metrics`).
//! - [`ids`]: seedable randomness and message ids.
//!
//! In-process use (tests bind port 0):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use smsc_sim::{Sim, config::{AccountConfig, SimConfig}};
//! let config = SimConfig { accounts: vec![AccountConfig::new("esme", "secret")], ..SimConfig::default() };
//! let sim = Sim::new(config)?;
//! let handle = sim.handle();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(sim.run(listener, shutdown.clone().cancelled_owned()));
//! // ... bind an ESME to `addr`, then:
//! let stats = handle.stats();
//! # Ok(()) }
//! ```

pub mod config;
pub mod control;
pub mod ids;
mod receipts;
mod session;
mod stats;
mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use smppd::pdu::{
    COctetString, CommandStatus, EsmClass, Npi, ShortMessage, SubmitSm, TlvsBuilder, Ton,
};
use smppd::sms::{self, CarrierTextOptions, SegmentationMethod};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use config::{BindType, Faults, SimConfig};
use ids::{IdCodec, IdText};
use receipts::{Job, JobKind};
use stats::Stats;
use store::{Handset, MessageTable};

pub use stats::StatsSnapshot;
pub use store::HandsetMessage;

/// Why the simulator could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is invalid; the text names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No account has this system_id.
    #[error("no account {0:?}")]
    UnknownAccount(String),
    /// An MO text could not be encoded or split.
    #[error("cannot encode the message: {0}")]
    Text(#[from] sms::SmsError),
    /// The account has no receiving bind to send to.
    #[error("account {0:?} has no bound receiver or transceiver")]
    NotBound(String),
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Faults as the sessions read them: the settings plus the parsed error statuses.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    pub(crate) error_statuses: Vec<CommandStatus>,
}

impl FaultState {
    fn new(faults: Faults) -> Result<FaultState, String> {
        faults.validate()?;
        let error_statuses = faults.parsed_error_statuses()?;
        Ok(FaultState {
            faults,
            error_statuses,
        })
    }
}

/// What a bound session is asked to write.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A deliver_sm (receipt or MO).
    Deliver(Job),
    /// Octets as they are, e.g. a deliberately malformed PDU.
    Raw(Bytes),
}

/// A session bound to an account, as the scheduler sees it.
pub(crate) struct BoundSession {
    pub(crate) session: u64,
    pub(crate) bind_type: BindType,
    pub(crate) tx: mpsc::Sender<Outbound>,
}

/// Token bucket for the account's TPS limit.
struct Bucket {
    tokens: f64,
    last: Instant,
}

pub(crate) struct Account {
    pub(crate) config: config::AccountConfig,
    pub(crate) text_options: CarrierTextOptions,
    pub(crate) faults: watch::Sender<Arc<FaultState>>,
    refuse_until: Mutex<Option<Instant>>,
    pub(crate) binds: Mutex<Vec<BoundSession>>,
    /// Set by the scheduler when it found every receiving bind full; the bind that next
    /// drains its queue clears it and wakes the scheduler through [`Shared::room`].
    pub(crate) wants_room: AtomicBool,
    bucket: Mutex<Bucket>,
}

impl Account {
    /// True while the outage fault refuses binds.
    pub(crate) fn refusing(&self, now: Instant) -> bool {
        self.refuse_until
            .lock()
            .ok()
            .and_then(|u| *u)
            .is_some_and(|until| now < until)
    }

    /// Takes one token at `tps` per second (burst of one second's worth).
    pub(crate) fn take_token(&self, now: Instant, tps: u32) -> bool {
        let Ok(mut b) = self.bucket.lock() else {
            return true;
        };
        let rate = f64::from(tps.max(1));
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) accounts: Vec<Account>,
    pub(crate) account_index: HashMap<String, usize>,
    pub(crate) messages: Mutex<MessageTable>,
    pub(crate) handset: Mutex<Handset>,
    pub(crate) stats: Stats,
    /// How message ids are written and read back.
    pub(crate) ids: IdCodec,
    /// The last message id counter handed out.
    last_message: AtomicU64,
    pub(crate) next_session: AtomicU64,
    /// The next concatenation reference for an MO message (8-bit UDH, low octet used).
    next_mo_reference: AtomicU64,
    /// Messages cancelled since start; while 0, receipts need no look-up before sending.
    pub(crate) cancelled: AtomicU64,
    pub(crate) jobs: mpsc::Sender<(Instant, Job)>,
    /// Wakes the scheduler to retry the jobs it holds back: a bind drained its queue, or a
    /// receiving bind appeared.
    pub(crate) room: Notify,
}

impl Shared {
    /// A new message id: its counter (the message table's key) and its text.
    pub(crate) fn next_message_id(&self) -> (u64, IdText) {
        let counter = self.last_message.fetch_add(1, Relaxed) + 1;
        (counter, self.ids.id(counter))
    }
}

/// A simulator, configured and ready to [`Sim::run`].
pub struct Sim {
    shared: Arc<Shared>,
    jobs_rx: mpsc::Receiver<(Instant, Job)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A handle on a running simulator: read its stats, change its faults, inject MO.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

impl Sim {
    /// Checks the configuration and builds the simulator.
    pub fn new(config: SimConfig) -> Result<Sim, SimError> {
        config.validate().map_err(SimError::Config)?;
        let mut accounts = Vec::new();
        let mut account_index = HashMap::new();
        for (i, a) in config.accounts.iter().enumerate() {
            let state = FaultState::new(a.faults.clone()).map_err(SimError::Config)?;
            let now = Instant::now();
            let refuse_until = a
                .faults
                .refuse_binds_secs
                .map(|s| now + Duration::from_secs_f64(s.max(0.0)));
            accounts.push(Account {
                config: a.clone(),
                text_options: a.text_options(),
                faults: watch::Sender::new(Arc::new(state)),
                refuse_until: Mutex::new(refuse_until),
                binds: Mutex::new(Vec::new()),
                wants_room: AtomicBool::new(false),
                bucket: Mutex::new(Bucket {
                    tokens: f64::from(a.faults.tps_limit.unwrap_or(1).max(1)),
                    last: now,
                }),
            });
            account_index.insert(a.system_id.clone(), i);
        }
        let (jobs, jobs_rx) = mpsc::channel(64 * 1024);
        let shared = Arc::new(Shared {
            messages: Mutex::new(MessageTable::new(config.max_messages)),
            handset: Mutex::new(Handset::new(config.max_handset_messages)),
            ids: IdCodec::new(config.message_id_format, config.seed),
            last_message: AtomicU64::new(0),
            stats: Stats::default(),
            next_session: AtomicU64::new(1),
            next_mo_reference: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            jobs,
            room: Notify::new(),
            accounts,
            account_index,
            config,
        });
        Ok(Sim {
            shared,
            jobs_rx,
            tls: None,
        })
    }

    /// Serves TLS with this certificate chain and key (PEM) instead of plain TCP.
    pub fn with_tls(mut self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Sim, SimError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| SimError::Tls(format!("certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| SimError::Tls(format!("key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| SimError::Tls(e.to_string()))?;
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        Ok(self)
    }

    /// A handle to observe and steer the simulator while it runs.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts ESMEs on `listener` until `shutdown` completes; then unbinds every session,
    /// waits (briefly) for them to close, and returns the final stats.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> StatsSnapshot {
        let Sim {
            shared,
            jobs_rx,
            tls,
        } = self;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(receipts::scheduler(shared.clone(), jobs_rx, cancel.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let cancel = cancel.clone();
                    match &tls {
                        None => {
                            tracker.spawn(session::serve(shared, stream, cancel));
                        }
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            tracker.spawn(async move {
                                let handshake = tokio::time::timeout(
                                    Duration::from_secs(10),
                                    acceptor.accept(stream),
                                );
                                if let Ok(Ok(tls)) = handshake.await {
                                    session::serve(shared, tls, cancel).await;
                                }
                            });
                        }
                    }
                }
            }
        }
        cancel.cancel();
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        SimHandle { shared }.stats()
    }
}

impl SimHandle {
    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        let stored = self.shared.messages.lock().map_or(0, |t| t.len());
        let handset = self.shared.handset.lock().map_or(0, |h| h.len());
        self.shared.stats.snapshot(stored, handset)
    }

    /// The handset view: the last `limit` messages, optionally only those to `to`.
    pub fn messages(&self, to: Option<&str>, limit: usize) -> Vec<HandsetMessage> {
        self.shared
            .handset
            .lock()
            .map(|h| h.messages(to, limit))
            .unwrap_or_default()
    }

    /// Forgets the handset view (between test phases).
    pub fn clear_messages(&self) {
        if let Ok(mut h) = self.shared.handset.lock() {
            h.clear();
        }
    }

    fn account(&self, system_id: &str) -> Result<&Account, SimError> {
        self.shared
            .account_index
            .get(system_id)
            .map(|&i| &self.shared.accounts[i])
            .ok_or_else(|| SimError::UnknownAccount(system_id.into()))
    }

    /// The account's faults now.
    pub fn faults(&self, system_id: &str) -> Result<Faults, SimError> {
        Ok(self.account(system_id)?.faults.borrow().faults.clone())
    }

    /// Replaces the account's faults; sessions see the change at once (a stall starts or
    /// ends, a TPS limit applies to the next submit, a disconnect_after_secs counts from each
    /// bind's start). A `refuse_binds_secs` different from the current one starts counting
    /// now; the same value leaves a running (or finished) outage alone, so changing another
    /// fault does not refuse binds again.
    pub fn set_faults(&self, system_id: &str, faults: Faults) -> Result<(), SimError> {
        let restart = self.faults(system_id)?.refuse_binds_secs != faults.refuse_binds_secs;
        self.apply_faults(system_id, faults, restart)
    }

    /// Replaces the account's faults; `restart_outage` starts the `refuse_binds_secs` period
    /// now (`POST /faults` does so when the request names that field).
    pub(crate) fn apply_faults(
        &self,
        system_id: &str,
        faults: Faults,
        restart_outage: bool,
    ) -> Result<(), SimError> {
        let account = self.account(system_id)?;
        let state = FaultState::new(faults).map_err(SimError::Config)?;
        if restart_outage && let Ok(mut until) = account.refuse_until.lock() {
            *until = state
                .faults
                .refuse_binds_secs
                .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        }
        if let Some(tps) = state.faults.tps_limit
            && let Ok(mut b) = account.bucket.lock()
        {
            b.tokens = b.tokens.min(f64::from(tps.max(1)));
        }
        account.faults.send_replace(Arc::new(state));
        Ok(())
    }

    /// Sends a mobile-originated text from `from` to the account (e.g. "STOP"), split into
    /// parts with an 8-bit-reference UDH when it is long. Returns the number of parts.
    pub fn inject_mo(
        &self,
        system_id: &str,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<usize, SimError> {
        let index = *self
            .shared
            .account_index
            .get(system_id)
            .ok_or_else(|| SimError::UnknownAccount(system_id.into()))?;
        let account = &self.shared.accounts[index];
        let options = CarrierTextOptions {
            segmentation: SegmentationMethod::Udh8,
            max_parts: 255,
            ..account.text_options.clone()
        };
        // One reference per injected message: taken from the parts sent so far, two messages
        // injected before either went out would share one, and a handset could mix them.
        let reference = (self.shared.next_mo_reference.fetch_add(1, Relaxed) % 256) as u16;
        let segments = sms::segment(text, &options, reference)?;
        let now = Instant::now();
        let count = segments.parts.len();
        for part in segments.parts {
            let mut esm_class = EsmClass::DEFAULT;
            if part.udhi {
                esm_class = esm_class.with_udhi();
            }
            let (short_message, tlvs) = match part.field {
                sms::PayloadField::ShortMessage => (
                    ShortMessage::new(part.payload.clone()).unwrap_or_default(),
                    TlvsBuilder::new().build(),
                ),
                sms::PayloadField::MessagePayload => (
                    ShortMessage::empty(),
                    TlvsBuilder::new()
                        .message_payload(&part.payload)
                        .unwrap_or_default()
                        .build(),
                ),
            };
            let body = SubmitSm {
                source_addr_ton: Ton::INTERNATIONAL,
                source_addr_npi: Npi::ISDN,
                source_addr: COctetString::new(from.trim_start_matches('+')).unwrap_or_default(),
                dest_addr_ton: if to.chars().all(|c| c.is_ascii_digit()) {
                    Ton::INTERNATIONAL
                } else {
                    Ton::ALPHANUMERIC
                },
                dest_addr_npi: Npi::ISDN,
                destination_addr: COctetString::new(to.trim_start_matches('+')).unwrap_or_default(),
                esm_class,
                data_coding: smppd::pdu::DataCoding(part.data_coding),
                short_message,
                tlvs,
                ..SubmitSm::default()
            };
            let job = Job::new(index, JobKind::Mo, body, now);
            self.shared
                .jobs
                .try_send((now, job))
                .map_err(|_| SimError::NotBound(system_id.into()))?;
        }
        Ok(count)
    }

    /// Writes raw octets on one bound session of the account (e.g. a malformed PDU).
    pub fn inject_raw(&self, system_id: &str, octets: Bytes) -> Result<(), SimError> {
        let account = self.account(system_id)?;
        let binds = account
            .binds
            .lock()
            .map_err(|_| SimError::NotBound(system_id.into()))?;
        let bind = binds
            .first()
            .ok_or_else(|| SimError::NotBound(system_id.into()))?;
        bind.tx
            .try_send(Outbound::Raw(octets))
            .map_err(|_| SimError::NotBound(system_id.into()))
    }

    /// Binds open now for the account.
    pub fn bound(&self, system_id: &str) -> usize {
        self.account(system_id)
            .ok()
            .and_then(|a| a.binds.lock().ok().map(|b| b.len()))
            .unwrap_or(0)
    }
}

//! smppd: a native SMPP 3.4 carrier-connection engine.
//!
//! Module map (one owner per concern; see the README's architecture section):
//!
//! - [`pdu`]: the SMPP 3.4 wire format only: PDU types, TLVs, command ids and statuses,
//!   decode (nom), encode (`BufMut`), and the tokio-util framing codec.
//! - [`sms`]: text, not wire: GSM 03.38 / UCS2 / Latin-1, data_coding choice, segmentation
//!   (UDH 8/16-bit, SAR, message_payload), reassembly, and delivery-receipt parsing.
//! - [`session`]: one ESME bind as a sans-IO state machine: bind, window, timers, unbind.
//! - [`api`]: the internal submit socket (HTTP/JSON): validation, errors.
//! - [`routing`]: destination prefix -> ordered carriers (priority, weighted, least cost).
//! - [`dispatch`]: the scheduler and its retry policy (classification, backoff, TTL, in doubt).
//! - [`receipts`]: inbound receipts (correlation, roll-up) and MO messages (keywords).
//! - [`config`]: config.toml -> validated runtime settings; every default.
//! - [`engine`]: everything assembled, started and stopped in order.
//! - [`webhook`]: signed status callbacks to producers, retried, in order per message.
//! - [`store`]: the durable message store: the `Store` trait and its embedded SQLite default.
//! - [`conn`]: the tokio driver of one bind: a session over TCP or TLS, batched writes.
//! - [`carrier`]: a carrier's pool of binds: supervisors (reconnect), throttle, window,
//!   circuit breakers, bind choice, graceful shutdown.
//! - [`metrics`]: every metric name the engine records.
//! - [`load`]: `smppd load`, the submit socket's load generator (bodies, connections,
//!   latency histograms, following messages to their final state, the summary).

pub mod api;
pub mod carrier;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod engine;
pub mod load;
pub mod metrics;
pub mod pdu;
pub mod receipts;
pub mod routing;
pub mod session;
pub mod sms;
pub mod store;
pub mod webhook;

//! Every metric name the engine records, in one place, with its labels and meaning.
//!
//! Metrics go through the [`metrics`] facade; the Prometheus exporter is installed by
//! `smppd run`. Install the recorder before building carrier pools: a pool registers its
//! handles once, when it is built, and a handle registered while no recorder is installed stays
//! a no-op.
//!
//! Labels: `carrier` is the carrier's configured name; `bind` names one bind slot of it, its
//! bind type and index (`trx0`, `tx0`, `rx1`).

/// Gauge, per `carrier` and `bind`: where the bind is. 0 disconnected (waiting to reconnect),
/// 1 connecting, 2 binding (bind sent), 3 bound, 4 unbinding, 5 stopped (shut down, or halted
/// by an authentication failure).
pub const BIND_STATE: &str = "smppd_bind_state";
/// Gauge, per `carrier`: binds bound now.
pub const BINDS_UP: &str = "smppd_binds_up";
/// Counter, per `carrier` and `bind`: connection attempts after the first.
pub const RECONNECTS: &str = "smppd_reconnects_total";
/// Counter, per `carrier`, `bind` and `status`: bind attempts that failed. `status` is the
/// refusing command_status name (`ESME_RINVPASWD`), or `connect`, `tls`, `bind_timeout`,
/// `connection_lost`.
pub const BIND_FAILURES: &str = "smppd_bind_failures_total";
/// Gauge, per `carrier`: 1 while the carrier is halted because the SMSC refused its
/// credentials or system_type (ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP). This is an
/// alarm: no bind is attempted until the pool is resumed.
pub const AUTH_FAILED: &str = "smppd_carrier_auth_failed";
/// Counter, per `carrier`, `bind` and `status`: submitted parts by outcome. `status` is the
/// response's command_status name (`ESME_ROK`, `ESME_RTHROTTLED`...), or `timeout` (no
/// response in time), `bind_lost` (the bind closed before the answer) or `not_sent`.
pub const SUBMITS: &str = "smppd_submits_total";
/// Histogram, per `carrier` and `bind`, seconds: from handing a part to the bind until its
/// response arrived.
pub const SUBMIT_RTT: &str = "smppd_submit_round_trip_seconds";
/// Gauge, per `carrier` and `bind`: window slots in use (parts awaiting a response, or on
/// their way to the bind).
pub const WINDOW_IN_USE: &str = "smppd_window_in_use";
/// Counter, per `carrier` and `bind`: submits that found no throttle token on the bind (the
/// caller waited, or was told to).
pub const THROTTLE_WAITS: &str = "smppd_throttle_waits_total";
/// Counter, per `carrier` and `bind`: responses ESME_RTHROTTLED or ESME_RMSGQFUL.
pub const THROTTLED_RESPONSES: &str = "smppd_throttled_responses_total";
/// Gauge, per `carrier` and `bind`: the bind's current send rate limit in PDUs per second
/// after adaptive slow-down (0 when unlimited).
pub const THROTTLE_RATE: &str = "smppd_throttle_rate";
/// Gauge, per `carrier` and `bind`: the circuit breaker's state; 0 closed, 1 half-open,
/// 2 open. The carrier's own breaker has `bind="carrier"`.
pub const BREAKER_STATE: &str = "smppd_breaker_state";
/// Counter, per `carrier`, `bind` and `to` (`closed`, `open`, `half_open`): breaker
/// transitions. The carrier's own breaker has `bind="carrier"`.
pub const BREAKER_TRANSITIONS: &str = "smppd_breaker_transitions_total";
/// Counter, per `carrier`, `bind` and `reason` (`timeout`, `bind_lost`): submitted parts whose
/// outcome is unknown (DESIGN promise 4).
pub const IN_DOUBT: &str = "smppd_in_doubt_submits_total";
/// Counter, per `carrier` and `bind`: responses that came after their part was reported in
/// doubt.
pub const LATE_RESPONSES: &str = "smppd_late_responses_total";
/// Counter, per `carrier` and `bind`: links declared dead because an enquire_link went
/// unanswered (3.4 §2.9).
pub const ENQUIRE_LINK_FAILURES: &str = "smppd_enquire_link_failures_total";
/// Counter, per `carrier`, `bind` and `command` (`deliver_sm`, `data_sm`): inbound requests
/// handed to the application.
pub const INBOUND: &str = "smppd_inbound_total";
/// Counter, per `carrier` and `bind`: inbound requests answered ESME_RX_T_APPN because the
/// application's queue was full or it has no handler (the SMSC redelivers them).
pub const INBOUND_DEFERRED: &str = "smppd_inbound_deferred_total";
/// Counter, per `carrier` and `bind` and `kind`: irregular PDUs the session dealt with by itself
/// (`unknown_command`, `bad_body`, `refused`, `unexpected_response`, `ignored`).
pub const ANOMALIES: &str = "smppd_session_anomalies_total";
/// Counter, per `carrier`: events (late responses) dropped because the application's event
/// queue was full.
pub const EVENTS_DROPPED: &str = "smppd_carrier_events_dropped_total";

// The message pipeline.

/// Counter: messages accepted through the API.
pub const MESSAGES_ACCEPTED: &str = "smppd_messages_accepted_total";
/// Counter, label `code`: API requests refused, by error code.
pub const MESSAGES_REJECTED: &str = "smppd_messages_rejected_total";
/// Gauge, label `state`: messages in the store by state.
pub const MESSAGES: &str = "smppd_messages";
/// Counter, label `carrier`: parts the carrier accepted.
pub const PIPELINE_PARTS_SUBMITTED: &str = "smppd_parts_submitted_total";
/// Counter, labels `carrier`, `stat`: delivery receipts received.
pub const RECEIPTS: &str = "smppd_receipts_total";
/// Counter, labels `carrier`, `result` (`matched`, `unmatched`): receipt correlation.
pub const RECEIPTS_MATCHED: &str = "smppd_receipts_correlated_total";
/// Counter, label `reason`: retries scheduled.
pub const RETRIES: &str = "smppd_retries_total";
/// Counter, label `carrier`: resubmits of in-doubt messages (possible duplicates).
pub const IN_DOUBT_RESUBMITS: &str = "smppd_in_doubt_resubmits_total";
/// Histogram, seconds: accepted to submit_sm_resp.
pub const ACCEPT_TO_SUBMIT: &str = "smppd_accept_to_submit_seconds";
/// Histogram, label `carrier`, seconds: accepted to each delivery receipt matched.
pub const ACCEPT_TO_RECEIPT: &str = "smppd_accept_to_receipt_seconds";
/// Counter, label `outcome` (`delivered`, `retried`, `expired`, `dropped_queue_full`):
/// webhook deliveries.
pub const WEBHOOKS: &str = "smppd_webhooks_total";
/// Counter, label `carrier`: mobile-originated messages received.
pub const MO: &str = "smppd_mo_total";

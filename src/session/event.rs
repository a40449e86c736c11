//! What the session reports ([`Event`]) and the errors of its commands.

use std::time::Instant;

use crate::pdu::{
    AlertNotification, Body, COctetString, CommandId, CommandStatus, DataSm, DecodeError, DeliverSm,
};

use super::table::Request;

/// Something that happened on the bind. Drain them with [`super::Session::poll_event`] after
/// every input; each one is reported exactly once, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The SMSC accepted the bind: the session is BOUND_TX, BOUND_RX or BOUND_TRX and
    /// requests may be submitted.
    Bound {
        /// The SMSC's identity from bind_*_resp (empty if the SMSC left the body out).
        system_id: COctetString<16>,
        /// The SMSC's `sc_interface_version` TLV. When absent the SMSC should be assumed not
        /// to support TLVs (3.4 §3.4).
        sc_interface_version: Option<u8>,
    },
    /// A request was answered with ESME_ROK. For submit_sm, data_sm and submit_multi the
    /// body carries the SMSC's message_id ([`Response::message_id`]).
    Accepted(Response),
    /// A request was answered with an error status, or with generic_nack (3.4 §4.3: a
    /// generic_nack for our request completes it as failed). Throttling (ESME_RTHROTTLED,
    /// ESME_RMSGQFUL) arrives here too: slowing down is the carrier layer's decision.
    Rejected(Response),
    /// No response came within the response timeout. The request is *in doubt*: the SMSC may
    /// or may not have acted on it. Its response may still turn up as [`Event::LateResponse`].
    TimedOut(Request),
    /// A response for a request already reported [`Event::TimedOut`]: it settles the doubt.
    /// The status says whether it was accepted.
    LateResponse(Response),
    /// The SMSC delivered a short message or receipt (3.4 §4.6). The session does not answer
    /// it: call [`super::Session::respond`] with this sequence number once it is stored
    /// (DESIGN promise 2).
    DeliverSm {
        /// The SMSC's sequence number, to pass to `respond`.
        sequence_number: u32,
        /// The deliver_sm body.
        pdu: DeliverSm,
    },
    /// The SMSC sent data_sm (3.4 §4.7). Answer it with [`super::Session::respond`], as for
    /// deliver_sm.
    DataSm {
        /// The SMSC's sequence number, to pass to `respond`.
        sequence_number: u32,
        /// The data_sm body.
        pdu: DataSm,
    },
    /// The SMSC sent alert_notification (3.4 §4.12); it has no response.
    AlertNotification(AlertNotification),
    /// The inactivity timer expired: the session has begun a graceful unbind.
    InactivityTimeout,
    /// Something irregular the session dealt with by itself (answered or dropped). Worth a
    /// counter and a log line; no action is needed.
    Anomaly(Anomaly),
    /// The session is over. Always the last event. Requests still awaiting a response and
    /// inbound requests never answered are handed back here, never dropped silently.
    /// Whatever [`super::Session::poll_transmit`] still returns (an unbind_resp, a
    /// generic_nack) should be written before the transport is closed.
    Closed {
        /// Why.
        reason: CloseReason,
        /// Our requests that had no response: in doubt, in the order they were sent. A lost
        /// session's responses never come in a new one (5.0 §2.6.3).
        in_flight: Vec<Request>,
        /// Sequence numbers of deliver_sm/data_sm the application had not answered. They can
        /// no longer be answered; the SMSC redelivers them.
        unanswered: Vec<u32>,
    },
}

/// The response to one of our requests, with the token it was submitted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The token passed to [`super::Session::submit`].
    pub token: u64,
    /// The sequence number the request and its response carried.
    pub sequence_number: u32,
    /// The request's command_id.
    pub request: CommandId,
    /// The response's command_status.
    pub command_status: CommandStatus,
    /// The response body: the request's own `*_resp`, or [`Body::GenericNack`]. When the
    /// SMSC sent a body the codec could not read, this is the empty response and an
    /// [`Anomaly::BadBody`] was reported just before.
    pub body: Body,
    /// The `now` the request was submitted at, so the round trip is the `now` of the response
    /// minus this. `None` in [`Event::LateResponse`]: a timed-out request is remembered
    /// without it.
    pub sent_at: Option<Instant>,
}

impl Response {
    /// The SMSC's message_id, for responses that carry one (submit_sm_resp, data_sm_resp,
    /// submit_multi_resp, query_sm_resp) and have a body.
    pub fn message_id(&self) -> Option<&COctetString<65>> {
        match &self.body {
            Body::SubmitSmResp(Some(r)) | Body::DataSmResp(Some(r)) => Some(&r.message_id),
            Body::SubmitMultiResp(Some(r)) => Some(&r.message_id),
            Body::QuerySmResp(Some(r)) => Some(&r.message_id),
            _ => None,
        }
    }

    /// True when the SMSC answered with generic_nack instead of the request's own response.
    pub fn is_generic_nack(&self) -> bool {
        matches!(self.body, Body::GenericNack)
    }
}

/// Why the session closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// We sent unbind (a call to `unbind`, or the inactivity timer) and the SMSC answered.
    Unbound,
    /// We sent unbind and no unbind_resp came within the unbind timeout.
    UnbindTimeout,
    /// The SMSC sent unbind; the session answered unbind_resp (3.4 §4.2).
    PeerUnbind,
    /// The SMSC refused the bind with this status (bind_*_resp or generic_nack). Some
    /// statuses mean reconnecting is pointless: ESME_RINVPASWD, ESME_RINVSYSID,
    /// ESME_RINVSYSTYP ([`crate::pdu::StatusClass::Session`]).
    BindRefused(CommandStatus),
    /// No bind_*_resp within the bind timeout.
    BindTimeout,
    /// An enquire_link went unanswered, and nothing else arrived, within the response
    /// timeout (3.4 §2.9): the link is dead.
    LinkDead,
    /// The frame stream broke (command_length out of range, 3.4 §4.3): a generic_nack
    /// ESME_RINVCMDLEN is queued, then the connection must close.
    BadFrame,
    /// The transport ended or failed ([`super::Session::connection_lost`]).
    ConnectionLost,
    /// The application closed the session without an unbind ([`super::Session::close`]).
    Local,
}

impl CloseReason {
    /// The name used in logs and metric labels, e.g. `"link_dead"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Unbound => "unbound",
            CloseReason::UnbindTimeout => "unbind_timeout",
            CloseReason::PeerUnbind => "peer_unbind",
            CloseReason::BindRefused(_) => "bind_refused",
            CloseReason::BindTimeout => "bind_timeout",
            CloseReason::LinkDead => "link_dead",
            CloseReason::BadFrame => "bad_frame",
            CloseReason::ConnectionLost => "connection_lost",
            CloseReason::Local => "local",
        }
    }
}

/// Something irregular the session handled by itself. The bind stays up in every case
/// (DESIGN promise 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// A request with a command_id SMPP 3.4 does not define: answered with generic_nack
    /// ESME_RINVCMDID (3.4 §3.3, §4.3).
    UnknownCommand {
        /// The command_id received.
        command_id: CommandId,
        /// Its sequence number, echoed in the generic_nack.
        sequence_number: u32,
    },
    /// A PDU whose body could not be decoded. A request was answered with its own response
    /// carrying the error's status ([`DecodeError::response`]); a response to one of our
    /// requests still completed it, with its header's status and an empty body.
    BadBody(DecodeError),
    /// A request from the SMSC the session answered with an error status by itself.
    Refused {
        /// The request's command_id.
        command_id: CommandId,
        /// Its sequence number.
        sequence_number: u32,
        /// The status it was answered with.
        status: CommandStatus,
        /// Why.
        reason: RefuseReason,
    },
    /// A response that matches none of our requests (unknown sequence number, a response of
    /// another command than the request, or an unknown response command): dropped (3.4 §4.3:
    /// a response is never answered).
    UnexpectedResponse {
        /// The response's command_id.
        command_id: CommandId,
        /// Its sequence number.
        sequence_number: u32,
        /// Its status.
        command_status: CommandStatus,
    },
    /// A request that has no response PDU and that this bind cannot use (outbind on an open
    /// connection, alert_notification on a transmitter bind): dropped.
    Ignored {
        /// The request's command_id.
        command_id: CommandId,
        /// Its sequence number.
        sequence_number: u32,
    },
}

/// Why the session answered a request from the SMSC with an error by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// Not legal in this state or on this bind type (3.4 Table 2-1): ESME_RINVBNDSTS.
    WrongState,
    /// `max_pending_inbound` deliver_sm/data_sm already await the application:
    /// ESME_RX_T_APPN, so the SMSC retries later.
    TooManyPending,
    /// A deliver_sm/data_sm reusing the sequence number of one still awaiting the
    /// application: ESME_RX_T_APPN. Its answer could not be told apart from the first's.
    DuplicateSequence,
    /// deliver_sm/data_sm after we sent unbind: ESME_RX_T_APPN, so the SMSC delivers it on
    /// another bind or after the next bind.
    Unbinding,
}

/// Why [`super::Session::submit`] refused a request. Nothing was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SubmitError {
    /// The window is full: `window` requests already await a response. Retry after an
    /// Accepted, Rejected or TimedOut event frees a slot.
    #[error("window full: {0} requests await a response")]
    WindowFull(usize),
    /// The bind has not completed yet (3.4 OPEN state).
    #[error("not bound yet")]
    NotBound,
    /// The session is unbinding: it sends no new requests (3.4 §4.2).
    #[error("unbinding")]
    Unbinding,
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// This bind type may not send this request, e.g. submit_sm on a receiver bind
    /// (3.4 Table 2-1).
    #[error("{command_id} is not allowed on a {} bind", bind_type.as_str())]
    NotAllowed {
        /// The request's command_id.
        command_id: CommandId,
        /// The bind type.
        bind_type: super::BindType,
    },
    /// The body is not a request an ESME submits (a response, a bind, unbind,
    /// enquire_link, deliver_sm...). Binding, unbinding and link checks are the session's.
    #[error("{0} is not a request the application submits")]
    NotARequest(CommandId),
}

/// Why [`super::Session::respond`] could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RespondError {
    /// No deliver_sm/data_sm with this sequence number awaits an answer: it was answered
    /// already, or never received on this session.
    #[error("no inbound request with sequence_number {0} awaits an answer")]
    NotPending(u32),
    /// The session is closed; the request was handed back in [`Event::Closed`].
    #[error("session closed")]
    Closed,
}

//! One ESME bind as a sans-IO state machine.
//!
//! A [`Session`] speaks SMPP 3.4 to one SMSC over one connection, but never touches the
//! connection, a clock or a task: the driver (`conn`) feeds it what arrived and the time, and
//! drains what it wants written, what happened, and when to wake it next:
//!
//! - inputs: [`Session::handle_pdu`] (each item of [`crate::pdu::PduCodec`]),
//!   [`Session::handle_timeout`], [`Session::handle_frame_error`], [`Session::connection_lost`];
//! - commands: [`Session::submit`], [`Session::respond`], [`Session::unbind`],
//!   [`Session::close`] (the bind itself is queued by [`Session::new`]);
//! - outputs: [`Session::poll_transmit`] (encoded PDUs, appended to the driver's write
//!   buffer), [`Session::poll_event`], [`Session::poll_timeout`].
//!
//! After any input or command, drain `poll_transmit` and `poll_event`, then re-arm the one
//! timer to `poll_timeout`. The session is deterministic: the same inputs at the same instants
//! give the same outputs.
//!
//! # Lifecycle (3.4 §2.2)
//!
//! - [`SessionState::Open`]: our bind is sent. Bound on bind_*_resp ESME_ROK; closed if the
//!   SMSC refuses it or the bind timeout passes.
//! - [`SessionState::Bound`]: requests flow both ways. [`Session::unbind`] or the inactivity
//!   timer starts a graceful unbind.
//! - [`SessionState::Draining`]: no new requests; unbind goes out once the window and the
//!   pending inbound requests are empty, or after the response timeout.
//! - [`SessionState::Unbinding`]: closed on unbind_resp or after the unbind timeout.
//! - From any state: unbind from the SMSC (answered), a dead link, broken framing, a lost
//!   connection or [`Session::close`] end in [`SessionState::Closed`].
//!
//! The last event is always [`Event::Closed`], which hands back every request still awaiting
//! a response and every inbound request the application has not answered.
//!
//! # What the session answers by itself, and what it does not
//!
//! It answers enquire_link (in every state, including OPEN: 5.0 makes that legal and refusing
//! costs binds), unbind, unknown commands (generic_nack ESME_RINVCMDID), bad bodies
//! ([`crate::pdu::DecodeError::response`]) and requests illegal for the bind
//! (ESME_RINVBNDSTS). It never answers a response or a generic_nack (3.4 §4.3). It does *not*
//! answer deliver_sm or data_sm: the application stores them and then calls
//! [`Session::respond`], so a receipt is acknowledged only once it is safe (DESIGN promise 2).
//! It originates enquire_link only once bound (SMSCs drop sessions that enquire before the
//! bind completes).
//!
//! # Sequence numbers (3.4 §5.1.4)
//!
//! Our requests count up from [`SessionConfig::first_sequence_number`] through 0x7FFFFFFF,
//! then wrap to 1; 0 is never used. A number still awaiting a response, or remembered for a
//! late response, is skipped, so a response always matches the request it answers. The SMSC's
//! numbers are a separate space (5.0 §2.6.1) and are kept apart.

mod config;
mod event;
mod table;

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::pdu::{
    Body, CommandId, CommandStatus, DecodeError, FailReason, FrameError, MAX_SEQUENCE, Pdu, SmResp,
};

pub use config::{BindType, SessionConfig};
pub use event::{Anomaly, CloseReason, Event, RefuseReason, RespondError, Response, SubmitError};
pub use table::Request;

use table::{InFlight, SeqMap, TimedOut};

/// Where the session is in its life, for introspection and metrics. The 3.4 names: `Open` is
/// OPEN with our bind sent; `Bound`, `Draining` and `Unbinding` are BOUND_TX/RX/TRX (see
/// [`Session::bind_type`]); `Closed` is CLOSED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// The bind is sent, its response awaited.
    Open,
    /// Bound: requests may be submitted.
    Bound,
    /// Bound, but unbinding: no new requests; waiting for the window to drain and the
    /// application to answer pending deliver_sm before unbind goes out.
    Draining,
    /// unbind sent, unbind_resp awaited.
    Unbinding,
    /// Over.
    Closed,
}

impl SessionState {
    /// The name used in logs and metric labels, e.g. `"bound"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Bound => "bound",
            SessionState::Draining => "draining",
            SessionState::Unbinding => "unbinding",
            SessionState::Closed => "closed",
        }
    }
}

/// A snapshot of the session's counters, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStats {
    /// The state.
    pub state: SessionState,
    /// Our requests awaiting a response (at most `window`).
    pub outstanding: usize,
    /// The window size.
    pub window: usize,
    /// deliver_sm/data_sm awaiting the application's answer.
    pub pending_inbound: usize,
    /// Timed-out requests remembered for a late response.
    pub timed_out_remembered: usize,
}

/// The state machine's states; each holds only its own data (3.4 §2.2).
#[derive(Debug)]
enum State {
    /// OPEN: our bind is sent.
    Open {
        /// The bind's sequence number.
        bind_sequence: u32,
        /// When to give up on bind_*_resp.
        deadline: Instant,
    },
    /// BOUND_*: requests flow both ways.
    Bound {
        /// The enquire_link we are waiting on, if any.
        link: LinkCheck,
        /// Set once a graceful unbind has begun: when to send unbind even if the window has
        /// not drained.
        drain_deadline: Option<Instant>,
    },
    /// Our unbind is sent.
    Unbinding {
        /// The unbind's sequence number.
        unbind_sequence: u32,
        /// When to stop waiting for unbind_resp.
        deadline: Instant,
        /// An enquire_link sent before the unbind, so its late answer is not unexpected.
        enquire_sequence: Option<u32>,
    },
    Closed,
}

/// Our outstanding enquire_link (3.4 §4.11).
#[derive(Clone, Copy, Debug, Default)]
struct LinkCheck {
    /// Its sequence number, until its response arrives.
    sequence_number: Option<u32>,
    /// When the link is declared dead. Cleared by any PDU from the SMSC: any PDU proves the
    /// link (3.4 §2.9), even if the enquire_link_resp itself is slow.
    deadline: Option<Instant>,
}

/// One ESME bind as a sans-IO state machine. See the [module docs](self).
pub struct Session {
    config: SessionConfig,
    state: State,
    /// Our requests awaiting responses, bounded by the window.
    in_flight: InFlight,
    /// Our requests that timed out, for late responses.
    timed_out: TimedOut,
    /// The SMSC's deliver_sm/data_sm awaiting the application's answer, by their sequence
    /// number, with the command to answer with. Bounded by `max_pending_inbound`.
    inbound: SeqMap<CommandId>,
    /// The next sequence number to try for our next request.
    next_sequence: u32,
    /// Encoded PDUs not yet handed to the driver.
    outbox: BytesMut,
    /// How many PDUs `outbox` holds.
    outbox_pdus: usize,
    events: VecDeque<Event>,
    /// When the SMSC last sent anything: the enquire_link timer runs from here.
    last_received: Instant,
    /// When a PDU other than enquire_link(_resp) last went either way: the inactivity timer
    /// runs from here.
    last_activity: Instant,
}

impl Session {
    /// A session on a freshly opened connection. The bind request is queued at once (3.4
    /// §2.2: the ESME binds first) and the bind timeout starts at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let window = config.effective_window();
        let first = config.effective_first_sequence();
        let mut inbound = SeqMap::default();
        inbound.reserve(config.max_pending_inbound.min(1024));
        let mut session = Session {
            in_flight: InFlight::new(window),
            timed_out: TimedOut::new(config.late_response_memory),
            inbound,
            next_sequence: first,
            // Room for a window of typical submit_sm; grows once if the PDUs are larger.
            outbox: BytesMut::with_capacity(256 * (window + 2)),
            outbox_pdus: 0,
            events: VecDeque::with_capacity(window + 4),
            last_received: now,
            last_activity: now,
            state: State::Closed,
            config,
        };
        let bind_sequence = session.allocate_sequence();
        let bind = match session.config.bind_type {
            BindType::Transmitter => Body::BindTransmitter(session.config.bind_body()),
            BindType::Receiver => Body::BindReceiver(session.config.bind_body()),
            BindType::Transceiver => Body::BindTransceiver(session.config.bind_body()),
        };
        session.send(&Pdu::new(bind_sequence, bind));
        session.state = State::Open {
            bind_sequence,
            deadline: now + session.config.bind_timeout,
        };
        session
    }

    // ---- introspection -------------------------------------------------------------------

    /// The configuration the session was opened with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The bind type asked for.
    pub fn bind_type(&self) -> BindType {
        self.config.bind_type
    }

    /// Where the session is in its life.
    pub fn state(&self) -> SessionState {
        match &self.state {
            State::Open { .. } => SessionState::Open,
            State::Bound {
                drain_deadline: None,
                ..
            } => SessionState::Bound,
            State::Bound { .. } => SessionState::Draining,
            State::Unbinding { .. } => SessionState::Unbinding,
            State::Closed => SessionState::Closed,
        }
    }

    /// True once [`Event::Closed`] has been queued.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Our requests awaiting a response.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len()
    }

    /// The window: how many requests may await a response at once.
    pub fn window(&self) -> usize {
        self.config.effective_window()
    }

    /// deliver_sm/data_sm awaiting [`Session::respond`].
    pub fn pending_inbound(&self) -> usize {
        self.inbound.len()
    }

    /// All counters at once.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            state: self.state(),
            outstanding: self.outstanding(),
            window: self.window(),
            pending_inbound: self.pending_inbound(),
            timed_out_remembered: self.timed_out.len(),
        }
    }

    // ---- commands --------------------------------------------------------------------------

    /// Whether a request with this command_id could be submitted now. [`Session::submit`]
    /// makes the same check; this lets a caller look before building the body.
    pub fn check_submit(&self, command_id: CommandId) -> Result<(), SubmitError> {
        match &self.state {
            State::Open { .. } => return Err(SubmitError::NotBound),
            State::Bound {
                drain_deadline: None,
                ..
            } => {}
            State::Bound { .. } | State::Unbinding { .. } => return Err(SubmitError::Unbinding),
            State::Closed => return Err(SubmitError::Closed),
        }
        if !self.config.bind_type.may_send(command_id) {
            return Err(match command_id {
                CommandId::SUBMIT_SM
                | CommandId::SUBMIT_MULTI
                | CommandId::DATA_SM
                | CommandId::QUERY_SM
                | CommandId::CANCEL_SM
                | CommandId::REPLACE_SM => SubmitError::NotAllowed {
                    command_id,
                    bind_type: self.config.bind_type,
                },
                _ => SubmitError::NotARequest(command_id),
            });
        }
        if self.in_flight.is_full() {
            return Err(SubmitError::WindowFull(self.in_flight.len()));
        }
        Ok(())
    }

    /// Sends a request: submit_sm, data_sm, submit_multi, query_sm, cancel_sm, replace_sm
    /// (or a vendor command the codec keeps as [`Body::Unknown`]). `token` is the caller's,
    /// handed back with the outcome. Returns the sequence number the request carries.
    ///
    /// The response timeout starts at `now`. Exactly one of [`Event::Accepted`],
    /// [`Event::Rejected`], [`Event::TimedOut`] or [`Event::Closed`] (in its `in_flight`)
    /// follows for it; after TimedOut an [`Event::LateResponse`] may follow too.
    pub fn submit(&mut self, now: Instant, body: Body, token: u64) -> Result<u32, SubmitError> {
        self.try_submit(now, body, token).map_err(|(e, _)| e)
    }

    /// [`Session::submit`], handing the body back when it is refused, so a caller holding
    /// requests for a full window can keep them without checking first.
    // The body comes back by value: boxing it would allocate on every refusal, and a refused
    // body is moved once, to the caller's queue.
    #[allow(clippy::result_large_err)]
    pub fn try_submit(
        &mut self,
        now: Instant,
        body: Body,
        token: u64,
    ) -> Result<u32, (SubmitError, Body)> {
        let command_id = body.command_id();
        if let Err(e) = self.check_submit(command_id) {
            return Err((e, body));
        }
        let sequence_number = self.allocate_sequence();
        self.send(&Pdu::new(sequence_number, body));
        self.in_flight.insert(
            Request {
                token,
                sequence_number,
                command_id,
            },
            now,
            now + self.config.response_timeout,
        );
        self.last_activity = now;
        Ok(sequence_number)
    }

    /// Answers a deliver_sm or data_sm reported by [`Event::DeliverSm`] or
    /// [`Event::DataSm`], with `status`: ESME_ROK once it is stored, ESME_RX_T_APPN to have
    /// the SMSC retry later, ESME_RX_P_APPN/ESME_RX_R_APPN to refuse it. The response carries
    /// the NUL message_id 3.4 §4.6.2 asks for.
    ///
    /// Allowed while unbinding too: responses may still go out until the session closes.
    pub fn respond(
        &mut self,
        now: Instant,
        sequence_number: u32,
        status: CommandStatus,
    ) -> Result<(), RespondError> {
        if self.is_closed() {
            return Err(RespondError::Closed);
        }
        let command_id = self
            .inbound
            .remove(&sequence_number)
            .ok_or(RespondError::NotPending(sequence_number))?;
        let body = match command_id {
            CommandId::DATA_SM => Body::DataSmResp(Some(SmResp::default())),
            _ => Body::DeliverSmResp(Some(SmResp::default())),
        };
        self.send(&Pdu {
            body,
            command_status: status,
            sequence_number,
        });
        self.last_activity = now;
        self.finish_drain_if_done(now);
        Ok(())
    }

    /// Ends the bind gracefully (3.4 §4.2): new requests are refused at once; the requests in
    /// flight get their responses (or time out) and pending deliver_sm their answers, for at
    /// most the response timeout; then unbind is sent and unbind_resp awaited for at most the
    /// unbind timeout. Ends in [`Event::Closed`] with [`CloseReason::Unbound`] or
    /// [`CloseReason::UnbindTimeout`].
    ///
    /// While draining the bind is still up: a deliver_sm arriving then is reported as usual and
    /// its answer awaited too, within the same deadline.
    ///
    /// Before the bind completed there is nothing to unbind (unbind is illegal in OPEN): the
    /// session closes at once with [`CloseReason::Local`]. Calling it again does nothing.
    pub fn unbind(&mut self, now: Instant) {
        match &mut self.state {
            State::Open { .. } => self.close_with(CloseReason::Local),
            State::Bound { drain_deadline, .. } if drain_deadline.is_none() => {
                *drain_deadline = Some(now + self.config.response_timeout);
                self.finish_drain_if_done(now);
            }
            _ => {}
        }
    }

    /// Closes at once, without unbind (e.g. a shutdown deadline passed). In-flight and
    /// unanswered inbound requests are handed back in [`Event::Closed`] with
    /// [`CloseReason::Local`]. Does nothing if already closed.
    pub fn close(&mut self) {
        if !self.is_closed() {
            self.close_with(CloseReason::Local);
        }
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// The transport ended (EOF) or failed: closes with [`CloseReason::ConnectionLost`],
    /// handing everything outstanding back. Does nothing if already closed.
    pub fn connection_lost(&mut self) {
        if !self.is_closed() {
            self.close_with(CloseReason::ConnectionLost);
        }
    }

    /// The frame decoder failed. A bad command_length means framing is lost (3.4 §4.3): a
    /// generic_nack ESME_RINVCMDLEN is queued (write it, then close the connection) and the
    /// session closes with [`CloseReason::BadFrame`]. An I/O error closes it with
    /// [`CloseReason::ConnectionLost`].
    pub fn handle_frame_error(&mut self, error: &FrameError) {
        if self.is_closed() {
            return;
        }
        match error.response() {
            Some(nack) => {
                self.send(&nack);
                self.close_with(CloseReason::BadFrame);
            }
            None => self.close_with(CloseReason::ConnectionLost),
        }
    }

    /// One item from the frame decoder: a PDU, or a frame whose body could not be decoded.
    /// Ignored once closed.
    pub fn handle_pdu(&mut self, now: Instant, pdu: Result<Pdu, DecodeError>) {
        if self.is_closed() {
            return;
        }
        // Any PDU proves the link (3.4 §2.9), well-formed or not.
        self.last_received = now;
        if let State::Bound { link, .. } = &mut self.state {
            link.deadline = None;
        }
        match pdu {
            Ok(pdu) => {
                if !matches!(pdu.body, Body::EnquireLink | Body::EnquireLinkResp) {
                    self.last_activity = now;
                }
                if pdu.command_id().is_response() {
                    self.on_response(now, pdu);
                } else {
                    self.on_request(pdu);
                }
            }
            Err(error) => {
                if !matches!(
                    error.command_id,
                    CommandId::ENQUIRE_LINK | CommandId::ENQUIRE_LINK_RESP
                ) {
                    self.last_activity = now;
                }
                self.on_bad_pdu(now, error);
            }
        }
    }

    /// Runs every timer due at `now`: response timeouts, bind and unbind timeouts, the
    /// enquire_link timer and the link check, the inactivity timer, the drain deadline.
    /// Calling it early or often is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        while let Some(request) = self.in_flight.pop_expired(now) {
            self.timed_out.remember(request);
            self.events.push_back(Event::TimedOut(request));
        }
        match self.state {
            State::Open { deadline, .. } if deadline <= now => {
                self.close_with(CloseReason::BindTimeout);
                return;
            }
            State::Open { .. } => {}
            State::Bound {
                link,
                drain_deadline,
            } => {
                if link.deadline.is_some_and(|d| d <= now) {
                    self.close_with(CloseReason::LinkDead);
                    return;
                }
                if drain_deadline.is_some_and(|d| d <= now) {
                    self.send_unbind(now);
                    return;
                }
                if let Some(due) = self.enquire_link_due(link)
                    && due <= now
                {
                    self.send_enquire_link(now);
                }
                if drain_deadline.is_none()
                    && let Some(due) = self.inactivity_due()
                    && due <= now
                {
                    self.events.push_back(Event::InactivityTimeout);
                    self.unbind(now);
                    return;
                }
            }
            State::Unbinding { deadline, .. } if deadline <= now => {
                self.close_with(CloseReason::UnbindTimeout);
                return;
            }
            State::Unbinding { .. } | State::Closed => {}
        }
        self.finish_drain_if_done(now);
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// Appends every PDU waiting to be sent, encoded, to `buf`; returns how many. Write them
    /// in order, after any previous output. The session keeps the allocation of whichever
    /// buffer it ends up holding, so a driver that writes and clears its buffer each round
    /// and hands it back allocates nothing in the steady state.
    pub fn poll_transmit(&mut self, buf: &mut BytesMut) -> usize {
        let count = mem::take(&mut self.outbox_pdus);
        if count == 0 {
            return 0;
        }
        if buf.is_empty() {
            // Hand over the encoded bytes without copying; keep the driver's empty buffer
            // (and its capacity) for the next round.
            mem::swap(buf, &mut self.outbox);
        } else {
            buf.extend_from_slice(&self.outbox);
            self.outbox.clear();
        }
        count
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = match &self.state {
            State::Open { deadline, .. } | State::Unbinding { deadline, .. } => Some(*deadline),
            State::Bound {
                link,
                drain_deadline,
            } => [
                link.deadline,
                *drain_deadline,
                self.enquire_link_due(*link),
                drain_deadline
                    .is_none()
                    .then(|| self.inactivity_due())
                    .flatten(),
            ]
            .into_iter()
            .flatten()
            .min(),
            State::Closed => return None,
        };
        match (state, self.in_flight.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- internals -------------------------------------------------------------------------

    /// Encodes a PDU into the outbox.
    fn send(&mut self, pdu: &Pdu) {
        pdu.encode(&mut self.outbox);
        self.outbox_pdus += 1;
    }

    /// The next sequence number not in use: 1..=0x7FFFFFFF, wrapping to 1 (3.4 §5.1.4),
    /// skipping numbers still awaiting a response or remembered for a late one.
    fn allocate_sequence(&mut self) -> u32 {
        // The numbers in use are at most window + late memory + 2 (enquire_link and bind or
        // unbind), far fewer than 2^31, so this ends; almost always on the first try.
        loop {
            let candidate = self.next_sequence;
            self.next_sequence = if candidate >= MAX_SEQUENCE {
                1
            } else {
                candidate + 1
            };
            if !self.sequence_in_use(candidate) {
                return candidate;
            }
        }
    }

    fn sequence_in_use(&self, sequence_number: u32) -> bool {
        if self.in_flight.contains(sequence_number) || self.timed_out.contains(sequence_number) {
            return true;
        }
        match self.state {
            State::Open { bind_sequence, .. } => bind_sequence == sequence_number,
            State::Bound { link, .. } => link.sequence_number == Some(sequence_number),
            State::Unbinding {
                unbind_sequence,
                enquire_sequence,
                ..
            } => unbind_sequence == sequence_number || enquire_sequence == Some(sequence_number),
            State::Closed => false,
        }
    }

    /// When the next enquire_link is due, if the timer is on and none is being waited on.
    fn enquire_link_due(&self, link: LinkCheck) -> Option<Instant> {
        let interval = self.config.enquire_link_interval;
        (interval > Duration::ZERO && link.deadline.is_none())
            .then(|| self.last_received + interval)
    }

    /// When the inactivity timer expires, if it is on.
    fn inactivity_due(&self) -> Option<Instant> {
        let timeout = self.config.inactivity_timeout;
        (timeout > Duration::ZERO).then(|| self.last_activity + timeout)
    }

    fn send_enquire_link(&mut self, now: Instant) {
        let sequence_number = self.allocate_sequence();
        self.send(&Pdu::new(sequence_number, Body::EnquireLink));
        if let State::Bound { link, .. } = &mut self.state {
            *link = LinkCheck {
                sequence_number: Some(sequence_number),
                deadline: Some(now + self.config.response_timeout),
            };
        }
    }

    /// Sends unbind once a graceful unbind has drained the window and the pending inbound.
    fn finish_drain_if_done(&mut self, now: Instant) {
        if let State::Bound {
            drain_deadline: Some(_),
            ..
        } = self.state
            && self.in_flight.is_empty()
            && self.inbound.is_empty()
        {
            self.send_unbind(now);
        }
    }

    fn send_unbind(&mut self, now: Instant) {
        let enquire_sequence = match self.state {
            State::Bound { link, .. } => link.sequence_number,
            _ => None,
        };
        let unbind_sequence = self.allocate_sequence();
        self.send(&Pdu::new(unbind_sequence, Body::Unbind));
        self.state = State::Unbinding {
            unbind_sequence,
            deadline: now + self.config.unbind_timeout,
            enquire_sequence,
        };
    }

    /// Ends the session: hands back what is outstanding and queues [`Event::Closed`].
    /// Queued output stays, so an unbind_resp or generic_nack can still be written.
    fn close_with(&mut self, reason: CloseReason) {
        let in_flight = self.in_flight.drain();
        let mut unanswered: Vec<u32> = self.inbound.drain().map(|(seq, _)| seq).collect();
        // Map order is arbitrary; the event should not be.
        unanswered.sort_unstable();
        self.timed_out.clear();
        self.state = State::Closed;
        self.events.push_back(Event::Closed {
            reason,
            in_flight,
            unanswered,
        });
    }

    fn anomaly(&mut self, anomaly: Anomaly) {
        self.events.push_back(Event::Anomaly(anomaly));
    }

    /// Answers a request from the SMSC with an error status, by itself.
    fn refuse(
        &mut self,
        command_id: CommandId,
        sequence_number: u32,
        status: CommandStatus,
        reason: RefuseReason,
    ) {
        if let Some(body) = Body::empty_response(command_id) {
            self.send(&Pdu {
                body,
                command_status: status,
                sequence_number,
            });
        }
        self.anomaly(Anomaly::Refused {
            command_id,
            sequence_number,
            status,
            reason,
        });
    }

    fn on_request(&mut self, pdu: Pdu) {
        let bind_type = self.config.bind_type;
        let sequence_number = pdu.sequence_number;
        let command_id = pdu.command_id();
        match pdu.body {
            // 3.4 §4.11; answered in any state (5.0 allows it in OPEN, see the module docs).
            Body::EnquireLink => {
                self.send(&Pdu::new(sequence_number, Body::EnquireLinkResp));
            }
            // 3.4 §4.2: answer at once, fail what is outstanding, close. An unbind in OPEN is
            // out of place but its meaning is plain, so it gets the same treatment.
            Body::Unbind => {
                self.send(&Pdu::new(sequence_number, Body::UnbindResp));
                self.close_with(CloseReason::PeerUnbind);
            }
            Body::DeliverSm(pdu) => {
                if self.admit_inbound(command_id, sequence_number) {
                    self.events.push_back(Event::DeliverSm {
                        sequence_number,
                        pdu,
                    });
                }
            }
            Body::DataSm(pdu) => {
                if self.admit_inbound(command_id, sequence_number) {
                    self.events.push_back(Event::DataSm {
                        sequence_number,
                        pdu,
                    });
                }
            }
            Body::AlertNotification(alert) => {
                if self.is_bound() && bind_type.may_receive(command_id) {
                    self.events.push_back(Event::AlertNotification(alert));
                } else {
                    self.anomaly(Anomaly::Ignored {
                        command_id,
                        sequence_number,
                    });
                }
            }
            // No response PDU exists (3.4 §4.1.7); we are connected already.
            Body::Outbind(_) => self.anomaly(Anomaly::Ignored {
                command_id,
                sequence_number,
            }),
            Body::Unknown { .. } => {
                // generic_nack ESME_RINVCMDID with the request's sequence number (3.4 §3.3).
                self.send(&Pdu {
                    body: Body::GenericNack,
                    command_status: CommandStatus::ESME_RINVCMDID,
                    sequence_number,
                });
                self.anomaly(Anomaly::UnknownCommand {
                    command_id,
                    sequence_number,
                });
            }
            // Requests only an ESME sends (binds, submits, queries...): not legal from the
            // SMSC in any state (3.4 Table 2-1, §5.1.3).
            _ => self.refuse(
                command_id,
                sequence_number,
                CommandStatus::ESME_RINVBNDSTS,
                RefuseReason::WrongState,
            ),
        }
    }

    fn is_bound(&self) -> bool {
        matches!(self.state, State::Bound { .. } | State::Unbinding { .. })
    }

    /// Decides whether a deliver_sm or data_sm from the SMSC goes to the application, which
    /// then owes it an answer; if not, answers it here. True if admitted.
    fn admit_inbound(&mut self, command_id: CommandId, sequence_number: u32) -> bool {
        let refusal = match self.state {
            State::Bound { .. } if !self.config.bind_type.may_receive(command_id) => {
                Some((CommandStatus::ESME_RINVBNDSTS, RefuseReason::WrongState))
            }
            State::Bound { .. } if self.inbound.contains_key(&sequence_number) => Some((
                CommandStatus::ESME_RX_T_APPN,
                RefuseReason::DuplicateSequence,
            )),
            State::Bound { .. } if self.inbound.len() >= self.config.max_pending_inbound => {
                Some((CommandStatus::ESME_RX_T_APPN, RefuseReason::TooManyPending))
            }
            State::Bound { .. } => None,
            // After our unbind the application may not get to answer; a temporary error
            // makes the SMSC deliver it again rather than lose it.
            State::Unbinding { .. } => {
                Some((CommandStatus::ESME_RX_T_APPN, RefuseReason::Unbinding))
            }
            State::Open { .. } | State::Closed => {
                Some((CommandStatus::ESME_RINVBNDSTS, RefuseReason::WrongState))
            }
        };
        match refusal {
            Some((status, reason)) => {
                self.refuse(command_id, sequence_number, status, reason);
                false
            }
            None => {
                self.inbound.insert(sequence_number, command_id);
                true
            }
        }
    }

    fn on_response(&mut self, now: Instant, pdu: Pdu) {
        let sequence_number = pdu.sequence_number;
        let command_id = pdu.command_id();
        let is_nack = command_id == CommandId::GENERIC_NACK;
        match self.state {
            State::Open { bind_sequence, .. } if bind_sequence == sequence_number => {
                self.on_bind_response(now, pdu);
                return;
            }
            State::Bound { link, .. }
                if link.sequence_number == Some(sequence_number)
                    && (is_nack || command_id == CommandId::ENQUIRE_LINK_RESP) =>
            {
                if let State::Bound { link, .. } = &mut self.state {
                    *link = LinkCheck::default();
                }
                return;
            }
            State::Unbinding {
                unbind_sequence, ..
            } if unbind_sequence == sequence_number
                && (is_nack || command_id == CommandId::UNBIND_RESP) =>
            {
                self.close_with(CloseReason::Unbound);
                return;
            }
            State::Unbinding {
                enquire_sequence, ..
            } if enquire_sequence == Some(sequence_number)
                && (is_nack || command_id == CommandId::ENQUIRE_LINK_RESP) =>
            {
                if let State::Unbinding {
                    enquire_sequence, ..
                } = &mut self.state
                {
                    *enquire_sequence = None;
                }
                return;
            }
            _ => {}
        }
        let answers =
            |request: &Request| is_nack || request.command_id.response() == Some(command_id);
        if let Some((request, sent_at)) = self.in_flight.take_if(sequence_number, answers) {
            let accepted = pdu.command_status.is_ok() && !is_nack;
            let response = Self::response(request, Some(sent_at), pdu);
            self.events.push_back(if accepted {
                Event::Accepted(response)
            } else {
                Event::Rejected(response)
            });
            self.finish_drain_if_done(now);
        } else if self.timed_out.get(sequence_number).is_some_and(answers) {
            if let Some(request) = self.timed_out.take(sequence_number) {
                let response = Self::response(request, None, pdu);
                self.events.push_back(Event::LateResponse(response));
            }
        } else {
            self.anomaly(Anomaly::UnexpectedResponse {
                command_id,
                sequence_number,
                command_status: pdu.command_status,
            });
        }
    }

    fn response(request: Request, sent_at: Option<Instant>, pdu: Pdu) -> Response {
        Response {
            token: request.token,
            sequence_number: request.sequence_number,
            request: request.command_id,
            command_status: pdu.command_status,
            body: pdu.body,
            sent_at,
        }
    }

    /// bind_*_resp or generic_nack for our bind (3.4 §4.1.2).
    fn on_bind_response(&mut self, now: Instant, pdu: Pdu) {
        let resp = match pdu.body {
            // Any of the three is taken: the sequence number says it answers our bind, and an
            // SMSC answering with the wrong bind type's response is still saying yes or no.
            Body::BindTransmitterResp(resp)
            | Body::BindReceiverResp(resp)
            | Body::BindTransceiverResp(resp) => resp,
            Body::GenericNack => {
                // ESME_RINVCMDID here means the SMSC lacks this bind type (3.4 §4.1); the
                // supervisor may reconnect with another.
                self.close_with(CloseReason::BindRefused(pdu.command_status));
                return;
            }
            _ => {
                self.anomaly(Anomaly::UnexpectedResponse {
                    command_id: pdu.command_id(),
                    sequence_number: pdu.sequence_number,
                    command_status: pdu.command_status,
                });
                return;
            }
        };
        if !pdu.command_status.is_ok() {
            // 3.4 leaves the ESME in OPEN; SMSCs close the connection, and a retry belongs to
            // the supervisor, which needs the status to decide.
            self.close_with(CloseReason::BindRefused(pdu.command_status));
            return;
        }
        let (system_id, sc_interface_version) = match resp {
            Some(resp) => (resp.system_id, resp.tlvs.sc_interface_version()),
            None => (Default::default(), None),
        };
        self.state = State::Bound {
            link: LinkCheck::default(),
            drain_deadline: None,
        };
        self.last_received = now;
        self.last_activity = now;
        self.events.push_back(Event::Bound {
            system_id,
            sc_interface_version,
        });
    }

    /// A frame whose header was read but whose body was not.
    fn on_bad_pdu(&mut self, now: Instant, error: DecodeError) {
        let command_id = error.command_id;
        if !command_id.is_response() {
            // A request: answer with its own response and the field's status (3.4 §3.3);
            // the bind stays up.
            if let Some(answer) = error.response() {
                self.send(&answer);
            }
            self.anomaly(Anomaly::BadBody(error));
            return;
        }
        // A response: never answered. If it is for one of our requests, its header still
        // says how the request went; complete it with the empty response rather than leave
        // it to time out and be resubmitted (a duplicate if it was accepted).
        let body = if command_id == CommandId::GENERIC_NACK {
            // A generic_nack that carried octets it should not. The codec also reports a
            // frame whose length disagrees with its header under generic_nack's id; that one
            // says nothing about our request, so only the extra-octets case completes it.
            (error.reason == FailReason::UnexpectedBody).then_some(Body::GenericNack)
        } else {
            Body::empty_response(CommandId(command_id.0 & !0x8000_0000))
        };
        let command_status = error.command_status;
        let sequence_number = error.sequence_number;
        self.anomaly(Anomaly::BadBody(error));
        if let Some(body) = body {
            self.on_response(
                now,
                Pdu {
                    body,
                    command_status,
                    sequence_number,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests;

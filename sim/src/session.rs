//! One ESME connection, SMSC side: the 3.4 session rules (reference §6), the message
//! operations, and the faults.
//!
//! One task owns the connection. It reads whatever has arrived, decodes every whole PDU in the
//! buffer, appends every answer to one write buffer, and writes that buffer in as few system
//! calls as the socket allows: a load test is never limited by the simulator's system calls.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use smppd::pdu::{
    Bind, BindResp, Body, COctetString, CommandId, CommandStatus, DataSm, DecodeError, DestAddress,
    MessageState, Pdu, PduCodec, QuerySmResp, SmResp, SubmitMulti, SubmitMultiResp, SubmitSm,
    TimeString, TlvsBuilder, UnsuccessList, UnsuccessSme,
};
use smppd::sms::{self, Encoding, Sar};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::config::BindType;
use crate::ids::{IdText, Rng};
use crate::receipts::{Job, JobKind, ReceiptFacts, receipt_body, stat_state};
use crate::stats::Tally;
use crate::store::{Arrival, FxHashMap, StoredMessage};
use crate::{BoundSession, FaultState, Outbound, Shared};

/// Most deliver_sm written to one ESME and not yet answered.
const MAX_OUT_PENDING: usize = 1000;
/// How long a job the ESME refused waits before it is sent again.
const RESEND_DELAY: Duration = Duration::from_secs(1);
/// How long a response waits for a receipt sent ahead of it on another bind.
const HOLD_FOR_RECEIPT: Duration = Duration::from_millis(50);
/// How long the last writes may take when a connection closes.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(1);

enum State {
    /// Connected, not bound; closed at `deadline` if no bind arrives (session_init_timer).
    Open {
        deadline: Instant,
    },
    Bound(Bound),
}

struct Bound {
    account: usize,
    bind_type: BindType,
    bound_at: Instant,
    /// `bound_at` plus the disconnect_after_secs fault, recomputed when the faults change.
    disconnect_at: Option<Instant>,
}

/// Why the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// After writing what is queued.
    Graceful,
    /// At once, as a crashing or misbehaving SMSC would.
    Abrupt,
}

enum OutKind {
    Deliver(Job),
    EnquireLink,
    Unbind,
}

struct PendingOut {
    kind: OutKind,
}

struct Delayed {
    due: Instant,
    order: u64,
    pdu: Pdu,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    rng: Rng,
    state: State,
    wbuf: BytesMut,
    /// Responses held back by the latency fault.
    delayed: BinaryHeap<Reverse<Delayed>>,
    order: u64,
    /// Our requests (deliver_sm, enquire_link, unbind) awaiting the ESME's answer.
    pending_out: FxHashMap<u32, PendingOut>,
    /// The same requests in the order sent; the timeout is constant, so the front has the
    /// earliest deadline (entries already answered are skipped).
    out_order: VecDeque<(Instant, u32)>,
    next_seq: u32,
    /// Jobs for the scheduler, handed over after each batch.
    jobs_out: Vec<(Instant, Job)>,
    outbound: Option<mpsc::Receiver<Outbound>>,
    /// The bound account's faults; `None` until bound.
    faults_rx: Option<watch::Receiver<Arc<FaultState>>>,
    /// The faults as last read from `faults_rx`, refreshed before each event is handled, so a
    /// change made before a PDU arrives applies to it without a read of the watch per PDU.
    faults: Option<Arc<FaultState>>,
    /// An enquire_link of ours awaits its answer.
    enquire_link_pending: bool,
    pdus_received: u64,
    /// The next response waits [`HOLD_FOR_RECEIPT`] so a receipt sent on another bind
    /// arrives first (the receipt-before-response fault).
    hold_response: bool,
    last_rx: Instant,
    close: Option<Close>,
    /// Counts not yet added to the shared stats (after each event).
    tally: Tally,
    /// A message's text, decoded for its receipt (reused).
    text: String,
}

/// Serves one connection until it closes or `shutdown` fires.
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let now = Instant::now();
    let id = shared.next_session.fetch_add(1, Relaxed);
    let init = Duration::from_millis(shared.config.session_init_timeout_ms);
    let mut conn = Conn {
        rng: Rng::new(shared.config.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        shared,
        id,
        state: State::Open {
            deadline: now + init,
        },
        wbuf: BytesMut::with_capacity(64 * 1024),
        delayed: BinaryHeap::new(),
        order: 0,
        pending_out: FxHashMap::default(),
        out_order: VecDeque::new(),
        next_seq: 1,
        jobs_out: Vec::new(),
        outbound: None,
        faults_rx: None,
        faults: None,
        enquire_link_pending: false,
        pdus_received: 0,
        hold_response: false,
        last_rx: now,
        close: None,
        tally: Tally::default(),
        text: String::new(),
    };
    conn.shared.stats.connections_total.fetch_add(1, Relaxed);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut codec = PduCodec::with_max_len(conn.shared.config.max_pdu_len);

    // One timer, re-armed only when the next deadline moves.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        conn.refresh_faults(false);
        let stalled = conn.stalled();
        let deadline = conn.next_deadline();
        if deadline != armed {
            if let Some(d) = deadline {
                timer.as_mut().reset(d.into());
            }
            armed = deadline;
        }
        let can_take_outbound = conn.pending_out.len() < MAX_OUT_PENDING && !stalled;
        // Order matters under load: answers already made go out before more is read, and
        // deliveries are taken before reading too, so a busy ESME cannot starve its own
        // receipts. Reading comes last; it is the one source that never runs dry.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                conn.goodbye(Instant::now());
            }
            changed = changed_opt(conn.faults_rx.as_mut()) => {
                match changed {
                    // changed() marked the new value seen: read it now.
                    Ok(()) => conn.refresh_faults(true),
                    Err(_) => conn.close = Some(Close::Graceful),
                }
            }
            () = &mut timer, if armed.is_some() && !stalled => {
                // A completed timer must be reset before it waits again.
                armed = None;
                conn.handle_timeout(Instant::now());
            }
            // What was answered before a stall still goes out: a stall stops reading and
            // answering, it does not take back answers already given (and counted).
            written = wr.write_buf(&mut conn.wbuf), if !conn.wbuf.is_empty() => {
                match written {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            out = recv_opt(&mut conn.outbound), if can_take_outbound => {
                match out {
                    Some(out) => conn.take_outbound(Instant::now(), out),
                    None => conn.outbound = None,
                }
            }
            read = rd.read_buf(&mut rbuf), if !stalled => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let now = Instant::now();
                conn.last_rx = now;
                while conn.close.is_none() {
                    match codec.decode(&mut rbuf) {
                        Ok(Some(item)) => conn.handle(now, item),
                        Ok(None) => break,
                        Err(e) => {
                            // Framing is lost: answer with generic_nack if possible and close
                            // (3.4 §4.3).
                            if let Some(nack) = e.response() {
                                conn.write(&nack);
                            }
                            conn.close = Some(Close::Graceful);
                        }
                    }
                }
            }
        }
        conn.tally.flush(&conn.shared.stats);
        for job in conn.jobs_out.drain(..) {
            if conn.shared.jobs.send(job).await.is_err() {
                break;
            }
        }
        if let Some(close) = conn.close {
            if close == Close::Graceful && !conn.wbuf.is_empty() {
                let _ = tokio::time::timeout(FLUSH_ON_CLOSE, wr.write_all(&conn.wbuf)).await;
            }
            let _ = tokio::time::timeout(FLUSH_ON_CLOSE, wr.shutdown()).await;
            break;
        }
    }
    conn.finish().await;
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Outbound>>) -> Option<Outbound> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn changed_opt(
    rx: Option<&mut watch::Receiver<Arc<FaultState>>>,
) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

fn c<const N: usize>(text: &str) -> COctetString<N> {
    COctetString::new(text).unwrap_or_default()
}

/// The fields of submit_sm, data_sm and each submit_multi destination that matter here.
struct Submission<'a> {
    source: (smppd::pdu::Ton, smppd::pdu::Npi, &'a COctetString<21>),
    destination: (smppd::pdu::Ton, smppd::pdu::Npi, &'a [u8]),
    udhi: bool,
    registered_delivery: u8,
    data_coding: u8,
    payload: &'a [u8],
    sar: Option<Sar>,
    /// The id the ESME was given for this message when it is not this destination's own:
    /// submit_multi_resp carries one id, and every destination's receipt names it.
    given_id: Option<(u64, IdText)>,
}

impl Conn {
    /// Reads the account's faults again if they changed (or, with `force`, anyway).
    fn refresh_faults(&mut self, force: bool) {
        let Some(rx) = self.faults_rx.as_mut() else {
            return;
        };
        if force || rx.has_changed().unwrap_or(false) {
            self.faults = Some(rx.borrow_and_update().clone());
            self.faults_changed();
        }
    }

    /// One delivery from the scheduler, and every other one already waiting (up to the
    /// pending limit), so they go out in one write.
    fn take_outbound(&mut self, now: Instant, first: Outbound) {
        self.outbound(now, first);
        let Some(mut rx) = self.outbound.take() else {
            return;
        };
        while self.pending_out.len() < MAX_OUT_PENDING {
            match rx.try_recv() {
                Ok(out) => self.outbound(now, out),
                Err(mpsc::error::TryRecvError::Empty) => {
                    self.drained();
                    break;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        self.outbound = Some(rx);
    }

    /// This bind's delivery queue is empty: if the scheduler holds jobs back because the
    /// account's binds were full, it may try again now rather than at its next retry.
    fn drained(&self) {
        if let State::Bound(b) = &self.state {
            let account = &self.shared.accounts[b.account];
            // A plain load first: this runs for every batch of deliveries.
            if account.wants_room.load(Relaxed) && account.wants_room.swap(false, Relaxed) {
                self.shared.room.notify_one();
            }
        }
    }

    /// The account's faults were changed at run time: a disconnect_after_secs set now applies
    /// to this bind too, counted from its bind.
    fn faults_changed(&mut self) {
        let secs = self
            .faults
            .as_ref()
            .and_then(|f| f.faults.disconnect_after_secs);
        if let State::Bound(b) = &mut self.state {
            b.disconnect_at = secs.map(|s| b.bound_at + Duration::from_secs_f64(s.max(0.0)));
        }
    }

    fn stalled(&self) -> bool {
        self.faults.as_ref().is_some_and(|f| f.faults.stall)
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(_, seq)) = self.out_order.front() {
            if self.pending_out.contains_key(&seq) {
                break;
            }
            self.out_order.pop_front();
        }
        let mut deadline = self.out_order.front().map(|&(d, _)| d);
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        };
        at(self.delayed.peek().map(|d| d.0.due));
        match &self.state {
            State::Open { deadline } => at(Some(*deadline)),
            State::Bound(b) => {
                at(b.disconnect_at);
                at(self.enquire_link_due());
            }
        }
        deadline
    }

    fn enquire_link_due(&self) -> Option<Instant> {
        let interval = self.shared.config.enquire_link_interval_ms;
        // Never before the bind (reference §6.2: SMSCs drop such sessions, and so may ESMEs).
        let bound = matches!(self.state, State::Bound(_));
        (bound && interval > 0 && !self.enquire_link_pending)
            .then(|| self.last_rx + Duration::from_millis(interval))
    }

    fn sequence(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = if seq >= smppd::pdu::MAX_SEQUENCE {
            1
        } else {
            seq + 1
        };
        seq
    }

    fn write(&mut self, pdu: &Pdu) {
        pdu.encode(&mut self.wbuf);
        self.tally
            .sent(pdu.command_id(), pdu.command_status, &self.shared.stats);
    }

    fn respond(&mut self, sequence_number: u32, status: CommandStatus, body: Body) {
        self.write(&Pdu {
            command_status: status,
            sequence_number,
            body,
        });
    }

    /// Answers `request` with its empty response carrying `status`.
    fn refuse(&mut self, request: CommandId, sequence_number: u32, status: CommandStatus) {
        let body = Body::empty_response(request).unwrap_or(Body::GenericNack);
        self.respond(sequence_number, status, body);
    }

    /// Sends a response now, later (latency fault) or never (drop fault).
    fn respond_with_faults(&mut self, now: Instant, pdu: Pdu, faults: &FaultState) {
        if self.rng.chance(faults.faults.drop_response_rate) {
            self.tally.responses_dropped += 1;
            return;
        }
        let latency = faults.faults.latency;
        let hold = std::mem::take(&mut self.hold_response);
        if latency.is_zero() && !hold {
            self.write(&pdu);
        } else {
            let mut ms = self.rng.range(latency.min_ms, latency.max_ms);
            if hold {
                ms += HOLD_FOR_RECEIPT.as_millis() as u64;
            }
            self.order += 1;
            self.delayed.push(Reverse(Delayed {
                due: now + Duration::from_millis(ms),
                order: self.order,
                pdu,
            }));
        }
    }

    fn send_request(&mut self, now: Instant, body: Body, kind: OutKind) {
        let seq = self.sequence();
        self.write(&Pdu::new(seq, body));
        self.await_answer(now, seq, kind);
    }

    /// Remembers a request of ours, written with `seq`, until the ESME answers it.
    fn await_answer(&mut self, now: Instant, seq: u32, kind: OutKind) {
        let deadline = now + Duration::from_millis(self.shared.config.response_timeout_ms);
        self.pending_out.insert(seq, PendingOut { kind });
        self.out_order.push_back((deadline, seq));
    }

    fn handle(&mut self, now: Instant, item: Result<Pdu, DecodeError>) {
        self.pdus_received += 1;
        let pdu = match item {
            Ok(pdu) => pdu,
            Err(e) => {
                self.tally.received(e.command_id);
                // A bad body: the request's own response with the field's status, or
                // generic_nack; the session lives on (3.4 §3.3).
                match e.response() {
                    Some(answer) => self.write(&answer),
                    None if !e.command_id.is_response() => {
                        self.respond(e.sequence_number, e.status, Body::GenericNack)
                    }
                    None => {}
                }
                return;
            }
        };
        self.tally.received(pdu.command_id());
        if let Some(faults) = &self.faults
            && faults
                .faults
                .disconnect_after_pdus
                .is_some_and(|n| self.pdus_received >= n)
        {
            self.tally.disconnects_injected += 1;
            self.close = Some(Close::Abrupt);
            return;
        }
        let seq = pdu.sequence_number;
        let status = pdu.command_status;
        match pdu.body {
            Body::BindTransmitter(b) => self.bind(now, seq, BindType::Transmitter, b),
            Body::BindReceiver(b) => self.bind(now, seq, BindType::Receiver, b),
            Body::BindTransceiver(b) => self.bind(now, seq, BindType::Transceiver, b),
            // Answered in any state (reference §9: 5.0 allows it before bind).
            Body::EnquireLink => self.respond(seq, CommandStatus::ESME_ROK, Body::EnquireLinkResp),
            Body::Unbind => match self.state {
                State::Bound(_) => {
                    self.respond(seq, CommandStatus::ESME_ROK, Body::UnbindResp);
                    self.close = Some(Close::Graceful);
                }
                State::Open { .. } => {
                    self.respond(seq, CommandStatus::ESME_RINVBNDSTS, Body::UnbindResp)
                }
            },
            Body::SubmitSm(sm) => self.submit_sm(now, seq, &sm),
            Body::SubmitMulti(m) => self.submit_multi(now, seq, &m),
            Body::DataSm(d) => self.data_sm(now, seq, &d),
            Body::QuerySm(q) => self.query_sm(seq, &q),
            Body::CancelSm(c) => self.cancel_sm(now, seq, &c),
            Body::ReplaceSm(r) => self.replace_sm(seq, &r),
            Body::DeliverSmResp(_) | Body::DataSmResp(_) | Body::EnquireLinkResp => {
                self.settle(now, seq, status)
            }
            Body::GenericNack => self.settle(now, seq, status.max(CommandStatus(1))),
            Body::UnbindResp => {
                self.pending_out.remove(&seq);
                self.close = Some(Close::Graceful);
            }
            Body::Unknown { .. } => {
                if let Some(nack) = pdu.unknown_command_response() {
                    self.write(&nack);
                }
            }
            // An SMSC's own commands (deliver_sm, outbind, alert_notification) coming from
            // the ESME are illegal in every state here (3.4 Table 2-1).
            Body::DeliverSm(_) | Body::Outbind(_) | Body::AlertNotification(_) => {
                let id = pdu.body.command_id();
                match Body::empty_response(id) {
                    Some(body) => self.respond(seq, CommandStatus::ESME_RINVBNDSTS, body),
                    None => self.respond(seq, CommandStatus::ESME_RINVBNDSTS, Body::GenericNack),
                }
            }
            // Responses to requests this SMSC never sends: dropped, never answered.
            _ => {}
        }
    }

    fn bind(&mut self, now: Instant, seq: u32, bind_type: BindType, bind: Bind) {
        let request = match bind_type {
            BindType::Transmitter => CommandId::BIND_TRANSMITTER,
            BindType::Receiver => CommandId::BIND_RECEIVER,
            BindType::Transceiver => CommandId::BIND_TRANSCEIVER,
        };
        if let State::Bound(_) = self.state {
            return self.refuse(request, seq, CommandStatus::ESME_RALYBND);
        }
        let shared = self.shared.clone();
        let refuse = |conn: &mut Conn, status| {
            conn.shared.stats.binds_refused.fetch_add(1, Relaxed);
            conn.refuse(request, seq, status);
        };
        let Some(index) = bind
            .system_id
            .as_str()
            .and_then(|id| shared.account_index.get(id).copied())
        else {
            return refuse(self, CommandStatus::ESME_RINVSYSID);
        };
        let account = &shared.accounts[index];
        if bind.password.as_bytes() != account.config.password.as_bytes() {
            return refuse(self, CommandStatus::ESME_RINVPASWD);
        }
        if !account.config.bind_types.contains(&bind_type) {
            return refuse(self, CommandStatus::ESME_RBINDFAIL);
        }
        if account.refusing(now) {
            return refuse(self, CommandStatus::ESME_RBINDFAIL);
        }
        // Room for a full window of deliveries, so the scheduler rarely finds a bind full.
        let (tx, rx) = mpsc::channel(MAX_OUT_PENDING);
        {
            let Ok(mut binds) = account.binds.lock() else {
                return refuse(self, CommandStatus::ESME_RSYSERR);
            };
            if binds.len() >= account.config.max_binds {
                drop(binds);
                return refuse(self, CommandStatus::ESME_RALYBND);
            }
            binds.push(BoundSession {
                session: self.id,
                bind_type,
                tx,
            });
        }
        let faults = account.faults.subscribe();
        let disconnect_at = faults
            .borrow()
            .faults
            .disconnect_after_secs
            .map(|s| now + Duration::from_secs_f64(s.max(0.0)));
        self.state = State::Bound(Bound {
            account: index,
            bind_type,
            bound_at: now,
            disconnect_at,
        });
        self.faults = Some(faults.borrow().clone());
        self.faults_rx = Some(faults);
        self.outbound = Some(rx);
        if bind_type.can_receive() {
            // Jobs held back for want of a receiving bind can go now.
            self.shared.room.notify_one();
        }
        self.shared.stats.binds_total.fetch_add(1, Relaxed);
        self.shared.stats.binds_active.fetch_add(1, Relaxed);
        let body = BindResp {
            system_id: c(&self.shared.config.system_id),
            tlvs: TlvsBuilder::new()
                .u8(smppd::pdu::TlvTag::SC_INTERFACE_VERSION, 0x34)
                .build(),
        };
        let resp = match bind_type {
            BindType::Transmitter => Body::BindTransmitterResp(Some(body)),
            BindType::Receiver => Body::BindReceiverResp(Some(body)),
            BindType::Transceiver => Body::BindTransceiverResp(Some(body)),
        };
        self.respond(seq, CommandStatus::ESME_ROK, resp);
    }

    /// The bound account if this bind may submit, else the status to refuse with.
    fn submitter(&self) -> Result<usize, CommandStatus> {
        match (&self.state, &self.faults) {
            (State::Bound(b), Some(_)) if b.bind_type.can_submit() => Ok(b.account),
            _ => Err(CommandStatus::ESME_RINVBNDSTS),
        }
    }

    /// Runs `f` with the bound account and its faults, or refuses `request` as
    /// [`Conn::submitter`] says. The faults are lent out of `self` meanwhile: cloning the
    /// `Arc` would cost two atomic operations on a count every bind of the account shares.
    fn as_submitter(
        &mut self,
        request: CommandId,
        seq: u32,
        f: impl FnOnce(&mut Self, usize, &FaultState),
    ) {
        let account = match self.submitter() {
            Ok(account) => account,
            Err(status) => return self.refuse(request, seq, status),
        };
        // submitter() checked that the faults are there.
        if let Some(faults) = self.faults.take() {
            f(self, account, &faults);
            self.faults = Some(faults);
        }
    }

    /// The faults that refuse a submit before it is accepted: throttling, a full window, and
    /// injected errors, in that order.
    fn submit_refusal(
        &mut self,
        now: Instant,
        account: usize,
        faults: &FaultState,
    ) -> Option<CommandStatus> {
        if let Some(tps) = faults.faults.tps_limit
            && !self.shared.accounts[account].take_token(now, tps)
        {
            return Some(CommandStatus::ESME_RTHROTTLED);
        }
        if faults
            .faults
            .window_limit
            .is_some_and(|w| self.delayed.len() >= w as usize)
        {
            return Some(CommandStatus::ESME_RMSGQFUL);
        }
        if self.rng.chance(faults.faults.error_rate) && !faults.error_statuses.is_empty() {
            let i = self.rng.range(0, faults.error_statuses.len() as u64 - 1) as usize;
            return Some(faults.error_statuses[i]);
        }
        None
    }

    fn error_response(&mut self, request: CommandId) -> Body {
        if self.shared.config.error_response_with_id && request == CommandId::SUBMIT_SM {
            let (_, id) = self.shared.next_message_id();
            return Body::SubmitSmResp(Some(SmResp {
                message_id: c(id.as_str()),
                tlvs: Default::default(),
            }));
        }
        Body::empty_response(request).unwrap_or(Body::GenericNack)
    }

    fn submit_sm(&mut self, now: Instant, seq: u32, sm: &SubmitSm) {
        self.as_submitter(CommandId::SUBMIT_SM, seq, |conn, account, faults| {
            if let Some(status) = conn.submit_refusal(now, account, faults) {
                let body = conn.error_response(CommandId::SUBMIT_SM);
                let pdu = Pdu {
                    command_status: status,
                    sequence_number: seq,
                    body,
                };
                return conn.respond_with_faults(now, pdu, faults);
            }
            let payload = match sm.tlvs.message_payload() {
                Some(p) if sm.short_message.is_empty() => p,
                _ => sm.short_message.bytes().clone(),
            };
            let (_, id) = conn.accept(
                now,
                account,
                faults,
                &Submission {
                    source: (sm.source_addr_ton, sm.source_addr_npi, &sm.source_addr),
                    destination: (
                        sm.dest_addr_ton,
                        sm.dest_addr_npi,
                        sm.destination_addr.as_bytes(),
                    ),
                    udhi: sm.esm_class.has_udhi(),
                    registered_delivery: sm.registered_delivery.smsc_receipt(),
                    data_coding: sm.data_coding.0,
                    payload: &payload,
                    sar: sm.tlvs.sar().map(|s| Sar {
                        ref_num: s.msg_ref_num,
                        total: s.total_segments,
                        seq: s.segment_seqnum,
                    }),
                    given_id: None,
                },
            );
            let body = Body::SubmitSmResp(Some(SmResp {
                message_id: c(id.as_str()),
                tlvs: Default::default(),
            }));
            conn.respond_with_faults(now, Pdu::new(seq, body), faults);
        });
    }

    fn data_sm(&mut self, now: Instant, seq: u32, d: &DataSm) {
        self.as_submitter(CommandId::DATA_SM, seq, |conn, account, faults| {
            if let Some(status) = conn.submit_refusal(now, account, faults) {
                let pdu = Pdu {
                    command_status: status,
                    sequence_number: seq,
                    body: Body::DataSmResp(None),
                };
                return conn.respond_with_faults(now, pdu, faults);
            }
            let payload = d.tlvs.message_payload().unwrap_or_default();
            // data_sm addresses are C65; the table keeps what fits a submit's C21.
            let source: COctetString<21> =
                COctetString::new(d.source_addr.as_bytes()).unwrap_or_default();
            let (_, id) = conn.accept(
                now,
                account,
                faults,
                &Submission {
                    source: (d.source_addr_ton, d.source_addr_npi, &source),
                    destination: (
                        d.dest_addr_ton,
                        d.dest_addr_npi,
                        d.destination_addr.as_bytes(),
                    ),
                    udhi: d.esm_class.has_udhi(),
                    registered_delivery: d.registered_delivery.smsc_receipt(),
                    data_coding: d.data_coding.0,
                    payload: &payload,
                    sar: d.tlvs.sar().map(|s| Sar {
                        ref_num: s.msg_ref_num,
                        total: s.total_segments,
                        seq: s.segment_seqnum,
                    }),
                    given_id: None,
                },
            );
            let body = Body::DataSmResp(Some(SmResp {
                message_id: c(id.as_str()),
                tlvs: Default::default(),
            }));
            conn.respond_with_faults(now, Pdu::new(seq, body), faults);
        });
    }

    fn submit_multi(&mut self, now: Instant, seq: u32, m: &SubmitMulti) {
        self.as_submitter(CommandId::SUBMIT_MULTI, seq, |conn, account, faults| {
            if let Some(status) = conn.submit_refusal(now, account, faults) {
                let pdu = Pdu {
                    command_status: status,
                    sequence_number: seq,
                    body: Body::SubmitMultiResp(None),
                };
                return conn.respond_with_faults(now, pdu, faults);
            }
            let mut failed = Vec::new();
            let mut first_id: Option<(u64, IdText)> = None;
            for dest in m.dest_addresses.as_slice() {
                match dest {
                    DestAddress::Sme {
                        dest_addr_ton,
                        dest_addr_npi,
                        destination_addr,
                    } => {
                        let id = conn.accept(
                            now,
                            account,
                            faults,
                            &Submission {
                                source: (m.source_addr_ton, m.source_addr_npi, &m.source_addr),
                                destination: (
                                    *dest_addr_ton,
                                    *dest_addr_npi,
                                    destination_addr.as_bytes(),
                                ),
                                udhi: m.esm_class.has_udhi(),
                                registered_delivery: m.registered_delivery.smsc_receipt(),
                                data_coding: m.data_coding.0,
                                payload: m.short_message.as_bytes(),
                                sar: None,
                                given_id: first_id,
                            },
                        );
                        first_id.get_or_insert(id);
                    }
                    // This SMSC keeps no distribution lists.
                    DestAddress::DistributionList { dl_name } => failed.push(UnsuccessSme {
                        destination_addr: *dl_name,
                        error_status_code: CommandStatus::ESME_RINVDLNAME,
                        ..UnsuccessSme::default()
                    }),
                }
            }
            let body = Body::SubmitMultiResp(Some(SubmitMultiResp {
                message_id: first_id.map(|(_, id)| c(id.as_str())).unwrap_or_default(),
                unsuccess_smes: UnsuccessList::new(failed).unwrap_or_default(),
                tlvs: Default::default(),
            }));
            conn.respond_with_faults(now, Pdu::new(seq, body), faults);
        });
    }

    /// Accepts one message: id, table, handset view, receipt. Returns the id (its counter
    /// and text).
    fn accept(
        &mut self,
        now: Instant,
        account: usize,
        faults: &FaultState,
        s: &Submission<'_>,
    ) -> (u64, IdText) {
        // Borrowed, not cloned: a clone is two atomic operations on a count every session
        // shares.
        let shared = &*self.shared;
        let acct = &shared.accounts[account];
        let (counter, id) = shared.next_message_id();
        self.tally.messages_accepted += 1;
        let source = String::from_utf8_lossy(s.source.2.as_bytes());
        let destination = String::from_utf8_lossy(s.destination.2);

        // The outcome is drawn now, whether or not a receipt is wanted, so query_sm can
        // report it.
        let outcome_index = pick(&mut self.rng, &acct.config.receipts.outcomes);
        let outcome = &acct.config.receipts.outcomes[outcome_index];
        let state = stat_state(&outcome.stat).unwrap_or(MessageState::UNKNOWN);
        let delay = acct.config.receipts.delay;
        let extra = faults.faults.receipt_delay;
        let final_in = Duration::from_millis(
            self.rng
                .range(delay.min_ms, delay.max_ms)
                .saturating_add(self.rng.range(extra.min_ms, extra.max_ms)),
        );
        let submitted = SystemTime::now();
        if let Ok(mut table) = shared.messages.lock() {
            table.insert(
                counter,
                StoredMessage {
                    account,
                    source_addr: *s.source.2,
                    destination_addr: COctetString::new(s.destination.2).unwrap_or_default(),
                    state,
                    done: Some(submitted + final_in),
                    error_code: outcome.err.min(255) as u8,
                    data_coding: s.data_coding,
                },
            );
        }
        if let Ok(mut handset) = shared.handset.lock() {
            handset.record(
                now,
                Arrival {
                    account: &acct.config.system_id,
                    from: &source,
                    to: &destination,
                    data_coding: s.data_coding,
                    udhi: s.udhi,
                    sar: s.sar,
                    payload: s.payload,
                    message_id: id.as_str(),
                },
                &acct.text_options,
            );
        }

        let wanted = match s.registered_delivery {
            1 => true,
            2 => state != MessageState::DELIVERED,
            3 => state == MessageState::DELIVERED,
            _ => false,
        };
        if !wanted || (!acct.config.receipts.per_part && !is_first_part(s)) {
            return (counter, id);
        }
        if self.rng.chance(faults.faults.receipt_drop_rate) {
            self.tally.receipts_dropped += 1;
            return (counter, id);
        }
        // Plain GSM text (the common case) is decoded into a reused buffer.
        let plain_gsm = !s.udhi
            && !acct.text_options.packed
            && matches!(
                Encoding::from_data_coding(s.data_coding, &acct.text_options),
                Some(Encoding::Gsm7)
            );
        let text = if plain_gsm {
            self.text.clear();
            sms::gsm::decode_into(s.payload, &mut self.text);
            Cow::Borrowed(self.text.as_str())
        } else {
            Cow::Owned(sms::decode_text(
                s.data_coding,
                s.udhi,
                s.payload,
                &acct.text_options,
            ))
        };
        let (given_counter, given_id) = s.given_id.unwrap_or((counter, id));
        let body = receipt_body(&ReceiptFacts {
            message_id: given_id.as_str(),
            numeric_id: shared.ids.numeric(given_counter),
            text_id: acct.config.receipts.text_id,
            format: acct.config.receipts.format,
            outcome,
            source: (s.source.0, s.source.1, &source),
            destination: (s.destination.0, s.destination.1, &destination),
            submitted,
            done: submitted + final_in,
            text: &text,
        });
        let job = Job::new(account, JobKind::Receipt { message: counter }, body, now);
        if faults.faults.receipt_before_response {
            // On a transceiver the receipt goes out right here, ahead of the response;
            // otherwise it is due now and the response waits a little.
            if self.can_receive() {
                self.outbound(now, Outbound::Deliver(job));
            } else {
                self.jobs_out.push((now, job));
                self.hold_response = true;
            }
        } else {
            self.jobs_out.push((now + final_in, job));
        }
        (counter, id)
    }

    /// The table key of a message id the ESME names, if it is one of ours.
    fn counter_of(&self, id: &COctetString<65>) -> Option<u64> {
        id.as_str().and_then(|id| self.shared.ids.counter(id))
    }

    fn can_receive(&self) -> bool {
        matches!(&self.state, State::Bound(b) if b.bind_type.can_receive())
    }

    fn query_sm(&mut self, seq: u32, q: &smppd::pdu::QuerySm) {
        let account = match self.submitter() {
            Ok(account) => account,
            Err(status) => return self.refuse(CommandId::QUERY_SM, seq, status),
        };
        // Another account's messages are not visible (3.4 §4.8.1).
        let found = self.counter_of(&q.message_id).and_then(|counter| {
            let table = self.shared.messages.lock().ok()?;
            table.get(counter).filter(|m| m.account == account).copied()
        });
        let Some(m) = found else {
            return self.refuse(CommandId::QUERY_SM, seq, CommandStatus::ESME_RINVMSGID);
        };
        let now = SystemTime::now();
        let (state, final_date) = match m.done {
            Some(done) if done <= now => (m.state, final_date(done)),
            _ => (MessageState::ENROUTE, TimeString::empty()),
        };
        let body = Body::QuerySmResp(Some(QuerySmResp {
            message_id: q.message_id,
            final_date,
            message_state: state,
            error_code: if state.is_final() { m.error_code } else { 0 },
            tlvs: Default::default(),
        }));
        self.respond(seq, CommandStatus::ESME_ROK, body);
    }

    fn cancel_sm(&mut self, now: Instant, seq: u32, cancel: &smppd::pdu::CancelSm) {
        let account = match self.submitter() {
            Ok(account) => account,
            Err(status) => return self.refuse(CommandId::CANCEL_SM, seq, status),
        };
        let _ = now;
        let wall = SystemTime::now();
        let source = cancel.source_addr.as_bytes();
        let destination = cancel.destination_addr.as_bytes();
        let pending = |m: &StoredMessage| {
            m.account == account
                && m.source_addr.as_bytes() == source
                && m.done.is_some_and(|d| d > wall)
        };
        let cancelled_count = &self.shared.cancelled;
        let cancel_one = |m: &mut StoredMessage| {
            m.state = MessageState::DELETED;
            m.done = Some(wall);
            cancelled_count.fetch_add(1, Relaxed);
        };
        // 3.4 §4.9: with a message_id, that message; without, every pending message from
        // this source to this destination.
        let by_id = (!cancel.message_id.is_empty()).then(|| self.counter_of(&cancel.message_id));
        let cancelled = match self.shared.messages.lock() {
            Ok(mut table) => match by_id {
                Some(counter) => match counter.and_then(|c| table.get_mut(c)) {
                    Some(m) if pending(m) => {
                        cancel_one(m);
                        true
                    }
                    _ => false,
                },
                None => {
                    let mut any = false;
                    for m in table.values_mut() {
                        if pending(m) && m.destination_addr.as_bytes() == destination {
                            cancel_one(m);
                            any = true;
                        }
                    }
                    any
                }
            },
            Err(_) => false,
        };
        let status = if cancelled {
            CommandStatus::ESME_ROK
        } else {
            CommandStatus::ESME_RCANCELFAIL
        };
        self.respond(seq, status, Body::CancelSmResp);
    }

    fn replace_sm(&mut self, seq: u32, r: &smppd::pdu::ReplaceSm) {
        let account = match self.submitter() {
            Ok(account) => account,
            Err(status) => return self.refuse(CommandId::REPLACE_SM, seq, status),
        };
        let wall = SystemTime::now();
        let id = r.message_id.to_string();
        let counter = self.counter_of(&r.message_id);
        // Only a pending message of this account, from the same source (3.4 §4.10.1).
        let data_coding = match (counter, self.shared.messages.lock()) {
            (Some(counter), Ok(table)) => table
                .get(counter)
                .filter(|m| {
                    m.account == account
                        && m.done.is_some_and(|d| d > wall)
                        && m.source_addr.as_bytes() == r.source_addr.as_bytes()
                })
                .map(|m| m.data_coding),
            _ => None,
        };
        let Some(data_coding) = data_coding else {
            return self.refuse(CommandId::REPLACE_SM, seq, CommandStatus::ESME_RREPLACEFAIL);
        };
        let options = &self.shared.accounts[account].text_options;
        let text = sms::decode_text(data_coding, false, r.short_message.as_bytes(), options);
        if let Ok(mut handset) = self.shared.handset.lock() {
            handset.replace_text(&id, text);
        }
        self.respond(seq, CommandStatus::ESME_ROK, Body::ReplaceSmResp);
    }

    /// Writes a deliver_sm (receipt or MO) or raw octets queued for this bind.
    fn outbound(&mut self, now: Instant, out: Outbound) {
        match out {
            Outbound::Deliver(job) => {
                // A receipt for a message cancelled meanwhile is not sent. (Only looked up
                // once anything was cancelled: this runs for every receipt.)
                if let JobKind::Receipt { message } = job.kind
                    && self.shared.cancelled.load(Relaxed) > 0
                    && self
                        .shared
                        .messages
                        .lock()
                        .ok()
                        .and_then(|t| t.get(message).map(|m| m.state == MessageState::DELETED))
                        .unwrap_or(false)
                {
                    return;
                }
                match job.kind {
                    JobKind::Receipt { .. } => {
                        self.tally.receipts_sent += 1;
                        if job.attempts > 0 {
                            self.tally.receipts_resent += 1;
                        }
                    }
                    JobKind::Mo => {
                        self.tally.mo_sent += 1;
                    }
                }
                let seq = self.sequence();
                job.write(seq, &mut self.wbuf);
                self.tally.sent(
                    CommandId::DELIVER_SM,
                    CommandStatus::ESME_ROK,
                    &self.shared.stats,
                );
                self.await_answer(now, seq, OutKind::Deliver(job));
            }
            Outbound::Raw(bytes) => self.wbuf.extend_from_slice(&bytes),
        }
    }

    /// The ESME answered one of our requests.
    fn settle(&mut self, now: Instant, seq: u32, status: CommandStatus) {
        let Some(pending) = self.pending_out.remove(&seq) else {
            return;
        };
        match pending.kind {
            OutKind::Deliver(job) if status.is_ok() => {
                if matches!(job.kind, JobKind::Receipt { .. }) {
                    self.tally.receipts_acked += 1;
                }
            }
            OutKind::Deliver(job) => self.resend_later(now, job),
            OutKind::EnquireLink => self.enquire_link_pending = false,
            OutKind::Unbind => {}
        }
    }

    fn resend_later(&mut self, now: Instant, mut job: Job) {
        job.attempts += 1;
        let max = self.shared.accounts[job.account]
            .config
            .receipts
            .max_resends;
        if job.attempts > max {
            // (An MO part given up is not a receipt: it is not counted as one.)
            if matches!(job.kind, JobKind::Receipt { .. }) {
                self.tally.receipts_dropped += 1;
            }
        } else {
            self.jobs_out.push((now + RESEND_DELAY, job));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let State::Open { deadline } = self.state
            && now >= deadline
        {
            self.close = Some(Close::Graceful);
            return;
        }
        if let State::Bound(b) = &self.state
            && b.disconnect_at.is_some_and(|t| now >= t)
        {
            self.tally.disconnects_injected += 1;
            self.close = Some(Close::Abrupt);
            return;
        }
        while self.delayed.peek().is_some_and(|d| d.0.due <= now) {
            if let Some(Reverse(d)) = self.delayed.pop() {
                self.write(&d.pdu);
            }
        }
        while let Some(&(deadline, seq)) = self.out_order.front() {
            if deadline > now {
                break;
            }
            self.out_order.pop_front();
            if let Some(p) = self.pending_out.remove(&seq) {
                match p.kind {
                    OutKind::Deliver(job) => self.resend_later(now, job),
                    // The link is dead (3.4 §2.9): close.
                    OutKind::EnquireLink | OutKind::Unbind => {
                        self.close = Some(Close::Abrupt);
                        return;
                    }
                }
            }
        }
        if self.enquire_link_due().is_some_and(|t| now >= t) {
            self.send_request(now, Body::EnquireLink, OutKind::EnquireLink);
            self.enquire_link_pending = true;
        }
    }

    /// The simulator is shutting down: unbind politely and close.
    fn goodbye(&mut self, now: Instant) {
        if let State::Bound(_) = self.state {
            self.send_request(now, Body::Unbind, OutKind::Unbind);
        }
        self.close = Some(Close::Graceful);
    }

    /// Unregisters the bind and hands unanswered deliveries back to the scheduler, so they
    /// reach the ESME on another bind (or this one after it reconnects).
    async fn finish(mut self) {
        self.tally.flush(&self.shared.stats);
        if let State::Bound(b) = &self.state {
            let account = &self.shared.accounts[b.account];
            if let Ok(mut binds) = account.binds.lock() {
                binds.retain(|s| s.session != self.id);
            }
            self.shared.stats.binds_active.fetch_sub(1, Relaxed);
        }
        let now = Instant::now();
        let pending: Vec<PendingOut> = self.pending_out.drain().map(|(_, p)| p).collect();
        for p in pending {
            if let OutKind::Deliver(job) = p.kind {
                self.jobs_out.push((now, job));
            }
        }
        // Deliveries queued for this bind but never written go back too.
        if let Some(mut rx) = self.outbound.take() {
            rx.close();
            while let Ok(out) = rx.try_recv() {
                if let Outbound::Deliver(job) = out {
                    self.jobs_out.push((now, job));
                }
            }
        }
        for job in self.jobs_out.drain(..) {
            let _ = self.shared.jobs.send(job).await;
        }
    }
}

fn is_first_part(s: &Submission<'_>) -> bool {
    if let Some(sar) = s.sar {
        return sar.seq <= 1;
    }
    if s.udhi
        && let Ok((udh, _)) = sms::parse_udh(s.payload)
        && let Some(concat) = udh.concat_info()
    {
        return concat.seq <= 1;
    }
    true
}

/// A weighted pick; the first outcome when the weights are all zero.
fn pick(rng: &mut Rng, outcomes: &[crate::config::Outcome]) -> usize {
    let total: f64 = outcomes.iter().map(|o| o.weight).sum();
    if outcomes.len() <= 1 || total <= 0.0 {
        return 0;
    }
    let mut x = rng.next_f64() * total;
    for (i, o) in outcomes.iter().enumerate() {
        if x < o.weight {
            return i;
        }
        x -= o.weight;
    }
    outcomes.len() - 1
}

/// `YYMMDDhhmmss000+` in UTC (3.4 §7.1.1; nn = 00 quarter hours from UTC).
fn final_date(t: SystemTime) -> TimeString {
    let minutes = crate::receipts::receipt_date(t);
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 60);
    TimeString::try_from(format!("{minutes}{secs:02}000+").as_str()).unwrap_or_default()
}

impl From<Bytes> for Outbound {
    fn from(bytes: Bytes) -> Self {
        Outbound::Raw(bytes)
    }
}

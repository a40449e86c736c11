//! The tokio driver of one bind: runs a [`Session`] over any `AsyncRead + AsyncWrite`
//! (TCP, TLS, `tokio::io::duplex` in tests).
//!
//! [`run`] is one task, the only owner of the socket and the session (DESIGN "One owner per
//! bind"). It waits on: room to write, bytes in, a message to submit, an answer to an inbound
//! request, the session's one timer (re-armed to [`Session::poll_timeout`]) and cancellation;
//! each wake-up serves every one of them that is ready, then drains every `poll_*` of the
//! session. Everything else talks to it over bounded channels:
//!
//! - [`SubmitCommand`]: a message's parts, all sent on this bind, answered with one
//!   [`PartOutcome`] per part through a oneshot. The caller reserves window room before it
//!   sends (the carrier pool does), so the channel never holds more than the window.
//! - [`Responder`]: handed out with each inbound deliver_sm/data_sm ([`Inbound`]); the
//!   deliver_sm_resp goes out only when it is used, with the status the application chose
//!   (DESIGN promise 2).
//!
//! Outputs that are not replies (window release, per-part results for breakers and metrics,
//! inbound requests, late responses) go to an [`Observer`], called synchronously from the
//! loop: it must not block.
//!
//! # Throughput
//!
//! Every ready command is taken before writing, and the session encodes all its PDUs into one
//! buffer, so a burst of submits goes out in one `write` and a burst of responses is read and
//! decoded from one `read`. Reading never waits on the application: inbound requests are
//! offered to the observer without waiting, and answered ESME_RX_T_APPN if it cannot take them.
//!
//! Per message the driver allocates only the reply's outcome vector, which it fills in place;
//! a part goes straight into the session when nothing waits before it. The stream is not split
//! (the halves of `tokio::io::split` share a lock taken on every poll), and the shutdown
//! signals, which cost a lock to poll, are looked at before the task goes idle and every few
//! busy rounds rather than on each.

mod tls;

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Decoder;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::pdu::{Body, COctetString, CommandStatus, DataSm, DeliverSm, PduCodec, StatusClass};
use crate::session::{Anomaly, CloseReason, Event, Response, Session, SubmitError};

pub use tls::{TlsConfig, TlsError, TlsSettings, connect_tcp};

/// Stop reading while this much output waits for the peer: a peer that sends but never reads
/// must not grow our buffer without bound.
const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;
/// Messages taken per wake-up before the output is written. Many PDUs per write is the point,
/// but not a whole large window in one: the SMSC starts on the first batch while the next is
/// being encoded, instead of the two sides taking turns on one big batch.
const MAX_COMMANDS_PER_ROUND: usize = 64;
/// Answers to inbound requests taken per wake-up.
const MAX_ANSWERS_PER_ROUND: usize = 1024;
/// How long the last output (an unbind_resp, a generic_nack) may take to leave once the
/// session is over.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(1);

/// A message for the bind: its parts, sent in order on this one bind.
#[derive(Debug)]
pub struct SubmitCommand {
    /// The requests (submit_sm, data_sm...), one per part.
    pub parts: Vec<Body>,
    /// The caller's reference for the message, repeated in late-response reports.
    pub reference: u64,
    /// Receives one outcome per part, in part order, once every part has one.
    pub reply: oneshot::Sender<Vec<PartOutcome>>,
}

/// Why a part never left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotSentReason {
    /// The bind was not bound (still binding, or closed before the part's turn).
    NotBound,
    /// The bind was unbinding (shutdown or inactivity) and takes no new requests.
    Unbinding,
    /// The bind type cannot send this request (e.g. submit_sm on a receiver).
    NotAllowed,
}

/// What became of one part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartOutcome {
    /// ESME_ROK, with the SMSC's message_id (empty if the response had no body).
    Accepted {
        /// The SMSC's id for the part, as it sent it.
        message_id: COctetString<65>,
        /// The sequence number the part went out with.
        sequence_number: u32,
    },
    /// An error status (or generic_nack) other than throttling.
    Rejected {
        /// The status.
        status: CommandStatus,
        /// Its class (transient, permanent, session).
        class: StatusClass,
        /// The sequence number.
        sequence_number: u32,
    },
    /// ESME_RTHROTTLED or ESME_RMSGQFUL: the SMSC did not take it; send it again later on
    /// this carrier. Never a failure of the message.
    Throttled {
        /// The status.
        status: CommandStatus,
        /// The sequence number.
        sequence_number: u32,
    },
    /// No response within the response timeout: in doubt. A late response may follow as an
    /// [`Observer::late_response`] report.
    TimedOut {
        /// The sequence number.
        sequence_number: u32,
    },
    /// The part was sent but the bind closed before its response: in doubt. Its response can
    /// never come (5.0 §2.6.3).
    BindLost {
        /// The sequence number.
        sequence_number: u32,
        /// Why the bind closed (`Local` when a shutdown deadline cut it short).
        reason: CloseReason,
    },
    /// The part never left: resending it cannot duplicate anything.
    NotSent(NotSentReason),
}

impl PartOutcome {
    /// True when the SMSC may have taken the part without our knowing: timed out or lost
    /// with the bind.
    pub fn is_in_doubt(&self) -> bool {
        matches!(
            self,
            PartOutcome::TimedOut { .. } | PartOutcome::BindLost { .. }
        )
    }

    /// The label used for this outcome in metrics: the status name, `timeout`, `bind_lost`
    /// or `not_sent`.
    pub fn label(&self) -> &'static str {
        match self {
            PartOutcome::Accepted { .. } => "ESME_ROK",
            PartOutcome::Rejected { status, .. } | PartOutcome::Throttled { status, .. } => {
                status.name().unwrap_or("other")
            }
            PartOutcome::TimedOut { .. } => "timeout",
            PartOutcome::BindLost { .. } => "bind_lost",
            PartOutcome::NotSent(_) => "not_sent",
        }
    }

    fn from_response(response: &Response) -> PartOutcome {
        let sequence_number = response.sequence_number;
        let status = response.command_status;
        if status.is_ok() && !response.is_generic_nack() {
            return PartOutcome::Accepted {
                message_id: response.message_id().copied().unwrap_or_default(),
                sequence_number,
            };
        }
        // A generic_nack with status 0 still refused the request (3.4 §4.3).
        let status = if status.is_ok() {
            CommandStatus::ESME_RINVCMDID
        } else {
            status
        };
        match status.class() {
            StatusClass::Throttle => PartOutcome::Throttled {
                status,
                sequence_number,
            },
            class => PartOutcome::Rejected {
                status,
                class,
                sequence_number,
            },
        }
    }
}

/// A deliver_sm or data_sm body from the SMSC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundPdu {
    /// deliver_sm: a receipt (esm_class says so) or a mobile-originated message.
    DeliverSm(DeliverSm),
    /// data_sm.
    DataSm(DataSm),
}

/// An inbound request the application owes an answer: store it, then answer with the
/// [`Responder`].
#[derive(Debug)]
pub struct Inbound {
    /// The request.
    pub pdu: InboundPdu,
    /// Answers it.
    pub responder: Responder,
}

/// Answers one deliver_sm/data_sm. Dropping it unanswered answers ESME_RX_T_APPN, so the SMSC
/// delivers the message again rather than lose it.
#[derive(Debug)]
pub struct Responder {
    tx: Option<mpsc::Sender<(u32, CommandStatus)>>,
    sequence_number: u32,
}

/// Why an answer could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// The bind that received the request has closed; the SMSC will deliver it again.
    #[error("the bind closed before the answer; the SMSC redelivers")]
    BindClosed,
}

impl Responder {
    /// The SMSC's sequence number of the request.
    pub fn sequence_number(&self) -> u32 {
        self.sequence_number
    }

    /// Sends the answer: ESME_ROK once the message is stored, ESME_RX_T_APPN to have the SMSC
    /// retry later, ESME_RX_P_APPN to refuse it for good.
    ///
    /// Cancel safe in the sense that dropping the future before it completes drops the
    /// responder, which answers ESME_RX_T_APPN.
    pub async fn respond(mut self, status: CommandStatus) -> Result<(), RespondError> {
        let tx = self.tx.take().ok_or(RespondError::BindClosed)?;
        tx.send((self.sequence_number, status))
            .await
            .map_err(|_| RespondError::BindClosed)
    }

    /// Like [`Responder::respond`], without waiting; fails if the bind's answer queue is
    /// full (it holds as many answers as the bind has inbound requests pending, so only a bind
    /// that is closing refuses).
    pub fn try_respond(mut self, status: CommandStatus) -> Result<(), RespondError> {
        let tx = self.tx.take().ok_or(RespondError::BindClosed)?;
        tx.try_send((self.sequence_number, status))
            .map_err(|_| RespondError::BindClosed)
    }

    fn defuse(&mut self) {
        self.tx = None;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send((self.sequence_number, CommandStatus::ESME_RX_T_APPN));
        }
    }
}

/// What the driver reports besides the replies. Called from the driver's loop: every method
/// must return quickly and never block.
pub trait Observer {
    /// The bind is up.
    fn bound(&mut self, now: Instant);
    /// A part has its outcome. `round_trip` is the time from writing it to its response, for
    /// parts that got one.
    fn part_done(&mut self, now: Instant, outcome: &PartOutcome, round_trip: Option<Duration>);
    /// An inbound request to hand to the application. Give it back (`Some`) if it cannot be
    /// taken now; it is then answered ESME_RX_T_APPN.
    fn inbound(&mut self, inbound: Inbound) -> Option<Inbound>;
    /// A response came for a part reported [`PartOutcome::TimedOut`].
    fn late_response(&mut self, reference: u64, part: usize, outcome: PartOutcome);
    /// Something irregular the session handled by itself.
    fn anomaly(&mut self, anomaly: &Anomaly);
    /// End of one round of the loop: publish anything batched.
    fn flush(&mut self, now: Instant);
}

/// Signals that end a connection.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    /// Unbind gracefully: refuse new parts, let the window drain, unbind, await unbind_resp.
    pub graceful: CancellationToken,
    /// Close at once; parts still awaiting a response are handed back as
    /// [`PartOutcome::BindLost`] with [`CloseReason::Local`].
    pub abort: CancellationToken,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Why the session closed.
    pub reason: CloseReason,
    /// How long it was bound; `None` if it never bound.
    pub bound_for: Option<Duration>,
}

/// One message in the driver's hands.
struct Message {
    reference: u64,
    reply: Option<oneshot::Sender<Vec<PartOutcome>>>,
    /// One entry per part, in part order: the part's outcome once its bit in `done` is set, a
    /// placeholder before. Sent as the reply as it stands, so completing a message allocates
    /// nothing.
    outcomes: Vec<PartOutcome>,
    /// Which parts have their outcome, a bit per part (at most 256 parts).
    done: [u64; 4],
    remaining: usize,
}

/// Token layout: the message's slab index above the part index. Parts are at most 256
/// (concatenation numbers them in one octet).
const PART_BITS: u32 = 8;
/// Rounds of the loop that made progress after which the shutdown signals are looked at even
/// though there is more work: a bind under constant load still sees them promptly.
const SIGNAL_CHECK_EVERY: u32 = 16;

struct Driver<'o, O: Observer> {
    session: Session,
    observer: &'o mut O,
    messages: Vec<Option<Message>>,
    free: Vec<usize>,
    /// Parts not yet handed to the session (the window was full): (token, body).
    backlog: VecDeque<(u64, Body)>,
    /// Parts reported timed out, by sequence number, for late responses; oldest first in
    /// `late_order`. Bounded like the session's own late-response memory.
    late: HashMap<u32, (u64, usize)>,
    late_order: VecDeque<u32>,
    late_capacity: usize,
    answers_tx: mpsc::Sender<(u32, CommandStatus)>,
    bound_at: Option<Instant>,
    close_reason: Option<CloseReason>,
    /// Complete messages, answered after the observer's flush so that whoever reads an
    /// outcome finds the bind's health already updated.
    replies: Vec<(oneshot::Sender<Vec<PartOutcome>>, Vec<PartOutcome>)>,
}

/// The loop's I/O state besides the session.
struct Io {
    codec: PduCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    eof: bool,
    unbinding: bool,
    aborted: bool,
    submits_open: bool,
    /// Rounds since the shutdown signals were last polled.
    since_signals: u32,
    /// Commands and answers taken from their channels this round (kept for their capacity).
    commands: Vec<SubmitCommand>,
    answers: Vec<(u32, CommandStatus)>,
}

/// Runs `session` over `stream` until the session closes. Returns why, after the last output
/// was written (or could not be) and the stream shut down.
///
/// `submits` stays with the caller between connections; commands that arrive while the
/// session is not bound are answered [`PartOutcome::NotSent`] at once.
///
/// Not cancel safe: dropping the future drops the session with whatever it had in flight
/// unanswered. Use [`Shutdown`] instead.
pub async fn run<S, O>(
    stream: S,
    session: Session,
    submits: &mut mpsc::Receiver<SubmitCommand>,
    observer: &mut O,
    shutdown: &Shutdown,
    max_pdu_len: usize,
) -> Exit
where
    S: AsyncRead + AsyncWrite,
    O: Observer,
{
    let window = session.window();
    let pending_inbound = session.config().max_pending_inbound;
    let late_capacity = session.config().late_response_memory;
    let (answers_tx, mut answers_rx) = mpsc::channel(pending_inbound + 1);
    let mut d = Driver {
        session,
        observer,
        messages: Vec::with_capacity(window),
        free: Vec::with_capacity(window),
        backlog: VecDeque::with_capacity(window),
        late: HashMap::new(),
        late_order: VecDeque::new(),
        late_capacity,
        answers_tx,
        bound_at: None,
        close_reason: None,
        replies: Vec::with_capacity(window),
    };
    // One task owns the stream whole: no split (its halves share a lock taken on every
    // poll), reads and writes are polled from the same round.
    tokio::pin!(stream);
    let mut io = Io {
        codec: PduCodec::with_max_len(max_pdu_len),
        rbuf: BytesMut::with_capacity(READ_BUFFER),
        wbuf: BytesMut::with_capacity(64 * 1024),
        eof: false,
        unbinding: false,
        aborted: false,
        submits_open: true,
        since_signals: 0,
        commands: Vec::with_capacity(MAX_COMMANDS_PER_ROUND),
        answers: Vec::with_capacity(MAX_ANSWERS_PER_ROUND),
    };
    // Created once: each registers with its token once, instead of on every round.
    let abort = shutdown.abort.cancelled();
    tokio::pin!(abort);
    let graceful = shutdown.graceful.cancelled();
    tokio::pin!(graceful);
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    let mut now = Instant::now();

    let reason = loop {
        d.pump(now);
        d.drain_events(now);
        d.session.poll_transmit(&mut io.wbuf);
        d.observer.flush(now);
        for (reply, outcomes) in d.replies.drain(..) {
            let _ = reply.send(outcomes);
        }
        if let Some(reason) = d.closed_reason() {
            break reason;
        }
        let deadline = d.session.poll_timeout();
        if deadline != armed {
            armed = deadline;
            let at = deadline.map_or_else(
                || tokio::time::Instant::now() + Duration::from_secs(3600),
                tokio::time::Instant::from_std,
            );
            sleep.as_mut().reset(at);
        }
        now = poll_fn(|cx| {
            d.poll_round(
                cx,
                stream.as_mut(),
                &mut io,
                submits,
                &mut answers_rx,
                (abort.as_mut(), graceful.as_mut()),
                armed.is_some().then_some(sleep.as_mut()),
            )
        })
        .await;
    };

    // Whatever the session still wanted written (unbind_resp, generic_nack) goes out first,
    // within a short limit: a peer that stopped reading must not hold the slot.
    d.session.poll_transmit(&mut io.wbuf);
    if !io.wbuf.is_empty() && !io.eof {
        let _ = tokio::time::timeout(FLUSH_ON_CLOSE, stream.write_all(&io.wbuf)).await;
    }
    let _ = tokio::time::timeout(FLUSH_ON_CLOSE, stream.shutdown()).await;
    Exit {
        reason,
        bound_for: d.bound_at.map(|at| at.elapsed()),
    }
}

/// Read capacity kept free before each read, so one read takes a large batch of responses.
const READ_BUFFER: usize = 64 * 1024;

type Signals<'a, 'b> = (
    Pin<&'a mut WaitForCancellationFuture<'b>>,
    Pin<&'a mut WaitForCancellationFuture<'b>>,
);

impl<O: Observer> Driver<'_, O> {
    /// One round of the loop: does everything that is ready without waiting (writes pending
    /// output, reads and decodes what arrived, takes submitted messages and the application's
    /// answers, runs the timer), and is ready with the time of it if anything happened;
    /// otherwise every source is registered to wake the task and it is pending.
    #[allow(clippy::too_many_arguments)]
    fn poll_round<S: AsyncRead + AsyncWrite>(
        &mut self,
        cx: &mut Context<'_>,
        mut stream: Pin<&mut S>,
        io: &mut Io,
        submits: &mut mpsc::Receiver<SubmitCommand>,
        answers: &mut mpsc::Receiver<(u32, CommandStatus)>,
        (mut abort, mut graceful): Signals<'_, '_>,
        sleep: Option<Pin<&mut tokio::time::Sleep>>,
    ) -> Poll<Instant> {
        let mut now: Option<Instant> = None;
        let mut progress = false;

        // Output first: the peer starts on it while we do the rest.
        while !io.wbuf.is_empty() {
            match stream.as_mut().poll_write(cx, &io.wbuf) {
                Poll::Ready(Ok(0) | Err(_)) => {
                    self.session.connection_lost();
                    return Poll::Ready(Instant::now());
                }
                Poll::Ready(Ok(n)) => {
                    io.wbuf.advance(n);
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        if io.wbuf.is_empty() {
            io.wbuf.clear();
        }

        // Input, unless a peer that does not read has left too much output waiting.
        if !io.eof && io.wbuf.len() < MAX_PENDING_WRITE {
            if io.rbuf.capacity() - io.rbuf.len() < READ_BUFFER / 4 {
                io.rbuf.reserve(READ_BUFFER);
            }
            // Polled once and dropped: read_buf appends only when it completes.
            let read = std::pin::pin!(stream.as_mut().read_buf(&mut io.rbuf)).poll(cx);
            if let Poll::Ready(read) = read {
                progress = true;
                let at = *now.get_or_insert_with(Instant::now);
                self.on_read(at, io, read);
            }
        }

        // Taken in batches: a bounded channel's receiver releases the senders' permits under a
        // lock, once per batch this way rather than once per message.
        if io.submits_open {
            match submits.poll_recv_many(cx, &mut io.commands, MAX_COMMANDS_PER_ROUND) {
                // Every sender is gone: nothing more will come, but the bind serves inbound
                // traffic until it is shut down.
                Poll::Ready(0) => {
                    progress = true;
                    io.submits_open = false;
                }
                Poll::Ready(_) => {
                    progress = true;
                    let at = *now.get_or_insert_with(Instant::now);
                    let mut commands = std::mem::take(&mut io.commands);
                    for command in commands.drain(..) {
                        self.accept(at, command);
                    }
                    io.commands = commands;
                }
                Poll::Pending => {}
            }
        }

        // The driver holds a sender, so this never ends.
        if let Poll::Ready(n) = answers.poll_recv_many(cx, &mut io.answers, MAX_ANSWERS_PER_ROUND)
            && n > 0
        {
            progress = true;
            let at = *now.get_or_insert_with(Instant::now);
            for (seq, status) in io.answers.drain(..) {
                let _ = self.session.respond(at, seq, status);
            }
        }

        if let Some(sleep) = sleep
            && sleep.poll(cx).is_ready()
        {
            progress = true;
            let at = *now.get_or_insert_with(Instant::now);
            self.session.handle_timeout(at);
        }

        // The shutdown signals each cost a lock to poll: looked at before going idle (so no
        // wake-up is lost), and every few busy rounds.
        io.since_signals += 1;
        if !progress || io.since_signals >= SIGNAL_CHECK_EVERY {
            io.since_signals = 0;
            if !io.aborted && abort.as_mut().poll(cx).is_ready() {
                io.aborted = true;
                self.session.close();
                return Poll::Ready(Instant::now());
            }
            if !io.unbinding && graceful.as_mut().poll(cx).is_ready() {
                io.unbinding = true;
                let at = Instant::now();
                // Messages already handed over go out first: they were accepted before the
                // shutdown began (the pool stops taking new ones before it signals).
                while let Ok(command) = submits.try_recv() {
                    self.accept(at, command);
                }
                self.pump(at);
                self.session.unbind(at);
                return Poll::Ready(at);
            }
        }

        if progress {
            Poll::Ready(now.unwrap_or_else(Instant::now))
        } else {
            Poll::Pending
        }
    }

    /// What a read gave: frames for the session, the end of the stream, or an error.
    fn on_read(&mut self, now: Instant, io: &mut Io, read: std::io::Result<usize>) {
        match read {
            Ok(0) => {
                io.eof = true;
                // A frame cut short by the close is an I/O error; whole frames still count.
                while let Ok(Some(item)) = io.codec.decode_eof(&mut io.rbuf) {
                    self.session.handle_pdu(now, item);
                }
                self.session.connection_lost();
            }
            Ok(_) => loop {
                match io.codec.decode(&mut io.rbuf) {
                    Ok(Some(item)) => self.session.handle_pdu(now, item),
                    Ok(None) => break,
                    Err(e) => {
                        self.session.handle_frame_error(&e);
                        break;
                    }
                }
            },
            Err(e) => self
                .session
                .handle_frame_error(&crate::pdu::FrameError::Io(e)),
        }
    }

    /// Takes a message. Its parts go straight into the session while the window has room and
    /// nothing waits before them; the rest wait in the backlog for [`Driver::pump`].
    fn accept(&mut self, now: Instant, command: SubmitCommand) {
        let SubmitCommand {
            parts,
            reference,
            reply,
        } = command;
        let n = parts.len();
        if n == 0 || n > 1 << PART_BITS {
            let _ = reply.send(Vec::new());
            return;
        }
        let message = Message {
            reference,
            reply: Some(reply),
            outcomes: vec![PartOutcome::NotSent(NotSentReason::NotBound); n],
            done: [0; 4],
            remaining: n,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.messages[i] = Some(message);
                i
            }
            None => {
                self.messages.push(Some(message));
                self.messages.len() - 1
            }
        };
        let mut direct = self.backlog.is_empty();
        for (part, body) in parts.into_iter().enumerate() {
            let token = ((index as u64) << PART_BITS) | part as u64;
            if !direct {
                self.backlog.push_back((token, body));
                continue;
            }
            match self.session.try_submit(now, body, token) {
                Ok(_) => {}
                Err((SubmitError::WindowFull(_), body)) => {
                    direct = false;
                    self.backlog.push_back((token, body));
                }
                Err((e, _)) => self.resolve(now, token, PartOutcome::NotSent(not_sent(e)), None),
            }
        }
    }

    /// Hands backlog parts to the session while its window has room.
    fn pump(&mut self, now: Instant) {
        while let Some((token, body)) = self.backlog.pop_front() {
            match self.session.try_submit(now, body, token) {
                Ok(_) => {}
                Err((SubmitError::WindowFull(_), body)) => {
                    self.backlog.push_front((token, body));
                    return;
                }
                Err((e, _)) => self.resolve(now, token, PartOutcome::NotSent(not_sent(e)), None),
            }
        }
    }

    /// Records a part's outcome; replies once the message is complete. `round_trip` is the
    /// time from sending the part to its response, for parts that got one.
    fn resolve(
        &mut self,
        now: Instant,
        token: u64,
        outcome: PartOutcome,
        round_trip: Option<Duration>,
    ) {
        let (index, part) = split(token);
        let Some(Some(message)) = self.messages.get_mut(index) else {
            return;
        };
        let (word, bit) = (part / 64, 1u64 << (part % 64));
        if part >= message.outcomes.len() || message.done[word] & bit != 0 {
            return;
        }
        self.observer.part_done(now, &outcome, round_trip);
        let late = match outcome {
            PartOutcome::TimedOut { sequence_number } => Some((sequence_number, message.reference)),
            _ => None,
        };
        message.done[word] |= bit;
        message.outcomes[part] = outcome;
        message.remaining -= 1;
        let complete = message.remaining == 0;
        if let Some((sequence_number, reference)) = late {
            self.remember_late(sequence_number, reference, part);
        }
        if complete && let Some(message) = self.messages[index].take() {
            if let Some(reply) = message.reply {
                self.replies.push((reply, message.outcomes));
            }
            self.free.push(index);
        }
    }

    fn remember_late(&mut self, sequence_number: u32, reference: u64, part: usize) {
        if self.late_capacity == 0 {
            return;
        }
        if self.late.len() >= self.late_capacity
            && let Some(oldest) = self.late_order.pop_front()
        {
            self.late.remove(&oldest);
        }
        if self
            .late
            .insert(sequence_number, (reference, part))
            .is_none()
        {
            self.late_order.push_back(sequence_number);
        }
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Bound { .. } => {
                    self.bound_at = Some(now);
                    self.observer.bound(now);
                }
                Event::Accepted(response) | Event::Rejected(response) => {
                    let outcome = PartOutcome::from_response(&response);
                    let round_trip = response.sent_at.map(|t| now.saturating_duration_since(t));
                    self.resolve(now, response.token, outcome, round_trip);
                }
                Event::TimedOut(request) => {
                    let outcome = PartOutcome::TimedOut {
                        sequence_number: request.sequence_number,
                    };
                    self.resolve(now, request.token, outcome, None);
                }
                Event::LateResponse(response) => {
                    if let Some((reference, part)) = self.late.remove(&response.sequence_number) {
                        let outcome = PartOutcome::from_response(&response);
                        self.observer.late_response(reference, part, outcome);
                    }
                }
                Event::DeliverSm {
                    sequence_number,
                    pdu,
                } => self.inbound(now, sequence_number, InboundPdu::DeliverSm(pdu)),
                Event::DataSm {
                    sequence_number,
                    pdu,
                } => self.inbound(now, sequence_number, InboundPdu::DataSm(pdu)),
                Event::AlertNotification(alert) => {
                    tracing::debug!(?alert, "alert_notification");
                }
                Event::InactivityTimeout => tracing::info!("inactivity timeout: unbinding"),
                Event::Anomaly(anomaly) => self.observer.anomaly(&anomaly),
                Event::Closed {
                    reason, in_flight, ..
                } => {
                    self.close_reason = Some(reason);
                    for request in in_flight {
                        let outcome = PartOutcome::BindLost {
                            sequence_number: request.sequence_number,
                            reason,
                        };
                        self.resolve(now, request.token, outcome, None);
                    }
                    while let Some((token, _)) = self.backlog.pop_front() {
                        let outcome = PartOutcome::NotSent(NotSentReason::NotBound);
                        self.resolve(now, token, outcome, None);
                    }
                }
            }
        }
    }

    fn inbound(&mut self, now: Instant, sequence_number: u32, pdu: InboundPdu) {
        let inbound = Inbound {
            pdu,
            responder: Responder {
                tx: Some(self.answers_tx.clone()),
                sequence_number,
            },
        };
        if let Some(mut inbound) = self.observer.inbound(inbound) {
            inbound.responder.defuse();
            let _ = self
                .session
                .respond(now, sequence_number, CommandStatus::ESME_RX_T_APPN);
        }
    }

    /// The close reason once the session is over.
    fn closed_reason(&self) -> Option<CloseReason> {
        if !self.session.is_closed() {
            return None;
        }
        Some(self.close_reason.unwrap_or(CloseReason::Local))
    }
}

/// Why the session refused a part (other than a full window, which only delays it).
fn not_sent(error: SubmitError) -> NotSentReason {
    match error {
        SubmitError::Unbinding => NotSentReason::Unbinding,
        SubmitError::NotAllowed { .. } | SubmitError::NotARequest(_) => NotSentReason::NotAllowed,
        _ => NotSentReason::NotBound,
    }
}

fn split(token: u64) -> (usize, usize) {
    (
        (token >> PART_BITS) as usize,
        (token & ((1 << PART_BITS) - 1)) as usize,
    )
}

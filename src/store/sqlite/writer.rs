//! The group-commit writer: one thread, one connection, one transaction per batch.
//!
//! The thread blocks on the bounded channel for the first task, then takes every task already
//! queued (up to [`SqliteConfig::max_commit_rows`] rows), runs them in order in one
//! transaction, commits (one WAL fsync with `synchronous=FULL`), and only then answers each
//! caller. While it commits, new tasks queue up and make the next batch, so the commit cost
//! is shared by everyone who arrived during the previous one.
//!
//! If a task fails (an SQL error, not a refused transition: those are answers), the batch is
//! rolled back and every task is run again alone, so one bad task cannot fail its
//! neighbours; a failure that is not the task's (a full disk) then fails each of them.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::SqliteConfig;
use super::rows::{self, MESSAGE_COLUMNS};
use super::shared::Counts;
use crate::sms::ReceiptStat;
use crate::store::{
    AcceptOutcome, AfterAttempt, Clock, IdGenerator, Message, MessageId, MessageState, NewMessage,
    NewMo, NewReceipt, PartReceiptState, PartState, PruneReport, Reason, ReceiptMatch,
    ReceiptOutcome, StoreError, Suppression, SuppressionSource, Timestamp, Update, UpdateOutcome,
};

/// What goes over the writer's channel.
pub(super) enum Msg {
    /// A write to run and answer.
    Task(Box<dyn Task>),
    /// Finish what is queued, close the connection, stop.
    Shutdown,
}

/// One queued write.
pub(super) trait Task: Send {
    /// Its weight against the queue bound and the commit size.
    fn rows(&self) -> usize;
    /// Runs it inside the open transaction, keeping the answer until the commit.
    fn run(&mut self, cx: &mut Ctx<'_>) -> Result<(), StoreError>;
    /// The transaction committed: answer.
    fn succeed(self: Box<Self>);
    /// The transaction failed: answer with the error.
    fn fail(self: Box<Self>, error: StoreError);
}

/// A typed write: a request, the function that runs it, and where the answer goes.
pub(super) struct Job<Req, Res> {
    req: Req,
    res: Option<Res>,
    rows: usize,
    exec: fn(&mut Ctx<'_>, &Req) -> Result<Res, StoreError>,
    reply: oneshot::Sender<Result<Res, StoreError>>,
    // Held until the job is answered, so queued work counts against the bound; released just
    // before the answer goes, so a caller that got its answer sees the room it freed.
    permit: Option<OwnedSemaphorePermit>,
}

impl<Req, Res> Job<Req, Res> {
    pub(super) fn new(
        req: Req,
        rows: usize,
        exec: fn(&mut Ctx<'_>, &Req) -> Result<Res, StoreError>,
        permit: OwnedSemaphorePermit,
    ) -> (Job<Req, Res>, oneshot::Receiver<Result<Res, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            req,
            res: None,
            rows,
            exec,
            reply,
            permit: Some(permit),
        };
        (job, rx)
    }
}

impl<Req: Send, Res: Send> Task for Job<Req, Res> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn run(&mut self, cx: &mut Ctx<'_>) -> Result<(), StoreError> {
        self.res = Some((self.exec)(cx, &self.req)?);
        Ok(())
    }

    fn succeed(mut self: Box<Self>) {
        // `succeed` follows a successful `run`, so `res` is set. A caller that stopped
        // waiting just does not get the answer.
        self.permit.take();
        if let Some(res) = self.res.take() {
            let _ = self.reply.send(Ok(res));
        }
    }

    fn fail(mut self: Box<Self>, error: StoreError) {
        self.permit.take();
        let _ = self.reply.send(Err(error));
    }
}

/// What a task sees while it runs: the connection inside the open transaction and the
/// writer's state.
pub(super) struct Ctx<'a> {
    conn: &'a Connection,
    now: Timestamp,
    ids: &'a mut IdGenerator,
    /// Per-state changes made by this transaction, applied to the shared counts on commit.
    deltas: [i64; 10],
    config: &'a SqliteConfig,
}

impl Ctx<'_> {
    fn moved(&mut self, from: Option<MessageState>, to: Option<MessageState>) {
        if let Some(from) = from {
            self.deltas[usize::from(from.code())] -= 1;
        }
        if let Some(to) = to {
            self.deltas[usize::from(to.code())] += 1;
        }
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) ids: IdGenerator,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: SqliteConfig,
    pub(super) counts: Arc<Counts>,
}

impl Writer {
    /// The thread's body: batches until the channel closes or a shutdown arrives.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Box<dyn Task>> = Vec::new();
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut rows = 0;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Task(task) => {
                        rows += task.rows();
                        batch.push(task);
                    }
                    Msg::Shutdown => {
                        // Refuse new work, but finish everything already queued.
                        stopping = true;
                        rx.close();
                    }
                }
                if stopping || rows < self.config.max_commit_rows {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
        }
        // Dropping the connection closes it cleanly (a final checkpoint).
    }

    /// Runs a batch in one transaction and answers it; on failure, runs each task alone.
    fn commit(&mut self, batch: &mut Vec<Box<dyn Task>>) {
        match self.run_batch(batch) {
            Ok(deltas) => {
                self.counts.apply(&deltas);
                for task in batch.drain(..) {
                    task.succeed();
                }
            }
            Err(error) if batch.len() == 1 => {
                for task in batch.drain(..) {
                    task.fail(error.clone());
                }
            }
            Err(_) => {
                for task in std::mem::take(batch) {
                    self.commit(&mut vec![task]);
                }
            }
        }
    }

    fn run_batch(&mut self, batch: &mut [Box<dyn Task>]) -> Result<[i64; 10], StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut cx = Ctx {
            conn: &self.conn,
            now: self.clock.now(),
            ids: &mut self.ids,
            deltas: [0; 10],
            config: &self.config,
        };
        let mut result = Ok(());
        for task in batch.iter_mut() {
            result = task.run(&mut cx);
            if result.is_err() {
                break;
            }
        }
        let deltas = cx.deltas;
        if let Err(e) = result.and_then(|()| Ok(self.conn.execute_batch("COMMIT")?)) {
            // A failed COMMIT leaves the transaction open; a failed statement may too.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(e);
        }
        Ok(deltas)
    }
}

// ---- accept ---------------------------------------------------------------------------------

const FIND_KEY: &str = "SELECT msg_id, created_at FROM idempotency WHERE key = ?1";
const PUT_KEY: &str = "INSERT INTO idempotency (key, msg_id, created_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET msg_id = excluded.msg_id, created_at = excluded.created_at";
const FIND_SUPPRESSION: &str =
    "SELECT number, reason, source, created_at FROM suppressions WHERE number = ?1";
const INSERT_MESSAGE: &str = "INSERT INTO messages (id, state, priority, next_at, created_at, \
     updated_at, expires_at, parts, encoding, to_addr, from_addr, carrier, idem_key, callback, \
     tags, body) VALUES (?1, 0, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

pub(super) fn accept(
    cx: &mut Ctx<'_>,
    batch: &Vec<NewMessage>,
) -> Result<Vec<AcceptOutcome>, StoreError> {
    let window_start = cx.now.saturating_sub(cx.config.idempotency_window);
    let mut out = Vec::with_capacity(batch.len());
    for m in batch {
        if let Some(key) = &m.idempotency_key {
            let found = cx
                .conn
                .prepare_cached(FIND_KEY)?
                .query_row([key], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
                })
                .optional()?;
            if let Some((id, created)) = found
                && created >= window_start.as_millis()
            {
                out.push(AcceptOutcome::Duplicate(rows::message_id(&id)?));
                continue;
            }
        }
        let suppressed = cx
            .conn
            .prepare_cached(FIND_SUPPRESSION)?
            .query_row([&m.to], |row| Ok(rows::suppression(row)))
            .optional()?;
        if let Some(s) = suppressed {
            out.push(AcceptOutcome::Suppressed(s?));
            continue;
        }
        let id = cx.ids.next_id(cx.now);
        let bytes = id.to_bytes();
        cx.conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
            &bytes[..],
            m.priority.get(),
            m.not_before.unwrap_or(cx.now).as_millis(),
            cx.now.as_millis(),
            m.expires_at.as_millis(),
            m.parts,
            rows::encoding_code(m.encoding),
            m.to,
            m.from,
            m.carrier,
            m.idempotency_key,
            m.callback_url,
            m.tags,
            m.body,
        ])?;
        if let Some(key) = &m.idempotency_key {
            cx.conn.prepare_cached(PUT_KEY)?.execute(params![
                key,
                &bytes[..],
                cx.now.as_millis()
            ])?;
        }
        cx.moved(None, Some(MessageState::Accepted));
        out.push(AcceptOutcome::Inserted(id));
    }
    Ok(out)
}

// ---- claim ----------------------------------------------------------------------------------

fn claim_sql() -> String {
    // One seek per priority on (priority, next_at): messages scheduled for later never have
    // to be stepped over.
    format!(
        "SELECT rid, {MESSAGE_COLUMNS} FROM messages INDEXED BY messages_ready \
         WHERE state IN (0, 3) AND priority = ?1 AND next_at <= ?2 ORDER BY next_at, rid LIMIT ?3"
    )
}
const MARK_SUBMITTING: &str = "UPDATE messages SET state = 1, updated_at = ?2 WHERE rid = ?1";

pub(super) fn claim(cx: &mut Ctx<'_>, limit: &usize) -> Result<Vec<Message>, StoreError> {
    let mut claimed: Vec<(i64, Message)> = Vec::new();
    {
        let mut select = cx.conn.prepare_cached(&claim_sql())?;
        for priority in (0..=crate::store::Priority::MAX.get()).rev() {
            let room = limit.saturating_sub(claimed.len());
            if room == 0 {
                break;
            }
            let mut rows = select.query(params![priority, cx.now.as_millis(), room as i64])?;
            while let Some(row) = rows.next()? {
                claimed.push((row.get(0)?, rows::message(row, 1)?));
            }
        }
    }
    let mut mark = cx.conn.prepare_cached(MARK_SUBMITTING)?;
    let mut out = Vec::with_capacity(claimed.len());
    for (rid, mut message) in claimed {
        mark.execute(params![rid, cx.now.as_millis()])?;
        cx.moved(Some(message.state), Some(MessageState::Submitting));
        message.state = MessageState::Submitting;
        message.updated_at = cx.now;
        out.push(message);
    }
    Ok(out)
}

// ---- updates --------------------------------------------------------------------------------

const FIND_MESSAGE: &str = "SELECT rid, state, attempts FROM messages WHERE id = ?1";
const SET_STATE: &str = "UPDATE messages SET state = ?2, next_at = ?3, reason_code = ?4, \
     reason_text = ?5, attempts = attempts + ?6, updated_at = ?7 WHERE rid = ?1";
const SET_STATE_KEEP_REASON: &str =
    "UPDATE messages SET state = ?2, next_at = ?3, updated_at = ?4 WHERE rid = ?1";
const COUNT_IN_DOUBT: &str =
    "UPDATE messages SET in_doubt = in_doubt + 1, updated_at = ?2 WHERE rid = ?1";
const INSERT_ATTEMPT: &str = "INSERT INTO attempts (rid, n, carrier, bind, parts, status, \
     outcome, detail, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const UPSERT_PART: &str = "INSERT INTO parts (rid, idx, state, carrier, bind, carrier_id, \
     id_key, status, submitted_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (rid, idx) DO UPDATE SET state = excluded.state, carrier = excluded.carrier, \
     bind = excluded.bind, carrier_id = excluded.carrier_id, id_key = excluded.id_key, \
     status = excluded.status, receipt_stat = NULL, receipt_err = NULL, \
     submitted_at = excluded.submitted_at, receipt_at = NULL, updated_at = excluded.updated_at";
const FIND_UNMATCHED: &str = "SELECT id, stat, err FROM receipts \
     WHERE carrier = ?1 AND id_key = ?2 AND msg IS NULL ORDER BY id";
const LINK_RECEIPT: &str = "UPDATE receipts SET msg = ?2, part = ?3 WHERE id = ?1";

/// The row of a message an update names.
struct Target {
    rid: i64,
    state: MessageState,
    attempts: i64,
}

fn find(cx: &Ctx<'_>, id: MessageId) -> Result<Option<Target>, StoreError> {
    let bytes = id.to_bytes();
    let found = cx
        .conn
        .prepare_cached(FIND_MESSAGE)?
        .query_row([&bytes[..]], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    found
        .map(|(rid, state, attempts)| {
            Ok(Target {
                rid,
                state: rows::state(state)?,
                attempts,
            })
        })
        .transpose()
}

/// Moves a message to `to`, setting (or, with `None`, keeping) its reason.
fn set_state(
    cx: &mut Ctx<'_>,
    t: &Target,
    to: MessageState,
    next_at: Option<Timestamp>,
    reason: Option<&Reason>,
    add_attempt: bool,
) -> Result<(), StoreError> {
    let next_at = next_at.map(Timestamp::as_millis);
    match reason {
        Some(r) => cx.conn.prepare_cached(SET_STATE)?.execute(params![
            t.rid,
            to.code(),
            next_at,
            r.code,
            r.text,
            i64::from(add_attempt),
            cx.now.as_millis(),
        ])?,
        None => cx
            .conn
            .prepare_cached(SET_STATE_KEEP_REASON)?
            .execute(params![t.rid, to.code(), next_at, cx.now.as_millis()])?,
    };
    cx.moved(Some(t.state), Some(to));
    Ok(())
}

pub(super) fn apply(
    cx: &mut Ctx<'_>,
    updates: &Vec<Update>,
) -> Result<Vec<UpdateOutcome>, StoreError> {
    let mut out = Vec::with_capacity(updates.len());
    for update in updates {
        let Some(t) = find(cx, update.id())? else {
            out.push(UpdateOutcome::NotFound);
            continue;
        };
        out.push(apply_one(cx, &t, update)?);
    }
    Ok(out)
}

fn apply_one(cx: &mut Ctx<'_>, t: &Target, update: &Update) -> Result<UpdateOutcome, StoreError> {
    use MessageState as S;
    let not_allowed = Ok(UpdateOutcome::NotAllowed { state: t.state });
    match update {
        Update::PartSubmitted {
            part,
            carrier,
            bind,
            carrier_message_id,
            key,
            ..
        } => {
            if t.state.is_final() {
                return not_allowed;
            }
            cx.conn.prepare_cached(UPSERT_PART)?.execute(params![
                t.rid,
                part,
                PartState::Submitted.code(),
                carrier,
                bind,
                carrier_message_id,
                key.as_str(),
                0,
                cx.now.as_millis(),
                cx.now.as_millis(),
            ])?;
            // A receipt that beat its submit_sm_resp here is waiting unmatched.
            let waiting: Vec<(i64, Option<String>, Option<String>)> = {
                let mut stmt = cx.conn.prepare_cached(FIND_UNMATCHED)?;
                let rows = stmt.query_map(params![carrier, key.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            let mut matched = None;
            let mut part_state = PartState::Submitted;
            for (receipt_id, stat, err) in waiting {
                cx.conn
                    .prepare_cached(LINK_RECEIPT)?
                    .execute(params![receipt_id, t.rid, part])?;
                let stat = rows::receipt_stat(stat);
                part_state =
                    record_receipt_on_part(cx, t.rid, *part, part_state, stat.as_ref(), &err)?;
                matched = Some(receipt_id);
            }
            match matched {
                Some(receipt_id) => Ok(UpdateOutcome::ReceiptMatched(receipt_match(
                    cx, receipt_id, t.rid, *part,
                )?)),
                None => Ok(UpdateOutcome::Applied),
            }
        }
        Update::PartRejected {
            part,
            carrier,
            bind,
            status,
            ..
        } => {
            if t.state.is_final() {
                return not_allowed;
            }
            cx.conn.prepare_cached(UPSERT_PART)?.execute(params![
                t.rid,
                part,
                PartState::Rejected.code(),
                carrier,
                bind,
                None::<&str>,
                None::<&str>,
                status.0,
                None::<i64>,
                cx.now.as_millis(),
            ])?;
            Ok(UpdateOutcome::Applied)
        }
        Update::AttemptFinished { attempt, next, .. } => {
            if t.state != S::Submitting {
                return not_allowed;
            }
            cx.conn.prepare_cached(INSERT_ATTEMPT)?.execute(params![
                t.rid,
                t.attempts + 1,
                attempt.carrier,
                attempt.bind,
                attempt.parts,
                attempt.command_status.map(|s| s.0),
                attempt.outcome.code(),
                attempt.detail,
                attempt.started_at.as_millis(),
                attempt.ended_at.as_millis(),
            ])?;
            match next {
                AfterAttempt::Submitted { receipt_deadline } => {
                    // The last reason (of a retry) stays for the record.
                    set_state_with_attempt(cx, t, S::Submitted, Some(*receipt_deadline), None)?;
                }
                AfterAttempt::Retry { at, reason } => {
                    set_state_with_attempt(cx, t, S::Retrying, Some(*at), Some(reason))?;
                }
                AfterAttempt::Final { state, reason } => {
                    set_state_with_attempt(cx, t, (*state).into(), None, Some(reason))?;
                }
            }
            Ok(UpdateOutcome::Applied)
        }
        Update::ScheduleRetry { at, reason, .. } => {
            if !matches!(t.state, S::Submitting | S::Submitted | S::Retrying) {
                return not_allowed;
            }
            set_state(cx, t, S::Retrying, Some(*at), Some(reason), false)?;
            Ok(UpdateOutcome::Applied)
        }
        Update::Release { at, .. } => {
            if t.state != S::Submitting {
                return not_allowed;
            }
            let to = if t.attempts == 0 {
                S::Accepted
            } else {
                S::Retrying
            };
            set_state(cx, t, to, Some(*at), None, false)?;
            Ok(UpdateOutcome::Applied)
        }
        Update::Finish { state, reason, .. } => {
            if t.state.is_final() {
                return not_allowed;
            }
            set_state(cx, t, (*state).into(), None, Some(reason), false)?;
            Ok(UpdateOutcome::Applied)
        }
        Update::InDoubtResubmit { .. } => {
            if t.state.is_final() {
                return not_allowed;
            }
            cx.conn
                .prepare_cached(COUNT_IN_DOUBT)?
                .execute(params![t.rid, cx.now.as_millis()])?;
            Ok(UpdateOutcome::Applied)
        }
        Update::Cancel { reason, .. } => {
            if !t.state.is_ready() {
                return not_allowed;
            }
            set_state(cx, t, S::Cancelled, None, Some(reason), false)?;
            Ok(UpdateOutcome::Applied)
        }
    }
}

/// [`set_state`] for the end of an attempt: the attempt count goes up in the same statement.
fn set_state_with_attempt(
    cx: &mut Ctx<'_>,
    t: &Target,
    to: MessageState,
    next_at: Option<Timestamp>,
    reason: Option<&Reason>,
) -> Result<(), StoreError> {
    const KEEP_REASON_ADD_ATTEMPT: &str = "UPDATE messages SET state = ?2, next_at = ?3, \
         attempts = attempts + 1, updated_at = ?4 WHERE rid = ?1";
    match reason {
        Some(_) => set_state(cx, t, to, next_at, reason, true),
        None => {
            cx.conn
                .prepare_cached(KEEP_REASON_ADD_ATTEMPT)?
                .execute(params![
                    t.rid,
                    to.code(),
                    next_at.map(Timestamp::as_millis),
                    cx.now.as_millis()
                ])?;
            cx.moved(Some(t.state), Some(to));
            Ok(())
        }
    }
}

// ---- receipts -------------------------------------------------------------------------------

const FIND_PART: &str = "SELECT rid, idx, state FROM parts \
     WHERE carrier = ?1 AND id_key = ?2 ORDER BY rid DESC LIMIT 1";
const INSERT_RECEIPT: &str = "INSERT INTO receipts (msg, part, carrier, carrier_id, id_key, \
     stat, err, received_at, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const PART_RECEIPT: &str = "UPDATE parts SET state = ?3, receipt_stat = ?4, receipt_err = ?5, \
     receipt_at = ?6, updated_at = ?6 WHERE rid = ?1 AND idx = ?2";
const MESSAGE_FOR_ROLLUP: &str = "SELECT id, state, parts FROM messages WHERE rid = ?1";
const PARTS_FOR_ROLLUP: &str =
    "SELECT idx, state, receipt_stat, receipt_err FROM parts WHERE rid = ?1 ORDER BY idx";

/// Writes a receipt's stat onto a part and returns the part's new state. A final state is
/// never overwritten by an intermediate receipt that arrives late.
fn record_receipt_on_part(
    cx: &mut Ctx<'_>,
    rid: i64,
    part: u16,
    current: PartState,
    stat: Option<&ReceiptStat>,
    err: &Option<String>,
) -> Result<PartState, StoreError> {
    let Some(stat) = stat else {
        return Ok(current);
    };
    let next = match PartState::after_receipt(stat) {
        Some(state) => state,
        None if current.has_final_receipt() => return Ok(current),
        None => current,
    };
    cx.conn.prepare_cached(PART_RECEIPT)?.execute(params![
        rid,
        part,
        next.code(),
        stat.to_string(),
        err,
        cx.now.as_millis(),
    ])?;
    Ok(next)
}

/// The roll-up view of a message after one of its parts got a receipt.
fn receipt_match(
    cx: &Ctx<'_>,
    receipt_id: i64,
    rid: i64,
    part: u16,
) -> Result<ReceiptMatch, StoreError> {
    let (id, state, parts_total) =
        cx.conn
            .prepare_cached(MESSAGE_FOR_ROLLUP)?
            .query_row([rid], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
    let mut parts = Vec::new();
    let mut stmt = cx.conn.prepare_cached(PARTS_FOR_ROLLUP)?;
    let mut rows_ = stmt.query([rid])?;
    while let Some(row) = rows_.next()? {
        parts.push(PartReceiptState {
            index: rows::u16_of(row.get(0)?, "part index")?,
            state: rows::part_state(row.get(1)?)?,
            stat: rows::receipt_stat(row.get(2)?),
            err: row.get(3)?,
        });
    }
    Ok(ReceiptMatch {
        receipt_id,
        message_id: rows::message_id(&id)?,
        part,
        message_state: rows::state(state)?,
        parts_total: rows::u16_of(parts_total, "parts")?,
        parts,
    })
}

pub(super) fn receipts(
    cx: &mut Ctx<'_>,
    receipts: &Vec<NewReceipt>,
) -> Result<Vec<ReceiptOutcome>, StoreError> {
    let mut out = Vec::with_capacity(receipts.len());
    for r in receipts {
        let found = cx
            .conn
            .prepare_cached(FIND_PART)?
            .query_row(params![r.carrier, r.key.as_str()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        let target = found
            .map(|(rid, idx, state)| {
                Ok::<_, StoreError>((
                    rid,
                    rows::u16_of(idx, "part index")?,
                    rows::part_state(state)?,
                ))
            })
            .transpose()?;
        cx.conn.prepare_cached(INSERT_RECEIPT)?.execute(params![
            target.map(|t| t.0),
            target.map(|t| t.1),
            r.carrier,
            r.carrier_message_id,
            r.key.as_str(),
            r.stat.as_ref().map(ToString::to_string),
            r.err,
            cx.now.as_millis(),
            r.raw,
        ])?;
        let receipt_id = cx.conn.last_insert_rowid();
        match target {
            Some((rid, part, state)) => {
                record_receipt_on_part(cx, rid, part, state, r.stat.as_ref(), &r.err)?;
                out.push(ReceiptOutcome::Matched(receipt_match(
                    cx, receipt_id, rid, part,
                )?));
            }
            None => out.push(ReceiptOutcome::Unmatched { receipt_id }),
        }
    }
    Ok(out)
}

// ---- MO, suppressions -----------------------------------------------------------------------

const INSERT_MO: &str = "INSERT INTO mo (carrier, from_addr, to_addr, text, received_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

pub(super) fn mo(cx: &mut Ctx<'_>, mo: &NewMo) -> Result<i64, StoreError> {
    cx.conn.prepare_cached(INSERT_MO)?.execute(params![
        mo.carrier,
        mo.from,
        mo.to,
        mo.text,
        cx.now.as_millis()
    ])?;
    Ok(cx.conn.last_insert_rowid())
}

const PUT_SUPPRESSION: &str = "INSERT INTO suppressions (number, reason, source, created_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (number) DO UPDATE SET reason = excluded.reason, \
     source = excluded.source, created_at = excluded.created_at";

pub(super) fn put_suppression(
    cx: &mut Ctx<'_>,
    req: &(String, String, SuppressionSource),
) -> Result<Suppression, StoreError> {
    let (number, reason, source) = req;
    cx.conn.prepare_cached(PUT_SUPPRESSION)?.execute(params![
        number,
        reason,
        source.code(),
        cx.now.as_millis()
    ])?;
    Ok(Suppression {
        number: number.clone(),
        reason: reason.clone(),
        source: *source,
        created_at: cx.now,
    })
}

pub(super) fn delete_suppression(cx: &mut Ctx<'_>, number: &String) -> Result<bool, StoreError> {
    let n = cx
        .conn
        .prepare_cached("DELETE FROM suppressions WHERE number = ?1")?
        .execute([number])?;
    Ok(n > 0)
}

// ---- prune, health --------------------------------------------------------------------------

const FINISHED_BEFORE: &str = "SELECT rid, state FROM messages \
     WHERE id < ?1 AND state >= 4 AND updated_at < ?2 ORDER BY id LIMIT ?3";

pub(super) fn prune(cx: &mut Ctx<'_>, _: &()) -> Result<PruneReport, StoreError> {
    let limit = cx.config.prune_limit as i64;
    let mut report = PruneReport::default();

    let cutoff = cx.now.saturating_sub(cx.config.retention);
    let bound = MessageId::lower_bound(cutoff).to_bytes();
    let victims: Vec<(i64, i64)> = {
        let mut stmt = cx.conn.prepare_cached(FINISHED_BEFORE)?;
        let rows = stmt.query_map(params![&bound[..], cutoff.as_millis(), limit], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (rid, state) in &victims {
        for sql in [
            "DELETE FROM parts WHERE rid = ?1",
            "DELETE FROM attempts WHERE rid = ?1",
            "DELETE FROM receipts WHERE msg = ?1",
            "DELETE FROM messages WHERE rid = ?1",
        ] {
            cx.conn.prepare_cached(sql)?.execute([rid])?;
        }
        cx.moved(Some(rows::state(*state)?), None);
    }
    report.messages = victims.len() as u64;

    let receipt_cutoff = cx.now.saturating_sub(cx.config.unmatched_receipt_retention);
    report.unmatched_receipts =
        cx.conn
            .prepare_cached(
                "DELETE FROM receipts WHERE id IN (SELECT id FROM receipts \
             WHERE msg IS NULL AND received_at < ?1 LIMIT ?2)",
            )?
            .execute(params![receipt_cutoff.as_millis(), limit])? as u64;

    let key_cutoff = cx.now.saturating_sub(cx.config.idempotency_window);
    report.idempotency_keys = cx
        .conn
        .prepare_cached(
            "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency \
             WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        )?
        .execute(params![key_cutoff.as_millis(), limit])? as u64;

    report.mo = cx
        .conn
        .prepare_cached(
            "DELETE FROM mo WHERE id IN (SELECT id FROM mo \
             WHERE received_at < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![cutoff.as_millis(), limit])? as u64;

    let full = |n: u64| n >= limit as u64;
    report.more = full(report.messages)
        || full(report.unmatched_receipts)
        || full(report.idempotency_keys)
        || full(report.mo);
    Ok(report)
}

pub(super) fn ping(cx: &mut Ctx<'_>, _: &()) -> Result<(), StoreError> {
    cx.conn
        .prepare_cached("INSERT OR REPLACE INTO meta (k, v) VALUES ('heartbeat', ?1)")?
        .execute([cx.now.as_millis()])?;
    Ok(())
}

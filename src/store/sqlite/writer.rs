//! The group-commit writer: one thread, one connection, one transaction per batch.
//!
//! The thread blocks on the bounded channel for the first task, then takes every task already
//! queued (up to [`SqliteConfig::max_commit_rows`] rows; under load it gathers until
//! [`SqliteConfig::commit_spacing`] after the previous commit, or until
//! [`SqliteConfig::commit_waiters`] tasks wait), runs them in order in one transaction,
//! commits, and answers each caller: with `synchronous=FULL` through the [`Syncer`], once the
//! WAL is synced. While it commits, new tasks queue up and make the next batch, so the commit
//! cost is shared by everyone who arrived during the previous one.
//!
//! If a task fails (an SQL error, not a refused transition: those are answers), the batch is
//! rolled back. An error no task caused (a full disk, a lock held by another process, I/O)
//! fails every task of the batch at once; any other error has each task run again alone, so
//! one bad task cannot fail its neighbours.
//!
//! Because an error always rolls back the whole transaction, no statement needs to undo
//! itself alone: writes say `OR FAIL`, which spares SQLite the statement journal (a copy of
//! every page a statement touches that the transaction had already changed).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{CachedStatement, Connection, OptionalExtension, ToSql, params, params_from_iter};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::inflight::{Claim, InFlight};
use super::recent::{self, OnePart, RecentParts};
use super::rows::{self, MESSAGE_COLUMNS};
use super::shared::Counts;
use super::{SqliteConfig, schema};
use crate::sms::ReceiptStat;
use crate::store::{
    AcceptOutcome, AfterAttempt, Clock, FreshClaims, IdGenerator, Message, MessageId, MessageState,
    NewMessage, NewMo, NewReceipt, PartReceiptState, PartState, Priority, PruneReport, Reason,
    ReceiptMatch, ReceiptOutcome, RollUp, StoreError, Suppression, SuppressionSource, Timestamp,
    Update, UpdateOutcome,
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

/// Messages claimed as they were accepted, sent on once their commit is on the disk (see
/// [`Store::claim_fresh`](crate::store::Store::claim_fresh)).
struct HandOff {
    messages: Vec<Message>,
    to: tokio::sync::mpsc::UnboundedSender<Vec<Message>>,
}

impl Task for HandOff {
    fn rows(&self) -> usize {
        0
    }

    fn run(&mut self, _: &mut Ctx<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    fn succeed(self: Box<Self>) {
        // A dispatcher that stopped leaves them `submitting`: in doubt at the next start, as
        // any claimed message.
        let _ = self.to.send(self.messages);
    }

    fn fail(self: Box<Self>, _: StoreError) {}
}

/// What a task sees while it runs: the connection inside the open transaction and the
/// writer's state.
pub(super) struct Ctx<'a> {
    conn: &'a Connection,
    now: Timestamp,
    ids: &'a mut IdGenerator,
    /// The row number the next message gets (also its id's sequence number).
    next_rid: &'a mut i64,
    /// Receipts stored without a message, as of the last commit.
    unmatched: i64,
    /// The change to `unmatched` made by this transaction, kept on commit.
    unmatched_delta: i64,
    /// Per-state changes made by this transaction, applied to the shared counts on commit.
    deltas: [i64; 10],
    /// Receipt correlation for the parts sent lately.
    recent: &'a mut RecentParts,
    /// The messages in `submitting`.
    inflight: &'a mut InFlight,
    config: &'a SqliteConfig,
    /// The update statements, taken from the connection's cache once per transaction: the
    /// cache hashes a statement's whole text each time one is taken or given back, and the
    /// dispatcher's updates come one message at a time.
    updates: Option<UpdateStatements<'a>>,
    /// The accept statements, likewise (single POSTs come one message at a time).
    accepts: Option<AcceptStatements<'a>>,
    /// Where messages claimed as they are accepted go, if anywhere.
    fresh: Option<&'a FreshClaims>,
    /// Whether accepts may claim in this transaction: `None` until the first looks whether
    /// anything else is ready; `Some(false)` once the room ran out.
    fresh_open: Option<bool>,
    /// The messages claimed as they were accepted in this transaction.
    handed: Vec<Message>,
}

impl Ctx<'_> {
    /// Holds a submitted part for receipt correlation; what leaves memory without its final
    /// receipt enters the on-disk index.
    fn hold_part(
        &mut self,
        hash: u64,
        part: recent::PartRow,
        one: Option<OnePart>,
    ) -> Result<(), StoreError> {
        let leaving = self.recent.insert(hash, part, one);
        let mut spill = None;
        for (rid, idx) in leaving {
            let stmt = match &mut spill {
                Some(stmt) => stmt,
                None => spill.insert(self.conn.prepare_cached(recent::SPILL)?),
            };
            stmt.execute(params![rid, idx])?;
        }
        Ok(())
    }

    fn moved(&mut self, from: Option<MessageState>, to: Option<MessageState>) {
        if let Some(from) = from {
            self.deltas[usize::from(from.code())] -= 1;
        }
        if let Some(to) = to {
            self.deltas[usize::from(to.code())] += 1;
        }
    }
}

/// Counts the tasks queued for the writer and not yet committed, so that the one which fills
/// a commit ([`SqliteConfig::commit_waiters`]) wakes the writer from its spacing.
pub(super) struct Queued {
    count: AtomicUsize,
    full: usize,
    writer: OnceLock<std::thread::Thread>,
}

impl Queued {
    pub(super) fn new(full: usize) -> Queued {
        Queued {
            count: AtomicUsize::new(0),
            full,
            writer: OnceLock::new(),
        }
    }

    /// Names the thread to wake; until then the writer wakes when its spacing is up.
    pub(super) fn set_writer(&self, thread: std::thread::Thread) {
        let _ = self.writer.set(thread);
    }

    /// A task went into the channel. The count reaches `full` once per fill (the writer
    /// takes what it commits off), and a wake that finds the writer busy is kept for its
    /// next wait, so none is lost. (The writer may take a task off before it is added: the
    /// count wraps for that moment.)
    pub(super) fn added(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel).wrapping_add(1) == self.full
            && let Some(writer) = self.writer.get()
        {
            writer.unpark();
        }
    }

    fn taken(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) ids: IdGenerator,
    pub(super) next_rid: i64,
    /// Receipts stored without a message (`rid IS NULL`): while there are none, recording a
    /// submitted part skips looking for receipts that came before its response.
    pub(super) unmatched: i64,
    /// Receipt correlation for the parts sent lately (see [`recent`]).
    pub(super) recent: RecentParts,
    /// The messages in `submitting` (see [`inflight`](super::inflight)).
    pub(super) inflight: InFlight,
    /// The first row whose destination bucket is not indexed yet; `None` without the index
    /// (see [`schema::index_destinations`]).
    pub(super) dest_upto: Option<i64>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: SqliteConfig,
    pub(super) counts: Arc<Counts>,
    /// With `synchronous = full`: makes each commit durable before it is answered.
    pub(super) syncer: Option<Syncer>,
    /// Where to send the messages claimed as they are accepted (see
    /// [`Store::claim_fresh`](crate::store::Store::claim_fresh)).
    pub(super) fresh: Arc<std::sync::Mutex<Option<FreshClaims>>>,
    pub(super) queued: Arc<Queued>,
}

/// Makes commits durable off the writer's thread, so the next transaction runs while the
/// last one is flushed to the disk.
///
/// With `synchronous = full` the writer's connection runs at SQLite's NORMAL level (a commit
/// writes the WAL but does not sync it; checkpoints and WAL restarts still sync as at FULL)
/// and hands each committed batch here. This thread syncs the WAL file, which flushes every
/// commit written before the sync began, and only then answers the batch's callers: an
/// answer still means the write is on the disk, and one sync covers every batch that
/// committed meanwhile. Answers keep commit order. If a sync fails, what it covered may not
/// be on the disk: those callers get the error, and so does every write after it (the
/// store takes no more writes until it is reopened).
pub(super) struct Syncer {
    tx: std::sync::mpsc::Sender<Vec<Box<dyn Task>>>,
    handle: JoinHandle<()>,
    failed: Arc<AtomicBool>,
}

impl Syncer {
    /// Starts the thread for the database at `db` (its WAL is `db` + `-wal`).
    pub(super) fn start(db: &std::path::Path) -> std::io::Result<Syncer> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Box<dyn Task>>>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        let handle = std::thread::Builder::new()
            .name("smppd-store-sync".into())
            .spawn(move || {
                while let Ok(mut done) = rx.recv() {
                    while let Ok(more) = rx.try_recv() {
                        done.extend(more);
                    }
                    let synced = if flag.load(Ordering::Acquire) {
                        Err(std::io::Error::other(SYNC_FAILED))
                    } else {
                        sync_wal(&wal)
                    };
                    match synced {
                        Ok(()) => done.into_iter().for_each(|task| task.succeed()),
                        Err(e) => {
                            flag.store(true, Ordering::Release);
                            tracing::error!(error = %e, "syncing the store's WAL failed: the store takes no more writes");
                            let error = StoreError::Io(Arc::new(e));
                            done.into_iter().for_each(|task| task.fail(error.clone()));
                        }
                    }
                }
            })?;
        Ok(Syncer { tx, handle, failed })
    }

    /// Answers the tasks once what they wrote is on the disk.
    fn hand_over(&self, tasks: Vec<Box<dyn Task>>) {
        if let Err(back) = self.tx.send(tasks) {
            // The thread is gone (it never ends before the writer drops the sender).
            let error = StoreError::Io(Arc::new(std::io::Error::other(SYNC_FAILED)));
            back.0.into_iter().for_each(|task| task.fail(error.clone()));
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Answers everything handed over, then ends the thread.
    fn finish(self) {
        drop(self.tx);
        let _ = self.handle.join();
    }
}

const SYNC_FAILED: &str = "an earlier sync of the write-ahead log failed";

/// Flushes the WAL file to the disk. No WAL file means nothing waits in one: SQLite removes
/// it only after checkpointing it into the synced database.
fn sync_wal(wal: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Writer {
    /// The thread's body: batches until the channel closes or a shutdown arrives.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Box<dyn Task>> = Vec::new();
        let mut stopping = false;
        let mut last_commit: Option<Instant> = None;
        while !stopping {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut rows = 0;
            let mut next = Some(first);
            loop {
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
                // Under load, gather for the rest of the spacing before committing, unless
                // enough callers wait already. A wake before the time (a full commit, or one
                // kept from before) just looks again.
                let spacing = self.config.commit_spacing;
                let since = last_commit.map_or(spacing, |t| t.elapsed());
                if stopping
                    || rows >= self.config.max_commit_rows
                    || batch.len() >= self.config.commit_waiters
                    || since >= spacing
                {
                    break;
                }
                std::thread::park_timeout(spacing - since);
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                self.queued.taken(batch.len());
                last_commit = Some(Instant::now());
                self.commit(&mut batch);
            }
        }
        // Every commit answered before the connection closes.
        if let Some(syncer) = self.syncer.take() {
            syncer.finish();
        }
        // Dropping the connection closes it cleanly (a final checkpoint).
    }

    /// Runs a batch in one transaction and answers it; on failure, runs each task alone.
    fn commit(&mut self, batch: &mut Vec<Box<dyn Task>>) {
        if self.syncer.as_ref().is_some_and(Syncer::failed) {
            let error = StoreError::Io(Arc::new(std::io::Error::other(SYNC_FAILED)));
            for task in batch.drain(..) {
                task.fail(error.clone());
            }
            return;
        }
        match self.run_batch(batch) {
            Ok((deltas, handed)) => {
                self.counts.apply(&deltas);
                // Sent on before any of the batch is answered: once a producer hears of a
                // message, the dispatcher has it.
                if let Some(handed) = handed {
                    batch.insert(0, Box::new(handed));
                }
                match &self.syncer {
                    Some(syncer) => syncer.hand_over(std::mem::take(batch)),
                    None => batch.drain(..).for_each(|task| task.succeed()),
                }
            }
            Err(error) if batch.len() == 1 || is_systemic(&error) => {
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

    /// Rebuilds what memory holds of the file after a rolled-back transaction.
    fn rebuild_stale(&mut self) -> Result<(), StoreError> {
        if self.recent.is_stale() {
            self.recent.rebuild(&self.conn)?;
        }
        if self.inflight.is_stale() {
            self.inflight.rebuild(&self.conn)?;
        }
        Ok(())
    }

    fn run_batch(
        &mut self,
        batch: &mut [Box<dyn Task>],
    ) -> Result<([i64; 10], Option<HandOff>), StoreError> {
        let fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        if let Err(e) = self.rebuild_stale() {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        let mut cx = Ctx {
            conn: &self.conn,
            now: self.clock.now(),
            ids: &mut self.ids,
            next_rid: &mut self.next_rid,
            unmatched: self.unmatched,
            unmatched_delta: 0,
            deltas: [0; 10],
            recent: &mut self.recent,
            inflight: &mut self.inflight,
            config: &self.config,
            updates: None,
            accepts: None,
            fresh: fresh.as_ref(),
            fresh_open: None,
            handed: Vec::new(),
        };
        let mut result = Ok(());
        for task in batch.iter_mut() {
            result = task.run(&mut cx);
            if result.is_err() {
                break;
            }
        }
        let (deltas, unmatched) = (cx.deltas, cx.unmatched_delta);
        let handed = std::mem::take(&mut cx.handed);
        // The statements go back to the cache before the transaction ends.
        drop(cx);
        // Each destination bucket this transaction completed joins the index, in key order.
        let mut dest_upto = self.dest_upto;
        let mut floor = None;
        let result = result.and_then(|()| {
            if let Some(upto) = &mut dest_upto {
                while *upto + schema::DEST_BUCKET <= self.next_rid {
                    schema::add_dest_bucket(&self.conn, *upto)?;
                    *upto += schema::DEST_BUCKET;
                }
            }
            floor = Some(self.inflight.write_floor(&self.conn, self.next_rid)?);
            Ok(())
        });
        if let Err(e) = result.and_then(|()| Ok(self.conn.execute_batch("COMMIT")?)) {
            // A failed COMMIT leaves the transaction open; a failed statement may too.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            // The table may hold parts the rollback took away, or miss ones it brought back;
            // likewise the claims.
            self.recent.invalidate();
            self.inflight.invalidate();
            return Err(e);
        }
        if let Some(floor) = floor {
            self.inflight.committed(floor);
        }
        self.unmatched += unmatched;
        self.dest_upto = dest_upto;
        let handed = match fresh {
            Some(fresh) if !handed.is_empty() => Some(HandOff {
                messages: handed,
                to: fresh.to,
            }),
            _ => None,
        };
        Ok((deltas, handed))
    }
}

/// Errors that no task caused (the disk, the lock, the file): running each task alone would
/// only repeat them, each after its own wait.
fn is_systemic(error: &StoreError) -> bool {
    use rusqlite::ErrorCode as C;
    match error {
        StoreError::Database(e) => matches!(
            e.sqlite_error_code(),
            Some(
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::DatabaseCorrupt
                    | C::ReadOnly
                    | C::CannotOpen
                    | C::NotADatabase
                    | C::OutOfMemory
                    | C::DiskFull
            )
        ),
        StoreError::DiskFull | StoreError::Io(_) | StoreError::Closed => true,
        _ => false,
    }
}

// ---- accept ---------------------------------------------------------------------------------

const FIND_SUPPRESSION: &str =
    "SELECT number, reason, source, created_at FROM suppressions WHERE number = ?1";
/// Takes an idempotency key for a new message, unless it maps to one younger than the window
/// (then nothing changes and the statement reports no row).
const CLAIM_KEY: &str = "INSERT OR FAIL INTO idempotency (key, msg_id, created_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET msg_id = excluded.msg_id, created_at = excluded.created_at \
     WHERE idempotency.created_at < ?4";
const FIND_FRESH_KEY: &str = "SELECT msg_id FROM idempotency WHERE key = ?1 AND created_at >= ?2";
const INSERT_MESSAGE: &str = "INSERT OR FAIL INTO messages (id, state, priority, next_at, \
     created_at, updated_at, expires_at, parts, encoding, to_addr, from_addr, carrier, idem_key, \
     callback, tags, body, rid) \
     VALUES (?1, ?16, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
/// Whether a message of priority ?1 is ready at ?2 (one seek of the ready index).
const READY_AT: &str = "SELECT 1 FROM messages INDEXED BY messages_ready \
     WHERE state IN (0, 3) AND priority = ?1 AND next_at <= ?2 LIMIT 1";

/// The statements accepts use, kept for the rest of the transaction (see [`Ctx`]).
struct AcceptStatements<'c> {
    find_suppression: CachedStatement<'c>,
    claim_key: CachedStatement<'c>,
    find_key: CachedStatement<'c>,
    insert: CachedStatement<'c>,
}

impl<'c> AcceptStatements<'c> {
    fn prepare(conn: &'c Connection) -> Result<AcceptStatements<'c>, StoreError> {
        Ok(AcceptStatements {
            find_suppression: conn.prepare_cached(FIND_SUPPRESSION)?,
            claim_key: conn.prepare_cached(CLAIM_KEY)?,
            find_key: conn.prepare_cached(FIND_FRESH_KEY)?,
            insert: conn.prepare_cached(INSERT_MESSAGE)?,
        })
    }
}

#[allow(
    clippy::ptr_arg,
    reason = "a writer job takes its request by reference"
)]
pub(super) fn accept(
    cx: &mut Ctx<'_>,
    batch: &Vec<NewMessage>,
) -> Result<Vec<AcceptOutcome>, StoreError> {
    let mut st = match cx.accepts.take() {
        Some(st) => st,
        None => AcceptStatements::prepare(cx.conn)?,
    };
    let out = accept_with(cx, &mut st, batch)?;
    cx.accepts = Some(st);
    Ok(out)
}

fn accept_with(
    cx: &mut Ctx<'_>,
    st: &mut AcceptStatements<'_>,
    batch: &[NewMessage],
) -> Result<Vec<AcceptOutcome>, StoreError> {
    let now = cx.now.as_millis();
    let window_start = cx
        .now
        .saturating_sub(cx.config.idempotency_window)
        .as_millis();
    let AcceptStatements {
        find_suppression,
        claim_key,
        find_key,
        insert,
    } = st;
    let mut fresh_key = |key: &str| -> Result<Option<MessageId>, StoreError> {
        let id = find_key
            .query_row(params![key, window_start], |row| row.get::<_, Vec<u8>>(0))
            .optional()?;
        id.map(|id| rows::message_id(&id)).transpose()
    };

    let mut out = Vec::with_capacity(batch.len());
    for m in batch {
        let suppressed = find_suppression
            .query_row([&m.to], |row| Ok(rows::suppression(row)))
            .optional()?;
        if let Some(s) = suppressed {
            // A repeat of a request accepted before the suppression still gets its message.
            let original = match &m.idempotency_key {
                Some(key) => fresh_key(key)?,
                None => None,
            };
            out.push(match original {
                Some(id) => AcceptOutcome::Duplicate(id),
                None => AcceptOutcome::Suppressed(s?),
            });
            continue;
        }
        // Row numbers only grow; one spent on a duplicate below just leaves a gap.
        let rid = *cx.next_rid;
        *cx.next_rid += 1;
        let id = cx.ids.next_id(cx.now, rid as u64);
        let bytes = id.to_bytes();
        if let Some(key) = &m.idempotency_key {
            let taken = claim_key.execute(params![key, &bytes[..], now, window_start])?;
            if taken == 0 {
                // The key is fresh: the original stands (the id drawn above goes unused).
                match fresh_key(key)? {
                    Some(original) => {
                        out.push(AcceptOutcome::Duplicate(original));
                        continue;
                    }
                    None => return Err(rows::corrupt("idempotency key vanished")),
                }
            }
        }
        let next_at = m.not_before.map_or(now, Timestamp::as_millis);
        let state = if next_at <= now && claims_fresh(cx)? {
            MessageState::Submitting
        } else {
            MessageState::Accepted
        };
        insert.execute(params![
            &bytes[..],
            m.priority.get(),
            next_at,
            now,
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
            rid,
            state.code(),
        ])?;
        cx.moved(None, Some(state));
        if state == MessageState::Submitting {
            cx.inflight.claimed(
                rid,
                Claim {
                    id: bytes,
                    attempts: 0,
                    accepted_at: now,
                    parts: m.parts,
                    has_callback_url: m.callback_url.is_some(),
                },
            );
            cx.handed.push(Message {
                id,
                idempotency_key: m.idempotency_key.clone(),
                to: m.to.clone(),
                from: m.from.clone(),
                body: m.body.clone(),
                encoding: m.encoding,
                parts: m.parts,
                priority: m.priority,
                expires_at: m.expires_at,
                callback_url: m.callback_url.clone(),
                carrier: m.carrier.clone(),
                tags: m.tags.clone(),
                state,
                reason: None,
                created_at: cx.now,
                updated_at: cx.now,
                next_attempt_at: Some(Timestamp::from_millis(next_at)),
                attempts: 0,
                in_doubt_resubmits: 0,
            });
        }
        out.push(AcceptOutcome::Inserted(id));
    }
    Ok(out)
}

/// Whether the message being accepted is claimed with it (see
/// [`Store::claim_fresh`](crate::store::Store::claim_fresh)): only while nothing accepted
/// earlier is ready (claims keep priority order), and only within the dispatcher's room,
/// which this takes one from.
fn claims_fresh(cx: &mut Ctx<'_>) -> Result<bool, StoreError> {
    let Some(fresh) = cx.fresh else {
        return Ok(false);
    };
    if cx.fresh_open.is_none() {
        let mut ready = cx.conn.prepare_cached(READY_AT)?;
        let mut waiting = false;
        for priority in 0..=Priority::MAX.get() {
            waiting |= ready.exists(params![priority, cx.now.as_millis()])?;
        }
        cx.fresh_open = Some(!waiting);
    }
    if cx.fresh_open != Some(true) {
        return Ok(false);
    }
    let took = fresh
        .room
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
        .is_ok();
    if !took {
        cx.fresh_open = Some(false);
    }
    Ok(took)
}

// ---- claim ----------------------------------------------------------------------------------

fn claim_sql() -> String {
    // One seek per priority on (priority, next_at), so messages scheduled for later are never
    // stepped over; the select and the move to submitting are one statement. The limit is an
    // expression (`+?3`): SQLite plans with the value of a bare `LIMIT ?`, and prepares the
    // statement again whenever it changes.
    format!(
        "UPDATE OR FAIL messages SET prev_state = state, state = 1, updated_at = ?1 \
         WHERE rid IN (SELECT rid FROM messages INDEXED BY messages_ready \
             WHERE state IN (0, 3) AND priority = ?2 AND next_at <= ?1 \
             ORDER BY next_at, rid LIMIT +?3) \
         RETURNING rid, prev_state, {MESSAGE_COLUMNS}"
    )
}

pub(super) fn claim(cx: &mut Ctx<'_>, limit: &usize) -> Result<Vec<Message>, StoreError> {
    let mut out: Vec<Message> = Vec::with_capacity(*limit);
    let mut stmt = cx.conn.prepare_cached(&claim_sql())?;
    for priority in (0..=Priority::MAX.get()).rev() {
        let room = limit.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        // RETURNING gives rows in no set order: put this priority's back in claim order.
        let mut level: Vec<(i64, i64, Message)> = Vec::new();
        let mut q = stmt.query(params![cx.now.as_millis(), priority, room as i64])?;
        while let Some(row) = q.next()? {
            let message = rows::message(row, 2)?;
            let next_at = message.next_attempt_at.map_or(0, Timestamp::as_millis);
            let rid: i64 = row.get(0)?;
            cx.moved(Some(rows::state(row.get(1)?)?), Some(message.state));
            cx.inflight.claimed(
                rid,
                Claim {
                    id: message.id.to_bytes(),
                    attempts: message.attempts,
                    accepted_at: message.created_at.as_millis(),
                    parts: message.parts,
                    has_callback_url: message.callback_url.is_some(),
                },
            );
            level.push((next_at, rid, message));
        }
        level.sort_by_key(|(next_at, rid, _)| (*next_at, *rid));
        out.extend(level.into_iter().map(|(_, _, m)| m));
    }
    Ok(out)
}

// ---- updates --------------------------------------------------------------------------------

/// The row of message id ?2, which lives at row ?1 if it exists at all.
const FIND_MESSAGE: &str = "SELECT state, attempts FROM messages WHERE rid = ?1 AND id = ?2";
/// Moves a message whose state is in the bit mask ?9 to ?2, setting the reason when ?4.
const TRANSITION: &str = "UPDATE OR FAIL messages SET prev_state = state, state = ?2, next_at = ?3, \
     reason_code = CASE WHEN ?4 THEN ?5 ELSE reason_code END, \
     reason_text = CASE WHEN ?4 THEN ?6 ELSE reason_text END, \
     attempts = attempts + ?7, updated_at = ?8 \
     WHERE rid = ?1 AND id = ?10 AND (?9 >> state) & 1";
/// What a transition changed. (Read back rather than with RETURNING, which would build a
/// temporary table for every statement.)
const AFTER_TRANSITION: &str = "SELECT prev_state FROM messages WHERE rid = ?1";
const COUNT_IN_DOUBT: &str = "UPDATE OR FAIL messages SET in_doubt = in_doubt + 1, \
     updated_at = ?2 WHERE rid = ?1 AND id = ?3 AND state < 4";
/// Records an attempt, numbered by the message's attempt count (which the transition that
/// ended it has just raised).
const INSERT_ATTEMPT: &str = "INSERT OR FAIL INTO attempts (rid, n, carrier, bind, parts, \
     status, outcome, detail, started_at, ended_at) \
     SELECT ?1, attempts, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM messages WHERE rid = ?1";
/// Records attempt number ?10, known from the claim.
const INSERT_NUMBERED_ATTEMPT: &str = "INSERT OR FAIL INTO attempts (rid, n, carrier, bind, \
     parts, status, outcome, detail, started_at, ended_at) \
     VALUES (?1, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
/// Records a part of a message that exists and is not final.
const UPSERT_PART: &str = "INSERT OR FAIL INTO parts (rid, idx, state, carrier, bind, \
     carrier_id, id_key, status, submitted_at, updated_at, indexed) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0 \
     WHERE EXISTS (SELECT 1 FROM messages WHERE rid = ?1 AND id = ?11 AND state < 4) \
     ON CONFLICT (rid, idx) DO UPDATE SET state = excluded.state, \
     carrier = excluded.carrier, bind = excluded.bind, carrier_id = excluded.carrier_id, \
     id_key = excluded.id_key, status = excluded.status, receipt_stat = NULL, \
     receipt_err = NULL, submitted_at = excluded.submitted_at, receipt_at = NULL, \
     updated_at = excluded.updated_at, indexed = 0";
/// [`UPSERT_PART`] for a message known to be `submitting` (so it exists and is not final).
const UPSERT_CLAIMED_PART: &str = "INSERT OR FAIL INTO parts (rid, idx, state, carrier, bind, \
     carrier_id, id_key, status, submitted_at, updated_at, indexed) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0) \
     ON CONFLICT (rid, idx) DO UPDATE SET state = excluded.state, \
     carrier = excluded.carrier, bind = excluded.bind, carrier_id = excluded.carrier_id, \
     id_key = excluded.id_key, status = excluded.status, receipt_stat = NULL, \
     receipt_err = NULL, submitted_at = excluded.submitted_at, receipt_at = NULL, \
     updated_at = excluded.updated_at, indexed = 0";
/// The carrier and key a part was last written with.
const PART_KEY: &str = "SELECT carrier, id_key FROM parts WHERE rid = ?1 AND idx = ?2";
const FIND_UNMATCHED: &str = "SELECT id, stat, err FROM receipts \
     WHERE carrier = ?1 AND id_key = ?2 AND rid IS NULL ORDER BY id";
const LINK_RECEIPT: &str = "UPDATE OR FAIL receipts SET rid = ?2, part = ?3 WHERE id = ?1";

/// A set of states, as the bit mask [`TRANSITION`] tests.
fn mask(states: &[MessageState]) -> i64 {
    states.iter().fold(0, |m, s| m | 1 << s.code())
}

const NOT_FINAL: &[MessageState] = &[
    MessageState::Accepted,
    MessageState::Submitting,
    MessageState::Submitted,
    MessageState::Retrying,
];

/// The statements updates use, prepared once per call.
struct UpdateStatements<'c> {
    find: CachedStatement<'c>,
    transition: CachedStatement<'c>,
    after: CachedStatement<'c>,
    in_doubt: CachedStatement<'c>,
    attempt: CachedStatement<'c>,
    numbered_attempt: CachedStatement<'c>,
    part: CachedStatement<'c>,
    claimed_part: CachedStatement<'c>,
    part_key: CachedStatement<'c>,
    unmatched: CachedStatement<'c>,
}

/// A transition to make, if the message's state is one of `from`.
struct Transition<'r> {
    from: &'r [MessageState],
    to: MessageState,
    next_at: Option<Timestamp>,
    /// `None` keeps the current reason.
    reason: Option<&'r Reason>,
    add_attempt: bool,
    /// The state of `from` the message is most likely in: tried alone first, so the state
    /// it left is known without reading it back.
    likely: Option<MessageState>,
}

/// What a transition left.
struct Left {
    /// The claim, when it left `submitting` and memory held it.
    claim: Option<Claim>,
}

/// Where a message lives: its row number, and the whole id to check there.
#[derive(Clone, Copy)]
struct Row {
    rid: i64,
    id: [u8; 16],
}

impl Row {
    fn of(id: MessageId) -> Row {
        Row {
            // An id whose sequence is not a row number (above i64::MAX) finds no row.
            rid: i64::try_from(id.sequence()).unwrap_or(-1),
            id: id.to_bytes(),
        }
    }
}

impl<'c> UpdateStatements<'c> {
    fn prepare(conn: &'c Connection) -> Result<UpdateStatements<'c>, StoreError> {
        Ok(UpdateStatements {
            find: conn.prepare_cached(FIND_MESSAGE)?,
            transition: conn.prepare_cached(TRANSITION)?,
            after: conn.prepare_cached(AFTER_TRANSITION)?,
            in_doubt: conn.prepare_cached(COUNT_IN_DOUBT)?,
            attempt: conn.prepare_cached(INSERT_ATTEMPT)?,
            numbered_attempt: conn.prepare_cached(INSERT_NUMBERED_ATTEMPT)?,
            part: conn.prepare_cached(UPSERT_PART)?,
            claimed_part: conn.prepare_cached(UPSERT_CLAIMED_PART)?,
            part_key: conn.prepare_cached(PART_KEY)?,
            unmatched: conn.prepare_cached(FIND_UNMATCHED)?,
        })
    }

    /// Writes a part (`values` are parameters 1 to 10 of [`UPSERT_PART`], the part's index
    /// second) if its message exists and is not final. Answers the number of rows written, and
    /// the message's claim if it is `submitting`.
    fn write_part(
        &mut self,
        cx: &mut Ctx<'_>,
        at: Row,
        part: u16,
        values: &[&dyn ToSql; 10],
    ) -> Result<(usize, Option<Claim>), StoreError> {
        let claim = cx.inflight.get(at.rid, &at.id).copied();
        // A first attempt writes its parts for the first time. Anything else (a retry, a
        // late response) may write over a part held in memory with its message: from now on
        // that part's receipts read the file.
        if claim.is_none_or(|c| c.attempts > 0)
            && let Some((carrier, key)) = self
                .part_key
                .query_row(params![at.rid, part], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                })
                .optional()?
            && let Some(key) = key
        {
            cx.recent
                .forget_one(recent::hash(&carrier, &key), (at.rid, part));
        }
        if claim.is_some() {
            return Ok((self.claimed_part.execute(&values[..])?, claim));
        }
        let id: &[u8] = &at.id;
        let all = values.iter().copied().chain([&id as &dyn ToSql]);
        Ok((self.part.execute(params_from_iter(all))?, None))
    }

    /// Why an update matched no row: the message is missing, or its state forbids it.
    fn refused(&mut self, at: Row) -> Result<UpdateOutcome, StoreError> {
        let state = self
            .find
            .query_row(params![at.rid, &at.id[..]], |row| row.get::<_, i64>(0))
            .optional()?;
        Ok(match state {
            None => UpdateOutcome::NotFound,
            Some(code) => UpdateOutcome::NotAllowed {
                state: rows::state(code)?,
            },
        })
    }

    /// Makes `t`; `None` if the state did not allow it.
    fn transition(
        &mut self,
        cx: &mut Ctx<'_>,
        at: Row,
        t: Transition<'_>,
    ) -> Result<Option<Left>, StoreError> {
        let (set_reason, code, text) = match t.reason {
            Some(r) => (true, Some(r.code.as_str()), Some(r.text.as_str())),
            None => (false, None, None),
        };
        let mut run = |from: i64| {
            self.transition.execute(params![
                at.rid,
                t.to.code(),
                t.next_at.map(Timestamp::as_millis),
                set_reason,
                code,
                text,
                i64::from(t.add_attempt),
                cx.now.as_millis(),
                from,
                &at.id[..],
            ])
        };
        // The state it left, when known without reading it back.
        let mut left = None;
        if let Some(likely) = t.likely.filter(|_| t.from.len() > 1)
            && run(mask(&[likely]))? > 0
        {
            left = Some(likely);
        } else if run(mask(t.from))? == 0 {
            return Ok(None);
        }
        if t.to.is_final() {
            cx.recent.finished(at.rid);
        }
        // From a single state the old state is known; otherwise read what the UPDATE kept.
        let from = match (left, t.from) {
            (Some(likely), _) => likely,
            (None, [only]) => *only,
            (None, _) => rows::state(self.after.query_row([at.rid], |row| row.get::<_, i64>(0))?)?,
        };
        cx.moved(Some(from), Some(t.to));
        let claim = match from {
            MessageState::Submitting => cx.inflight.left(at.rid),
            _ => None,
        };
        Ok(Some(Left { claim }))
    }
}

pub(super) fn apply(
    cx: &mut Ctx<'_>,
    updates: &Vec<Update>,
) -> Result<Vec<UpdateOutcome>, StoreError> {
    let mut st = match cx.updates.take() {
        Some(st) => st,
        None => UpdateStatements::prepare(cx.conn)?,
    };
    let mut out = Vec::with_capacity(updates.len());
    for update in updates {
        out.push(apply_one(cx, &mut st, update)?);
    }
    cx.updates = Some(st);
    Ok(out)
}

fn apply_one(
    cx: &mut Ctx<'_>,
    st: &mut UpdateStatements<'_>,
    update: &Update,
) -> Result<UpdateOutcome, StoreError> {
    use MessageState as S;
    let at = Row::of(update.id());
    let now = cx.now;
    let applied = |done: bool, st: &mut UpdateStatements<'_>| match done {
        true => Ok(UpdateOutcome::Applied),
        false => st.refused(at),
    };
    match update {
        Update::PartSubmitted {
            id,
            part,
            carrier,
            bind,
            carrier_message_id,
            key,
        } => {
            let (written, claim) = st.write_part(
                cx,
                at,
                *part,
                &[
                    &at.rid,
                    part,
                    &PartState::Submitted.code(),
                    carrier,
                    bind,
                    carrier_message_id,
                    &key.as_str(),
                    &0,
                    &now.as_millis(),
                    &now.as_millis(),
                ],
            )?;
            if written == 0 {
                return st.refused(at);
            }
            let hash = recent::hash(carrier, key.as_str());
            let one = claim.filter(|c| c.parts == 1).map(|c| OnePart {
                id: at.id,
                accepted_at: c.accepted_at,
                has_callback_url: c.has_callback_url,
                check: recent::check(carrier, key.as_str()),
            });
            cx.hold_part(hash, (at.rid, *part), one)?;
            // A receipt that beat its submit_sm_resp here is waiting unmatched (if any is).
            if cx.unmatched + cx.unmatched_delta <= 0 {
                return Ok(UpdateOutcome::Applied);
            }
            let waiting: Vec<(i64, Option<String>, Option<String>)> = st
                .unmatched
                .query_map(params![carrier, key.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let Some(last) = waiting.last().map(|w| w.0) else {
                return Ok(UpdateOutcome::Applied);
            };
            let mut state = PartState::Submitted;
            for (receipt_id, stat, err) in waiting {
                cx.conn
                    .prepare_cached(LINK_RECEIPT)?
                    .execute(params![receipt_id, at.rid, part])?;
                cx.unmatched_delta -= 1;
                let stat = rows::receipt_stat(stat);
                state = record_receipt_on_part(cx, at.rid, *part, state, stat.as_ref(), &err)?
                    .unwrap_or(state);
            }
            Ok(UpdateOutcome::ReceiptMatched(receipt_match(
                cx,
                last,
                at.rid,
                Some(*id),
                *part,
                None,
            )?))
        }
        Update::PartRejected {
            part,
            carrier,
            bind,
            status,
            ..
        } => {
            let (written, _) = st.write_part(
                cx,
                at,
                *part,
                &[
                    &at.rid,
                    part,
                    &PartState::Rejected.code(),
                    carrier,
                    bind,
                    &None::<&str>,
                    &None::<&str>,
                    &status.0,
                    &None::<i64>,
                    &now.as_millis(),
                ],
            )?;
            if written == 0 {
                return st.refused(at);
            }
            Ok(UpdateOutcome::Applied)
        }
        Update::AttemptFinished { attempt, next, .. } => {
            let (to, next_at, reason) = match next {
                // The last reason (of a retry) stays for the record.
                AfterAttempt::Submitted { receipt_deadline } => {
                    (S::Submitted, Some(*receipt_deadline), None)
                }
                AfterAttempt::Retry { at, reason } => (S::Retrying, Some(*at), Some(reason)),
                AfterAttempt::Final { state, reason } => ((*state).into(), None, Some(reason)),
            };
            let t = Transition {
                from: &[S::Submitting],
                to,
                next_at,
                reason,
                add_attempt: true,
                likely: None,
            };
            let Some(left) = st.transition(cx, at, t)? else {
                return st.refused(at);
            };
            let row = params![
                at.rid,
                attempt.carrier,
                attempt.bind,
                attempt.parts,
                attempt.command_status.map(|s| s.0),
                attempt.outcome.code(),
                attempt.detail,
                attempt.started_at.as_millis(),
                attempt.ended_at.as_millis(),
            ];
            // Numbered by the claim's count when memory held it; else by the row's.
            let recorded = match left.claim {
                Some(claim) => {
                    let n = i64::from(claim.attempts) + 1;
                    st.numbered_attempt.execute(params_from_iter(
                        row.iter().copied().chain([&n as &dyn ToSql]),
                    ))?
                }
                None => st.attempt.execute(row)?,
            };
            if recorded != 1 {
                return Err(rows::corrupt("the message vanished inside its transaction"));
            }
            Ok(UpdateOutcome::Applied)
        }
        Update::ScheduleRetry {
            at: when, reason, ..
        } => {
            let t = Transition {
                from: &[S::Submitting, S::Submitted, S::Retrying],
                to: S::Retrying,
                next_at: Some(*when),
                reason: Some(reason),
                add_attempt: false,
                likely: None,
            };
            let done = st.transition(cx, at, t)?.is_some();
            applied(done, st)
        }
        Update::Release { at: when, .. } => {
            let found = st
                .find
                .query_row(params![at.rid, &at.id[..]], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })
                .optional()?;
            let Some((state, attempts)) = found else {
                return Ok(UpdateOutcome::NotFound);
            };
            let to = if attempts == 0 {
                S::Accepted
            } else {
                S::Retrying
            };
            let t = Transition {
                from: &[S::Submitting],
                to,
                next_at: Some(*when),
                reason: None,
                add_attempt: false,
                likely: None,
            };
            if st.transition(cx, at, t)?.is_some() {
                Ok(UpdateOutcome::Applied)
            } else {
                Ok(UpdateOutcome::NotAllowed {
                    state: rows::state(state)?,
                })
            }
        }
        Update::Finish { state, reason, .. } => {
            let t = Transition {
                from: NOT_FINAL,
                to: (*state).into(),
                next_at: None,
                reason: Some(reason),
                add_attempt: false,
                // Most messages end on a receipt.
                likely: Some(S::Submitted),
            };
            let done = st.transition(cx, at, t)?.is_some();
            applied(done, st)
        }
        Update::InDoubtResubmit { .. } => {
            if st
                .in_doubt
                .execute(params![at.rid, now.as_millis(), &at.id[..]])?
                == 0
            {
                return st.refused(at);
            }
            Ok(UpdateOutcome::Applied)
        }
        Update::Cancel { reason, .. } => {
            let t = Transition {
                from: &[S::Accepted, S::Retrying],
                to: S::Cancelled,
                next_at: None,
                reason: Some(reason),
                add_attempt: false,
                likely: None,
            };
            let done = st.transition(cx, at, t)?.is_some();
            applied(done, st)
        }
    }
}

// ---- receipts -------------------------------------------------------------------------------

/// The part a receipt belongs to, among the parts that left memory: the newest message's
/// part with this (carrier, key).
const FIND_PART: &str = "SELECT p.rid, p.idx, p.state, m.id, m.state, m.parts, m.created_at, \
     m.callback IS NOT NULL \
     FROM parts AS p INDEXED BY parts_key JOIN messages AS m ON m.rid = p.rid \
     WHERE p.carrier = ?1 AND p.id_key = ?2 AND p.indexed = 1 ORDER BY p.rid DESC LIMIT 1";
/// The part memory points a receipt to, if it still has this (carrier, key).
const FIND_RECENT_PART: &str = "SELECT p.rid, p.idx, p.state, m.id, m.state, m.parts, m.created_at, \
     m.callback IS NOT NULL \
     FROM parts AS p JOIN messages AS m ON m.rid = p.rid \
     WHERE p.rid = ?3 AND p.idx = ?4 AND p.carrier = ?1 AND p.id_key = ?2";
const INSERT_RECEIPT: &str = "INSERT OR FAIL INTO receipts (rid, part, carrier, carrier_id, \
     id_key, stat, err, received_at, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const PART_RECEIPT: &str = "UPDATE OR FAIL parts SET state = ?3, receipt_stat = ?4, \
     receipt_err = ?5, receipt_at = ?6, updated_at = ?6 WHERE rid = ?1 AND idx = ?2";
const MESSAGE_FOR_ROLLUP: &str =
    "SELECT id, state, parts, created_at, callback IS NOT NULL FROM messages WHERE rid = ?1";
const PARTS_FOR_ROLLUP: &str =
    "SELECT idx, state, receipt_stat, receipt_err FROM parts WHERE rid = ?1 ORDER BY idx";

/// Writes a receipt's stat onto a part; returns what the part now holds, or `None` if it
/// was left as it was (no stat, or a late intermediate receipt after a final one).
fn record_receipt_on_part(
    cx: &mut Ctx<'_>,
    rid: i64,
    part: u16,
    current: PartState,
    stat: Option<&ReceiptStat>,
    err: &Option<String>,
) -> Result<Option<PartState>, StoreError> {
    let Some((stat, next)) = stat.and_then(|s| Some((s, current.with_receipt(s)?))) else {
        return Ok(None);
    };
    write_part_receipt(cx, rid, part, next, stat, err)?;
    Ok(Some(next))
}

fn write_part_receipt(
    cx: &mut Ctx<'_>,
    rid: i64,
    part: u16,
    state: PartState,
    stat: &ReceiptStat,
    err: &Option<String>,
) -> Result<(), StoreError> {
    cx.conn.prepare_cached(PART_RECEIPT)?.execute(params![
        rid,
        part,
        state.code(),
        stat.to_string(),
        err,
        cx.now.as_millis(),
    ])?;
    Ok(())
}

/// What is known about the message a receipt matched, when the caller already has it.
struct Known {
    state: MessageState,
    accepted_at: Timestamp,
    has_callback_url: bool,
    parts_total: u16,
    /// The matched part as just written.
    part: PartReceiptState,
}

/// The roll-up view of a message after one of its parts got a receipt. A one-part message
/// whose part was just written needs no reads.
fn receipt_match(
    cx: &Ctx<'_>,
    receipt_id: i64,
    rid: i64,
    id: Option<MessageId>,
    part: u16,
    known: Option<Known>,
) -> Result<ReceiptMatch, StoreError> {
    let (message_id, message_state, accepted_at, has_callback_url, parts_total) = match (id, known)
    {
        (Some(message_id), Some(k)) if k.parts_total <= 1 => {
            return Ok(ReceiptMatch {
                receipt_id,
                message_id,
                part,
                message_state: k.state,
                accepted_at: k.accepted_at,
                has_callback_url: k.has_callback_url,
                parts_total: k.parts_total,
                parts: vec![k.part],
                finished: None,
            });
        }
        (Some(message_id), Some(k)) => (
            message_id,
            k.state,
            k.accepted_at,
            k.has_callback_url,
            k.parts_total,
        ),
        _ => {
            let (id, state, parts, created, has_callback_url) = cx
                .conn
                .prepare_cached(MESSAGE_FOR_ROLLUP)?
                .query_row([rid], |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, bool>(4)?,
                    ))
                })?;
            (
                rows::message_id(&id)?,
                rows::state(state)?,
                Timestamp::from_millis(created),
                has_callback_url,
                rows::u16_of(parts, "parts")?,
            )
        }
    };
    let mut parts = Vec::new();
    let mut stmt = cx.conn.prepare_cached(PARTS_FOR_ROLLUP)?;
    let mut q = stmt.query([rid])?;
    while let Some(row) = q.next()? {
        parts.push(PartReceiptState {
            index: rows::u16_of(row.get(0)?, "part index")?,
            state: rows::part_state(row.get(1)?)?,
            stat: rows::receipt_stat(row.get(2)?),
            err: row.get(3)?,
        });
    }
    Ok(ReceiptMatch {
        receipt_id,
        message_id,
        part,
        message_state,
        accepted_at,
        has_callback_url,
        parts_total,
        parts,
        finished: None,
    })
}

/// A part found for a receipt.
struct Found {
    rid: i64,
    part: u16,
    part_state: PartState,
    id: MessageId,
    message_state: MessageState,
    accepted_at: Timestamp,
    has_callback_url: bool,
    parts_total: u16,
}

/// Finishes a one-part message held in memory with its part (see [`recent`]) on a receipt
/// that finishes it, without reading the part or the message: a message not `submitting` is
/// taken to be `submitted`, which the transition checks. `None`, with nothing written, when
/// the receipt does not finish the message or the message is not `submitted`: the caller then
/// reads both.
fn finish_one_part<'c>(
    cx: &mut Ctx<'c>,
    finish: &mut Option<UpdateStatements<'c>>,
    insert: &mut CachedStatement<'_>,
    r: &NewReceipt,
    rule: &RollUp,
    (rid, part): recent::PartRow,
    one: OnePart,
) -> Result<Option<ReceiptMatch>, StoreError> {
    let Some(stat) = &r.stat else {
        return Ok(None);
    };
    // A message still `submitting` is known from memory: its receipt waits for its record.
    if cx.inflight.get(rid, &one.id).is_some() {
        return Ok(None);
    }
    let Some(state) = PartState::after_receipt(stat) else {
        return Ok(None);
    };
    let message_id = rows::message_id(&one.id)?;
    let mut matched = ReceiptMatch {
        receipt_id: 0,
        message_id,
        part,
        message_state: MessageState::Submitted,
        accepted_at: Timestamp::from_millis(one.accepted_at),
        has_callback_url: one.has_callback_url,
        parts_total: 1,
        parts: vec![PartReceiptState {
            index: part,
            state,
            stat: Some(stat.clone()),
            err: r.err.clone(),
        }],
        finished: None,
    };
    let Some((to, reason)) = rule(&r.carrier, &matched) else {
        return Ok(None);
    };
    let st = match finish {
        Some(st) => st,
        None => finish.insert(UpdateStatements::prepare(cx.conn)?),
    };
    let t = Transition {
        from: &[MessageState::Submitted],
        to: to.into(),
        next_at: None,
        reason: Some(&reason),
        add_attempt: false,
        likely: None,
    };
    if st.transition(cx, Row { rid, id: one.id }, t)?.is_none() {
        return Ok(None);
    }
    insert.execute(params![
        rid,
        part,
        r.carrier,
        r.carrier_message_id,
        r.key.as_str(),
        stat.to_string(),
        r.err,
        cx.now.as_millis(),
        r.raw,
    ])?;
    matched.receipt_id = cx.conn.last_insert_rowid();
    matched.finished = Some((to, reason));
    Ok(Some(matched))
}

pub(super) fn receipts(
    cx: &mut Ctx<'_>,
    (receipts, rule): &(Vec<NewReceipt>, Option<RollUp>),
) -> Result<Vec<ReceiptOutcome>, StoreError> {
    let conn = cx.conn;
    // Prepared on the first roll-up that finishes a message, if no update did it before.
    let mut finish = cx.updates.take();
    let mut find = conn.prepare_cached(FIND_PART)?;
    let mut find_recent = conn.prepare_cached(FIND_RECENT_PART)?;
    let mut insert = conn.prepare_cached(INSERT_RECEIPT)?;
    let mut out = Vec::with_capacity(receipts.len());
    let read = |row: &rusqlite::Row<'_>| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, Vec<u8>>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, i64>(6)?,
            row.get::<_, bool>(7)?,
        ))
    };
    for r in receipts {
        let hash = recent::hash(&r.carrier, r.key.as_str());
        if let Some(rule) = rule
            && let Some((part, one)) = cx.recent.get_one(hash)
            && one.check == recent::check(&r.carrier, r.key.as_str())
            && let Some(matched) =
                finish_one_part(cx, &mut finish, &mut insert, r, rule, part, one)?
        {
            out.push(ReceiptOutcome::Matched(matched));
            continue;
        }
        // Memory first; a miss, or a part that since went out again under another id, is
        // looked up among the parts that left memory.
        let found = match cx.recent.get(hash) {
            Some((rid, idx)) => find_recent
                .query_row(params![r.carrier, r.key.as_str(), rid, idx], read)
                .optional()?,
            None => None,
        };
        let found = match found {
            Some(found) => Some(found),
            None => find
                .query_row(params![r.carrier, r.key.as_str()], read)
                .optional()?,
        };
        let found = found
            .map(
                |(rid, idx, part_state, id, state, parts, created, callback)| {
                    Ok::<_, StoreError>(Found {
                        rid,
                        part: rows::u16_of(idx, "part index")?,
                        part_state: rows::part_state(part_state)?,
                        id: rows::message_id(&id)?,
                        message_state: rows::state(state)?,
                        accepted_at: Timestamp::from_millis(created),
                        has_callback_url: callback,
                        parts_total: rows::u16_of(parts, "parts")?,
                    })
                },
            )
            .transpose()?;
        let stat_text = r.stat.as_ref().map(ToString::to_string);
        insert.execute(params![
            found.as_ref().map(|f| f.rid),
            found.as_ref().map(|f| f.part),
            r.carrier,
            r.carrier_message_id,
            r.key.as_str(),
            stat_text,
            r.err,
            cx.now.as_millis(),
            r.raw,
        ])?;
        let receipt_id = conn.last_insert_rowid();
        let Some(f) = found else {
            cx.unmatched_delta += 1;
            out.push(ReceiptOutcome::Unmatched { receipt_id });
            continue;
        };
        // What the receipt makes of the part. A message of several parts is rolled up from
        // its parts as written, so this one is written first. A message of one part needs no
        // read of it: its part is written after the roll-up, and not at all when the receipt
        // finished the message (the receipt, stored and linked to the part, is folded into
        // the part when the message is read: see `read::detail`).
        let written = r
            .stat
            .as_ref()
            .and_then(|stat| Some((stat, f.part_state.with_receipt(stat)?)));
        let single = f.parts_total <= 1;
        if !single && let Some((stat, state)) = written {
            write_part_receipt(cx, f.rid, f.part, state, stat, &r.err)?;
        }
        let known = written.map(|(_, state)| Known {
            state: f.message_state,
            accepted_at: f.accepted_at,
            has_callback_url: f.has_callback_url,
            parts_total: f.parts_total,
            part: PartReceiptState {
                index: f.part,
                state,
                stat: r.stat.clone(),
                err: r.err.clone(),
            },
        });
        let mut matched = receipt_match(cx, receipt_id, f.rid, Some(f.id), f.part, known)?;
        if let Some(rule) = rule
            && matched.message_state == MessageState::Submitted
            && let Some((state, reason)) = rule(&r.carrier, &matched)
        {
            let st = match &mut finish {
                Some(st) => st,
                None => finish.insert(UpdateStatements::prepare(conn)?),
            };
            let at = Row {
                rid: f.rid,
                id: f.id.to_bytes(),
            };
            let t = Transition {
                from: &[MessageState::Submitted],
                to: state.into(),
                next_at: None,
                reason: Some(&reason),
                add_attempt: false,
                likely: None,
            };
            if st.transition(cx, at, t)?.is_some() {
                matched.finished = Some((state, reason));
            }
        }
        if single
            && matched.finished.is_none()
            && let Some((stat, state)) = written
        {
            write_part_receipt(cx, f.rid, f.part, state, stat, &r.err)?;
        }
        out.push(ReceiptOutcome::Matched(matched));
    }
    cx.updates = finish;
    Ok(out)
}

// ---- MO, suppressions -----------------------------------------------------------------------

const INSERT_MO: &str = "INSERT OR FAIL INTO mo (carrier, from_addr, to_addr, text, received_at) \
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

const PUT_SUPPRESSION: &str = "INSERT OR FAIL INTO suppressions (number, reason, source, created_at) \
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
    let victims: Vec<(i64, i64)> = cx
        .conn
        .prepare_cached(FINISHED_BEFORE)?
        .query_map(params![&bound[..], cutoff.as_millis(), limit], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (rid, state) in &victims {
        for sql in [
            "DELETE FROM parts WHERE rid = ?1",
            "DELETE FROM attempts WHERE rid = ?1",
            "DELETE FROM receipts WHERE rid = ?1",
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
             WHERE rid IS NULL AND received_at < ?1 LIMIT ?2)",
            )?
            .execute(params![receipt_cutoff.as_millis(), limit])? as u64;
    cx.unmatched_delta -= report.unmatched_receipts as i64;

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

    // The destination index forgets a bucket once every message of it is gone, one bucket a
    // call (stale entries of pruned messages in live buckets match no row).
    let mut dest_left = false;
    if cx.config.index_destinations {
        let dropped = cx
            .conn
            .prepare_cached(&format!(
                "DELETE FROM dest WHERE bucket = (SELECT min(bucket) FROM dest) \
                 AND bucket < (SELECT coalesce(min(rid), ?1) FROM messages) >> {}",
                schema::DEST_BUCKET_SHIFT
            ))?
            .execute([*cx.next_rid])?;
        dest_left = dropped > 0;
    }

    let full = |n: u64| n >= limit as u64;
    report.more = dest_left
        || full(report.messages)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncing_a_missing_wal_is_nothing_to_do_and_a_present_one_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("smppd.db-wal");
        sync_wal(&wal).unwrap();
        std::fs::write(&wal, b"frames").unwrap();
        sync_wal(&wal).unwrap();
        // A path that cannot be opened is an error, never a silent success.
        let blocked = dir.path().join("file").join("smppd.db-wal");
        std::fs::write(dir.path().join("file"), b"").unwrap();
        assert!(sync_wal(&blocked).is_err());
    }

    /// The plan of every hot statement: each must reach its rows through an index, never by
    /// scanning a table.
    #[test]
    fn hot_statements_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::in_dir(dir.path());
        let conn = super::super::open_writer(&config).unwrap().conn;
        let claim = claim_sql();
        let statements = [
            FIND_SUPPRESSION,
            CLAIM_KEY,
            FIND_FRESH_KEY,
            claim.as_str(),
            FIND_MESSAGE,
            TRANSITION,
            AFTER_TRANSITION,
            COUNT_IN_DOUBT,
            INSERT_ATTEMPT,
            UPSERT_PART,
            FIND_UNMATCHED,
            LINK_RECEIPT,
            FIND_PART,
            FIND_RECENT_PART,
            recent::SPILL,
            PART_RECEIPT,
            MESSAGE_FOR_ROLLUP,
            PARTS_FOR_ROLLUP,
            FINISHED_BEFORE,
        ];
        for sql in statements {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Parameters stay unbound (NULL): the plan does not depend on their values.
            let mut rows = stmt.raw_query();
            let mut details = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                details.push(row.get::<_, String>(3).unwrap());
            }
            for d in &details {
                assert!(!d.starts_with("SCAN "), "{sql}\n  plan: {details:?}");
            }
        }
    }

    /// Claims ask for as many messages as there is room for, which changes from one claim to
    /// the next: the statement must not be prepared again for each new limit.
    #[test]
    fn the_claim_statement_is_prepared_once_whatever_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::in_dir(dir.path());
        let conn = super::super::open_writer(&config).unwrap().conn;
        let mut stmt = conn.prepare(&claim_sql()).unwrap();
        for room in 1..6i64 {
            let mut rows = stmt.query(params![1_000 + room, room % 4, room]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}

//! The embedded store: SQLite in WAL mode, one file, group-committed by one writer thread.
//!
//! See the [module docs](crate::store) for what callers may rely on, [`schema`] for the tables
//! and indexes, and [`writer`] for the commit loop.

mod checkpoint;
mod inflight;
mod read;
mod recent;
mod rows;
mod schema;
mod shared;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use self::checkpoint::{Checkpointer, WRITER_AUTOCHECKPOINT};
use self::inflight::InFlight;
use self::read::Readers;
use self::recent::RecentParts;
use self::shared::Counts;
use self::writer::{Ctx, Job, Msg, Queued, Syncer, Writer};
use super::{
    AcceptOutcome, Backlog, Clock, FreshClaims, IdGenerator, ListQuery, MAX_BATCH, MAX_PAGE,
    Message, MessageDetail, MessageId, Mo, NewMessage, NewMo, NewReceipt, Page, PruneReport,
    RandomSource, ReceiptOutcome, Recovery, RollUp, SplitMix64, StateCounts, Store, StoreError,
    StoreFuture, Suppression, SuppressionSource, SystemClock, Update, UpdateOutcome,
};

/// How hard each commit pushes data to the disk (SQLite's `synchronous` pragma in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is synced to the disk before the write resolves: committed data survives
    /// power loss. The default, and what "accepted means durable" asks for. The sync runs on
    /// a thread of its own while the writer goes on with the next transaction, and one sync
    /// covers every commit made meanwhile.
    #[default]
    Full,
    /// The WAL is fsynced only at checkpoints: committed data survives a process crash, but
    /// the last commits may be lost on power loss or an OS crash. Faster on slow disks.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// The embedded store's settings. Every default is on [`SqliteConfig::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file (its `-wal` and `-shm` files sit beside it). Its directory is
    /// created if missing.
    pub path: PathBuf,
    /// Durability of each commit. Default [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// The most rows (messages, updates, receipts; other writes count one) queued for the
    /// writer, including the commit in progress. Default 50 000; at least [`MAX_BATCH`].
    pub queue_rows: usize,
    /// The most messages waiting to be sent for the first time (state `accepted`): an accept
    /// that would go beyond it is refused with [`StoreError::Backlogged`], so the intake
    /// cannot outrun the pipeline without bound. 0 for no limit. Default 200 000.
    pub max_backlog: u64,
    /// The writer closes a batch once it holds this many rows. Default 10 000.
    pub max_commit_rows: usize,
    /// The least time between the starts of two commits while writes keep coming. Each
    /// commit writes every page it dirtied to the WAL whole, and under load consecutive
    /// commits dirty the same index pages again, so spacing them saves the writer work per
    /// row at the cost of that much latency under load; a write after a quiet spell is
    /// committed at once. Zero commits as soon as the previous commit is done. At most 1 s.
    /// Default 8 ms.
    pub commit_spacing: Duration,
    /// A commit starts before its spacing is up once this many writes wait for it (each an
    /// accept request, a batch of receipts, a batch of attempt outcomes): when that many
    /// callers wait, the commit is full enough and waiting longer only adds latency. At
    /// least 1. Default 32.
    pub commit_waiters: usize,
    /// Read-only connections (reads beyond this wait). Default 4.
    pub readers: usize,
    /// How many of the latest submitted parts the writer holds in memory to match their
    /// receipts (up to about 80 bytes each); older parts of unfinished messages are matched
    /// through an index on disk, which costs a random page write per part. 0 puts
    /// every part in that index at once. Default 500 000.
    pub recent_parts: usize,
    /// The writer's page cache, in MiB. SQLite scans the whole cache at the end of every write
    /// transaction whose B-tree splits had to reorder pages (most of them, under load), so a
    /// larger cache costs each commit time; pages it misses come from the OS's file cache.
    /// Default 16.
    pub cache_mib: u32,
    /// Whether messages are indexed by destination, for [`ListQuery::to`], in buckets of row
    /// numbers added whole (about 1 µs of the writer's time per message; see
    /// `schema::index_destinations`). Without it a query by destination walks the messages
    /// from the newest, bounded by `since`. Turning it on builds the index at the next open;
    /// off drops it. Default true.
    pub index_destinations: bool,
    /// How long finished messages are kept after their last change (and MO messages after
    /// arrival). Default 7 days.
    pub retention: Duration,
    /// How long a receipt that matched no part is kept for its submit_sm_resp to land.
    /// Default 1 hour.
    pub unmatched_receipt_retention: Duration,
    /// How long an idempotency key maps to its message. Default 24 hours.
    pub idempotency_window: Duration,
    /// The most rows of each kind one [`Store::prune`] call deletes. Default 10 000.
    pub prune_limit: usize,
    /// How long a commit waits for the database lock when something outside the store holds
    /// it (another process on the same file, a backup); then the commit fails with
    /// [`StoreError::Database`]. Default 5 s.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// The defaults, with the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            path: path.into(),
            synchronous: Synchronous::Full,
            queue_rows: 50_000,
            max_backlog: 200_000,
            max_commit_rows: 10_000,
            commit_spacing: Duration::from_millis(8),
            commit_waiters: 32,
            readers: 4,
            recent_parts: 500_000,
            cache_mib: 16,
            index_destinations: true,
            retention: Duration::from_secs(7 * 24 * 3600),
            unmatched_receipt_retention: Duration::from_secs(3600),
            idempotency_window: Duration::from_secs(24 * 3600),
            prune_limit: 10_000,
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// The defaults, with the database `smppd.db` in the data directory `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> SqliteConfig {
        SqliteConfig::new(dir.as_ref().join("smppd.db"))
    }

    fn validate(&self) -> Result<(), StoreError> {
        let invalid = |field, problem: &str| {
            Err(StoreError::Invalid {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.queue_rows < MAX_BATCH {
            return invalid("queue_rows", "must hold at least one full batch (1000)");
        }
        if self.queue_rows > u32::MAX as usize >> 4 {
            return invalid("queue_rows", "too large");
        }
        if self.max_commit_rows == 0 {
            return invalid("max_commit_rows", "must be at least 1");
        }
        if self.commit_spacing > Duration::from_secs(1) {
            return invalid("commit_spacing", "at most 1 s");
        }
        if self.commit_waiters == 0 {
            return invalid("commit_waiters", "must be at least 1");
        }
        if self.readers == 0 {
            return invalid("readers", "must be at least 1");
        }
        if self.cache_mib == 0 {
            return invalid("cache_mib", "must be at least 1");
        }
        if self.prune_limit == 0 {
            return invalid("prune_limit", "must be at least 1");
        }
        Ok(())
    }
}

/// The embedded [`Store`]. Cheap to clone: clones share one writer and one reader pool.
///
/// Dropping every clone lets the writer finish what is queued and close the file;
/// [`SqliteStore::close`] does the same and waits for it.
///
/// One store per file: the writer expects to be the only one. Another process writing the
/// same file makes commits wait up to [`SqliteConfig::busy_timeout`] and then fail.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    /// The tasks in `tx` and in the writer's open batch.
    queued: Arc<Queued>,
    gate: Arc<Semaphore>,
    capacity: usize,
    max_backlog: u64,
    /// Whether the destination index (`dest`) exists.
    index_destinations: bool,
    readers: Arc<Readers>,
    counts: Arc<Counts>,
    clock: Arc<dyn Clock>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    /// Where the writer sends the messages it claims as they are accepted (see
    /// [`Store::claim_fresh`]).
    fresh: Arc<Mutex<Option<FreshClaims>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("backlog", &self.backlog())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store with the system clock and a randomly seeded id
    /// generator, migrating the schema, and starts its writer thread.
    pub async fn open(config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(
            config,
            Arc::new(SystemClock),
            Box::new(SplitMix64::from_entropy()),
        )
        .await
    }

    /// [`SqliteStore::open`] with an injected clock and random source (tests).
    pub async fn open_with(
        config: SqliteConfig,
        clock: Arc<dyn Clock>,
        rng: Box<dyn RandomSource>,
    ) -> Result<SqliteStore, StoreError> {
        config.validate()?;
        let cfg = config.clone();
        let opened = tokio::task::spawn_blocking(move || open_writer(&cfg))
            .await
            .map_err(|e| StoreError::Io(Arc::new(std::io::Error::other(e.to_string()))))??;

        let (tx, rx) = mpsc::channel(config.queue_rows);
        let counts = Arc::new(Counts::new(opened.counts));
        let fresh = Arc::new(Mutex::new(None));
        let queued = Arc::new(Queued::new(config.commit_waiters));
        let writer = Writer {
            queued: Arc::clone(&queued),
            fresh: Arc::clone(&fresh),
            conn: opened.conn,
            ids: IdGenerator::new(rng),
            next_rid: opened.next_rid,
            unmatched: opened.unmatched,
            recent: opened.recent,
            inflight: opened.inflight,
            dest_upto: opened.dest_upto,
            clock: Arc::clone(&clock),
            config: config.clone(),
            counts: Arc::clone(&counts),
            syncer: match config.synchronous {
                Synchronous::Full => Some(Syncer::start(&config.path)?),
                Synchronous::Normal => None,
            },
        };
        let handle = std::thread::Builder::new()
            .name("smppd-store-writer".into())
            .spawn(move || writer.run(rx))?;
        queued.set_writer(handle.thread().clone());
        let checkpointer = Checkpointer::start(&config.path, config.synchronous.pragma())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                tx,
                queued,
                gate: Arc::new(Semaphore::new(config.queue_rows)),
                capacity: config.queue_rows,
                max_backlog: config.max_backlog,
                index_destinations: config.index_destinations,
                readers: Arc::new(Readers::new(config.path.clone(), config.readers)),
                counts,
                clock,
                writer: Mutex::new(Some(handle)),
                checkpointer: Mutex::new(Some(checkpointer)),
                fresh,
            }),
        })
    }

    /// Stops taking writes, lets the writer commit everything already queued, closes the
    /// file cleanly and waits for that. Writes after this fail with [`StoreError::Closed`].
    /// Calling it again, or on another clone, returns at once.
    pub async fn close(&self) -> Result<(), StoreError> {
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(handle) = handle else {
            return Ok(());
        };
        // If the writer is gone already the send fails; joining is still right.
        let _ = self.inner.tx.send(Msg::Shutdown).await;
        self.inner.gate.close();
        let checkpointer = self
            .inner
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        tokio::task::spawn_blocking(move || {
            if let Some(c) = checkpointer {
                c.stop();
            }
            handle.join()
        })
        .await
        .map_err(|e| StoreError::Io(Arc::new(std::io::Error::other(e.to_string()))))?
        .map_err(|_| StoreError::Io(Arc::new(std::io::Error::other("writer panicked"))))
    }

    /// Queues a write and waits for its commit. `wait` chooses between waiting for room in
    /// the queue and failing at once with [`StoreError::Backlogged`].
    async fn write<Req, Res>(
        &self,
        req: Req,
        rows: usize,
        wait: bool,
        exec: fn(&mut Ctx<'_>, &Req) -> Result<Res, StoreError>,
    ) -> Result<Res, StoreError>
    where
        Req: Send + 'static,
        Res: Send + 'static,
    {
        let inner = &self.inner;
        let backlogged = StoreError::Backlogged {
            capacity: inner.capacity,
        };
        // `rows` is at most MAX_BATCH, checked by the callers, and validate() bounds capacity.
        let n = u32::try_from(rows.max(1)).map_err(|_| StoreError::TooMany {
            what: "write",
            len: rows,
            max: MAX_BATCH,
        })?;
        let permit = if wait {
            inner
                .gate
                .clone()
                .acquire_many_owned(n)
                .await
                .map_err(|_| StoreError::Closed)?
        } else {
            inner
                .gate
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|e| match e {
                    TryAcquireError::NoPermits => backlogged.clone(),
                    TryAcquireError::Closed => StoreError::Closed,
                })?
        };
        let (job, answer) = Job::new(req, rows, exec, permit);
        inner
            .tx
            .try_send(Msg::Task(Box::new(job)))
            .map_err(|e| match e {
                // The gate admits no more rows than the channel holds, so a full channel
                // means the same as an exhausted gate.
                mpsc::error::TrySendError::Full(_) => backlogged,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        inner.queued.added();
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.readers.run(f).await
    }
}

fn check_batch(what: &'static str, len: usize) -> Result<(), StoreError> {
    if len > MAX_BATCH {
        return Err(StoreError::TooMany {
            what,
            len,
            max: MAX_BATCH,
        });
    }
    Ok(())
}

/// The write connection, opened, set up and migrated, with what the writer keeps in memory.
struct OpenedWriter {
    conn: Connection,
    /// Messages per state.
    counts: [i64; 10],
    /// The row number the next message gets.
    next_rid: i64,
    /// Receipts stored without a message.
    unmatched: i64,
    /// Receipt correlation for the parts sent lately, rebuilt from the file.
    recent: RecentParts,
    /// The messages in `submitting`, read from the file.
    inflight: InFlight,
    /// The first row not yet in the destination index; `None` without one.
    dest_upto: Option<i64>,
}

fn open_writer(config: &SqliteConfig) -> Result<OpenedWriter, StoreError> {
    if let Some(dir) = config.path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut conn = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(config.busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid {
            field: "path",
            problem: format!("the file system refused WAL mode (got {mode})"),
        });
    }
    // At full, commits are synced by the store's own thread (see `Syncer`), not by SQLite
    // inside COMMIT.
    let synchronous = Synchronous::Normal.pragma();
    let cache_kib = i64::from(config.cache_mib) * 1024;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{cache_kib};
         PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT};
         PRAGMA journal_size_limit = 67108864;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrate(&mut conn)?;
    schema::index_destinations(&conn, config.index_destinations)?;
    let counts = read::count_states(&conn)?;
    let next_rid: i64 = conn.query_row(
        "SELECT coalesce(max(rid), 0) + 1 FROM messages",
        [],
        |row| row.get(0),
    )?;
    let unmatched: i64 = conn.query_row(
        "SELECT count(*) FROM receipts INDEXED BY receipts_unmatched WHERE rid IS NULL",
        [],
        |row| row.get(0),
    )?;
    let mut recent = RecentParts::new(config.recent_parts);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    recent.rebuild(&tx)?;
    let inflight = InFlight::load(&tx)?;
    tx.commit()?;
    let dest_upto = if config.index_destinations {
        Some(schema::dest_upto(&conn)?)
    } else {
        None
    };
    Ok(OpenedWriter {
        conn,
        counts,
        next_rid,
        unmatched,
        recent,
        inflight,
        dest_upto,
    })
}

impl Store for SqliteStore {
    fn accept(&self, batch: Vec<NewMessage>) -> StoreFuture<'_, Vec<AcceptOutcome>> {
        Box::pin(async move {
            check_batch("accept", batch.len())?;
            if let Some(m) = batch.iter().find(|m| m.parts == 0) {
                return Err(StoreError::Invalid {
                    field: "parts",
                    problem: format!("a message to {} has no parts", m.to),
                });
            }
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let rows = batch.len();
            let max = self.inner.max_backlog;
            if max > 0 {
                let waiting = self
                    .inner
                    .counts
                    .snapshot()
                    .get(super::MessageState::Accepted);
                if waiting.saturating_add(rows as u64) > max {
                    return Err(StoreError::Backlogged {
                        capacity: usize::try_from(max).unwrap_or(usize::MAX),
                    });
                }
            }
            self.write(batch, rows, false, writer::accept).await
        })
    }

    fn claim_fresh(&self, claims: FreshClaims) {
        *self.inner.fresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(claims);
    }

    fn claim(&self, limit: usize) -> StoreFuture<'_, Vec<Message>> {
        Box::pin(async move {
            if limit > MAX_PAGE {
                return Err(StoreError::TooMany {
                    what: "claim",
                    len: limit,
                    max: MAX_PAGE,
                });
            }
            if limit == 0 {
                return Ok(Vec::new());
            }
            self.write(limit, 1, true, writer::claim).await
        })
    }

    fn apply(&self, updates: Vec<Update>) -> StoreFuture<'_, Vec<UpdateOutcome>> {
        Box::pin(async move {
            check_batch("apply", updates.len())?;
            if updates.is_empty() {
                return Ok(Vec::new());
            }
            let rows = updates.len();
            self.write(updates, rows, true, writer::apply).await
        })
    }

    fn store_receipts_rolling_up(
        &self,
        receipts: Vec<NewReceipt>,
        rule: Option<RollUp>,
    ) -> StoreFuture<'_, Vec<ReceiptOutcome>> {
        Box::pin(async move {
            check_batch("store_receipts", receipts.len())?;
            if receipts.is_empty() {
                return Ok(Vec::new());
            }
            let rows = receipts.len();
            self.write((receipts, rule), rows, true, writer::receipts)
                .await
        })
    }

    fn store_mo(&self, mo: NewMo) -> StoreFuture<'_, i64> {
        Box::pin(self.write(mo, 1, true, writer::mo))
    }

    fn put_suppression(
        &self,
        number: String,
        reason: String,
        source: SuppressionSource,
    ) -> StoreFuture<'_, Suppression> {
        Box::pin(self.write((number, reason, source), 1, true, writer::put_suppression))
    }

    fn delete_suppression(&self, number: String) -> StoreFuture<'_, bool> {
        Box::pin(self.write(number, 1, true, writer::delete_suppression))
    }

    fn prune(&self) -> StoreFuture<'_, PruneReport> {
        Box::pin(self.write((), 1, true, writer::prune))
    }

    fn writable(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.write((), 1, false, writer::ping))
    }

    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<MessageDetail>> {
        Box::pin(self.read(move |conn| read::get(conn, id)))
    }

    fn get_many(&self, ids: Vec<MessageId>) -> StoreFuture<'_, Vec<Option<MessageDetail>>> {
        Box::pin(async move {
            check_batch("messages", ids.len())?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            self.read(move |conn| read::get_many(conn, &ids)).await
        })
    }

    fn messages(&self, ids: Vec<MessageId>) -> StoreFuture<'_, Vec<Option<Message>>> {
        Box::pin(async move {
            check_batch("messages", ids.len())?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            self.read(move |conn| read::messages(conn, &ids)).await
        })
    }

    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page> {
        let by_destination = self.inner.index_destinations;
        Box::pin(self.read(move |conn| read::list(conn, &query, by_destination)))
    }

    fn counts(&self) -> StoreFuture<'_, StateCounts> {
        Box::pin(async move { Ok(self.inner.counts.snapshot()) })
    }

    fn receipt_overdue(&self, limit: usize) -> StoreFuture<'_, Vec<MessageId>> {
        let now = self.inner.clock.now();
        Box::pin(self.read(move |conn| read::receipt_overdue(conn, now, limit)))
    }

    fn recover(&self) -> StoreFuture<'_, Recovery> {
        Box::pin(self.read(read::recover))
    }

    fn get_suppression(&self, number: String) -> StoreFuture<'_, Option<Suppression>> {
        Box::pin(self.read(move |conn| read::get_suppression(conn, &number)))
    }

    fn is_suppressed(&self, number: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let found = self
                .read(move |conn| read::get_suppression(conn, &number))
                .await?;
            Ok(found.is_some())
        })
    }

    fn list_suppressions(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<Suppression>> {
        Box::pin(self.read(move |conn| read::list_suppressions(conn, after.as_deref(), limit)))
    }

    fn list_mo(&self, after: Option<i64>, limit: usize) -> StoreFuture<'_, Vec<Mo>> {
        Box::pin(self.read(move |conn| read::list_mo(conn, after, limit)))
    }

    fn backlog(&self) -> Backlog {
        Backlog {
            queued_rows: self
                .inner
                .capacity
                .saturating_sub(self.inner.gate.available_permits()),
            capacity: self.inner.capacity,
        }
    }
}

//! The durable message store: messages, parts, attempts, receipts, MO messages, idempotency
//! keys and suppressions, behind the [`Store`] trait.
//!
//! [`SqliteStore`] is the embedded default: one SQLite file in WAL mode under the data
//! directory. Its writes are *group-committed*: one writer thread owns the write connection,
//! takes every operation queued on a bounded channel, runs them all in one transaction, and
//! answers each caller once the commit is on the disk (a sync thread flushes the WAL while the
//! writer runs the next transaction; one sync covers every commit made meanwhile). Durability
//! costs each write the latency of one commit and one sync, not a commit of its own, so
//! throughput grows with the number of concurrent callers. Reads run on separate read-only
//! connections on blocking threads.
//!
//! What callers can rely on:
//!
//! - **A write that resolved `Ok` is committed and synced** (with the default
//!   `synchronous=FULL`; [`Synchronous::Normal`] keeps it across a process crash but may lose
//!   the last commits on power loss). This is the base of "accepted means durable" and of
//!   "receipts are acknowledged after they are safe".
//! - **Atomic steps.** The idempotency check and the insert, a claim's select and its move to
//!   `submitting`, a receipt's insert and its correlation: each happens inside the writer's
//!   transaction, so two callers never see a half step, two claimers never get the same
//!   message, and a repeated idempotency key never makes a second message.
//! - **Bounded.** The write queue holds at most [`SqliteConfig::queue_rows`] rows. When it is
//!   full, [`Store::accept`] fails at once with [`StoreError::Backlogged`] (the API answers
//!   503), and the other writes wait for room, pushing back on their callers.
//! - **Futures are cancel safe** in the sense that dropping one never corrupts anything; a
//!   write whose future is dropped after it was queued is still committed, the answer is
//!   just not delivered.
//!
//! Message states are [`MessageState`]; the transitions each [`Update`] requires are on its
//! variants. Receipts are matched on (carrier account, [`MessageIdKey`](crate::sms::MessageIdKey)
//! string), in both orders: a receipt stored before its submit_sm_resp is matched when the
//! response lands. The latest parts ([`SqliteConfig::recent_parts`]) are matched in memory,
//! the older parts of unfinished messages through an index on disk; a receipt for a message
//! that finished long before is stored unmatched.
//!
//! How the dispatcher and the receipt handler use it:
//!
//! ```text
//! api        accept([NewMessage; <=1000])            -> Inserted | Duplicate | Suppressed
//! dispatch   claim(n)                                 -> messages now `submitting`
//!            apply([PartSubmitted | PartRejected ..., AttemptFinished { next }])
//!            apply([ScheduleRetry | Release | Finish | InDoubtResubmit | Cancel])
//!            receipt_overdue(n)                       -> finish them as `unknown`
//! receipts   store_receipts([NewReceipt])             -> Matched(roll-up) | Unmatched
//!            store_mo(NewMo)                          -> then deliver_sm_resp
//! start-up   recover()                                -> in-doubt messages with their parts
//! timer      prune()                                  -> while `more`
//! ```
//!
//! Throughput: the hot path is built for the writer thread's CPU, which bounds everything.
//! Each outcome is one or two indexed statements with no read-before-write (the row number
//! is inside the message id; transitions are checked in the UPDATE itself); statements are
//! prepared once per batch; no statement journal, and RETURNING (with its temp table) only
//! in a claim, once per priority; partial indexes hold only the rows in their state;
//! checkpoints run on their own thread; receipts for the latest parts are matched in
//! memory, so the index keyed by the carriers' random-looking ids only takes parts that
//! outlive memory unfinished.
//! `benches/store.rs` measures the full cycle (accept in batches of 1000, claim, part
//! submitted + attempt, receipt matched, final) with `synchronous=FULL`: about 20 µs of
//! writer CPU per message on an empty store, roughly 49 000 messages/s on the 2-core
//! development machine.

mod error;
mod id;
mod sqlite;
mod time;
mod types;

use std::future::Future;
use std::pin::Pin;

pub use error::StoreError;
pub use id::{IdGenerator, MESSAGE_ID_LEN, MessageId, ParseIdError, RandomSource, SplitMix64};
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use types::{
    AcceptOutcome, AfterAttempt, Attempt, AttemptOutcome, Backlog, Cursor, FinalState, FreshClaims,
    ListQuery, MAX_BATCH, MAX_PAGE, Message, MessageDetail, MessageState, Mo, NewAttempt,
    NewMessage, NewMo, NewReceipt, Page, Part, PartReceiptState, PartState, Priority, PruneReport,
    Reason, Receipt, ReceiptMatch, ReceiptOutcome, Recovery, RollUp, StateCounts, Suppression,
    SuppressionSource, UnknownName, Update, UpdateOutcome,
};

/// The future every [`Store`] method returns (boxed, so the trait works as `dyn Store`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The durable store the API, the dispatcher and the receipt handler share.
///
/// Every write resolves only after its transaction is committed and synced. Batch methods
/// answer per item, in input order; an error instead of the list means nothing of the call
/// was kept.
pub trait Store: Send + Sync {
    /// Stores up to [`MAX_BATCH`] new messages in one commit, as `accepted`, ready at their
    /// `not_before` (or now), or already `submitting` when [`Store::claim_fresh`] claims
    /// them. Per message: a new id, the original id when the idempotency key
    /// was used within the window (also within this same batch), or the suppression that
    /// stopped it. Fails fast with [`StoreError::Backlogged`] when the write queue is full.
    fn accept(&self, batch: Vec<NewMessage>) -> StoreFuture<'_, Vec<AcceptOutcome>>;

    /// Claims up to `limit` (at most [`MAX_PAGE`]) ready messages: `accepted` or `retrying`
    /// with `next_attempt_at <= now`, highest priority first, then earliest
    /// `next_attempt_at`. They move to `submitting`, so no two claims return the same
    /// message. Expired messages are claimed too: the dispatcher finishes them as expired.
    fn claim(&self, limit: usize) -> StoreFuture<'_, Vec<Message>>;

    /// From now on, an accepted message that is due at once and finds nothing else ready
    /// is claimed in its own commit, while `claims.room` lasts, and sent to `claims.to`
    /// once that commit is on the disk: the claim's own commit and sync are spared. A store
    /// may ignore this (every message is then claimed by [`Store::claim`]).
    fn claim_fresh(&self, claims: FreshClaims) {
        let _ = claims;
    }

    /// Records up to [`MAX_BATCH`] outcomes in one commit (see [`Update`]), answering each.
    fn apply(&self, updates: Vec<Update>) -> StoreFuture<'_, Vec<UpdateOutcome>>;

    /// Stores up to [`MAX_BATCH`] delivery receipts and, in the same transaction, matches
    /// each to the most recent part submitted with its (carrier, key), updating the part.
    fn store_receipts(&self, receipts: Vec<NewReceipt>) -> StoreFuture<'_, Vec<ReceiptOutcome>> {
        self.store_receipts_rolling_up(receipts, None)
    }

    /// [`Store::store_receipts`], and in the same transaction, for each receipt matched to a
    /// `submitted` message, asks `rule` what the match makes of the message: when it names a
    /// final state, the message takes it there and then (the change the match reports in
    /// [`ReceiptMatch::finished`]), so a later receipt of the same call already sees it final.
    fn store_receipts_rolling_up(
        &self,
        receipts: Vec<NewReceipt>,
        rule: Option<RollUp>,
    ) -> StoreFuture<'_, Vec<ReceiptOutcome>>;

    /// Stores one MO message; resolves to its id once committed (then deliver_sm_resp may go).
    fn store_mo(&self, mo: NewMo) -> StoreFuture<'_, i64>;

    /// Adds or replaces a suppression (its time becomes now).
    fn put_suppression(
        &self,
        number: String,
        reason: String,
        source: SuppressionSource,
    ) -> StoreFuture<'_, Suppression>;

    /// Removes a suppression; `false` if there was none.
    fn delete_suppression(&self, number: String) -> StoreFuture<'_, bool>;

    /// Deletes, in bounded steps: finished messages (with their parts, attempts, receipts)
    /// whose last change is older than the retention, unmatched receipts older than their
    /// retention, idempotency keys older than the window, MO messages older than the
    /// retention. Call again while [`PruneReport::more`].
    fn prune(&self) -> StoreFuture<'_, PruneReport>;

    /// Health for `/readyz`: resolves once a small write went through the writer and was
    /// committed; [`StoreError::Backlogged`] when the queue is full.
    fn writable(&self) -> StoreFuture<'_, ()>;

    /// A message with its parts, attempts and matched receipts.
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<MessageDetail>>;

    /// [`Store::get`] for up to [`MAX_BATCH`] messages at once, read in one snapshot: the
    /// answer has one entry per id, in order.
    fn get_many(&self, ids: Vec<MessageId>) -> StoreFuture<'_, Vec<Option<MessageDetail>>>;

    /// The message rows alone (no parts, attempts or receipts) of up to [`MAX_BATCH`]
    /// messages, read in one snapshot: one entry per id, in order.
    fn messages(&self, ids: Vec<MessageId>) -> StoreFuture<'_, Vec<Option<Message>>>;

    /// A page of messages, newest first, filtered by state, destination and creation time.
    /// Paging with the returned cursor visits every message that existed when paging began
    /// and still matches, exactly once, whatever is inserted meanwhile.
    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page>;

    /// Messages per state (kept current by the writer; no scan).
    fn counts(&self) -> StoreFuture<'_, StateCounts>;

    /// Up to `limit` `submitted` messages whose receipt deadline has passed, oldest deadline
    /// first: the dispatcher finishes them as `unknown`.
    fn receipt_overdue(&self, limit: usize) -> StoreFuture<'_, Vec<MessageId>>;

    /// What to resume at start-up (see [`Recovery`]).
    fn recover(&self) -> StoreFuture<'_, Recovery>;

    /// The suppression of `number`, if any.
    fn get_suppression(&self, number: String) -> StoreFuture<'_, Option<Suppression>>;

    /// Whether `number` is suppressed. ([`Store::accept`] checks this itself, atomically.)
    fn is_suppressed(&self, number: String) -> StoreFuture<'_, bool>;

    /// Up to `limit` suppressions in number order, starting after `after`.
    fn list_suppressions(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<Suppression>>;

    /// Up to `limit` MO messages with ids greater than `after`, oldest first.
    fn list_mo(&self, after: Option<i64>, limit: usize) -> StoreFuture<'_, Vec<Mo>>;

    /// How full the write queue is.
    fn backlog(&self) -> Backlog;
}

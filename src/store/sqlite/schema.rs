//! The schema, versioned with SQLite's `user_version`, and its migrations.
//!
//! Rows are kept narrow: message ids are 16-byte blobs, states and enums small integers,
//! times integer milliseconds. A message's row number (`rid`) is the low 64 bits of its id
//! ([`MessageId::sequence`](crate::store::MessageId::sequence)), so every lookup by id goes
//! straight to the row (and checks the whole id there); child rows (parts, attempts,
//! receipts) carry the row number, so recording an outcome needs no lookup first.
//! `prev_state` holds the state before the last transition: an UPDATE sets it from the old
//! row, so one statement both checks a transition and records what it changed.
//!
//! Indexes exist only where a query needs one:
//!
//! | index | serves |
//! |---|---|
//! | `messages_id (id)` (unique) | paging (ids are time-ordered), prune by age |
//! | `messages_ready (priority, next_at) WHERE state IN (0,3)` | the ready queue (claims) |
//! | `messages_waiting (next_at) WHERE state = 2` | receipt deadlines |
//! | `messages_inflight (id) WHERE state = 1` | recovery, status queries for `submitting` |
//! | `messages_final (state, id) WHERE state >= 4` | status queries for final states |
//! | `messages_to (to_addr, id)` | queries by destination |
//! | `parts_key (carrier, id_key) WHERE id_key IS NOT NULL` | receipt correlation |
//! | `receipts_msg (rid) WHERE rid IS NOT NULL` | a message's receipts, prune |
//! | `receipts_unmatched (carrier, id_key) WHERE rid IS NULL` | receipt before response |
//! | `idempotency_age (created_at)` | pruning keys |
//!
//! The partial indexes stay small, and each transition touches at most two of them: an entry
//! lives only while its row is in that state. (A full `(state, id)` index would be rewritten on
//! every transition; the bench showed it costing about a tenth of the write cycle.) Status
//! queries for `accepted`, `retrying` and `submitted` walk the id index from the newest
//! message, which is quick because such messages are recent; with `since` the walk is bounded.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// `MIGRATIONS[n]` takes a file from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = "
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v ANY
) WITHOUT ROWID;

CREATE TABLE messages (
    rid         INTEGER PRIMARY KEY,
    id          BLOB    NOT NULL,
    state       INTEGER NOT NULL,
    prev_state  INTEGER NOT NULL DEFAULT 0,
    priority    INTEGER NOT NULL,
    next_at     INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    in_doubt    INTEGER NOT NULL DEFAULT 0,
    parts       INTEGER NOT NULL,
    encoding    INTEGER NOT NULL,
    to_addr     TEXT    NOT NULL,
    from_addr   TEXT    NOT NULL,
    carrier     TEXT,
    reason_code TEXT,
    reason_text TEXT,
    idem_key    TEXT,
    callback    TEXT,
    tags        TEXT,
    body        TEXT    NOT NULL
);
CREATE UNIQUE INDEX messages_id ON messages (id);
CREATE INDEX messages_ready    ON messages (priority, next_at) WHERE state IN (0, 3);
CREATE INDEX messages_inflight ON messages (id) WHERE state = 1;
CREATE INDEX messages_waiting  ON messages (next_at) WHERE state = 2;
CREATE INDEX messages_final    ON messages (state, id) WHERE state >= 4;
CREATE INDEX messages_to       ON messages (to_addr, id);

CREATE TABLE parts (
    rid          INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    state        INTEGER NOT NULL,
    carrier      TEXT    NOT NULL,
    bind         TEXT    NOT NULL,
    carrier_id   TEXT,
    id_key       TEXT,
    status       INTEGER NOT NULL,
    receipt_stat TEXT,
    receipt_err  TEXT,
    submitted_at INTEGER,
    receipt_at   INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (rid, idx)
) WITHOUT ROWID;
CREATE INDEX parts_key ON parts (carrier, id_key) WHERE id_key IS NOT NULL;

CREATE TABLE attempts (
    rid        INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    carrier    TEXT    NOT NULL,
    bind       TEXT    NOT NULL,
    parts      INTEGER NOT NULL,
    status     INTEGER,
    outcome    INTEGER NOT NULL,
    detail     TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    PRIMARY KEY (rid, n)
) WITHOUT ROWID;

CREATE TABLE receipts (
    id          INTEGER PRIMARY KEY,
    rid         INTEGER,
    part        INTEGER,
    carrier     TEXT    NOT NULL,
    carrier_id  TEXT    NOT NULL,
    id_key      TEXT    NOT NULL,
    stat        TEXT,
    err         TEXT,
    received_at INTEGER NOT NULL,
    raw         TEXT    NOT NULL
);
CREATE INDEX receipts_msg       ON receipts (rid) WHERE rid IS NOT NULL;
CREATE INDEX receipts_unmatched ON receipts (carrier, id_key) WHERE rid IS NULL;

CREATE TABLE idempotency (
    key        TEXT    PRIMARY KEY,
    msg_id     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_age ON idempotency (created_at);

CREATE TABLE suppressions (
    number     TEXT    PRIMARY KEY,
    reason     TEXT    NOT NULL,
    source     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE mo (
    id          INTEGER PRIMARY KEY,
    carrier     TEXT    NOT NULL,
    from_addr   TEXT    NOT NULL,
    to_addr     TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);
";

/// Brings the file to [`SCHEMA_VERSION`], one migration per transaction (the version is read
/// inside it, so two processes opening one file cannot both migrate), or refuses a file from a
/// newer build.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let sql = usize::try_from(found)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
            .ok_or_else(|| StoreError::Corrupt(format!("schema version {found}")))?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own number.
        tx.execute_batch(&format!("PRAGMA user_version = {}", found + 1))?;
        tx.commit()?;
    }
}

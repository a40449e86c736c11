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
//! | `messages_ended (state, id) WHERE state >= 5` | status queries for final states but `delivered` |
//! | `dest (bucket, to_addr, rid)` (a table, optional, see below) | queries by destination |
//! | `parts_key (carrier, id_key) WHERE indexed = 1 AND id_key IS NOT NULL` | receipt correlation for parts no longer held in memory |
//! | `receipts_msg (rid) WHERE rid IS NOT NULL` | a message's receipts, prune |
//! | `receipts_unmatched (carrier, id_key) WHERE rid IS NULL` | receipt before response |
//! | `idempotency_age (created_at)` | pruning keys |
//!
//! The partial indexes stay small, and each transition touches at most two of them: an entry
//! lives only while its row is in that state. (A full `(state, id)` index would be rewritten on
//! every transition; the bench showed it costing about a tenth of the write cycle.) The
//! common path of a message touches only `messages_ready` and `messages_waiting`: the
//! messages in `submitting` are held in memory by the writer (see
//! [`inflight`](super::inflight)), and `delivered` has no index. Status queries for
//! `accepted`, `submitting`, `retrying` and `submitted` walk the id index from the newest
//! message, which is quick because such messages are recent; so do those for `delivered`,
//! which nearly every finished message is. With `since` the walk is bounded.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// `MIGRATIONS[n]` takes a file from version `n` to `n + 1`; a new file runs them all.
const MIGRATIONS: &[&str] = &[V1, V1_TO_V2, V2_TO_V3, V3_TO_V4, V4_TO_V5];

/// The first schema, as the first increment shipped it.
const V1: &str = "
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v ANY
) WITHOUT ROWID;

CREATE TABLE messages (
    rid         INTEGER PRIMARY KEY,
    id          BLOB    NOT NULL,
    state       INTEGER NOT NULL,
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
CREATE INDEX messages_ready   ON messages (priority, next_at) WHERE state IN (0, 3);
CREATE INDEX messages_waiting ON messages (next_at) WHERE state = 2;
CREATE INDEX messages_state   ON messages (state, id);
CREATE INDEX messages_to      ON messages (to_addr, id);

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
    msg         INTEGER,
    part        INTEGER,
    carrier     TEXT    NOT NULL,
    carrier_id  TEXT    NOT NULL,
    id_key      TEXT    NOT NULL,
    stat        TEXT,
    err         TEXT,
    received_at INTEGER NOT NULL,
    raw         TEXT    NOT NULL
);
CREATE INDEX receipts_msg       ON receipts (msg) WHERE msg IS NOT NULL;
CREATE INDEX receipts_unmatched ON receipts (carrier, id_key) WHERE msg IS NULL;

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

/// Version 2: the row number is the low 64 bits of the message id, and transitions record the
/// state they left. A full `(state, id)` index becomes partial indexes for in-flight and
/// final messages; receipts name their message's row `rid` like the other children.
const V1_TO_V2: &str = "
ALTER TABLE messages ADD COLUMN prev_state INTEGER NOT NULL DEFAULT 0;
DROP INDEX messages_state;
CREATE INDEX messages_inflight ON messages (id) WHERE state = 1;
CREATE INDEX messages_final    ON messages (state, id) WHERE state >= 4;
DROP INDEX receipts_msg;
DROP INDEX receipts_unmatched;
ALTER TABLE receipts RENAME COLUMN msg TO rid;
CREATE INDEX receipts_msg       ON receipts (rid) WHERE rid IS NOT NULL;
CREATE INDEX receipts_unmatched ON receipts (carrier, id_key) WHERE rid IS NULL;
";

/// Version 3: receipts are matched in memory while their parts are recent (see
/// [`recent`](super::recent)), so only the parts that leave memory without a final receipt
/// are kept in the correlation index (`indexed = 1`). The parts already stored keep theirs:
/// the column reads 1 on every row written before it existed; new rows set it to 0.
const V2_TO_V3: &str = "
ALTER TABLE parts ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;
DROP INDEX parts_key;
CREATE INDEX parts_key ON parts (carrier, id_key) WHERE indexed = 1 AND id_key IS NOT NULL;
";

/// Version 4: messages are found by destination through `dest` (see
/// [`index_destinations`]) instead of an index on `messages`.
const V3_TO_V4: &str = "
DROP INDEX IF EXISTS messages_to;
";

/// Version 5: the messages in `submitting` are held in memory by the writer, found after a
/// crash from the floor `submitting_floor` in `meta` (see [`inflight`](super::inflight)),
/// not through an index; and the index of final messages leaves out `delivered`, the state
/// nearly every message ends in, which status queries find by walking the id index.
const V4_TO_V5: &str = "
INSERT OR REPLACE INTO meta (k, v) VALUES ('submitting_floor', coalesce(
    (SELECT min(rid) FROM messages INDEXED BY messages_inflight WHERE state = 1),
    (SELECT coalesce(max(rid), 0) + 1 FROM messages)));
DROP INDEX messages_inflight;
DROP INDEX messages_final;
CREATE INDEX messages_ended ON messages (state, id) WHERE state >= 5;
";

/// log2 of the messages per destination bucket: message row `rid` is in bucket
/// `rid >> DEST_BUCKET_SHIFT`.
pub(super) const DEST_BUCKET_SHIFT: u32 = 14;
/// Messages per destination bucket.
pub(super) const DEST_BUCKET: i64 = 1 << DEST_BUCKET_SHIFT;

/// Creates or drops the destination index as `[store] index_destinations` says, and brings it
/// up to the last complete bucket.
///
/// Destinations arrive in no order, so an index keyed by destination takes each message's
/// entry on a random page, which every commit writes whole to the WAL. `dest` is keyed by
/// (bucket, destination) instead, a bucket being [`DEST_BUCKET`] consecutive row numbers, and
/// the writer adds a bucket's entries only once the bucket is complete, sorted: they append
/// to the end of the table. A query by destination seeks once per bucket, and reads the
/// messages after the last complete bucket from the table itself.
pub(super) fn index_destinations(conn: &Connection, on: bool) -> Result<(), StoreError> {
    if !on {
        conn.execute_batch("DROP TABLE IF EXISTS dest;")?;
        return Ok(());
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS dest (
             bucket  INTEGER NOT NULL,
             to_addr TEXT    NOT NULL,
             rid     INTEGER NOT NULL,
             PRIMARY KEY (bucket, to_addr, rid)
         ) WITHOUT ROWID;",
    )?;
    let next_rid: i64 =
        conn.query_row("SELECT coalesce(max(rid), 0) + 1 FROM messages", [], |r| {
            r.get(0)
        })?;
    let mut upto = dest_upto(conn)?;
    while upto + DEST_BUCKET <= next_rid {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match add_dest_bucket(conn, upto) {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        upto += DEST_BUCKET;
    }
    Ok(())
}

/// The first row number whose bucket is not in `dest` yet.
pub(super) fn dest_upto(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT coalesce(max(bucket) + 1, 0) << {DEST_BUCKET_SHIFT} FROM dest"),
        [],
        |r| r.get(0),
    )?)
}

/// Adds the bucket that starts at row `from` to `dest`, in key order.
pub(super) fn add_dest_bucket(conn: &Connection, from: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO dest (bucket, to_addr, rid) \
         SELECT ?1, to_addr, rid FROM messages WHERE rid >= ?2 AND rid < ?3 \
         ORDER BY to_addr, rid",
    )?
    .execute(rusqlite::params![
        from >> DEST_BUCKET_SHIFT,
        from,
        from + DEST_BUCKET
    ])?;
    Ok(())
}

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
        if found == 1 {
            // Version 1 ids do not carry their row number, so its messages cannot be found by
            // id under version 2. Only an empty version 1 file is upgraded.
            let messages: i64 = tx.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
            if messages > 0 {
                return Err(StoreError::CannotMigrate { found });
            }
        }
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own number.
        tx.execute_batch(&format!("PRAGMA user_version = {}", found + 1))?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn version_1_file() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("v1.db")).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        (dir, conn)
    }

    #[test]
    fn a_new_file_gets_the_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("new.db")).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert!(columns(&conn, "messages").contains(&"prev_state".to_owned()));
        assert!(columns(&conn, "receipts").contains(&"rid".to_owned()));
        // Opening again changes nothing.
        migrate(&mut conn).unwrap();
    }

    #[test]
    fn version_5_sets_the_submitting_floor_from_the_file() {
        for (states, floor) in [(&[4, 1, 2, 1][..], 2), (&[4, 2][..], 3), (&[][..], 1)] {
            let dir = tempfile::tempdir().unwrap();
            let mut conn = Connection::open(dir.path().join("v4.db")).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch("PRAGMA user_version = 4").unwrap();
            for (rid, state) in states.iter().enumerate() {
                conn.execute(
                    "INSERT INTO messages (rid, id, state, priority, created_at, updated_at, \
                     expires_at, parts, encoding, to_addr, from_addr, body) \
                     VALUES (?1, ?2, ?3, 1, 0, 0, 0, 1, 0, '+1', 'acme', 'hi')",
                    rusqlite::params![rid as i64 + 1, vec![rid as u8; 16], state],
                )
                .unwrap();
            }
            migrate(&mut conn).unwrap();
            assert_eq!(
                super::super::inflight::floor(&conn).unwrap(),
                floor,
                "{states:?}"
            );
        }
    }

    #[test]
    fn an_empty_version_1_file_is_upgraded() {
        let (_dir, mut conn) = version_1_file();
        migrate(&mut conn).unwrap();
        assert!(columns(&conn, "messages").contains(&"prev_state".to_owned()));
        assert!(columns(&conn, "receipts").contains(&"rid".to_owned()));
        assert!(!columns(&conn, "receipts").contains(&"msg".to_owned()));
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(indexes.contains(&"messages_ended".to_owned()));
        for gone in ["messages_state", "messages_inflight", "messages_final"] {
            assert!(!indexes.contains(&gone.to_owned()), "{gone}");
        }
    }

    #[test]
    fn parts_stored_under_version_2_stay_in_the_correlation_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("v2.db")).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V1_TO_V2).unwrap();
        conn.execute_batch("PRAGMA user_version = 2").unwrap();
        conn.execute(
            "INSERT INTO parts (rid, idx, state, carrier, bind, carrier_id, id_key, status, \
             updated_at) VALUES (1, 0, 0, 'acme', 'acme-1', '1A', '1a', 0, 0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let found: i64 = conn
            .query_row(
                "SELECT rid FROM parts INDEXED BY parts_key \
                 WHERE carrier = 'acme' AND id_key = '1a' AND indexed = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1);
    }

    #[test]
    fn a_version_1_file_with_messages_is_refused_untouched() {
        let (_dir, mut conn) = version_1_file();
        conn.execute(
            "INSERT INTO messages (id, state, priority, created_at, updated_at, expires_at, \
             parts, encoding, to_addr, from_addr, body) \
             VALUES (x'00', 0, 0, 0, 0, 0, 1, 0, '+1', 'x', 'hi')",
            [],
        )
        .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(err, StoreError::CannotMigrate { found: 1 }),
            "{err}"
        );
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
}

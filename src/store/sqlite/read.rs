//! Reads: a small pool of read-only connections used on tokio's blocking threads. WAL lets
//! them read a consistent snapshot while the writer commits. A read that starts after a
//! write resolved sees that write.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::Semaphore;

use super::rows::{
    self, ATTEMPT_COLUMNS, MESSAGE_COLUMNS, MO_COLUMNS, PART_COLUMNS, SUPPRESSION_COLUMNS,
};
use super::{inflight, schema};
use crate::store::{
    Cursor, ListQuery, MAX_PAGE, Message, MessageDetail, MessageId, MessageState, Mo, Page, Part,
    Receipt, Recovery, StoreError, Suppression, Timestamp,
};

/// Read-only connections, opened on demand up to a limit and kept for reuse.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub(super) fn new(path: PathBuf, max: usize) -> Readers {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Runs `f` on a connection on a blocking thread. Waits while every connection is busy.
    pub(super) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let me = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = me.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => me.open()?,
            };
            let result = f(&conn);
            me.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            result
        })
        .await;
        // A panic in a read is a bug of ours; report it rather than propagate it.
        joined.map_err(|e| StoreError::Corrupt(format!("read task failed: {e}")))?
    }
}

/// Runs `f` in one read transaction, so multi-statement reads see one snapshot.
fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let out = f(&tx)?;
    tx.finish()?;
    Ok(out)
}

fn check_limit(limit: usize) -> Result<usize, StoreError> {
    if limit > MAX_PAGE {
        return Err(StoreError::TooMany {
            what: "page",
            len: limit,
            max: MAX_PAGE,
        });
    }
    Ok(limit)
}

pub(super) fn get(conn: &Connection, id: MessageId) -> Result<Option<MessageDetail>, StoreError> {
    snapshot(conn, |conn| get_one(conn, id))
}

pub(super) fn get_many(
    conn: &Connection,
    ids: &[MessageId],
) -> Result<Vec<Option<MessageDetail>>, StoreError> {
    snapshot(conn, |conn| {
        ids.iter().map(|&id| get_one(conn, id)).collect()
    })
}

pub(super) fn messages(
    conn: &Connection,
    ids: &[MessageId],
) -> Result<Vec<Option<Message>>, StoreError> {
    snapshot(conn, |conn| {
        let mut stmt = conn.prepare_cached(&MESSAGE_BY_ID)?;
        ids.iter()
            .map(|&id| message(&mut stmt, id).map(|found| found.map(|(_, m)| m)))
            .collect()
    })
}

fn get_one(conn: &Connection, id: MessageId) -> Result<Option<MessageDetail>, StoreError> {
    let found = message(&mut conn.prepare_cached(&MESSAGE_BY_ID)?, id)?;
    match found {
        Some((rid, message)) => detail(conn, rid, message).map(Some),
        None => Ok(None),
    }
}

/// A message by id: the row number is the id's sequence, and the whole id is checked there.
static MESSAGE_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE rid = ?1 AND id = ?2"));

/// The message with this id and its row number.
fn message(
    stmt: &mut rusqlite::CachedStatement<'_>,
    id: MessageId,
) -> Result<Option<(i64, Message)>, StoreError> {
    let rid = i64::try_from(id.sequence()).unwrap_or(-1);
    let found = stmt
        .query_row(params![rid, &id.to_bytes()[..]], |row| {
            Ok(rows::message(row, 0))
        })
        .optional()?;
    found.map(|m| m.map(|m| (rid, m))).transpose()
}

fn detail(conn: &Connection, rid: i64, message: Message) -> Result<MessageDetail, StoreError> {
    let mut parts = Vec::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PART_COLUMNS} FROM parts WHERE rid = ?1 ORDER BY idx"
    ))?;
    let mut q = stmt.query([rid])?;
    while let Some(row) = q.next()? {
        parts.push(rows::part(row)?);
    }

    let mut attempts = Vec::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE rid = ?1 ORDER BY n"
    ))?;
    let mut q = stmt.query([rid])?;
    while let Some(row) = q.next()? {
        attempts.push(rows::attempt(row)?);
    }

    let mut receipts = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id, carrier, carrier_id, id_key, stat, err, raw, received_at, part \
         FROM receipts WHERE rid = ?1 ORDER BY id",
    )?;
    let mut q = stmt.query([rid])?;
    while let Some(row) = q.next()? {
        receipts.push(Receipt {
            id: row.get(0)?,
            carrier: row.get(1)?,
            carrier_message_id: row.get(2)?,
            key: row.get(3)?,
            stat: rows::receipt_stat(row.get(4)?),
            err: row.get(5)?,
            raw: row.get(6)?,
            received_at: Timestamp::from_millis(row.get(7)?),
            part: row
                .get::<_, Option<i64>>(8)?
                .map(|p| rows::u16_of(p, "receipt part"))
                .transpose()?,
        });
    }
    fold_receipts(&mut parts, &receipts);
    Ok(MessageDetail {
        message,
        parts,
        attempts,
        receipts,
    })
}

/// A page of messages; `by_destination` says whether the destination index (`dest`) exists.
/// Brings each part up to the receipts linked to it for its current submission (same carrier
/// and id). The writer does not write a receipt onto the part of a one-part message that the
/// receipt finished; applying again a receipt the part already shows changes nothing.
fn fold_receipts(parts: &mut [Part], receipts: &[Receipt]) {
    for part in parts {
        let Some(key) = part.message_id_key.as_deref() else {
            continue;
        };
        for r in receipts {
            if r.part != Some(part.index) || r.carrier != part.carrier || r.key != key {
                continue;
            }
            let Some(stat) = &r.stat else { continue };
            if let Some(state) = part.state.with_receipt(stat) {
                part.state = state;
                part.receipt_stat = Some(stat.clone());
                part.receipt_err = r.err.clone();
                part.receipt_at = Some(r.received_at);
                part.updated_at = part.updated_at.max(r.received_at);
            }
        }
    }
}

pub(super) fn list(
    conn: &Connection,
    q: &ListQuery,
    by_destination: bool,
) -> Result<Page, StoreError> {
    let limit = check_limit(q.limit)?.max(1);
    // Newest first: ids are time-ordered, so "since" is a lower id bound and the cursor an
    // upper one. Both bounds go into the SQL; a missing one is the extreme value.
    let upper: Vec<u8> = match &q.cursor {
        Some(c) => c.0.to_bytes().to_vec(),
        None => vec![0xFF; 17],
    };
    let lower: Vec<u8> = match q.since {
        Some(t) => MessageId::lower_bound(t).to_bytes().to_vec(),
        None => Vec::new(),
    };
    if by_destination && let Some(to) = &q.to {
        return by_destination_page(conn, q, to, &upper, &lower, limit);
    }
    use MessageState as S;
    let (filter, index) = match (q.state, &q.to) {
        (_, Some(_)) => ("to_addr = ?4 AND (?3 IS NULL OR state = ?3)", "messages_id"),
        (Some(s), None) if s.is_final() && s != S::Delivered => {
            ("state >= 5 AND state = ?3", "messages_ended")
        }
        (Some(_), None) => ("state = ?3", "messages_id"),
        (None, None) => ("?3 IS NULL", "messages_id"),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages INDEXED BY {index} \
         WHERE {filter} AND id < ?1 AND id >= ?2 ORDER BY id DESC LIMIT +?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows_ = stmt.query(params![
        upper,
        lower,
        q.state.map(MessageState::code),
        q.to,
        (limit + 1) as i64
    ])?;
    page(&mut rows_, limit)
}

/// The page of up to `limit` messages `rows` holds (a row beyond it says there is more).
fn page(rows_: &mut rusqlite::Rows<'_>, limit: usize) -> Result<Page, StoreError> {
    let mut messages = Vec::with_capacity(limit + 1);
    while let Some(row) = rows_.next()? {
        messages.push(rows::message(row, 0)?);
    }
    let next = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|m| Cursor(m.id))
    } else {
        None
    };
    Ok(Page { messages, next })
}

/// A page of messages to one destination through `dest`: one seek per bucket from the
/// newest complete one back to the bucket of the first message since `since` (or the first
/// bucket), plus the messages after the last complete bucket, read from the table. The rows
/// are then fetched by row number (`NOT INDEXED`: never a walk of the id index) and ordered.
fn by_destination_page(
    conn: &Connection,
    q: &ListQuery,
    to: &str,
    upper: &[u8],
    lower: &[u8],
    limit: usize,
) -> Result<Page, StoreError> {
    let tail = schema::dest_upto(conn)?;
    let newest = (tail >> schema::DEST_BUCKET_SHIFT) - 1;
    let oldest = match q.since {
        Some(_) => conn
            .prepare_cached(
                "SELECT rid FROM messages INDEXED BY messages_id WHERE id >= ?1 \
                 ORDER BY id LIMIT 1",
            )?
            .query_row([lower], |r| r.get::<_, i64>(0))
            .optional()?
            .map_or(newest, |rid| rid >> schema::DEST_BUCKET_SHIFT),
        None => 0,
    };
    let sql = format!(
        "WITH RECURSIVE b(n) AS (SELECT ?6 UNION ALL SELECT n - 1 FROM b WHERE n > ?7) \
         SELECT {MESSAGE_COLUMNS} FROM messages NOT INDEXED WHERE rid IN ( \
             SELECT d.rid FROM b JOIN dest AS d ON d.bucket = b.n AND d.to_addr = ?4 \
             UNION ALL SELECT rid FROM messages NOT INDEXED WHERE rid >= ?8 AND to_addr = ?4) \
         AND id < ?1 AND id >= ?2 AND (?3 IS NULL OR state = ?3) \
         ORDER BY id DESC LIMIT +?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows_ = stmt.query(params![
        upper,
        lower,
        q.state.map(MessageState::code),
        to,
        (limit + 1) as i64,
        newest,
        oldest.max(0),
        tail,
    ])?;
    page(&mut rows_, limit)
}

pub(super) fn receipt_overdue(
    conn: &Connection,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<MessageId>, StoreError> {
    let limit = check_limit(limit)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM messages INDEXED BY messages_waiting \
         WHERE state = 2 AND next_at <= ?1 ORDER BY next_at LIMIT ?2",
    )?;
    let mut q = stmt.query(params![now.as_millis(), limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = q.next()? {
        let id: Vec<u8> = row.get(0)?;
        out.push(rows::message_id(&id)?);
    }
    Ok(out)
}

pub(super) fn recover(conn: &Connection) -> Result<Recovery, StoreError> {
    snapshot(conn, |conn| {
        let mut in_doubt = Vec::new();
        {
            // Read by row number from the floor (see `inflight`).
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT rid, {MESSAGE_COLUMNS} FROM messages NOT INDEXED \
                 WHERE rid >= ?1 AND state = 1 ORDER BY id"
            ))?;
            let mut q = stmt.query([inflight::floor(conn)?])?;
            let mut found = Vec::new();
            while let Some(row) = q.next()? {
                found.push((row.get::<_, i64>(0)?, rows::message(row, 1)?));
            }
            for (rid, message) in found {
                in_doubt.push(detail(conn, rid, message)?);
            }
        }
        let mut ready = Vec::new();
        {
            let mut stmt = conn.prepare_cached(
                "SELECT id, next_at FROM messages INDEXED BY messages_ready \
                 WHERE state IN (0, 3) ORDER BY priority DESC, next_at, rid",
            )?;
            let mut q = stmt.query([])?;
            while let Some(row) = q.next()? {
                let id: Vec<u8> = row.get(0)?;
                let at: Option<i64> = row.get(1)?;
                ready.push((
                    rows::message_id(&id)?,
                    Timestamp::from_millis(at.unwrap_or(0)),
                ));
            }
        }
        let awaiting: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM messages INDEXED BY messages_waiting WHERE state = 2",
            )?
            .query_row([], |row| row.get(0))?;
        Ok(Recovery {
            in_doubt,
            ready,
            awaiting_receipts: u64::try_from(awaiting).unwrap_or(0),
        })
    })
}

pub(super) fn get_suppression(
    conn: &Connection,
    number: &str,
) -> Result<Option<Suppression>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE number = ?1"
    ))?
    .query_row([number], |row| Ok(rows::suppression(row)))
    .optional()?
    .transpose()
}

pub(super) fn list_suppressions(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Suppression>, StoreError> {
    let limit = check_limit(limit)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE number > ?1 \
         ORDER BY number LIMIT ?2"
    ))?;
    let mut q = stmt.query(params![after.unwrap_or(""), limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = q.next()? {
        out.push(rows::suppression(row)?);
    }
    Ok(out)
}

pub(super) fn list_mo(
    conn: &Connection,
    after: Option<i64>,
    limit: usize,
) -> Result<Vec<Mo>, StoreError> {
    let limit = check_limit(limit)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MO_COLUMNS} FROM mo WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let mut q = stmt.query(params![after.unwrap_or(i64::MIN), limit as i64])?;
    let mut out = Vec::new();
    while let Some(row) = q.next()? {
        out.push(rows::mo(row)?);
    }
    Ok(out)
}

/// Counts per state, for the writer's starting point (one scan of the table at open).
pub(super) fn count_states(conn: &Connection) -> Result<[i64; 10], StoreError> {
    let mut counts = [0i64; 10];
    let mut stmt = conn.prepare("SELECT state, count(*) FROM messages GROUP BY state")?;
    let mut q = stmt.query([])?;
    while let Some(row) = q.next()? {
        let state = rows::state(row.get(0)?)?;
        counts[usize::from(state.code())] = row.get(1)?;
    }
    Ok(counts)
}

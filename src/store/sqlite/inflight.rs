//! The messages in `submitting`, held in memory by the writer.
//!
//! A message is `submitting` from its claim until its attempt is recorded, which takes
//! milliseconds. An index over them would take an entry at every claim and give it up at
//! every record: two B-tree writes per message, for a set of a few thousand rows at most.
//! The writer holds the set in memory instead (each message's row, whole id, and the attempts
//! it had made when claimed), and the file holds only a floor: no message below row
//! `submitting_floor` (in `meta`) is `submitting`. The floor is written in the commit that
//! changes the set's lowest row, so after a crash every `submitting` message is found by
//! reading the table from the floor on, by row number. That is how the set is built when the
//! store opens, and rebuilt after a rolled-back transaction (which may have changed it).
//!
//! Knowing the claim also spares two reads when the attempt is recorded: the attempt's number
//! is the claim's count plus one, and a message in the set exists and is not final. And the
//! claim carries what matching a one-part message's receipt needs of it (see
//! [`recent`](super::recent)).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;

use super::rows;

/// The `meta` key of the floor.
const FLOOR_KEY: &str = "submitting_floor";

/// The messages in `submitting` from row ?1 on.
pub(super) const FROM_FLOOR: &str = "SELECT rid, id, attempts, created_at, parts, callback IS NOT NULL \
     FROM messages NOT INDEXED WHERE rid >= ?1 AND state = 1";

/// A claimed message, as the claim found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    /// The whole id (the row is the map's key).
    pub(super) id: [u8; 16],
    /// The attempts it had made before this one.
    pub(super) attempts: u32,
    /// When it was accepted, in milliseconds.
    pub(super) accepted_at: i64,
    /// Its number of parts, as accepted.
    pub(super) parts: u16,
    pub(super) has_callback_url: bool,
}

/// The floor as the file has it: every `submitting` message is at or above it.
pub(super) fn floor(conn: &Connection) -> Result<i64, StoreError> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT v FROM meta WHERE k = ?1")?
        .query_row([FLOOR_KEY], |row| row.get(0))
        .optional()?;
    Ok(found.unwrap_or(0))
}

/// The set (see the module docs).
pub(super) struct InFlight {
    claims: BTreeMap<i64, Claim>,
    /// The floor the file holds as of the last commit.
    written: i64,
    /// A transaction that may have changed the set rolled back: rebuild before use.
    stale: bool,
}

impl InFlight {
    /// Reads the set from the file.
    pub(super) fn load(conn: &Connection) -> Result<InFlight, StoreError> {
        let mut set = InFlight {
            claims: BTreeMap::new(),
            written: 0,
            stale: true,
        };
        set.rebuild(conn)?;
        Ok(set)
    }

    pub(super) fn rebuild(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.claims.clear();
        self.written = floor(conn)?;
        let mut stmt = conn.prepare_cached(FROM_FLOOR)?;
        let mut q = stmt.query([self.written])?;
        while let Some(row) = q.next()? {
            let id: Vec<u8> = row.get(1)?;
            let id = rows::message_id(&id)?.to_bytes();
            let claim = Claim {
                id,
                attempts: rows::u32_of(row.get(2)?, "attempts")?,
                accepted_at: row.get(3)?,
                parts: rows::u16_of(row.get(4)?, "parts")?,
                has_callback_url: row.get(5)?,
            };
            self.claims.insert(row.get(0)?, claim);
        }
        self.stale = false;
        Ok(())
    }

    pub(super) fn is_stale(&self) -> bool {
        self.stale
    }

    /// The transaction rolled back: the set may hold what it undid, or miss what it restored.
    pub(super) fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Message row `rid` was claimed.
    pub(super) fn claimed(&mut self, rid: i64, claim: Claim) {
        self.claims.insert(rid, claim);
    }

    /// Message row `rid` left `submitting`: its claim, if it was held.
    pub(super) fn left(&mut self, rid: i64) -> Option<Claim> {
        self.claims.remove(&rid)
    }

    /// The claim of the message at row `rid` with this id, if it is `submitting`.
    pub(super) fn get(&self, rid: i64, id: &[u8; 16]) -> Option<&Claim> {
        self.claims.get(&rid).filter(|c| &c.id == id)
    }

    /// Writes the floor into the open transaction if the set's lowest row moved; `next_rid`
    /// is the floor of an empty set. Returns the floor to remember once the commit succeeds
    /// (see [`InFlight::committed`]).
    pub(super) fn write_floor(&self, conn: &Connection, next_rid: i64) -> Result<i64, StoreError> {
        let floor = self.claims.keys().next().copied().unwrap_or(next_rid);
        if floor != self.written {
            conn.prepare_cached("INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)")?
                .execute(params![FLOOR_KEY, floor])?;
        }
        Ok(floor)
    }

    /// The transaction that wrote `floor` committed.
    pub(super) fn committed(&mut self, floor: i64) {
        self.written = floor;
    }

    #[cfg(test)]
    fn rows(&self) -> Vec<i64> {
        self.claims.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("f.db")).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        (dir, conn)
    }

    fn id_at(rid: i64) -> crate::store::MessageId {
        crate::store::MessageId::from_u128(1 << 64 | rid as u128)
    }

    fn message(conn: &Connection, rid: i64, state: i64, attempts: i64) {
        let id = id_at(rid).to_bytes();
        conn.execute(
            "INSERT INTO messages (rid, id, state, priority, created_at, updated_at, \
             expires_at, attempts, parts, encoding, to_addr, from_addr, body) \
             VALUES (?1, ?2, ?3, 1, 0, 0, 0, ?4, 1, 0, '+15550001', 'acme', 'hi')",
            params![rid, &id[..], state, attempts],
        )
        .unwrap();
    }

    #[test]
    fn the_set_is_read_from_the_floor_on() {
        let (_dir, conn) = file();
        // Row 3 is submitting but below the floor: the floor says it cannot be, so a file
        // that says otherwise is not read below it.
        message(&conn, 3, 1, 0);
        message(&conn, 5, 0, 0);
        message(&conn, 6, 1, 2);
        message(&conn, 9, 1, 0);
        message(&conn, 10, 4, 1);
        conn.execute_batch("INSERT OR REPLACE INTO meta (k, v) VALUES ('submitting_floor', 4)")
            .unwrap();
        let set = InFlight::load(&conn).unwrap();
        assert_eq!(set.rows(), vec![6, 9]);
        let id6 = id_at(6).to_bytes();
        assert!(set.get(6, &id6).is_some());
        let claim = set.get(6, &id6).copied().unwrap();
        assert_eq!((claim.attempts, claim.parts, claim.accepted_at), (2, 1, 0));
        assert!(!claim.has_callback_url);
        assert!(set.get(9, &id6).is_none(), "the whole id is checked");
        assert!(set.get(5, &id6).is_none());
    }

    #[test]
    fn the_floor_follows_the_lowest_claim_and_is_kept_only_on_commit() {
        let (_dir, conn) = file();
        let mut set = InFlight::load(&conn).unwrap();
        let claim = |rid: i64| Claim {
            id: id_at(rid).to_bytes(),
            attempts: 0,
            accepted_at: 0,
            parts: 1,
            has_callback_url: false,
        };
        set.claimed(12, claim(12));
        set.claimed(7, claim(7));
        let f = set.write_floor(&conn, 20).unwrap();
        assert_eq!((f, floor(&conn).unwrap()), (7, 7));
        set.committed(f);
        assert_eq!(set.left(7), Some(claim(7)));
        assert_eq!(set.left(7), None);
        let f = set.write_floor(&conn, 20).unwrap();
        assert_eq!((f, floor(&conn).unwrap()), (12, 12));
        set.committed(f);
        set.left(12);
        // An empty set: nothing below the next row can be submitting.
        assert_eq!(set.write_floor(&conn, 20).unwrap(), 20);
        assert_eq!(floor(&conn).unwrap(), 20);
    }
}

//! The store's errors, each saying whose fault it is and what the caller should do.

use std::sync::Arc;

/// Why a store operation failed. Cheap to clone: one failed commit answers every caller in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Load, not a fault: the write queue holds as many rows as it may, or (for an accept) as
    /// many messages wait to be sent as the store allows; `capacity` is that bound. The write
    /// was refused without being queued. The API answers 503 with Retry-After; the dispatcher
    /// backs off. Only [`Store::accept`](super::Store::accept) and
    /// [`Store::writable`](super::Store::writable) fail this way; other writes wait for room.
    #[error("the store is backlogged (at its bound of {capacity}); try again shortly")]
    Backlogged {
        /// The queue's capacity in rows.
        capacity: usize,
    },

    /// The caller's fault: more items in one call than [`MAX_BATCH`](super::MAX_BATCH), or a
    /// page larger than [`MAX_PAGE`](super::MAX_PAGE).
    #[error("{what}: {len} items in one call, at most {max} allowed")]
    TooMany {
        /// What was too large.
        what: &'static str,
        /// How many came.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The caller's fault: a field the store cannot keep as given (the API validates first,
    /// so this is a bug upstream).
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },

    /// The disk is full (SQLITE_FULL): nothing of this commit was kept. The operator's
    /// problem; answer 503.
    #[error("the store's disk is full")]
    DiskFull,

    /// The store was closed, or its writer thread stopped after an earlier failure.
    #[error("the store is closed")]
    Closed,

    /// The database reported an error: I/O, locking, or a bug in our SQL. Nothing of the
    /// failed commit was kept.
    #[error("database error: {0}")]
    Database(#[source] Arc<rusqlite::Error>),

    /// The file holds a value this build cannot read (a state code it does not know, an id of
    /// the wrong size): damaged, or written by a newer version.
    #[error("corrupt store: {0}")]
    Corrupt(String),

    /// The file's schema version is newer than this build supports: run the newer build, or
    /// restore a backup.
    #[error("the store's schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// The file's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// The file was written by an early development build (schema `found`) whose messages
    /// this build cannot carry over; nothing was changed. Move the file aside.
    #[error(
        "the store's schema version {found} holds messages this build cannot carry over; \
         move the file aside"
    )]
    CannotMigrate {
        /// The file's `user_version`.
        found: i64,
    },

    /// Creating the data directory or a thread failed.
    #[error("store I/O: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

impl StoreError {
    /// True when the same request may succeed later without change (backlog, full disk): the
    /// API's 503 rather than 500 or 4xx.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Backlogged { .. } | StoreError::DiskFull)
    }

    /// True when the caller sent something the store refuses (the API's 4xx).
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            StoreError::TooMany { .. } | StoreError::Invalid { .. }
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::DiskFull
        } else {
            StoreError::Database(Arc::new(e))
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Io(Arc::new(e))
    }
}

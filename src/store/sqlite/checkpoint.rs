//! Checkpoints off the writer's thread.
//!
//! A WAL checkpoint copies committed pages from the `-wal` file back into the database. Left
//! to SQLite's default, the writer does it itself after a commit, and every caller waits
//! behind it. Here a second thread with its own connection runs passive checkpoints every
//! [`INTERVAL`], concurrently with the writer's commits, so the writer keeps writing.
//!
//! The writer keeps its own automatic checkpoint as a bound ([`WRITER_AUTOCHECKPOINT`]
//! pages): under sustained load a background pass may never find the WAL fully copied at a
//! quiet moment, and SQLite only rewinds the WAL file after a complete checkpoint. When the
//! WAL reaches the bound the writer completes the checkpoint, which is then short because the
//! background passes already copied most of it.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// How often the background thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own `wal_autocheckpoint`, in pages: the most the WAL grows before the writer
/// checkpoints by itself.
pub(super) const WRITER_AUTOCHECKPOINT: u32 = 16_384;

/// The checkpoint thread's handle. Stopping it (or dropping this) ends the thread after its
/// current pass.
pub(super) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on the database at `path` (which must exist, in WAL mode).
    /// `synchronous` is the store's setting; at NORMAL and FULL alike a checkpoint syncs the
    /// WAL before copying and the database after, so the WAL is never rewound over pages the
    /// database does not hold yet.
    pub(super) fn start(path: &Path, synchronous: &str) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("smppd-store-ckpt".into())
            .spawn(move || run(conn, &flag))?;
        Ok(Checkpointer {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(mut self) {
        self.signal();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }

    fn signal(&self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Not joined here: a drop may happen on an async thread.
        self.signal();
    }
}

fn run(conn: Connection, stop: &(Mutex<bool>, Condvar)) {
    let (flag, wake) = stop;
    loop {
        {
            let stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
            let (stopped, _) = wake
                .wait_timeout_while(stopped, INTERVAL, |s| !*s)
                .unwrap_or_else(|e| e.into_inner());
            if *stopped {
                return;
            }
        }
        // PASSIVE never waits for the writer or readers; it copies what it can. An error
        // (busy, I/O) is retried next pass; the writer's own checkpoint bounds the WAL anyway.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

//! SQLite's two threads: the one that drives the connection (queued units of work back
//! to back) and the [`Checkpointer`] (see the parent module).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use diesel::connection::SimpleConnection;

use super::{open, ConnectionManager, Pooled, CHECKPOINT_EVERY};
use crate::db::{Backend, DbConnection, DbError};

/// Work for the SQLite thread: gets the connection, or why there is none.
pub(super) type Job = Box<dyn FnOnce(Result<&mut Pooled, DbError>) + Send>;

/// The SQLite thread: runs queued jobs back to back on the one connection.
pub(super) fn serve(pool: r2d2::Pool<ConnectionManager>, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                first(Err(DbError::Unavailable(e.to_string())));
                continue;
            }
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // A panicking job drops its reply (its caller sees the task failed); the
            // connection it left behind may be mid-transaction, so it is not reused.
            if std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut conn)))).is_err() {
                conn.broken = true;
                break;
            }
            next = jobs.try_recv().ok();
        }
    }
}

/// Copies SQLite's write-ahead log into the database file, `PRAGMA
/// wal_checkpoint(PASSIVE)` every `CHECKPOINT_EVERY`, on a thread and connection of
/// its own; a passive checkpoint never waits for, nor blocks, the writer. Stops when
/// dropped (for a [`crate::db::Database`], when its last clone is). A failure is logged once per
/// run of failures, and the connection opened again at the next tick.
pub struct Checkpointer {
    /// Dropping it wakes the thread, which then ends.
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the checkpointer of the SQLite database `url` names; `None` for
    /// PostgreSQL, which needs none. Errors: [`DbError::Unavailable`] when no thread can
    /// be started.
    pub fn start(url: &str) -> Result<Option<Checkpointer>, DbError> {
        let backend = Backend::from_url(url);
        if !matches!(backend, Backend::Sqlite(_)) {
            return Ok(None);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint(&backend, &stopped))
            .map_err(|e| DbError::Unavailable(format!("cannot start the checkpointer: {e}")))?;
        Ok(Some(Checkpointer { _stop: stop }))
    }
}

/// The checkpointer's loop: until its sender is dropped.
fn checkpoint(backend: &Backend, stopped: &mpsc::Receiver<()>) {
    let mut conn: Option<DbConnection> = None;
    let mut failing = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        let result = match conn.as_mut() {
            Some(c) => c
                .batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                .map_err(|e| e.to_string()),
            None => open(backend)
                .map(|c| conn = Some(c))
                .map_err(|e| e.to_string()),
        };
        match result {
            Err(e) => {
                if !failing {
                    log::warn!(
                        "SQLite checkpoint failed (the writer checkpoints itself meanwhile): {e}"
                    );
                }
                failing = true;
                conn = None;
            }
            Ok(()) => failing = false,
        }
    }
}

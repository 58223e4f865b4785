//! SQLite's two threads: the one that drives the connection (queued units of work back
//! to back) and the [`Checkpointer`] (see the parent module).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::{open, ConnectionManager, Pooled, BATCH_TIME, CHECKPOINT_EVERY, MAX_BATCH};
use crate::db::{Backend, DbConnection, DbError};

/// Work for the SQLite thread: gets the connection, or why there is none, and returns
/// how to answer its caller once the batch it ran in has committed (`Ok`) or failed.
pub(super) type Job = Box<dyn FnOnce(Result<&mut Pooled, DbError>) -> Reply + Send>;

/// A job's answer, given the outcome of its batch.
pub(super) type Reply = Box<dyn FnOnce(Result<(), DbError>) + Send>;

/// The SQLite thread: runs queued jobs back to back on the one connection: a job with
/// none queued behind it alone ([`alone`]), jobs queued together in one transaction
/// ([`batch`]).
pub(super) fn serve(pool: r2d2::Pool<ConnectionManager>, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                refuse(first, DbError::Unavailable(e.to_string()));
                continue;
            }
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            let usable = match jobs.try_recv() {
                Ok(second) => batch(&mut conn, job, second, &jobs),
                Err(_) => alone(&mut conn, job),
            };
            if !usable {
                break;
            }
            next = jobs.try_recv().ok();
        }
    }
}

/// Answers `job` with `why` without running its work.
fn refuse(job: Job, why: DbError) {
    job(Err(why))(Ok(()));
}

/// Runs `job` on its own (its transactions are its own) and answers it at once: with
/// nothing queued behind it, a batch would only add its `BEGIN` and savepoint. Returns
/// whether the connection may be used again (not after a panic: it may be
/// mid-transaction).
fn alone(conn: &mut Pooled, job: Job) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut *conn)))) {
        Ok(reply) => reply(Ok(())),
        Err(_) => conn.broken = true,
    }
    !conn.broken
}

/// Runs `first`, `second` and the jobs queued behind them, up to [`MAX_BATCH`] or [`BATCH_TIME`], in
/// one `BEGIN IMMEDIATE` … `COMMIT` (each job's own transaction becomes a savepoint of
/// it), then answers each: with its own result once the batch committed, with the
/// batch's failure otherwise (its writes are gone, so its caller must see an error and
/// retry). Returns whether the connection may be used again: not after a panicking job
/// (the connection may be mid-savepoint) or an error that broke it.
fn batch(conn: &mut Pooled, first: Job, second: Job, jobs: &mpsc::Receiver<Job>) -> bool {
    let started = std::time::Instant::now();
    if let Err(e) = begin(conn) {
        // The file is busy or the connection failed: each job on its own.
        log::warn!("SQLite: a batch could not begin ({e}); its jobs run one by one");
        if !alone(conn, first) {
            refuse(second, queued_with_failure());
            return false;
        }
        return alone(conn, second);
    }
    let mut replies: Vec<Reply> = Vec::new();
    let mut queued = Some(second);
    let mut job = Some(first);
    let mut panicked = false;
    while let Some(run) = job.take() {
        match std::panic::catch_unwind(AssertUnwindSafe(|| run(Ok(&mut *conn)))) {
            Ok(reply) => replies.push(reply),
            Err(_) => panicked = true,
        }
        let full = replies.len() >= MAX_BATCH || started.elapsed() >= BATCH_TIME;
        // The second job, taken from the queue already, always runs in this batch.
        if panicked || conn.broken || (full && queued.is_none()) {
            break;
        }
        job = queued.take().or_else(|| jobs.try_recv().ok());
    }
    if let Some(left) = queued {
        // The first job panicked or broke the connection before the second ran.
        refuse(left, queued_with_failure());
    }
    let outcome = if panicked || conn.broken {
        rollback(conn);
        Err("a unit of work of its batch failed the connection".to_owned())
    } else {
        commit(conn)
    };
    if panicked {
        conn.broken = true;
    }
    for reply in replies {
        reply(
            outcome
                .clone()
                .map_err(|e| DbError::Unavailable(format!("not committed: {e}"))),
        );
    }
    !conn.broken
}

/// Why a job taken from the queue did not run: the job before it panicked or broke the
/// connection. `unavailable`: nothing of it ran, and its caller retries.
fn queued_with_failure() -> DbError {
    DbError::Unavailable("a unit of work queued with it failed the connection".into())
}

/// Opens the batch's transaction through diesel's transaction manager, so that a job's
/// own `transaction` nests in it as a savepoint. Errors: the file is busy past the
/// timeout (another process writing), or the connection failed.
fn begin(conn: &mut Pooled) -> Result<(), DbError> {
    let DbConnection::Sqlite(lite) = &mut **conn else {
        return Ok(());
    };
    AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE").map_err(DbError::from)
}

/// Commits the batch; on failure rolls it back (a connection left in a transaction is
/// not usable) and says why.
fn commit(conn: &mut Pooled) -> Result<(), String> {
    let DbConnection::Sqlite(lite) = &mut **conn else {
        return Ok(());
    };
    match AnsiTransactionManager::commit_transaction(lite) {
        Ok(()) => Ok(()),
        Err(e) => {
            rollback(conn);
            Err(e.to_string())
        }
    }
}

/// Rolls the batch back; a connection that cannot is not used again.
fn rollback(conn: &mut Pooled) {
    let DbConnection::Sqlite(lite) = &mut **conn else {
        return;
    };
    if AnsiTransactionManager::transaction_manager_status_mut(lite)
        .transaction_depth()
        .ok()
        .flatten()
        .is_none()
    {
        return;
    }
    if let Err(e) = AnsiTransactionManager::rollback_transaction(lite) {
        log::error!("SQLite: rolling back a failed batch: {e}; the connection is dropped");
        conn.broken = true;
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

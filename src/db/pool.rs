//! Connections, and the bridge from async handlers to diesel's blocking calls.
//!
//! PostgreSQL: an r2d2 pool of `DATABASE_POOL_SIZE` connections; [`Database::run`] hands
//! the work to tokio's blocking pool, which takes a connection for it.
//!
//! SQLite: one connection (SQLite has one writer), driven by one thread of its own that
//! runs the queued work back to back: the connection never waits for a woken thread to
//! be scheduled between two units of work, which on a loaded machine costs more than
//! the work itself (docs/benchmarks.md). The units of work queued together commit
//! together (group commit, at most [`MAX_BATCH`] or [`BATCH_TIME`]; a unit with none
//! queued behind it commits alone): each unit's own transaction is a
//! savepoint of the batch's, and each caller is answered only once the batch has
//! committed, so a reply still means "on disk"; the pages the units share (the last page
//! of each table and index they append to) are written to the log once per batch
//! instead of once per unit. The thread takes the connection from the same r2d2 pool of
//! one while work is queued and gives it back when the queue is empty, so
//! [`Database::get`] still works (the migrations at start, the command line).
//!
//! SQLite's write-ahead log is copied into the database file by a [`Checkpointer`]: a
//! thread and connection of its own, every [`CHECKPOINT_EVERY`], so the writer never
//! stops for it (left to the writer, every 1000th page stalls one commit for
//! milliseconds: docs/benchmarks.md). Should it fall behind, the writer still
//! checkpoints itself once the log holds [`AUTOCHECKPOINT_PAGES`].
//!
//! A connection is checked with `SELECT 1` when it is taken from the pool only if it has
//! been idle for [`CHECK_AFTER_IDLE`], or if any connection of the pool was found lost
//! since it was last checked (a server restart or `pg_terminate_backend` takes them all
//! at once); one that met an error breaking it ([`DbError::breaks_connection`]) or a
//! panic is dropped, and the next use opens a new one.
//!
//! A unit of work that lost its PostgreSQL connection is run again, once, on a checked
//! connection when nothing it sent can have been committed: it had sent no `COMMIT` and
//! no statement outside a transaction other than a read (each PostgreSQL connection
//! carries a [`WorkLog`] fed by diesel's instrumentation). Otherwise the loss is
//! returned, and the caller answers 503 `unavailable`, so Cafe24 or KOMOJU retries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::ManageConnection;
use diesel_migrations::MigrationHarness;

mod sqlite;
mod work_log;

pub use sqlite::Checkpointer;
use sqlite::{serve, Job};
pub use work_log::WorkLog;
use work_log::WorkTracker;

use super::{
    init_tls, owner_only, Backend, DbConnection, DbError, Readiness, POSTGRES_MIGRATIONS,
    SQLITE_MIGRATIONS,
};

/// A connection that was used without error this recently is not checked again when
/// taken from the pool.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// At most this many units of work commit together on SQLite (see the module's doc).
pub const MAX_BATCH: usize = 32;

/// A batch stops taking queued units of work once it has run this long, so the first
/// unit's answer waits at most about this (plus the last unit's own time).
pub const BATCH_TIME: Duration = Duration::from_millis(2);

/// How often the [`Checkpointer`] copies SQLite's write-ahead log into the database.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The size of SQLite's write-ahead log, in pages (4 KiB), at which a writing
/// connection checkpoints it itself: the backstop should the [`Checkpointer`] fall
/// behind or be absent (tools holding a connection of their own).
pub const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Opens one connection to `backend` with the per-connection settings every connection
/// of this service gets (SQLite: WAL, a 5 s busy timeout, `synchronous = NORMAL`,
/// foreign keys on, [`AUTOCHECKPOINT_PAGES`]).
fn open(backend: &Backend) -> Result<DbConnection, diesel::r2d2::Error> {
    open_logged(backend, None)
}

/// [`open`], with `log` recording what each unit of work sent (PostgreSQL only).
fn open_logged(
    backend: &Backend,
    log: Option<Arc<WorkLog>>,
) -> Result<DbConnection, diesel::r2d2::Error> {
    match backend {
        Backend::Postgres(url) => {
            let mut conn = diesel::PgConnection::establish(url)
                .map_err(diesel::r2d2::Error::ConnectionError)?;
            if let Some(log) = log {
                conn.set_instrumentation(WorkTracker {
                    log,
                    next: diesel::connection::get_default_instrumentation(),
                });
            }
            Ok(DbConnection::Postgres(conn))
        }
        Backend::Sqlite(path) => {
            let mut conn = diesel::SqliteConnection::establish(path)
                .map_err(diesel::r2d2::Error::ConnectionError)?;
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};"
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// One connection to the database `url` names (see [`Backend::from_url`]), outside any
/// pool, with the settings of the pool's connections: for tools and benchmarks that
/// hold a connection of their own. Errors: [`DbError::Unavailable`].
pub fn establish(url: &str) -> Result<DbConnection, DbError> {
    init_tls();
    open(&Backend::from_url(url)).map_err(|e| DbError::Unavailable(e.to_string()))
}

/// A pooled connection with what the pool needs to know of its last use. Dereferences
/// to the [`DbConnection`].
pub struct Pooled {
    conn: DbConnection,
    /// When it last did work without an error breaking it.
    last_used: Instant,
    /// It met an error (or a panic) after which it must not be used again.
    broken: bool,
    /// What the current unit of work sent (PostgreSQL).
    log: Arc<WorkLog>,
    /// The pool's count of lost connections when this one was last known good.
    checked: u64,
    /// The pool's count of lost connections.
    lost: Arc<AtomicU64>,
}

impl Pooled {
    /// Records how a unit of work on this connection ended. A lost connection is
    /// counted, so every other connection of the pool is checked at its next use.
    fn used<T>(&mut self, result: &Result<T, DbError>) {
        match result {
            Err(e) if e.breaks_connection() => {
                self.broken = true;
                self.lost.fetch_add(1, Ordering::SeqCst);
            }
            _ => self.last_used = Instant::now(),
        }
    }
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Opens connections for the pool and applies per-connection settings.
#[derive(Debug)]
pub struct ConnectionManager {
    backend: Backend,
    /// How many connections of this pool were found lost so far.
    lost: Arc<AtomicU64>,
}

impl ManageConnection for ConnectionManager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        let log = Arc::new(WorkLog::default());
        Ok(Pooled {
            conn: open_logged(&self.backend, Some(log.clone()))?,
            last_used: Instant::now(),
            broken: false,
            log,
            checked: self.lost.load(Ordering::SeqCst),
            lost: self.lost.clone(),
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), Self::Error> {
        let lost = self.lost.load(Ordering::SeqCst);
        if conn.last_used.elapsed() < CHECK_AFTER_IDLE && conn.checked == lost {
            return Ok(());
        }
        conn.conn
            .batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)?;
        conn.last_used = Instant::now();
        conn.checked = lost;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.broken || std::thread::panicking()
    }
}

/// How [`Database::run`] reaches a connection.
#[derive(Clone)]
enum Runner {
    /// tokio's blocking pool, a connection from the r2d2 pool (PostgreSQL).
    Blocking,
    /// The SQLite thread's queue, and the checkpointer, which lives as long as any
    /// clone of the [`Database`].
    Serial {
        jobs: mpsc::Sender<Job>,
        _checkpointer: std::sync::Arc<Option<Checkpointer>>,
    },
}

/// The connections to one database. Cheap to clone; for SQLite its thread ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<ConnectionManager>,
    runner: Runner,
    backend_name: &'static str,
}

impl Database {
    /// Builds the pool for `url` (see [`Backend::from_url`]). For SQLite the parent
    /// directory of the file is created. Connections are opened lazily; a database that
    /// is down at start-up surfaces as [`DbError::Unavailable`] on first use.
    pub fn connect(url: &str) -> Result<Database, DbError> {
        Database::connect_sized(url, 10)
    }

    /// As [`Database::connect`], with at most `pool_size` PostgreSQL connections
    /// (`DATABASE_POOL_SIZE`); SQLite always gets one.
    pub fn connect_sized(url: &str, pool_size: u32) -> Result<Database, DbError> {
        init_tls();
        let backend = Backend::from_url(url);
        let backend_name = backend.name();
        let sqlite = matches!(backend, Backend::Sqlite(_));
        let max_size = match &backend {
            Backend::Sqlite(path) => {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                owner_only(std::path::Path::new(path))?;
                1
            }
            Backend::Postgres(_) => pool_size.max(1),
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .build_unchecked(ConnectionManager {
                backend,
                lost: Arc::new(AtomicU64::new(0)),
            });
        let runner = if sqlite {
            let (jobs, queue) = mpsc::channel();
            let served = pool.clone();
            std::thread::Builder::new()
                .name("sqlite".into())
                .spawn(move || serve(served, queue))
                .map_err(|e| {
                    DbError::Unavailable(format!("cannot start the SQLite thread: {e}"))
                })?;
            Runner::Serial {
                jobs,
                _checkpointer: std::sync::Arc::new(Checkpointer::start(url)?),
            }
        } else {
            Runner::Blocking
        };
        Ok(Database {
            pool,
            runner,
            backend_name,
        })
    }

    /// `"sqlite"` or `"postgresql"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// Runs the pending migrations of this backend's tree; returns their names.
    pub fn run_migrations(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.get()?;
        let applied = match &mut **conn {
            DbConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect()),
            DbConnection::Postgres(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect()),
        };
        applied.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// How many embedded migrations this database has not run yet (0 when current),
    /// read over `conn`. Errors: the migrations table cannot be read.
    pub fn pending_migrations(conn: &mut DbConnection) -> Result<usize, DbError> {
        let pending = match conn {
            DbConnection::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            DbConnection::Postgres(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
        };
        pending.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// Readiness (PROTOCOL.md §13): whether the database answers, and whether its
    /// migrations are current. Never an error: a failure is `database: false`, logged.
    pub async fn readiness(&self) -> Readiness {
        match self.run(Database::pending_migrations).await {
            Ok(pending) => Readiness {
                database: true,
                migrations_current: Some(pending == 0),
            },
            Err(e) => {
                log::error!("readiness: {e}");
                Readiness {
                    database: false,
                    migrations_current: None,
                }
            }
        }
    }

    /// A connection from the pool, blocking up to the pool's timeout (SQLite: while
    /// the SQLite thread has work queued, it holds the one connection).
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs blocking database work off the async workers, so handlers never stall the
    /// reactor: on tokio's blocking pool with a pooled connection (PostgreSQL), or on the
    /// SQLite thread. `f` decides its own transactions. On PostgreSQL, a unit of work
    /// that lost its connection before anything it sent can have been committed runs
    /// again, once, on a checked connection (so `f` is `Clone`: it must do nothing but
    /// database work). Errors: `f`'s (a lost connection is
    /// [`DbError::is_unavailable`]), or [`DbError::Unavailable`] when no connection could
    /// be had or the work panicked.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Clone + Send + 'static,
    {
        match &self.runner {
            Runner::Blocking => {
                let again = f.clone();
                match self.run_blocking(f).await? {
                    (Err(e), true) if e.breaks_connection() => {
                        log::warn!("database connection lost before anything was committed ({e}); running the unit of work again on a checked connection");
                        self.run_blocking(again).await?.0
                    }
                    (result, _) => result,
                }
            }
            Runner::Serial { jobs, .. } => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job: Job = Box::new(move |conn| {
                    let result = conn.and_then(|conn| {
                        let result = f(conn);
                        conn.used(&result);
                        result
                    });
                    // Answered once the batch it ran in has committed (or failed).
                    Box::new(move |batch: Result<(), DbError>| {
                        let _ = reply.send(batch.and(result));
                    })
                });
                jobs.send(job)
                    .map_err(|_| DbError::Unavailable("the SQLite thread has stopped".into()))?;
                answer
                    .await
                    .map_err(|_| DbError::Unavailable("database task failed".into()))?
            }
        }
    }

    /// One run of `f` on tokio's blocking pool with a pooled connection; with the
    /// result, whether nothing it sent can have been committed.
    async fn run_blocking<T, F>(&self, f: F) -> Result<(Result<T, DbError>, bool), DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get()?;
            conn.log.start();
            let result = f(&mut conn);
            conn.used(&result);
            Ok((result, conn.log.nothing_committed()))
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("blocking task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the main database file (what a checkpoint copies pages into).
    fn file_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn the_checkpointer_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("wal.sqlite3");
        let url = format!("sqlite://{}", path.display());
        let mut writer = establish(&url).unwrap_or_else(|e| panic!("{e}"));
        // The writer never checkpoints itself: only the checkpointer can move the log.
        writer
            .batch_execute(
                "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v BLOB); \
                 INSERT INTO t SELECT randomblob(1000) FROM \
                 (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
                  SELECT i FROM n);",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let before = file_len(&path);
        assert!(
            before < 100_000,
            "the rows are in the log, not the file: {before}"
        );

        let checkpointer = Checkpointer::start(&url)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("SQLite has a checkpointer"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while file_len(&path) < 500_000 {
            assert!(Instant::now() < deadline, "the log was never checkpointed");
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        drop(checkpointer);
        assert!(Checkpointer::start("postgres://localhost/x")
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
    }

    /// A SQLite database in `dir` with a table `t (v INTEGER PRIMARY KEY)`, and a unit
    /// of work that holds the SQLite thread until the returned sender is dropped, queued
    /// (so that what is queued after it is queued together).
    async fn held_database(
        dir: &std::path::Path,
    ) -> (
        Database,
        mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), DbError>>,
    ) {
        let url = format!("sqlite://{}", dir.join("batch.sqlite3").display());
        let db = Database::connect(&url).unwrap_or_else(|e| panic!("{e}"));
        db.run(|c| Ok(c.batch_execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")?))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let (started, running) = mpsc::channel::<()>();
        let holder = db.clone();
        let hold = tokio::spawn(async move {
            holder
                .run(move |_| {
                    let _ = started.send(());
                    let held = held.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || running.recv())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("the holding unit never ran: {e}"));
        (db, release, hold)
    }

    /// Queues `work` on `db` now (its first poll sends it) and returns its answer.
    fn queued<T: Send + 'static>(
        db: &Database,
        work: impl FnOnce(&mut DbConnection) -> Result<T, DbError> + Clone + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, DbError>> {
        let db = db.clone();
        let mut answer = Box::pin(async move { db.run(work).await });
        let first = futures_util::FutureExt::now_or_never(answer.as_mut());
        assert!(
            first.is_none(),
            "a queued unit was answered before the batch ran"
        );
        tokio::spawn(answer)
    }

    fn insert(
        v: i32,
        then_fail: bool,
    ) -> impl FnOnce(&mut DbConnection) -> Result<(), DbError> + Clone {
        move |c| {
            crate::db::transaction(c, |c| {
                c.batch_execute(&format!("INSERT INTO t (v) VALUES ({v})"))?;
                if then_fail {
                    return Err(DbError::Corrupt(format!("unit {v} refused")));
                }
                Ok(())
            })
        }
    }

    fn stored(dir: &std::path::Path) -> Vec<i32> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            v: i32,
        }
        let url = format!("sqlite://{}", dir.join("batch.sqlite3").display());
        let DbConnection::Sqlite(mut c) = establish(&url).unwrap_or_else(|e| panic!("{e}")) else {
            panic!("a SQLite url")
        };
        diesel::sql_query("SELECT v FROM t ORDER BY v")
            .load::<Row>(&mut c)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| r.v)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_queued_together_commit_together_each_answered_once_on_disk() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (db, release, hold) = held_database(dir.path()).await;
        let units: Vec<_> = (1..=20)
            .map(|v| (v, queued(&db, insert(v, v % 3 == 0))))
            .collect();
        drop(release);
        hold.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut kept = Vec::new();
        for (v, unit) in units {
            let answer = unit.await.unwrap_or_else(|e| panic!("{e}"));
            // Answered means committed: another connection sees it at once.
            let seen = stored(dir.path()).contains(&v);
            match answer {
                Ok(()) => {
                    assert!(seen, "unit {v} was answered before its row was on disk");
                    kept.push(v);
                }
                Err(DbError::Corrupt(_)) => {
                    assert!(
                        v % 3 == 0 && !seen,
                        "unit {v}: its own failure undid only it"
                    )
                }
                Err(e) => panic!("unit {v}: {e}"),
            }
        }
        assert_eq!(
            stored(dir.path()),
            kept,
            "every unit that succeeded, and only those"
        );
        assert_eq!(kept.len(), 14);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_that_panics_fails_its_batch_and_the_next_batch_runs_on_a_new_connection() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (db, release, hold) = held_database(dir.path()).await;
        let before = queued(&db, insert(1, false));
        let panics = queued(&db, |_c: &mut DbConnection| -> Result<(), DbError> {
            panic!("a bug in a unit of work")
        });
        drop(release);
        // The holding unit may have shared the failed batch: either answer is right.
        let _ = hold.await.unwrap_or_else(|e| panic!("{e}"));
        let before = before.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&before, Err(e) if e.is_unavailable()),
            "a batch-mate of a panic is told to retry: {before:?}"
        );
        let panicked = panics.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(panicked, Err(DbError::Unavailable(_))));
        assert_eq!(
            stored(dir.path()),
            Vec::<i32>::new(),
            "nothing of the batch was kept"
        );
        db.run(insert(2, false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored(dir.path()), vec![2]);
    }
}

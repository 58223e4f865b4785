//! The database: one connection type over SQLite and PostgreSQL, the pool, the embedded
//! migrations, and the bridge from async handlers to diesel's blocking calls.
//!
//! The backend is picked by the scheme of `DATABASE_URL` (`sqlite://path` or a bare path
//! for SQLite, `postgres://…` or `postgresql://…` for PostgreSQL). Both backends share
//! the table definitions in [`schema`]; each has its own migration tree under
//! `migrations/`, embedded in the binary.
//!
//! SQLite is opened in WAL mode with a busy timeout and served by **one** connection on a
//! thread of its own: every unit of work is serialized, so a read-then-write transaction
//! can never lose a race to another writer (SQLite has no `SELECT … FOR UPDATE`).
//! PostgreSQL gets a real pool and row locks (`db/pool.rs` owns both). This module never
//! decides anything about orders.

/// Maps a Rust enum to a `TEXT` column on both backends (and the connection over them):
/// stored as its `as_str()`, read back through its `parse()`; a stored value the enum
/// does not know is a deserialization error naming the type, never a silent default.
/// The enum derives `AsExpression` and `FromSqlRow` with `sql_type = Text`.
macro_rules! text_enum_column {
    ($ty:ty) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                use diesel::deserialize::FromSql;
                use diesel::sql_types::Text;
                let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
                <$ty>::parse(&text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($ty)).into())
            }
        }
    };
    ($ty:ty, Display) => {
        text_enum_column!($ty);

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Runs the same diesel query on whichever backend `$conn` holds, binding the inner
/// connection to `$c`: for the SQL the multi-backend connection cannot express
/// (`ON CONFLICT`, `FOR UPDATE`). The body is type-checked once per backend.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

text_enum_column!(crate::orders::state::OrderState);
text_enum_column!(crate::orders::Flow, Display);
text_enum_column!(refunds::Operation, Display);
text_enum_column!(refunds::RefundState, Display);
text_enum_column!(notifications::NotificationState, Display);
text_enum_column!(notifications::NotificationKind, Display);
text_enum_column!(duplicates::DuplicateState, Display);
text_enum_column!(webhook_events::WebhookOutcome, Display);
text_enum_column!(crate::merchant::kinds::CancelMode);
text_enum_column!(crate::merchant::kinds::CaptureMode);
text_enum_column!(crate::merchant::kinds::Locale);
text_enum_column!(crate::merchant::kinds::NotifyEncoding);
text_enum_column!(crate::merchant::kinds::PaymentTypes);

pub mod cafe24;
pub mod captures;
pub mod duplicates;
pub mod limits;
pub mod merchants;
pub mod notifications;
pub mod order_record;
pub mod orders;
mod pool;
pub mod prepared;
pub mod refunds;
pub mod retention;
pub mod schema;
pub mod seed;
pub mod webhook_events;

pub use pool::{establish, Checkpointer, ConnectionManager, Database, Pooled};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgresql");

/// One connection to either backend. Query code written against it runs on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Which database `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A file path (the `sqlite://` prefix removed).
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl Backend {
    /// Reads the backend from a URL: `postgres://` / `postgresql://` → PostgreSQL;
    /// `sqlite://PATH`, `sqlite:PATH` or a bare path → SQLite.
    pub fn from_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(url.to_owned())
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Backend::Sqlite(path.to_owned())
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            Backend::Sqlite(path.to_owned())
        } else {
            Backend::Sqlite(url.to_owned())
        }
    }

    /// `"sqlite"` or `"postgresql"`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }
}

/// Errors of the storage layer. A handler maps [`DbError::Unavailable`] to the contract's
/// `unavailable` (503); every other variant is a bug or a broken invariant (500).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (server down, pool exhausted past its timeout).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A stored value could not be read back into a domain type.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Migrations could not run.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// True when the failure is the database being out of reach rather than a bad query:
    /// the caller may answer 503 and be retried. A lost connection
    /// ([`DbError::breaks_connection`]) is, and so is a busy SQLite file.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            // SQLite: another writer held the file past the busy timeout.
            DbError::Query(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("database is locked")
                    || info.message().contains("database is busy") =>
            {
                true
            }
            _ => self.breaks_connection(),
        }
    }

    /// True when the connection that met this error cannot be used again (the server
    /// went away, or a transaction could not be ended): the pool drops it and opens a
    /// new one. A busy SQLite file is not such a failure.
    pub fn breaks_connection(&self) -> bool {
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::UnableToSendCommand
                ) || LOST_CONNECTION
                    .iter()
                    .any(|words| info.message().contains(words))
            }
            DbError::Query(diesel::result::Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

/// What PostgreSQL and libpq say when the server went away mid-query. Over TLS (libpq's
/// default `sslmode=prefer` finds it on when the server has it) libpq words it its own
/// way (`fe-secure-openssl.c`: "SSL connection has been closed unexpectedly", "SSL
/// SYSCALL error: EOF detected"); without these two a connection cut under TLS was not
/// seen as lost, its unit of work not run again, and the request answered 503.
const LOST_CONNECTION: [&str; 8] = [
    "terminating connection",
    "server closed the connection",
    "connection to server",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "SSL connection has been closed unexpectedly",
    "SSL SYSCALL error",
];

/// Makes the SQLite file readable by its owner only (it holds orders, their KOMOJU
/// idempotency keys, sealed merchant secrets and buyers' e-mail addresses): created `0600` when absent,
/// tightened to `0600` (with a warning) when it exists with group or other bits. SQLite
/// gives its `-wal` and `-shm` files the database file's mode. In-memory databases are
/// left alone.
pub(crate) fn owner_only(path: &std::path::Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let text = path.to_string_lossy();
        if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
            return Ok(());
        }
        let failed = |e: std::io::Error| {
            DbError::Unavailable(format!("cannot secure {}: {e}", path.display()))
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                log::warn!(
                    "{} was readable by others (mode {:o}); now 0600",
                    path.display(),
                    meta.permissions().mode() & 0o777
                );
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(failed)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map(drop)
                    .or_else(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => Ok(()),
                        _ => Err(failed(e)),
                    })?;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The arguments of the PostgreSQL advisory lock that lets one reconciliation pass run
/// at a time: one lock per schema, so that every instance of one deployment shares it
/// and deployments in other schemas of the same database do not.
const RECONCILE_LOCK: &str = "hashtext('cafe24-komoju/reconcile'), hashtext(current_schema())";

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Takes the reconciliation pass lock on `conn` without waiting: `true` when this
/// connection now holds it (it is held until [`release_reconcile_lock`] or the connection
/// closes). PostgreSQL: a session advisory lock (per schema), so several instances never
/// run a pass at once. SQLite: always `true` (one writer connection serializes everything).
pub fn try_reconcile_lock(conn: &mut DbConnection) -> Result<bool, DbError> {
    match conn {
        DbConnection::Postgres(pg) => {
            let sql = format!("SELECT pg_try_advisory_lock({RECONCILE_LOCK}) AS locked");
            Ok(diesel::sql_query(sql).get_result::<Locked>(pg)?.locked)
        }
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// Releases what [`try_reconcile_lock`] took on the same connection.
pub fn release_reconcile_lock(conn: &mut DbConnection) -> Result<(), DbError> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query(format!(
            "SELECT pg_advisory_unlock({RECONCILE_LOCK}) AS locked"
        ))
        .get_result::<Locked>(pg)?;
    }
    Ok(())
}

/// Initialises OpenSSL (which the bundled libpq uses) before libpq does, without the
/// `atexit` clean-up: OpenSSL's clean-up at process exit races with threads that still
/// hold PostgreSQL connections (pools, blocking tasks) and can crash the process on its
/// way out. The first initialisation decides, so this runs before any connection is
/// made; calling it again does nothing. Call it before using libpq outside
/// [`Database::connect`] (tests opening their own connections do).
pub fn init_tls() {
    openssl_sys::init();
}

/// What `GET /health/ready` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered.
    pub database: bool,
    /// Whether an embedded migration is pending; `None` when the database did not
    /// answer (then nobody knows).
    pub migrations_current: Option<bool>,
}

/// Runs `f` in a transaction; on PostgreSQL the caller locks rows it decides on with
/// [`lock_order`](orders::lock_order). Errors roll back.
pub fn transaction<T, F>(conn: &mut DbConnection, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError>,
{
    conn.transaction(f)
}

/// True when a diesel error is a unique-constraint violation (a lost insert race).
pub fn is_unique_violation(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(message: &str) -> DbError {
        DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn a_connection_cut_under_tls_is_lost_and_a_busy_file_only_unavailable() {
        // libpq's words (fe-secure-openssl.c, fe-misc.c) and the server's.
        for message in [
            "SSL connection has been closed unexpectedly\n",
            "SSL SYSCALL error: EOF detected\n",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n",
            "terminating connection due to administrator command",
        ] {
            let e = failed(message);
            assert!(e.breaks_connection(), "{message}");
            assert!(e.is_unavailable(), "{message}");
        }
        let busy = failed("database is locked");
        assert!(busy.is_unavailable());
        assert!(!busy.breaks_connection());
        let wrong = failed("duplicate key value violates unique constraint \"orders_pkey\"");
        assert!(!wrong.is_unavailable());
        assert!(!wrong.breaks_connection());
    }
}

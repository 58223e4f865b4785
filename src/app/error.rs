//! How a command of the operator's interface fails (PROTOCOL.md §11): one error type for
//! `app::cli` and the commands it runs (`app::inspect`), whose message is for the
//! operator and never holds a secret.

use crate::db;

/// A command failed; the message is for the operator and holds no secret.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The operator asked for something that cannot be done; the message says why.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Db(#[from] db::DbError),
    #[error("{0}")]
    Startup(#[from] crate::app::startup::StartupError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

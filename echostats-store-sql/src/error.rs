//! The store's own error type and its one mapping into the core error.

use echostats_core::Error;

/// What can go wrong inside the SQL store. Mapped to [`Error`] in exactly one place,
/// [`SqlError::into_core`], keeping the driver error as the source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    /// The driver failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Running the migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Preparing the database file's directory failed.
    #[error("cannot prepare the database directory: {0}")]
    Io(#[from] std::io::Error),
    /// The connection URL is not one we accept.
    #[error("invalid database URL: {0}")]
    Url(String),
    /// A stored value cannot be read back (written by something else, or damaged).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Commit or insert after an insert of the same batch failed.
    #[error("an earlier insert of this batch failed; the batch was rolled back")]
    Poisoned,
    /// A task of the store stopped unexpectedly (a bug).
    #[error("the store's work stopped unexpectedly: {0}")]
    Crashed(String),
    /// SQLite refused the store's set-up of its connections.
    #[error("SQLite could not be set up: {0}")]
    Setup(String),
    /// A stored JSON value cannot be read back.
    #[error("corrupt stored JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub(crate) type SqlResult<T> = std::result::Result<T, SqlError>;

impl SqlError {
    /// The one mapping into the core error.
    pub(crate) fn into_core(self, backend: &'static str) -> Error {
        match self {
            SqlError::Sqlx(e) => match classify(&e) {
                Class::Unavailable => Error::BackendUnavailable { backend, source: Box::new(e) },
                Class::Unique(what) => Error::AlreadyExists { what },
                Class::Other => Error::Backend { backend, source: Box::new(e) },
            },
            SqlError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => SqlError::Sqlx(e).into_core(backend),
            SqlError::Io(e) => Error::BackendUnavailable { backend, source: Box::new(e) },
            SqlError::Url(message) => Error::invalid(message),
            e @ (SqlError::Migrate(_)
            | SqlError::Corrupt(_)
            | SqlError::Json(_)
            | SqlError::Poisoned
            | SqlError::Crashed(_)
            | SqlError::Setup(_)) => Error::Backend { backend, source: Box::new(e) },
        }
    }
}

enum Class {
    Unavailable,
    Unique(String),
    Other,
}

fn classify(e: &sqlx::Error) -> Class {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Class::Unavailable,
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return Class::Unique(db.message().to_string());
            }
            let code = db.code().unwrap_or_default();
            // PostgreSQL: connection exceptions (08xxx), shutdown / not accepting
            // connections (57P01..57P03), too many connections (53300).
            let pg_unavailable = code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300");
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6), possibly extended codes,
            // after the busy timeout ran out.
            let sqlite_busy = code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            if pg_unavailable || sqlite_busy {
                Class::Unavailable
            } else {
                Class::Other
            }
        }
        _ => Class::Other,
    }
}

//! The store's own error type and its one mapping into the core error.

use echostats_core::Error;
use mongodb::error::{ErrorKind, WriteFailure};

/// What can go wrong inside the MongoDB store. Mapped to [`Error`] in exactly one
/// place, [`MongoError::into_core`], keeping the driver error as the source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MongoError {
    /// The driver failed.
    #[error(transparent)]
    Driver(#[from] mongodb::error::Error),
    /// A value could not be encoded as BSON.
    #[error("cannot encode a document: {0}")]
    Encode(#[from] mongodb::bson::ser::Error),
    /// A stored document cannot be read back.
    #[error("cannot decode a stored document: {0}")]
    Decode(#[from] mongodb::bson::de::Error),
    /// A stored document is not what this store writes.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The connection URL is not one we accept.
    #[error("invalid MongoDB URL: {0}")]
    Url(String),
    /// Commit or insert after an insert of the same batch failed.
    #[error("an earlier insert of this batch failed; the batch was rolled back")]
    Poisoned,
}

pub(crate) type MongoResult<T> = std::result::Result<T, MongoError>;

/// Backend name in core errors.
pub(crate) const BACKEND: &str = "mongodb";

/// MongoDB's duplicate key error code (E11000).
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// Server error codes meaning "not reachable now, try later": host unreachable / not
/// found, network timeout, exceeded time limit, shutting down, primary stepped down,
/// not writable primary, interrupted at shutdown.
const UNAVAILABLE_CODES: &[i32] = &[6, 7, 50, 89, 91, 189, 262, 10107, 11600, 11602, 13435, 13436];

impl MongoError {
    /// The one mapping into the core error.
    pub(crate) fn into_core(self) -> Error {
        match self {
            MongoError::Driver(e) => match classify(&e) {
                Class::Unavailable => Error::BackendUnavailable { backend: BACKEND, source: Box::new(e) },
                Class::Duplicate => Error::AlreadyExists { what: e.to_string() },
                Class::Other => Error::Backend { backend: BACKEND, source: Box::new(e) },
            },
            MongoError::Url(message) => Error::invalid(message),
            e @ (MongoError::Encode(_) | MongoError::Decode(_) | MongoError::Corrupt(_) | MongoError::Poisoned) => {
                Error::Backend { backend: BACKEND, source: Box::new(e) }
            }
        }
    }
}

impl From<MongoError> for Error {
    fn from(e: MongoError) -> Error {
        e.into_core()
    }
}

enum Class {
    Unavailable,
    Duplicate,
    Other,
}

/// Whether `e` is only duplicate key errors of an insert.
pub(crate) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    matches!(classify(e), Class::Duplicate)
}

fn classify(e: &mongodb::error::Error) -> Class {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => Class::Duplicate,
        ErrorKind::InsertMany(m)
            if m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|v| !v.is_empty() && v.iter().all(|w| w.code == DUPLICATE_KEY)) =>
        {
            Class::Duplicate
        }
        ErrorKind::Command(c) if c.code == DUPLICATE_KEY => Class::Duplicate,
        ErrorKind::Command(c) if UNAVAILABLE_CODES.contains(&c.code) => Class::Unavailable,
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => Class::Unavailable,
        _ => Class::Other,
    }
}

//! The one error type of the core: each variant is a meaning the caller can act on.
//! Stores and clients keep their own error enums and map them here, keeping the source.

use std::time::Duration;

/// A boxed error kept as the source of a backend failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller (CLI, HTTP, Python) can map to its own world.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (for this user).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `user "alice"`.
        what: String,
    },
    /// The thing to create exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What collided.
        what: String,
    },
    /// A caller-supplied value is not acceptable.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was wrong and what is accepted.
        message: String,
    },
    /// An import file could not be read. Nothing of that file was stored.
    #[error("{file}{}: {reason}", location(.entry, .position))]
    Import {
        /// The file (inside a zip: `archive.zip!inner/path.json`).
        file: String,
        /// Zero-based index of the entry in the file's JSON array, when known.
        entry: Option<u64>,
        /// Line and column in the file, when known.
        position: Option<(usize, usize)>,
        /// What was wrong.
        reason: String,
    },
    /// Spotify answered with an error.
    #[error("Spotify API error {status}: {message}")]
    Spotify {
        /// HTTP status.
        status: u16,
        /// Spotify's message.
        message: String,
    },
    /// Spotify (or our own limiter) asked us to wait.
    #[error("rate limited{}", .retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long to wait, when known.
        retry_after: Option<Duration>,
    },
    /// No valid session or token.
    #[error("not authenticated")]
    Unauthenticated,
    /// A file could not be written (an export).
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The backend or API cannot do this.
    #[error("not supported: {what}")]
    NotSupported {
        /// What is not supported and, where useful, why.
        what: String,
    },
    /// The backend cannot be reached right now (connection refused, timeout); try again later.
    #[error("{backend} is unavailable: {source}")]
    BackendUnavailable {
        /// Which backend (`sqlite`, `postgres`, ...).
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The backend failed in another way.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

fn location(entry: &Option<u64>, position: &Option<(usize, usize)>) -> String {
    match (entry, position) {
        (Some(e), Some((l, c))) => format!(" (entry {e}, line {l}, column {c})"),
        (Some(e), None) => format!(" (entry {e})"),
        (None, Some((l, c))) => format!(" (line {l}, column {c})"),
        (None, None) => String::new(),
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput { message: message.into() }
    }
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// An error of the same kind and message as a shared one (one failure reported to
    /// several waiters); a backend error keeps the shared error as its source.
    pub fn from_shared(shared: std::sync::Arc<Error>) -> Self {
        let shared = match std::sync::Arc::try_unwrap(shared) {
            Ok(own) => return own,
            Err(shared) => shared,
        };
        match &*shared {
            Error::NotFound { what } => Error::NotFound { what: what.clone() },
            Error::AlreadyExists { what } => Error::AlreadyExists { what: what.clone() },
            Error::InvalidInput { message } => Error::InvalidInput { message: message.clone() },
            Error::Import { file, entry, position, reason } => {
                Error::Import { file: file.clone(), entry: *entry, position: *position, reason: reason.clone() }
            }
            Error::Spotify { status, message } => Error::Spotify { status: *status, message: message.clone() },
            Error::RateLimited { retry_after } => Error::RateLimited { retry_after: *retry_after },
            Error::Unauthenticated => Error::Unauthenticated,
            Error::NotSupported { what } => Error::NotSupported { what: what.clone() },
            Error::Io { path, source } => {
                Error::Io { path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            Error::BackendUnavailable { backend, .. } => {
                Error::BackendUnavailable { backend, source: Box::new(SharedError(shared.clone())) }
            }
            Error::Backend { backend, .. } => Error::Backend { backend, source: Box::new(SharedError(shared.clone())) },
        }
    }
}

/// A shared error as the source of another (see [`Error::from_shared`]).
#[derive(Debug)]
struct SharedError(std::sync::Arc<Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The source of the shared error, so the message reads like the original's.
        match std::error::Error::source(&*self.0) {
            Some(inner) => std::fmt::Display::fmt(inner, f),
            None => std::fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for SharedError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn shared_errors_keep_kind_and_message() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let shared = Arc::new(Error::BackendUnavailable { backend: "postgres", source: Box::new(io) });
        let _other_waiter = shared.clone();
        let copy = Error::from_shared(shared);
        assert!(matches!(copy, Error::BackendUnavailable { backend: "postgres", .. }));
        assert_eq!(copy.to_string(), "postgres is unavailable: connection refused");
        let alone = Arc::new(Error::invalid("limit"));
        assert!(matches!(Error::from_shared(alone), Error::InvalidInput { .. }));
    }
}

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
}

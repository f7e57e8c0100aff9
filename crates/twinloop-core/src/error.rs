//! The error every domain crate returns: what kind of failure it is (so a front can choose its
//! status), what went wrong in words, and the underlying error that caused it, if any. Wire
//! shapes (MLflow's error codes, HTTP statuses) are the fronts' business, not this crate's.

use std::fmt;
use std::sync::Arc;

/// The kinds of failure a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something malformed or not allowed.
    InvalidArgument,
    NotFound,
    AlreadyExists,
    /// The request was well formed but is larger than we accept.
    TooLarge,
    /// Our fault, or the fault of something we depend on (database, object store, disk).
    Internal,
    /// Something we depend on cannot be reached right now (the database is down or restarting,
    /// no connection could be had in time): the same request may succeed if retried.
    Unavailable,
}

/// The cause of an [`Error`]. Shared rather than boxed so that `Error` stays `Clone`, which
/// callers rely on.
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What [`Error::with_source`] takes: every error type converts into it, and so do strings.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A domain error. Its message is the one line every surface shows (an MLflow JSON body, a
/// native `{"error": …}` body, a log line, the CLI), so it ends with the cause's text; the cause
/// itself stays reachable through [`std::error::Error::source`] for code that inspects it. A chain
/// printer should therefore skip a cause whose text the message already ends with.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    source: Option<Source>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// An internal error `context` caused by `source`: the usual shape of a failed database,
    /// object store or file operation.
    pub fn internal_from(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::internal(context).with_source(source)
    }

    /// The same error, caused by `source` (any error type, or a message in words): the
    /// message gains `": "` and the cause's text.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        let source: Source = Arc::from(source.into());
        self.message = format!("{}: {source}", self.message);
        self.source = Some(source);
        self
    }

    /// The same error, caused by `source`, whose text stays out of the message: for a cause
    /// that must not reach a client (a database's own words name its tables and statements).
    /// A chain printer (logs, the CLI) still shows it.
    #[must_use]
    pub fn with_hidden_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn io_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied")
    }

    #[test]
    fn the_cause_is_kept_as_the_source() {
        let e = Error::internal_from("cannot create /data", io_error());
        assert_eq!(e.kind, ErrorKind::Internal);
        let source = e.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(Error::invalid("bad").source().is_none());
    }

    #[test]
    fn the_message_ends_with_the_cause_once() {
        let e = Error::not_found("no such run").with_source(io_error());
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.message, "no such run: permission denied");
        assert_eq!(e.to_string(), e.message);
        assert_eq!(Error::invalid("bad").to_string(), "bad");
    }

    #[test]
    fn clones_share_the_source() {
        let e = Error::internal_from("x", io_error());
        let copy = e.clone();
        assert!(copy.source().is_some());
        assert_eq!(copy.message, e.message);
    }
}

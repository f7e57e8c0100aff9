//! What goes wrong talking to a remote engine, typed so the engine can tell a refused attempt
//! (bad spec: no retry helps) from an unreachable one.

/// An executor's failure to start, watch, stop or read an attempt. An attempt that ran and
/// failed is not an error: it is an [`super::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The attempt cannot be expressed on this engine (a bad quantity, a too-large package).
    #[error("{0}")]
    Invalid(String),
    /// The request never got an answer (connection refused, TLS, timeout).
    #[error("{engine}: {action}: {source}")]
    Transport {
        engine: &'static str,
        action: String,
        /// The HTTP client's error; boxed so that this contract names no client library.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine answered with an error status; `body` is its message.
    #[error("{engine}: {action}: HTTP {status}: {body}")]
    Api {
        engine: &'static str,
        action: String,
        status: u16,
        body: String,
    },
    /// `reattach` or `wait` on something the engine does not know.
    #[error("{engine}: no {what} {id:?}")]
    NotFound {
        engine: &'static str,
        what: &'static str,
        id: String,
    },
    /// The engine answered 2xx with a body we cannot read.
    #[error("{engine}: {action}: unexpected answer: {detail}")]
    Decode {
        engine: &'static str,
        action: String,
        detail: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

//! Why a monitor operation failed, with the failure that caused it as its source.

use twinloop_predlog::PredlogError;

use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The request cannot be carried out as asked (a duplicate name, no training set to use).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The reference dataset could not be read.
    #[error("reference: {0}")]
    Reference(#[source] twinloop_monitor::Error),
    /// Lineage did not lead from the serving version to its training set.
    #[error("{}", .0.message)]
    Lineage(#[source] twinloop_core::Error),
    /// The metadata store failed.
    #[error("{}", .0.message)]
    Store(#[source] twinloop_core::Error),
    /// The prediction log could not be read.
    #[error(transparent)]
    Log(#[from] PredlogError),
    /// A blocking task (reading a reference) panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

impl MonitorError {
    /// Whether the caller can fix it (a bad request), as opposed to a fault of the server.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            MonitorError::Invalid(_)
                | MonitorError::Spec(_)
                | MonitorError::Reference(_)
                | MonitorError::Lineage(_)
        )
    }
}

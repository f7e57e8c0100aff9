//! The prediction log's contract, written once: serving appends every answer to it as Parquet
//! segments in the artifact store, monitors (and users' own analysis) read them back. The
//! schema (docs/serving.md) and the row type are in `schema`, one segment's encoding and name in
//! `segment`, reading a deployment's segments after a point in time in `read`.

pub mod read;
pub mod schema;
pub mod segment;

pub use read::read_after;
pub use schema::{Role, Row, Status};

/// Why a segment could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum PredlogError {
    /// The artifact store refused (or lacks) a file.
    #[error(transparent)]
    Store(#[from] twinloop_core::Error),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A file under the log's folder that is not in the log's schema.
    #[error("{path}: {problem}")]
    NotASegment { path: String, problem: String },
}

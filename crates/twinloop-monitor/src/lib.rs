//! Data drift and data quality between a reference and a current dataset.
//!
//! Column typing, test selection, binning and every score follow Evidently 0.7.23's
//! `DataDriftPreset` defaults, so verdicts match what users already trust
//! (see `docs/monitoring.md` for the rules and where this engine deliberately differs).
//! Columns are analysed in parallel, each in one pass over its sorted values or its
//! category counts.

pub mod categorical;
pub mod column;
pub mod engine;
pub mod html;
pub mod io;
pub mod parquet_pages;
pub mod profile;
pub mod report;
pub mod schema;
pub mod stats;
pub mod table_profile;

pub use engine::{Options, run_drift};
pub use report::Report;
pub use schema::Schema;
pub use table_profile::{ProfileOptions, TableProfile, profile_table};

/// Errors are one line each; the CLI adds the hint. A file's error names the file and ends with
/// its cause's text, which `source()` also gives (a chain printer skips what the line already
/// ends with).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{path}: not a drift schema: {source}")]
    NotASchema {
        path: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Input(String),
}

impl Error {
    pub fn input(message: impl Into<String>) -> Error {
        Error::Input(message.into())
    }
}

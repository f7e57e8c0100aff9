//! Shared vocabulary of twinloop: the error type every crate returns, id and time helpers, the
//! process-wide metrics recorder, and the domain types of tracking and the model registry.
//! Nothing here knows about HTTP, SQL or any wire format.

pub mod deployments;
pub mod error;
pub mod features;
pub mod ids;
pub mod lineage;
pub mod metrics;
pub mod monitoring;
pub mod names;
pub mod registry;
pub mod time;
pub mod tracking;

pub use error::{Error, ErrorCode, Result};

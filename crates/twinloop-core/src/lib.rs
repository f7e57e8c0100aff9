//! Shared vocabulary of twinloop: the error type every crate returns, id and time helpers, the
//! process-wide metrics recorder, the name rule and the signed-webhook contract that several
//! crates follow, and the domain types of tracking and the model registry. Nothing here knows
//! about HTTP (webhooks go through a transport the server provides), SQL or any wire format.

pub mod auth;
pub mod deployments;
pub mod error;
pub mod features;
pub mod ids;
pub mod lineage;
pub mod location;
pub mod metrics;
pub mod monitoring;
pub mod names;
pub mod registry;
pub mod run_columns;
pub mod time;
pub mod tracking;
pub mod webhook;

pub use error::{Error, ErrorKind, Result};

//! The native API's request and response bodies, defined once: `twinloop-server` encodes them,
//! the `twinloop` CLI decodes them. Plain serde types, no HTTP: a third-party client can use
//! this crate without pulling in the server.

pub mod deployments;
pub mod error;
pub mod events;
pub mod lineage;
pub mod monitors;
pub mod webhooks;

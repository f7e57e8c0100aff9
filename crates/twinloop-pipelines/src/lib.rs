//! Pipelines: a DAG of command steps defined in YAML, validated without running anything.

pub mod duration;
pub mod error;
pub mod expr;
mod locate;
pub mod spec;
pub mod validate;

pub use error::{Error, Invalid, Problem};

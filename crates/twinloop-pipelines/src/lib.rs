//! Pipelines: a DAG of command steps defined in YAML, validated without running anything, run by
//! a local executor with retries, timeouts and a content-addressed cache whose decisions `plan`
//! explains. The library prints nothing: runs report typed [`exec::Event`]s and return a
//! [`exec::RunReport`].

pub mod bless;
pub mod builtins;
pub mod cache;
pub mod config;
pub mod duration;
pub mod error;
pub mod exec;
pub mod expr;
mod glob;
mod locate;
pub mod plan;
mod record;
mod resume;
pub mod schedule;
pub mod services;
pub mod spec;
pub mod state;
pub mod validate;

pub use error::{Error, Invalid, Problem};

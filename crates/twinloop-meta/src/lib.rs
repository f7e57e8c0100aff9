//! The twinloop metadata store. [`TrackingStore`] is the one trait every caller programs against;
//! [`SqlStore`] implements it on SQLite (the embedded default) and PostgreSQL with the same schema
//! and the same behaviour. Search strings are parsed in [`search`] and evaluated in SQL.

pub mod search;
mod sql;
mod store;
pub mod validation;

pub use sql::{Backend, SqlStore, StoreUri};
pub use store::{ExperimentQuery, LoggedModelOrder, LoggedModelQuery, RunQuery, TrackingStore};

//! The twinloop feature store: feature definitions kept in a git repository ([`repo`]),
//! point-in-time-correct training sets ([`offline`]), materialization into an online store
//! ([`materialize`], [`online`]) and online feature retrieval ([`serving`]). Long operations
//! report [`progress`] as events; wire formats belong to the callers.

pub mod describe;
pub mod keys;
pub mod materialize;
pub mod offline;
pub mod online;
pub mod progress;
pub mod repo;
pub mod serving;
pub mod source;
pub mod store;
pub mod time;
pub mod value;

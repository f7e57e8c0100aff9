//! The twinloop feature store: feature definitions kept in a git repository ([`repo`]),
//! point-in-time-correct training sets ([`offline`]), materialization into an online store
//! ([`materialize`], [`online`]) and online feature retrieval ([`serving`]).

pub mod describe;
pub mod keys;
pub mod materialize;
pub mod offline;
pub mod online;
pub mod repo;
pub mod serving;
pub mod source;
pub mod store;
pub mod time;
pub mod value;

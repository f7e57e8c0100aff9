//! The twinloop metadata store: experiment tracking ([`TrackingStore`]), the model registry
//! ([`RegistryStore`]) and the lineage graph ([`LineageStore`]). [`SqlStore`] implements all
//! three on SQLite (the embedded default) and PostgreSQL with the same schema and behaviour.
//! Search strings are parsed in [`search`] and evaluated in SQL.

pub mod search;
mod sql;
mod store;
pub mod validation;

pub use sql::{Backend, SqlStore, StoreUri};
pub use store::{
    DeploymentStore, ExperimentQuery, FeatureRegistry, LineageStore, LoggedModelOrder,
    LoggedModelQuery, MonitorStore, RegistryQuery, RegistryStore, RunQuery, TrackingStore,
    WebhookStore,
};

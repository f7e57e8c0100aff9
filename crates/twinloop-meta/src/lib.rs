//! The twinloop metadata store: experiment tracking ([`TrackingStore`]), the model registry
//! ([`RegistryStore`]) and the lineage graph ([`LineageStore`]), each a trait per area (the two
//! large ones are made of smaller ones). [`SqlStore`] implements them all on SQLite (the
//! embedded default) and PostgreSQL with the same schema and behaviour, one area per file.
//! Search strings are parsed in [`search`] and evaluated in SQL.

pub mod search;
mod sql;
mod store;
pub mod validation;

pub use sql::{Backend, SqlStore, StoreUri};
pub use store::{
    DeploymentStore, ExperimentQuery, ExperimentStore, FeatureRegistry, LineageStore,
    LoggedModelOrder, LoggedModelQuery, LoggedModelStore, ModelAliasStore, ModelVersionStore,
    MonitorStore, RegisteredModelStore, RegistryEventLog, RegistryQuery, RegistryStore, RunQuery,
    RunStore, TrackingStore, WebhookStore,
};

//! The twinloop metadata store: experiment tracking ([`TrackingStore`]), the model registry
//! ([`RegistryStore`]) and the lineage graph ([`LineageStore`]), each a trait per area (the two
//! large ones are made of smaller ones). [`SqlStore`] implements them all on SQLite (the
//! embedded default) and PostgreSQL with the same schema and behaviour, one area per file.
//! Search strings are parsed in [`search`] and evaluated in SQL. A caller that holds one store for
//! every area passes it around as a [`StoreHandle`] (`Arc<dyn MetaStore>`).

mod artifact_uri;
pub mod event_cursor;
pub mod history;
pub mod lease;
pub mod pipelines;
pub mod pyjson;
pub mod search;
pub mod series;
mod sql;
mod store;
pub mod validation;

pub use artifact_uri::{experiment_root, validate_location as validate_artifact_location};
pub use pipelines::PipelineStore;
pub use sql::{
    Backend, MAX_KEY_LIMIT, MAX_SUMMARY_KEYS, MAX_SUMMARY_RUNS, OpenOptions, SqlStore, StoreUri,
};
pub use store::{
    AuthStore, DatasetFilter, DeploymentStore, ExperimentQuery, ExperimentStore, FeatureRegistry,
    HealthStore, LeaseStore, LineageStore, LoggedModelOrder, LoggedModelQuery, LoggedModelStore,
    MetaStore, ModelAliasStore, ModelVersionStore, MonitorStore, RegisteredModelStore,
    RegistryEventLog, RegistryQuery, RegistryStore, RunColumnStore, RunQuery, RunStore,
    StoreHandle, TrackingStore, WebhookStore,
};

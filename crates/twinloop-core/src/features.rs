//! The feature store's records in the metadata store: applied definitions (versioned) and
//! materialization runs.

/// One applied definition: an entity, source, feature view or feature service.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureObject {
    pub project: String,
    /// `entity`, `source`, `feature_view` or `feature_service`.
    pub kind: String,
    pub name: String,
    /// 1 for the first apply; each change adds one.
    pub version: i64,
    /// The definition as canonical JSON.
    pub spec: String,
    pub create_time: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeatureChange {
    /// Adds the definition, or a new version of it when `spec` differs from the current one.
    Put {
        kind: String,
        name: String,
        spec: String,
    },
    Remove {
        kind: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MaterializationRun {
    pub project: String,
    pub view: String,
    /// The window, in microseconds since the epoch (both ends inclusive).
    pub start_time: i64,
    pub end_time: i64,
    pub source_rows: i64,
    pub entities: i64,
    pub written: i64,
    /// When the run finished, in milliseconds since the epoch.
    pub finish_time: i64,
}

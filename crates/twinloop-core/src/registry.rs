//! Domain types of the model registry, in the MLflow model: registered models hold numbered
//! versions; aliases (`champion`) name one version each; every change is a [`RegistryEvent`].

use crate::tracking::Tag;

/// The stage a version is in (MLflow's legacy stages). Deleted versions keep their number, so
/// numbers are never reused; they carry the internal stage and are hidden from every read.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];
pub const DELETED_STAGE: &str = "Deleted_Internal";

/// Canonical spelling of a stage name given in any case; `None` if it is not a stage.
pub fn canonical_stage(stage: &str) -> Option<&'static str> {
    STAGES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(stage))
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: String,
    pub user_id: String,
    pub current_stage: String,
    pub source: String,
    pub run_id: String,
    pub run_link: String,
    pub status: String,
    pub model_id: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAlias {
    pub alias: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<ModelAlias>,
    /// The newest version in each stage, as MLflow reports it.
    pub latest_versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub description: Option<String>,
    pub run_link: Option<String>,
    pub tags: Vec<Tag>,
    pub user_id: String,
}

/// What changed in the registry. Serving follows `AliasSet` to deploy a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryEventKind {
    ModelCreated,
    ModelRenamed,
    ModelDeleted,
    VersionCreated,
    VersionDeleted,
    StageChanged,
    AliasSet,
    AliasDeleted,
}

impl RegistryEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryEventKind::ModelCreated => "MODEL_CREATED",
            RegistryEventKind::ModelRenamed => "MODEL_RENAMED",
            RegistryEventKind::ModelDeleted => "MODEL_DELETED",
            RegistryEventKind::VersionCreated => "VERSION_CREATED",
            RegistryEventKind::VersionDeleted => "VERSION_DELETED",
            RegistryEventKind::StageChanged => "STAGE_CHANGED",
            RegistryEventKind::AliasSet => "ALIAS_SET",
            RegistryEventKind::AliasDeleted => "ALIAS_DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RegistryEventKind::ModelCreated,
            RegistryEventKind::ModelRenamed,
            RegistryEventKind::ModelDeleted,
            RegistryEventKind::VersionCreated,
            RegistryEventKind::VersionDeleted,
            RegistryEventKind::StageChanged,
            RegistryEventKind::AliasSet,
            RegistryEventKind::AliasDeleted,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One recorded change: who did what to which model, and the value before and after
/// (a version number for aliases, a stage for transitions, a name for renames).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEvent {
    pub id: i64,
    pub timestamp: i64,
    pub actor: String,
    pub kind: RegistryEventKind,
    pub model_name: String,
    pub version: Option<i64>,
    pub alias: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A subscriber to registry events over HTTP: each matching event is POSTed to `url` with an
/// HMAC-SHA256 signature of the body made with `secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub secret: String,
    /// Event kinds to deliver; empty means all.
    pub events: Vec<RegistryEventKind>,
    /// Only events of this model, when set.
    pub model_name: Option<String>,
    pub created_time: i64,
}

impl Webhook {
    pub fn wants(&self, event: &RegistryEvent) -> bool {
        (self.events.is_empty() || self.events.contains(&event.kind))
            && self
                .model_name
                .as_ref()
                .is_none_or(|m| *m == event.model_name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    pub url: String,
    pub secret: String,
    pub events: Vec<RegistryEventKind>,
    pub model_name: Option<String>,
}

/// One delivery attempt, kept so operators can see what was sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: i64,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub delivered: bool,
    pub time: i64,
}

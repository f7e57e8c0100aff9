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
    VersionTagSet,
    VersionTagDeleted,
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
            RegistryEventKind::VersionTagSet => "VERSION_TAG_SET",
            RegistryEventKind::VersionTagDeleted => "VERSION_TAG_DELETED",
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
            RegistryEventKind::VersionTagSet,
            RegistryEventKind::VersionTagDeleted,
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
    /// What the request carried that MLflow's webhook payloads repeat.
    pub detail: EventDetail,
}

/// The parts of a change that a webhook payload repeats and the row no longer shows: the tags
/// and description a model or version was created with, a version's source and run, a tag set
/// or deleted. Empty for the other kinds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventDetail {
    pub tags: Vec<Tag>,
    pub description: Option<String>,
    pub source: Option<String>,
    pub run_id: Option<String>,
    /// The tag set (its value) or deleted (an empty value).
    pub tag: Option<Tag>,
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

/// Every event an MLflow webhook may subscribe to, spelled as MLflow spells them
/// (`entity.action`); the registry fires the model and version ones, a prompt's when the model
/// is a prompt.
pub const MLFLOW_EVENTS: [&str; 15] = [
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
    "prompt.created",
    "prompt_version.created",
    "prompt_tag.set",
    "prompt_tag.deleted",
    "prompt_version_tag.set",
    "prompt_version_tag.deleted",
    "prompt_alias.created",
    "prompt_alias.deleted",
    "budget_policy.exceeded",
];

/// One of [`MLFLOW_EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MlflowEvent(&'static str);

impl MlflowEvent {
    pub fn parse(s: &str) -> Option<MlflowEvent> {
        MLFLOW_EVENTS
            .iter()
            .find(|e| **e == s)
            .map(|e| MlflowEvent(e))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    pub fn entity(self) -> &'static str {
        self.0.split_once('.').map_or(self.0, |(e, _)| e)
    }

    pub fn action(self) -> &'static str {
        self.0.split_once('.').map_or("", |(_, a)| a)
    }
}

/// A webhook made through MLflow's webhook API: named, switchable, subscribed to
/// [`MlflowEvent`]s, signed by MLflow's scheme when it has a secret. It shares the id space and
/// the delivery log of [`Webhook`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlflowWebhook {
    /// The delivery log's key.
    pub id: i64,
    /// The id MLflow's API names it by (a UUID).
    pub webhook_id: String,
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub events: Vec<MlflowEvent>,
    pub secret: Option<String>,
    pub active: bool,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewMlflowWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<MlflowEvent>,
    pub description: Option<String>,
    pub secret: Option<String>,
    pub active: bool,
}

/// The fields an update replaces; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct MlflowWebhookUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<MlflowEvent>>,
    pub secret: Option<String>,
    pub active: Option<bool>,
}

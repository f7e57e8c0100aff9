//! The definition types as written in the repository's YAML.

use serde::{Deserialize, Serialize};

use super::DType;
use super::OfflineStoreConfig;

/// Where a definition was written, for error messages: `features.yaml:12`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Where online rows live, as `load` resolves `twinloop.yaml`'s `online_store`.
#[derive(Debug, Clone, PartialEq)]
pub enum OnlineStoreConfig {
    /// redb files under `path` (default `DIR/.twinloop/online`).
    Embedded { path: Option<String> },
    /// One Redis server, as a `redis://` URL.
    Redis { url: String },
    /// A Redis Cluster, reached through any of its nodes (`redis://` URLs, each with the
    /// credentials).
    RedisCluster { nodes: Vec<String> },
}

impl Default for OnlineStoreConfig {
    fn default() -> Self {
        OnlineStoreConfig::Embedded { path: None }
    }
}

/// `twinloop.yaml`'s settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    pub project: String,
    pub online_store: OnlineStoreConfig,
    /// The metadata store that records applied definitions, materializations and lineage, as a
    /// `--backend-store-uri`; default `sqlite:///DIR/.twinloop/registry.db`. Point it at the
    /// server's store so that the server's lineage graph sees the feature store.
    pub registry: String,
    /// Where training sets are computed (`offline_store`): in process by default.
    pub offline_store: OfflineStoreConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// A file, a directory or a glob, relative to the repository; `s3://` URLs too.
    pub path: String,
    pub timestamp_field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDef {
    pub name: String,
    pub dtype: DType,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TtlText {
    Text(String),
    Number(u64),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlText>,
    pub features: Vec<FeatureDef>,
    /// A DataFusion query over the source (registered as table `source`) that computes the
    /// features; its result must hold the join keys, the timestamp fields and the features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Whether materialization writes this view to the online store.
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub online: bool,
    #[serde(skip)]
    pub origin: Origin,
    /// The TTL in microseconds, parsed from `ttl` when the repository is loaded.
    #[serde(skip)]
    pub ttl_micros: Option<i64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<String>,
    #[serde(skip)]
    pub origin: Origin,
}

/// `view:feature`, resolved against the repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl FeatureRef {
    pub fn parse(text: &str) -> Option<FeatureRef> {
        let (view, feature) = text.split_once(':')?;
        let (view, feature) = (view.trim(), feature.trim());
        (!view.is_empty() && !feature.is_empty() && !feature.contains(':')).then(|| FeatureRef {
            view: view.to_string(),
            feature: feature.to_string(),
        })
    }

    /// The output column name: `feature`, or `view__feature` with full feature names.
    pub fn column_name(&self, full_feature_names: bool) -> String {
        if full_feature_names {
            format!("{}__{}", self.view, self.feature)
        } else {
            self.feature.clone()
        }
    }
}

impl std::fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

impl FeatureView {
    pub fn feature(&self, name: &str) -> Option<&FeatureDef> {
        self.features.iter().find(|f| f.name == name)
    }
}

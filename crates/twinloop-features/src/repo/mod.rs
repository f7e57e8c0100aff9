//! The feature repository: `DIR/twinloop.yaml` (configuration) plus definitions in any `*.yaml`
//! of `DIR`. [`FeatureRepo::load`] parses and cross-checks them; [`crate::schema`] then checks
//! them against the sources' columns.

mod definitions;
mod dtype;
mod duration;
mod load;
mod locate;
mod names;
mod offline_config;
mod online_config;

pub use definitions::{
    Entity, FeatureDef, FeatureRef, FeatureService, FeatureView, OnlineStoreConfig, Origin,
    RepoConfig, Source,
};
pub use dtype::DType;
pub use duration::{format_ttl, parse_ttl};
pub use load::FeatureRepo;
pub(crate) use locate::locate;
pub use offline_config::{ConfValue, OfflineStoreConfig, SparkConfig};

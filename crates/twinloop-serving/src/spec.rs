//! What a deployment is, as users write it (JSON in the native API and `twinloop deploy`).

use serde::{Deserialize, Serialize};
use twinloop_core::names::{InvalidName, check_name};

/// Why a deployment or canary spec cannot be run; the user's to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Name(#[from] InvalidName),
    #[error("a route needs a model")]
    NoModel,
    #[error("route to {0:?}: give a version or an alias, not both")]
    VersionAndAlias(String),
    #[error("a deployment needs at least one route")]
    NoRoutes,
    #[error("every route has weight 0: no traffic could be served")]
    NoTraffic,
    #[error("batching.max_batch_size must be at least 1")]
    NoBatch,
    #[error("canary steps are percentages between 1 and 100")]
    StepOutOfRange,
    #[error("canary steps must increase")]
    StepsNotIncreasing,
    #[error("canary interval_s must be positive")]
    Interval,
}

/// The alias a route naming neither a version nor an alias follows.
pub const DEFAULT_ALIAS: &str = "champion";

/// One way traffic can go: a registered model at a fixed version or following an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Share of traffic, relative to the other routes' weights.
    #[serde(default = "full_weight")]
    pub weight: u32,
}

fn full_weight() -> u32 {
    100
}

impl RouteSpec {
    /// `models:/NAME/VERSION` or `models:/NAME@ALIAS`.
    pub fn uri(&self) -> String {
        match &self.version {
            Some(v) => format!("models:/{}/{v}", self.model),
            None => format!(
                "models:/{}@{}",
                self.model,
                self.alias.as_deref().unwrap_or(DEFAULT_ALIAS)
            ),
        }
    }

    /// The alias this route follows: the one it names, `champion` when it names neither an
    /// alias nor a version, none when it is pinned.
    pub fn followed_alias(&self) -> Option<&str> {
        match (&self.version, &self.alias) {
            (Some(_), _) => None,
            (None, alias) => Some(alias.as_deref().unwrap_or(DEFAULT_ALIAS)),
        }
    }

    /// Whether this route follows `alias` of `model`.
    pub fn follows(&self, model: &str, alias: &str) -> bool {
        self.model == model && self.followed_alias() == Some(alias)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        if self.model.is_empty() {
            return Err(SpecError::NoModel);
        }
        if self.version.is_some() && self.alias.is_some() {
            return Err(SpecError::VersionAndAlias(self.model.clone()));
        }
        Ok(())
    }
}

/// Dynamic batching: concurrent requests merged into one run of at most `max_batch_size` rows,
/// waiting at most `max_queue_delay_us` for company. `max_batch_size` also bounds one request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSpec {
    #[serde(default = "default_max_batch")]
    pub max_batch_size: usize,
    /// 0 turns merging off (each request runs alone).
    #[serde(default)]
    pub max_queue_delay_us: u64,
}

fn default_max_batch() -> usize {
    1024
}

impl Default for BatchingSpec {
    fn default() -> Self {
        BatchingSpec {
            max_batch_size: default_max_batch(),
            max_queue_delay_us: 0,
        }
    }
}

/// A canary: the candidate takes `steps` percent of traffic in turn, `interval_s` each, and the
/// deployment rolls back by itself when a gate fails on the candidate's traffic of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    pub candidate: RouteSpec,
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    #[serde(default = "default_interval")]
    pub interval_s: f64,
    /// Largest tolerated share of failed candidate requests in a step (0.0–1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    /// On promotion, point this registry alias at the candidate and leave the deployment
    /// following the alias: one change, so the alias move is not heard as a second swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_promote_alias: Option<String>,
}

fn default_steps() -> Vec<u32> {
    vec![5, 25, 50, 100]
}

fn default_interval() -> f64 {
    60.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// The V2 model name clients call.
    pub name: String,
    pub routes: Vec<RouteSpec>,
    /// Gets a copy of every request; its answers are logged, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RouteSpec>,
    /// A request parameter (or input) whose value pins a caller to one route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_key: Option<String>,
    /// A feature service whose online features are joined to requests before inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_service: Option<String>,
    #[serde(default)]
    pub batching: BatchingSpec,
}

impl DeploymentSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        check_name("deployment", &self.name)?;
        if self.routes.is_empty() {
            return Err(SpecError::NoRoutes);
        }
        for r in self.routes.iter().chain(&self.shadow) {
            r.validate()?;
        }
        if self.routes.iter().all(|r| r.weight == 0) {
            return Err(SpecError::NoTraffic);
        }
        if self.batching.max_batch_size == 0 {
            return Err(SpecError::NoBatch);
        }
        Ok(())
    }
}

impl CanarySpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        self.candidate.validate()?;
        if self.steps.is_empty() || self.steps.iter().any(|&s| s == 0 || s > 100) {
            return Err(SpecError::StepOutOfRange);
        }
        if !self.steps.windows(2).all(|w| w[0] < w[1]) {
            return Err(SpecError::StepsNotIncreasing);
        }
        if self.interval_s.is_nan() || self.interval_s <= 0.0 {
            return Err(SpecError::Interval);
        }
        Ok(())
    }
}

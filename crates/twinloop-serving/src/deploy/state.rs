//! What a deployment is doing, as `twinloop deploy status` shows it and the store keeps it.

use serde::{Deserialize, Serialize};

use crate::spec::{CanarySpec, DeploymentSpec};

/// A route as it resolved: the version actually answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingRoute {
    pub model: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryState {
    pub spec: CanarySpec,
    /// `running`, `promoted` or `rolled_back`.
    pub status: String,
    /// The candidate's current share of traffic, in percent.
    pub percent: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the deployment was before the canary, restored by a rollback.
    pub baseline: DeploymentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time_ms: i64,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentState {
    /// `ready`, or `failed` when the deployment could not start at all.
    pub status: String,
    /// Why the last change failed (what was serving before goes on serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub serving: Vec<ServingRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ServingRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryState>,
    /// Earlier specs, newest last: what `rollback` returns to.
    #[serde(default)]
    pub history: Vec<DeploymentSpec>,
    #[serde(default)]
    pub events: Vec<Event>,
}

const KEPT_EVENTS: usize = 50;
const KEPT_HISTORY: usize = 20;

impl DeploymentState {
    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(%message, "deployment");
        self.events.push(Event {
            time_ms: twinloop_core::time::now_ms(),
            message,
        });
        if self.events.len() > KEPT_EVENTS {
            self.events.remove(0);
        }
    }

    pub fn remember(&mut self, spec: DeploymentSpec) {
        self.history.push(spec);
        if self.history.len() > KEPT_HISTORY {
            self.history.remove(0);
        }
    }
}

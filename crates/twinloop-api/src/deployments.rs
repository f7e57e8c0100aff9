//! Wire types of the native API: deployments (`/api/twinloop/v1/deployments`).
//!
//! Fields are declared in alphabetical order: the server used to build these bodies as
//! `serde_json::Value`, whose objects sort their keys, and the bytes stay as they were.

use serde::{Deserialize, Serialize};

/// One way traffic can go: a registered model at a fixed version or following an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Share of traffic, relative to the other routes' weights.
    #[serde(default = "full_weight")]
    pub weight: u32,
}

fn full_weight() -> u32 {
    100
}

/// Dynamic batching: concurrent requests merged into one run of at most `max_batch_size` rows,
/// waiting at most `max_queue_delay_us` for company.
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

/// The body of `POST /deployments`, and the `spec` of a deployment's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    #[serde(default)]
    pub batching: BatchingSpec,
    /// A feature service whose online features are joined to requests before inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_service: Option<String>,
    /// The V2 model name clients call.
    pub name: String,
    pub routes: Vec<RouteSpec>,
    /// Gets a copy of every request; its answers are logged, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RouteSpec>,
    /// A request parameter (or input) whose value pins a caller to one route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_key: Option<String>,
}

/// The body of `POST /deployments/{name}/traffic`: the new routes, replacing all others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    pub routes: Vec<RouteSpec>,
}

/// The body of `POST /deployments/{name}/canary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    pub candidate: RouteSpec,
    #[serde(default = "default_interval")]
    pub interval_s: f64,
    /// Largest tolerated share of failed candidate requests in a step (0.0–1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
}

fn default_steps() -> Vec<u32> {
    vec![5, 25, 50, 100]
}

fn default_interval() -> f64 {
    60.0
}

/// A route as it resolved: the version actually answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub model: String,
    pub version: String,
    pub weight: u32,
}

/// Where a canary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStatus {
    Running,
    Promoted,
    RolledBack,
}

impl CanaryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryStatus::Running => "running",
            CanaryStatus::Promoted => "promoted",
            CanaryStatus::RolledBack => "rolled_back",
        }
    }
}

/// What the candidate did during one step of a canary and how its gates judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryStep {
    /// `errors / requests`; absent when the step saw no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    pub errors: u64,
    /// The gates in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    /// Absent when the step saw no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    pub passed: bool,
    /// The candidate's share of traffic during the step, in percent.
    pub percent: u32,
    /// Why the step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryState {
    /// What the deployment was before the canary, restored by a rollback.
    pub baseline: DeploymentSpec,
    /// The candidate's current share of traffic, in percent.
    pub percent: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub spec: CanarySpec,
    pub status: CanaryStatus,
    /// The steps judged so far, in order.
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
}

/// Something that happened to a deployment, for people reading its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentEvent {
    pub message: String,
    pub time_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryState>,
    /// Why the last change failed (what was serving before goes on serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub events: Vec<DeploymentEvent>,
    /// Earlier specs, newest last: what `rollback` returns to.
    #[serde(default)]
    pub history: Vec<DeploymentSpec>,
    pub serving: Vec<ServingRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ServingRoute>,
    /// `ready`, or `failed` when the deployment could not start at all.
    pub status: String,
}

/// One deployment's status: the answer of every call that changes or reads one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    /// What serves now; `null` when the deployment could not start.
    pub spec: Option<DeploymentSpec>,
    pub state: DeploymentState,
}

/// The answer of `GET /deployments`, sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn a_deployment_with_a_canary_round_trips() {
        round_trips::<Deployment>(
            r#"{"name":"fraud","spec":{"batching":{"max_batch_size":1024,"max_queue_delay_us":0},"name":"fraud","routes":[{"model":"m","version":"1","weight":9000},{"alias":"challenger","model":"m","weight":1000}],"sticky_key":"user"},"state":{"canary":{"baseline":{"batching":{"max_batch_size":1024,"max_queue_delay_us":0},"name":"fraud","routes":[{"model":"m","version":"1","weight":100}]},"percent":10,"spec":{"candidate":{"alias":"challenger","model":"m","weight":100},"interval_s":60.0,"max_error_rate":0.1,"steps":[10,100]},"status":"running","steps":[{"error_rate":0.008333,"errors":1,"max_error_rate":0.1,"p99_ms":3.2,"passed":true,"percent":10,"requests":120},{"errors":0,"passed":true,"percent":10,"requests":0},{"error_rate":0.5,"errors":5,"max_p99_ms":20.0,"p99_ms":80.0,"passed":false,"percent":10,"reason":"too many errors","requests":10}]},"events":[{"message":"created","time_ms":1764300000000}],"history":[{"batching":{"max_batch_size":1024,"max_queue_delay_us":0},"name":"fraud","routes":[{"model":"m","version":"1","weight":100}]}],"serving":[{"model":"m","version":"1","weight":9000},{"alias":"challenger","model":"m","version":"2","weight":1000}],"status":"ready"}}"#,
        );
    }

    #[test]
    fn a_failed_deployment_round_trips() {
        round_trips::<DeploymentList>(
            r#"{"deployments":[{"name":"a","spec":null,"state":{"canary":{"baseline":{"batching":{"max_batch_size":8,"max_queue_delay_us":500},"feature_service":"fs","name":"a","routes":[{"model":"m","weight":100}],"shadow":{"model":"s","version":"3","weight":100}},"percent":0,"reason":"rollback requested","spec":{"candidate":{"model":"m","version":"2","weight":100},"interval_s":0.5,"max_p99_ms":50.0,"steps":[5,25,50,100]},"status":"rolled_back","steps":[]},"error":"cannot load models:/m@champion: gone","events":[],"history":[],"serving":[],"shadow":{"model":"s","version":"3","weight":100},"status":"failed"}}]}"#,
        );
        round_trips::<DeploymentList>(r#"{"deployments":[]}"#);
    }

    #[test]
    fn requests_round_trip_and_take_defaults() {
        round_trips::<Traffic>(r#"{"routes":[{"model":"m","version":"3","weight":90}]}"#);
        let spec: DeploymentSpec =
            serde_json::from_str(r#"{"name":"d","routes":[{"model":"m"}]}"#).unwrap();
        assert_eq!(
            (spec.batching, spec.routes[0].weight),
            (BatchingSpec::default(), 100)
        );
        let canary: CanarySpec = serde_json::from_str(r#"{"candidate":{"model":"m"}}"#).unwrap();
        assert_eq!(
            (canary.steps, canary.interval_s),
            (vec![5, 25, 50, 100], 60.0)
        );
        let unknown = serde_json::from_str::<DeploymentSpec>(r#"{"name":"d","routes":[],"x":1}"#);
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `x`")
        );
    }
}

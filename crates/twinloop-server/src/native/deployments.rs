//! `/api/twinloop/v1/deployments`: thin handlers over the serving crate's DeploymentManager.
//! The wire types are `twinloop_api::deployments`; this front maps them to and from serving's
//! domain types, field by field, so that neither side's changes leak into the other.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use twinloop_api::Empty;
use twinloop_api::deployments as api;
use twinloop_core::ErrorKind;
use twinloop_serving::deploy::{
    CanaryState, CanaryStatus, CanaryStep, DeploymentEvent, DeploymentState, DeploymentStatus,
    ServingRoute,
};
use twinloop_serving::engine::ServeError;
use twinloop_serving::spec::{BatchingSpec, CanarySpec, DeploymentSpec, RouteSpec};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

type S = State<Arc<AppState>>;

fn api_error(e: ServeError) -> ApiError {
    match e {
        ServeError::NotFound(m) => ApiError::of_kind(ErrorKind::NotFound, m),
        ServeError::Invalid(m) => ApiError::invalid(m),
        ServeError::Unavailable(m) => ApiError::unavailable(m),
        ServeError::Failed(m) => ApiError::of_kind(ErrorKind::Internal, m),
        e @ ServeError::Internal(_) => ApiError::of_kind(ErrorKind::Internal, e.to_string()),
    }
}

pub async fn create(
    State(s): S,
    JsonBody(spec): JsonBody<api::DeploymentSpec>,
) -> ApiResult<(StatusCode, Json<api::Deployment>)> {
    let status = s
        .serving
        .deployments
        .create(wire::spec_in(spec))
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(wire::deployment(status))))
}

pub async fn list(State(s): S) -> Json<api::DeploymentList> {
    let all = s.serving.deployments.list().await;
    Json(api::DeploymentList {
        deployments: all.into_iter().map(wire::deployment).collect(),
    })
}

pub async fn get(State(s): S, Path(name): Path<String>) -> ApiResult<Json<api::Deployment>> {
    answer(s.serving.deployments.status(&name).await)
}

pub async fn delete(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Empty>> {
    s.serving
        .deployments
        .delete(&name)
        .await
        .map_err(api_error)?;
    Ok(Json(Empty {}))
}

pub async fn traffic(
    State(s): S,
    Path(name): Path<String>,
    JsonBody(t): JsonBody<api::Traffic>,
) -> ApiResult<Json<api::Deployment>> {
    let routes = t.routes.into_iter().map(wire::route_in).collect();
    answer(s.serving.deployments.set_traffic(&name, routes).await)
}

pub async fn canary(
    State(s): S,
    Path(name): Path<String>,
    JsonBody(c): JsonBody<api::CanarySpec>,
) -> ApiResult<Json<api::Deployment>> {
    answer(
        s.serving
            .deployments
            .canary(&name, wire::canary_in(c))
            .await,
    )
}

pub async fn promote(State(s): S, Path(name): Path<String>) -> ApiResult<Json<api::Deployment>> {
    answer(s.serving.deployments.promote(&name).await)
}

pub async fn rollback(State(s): S, Path(name): Path<String>) -> ApiResult<Json<api::Deployment>> {
    answer(s.serving.deployments.rollback(&name).await)
}

fn answer(status: Result<DeploymentStatus, ServeError>) -> ApiResult<Json<api::Deployment>> {
    status.map(|s| Json(wire::deployment(s))).map_err(api_error)
}

/// Serving's domain types to and from the wire. Functions rather than `From` impls: both sides
/// are other crates' types.
mod wire {
    use super::*;

    pub fn route_in(r: api::RouteSpec) -> RouteSpec {
        RouteSpec {
            model: r.model,
            version: r.version,
            alias: r.alias,
            weight: r.weight,
        }
    }

    pub fn spec_in(s: api::DeploymentSpec) -> DeploymentSpec {
        DeploymentSpec {
            name: s.name,
            routes: s.routes.into_iter().map(route_in).collect(),
            shadow: s.shadow.map(route_in),
            sticky_key: s.sticky_key,
            feature_service: s.feature_service,
            batching: BatchingSpec {
                max_batch_size: s.batching.max_batch_size,
                max_queue_delay_us: s.batching.max_queue_delay_us,
            },
        }
    }

    pub fn canary_in(c: api::CanarySpec) -> CanarySpec {
        CanarySpec {
            candidate: route_in(c.candidate),
            steps: c.steps,
            interval_s: c.interval_s,
            max_error_rate: c.max_error_rate,
            max_p99_ms: c.max_p99_ms,
            on_promote_alias: None,
        }
    }

    fn route_out(r: RouteSpec) -> api::RouteSpec {
        api::RouteSpec {
            alias: r.alias,
            model: r.model,
            version: r.version,
            weight: r.weight,
        }
    }

    fn spec_out(s: DeploymentSpec) -> api::DeploymentSpec {
        api::DeploymentSpec {
            batching: api::BatchingSpec {
                max_batch_size: s.batching.max_batch_size,
                max_queue_delay_us: s.batching.max_queue_delay_us,
            },
            feature_service: s.feature_service,
            name: s.name,
            routes: s.routes.into_iter().map(route_out).collect(),
            shadow: s.shadow.map(route_out),
            sticky_key: s.sticky_key,
        }
    }

    fn canary_spec_out(c: CanarySpec) -> api::CanarySpec {
        api::CanarySpec {
            candidate: route_out(c.candidate),
            interval_s: c.interval_s,
            max_error_rate: c.max_error_rate,
            max_p99_ms: c.max_p99_ms,
            steps: c.steps,
        }
    }

    fn serving_out(r: ServingRoute) -> api::ServingRoute {
        api::ServingRoute {
            alias: r.alias,
            model: r.model,
            version: r.version,
            weight: r.weight,
        }
    }

    fn status_out(s: CanaryStatus) -> api::CanaryStatus {
        match s {
            CanaryStatus::Running => api::CanaryStatus::Running,
            CanaryStatus::Promoted => api::CanaryStatus::Promoted,
            CanaryStatus::RolledBack => api::CanaryStatus::RolledBack,
        }
    }

    fn step_out(s: CanaryStep) -> api::CanaryStep {
        api::CanaryStep {
            error_rate: s.error_rate,
            errors: s.errors,
            max_error_rate: s.max_error_rate,
            max_p99_ms: s.max_p99_ms,
            p99_ms: s.p99_ms,
            passed: s.passed,
            percent: s.percent,
            reason: s.reason,
            requests: s.requests,
        }
    }

    fn canary_out(c: CanaryState) -> api::CanaryState {
        api::CanaryState {
            baseline: spec_out(c.baseline),
            percent: c.percent,
            reason: c.reason,
            spec: canary_spec_out(c.spec),
            status: status_out(c.status),
            steps: c.steps.into_iter().map(step_out).collect(),
        }
    }

    fn event_out(e: DeploymentEvent) -> api::DeploymentEvent {
        api::DeploymentEvent {
            message: e.message,
            time_ms: e.time_ms,
        }
    }

    fn state_out(s: DeploymentState) -> api::DeploymentState {
        api::DeploymentState {
            canary: s.canary.map(canary_out),
            error: s.error,
            events: s.events.into_iter().map(event_out).collect(),
            history: s.history.into_iter().map(spec_out).collect(),
            serving: s.serving.into_iter().map(serving_out).collect(),
            shadow: s.shadow.map(serving_out),
            status: s.status,
        }
    }

    pub fn deployment(d: DeploymentStatus) -> api::Deployment {
        api::Deployment {
            name: d.name,
            spec: d.spec.map(spec_out),
            state: state_out(d.state),
        }
    }
}

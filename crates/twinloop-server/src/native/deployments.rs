//! `/api/twinloop/v1/deployments`: thin handlers over the serving crate's DeploymentManager.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_serving::engine::ServeError;
use twinloop_serving::spec::{CanarySpec, DeploymentSpec, RouteSpec};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;

type S = State<Arc<AppState>>;

fn api_error(e: ServeError) -> ApiError {
    match e {
        ServeError::NotFound(m) => {
            ApiError::with_status(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", m)
        }
        ServeError::Invalid(m) => ApiError::invalid(m),
        ServeError::Unavailable(m) => ApiError::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            m,
        ),
        ServeError::Failed(m) => {
            ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", m)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    routes: Vec<RouteSpec>,
}

pub async fn create(
    State(s): S,
    JsonBody(spec): JsonBody<DeploymentSpec>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let status = s.deployments.create(spec).await.map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(status)))
}

pub async fn list(State(s): S) -> Json<Value> {
    Json(s.deployments.list().await)
}

pub async fn get(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(s.deployments.status(&name).await.map_err(api_error)?))
}

pub async fn delete(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    s.deployments.delete(&name).await.map_err(api_error)?;
    Ok(Json(json!({})))
}

pub async fn traffic(
    State(s): S,
    Path(name): Path<String>,
    JsonBody(t): JsonBody<Traffic>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        s.deployments
            .set_traffic(&name, t.routes)
            .await
            .map_err(api_error)?,
    ))
}

pub async fn canary(
    State(s): S,
    Path(name): Path<String>,
    JsonBody(c): JsonBody<CanarySpec>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        s.deployments.canary(&name, c).await.map_err(api_error)?,
    ))
}

pub async fn promote(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(s.deployments.promote(&name).await.map_err(api_error)?))
}

pub async fn rollback(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(
        s.deployments.rollback(&name).await.map_err(api_error)?,
    ))
}

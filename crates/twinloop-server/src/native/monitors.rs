//! `/api/twinloop/v1/monitors` and `/labels`: thin handlers over twinloop-watch's Monitors.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use twinloop_watch::MonitorSpec;
use twinloop_watch::runner::MonitorError;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};

type S = State<Arc<AppState>>;

fn api_error(e: MonitorError) -> ApiError {
    match e {
        MonitorError::NotFound(m) => {
            ApiError::with_status(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", m)
        }
        MonitorError::Invalid(m) => ApiError::invalid(m),
        MonitorError::Failed(m) => {
            ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", m)
        }
    }
}

pub async fn create(
    State(s): S,
    JsonBody(spec): JsonBody<MonitorSpec>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.monitors.create(spec).await.map_err(api_error)?),
    ))
}

pub async fn list(State(s): S) -> Json<Value> {
    Json(s.monitors.list().await)
}

/// `?windows=N`: how many of the latest closed windows to return (default 10).
pub async fn get(State(s): S, Path(name): Path<String>, q: QueryParams) -> ApiResult<Json<Value>> {
    let windows = match q.opt_i64("windows")? {
        None => 10,
        Some(n) if (0..=1000).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "windows={n}: give 0 to 1000 windows"
            )));
        }
    };
    Ok(Json(
        s.monitors.status(&name, windows).await.map_err(api_error)?,
    ))
}

pub async fn delete(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    s.monitors.delete(&name).await.map_err(api_error)?;
    Ok(Json(json!({})))
}

pub async fn alerts(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(s.monitors.alerts(&name).await.map_err(api_error)?))
}

pub async fn events(State(s): S, q: QueryParams) -> ApiResult<Json<Value>> {
    let after = match q.get("after") {
        Some(a) => a
            .parse::<i64>()
            .map_err(|_| ApiError::invalid(format!("after={a:?} is not an event id")))?,
        None => 0,
    };
    Ok(Json(s.monitors.events(after).await.map_err(api_error)?))
}

/// `[{request_id, label, timestamp?}]`, or `{"labels": [...]}`.
pub async fn labels(State(s): S, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the labels are not valid JSON: {e}")))?;
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("labels") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::invalid(
                    "send a list of {request_id, label, timestamp?}, or {\"labels\": [...]}",
                ));
            }
        },
        _ => {
            return Err(ApiError::invalid(
                "send a list of {request_id, label, timestamp?}",
            ));
        }
    };
    let accepted = s.monitors.put_labels(items).await.map_err(api_error)?;
    Ok(Json(json!({"accepted": accepted})))
}

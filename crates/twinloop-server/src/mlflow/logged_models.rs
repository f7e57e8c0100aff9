use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::tracking::{LoggedModel, LoggedModelStatus, NewLoggedModel};
use twinloop_meta::{DatasetFilter, LoggedModelOrder, LoggedModelQuery};

use super::json::*;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryParams};
use crate::wire::*;

type S = State<Arc<AppState>>;

const DEFAULT_MAX_RESULTS: i64 = 100;

#[derive(Deserialize)]
pub struct Create {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    name: Option<String>,
    source_run_id: Option<String>,
    model_type: Option<String>,
    #[serde(default)]
    params: Vec<WireTag>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

pub async fn create(
    State(s): S,
    JsonBody(req): JsonBody<Create>,
) -> ApiResult<Json<One<LoggedModel>>> {
    let model = s
        .store
        .create_logged_model(NewLoggedModel {
            experiment_id: required_str(req.experiment_id, "experiment_id")?,
            name: req.name,
            source_run_id: req.source_run_id.filter(|s| !s.is_empty()),
            model_type: req.model_type,
            params: into_tags(req.params, "params")?,
            tags: into_tags(req.tags, "tags")?,
        })
        .await?;
    Ok(one("model", model))
}

pub async fn get(
    State(s): S,
    Path(model_id): Path<String>,
    q: QueryParams,
) -> ApiResult<Json<One<LoggedModel>>> {
    let model = s
        .store
        .get_logged_model(&model_id, q.flag("allow_deleted"))
        .await?;
    Ok(one("model", model))
}

#[derive(Deserialize)]
pub struct Finalize {
    #[serde(default, deserialize_with = "de_opt_enum")]
    status: Option<String>,
}

pub async fn finalize(
    State(s): S,
    Path(model_id): Path<String>,
    JsonBody(req): JsonBody<Finalize>,
) -> ApiResult<Json<One<LoggedModel>>> {
    let status = LoggedModelStatus::parse(&required_str(req.status, "status")?)?;
    let model = s.store.finalize_logged_model(&model_id, status).await?;
    Ok(one("model", model))
}

pub async fn delete(State(s): S, Path(model_id): Path<String>) -> ApiResult<Json<Value>> {
    s.store.delete_logged_model(&model_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Params {
    #[serde(default)]
    params: Vec<WireTag>,
}

pub async fn log_params(
    State(s): S,
    Path(model_id): Path<String>,
    JsonBody(req): JsonBody<Params>,
) -> ApiResult<Json<Value>> {
    s.store
        .log_logged_model_params(&model_id, &into_tags(req.params, "params")?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Tags {
    #[serde(default)]
    tags: Vec<WireTag>,
}

pub async fn set_tags(
    State(s): S,
    Path(model_id): Path<String>,
    JsonBody(req): JsonBody<Tags>,
) -> ApiResult<Json<Value>> {
    s.store
        .set_logged_model_tags(&model_id, &into_tags(req.tags, "tags")?)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_tag(
    State(s): S,
    Path((model_id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    s.store.delete_logged_model_tag(&model_id, &key).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct WireOrder {
    field_name: Option<String>,
    ascending: Option<bool>,
    dataset_name: Option<String>,
}

#[derive(Deserialize)]
pub struct WireDatasetFilter {
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default, deserialize_with = "de_ids")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default)]
    datasets: Vec<WireDatasetFilter>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<WireOrder>,
    page_token: Option<String>,
}

pub async fn search(
    State(s): S,
    JsonBody(req): JsonBody<Search>,
) -> ApiResult<Json<Listing<LoggedModel>>> {
    let order_by = req
        .order_by
        .into_iter()
        .map(|o| {
            Ok(LoggedModelOrder {
                field_name: required_str(o.field_name, "order_by.field_name")?,
                ascending: o.ascending.unwrap_or(true),
                dataset_name: o.dataset_name.filter(|d| !d.is_empty()),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let query = LoggedModelQuery {
        experiment_ids: req.experiment_ids,
        filter: req.filter,
        // An empty name is the store's to refuse, in MLflow's words.
        datasets: req
            .datasets
            .into_iter()
            .map(|d| DatasetFilter {
                dataset_name: d.dataset_name.unwrap_or_default(),
                dataset_digest: d.dataset_digest.filter(|d| !d.is_empty()),
            })
            .collect(),
        order_by,
        max_results: req.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
        page_token: req.page_token,
    };
    let page = s.store.search_logged_models(&query).await?;
    Ok(listing("models", page))
}

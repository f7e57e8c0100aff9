use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::tracking::{Experiment, Tag, ViewType};
use twinloop_meta::ExperimentQuery;

use super::json::*;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryParams};
use crate::wire::*;

type S = State<Arc<AppState>>;

const DEFAULT_MAX_RESULTS: i64 = 1000;

#[derive(Deserialize)]
pub struct Create {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

pub async fn create(State(s): S, JsonBody(req): JsonBody<Create>) -> ApiResult<Json<Value>> {
    let name = required_str(req.name, "name")?;
    let tags = into_tags(req.tags, "tags")?;
    if let Some(location) = req.artifact_location.as_deref().filter(|l| !l.is_empty()) {
        // MLflow's own checks first, so its messages are the ones its clients see. The server
        // only records the location; whatever reads it later judges it again.
        twinloop_meta::validate_artifact_location(location)?;
        s.locations.check_recorded(location)?;
    }
    let id = s
        .store
        .create_experiment(&name, req.artifact_location.as_deref(), &tags)
        .await?;
    Ok(Json(json!({"experiment_id": id})))
}

pub async fn get(State(s): S, q: QueryParams) -> ApiResult<Json<One<Experiment>>> {
    let experiment = s.store.get_experiment(q.required("experiment_id")?).await?;
    Ok(one("experiment", experiment))
}

pub async fn get_by_name(State(s): S, q: QueryParams) -> ApiResult<Json<One<Experiment>>> {
    let experiment = s
        .store
        .get_experiment_by_name(q.required("experiment_name")?)
        .await?;
    Ok(one("experiment", experiment))
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_enum")]
    view_type: Option<String>,
    page_token: Option<String>,
}

async fn search(s: &AppState, req: Search) -> ApiResult<Json<Listing<Experiment>>> {
    let query = ExperimentQuery {
        filter: req.filter,
        order_by: req.order_by,
        view_type: req
            .view_type
            .as_deref()
            .map(ViewType::parse)
            .transpose()?
            .unwrap_or_default(),
        max_results: req.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
        page_token: req.page_token,
    };
    let page = s.store.search_experiments(&query).await?;
    Ok(listing("experiments", page))
}

pub async fn search_post(
    State(s): S,
    JsonBody(req): JsonBody<Search>,
) -> ApiResult<Json<Listing<Experiment>>> {
    search(&s, req).await
}

pub async fn search_get(State(s): S, q: QueryParams) -> ApiResult<Json<Listing<Experiment>>> {
    let req = Search {
        max_results: q.opt_i64("max_results")?,
        filter: q.get("filter").map(String::from),
        order_by: q.get_all("order_by"),
        view_type: q.get("view_type").map(String::from),
        page_token: q.get("page_token").map(String::from),
    };
    search(&s, req).await
}

#[derive(Deserialize)]
pub struct Update {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub async fn update(State(s): S, JsonBody(req): JsonBody<Update>) -> ApiResult<Json<Value>> {
    let id = required_str(req.experiment_id, "experiment_id")?;
    if let Some(name) = req.new_name {
        s.store.rename_experiment(&id, &name).await?;
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ById {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
}

pub async fn delete(State(s): S, JsonBody(req): JsonBody<ById>) -> ApiResult<Json<Value>> {
    s.store
        .delete_experiment(&required_str(req.experiment_id, "experiment_id")?)
        .await?;
    Ok(Json(json!({})))
}

pub async fn restore(State(s): S, JsonBody(req): JsonBody<ById>) -> ApiResult<Json<Value>> {
    s.store
        .restore_experiment(&required_str(req.experiment_id, "experiment_id")?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SetTag {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_tag(State(s): S, JsonBody(req): JsonBody<SetTag>) -> ApiResult<Json<Value>> {
    let id = required_str(req.experiment_id, "experiment_id")?;
    let tag = Tag::new(required_str(req.key, "key")?, req.value.unwrap_or_default());
    s.store.set_experiment_tag(&id, &tag).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct DeleteTag {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    key: Option<String>,
}

pub async fn delete_tag(State(s): S, JsonBody(req): JsonBody<DeleteTag>) -> ApiResult<Json<Value>> {
    let id = required_str(req.experiment_id, "experiment_id")?;
    s.store
        .delete_experiment_tag(&id, &required_str(req.key, "key")?)
        .await?;
    Ok(Json(json!({})))
}

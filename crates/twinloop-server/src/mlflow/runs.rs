use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::tracking::*;
use twinloop_meta::RunQuery;

use super::history;
use super::json::*;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, missing};
use crate::wire::*;

type S = State<Arc<AppState>>;

const DEFAULT_MAX_RESULTS: i64 = 1000;

/// `run_id` is current, `run_uuid` deprecated; the client sends one or both.
fn run_id(run_id: Option<String>, run_uuid: Option<String>) -> Result<String, ApiError> {
    run_id
        .filter(|s| !s.is_empty())
        .or(run_uuid.filter(|s| !s.is_empty()))
        .ok_or_else(|| missing("run_id"))
}

fn ok() -> Json<Value> {
    Json(json!({}))
}

#[derive(Deserialize)]
pub struct Create {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

pub async fn create(State(s): S, JsonBody(req): JsonBody<Create>) -> ApiResult<Json<One<Run>>> {
    let run = s
        .store
        .create_run(NewRun {
            experiment_id: req.experiment_id.unwrap_or_default(),
            user_id: req.user_id.unwrap_or_default(),
            run_name: req.run_name,
            start_time: req.start_time,
            tags: into_tags(req.tags, "tags")?,
        })
        .await?;
    Ok(one("run", run))
}

pub async fn get(State(s): S, q: QueryParams) -> ApiResult<Json<One<Run>>> {
    let id = run_id(
        q.get("run_id").map(String::from),
        q.get("run_uuid").map(String::from),
    )?;
    let run = s.store.get_run(&id).await?;
    Ok(one("run", run))
}

#[derive(Deserialize)]
pub struct Update {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default, deserialize_with = "de_opt_enum")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

pub async fn update(State(s): S, JsonBody(req): JsonBody<Update>) -> ApiResult<Json<One<RunInfo>>> {
    let id = run_id(req.run_id, req.run_uuid)?;
    let update = RunUpdate {
        status: req.status.as_deref().map(RunStatus::parse).transpose()?,
        end_time: req.end_time,
        run_name: req.run_name,
    };
    let info = s.store.update_run(&id, update).await?;
    Ok(one("run_info", info))
}

#[derive(Deserialize)]
pub struct ById {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

pub async fn delete(State(s): S, JsonBody(req): JsonBody<ById>) -> ApiResult<Json<Value>> {
    s.store
        .delete_run(&run_id(req.run_id, req.run_uuid)?)
        .await?;
    Ok(ok())
}

pub async fn restore(State(s): S, JsonBody(req): JsonBody<ById>) -> ApiResult<Json<Value>> {
    s.store
        .restore_run(&run_id(req.run_id, req.run_uuid)?)
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default, deserialize_with = "de_ids")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_enum")]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search(State(s): S, JsonBody(req): JsonBody<Search>) -> ApiResult<Json<Listing<Run>>> {
    let query = RunQuery {
        experiment_ids: req.experiment_ids,
        filter: req.filter,
        order_by: req.order_by,
        view_type: req
            .run_view_type
            .as_deref()
            .map(ViewType::parse)
            .transpose()?
            .unwrap_or_default(),
        max_results: req.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
        page_token: req.page_token,
    };
    let page = s.store.search_runs(&query).await?;
    Ok(listing("runs", page))
}

pub async fn log_metric(
    State(s): S,
    JsonBody(mut req): JsonBody<WireMetric>,
) -> ApiResult<Json<Value>> {
    let id = run_id(req.run_id.take(), req.run_uuid.take())?;
    let metric = req.into_metric(String::new)?;
    s.store.log_batch(&id, &[metric], &[], &[]).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct KeyValue {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

impl KeyValue {
    fn split(self) -> Result<(String, Tag), ApiError> {
        let id = run_id(self.run_id, self.run_uuid)?;
        let key = required_str(self.key, "key")?;
        Ok((id, Tag::new(key, self.value.unwrap_or_default())))
    }
}

pub async fn log_param(State(s): S, JsonBody(req): JsonBody<KeyValue>) -> ApiResult<Json<Value>> {
    let (id, param) = req.split()?;
    s.store.log_batch(&id, &[], &[param], &[]).await?;
    Ok(ok())
}

pub async fn set_tag(State(s): S, JsonBody(req): JsonBody<KeyValue>) -> ApiResult<Json<Value>> {
    let (id, tag) = req.split()?;
    s.store.log_batch(&id, &[], &[], &[tag]).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct DeleteTag {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
}

pub async fn delete_tag(State(s): S, JsonBody(req): JsonBody<DeleteTag>) -> ApiResult<Json<Value>> {
    let id = run_id(req.run_id, req.run_uuid)?;
    s.store
        .delete_tag(&id, &required_str(req.key, "key")?)
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct LogBatch {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<WireMetric>,
    #[serde(default)]
    params: Vec<WireTag>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

pub async fn log_batch(State(s): S, JsonBody(req): JsonBody<LogBatch>) -> ApiResult<Json<Value>> {
    let id = run_id(req.run_id, req.run_uuid)?;
    let metrics = req
        .metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_metric(|| format!("metrics[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let params = into_tags(req.params, "params")?;
    let tags = into_tags(req.tags, "tags")?;
    s.store.log_batch(&id, &metrics, &params, &tags).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct WireDataset {
    name: Option<String>,
    digest: Option<String>,
    source_type: Option<String>,
    source: Option<String>,
    schema: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
pub struct WireDatasetInput {
    #[serde(default)]
    tags: Vec<WireTag>,
    dataset: Option<WireDataset>,
}

#[derive(Deserialize)]
pub struct WireModelInput {
    model_id: Option<String>,
}

#[derive(Deserialize)]
pub struct LogInputs {
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<WireDatasetInput>,
    #[serde(default)]
    models: Vec<WireModelInput>,
}

pub async fn log_inputs(State(s): S, JsonBody(req): JsonBody<LogInputs>) -> ApiResult<Json<Value>> {
    let id = run_id(req.run_id, None)?;
    let inputs = req
        .datasets
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let d = required(input.dataset, &format!("datasets[{i}].dataset"))?;
            Ok(DatasetInput {
                tags: into_tags(input.tags, &format!("datasets[{i}].tags"))?,
                dataset: Dataset {
                    name: required_str(d.name, &format!("datasets[{i}].dataset.name"))?,
                    digest: required_str(d.digest, &format!("datasets[{i}].dataset.digest"))?,
                    source_type: d.source_type.unwrap_or_default(),
                    source: d.source.unwrap_or_default(),
                    schema: d.schema,
                    profile: d.profile,
                },
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let models = req
        .models
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            Ok(ModelInput {
                model_id: required_str(m.model_id, &format!("models[{i}].model_id"))?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    s.store.log_inputs(&id, &inputs, &models).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct WireModelOutput {
    model_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
}

#[derive(Deserialize)]
pub struct LogOutputs {
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<WireModelOutput>,
}

pub async fn log_outputs(
    State(s): S,
    JsonBody(req): JsonBody<LogOutputs>,
) -> ApiResult<Json<Value>> {
    let id = run_id(req.run_id, None)?;
    let outputs = req
        .models
        .into_iter()
        .map(|m| {
            Ok(ModelOutput {
                model_id: required_str(m.model_id, "models.model_id")?,
                step: m.step.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    s.store.log_outputs(&id, &outputs).await?;
    Ok(ok())
}

pub async fn metric_history(State(s): S, q: QueryParams) -> ApiResult<Response> {
    let id = run_id(
        q.get("run_id").map(String::from),
        q.get("run_uuid").map(String::from),
    )?;
    let key = q.required("metric_key")?;
    let history = s
        .store
        .stream_metric_history(&id, key, q.opt_i64("max_results")?, q.get("page_token"))
        .await?;
    history::reply(history).await
}

//! The MLflow model-registry REST API: registered models, model versions, aliases, stages.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::registry::{ModelVersion, NewModelVersion, RegisteredModel};
use twinloop_core::tracking::Tag;
use twinloop_meta::RegistryQuery;

use super::json::*;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Actor, JsonBody, QueryParams};
use crate::wire::*;

type S = State<Arc<AppState>>;

fn ok() -> Json<Value> {
    Json(json!({}))
}

#[derive(Deserialize)]
pub struct CreateModel {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
    description: Option<String>,
}

pub async fn create_model(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<CreateModel>,
) -> ApiResult<Json<One<RegisteredModel>>> {
    let name = required_str(req.name, "name")?;
    let tags = into_tags(req.tags, "tags")?;
    let model = s
        .store
        .create_registered_model(&name, req.description.as_deref(), &tags, &actor.0)
        .await?;
    Ok(one("registered_model", model))
}

pub async fn get_model(State(s): S, q: QueryParams) -> ApiResult<Json<One<RegisteredModel>>> {
    let model = s.store.get_registered_model(q.required("name")?).await?;
    Ok(one("registered_model", model))
}

#[derive(Deserialize)]
pub struct RenameModel {
    name: Option<String>,
    new_name: Option<String>,
}

pub async fn rename_model(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<RenameModel>,
) -> ApiResult<Json<One<RegisteredModel>>> {
    let name = required_str(req.name, "name")?;
    let new_name = required_str(req.new_name, "new_name")?;
    let model = s
        .store
        .rename_registered_model(&name, &new_name, &actor.0)
        .await?;
    Ok(one("registered_model", model))
}

#[derive(Deserialize)]
pub struct UpdateModel {
    name: Option<String>,
    description: Option<String>,
}

pub async fn update_model(
    State(s): S,
    JsonBody(req): JsonBody<UpdateModel>,
) -> ApiResult<Json<One<RegisteredModel>>> {
    let name = required_str(req.name, "name")?;
    let model = s
        .store
        .update_registered_model(&name, &req.description.unwrap_or_default())
        .await?;
    Ok(one("registered_model", model))
}

#[derive(Deserialize)]
pub struct ByName {
    name: Option<String>,
}

pub async fn delete_model(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<ByName>,
) -> ApiResult<Json<Value>> {
    s.store
        .delete_registered_model(&required_str(req.name, "name")?, &actor.0)
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub struct ModelTag {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    version: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_model_tag(
    State(s): S,
    JsonBody(req): JsonBody<ModelTag>,
) -> ApiResult<Json<Value>> {
    let tag = Tag::new(required_str(req.key, "key")?, req.value.unwrap_or_default());
    s.store
        .set_registered_model_tag(&required_str(req.name, "name")?, &tag)
        .await?;
    Ok(ok())
}

pub async fn delete_model_tag(
    State(s): S,
    JsonBody(req): JsonBody<ModelTag>,
) -> ApiResult<Json<Value>> {
    s.store
        .delete_registered_model_tag(
            &required_str(req.name, "name")?,
            &required_str(req.key, "key")?,
        )
        .await?;
    Ok(ok())
}

fn registry_query(q: &QueryParams, default_max: i64) -> ApiResult<RegistryQuery> {
    Ok(RegistryQuery {
        filter: q.get("filter").map(String::from),
        order_by: q.get_all("order_by"),
        max_results: q.opt_i64("max_results")?.unwrap_or(default_max),
        page_token: q.get("page_token").map(String::from),
    })
}

pub async fn search_models(
    State(s): S,
    q: QueryParams,
) -> ApiResult<Json<Listing<RegisteredModel>>> {
    let page = s
        .store
        .search_registered_models(&registry_query(&q, 100)?)
        .await?;
    Ok(listing("registered_models", page))
}

#[derive(Deserialize)]
pub struct LatestVersions {
    name: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}

async fn latest_versions(
    s: &AppState,
    req: LatestVersions,
) -> ApiResult<Json<Listing<ModelVersion>>> {
    let versions = s
        .store
        .get_latest_versions(&required_str(req.name, "name")?, &req.stages)
        .await?;
    Ok(list("model_versions", versions))
}

pub async fn latest_versions_post(
    State(s): S,
    JsonBody(req): JsonBody<LatestVersions>,
) -> ApiResult<Json<Listing<ModelVersion>>> {
    latest_versions(&s, req).await
}

pub async fn latest_versions_get(
    State(s): S,
    q: QueryParams,
) -> ApiResult<Json<Listing<ModelVersion>>> {
    latest_versions(
        &s,
        LatestVersions {
            name: q.get("name").map(String::from),
            stages: q.get_all("stages"),
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct Alias {
    name: Option<String>,
    alias: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    version: Option<String>,
}

pub async fn set_alias(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<Alias>,
) -> ApiResult<Json<Value>> {
    s.store
        .set_alias(
            &required_str(req.name, "name")?,
            &required_str(req.alias, "alias")?,
            &required_str(req.version, "version")?,
            &actor.0,
        )
        .await?;
    Ok(ok())
}

pub async fn delete_alias(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<Alias>,
) -> ApiResult<Json<Value>> {
    s.store
        .delete_alias(
            &required_str(req.name, "name")?,
            &required_str(req.alias, "alias")?,
            &actor.0,
        )
        .await?;
    Ok(ok())
}

pub async fn get_by_alias(State(s): S, q: QueryParams) -> ApiResult<Json<One<ModelVersion>>> {
    let v = s
        .store
        .get_model_version_by_alias(q.required("name")?, q.required("alias")?)
        .await?;
    Ok(one("model_version", v))
}

#[derive(Deserialize)]
pub struct CreateVersion {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}

pub async fn create_version(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<CreateVersion>,
) -> ApiResult<Json<One<ModelVersion>>> {
    let name = required_str(req.name, "name")?;
    let source = required_str(req.source, "source")?;
    s.locations.check(&source)?;
    let new = NewModelVersion {
        name,
        source,
        run_id: req.run_id.filter(|r| !r.is_empty()),
        model_id: req.model_id.filter(|m| !m.is_empty()),
        description: req.description,
        run_link: req.run_link,
        tags: into_tags(req.tags, "tags")?,
        user_id: String::new(),
    };
    let v = s.store.create_model_version(new, &actor.0).await?;
    Ok(one("model_version", v))
}

pub async fn get_version(State(s): S, q: QueryParams) -> ApiResult<Json<One<ModelVersion>>> {
    let v = s
        .store
        .get_model_version(q.required("name")?, q.required("version")?)
        .await?;
    Ok(one("model_version", v))
}

#[derive(Deserialize)]
pub struct UpdateVersion {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    version: Option<String>,
    description: Option<String>,
}

pub async fn update_version(
    State(s): S,
    JsonBody(req): JsonBody<UpdateVersion>,
) -> ApiResult<Json<One<ModelVersion>>> {
    let v = s
        .store
        .update_model_version(
            &required_str(req.name, "name")?,
            &required_str(req.version, "version")?,
            &req.description.unwrap_or_default(),
        )
        .await?;
    Ok(one("model_version", v))
}

pub async fn delete_version(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<ModelTag>,
) -> ApiResult<Json<Value>> {
    s.store
        .delete_model_version(
            &required_str(req.name, "name")?,
            &required_str(req.version, "version")?,
            &actor.0,
        )
        .await?;
    Ok(ok())
}

pub async fn set_version_tag(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<ModelTag>,
) -> ApiResult<Json<Value>> {
    let tag = Tag::new(required_str(req.key, "key")?, req.value.unwrap_or_default());
    s.store
        .set_model_version_tag(
            &required_str(req.name, "name")?,
            &required_str(req.version, "version")?,
            &tag,
            &actor.0,
        )
        .await?;
    Ok(ok())
}

pub async fn delete_version_tag(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<ModelTag>,
) -> ApiResult<Json<Value>> {
    s.store
        .delete_model_version_tag(
            &required_str(req.name, "name")?,
            &required_str(req.version, "version")?,
            &required_str(req.key, "key")?,
            &actor.0,
        )
        .await?;
    Ok(ok())
}

pub async fn search_versions(
    State(s): S,
    q: QueryParams,
) -> ApiResult<Json<Listing<ModelVersion>>> {
    let page = s
        .store
        .search_model_versions(&registry_query(&q, 10_000)?)
        .await?;
    Ok(listing("model_versions", page))
}

pub async fn download_uri(State(s): S, q: QueryParams) -> ApiResult<Json<Value>> {
    let uri = s
        .store
        .get_model_version_download_uri(q.required("name")?, q.required("version")?)
        .await?;
    Ok(Json(json!({"artifact_uri": uri})))
}

#[derive(Deserialize)]
pub struct Transition {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    version: Option<String>,
    stage: Option<String>,
    #[serde(default)]
    archive_existing_versions: bool,
}

pub async fn transition_stage(
    State(s): S,
    actor: Actor,
    JsonBody(req): JsonBody<Transition>,
) -> ApiResult<Json<One<ModelVersion>>> {
    let v = s
        .store
        .transition_model_version_stage(
            &required_str(req.name, "name")?,
            &required_str(req.version, "version")?,
            &required_str(req.stage, "stage")?,
            req.archive_existing_versions,
            &actor.0,
        )
        .await?;
    Ok(one("model_version", v))
}

//! The MLflow model-registry REST API: registered models, model versions, aliases, stages.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::ErrorKind;
use twinloop_core::location::Location;
use twinloop_core::registry::{ModelVersion, NewModelVersion, RegisteredModel};
use twinloop_core::tracking::Tag;
use twinloop_meta::RegistryQuery;

use super::json::*;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
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
    let run_id = req.run_id.filter(|r| !r.is_empty());
    let model_id = req.model_id.filter(|m| !m.is_empty());
    match local_source(&source)? {
        Some(path) => check_local_source(&s, &source, path, &run_id, &model_id).await?,
        None => {
            s.locations.check(&source)?;
        }
    }
    let new = NewModelVersion {
        name,
        source,
        run_id,
        model_id,
        description: req.description,
        run_link: req.run_link,
        tags: into_tags(req.tags, "tags")?,
        user_id: String::new(),
    };
    let v = s.store.create_model_version(new, &actor.0).await?;
    Ok(one("model_version", v))
}

/// The path a local source names (MLflow's `is_local_uri`: no scheme, or `file:` naming no
/// host but this one), or `None` for any other source.
fn local_source(source: &str) -> ApiResult<Option<String>> {
    let scheme = source
        .split_once(':')
        .map(|(scheme, _)| scheme)
        .filter(|scheme| {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
    let Some(scheme) = scheme else {
        return Ok(Some(source.to_string()));
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Ok(None);
    }
    let rest = &source[scheme.len() + 1..];
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            let host = authority.rsplit('@').next().unwrap_or_default();
            let host = host
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let local = host.is_empty()
                || host == "."
                || host.starts_with("localhost")
                || host.starts_with("127.0.0.1");
            if !local {
                // MLflow's words; it answers them with a 500, which the client would retry for
                // minutes, so this is its one deliberate difference: a 400.
                return Err(ApiError::invalid(format!(
                    "{source} is not a valid remote uri. For remote access on windows, please \
                     consider using a different scheme such as SMB (e.g. smb://<hostname>/<path>)."
                )));
            }
            path
        }
        None => rest,
    };
    Ok(Some(twinloop_core::location::percent_decode(path)))
}

/// MLflow's rule for a local source (`_validate_source_run`, `_validate_source_model`): it must
/// name a run (or logged model) whose artifact directory contains it once both are resolved as
/// the file system resolves them; then, like every location, it must lie inside an allowed root.
/// twinloop's one addition: a directory the operator allowed that holds no run's artifacts (an
/// `--allowed-root` of shared models, the data directory) needs no run. Refusals repeat the
/// source as sent, never where it resolved.
async fn check_local_source(
    s: &AppState,
    source: &str,
    path: String,
    run_id: &Option<String>,
    model_id: &Option<String>,
) -> ApiResult<()> {
    let (owner, id) = match (model_id, run_id) {
        (Some(model_id), _) => ("model_id", model_id),
        (None, Some(run_id)) => ("run_id", run_id),
        (None, None) => ("run_id", &String::new()),
    };
    let outside = || {
        ApiError::invalid(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version \
             source, the {owner} request parameter has to be specified and the local path has to \
             be contained within the artifact directory of the run specified by the {owner}."
        ))
    };
    if let Ok(Location::Local(resolved)) = s.locations.check(source)
        && !s.locations.in_artifact_root(&resolved)
    {
        return Ok(());
    }
    if id.is_empty() {
        return Err(outside());
    }
    let found = if owner == "model_id" {
        s.store
            .get_logged_model(id, false)
            .await
            .map(|m| m.artifact_uri)
    } else {
        s.store.get_run(id).await.map(|r| r.info.artifact_uri)
    };
    let owner_uri = match found {
        Ok(uri) => uri,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Err(ApiError::invalid(format!(
                "Invalid model version source: '{source}'. The {owner} request parameter must \
                 identify the resource that contains the source."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let Ok(Some(owner_dir)) = local_source(&owner_uri) else {
        return Err(outside());
    };
    let resolved = s.locations.real_path(std::path::Path::new(&path));
    if !resolved.starts_with(s.locations.real_path(std::path::Path::new(&owner_dir))) {
        return Err(outside());
    }
    if s.locations.local(&resolved).is_none() {
        return Err(ApiError::invalid(format!(
            "Invalid location '{source}': outside the directories this server allows"
        )));
    }
    Ok(())
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

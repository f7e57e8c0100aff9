//! Reading the artifacts of runs, logged models and model versions through the tracking and
//! registry routes (MLflow's `ListArtifacts`, `ListLoggedModelArtifacts`, and the UI's download
//! routes). Each resolves its owner's artifact location, then lists or sends from the artifact
//! store; the request's path is checked before the owner is looked up, as MLflow does.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use twinloop_artifacts::ArtifactPath;

use crate::AppState;
use crate::artifacts::{FileInfo, Listing, send};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryParams, missing};

type S = State<Arc<AppState>>;

/// Entries per `artifacts/list` page. MLflow's own server never pages (its UI ignores
/// `next_page_token`), so a page is large enough that only a pathological directory spans two.
const LIST_PAGE_SIZE: usize = 10_000;

fn run_id(q: &QueryParams) -> ApiResult<&str> {
    q.get("run_id")
        .filter(|v| !v.is_empty())
        .or_else(|| q.get("run_uuid").filter(|v| !v.is_empty()))
        .ok_or_else(|| missing("run_id"))
}

/// A request's optional directory: absent is the owner's root.
fn dir_param(q: &QueryParams, key: &str) -> ApiResult<ArtifactPath> {
    safe_path(q.get(key).unwrap_or(""))
}

/// A path from the request, refused with MLflow's bare "Invalid path" (its tests compare the
/// whole message), the reason kept for the log only.
fn safe_path(raw: &str) -> ApiResult<ArtifactPath> {
    ArtifactPath::parse(raw).map_err(|e| {
        tracing::debug!("refused artifact path: {e}");
        ApiError::invalid("Invalid path")
    })
}

async fn run_location(s: &AppState, run_id: &str) -> ApiResult<String> {
    Ok(s.store.get_run(run_id).await?.info.artifact_uri)
}

/// `GET /mlflow/artifacts/list?run_id=&path=&page_token=`.
pub async fn list_run(State(s): S, q: QueryParams) -> ApiResult<Json<Listing>> {
    let dir = dir_param(&q, "path")?;
    let root_uri = run_location(&s, run_id(&q)?).await?;
    list(&s, root_uri, &dir, q.get("page_token")).await
}

/// `GET /mlflow/logged-models/{model_id}/artifacts/directories?artifact_directory_path=`.
pub async fn list_logged_model(
    State(s): S,
    Path(model_id): Path<String>,
    q: QueryParams,
) -> ApiResult<Json<Listing>> {
    let dir = dir_param(&q, "artifact_directory_path")?;
    let root_uri = s
        .store
        .get_logged_model(&model_id, false)
        .await?
        .artifact_uri;
    list(&s, root_uri, &dir, q.get("page_token")).await
}

async fn list(
    s: &AppState,
    root_uri: String,
    dir: &ArtifactPath,
    page_token: Option<&str>,
) -> ApiResult<Json<Listing>> {
    let page = s
        .artifacts
        .list_page(
            &ArtifactPath::in_location(&root_uri, dir)?,
            page_token.filter(|t| !t.is_empty()),
            LIST_PAGE_SIZE,
        )
        .await?;
    Ok(Json(Listing {
        root_uri: Some(root_uri),
        files: page
            .entries
            .into_iter()
            .map(|e| FileInfo::under(dir, e))
            .collect(),
        next_page_token: page.next_page_token,
    }))
}

/// `GET /get-artifact?run_id=&path=` (also `run_uuid`, which MLflow's UI sends).
pub async fn get_run_file(State(s): S, q: QueryParams) -> ApiResult<Response> {
    let path = safe_path(q.required("path")?)?;
    let location = run_location(&s, run_id(&q)?).await?;
    send(&s.artifacts, &ArtifactPath::in_location(&location, &path)?).await
}

/// `GET /model-versions/get-artifact?name=&version=&path=`: from the version's download URI
/// (its logged model's location, or its source).
pub async fn get_model_version_file(State(s): S, q: QueryParams) -> ApiResult<Response> {
    let path = safe_path(q.required("path")?)?;
    let mut location = s
        .store
        .get_model_version_download_uri(q.required("name")?, q.required("version")?)
        .await?;
    // A `runs:/RUN/sub/path` source names a place in that run's artifacts.
    if let Some(rest) = location.strip_prefix("runs:/") {
        let (run, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let run_root = run_location(&s, run).await?;
        location = format!("{}/{sub}", run_root.trim_end_matches('/'));
    }
    send(&s.artifacts, &ArtifactPath::in_location(&location, &path)?).await
}

/// `GET /mlflow/logged-models/{model_id}/artifacts/files?artifact_file_path=`.
pub async fn get_logged_model_file(
    State(s): S,
    Path(model_id): Path<String>,
    q: QueryParams,
) -> ApiResult<Response> {
    let Some(raw) = q.get("artifact_file_path").filter(|p| !p.is_empty()) else {
        // MLflow's code and wording for this one missing parameter.
        return Err(ApiError::with_status(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Request must include the \"artifact_file_path\" query parameter.",
        ));
    };
    let path = safe_path(raw)?;
    let location = s
        .store
        .get_logged_model(&model_id, false)
        .await?
        .artifact_uri;
    send(&s.artifacts, &ArtifactPath::in_location(&location, &path)?).await
}

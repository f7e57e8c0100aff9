//! Reading the artifacts of runs, logged models and model versions through the tracking and
//! registry routes (MLflow's `ListArtifacts`, `ListLoggedModelArtifacts`, and the UI's download
//! routes), and the UI's `upload-artifact` into a run. Each resolves its owner's artifact
//! location ([`locate`]), then lists, sends or writes there; the request's path is checked before
//! the owner is looked up, as MLflow does.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use twinloop_artifacts::{ArtifactPath, ArtifactStore};

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

/// Where an owner's artifacts are: the proxy's store for a location it serves
/// (`mlflow-artifacts:`), or, for a local location inside one of the policy's allowed roots (a
/// `--no-serve-artifacts` server's runs, which MLflow's server also reads itself), a store over
/// that root with the location below it. The store follows no link below its root, and the
/// server's own directories stay refused there too; any other location (a remote one the server
/// only recorded, a local one outside the roots) is not read.
pub(crate) fn locate(
    s: &AppState,
    location: &str,
    path: &ArtifactPath,
) -> ApiResult<(ArtifactStore, ArtifactPath)> {
    let not_served = match ArtifactPath::in_location(location, path) {
        Ok(inside) => return Ok((s.artifacts.clone(), inside)),
        Err(e) => e,
    };
    let Some((root, below)) = s.locations.local_root(location) else {
        return Err(not_served.into());
    };
    let inside = below
        .to_str()
        .and_then(|below| ArtifactPath::parse(below).ok())
        .map(|below| below.join(path))
        .filter(|inside| !inside.is_internal())
        .ok_or(not_served)?;
    Ok((ArtifactStore::open(&root.display().to_string())?, inside))
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
    let (store, at) = locate(s, &root_uri, dir)?;
    let page = store
        .list_page(&at, page_token.filter(|t| !t.is_empty()), LIST_PAGE_SIZE)
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
    let (store, at) = locate(&s, &location, &path)?;
    send(&store, &at).await
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
    let (store, at) = locate(&s, &location, &path)?;
    send(&store, &at).await
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
    let (store, at) = locate(&s, &location, &path)?;
    send(&store, &at).await
}

/// The most `upload-artifact` takes, as MLflow.
const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// `POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=` (MLflow's
/// `upload_artifact_handler`): the raw body becomes the file `path` in the run's artifacts,
/// wherever [`locate`] allows. Checked in MLflow's order, with its messages.
pub async fn upload_run_file(
    State(s): S,
    q: QueryParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let Some(run_id) = q.get("run_uuid").filter(|r| !r.is_empty()) else {
        return Err(ApiError::invalid("Request must specify run_uuid."));
    };
    let Some(raw) = q.get("path").filter(|p| !p.is_empty()) else {
        return Err(ApiError::invalid("Request must specify path."));
    };
    let path = safe_path(raw)?;
    let too_large = || ApiError::invalid("Artifact size is too large. Max size is 10MB.");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD as u64) {
        return Err(too_large());
    }
    let data = axum::body::to_bytes(body, MAX_UPLOAD)
        .await
        .map_err(|_| too_large())?;
    if data.is_empty() {
        return Err(ApiError::invalid("Request must specify data."));
    }
    let location = run_location(&s, run_id).await?;
    let (store, at) = locate(&s, &location, &path)?;
    store
        .put(
            &at,
            futures::stream::once(async { Ok::<_, std::io::Error>(data) }),
        )
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], "").into_response())
}

//! The MLflow artifact proxy (`mlflow server --serve-artifacts`): clients upload and download
//! through the server, which stores files in the artifact store under `artifacts-destination`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde_json::{Map, Value, json};
use twinloop_artifacts::ArtifactPath;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::QueryParams;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/", get(list))
        .route(
            "/artifacts/{*path}",
            get(download).put(upload).delete(remove),
        )
}

async fn list(State(s): State<Arc<AppState>>, q: QueryParams) -> ApiResult<Json<Value>> {
    let dir = ArtifactPath::parse(q.get("path").unwrap_or(""))?;
    let entries = s.artifacts.list(&dir).await?;
    let mut obj = Map::new();
    if !entries.is_empty() {
        let files: Vec<Value> = entries
            .iter()
            .map(|e| match e.size {
                Some(size) if !e.is_dir => {
                    json!({"path": e.path, "is_dir": false, "file_size": size})
                }
                _ => json!({"path": e.path, "is_dir": true}),
            })
            .collect();
        obj.insert("files".into(), Value::Array(files));
    }
    Ok(Json(Value::Object(obj)))
}

async fn download(State(s): State<Arc<AppState>>, Path(path): Path<String>) -> ApiResult<Response> {
    let path = ArtifactPath::parse(&path)?;
    let file = s.artifacts.get(&path).await?;
    let mime = mime_guess::from_path(path.file_name()).first_or_octet_stream();
    let disposition = format!(
        "attachment; filename=\"{}\"",
        path.file_name().replace(['"', '\\'], "_")
    );
    let mut response =
        Body::from_stream(file.stream.map_err(std::io::Error::other)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    Ok(response)
}

/// Replies 200 with an empty body, as MLflow does.
async fn upload(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
    request: Request,
) -> ApiResult<()> {
    let path = ArtifactPath::parse(&path)?;
    s.artifacts
        .put(&path, request.into_body().into_data_stream())
        .await?;
    Ok(())
}

async fn remove(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> ApiResult<Json<Value>> {
    let path = ArtifactPath::parse(&path)?;
    s.artifacts.delete(&path).await?;
    Ok(Json(json!({})))
}

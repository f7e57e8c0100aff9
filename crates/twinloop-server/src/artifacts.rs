//! The MLflow artifact proxy (`mlflow server --serve-artifacts`): clients upload and download
//! through the server, which stores files in the artifact store under `artifacts-destination`.
//! Also the download reply and listing shape that the tracking routes' artifact views
//! (`mlflow/artifact_reads.rs`) share with the proxy.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use twinloop_artifacts::{ArtifactEntry, ArtifactPath, ArtifactStore, INTERNAL};

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

/// The proxy's routes on a server started with `--no-serve-artifacts`, mounted at `prefix`: each
/// answers 503 with the words MLflow's server uses there (a JSON `detail` from its file routes, a
/// plain sentence naming the endpoint from the others), so that a client sent to the proxy learns
/// that the server is not one.
pub fn disabled_routes(prefix: &'static str) -> Router<Arc<AppState>> {
    let endpoint = move |rule: &'static str| {
        let sentence = format!(
            "Endpoint: {prefix}{rule} disabled due to the mlflow server running with \
             `--no-serve-artifacts`. To enable artifacts server functionality, run `mlflow server` \
             with `--serve-artifacts`"
        );
        move || async move {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                sentence,
            )
        }
    };
    let file = || async {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "detail": "Artifact serving is disabled. Run `mlflow server` with `--serve-artifacts` to enable."
            })),
        )
    };
    Router::new()
        .route("/artifacts", get(endpoint("/artifacts")))
        .route("/artifacts/", get(endpoint("/artifacts")))
        .route(
            "/artifacts/{*path}",
            get(file)
                .put(file)
                .delete(endpoint("/artifacts/<path:artifact_path>")),
        )
}

/// MLflow's `FileInfo`: a directory has no size.
#[derive(Serialize)]
pub(crate) struct FileInfo {
    path: String,
    is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<u64>,
}

impl FileInfo {
    /// `entry` of directory `dir`, named by its path under `dir`'s parent root.
    pub(crate) fn under(dir: &ArtifactPath, entry: ArtifactEntry) -> FileInfo {
        let path = if dir.is_root() {
            entry.path
        } else {
            format!("{}/{}", dir.as_str(), entry.path)
        };
        FileInfo {
            path,
            is_dir: entry.is_dir,
            file_size: entry.size.filter(|_| !entry.is_dir),
        }
    }
}

/// MLflow's `ListArtifacts.Response` (the proxy's listing leaves `root_uri` out); empty fields
/// are left out, as the MLflow server's proto-to-JSON writes them.
#[derive(Serialize)]
pub(crate) struct Listing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

async fn list(State(s): State<Arc<AppState>>, q: QueryParams) -> ApiResult<Json<Listing>> {
    let dir = ArtifactPath::client(q.get("path").unwrap_or(""))?;
    let root = ArtifactPath::parse("")?;
    let files = s.artifacts.list(&dir).await?;
    Ok(Json(Listing {
        root_uri: None,
        files: files
            .into_iter()
            .filter(|e| !(dir.is_root() && INTERNAL.contains(&e.path.as_str())))
            .map(|e| FileInfo::under(&root, e))
            .collect(),
        next_page_token: None,
    }))
}

async fn download(State(s): State<Arc<AppState>>, Path(path): Path<String>) -> ApiResult<Response> {
    send(&s.artifacts, &ArtifactPath::client(&path)?).await
}

/// A file as MLflow's server sends one: always as an attachment, with the type it would guess
/// and `nosniff`, so a browser never renders an uploaded file as a page of this server's origin.
pub(crate) async fn send(artifacts: &ArtifactStore, path: &ArtifactPath) -> ApiResult<Response> {
    let file = artifacts.get(path).await?;
    let mut response =
        Body::from_stream(file.stream.map_err(std::io::Error::other)).into_response();
    let headers = response.headers_mut();
    let name = path.file_name();
    for (key, value) in [
        (header::CONTENT_TYPE, mime_type(name)),
        (
            header::CONTENT_DISPOSITION,
            content_disposition(name).into(),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            "nosniff".into(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(key, v);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    Ok(response)
}

/// Extensions (or, for a name without one, whole names) MLflow serves as `text/plain`, so the UI
/// can preview them (`mlflow.utils.mime_type_utils.get_text_extensions`).
const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "log",
    "err",
    "cfg",
    "conf",
    "cnf",
    "cf",
    "ini",
    "properties",
    "prop",
    "hocon",
    "toml",
    "yaml",
    "yml",
    "xml",
    "json",
    "js",
    "py",
    "py3",
    "csv",
    "tsv",
    "md",
    "rst",
    "ipynb",
    "MLmodel",
    "mlproject",
];

/// The `Content-Type` MLflow's server gives file `name`: `text/plain` for its text extensions,
/// else the type the extension is registered for, else `application/octet-stream`.
fn mime_type(name: &str) -> Cow<'static, str> {
    // As Python's splitext: leading dots start no extension (`.bashrc` has none).
    let extension = match name.rfind('.') {
        Some(i) if name[..i].bytes().any(|b| b != b'.') => &name[i + 1..],
        _ => "",
    };
    let key = if extension.is_empty() {
        name
    } else {
        extension
    };
    if TEXT_EXTENSIONS.contains(&key) {
        return "text/plain".into();
    }
    match mime_guess::from_path(name).first_raw() {
        Some(mime) if !extension.is_empty() => mime.into(),
        _ => "application/octet-stream".into(),
    }
}

/// `attachment; filename=…` as MLflow writes it (RFC 6266): the name bare when it is an HTTP
/// token, else quoted; a non-ASCII name also gets an ASCII fallback and an RFC 5987
/// `filename*`, since header values must be ASCII.
fn content_disposition(name: &str) -> String {
    if name.is_ascii() {
        return format!("attachment; filename={}", quote_header_value(name));
    }
    // MLflow decomposes first (é → e) where this drops the letter; only clients that ignore
    // `filename*` ever see the fallback.
    let fallback: String = name.chars().filter(char::is_ascii).collect();
    let fallback = if fallback.is_empty() {
        "download".to_string()
    } else {
        fallback
    };
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!(
        "attachment; filename={}; filename*=UTF-8''{encoded}",
        quote_header_value(&fallback)
    )
}

fn quote_header_value(value: &str) -> Cow<'_, str> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !value.is_empty() && value.chars().all(token) {
        return value.into();
    }
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")).into()
}

/// Replies 200 with an empty body, as MLflow does.
async fn upload(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
    request: Request,
) -> ApiResult<()> {
    let path = ArtifactPath::client(&path)?;
    s.artifacts
        .put(&path, request.into_body().into_data_stream())
        .await?;
    Ok(())
}

async fn remove(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> ApiResult<Json<Value>> {
    let path = ArtifactPath::client(&path)?;
    s.artifacts.delete(&path).await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_mlflow() {
        for (name, mime) in [
            ("a.txt", "text/plain"),
            ("conda.yaml", "text/plain"),
            ("config.json", "text/plain"),
            ("train.py", "text/plain"),
            ("MLmodel", "text/plain"),
            ("mlproject", "text/plain"),
            ("b.pkl", "application/octet-stream"),
            ("model.onnx", "application/octet-stream"),
            ("c.png", "image/png"),
            ("d.pdf", "application/pdf"),
            ("page.html", "text/html"),
            ("noextension", "application/octet-stream"),
            (".txt", "application/octet-stream"),
        ] {
            assert_eq!(mime_type(name), mime, "{name}");
        }
    }

    #[test]
    fn disposition_follows_mlflow() {
        for (name, header) in [
            ("a.txt", "attachment; filename=a.txt"),
            (
                "dog+step+20+timestamp+100.png",
                "attachment; filename=dog+step+20+timestamp+100.png",
            ),
            ("with space.txt", "attachment; filename=\"with space.txt\""),
            ("q\"b\\.txt", "attachment; filename=\"q\\\"b\\\\.txt\""),
            (
                "caf\u{e9}.txt",
                "attachment; filename=caf.txt; filename*=UTF-8''caf%C3%A9.txt",
            ),
            (
                "\u{65e5}\u{672c}",
                "attachment; filename=download; filename*=UTF-8''%E6%97%A5%E6%9C%AC",
            ),
        ] {
            assert_eq!(content_disposition(name), header, "{name}");
        }
    }

    #[test]
    fn listings_name_entries_under_the_listed_directory() {
        let entry = |path: &str, size: Option<u64>| ArtifactEntry {
            path: path.into(),
            is_dir: size.is_none(),
            size,
        };
        let dir = ArtifactPath::parse("x/y").unwrap();
        let listing = Listing {
            root_uri: Some("mlflow-artifacts:/0/r/artifacts".into()),
            files: vec![
                FileInfo::under(&dir, entry("a.txt", Some(0))),
                FileInfo::under(&dir, entry("sub", None)),
            ],
            next_page_token: None,
        };
        assert_eq!(
            serde_json::to_value(&listing).unwrap(),
            json!({
                "root_uri": "mlflow-artifacts:/0/r/artifacts",
                "files": [
                    {"path": "x/y/a.txt", "is_dir": false, "file_size": 0},
                    {"path": "x/y/sub", "is_dir": true},
                ],
            })
        );
        let empty = Listing {
            root_uri: None,
            files: vec![],
            next_page_token: None,
        };
        assert_eq!(serde_json::to_value(&empty).unwrap(), json!({}));
    }
}

//! Resolution and downloads through a tracking server's REST API (MLflow's routes, which
//! twinloop and MLflow both answer), for the stateless `twinloop serve`: serving's
//! `ModelRegistry` over HTTP.

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use twinloop_serving::source::{
    Entry, LocalFiles, ModelRegistry, ModelUri, ResolvedModel, SourceError,
};

/// The parts of MLflow's answers that resolution reads. Every field is optional so that an
/// answer without it is reported by name, as `what` says where it was looked for.
#[derive(Deserialize)]
struct DownloadUri {
    artifact_uri: Option<String>,
}

#[derive(Deserialize)]
struct AliasAnswer {
    model_version: Option<VersionAnswer>,
}

#[derive(Deserialize)]
struct VersionAnswer {
    version: Option<String>,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: Option<RunData>,
}

#[derive(Deserialize)]
struct RunData {
    info: Option<RunInfo>,
}

#[derive(Deserialize)]
struct RunInfo {
    artifact_uri: Option<String>,
}

#[derive(Deserialize, Default)]
struct Listing {
    #[serde(default)]
    files: Vec<ListedFile>,
}

#[derive(Deserialize)]
struct ListedFile {
    path: Option<String>,
    #[serde(default)]
    is_dir: bool,
}

/// MLflow's error body.
#[derive(Deserialize)]
struct ErrorAnswer {
    message: Option<String>,
}

/// `value`, or the error that the tracking server's answer lacks `pointer`.
fn present(value: Option<String>, pointer: &str) -> Result<String, SourceError> {
    value.ok_or_else(|| SourceError(format!("the tracking server's answer has no {pointer}")))
}

pub struct TrackingClient {
    base: String,
    http: reqwest::Client,
}

impl TrackingClient {
    /// Signs in as the stock client would (`MLFLOW_TRACKING_USERNAME`/`PASSWORD` or
    /// `MLFLOW_TRACKING_TOKEN`), so models can be served from a server run with `--auth`.
    pub fn new(base: &str) -> TrackingClient {
        let http = reqwest::Client::builder()
            .default_headers(crate::client::credentials())
            .build()
            .unwrap_or_default();
        TrackingClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// GETs `path` and reads its JSON answer as `T`; an answer that is not a `T` reads as
    /// `fallback` (so a missing field is reported by name, as before).
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        fallback: T,
    ) -> Result<T, SourceError> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).query(query).send().await.map_err(|e| {
            SourceError(format!(
                "cannot reach the tracking server at {}: {e}",
                self.base
            ))
        })?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorAnswer>(&body)
                .ok()
                .and_then(|e| e.message)
                .unwrap_or_else(|| "no message".into());
            return Err(SourceError(format!("{path}: {status}: {message}")));
        }
        Ok(serde_json::from_slice(&body).unwrap_or(fallback))
    }

    async fn download_uri(&self, name: &str, version: &str) -> Result<String, SourceError> {
        let body = self
            .get_json(
                "/api/2.0/mlflow/model-versions/get-download-uri",
                &[("name", name), ("version", version)],
                DownloadUri { artifact_uri: None },
            )
            .await?;
        present(body.artifact_uri, "/artifact_uri")
    }
}

#[async_trait]
impl ModelRegistry for TrackingClient {
    async fn resolve(&self, uri: &ModelUri) -> Result<ResolvedModel, SourceError> {
        let context = |e: SourceError| SourceError(format!("{uri}: {}", e.0));
        match uri {
            ModelUri::Alias { name, alias } => {
                let body = self
                    .get_json(
                        "/api/2.0/mlflow/registered-models/alias",
                        &[("name", name), ("alias", alias)],
                        AliasAnswer {
                            model_version: None,
                        },
                    )
                    .await
                    .map_err(context)?;
                let version = present(
                    body.model_version.and_then(|v| v.version),
                    "/model_version/version",
                )?;
                let location = self.download_uri(name, &version).await.map_err(context)?;
                Ok(ResolvedModel {
                    name: Some(name.clone()),
                    version,
                    location,
                })
            }
            ModelUri::Version { name, version } => {
                let location = self.download_uri(name, version).await.map_err(context)?;
                Ok(ResolvedModel {
                    name: Some(name.clone()),
                    version: version.clone(),
                    location,
                })
            }
            ModelUri::Run { run_id, path } => {
                let body = self
                    .get_json(
                        "/api/2.0/mlflow/runs/get",
                        &[("run_id", run_id)],
                        RunAnswer { run: None },
                    )
                    .await
                    .map_err(context)?;
                let root = present(
                    body.run.and_then(|r| r.info).and_then(|i| i.artifact_uri),
                    "/run/info/artifact_uri",
                )?;
                Ok(ResolvedModel {
                    name: None,
                    version: "1".into(),
                    location: format!("{}/{path}", root.trim_end_matches('/')),
                })
            }
            ModelUri::Local(_) => LocalFiles.resolve(uri).await,
        }
    }

    async fn list(&self, location: &str, dir: &str) -> Result<Vec<Entry>, SourceError> {
        let Some(root) = location.strip_prefix("mlflow-artifacts:") else {
            return local_or_refuse(location)?.list(location, dir).await;
        };
        let root = root.trim_matches('/');
        let path = if dir.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{dir}")
        };
        let listing = self
            .get_json(
                "/api/2.0/mlflow-artifacts/artifacts",
                &[("path", &path)],
                Listing::default(),
            )
            .await?;
        Ok(listing
            .files
            .iter()
            .filter_map(|f| {
                let name = f.path.as_deref()?;
                // MLflow lists names relative to the listed directory.
                let name = name.rsplit('/').next().unwrap_or(name);
                Some(Entry {
                    path: if dir.is_empty() {
                        name.to_string()
                    } else {
                        format!("{dir}/{name}")
                    },
                    is_dir: f.is_dir,
                })
            })
            .collect())
    }

    /// `mlflow-artifacts:` locations through the server's artifact proxy; paths on this machine
    /// directly (a server whose artifacts are a shared local directory).
    async fn read(&self, location: &str, file: &str) -> Result<Vec<u8>, SourceError> {
        let Some(path) = location.strip_prefix("mlflow-artifacts:") else {
            return local_or_refuse(location)?.read(location, file).await;
        };
        let path = format!(
            "{}/{file}",
            path.trim_start_matches('/').trim_end_matches('/')
        );
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| SourceError(format!("cannot download {path}: {e}")))?;
        if !response.status().is_success() {
            return Err(SourceError(format!(
                "cannot download {path}: {}",
                response.status()
            )));
        }
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| SourceError(format!("cannot download {path}: {e}")))
    }
}

fn local_or_refuse(location: &str) -> Result<LocalFiles, SourceError> {
    if location.starts_with('/') || location.starts_with("file://") {
        return Ok(LocalFiles);
    }
    Err(SourceError(format!(
        "artifact location {location:?}: only mlflow-artifacts: and local paths can be read \
         (hint: run the tracking server with --serve-artifacts)"
    )))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::extract::Query;
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::json;

    use super::*;

    /// A tracking server that answers the routes resolution uses with canned MLflow bodies.
    async fn server() -> TrackingClient {
        let app = Router::new()
            .route(
                "/api/2.0/mlflow/registered-models/alias",
                get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    match q.get("alias").map(String::as_str) {
                        Some("champion") => (
                            StatusCode::OK,
                            axum::Json(json!({"model_version": {"version": "3"}})),
                        ),
                        Some("odd") => (
                            StatusCode::OK,
                            axum::Json(json!({"model_version": {"version": 3}})),
                        ),
                        _ => (
                            StatusCode::NOT_FOUND,
                            axum::Json(json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no alias"})),
                        ),
                    }
                }),
            )
            .route(
                "/api/2.0/mlflow/model-versions/get-download-uri",
                get(|| async { axum::Json(json!({"artifact_uri": "mlflow-artifacts:/1/m/artifacts"})) }),
            )
            .route(
                "/api/2.0/mlflow-artifacts/artifacts",
                get(|| async {
                    axum::Json(json!({"files": [
                        {"path": "MLmodel", "is_dir": false, "file_size": 10},
                        {"path": "data", "is_dir": true},
                    ]}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        TrackingClient::new(&format!("http://{addr}/"))
    }

    fn alias(alias: &str) -> ModelUri {
        ModelUri::Alias {
            name: "iris".into(),
            alias: alias.into(),
        }
    }

    #[tokio::test]
    async fn an_alias_resolves_to_its_version_and_download_location() {
        let client = server().await;
        let resolved = client.resolve(&alias("champion")).await.unwrap();
        assert_eq!(
            resolved,
            ResolvedModel {
                name: Some("iris".into()),
                version: "3".into(),
                location: "mlflow-artifacts:/1/m/artifacts".into(),
            }
        );
    }

    #[tokio::test]
    async fn answers_without_the_field_or_with_an_error_say_so() {
        let client = server().await;
        let err = client.resolve(&alias("odd")).await.unwrap_err();
        assert_eq!(
            err.0,
            "the tracking server's answer has no /model_version/version"
        );
        let err = client.resolve(&alias("gone")).await.unwrap_err();
        assert_eq!(
            err.0,
            "models:/iris@gone: /api/2.0/mlflow/registered-models/alias: 404 Not Found: no alias"
        );
    }

    #[tokio::test]
    async fn listings_are_relative_to_the_location() {
        let client = server().await;
        let entries = client
            .list("mlflow-artifacts:/1/m/artifacts", "sub")
            .await
            .unwrap();
        assert_eq!(
            entries,
            vec![
                Entry {
                    path: "sub/MLmodel".into(),
                    is_dir: false,
                },
                Entry {
                    path: "sub/data".into(),
                    is_dir: true,
                },
            ]
        );
        let err = client.list("s3://b/k", "").await.unwrap_err();
        assert!(err.0.contains("--serve-artifacts"), "{err}");
    }
}

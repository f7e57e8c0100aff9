//! Resolution and downloads through a tracking server's REST API (MLflow's routes, which
//! twinloop and MLflow both answer), for the stateless `twinloop serve`.

use async_trait::async_trait;
use serde_json::Value;

use super::{Entry, LocalFiles, ModelRegistry, ModelUri, ResolvedModel, SourceError};

pub struct TrackingClient {
    base: String,
    http: reqwest::Client,
}

impl TrackingClient {
    pub fn new(base: &str) -> TrackingClient {
        TrackingClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, SourceError> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).query(query).send().await.map_err(|e| {
            SourceError(format!(
                "cannot reach the tracking server at {}: {e}",
                self.base
            ))
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(SourceError(format!("{path}: {status}: {message}")));
        }
        Ok(body)
    }

    async fn download_uri(&self, name: &str, version: &str) -> Result<String, SourceError> {
        let body = self
            .get_json(
                "/api/2.0/mlflow/model-versions/get-download-uri",
                &[("name", name), ("version", version)],
            )
            .await?;
        text(&body, "/artifact_uri")
    }
}

fn text(body: &Value, pointer: &str) -> Result<String, SourceError> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SourceError(format!("the tracking server's answer has no {pointer}")))
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
                    )
                    .await
                    .map_err(context)?;
                let version = text(&body, "/model_version/version")?;
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
                    .get_json("/api/2.0/mlflow/runs/get", &[("run_id", run_id)])
                    .await
                    .map_err(context)?;
                let root = text(&body, "/run/info/artifact_uri")?;
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
        let body = self
            .get_json("/api/2.0/mlflow-artifacts/artifacts", &[("path", &path)])
            .await?;
        let files = body
            .get("files")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(files
            .iter()
            .filter_map(|f| {
                let name = f.get("path")?.as_str()?;
                // MLflow lists names relative to the listed directory.
                let name = name.rsplit('/').next().unwrap_or(name);
                Some(Entry {
                    path: if dir.is_empty() {
                        name.to_string()
                    } else {
                        format!("{dir}/{name}")
                    },
                    is_dir: f.get("is_dir").and_then(Value::as_bool).unwrap_or(false),
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

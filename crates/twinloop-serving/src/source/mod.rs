//! Where a model comes from: a model URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`,
//! `runs:/RUN_ID/PATH`, or a local MLflow model directory) resolved to a version and the bytes
//! of its ONNX graph.

mod mlmodel;
mod tracking;
mod uri;

use async_trait::async_trait;

pub use mlmodel::onnx_data_file;
pub use tracking::TrackingClient;
pub use uri::ModelUri;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A registered version (or a run's / a directory's model) and the artifact location that holds
/// its MLflow model directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// The registered model's name (a run's or a directory's model has none).
    pub name: Option<String>,
    /// The registered version, `"1"` for a model outside the registry.
    pub version: String,
    pub location: String,
}

/// The registry side of loading: resolution, and reading files under an artifact location.
/// `twinloop serve` uses the tracking server's REST API ([`TrackingClient`]); `twinloop server`
/// reads its own metadata and artifact stores.
#[async_trait]
pub trait ModelRegistry: Send + Sync {
    async fn resolve(&self, uri: &ModelUri) -> Result<ResolvedModel, SourceError>;
    async fn read(&self, location: &str, file: &str) -> Result<Vec<u8>, SourceError>;
}

/// The ONNX graph of an MLflow model directory with the `onnx` flavor.
pub async fn read_onnx(
    registry: &dyn ModelRegistry,
    location: &str,
) -> Result<Vec<u8>, SourceError> {
    let mlmodel = registry.read(location, "MLmodel").await?;
    let data =
        onnx_data_file(&mlmodel).map_err(|e| SourceError(format!("{location}/MLmodel: {e}")))?;
    registry.read(location, &data).await
}

/// Resolves `uri` and reads its graph; local directories need no registry.
pub async fn fetch(
    registry: Option<&dyn ModelRegistry>,
    uri: &ModelUri,
) -> Result<(ResolvedModel, Vec<u8>), SourceError> {
    if let ModelUri::Local(dir) = uri {
        let local = LocalFiles;
        let location = dir.display().to_string();
        let bytes = read_onnx(&local, &location).await?;
        let resolved = ResolvedModel {
            name: None,
            version: "1".into(),
            location,
        };
        return Ok((resolved, bytes));
    }
    let registry = registry.ok_or_else(|| {
        SourceError(format!(
            "{uri} needs a tracking server (hint: pass --tracking-uri or set MLFLOW_TRACKING_URI)"
        ))
    })?;
    let resolved = registry.resolve(uri).await?;
    let bytes = read_onnx(registry, &resolved.location).await?;
    Ok((resolved, bytes))
}

/// Files on this machine's disk.
pub struct LocalFiles;

#[async_trait]
impl ModelRegistry for LocalFiles {
    async fn resolve(&self, uri: &ModelUri) -> Result<ResolvedModel, SourceError> {
        Err(SourceError(format!("{uri} is not a local directory")))
    }

    async fn read(&self, location: &str, file: &str) -> Result<Vec<u8>, SourceError> {
        let dir = location.strip_prefix("file://").unwrap_or(location);
        let path = std::path::Path::new(dir).join(file);
        tokio::fs::read(&path)
            .await
            .map_err(|e| SourceError(format!("cannot read {}: {e}", path.display())))
    }
}

//! Where a model comes from: a model URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`,
//! `runs:/RUN_ID/PATH`, or a local MLflow model directory) resolved to a version and the bytes
//! of its ONNX graph.

mod external;
mod mlmodel;
mod uri;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use mlmodel::{MlModelError, onnx_data_file};
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
/// `twinloop serve` uses a tracking server's REST API (the CLI's `TrackingClient`); `twinloop
/// server` reads its own metadata and artifact stores.
#[async_trait]
pub trait ModelRegistry: Send + Sync {
    async fn resolve(&self, uri: &ModelUri) -> Result<ResolvedModel, SourceError>;
    /// The entries of `dir` (relative to `location`, `""` for its root), with paths relative
    /// to `location`.
    async fn list(&self, location: &str, dir: &str) -> Result<Vec<Entry>, SourceError>;
    async fn read(&self, location: &str, file: &str) -> Result<Vec<u8>, SourceError>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: String,
    pub is_dir: bool,
}

/// An MLflow model directory on local disk (downloaded to a temporary directory when it came
/// from a registry; ONNX Runtime reads everything at load, so it may go once sessions exist).
pub struct ModelFiles {
    pub onnx: PathBuf,
    _download: Option<tempfile::TempDir>,
}

/// Downloads every file under `location` into `into`, following subdirectories.
async fn download(
    registry: &dyn ModelRegistry,
    location: &str,
    into: &Path,
) -> Result<(), SourceError> {
    let mut pending = vec![String::new()];
    while let Some(dir) = pending.pop() {
        for entry in registry.list(location, &dir).await? {
            if entry.path.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err(SourceError(format!(
                    "{location}: refusing artifact path {:?}",
                    entry.path
                )));
            }
            if entry.is_dir {
                pending.push(entry.path);
                continue;
            }
            let bytes = registry.read(location, &entry.path).await?;
            let target = into.join(&entry.path);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| SourceError(format!("cannot write {}: {e}", parent.display())))?;
            }
            tokio::fs::write(&target, bytes)
                .await
                .map_err(|e| SourceError(format!("cannot write {}: {e}", target.display())))?;
        }
    }
    Ok(())
}

/// The ONNX graph's path inside an MLflow model directory with the `onnx` flavor.
async fn onnx_path(dir: &Path) -> Result<PathBuf, SourceError> {
    let mlmodel = tokio::fs::read(dir.join("MLmodel")).await.map_err(|e| {
        SourceError(format!(
            "{}: no MLmodel file ({e}); hint: log the model with mlflow.onnx.log_model",
            dir.display()
        ))
    })?;
    let data = onnx_data_file(&mlmodel)
        .map_err(|e| SourceError(format!("{}/MLmodel: {e}", dir.display())))?;
    let path = dir.join(data);
    // ONNX Runtime opens external-data files by the names the graph gives: judge them first.
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| SourceError(format!("cannot read {}: {e}", path.display())))?;
    let model_dir = path.parent().unwrap_or(dir).to_path_buf();
    tokio::task::spawn_blocking(move || external::check(&bytes, &model_dir))
        .await
        .map_err(|e| SourceError(format!("checking the model failed: {e}")))?
        .map_err(|external::Refused(why)| SourceError(format!("refusing the model: {why}")))?;
    Ok(path)
}

/// Resolves `uri` and puts its model directory on local disk; local directories need no registry.
pub async fn fetch(
    registry: Option<&dyn ModelRegistry>,
    uri: &ModelUri,
) -> Result<(ResolvedModel, ModelFiles), SourceError> {
    if let ModelUri::Local(dir) = uri {
        let onnx = onnx_path(dir).await?;
        let resolved = ResolvedModel {
            name: None,
            version: "1".into(),
            location: dir.display().to_string(),
        };
        return Ok((
            resolved,
            ModelFiles {
                onnx,
                _download: None,
            },
        ));
    }
    let registry = registry.ok_or_else(|| {
        SourceError(format!(
            "{uri} needs a tracking server (hint: pass --tracking-uri or set MLFLOW_TRACKING_URI)"
        ))
    })?;
    let resolved = registry.resolve(uri).await?;
    let temp = tempfile::Builder::new()
        .prefix("twinloop-model-")
        .tempdir()
        .map_err(|e| SourceError(format!("cannot make a download directory: {e}")))?;
    download(registry, &resolved.location, temp.path())
        .await
        .map_err(|e| SourceError(format!("{uri}: {}", e.0)))?;
    let onnx = onnx_path(temp.path()).await?;
    Ok((
        resolved,
        ModelFiles {
            onnx,
            _download: Some(temp),
        },
    ))
}

/// Files on this machine's disk.
pub struct LocalFiles;

#[async_trait]
impl ModelRegistry for LocalFiles {
    async fn resolve(&self, uri: &ModelUri) -> Result<ResolvedModel, SourceError> {
        Err(SourceError(format!("{uri} is not a local directory")))
    }

    async fn list(&self, location: &str, dir: &str) -> Result<Vec<Entry>, SourceError> {
        let root = Path::new(location.strip_prefix("file://").unwrap_or(location));
        let mut read = tokio::fs::read_dir(root.join(dir))
            .await
            .map_err(|e| SourceError(format!("cannot list {}: {e}", root.join(dir).display())))?;
        let mut out = Vec::new();
        while let Ok(Some(entry)) = read.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().await.ok();
            // A link could lead the copy out of the model's directory (an external-data file
            // pointing at a secret came back through inference), so none is followed.
            if kind.is_none_or(|t| t.is_symlink()) {
                return Err(SourceError(format!(
                    "{location}: refusing {name:?}, which is a symbolic link"
                )));
            }
            let is_dir = kind.is_some_and(|t| t.is_dir());
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            out.push(Entry { path, is_dir });
        }
        Ok(out)
    }

    async fn read(&self, location: &str, file: &str) -> Result<Vec<u8>, SourceError> {
        let dir = location.strip_prefix("file://").unwrap_or(location);
        let path = std::path::Path::new(dir).join(file);
        tokio::fs::read(&path)
            .await
            .map_err(|e| SourceError(format!("cannot read {}: {e}", path.display())))
    }
}

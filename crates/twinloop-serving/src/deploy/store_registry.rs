//! Model resolution inside `twinloop server`: its own metadata and artifact stores, no HTTP.

use async_trait::async_trait;
use futures::TryStreamExt;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::location::{Location, LocationPolicy};
use twinloop_meta::StoreHandle;

use crate::source::{Entry, LocalFiles, ModelRegistry, ModelUri, ResolvedModel, SourceError};

pub struct StoreRegistry {
    /// Versions and aliases from the registry, runs' artifact locations from tracking.
    pub store: StoreHandle,
    pub artifacts: ArtifactStore,
    /// Where a version's local source may lie (the server's `--allowed-root`s); `None` refuses
    /// every local source, leaving only the artifact store's.
    pub locations: Option<LocationPolicy>,
}

impl StoreRegistry {
    /// A source outside the artifact store, as the policy resolves it, or a refusal naming only
    /// the source.
    fn local(&self, location: &str) -> Result<String, SourceError> {
        let refused = || SourceError(format!("{location}: not a location this server reads"));
        match self.locations.as_ref().map(|p| p.check(location)) {
            Some(Ok(Location::Local(path))) => Ok(path.display().to_string()),
            _ => Err(refused()),
        }
    }
}

fn proxied(location: &str) -> Option<&str> {
    location
        .strip_prefix("mlflow-artifacts:")
        .map(|p| p.trim_matches('/'))
}

fn path(root: &str, rel: &str) -> Result<ArtifactPath, SourceError> {
    let joined = if rel.is_empty() {
        root.to_string()
    } else {
        format!("{root}/{rel}")
    };
    ArtifactPath::parse(&joined).map_err(|e| SourceError(e.message))
}

/// The error with the resolved path put back as the source names it, so an answer shows the
/// client only what it sent.
fn as_sent(e: SourceError, local: &str, location: &str) -> SourceError {
    SourceError(e.0.replace(local, location))
}

#[async_trait]
impl ModelRegistry for StoreRegistry {
    async fn resolve(&self, uri: &ModelUri) -> Result<ResolvedModel, SourceError> {
        let err = |e: twinloop_core::Error| SourceError(format!("{uri}: {}", e.message));
        let (name, version) = match uri {
            ModelUri::Alias { name, alias } => {
                let mv = self
                    .store
                    .get_model_version_by_alias(name, alias)
                    .await
                    .map_err(err)?;
                (name.clone(), mv.version.to_string())
            }
            ModelUri::Version { name, version } => {
                self.store
                    .get_model_version(name, version)
                    .await
                    .map_err(err)?;
                (name.clone(), version.clone())
            }
            ModelUri::Run { run_id, path } => {
                let run = self.store.get_run(run_id).await.map_err(err)?;
                return Ok(ResolvedModel {
                    name: None,
                    version: "1".into(),
                    location: format!("{}/{path}", run.info.artifact_uri.trim_end_matches('/')),
                });
            }
            ModelUri::Local(_) => return LocalFiles.resolve(uri).await,
        };
        let location = self
            .store
            .get_model_version_download_uri(&name, &version)
            .await
            .map_err(err)?;
        Ok(ResolvedModel {
            name: Some(name),
            version,
            location,
        })
    }

    async fn list(&self, location: &str, dir: &str) -> Result<Vec<Entry>, SourceError> {
        let Some(root) = proxied(location) else {
            let local = self.local(location)?;
            return LocalFiles
                .list(&local, dir)
                .await
                .map_err(|e| as_sent(e, &local, location));
        };
        let entries = self
            .artifacts
            .list(&path(root, dir)?)
            .await
            .map_err(|e| SourceError(e.message))?;
        Ok(entries
            .into_iter()
            .map(|e| Entry {
                path: if dir.is_empty() {
                    e.path
                } else {
                    format!("{dir}/{}", e.path)
                },
                is_dir: e.is_dir,
            })
            .collect())
    }

    async fn read(&self, location: &str, file: &str) -> Result<Vec<u8>, SourceError> {
        let Some(root) = proxied(location) else {
            let local = self.local(location)?;
            return LocalFiles
                .read(&local, file)
                .await
                .map_err(|e| as_sent(e, &local, location));
        };
        let got = self
            .artifacts
            .get(&path(root, file)?)
            .await
            .map_err(|e| SourceError(e.message))?;
        let chunks: Vec<bytes::Bytes> = got
            .stream
            .try_collect()
            .await
            .map_err(|e: twinloop_core::Error| SourceError(e.message))?;
        Ok(chunks.concat())
    }
}

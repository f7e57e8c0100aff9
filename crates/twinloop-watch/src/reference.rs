//! A monitor's reference dataset: a file under an allowed root, a file in the artifact store
//! (`mlflow-artifacts:/…`, `runs:/RUN/…`), or the training set found through lineage.

use std::sync::Arc;

use serde_json::Value;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::location::{Location, LocationPolicy};
use twinloop_meta::{RegistryStore, TrackingStore};
use twinloop_monitor::io::{Table, read_table};

use crate::actions::Deployments;
use crate::error::MonitorError;
use crate::spec::MonitorSpec;

/// `reference: "training"`: the dataset the serving version's run logged as its training input.
pub const TRAINING_REFERENCE: &str = "training";

const RUNS_SCHEME: &str = "runs:/";
const PROXY_SCHEME: &str = "mlflow-artifacts:";

/// Whether `reference` names a file in the artifact store, which the server resolves itself
/// (a client must not make it a local path).
pub fn in_artifact_store(reference: &str) -> bool {
    reference.starts_with(RUNS_SCHEME) || reference.starts_with(PROXY_SCHEME)
}

/// Where a reference's bytes are.
enum Source {
    Local(String),
    Store(ArtifactPath),
}

/// Reads the reference `reference`. A file in the artifact store is read through `artifacts`,
/// whatever its destination (local or S3), its path held inside the store as any client's
/// artifact path is; anything else must be a file inside an allowed root, links resolved, so
/// neither a client's path nor a `file://` URI logged as a training set makes the server read
/// its own files.
pub async fn load(
    reference: &str,
    locations: &LocationPolicy,
    artifacts: &ArtifactStore,
    tracking: &dyn TrackingStore,
) -> Result<Arc<Table>, MonitorError> {
    let table = match source(reference, tracking).await? {
        Source::Local(path) => read_local(&path, locations).await?,
        Source::Store(path) => read_stored(reference, &path, artifacts).await?,
    };
    Ok(Arc::new(table))
}

fn refused(reference: &str, why: impl std::fmt::Display) -> MonitorError {
    MonitorError::Invalid(format!("reference {reference:?}: {why}"))
}

async fn source(reference: &str, tracking: &dyn TrackingStore) -> Result<Source, MonitorError> {
    if reference.starts_with(PROXY_SCHEME) {
        let root = ArtifactPath::parse("").map_err(|e| refused(reference, e.message))?;
        let path = ArtifactPath::in_location(reference, &root)
            .map_err(|e| refused(reference, e.message))?;
        return Ok(Source::Store(path));
    }
    let Some(rest) = reference.strip_prefix(RUNS_SCHEME) else {
        return Ok(Source::Local(reference.to_string()));
    };
    let (run_id, relative) = rest
        .trim_start_matches('/')
        .split_once('/')
        .ok_or_else(|| {
            refused(
                reference,
                "expected runs:/<run id>/<path of a CSV or Parquet artifact>",
            )
        })?;
    let relative = ArtifactPath::client(relative).map_err(|e| refused(reference, e.message))?;
    if relative.is_root() {
        return Err(refused(
            reference,
            "names the run's artifact root, not a file",
        ));
    }
    let run = tracking
        .get_run(run_id)
        .await
        .map_err(|e| refused(reference, e.message))?;
    let location = run.info.artifact_uri;
    match ArtifactPath::in_location(&location, &relative) {
        Ok(path) => Ok(Source::Store(path)),
        // A run whose artifacts live outside the proxied store (a local directory): the file is
        // read as any local reference, under the allowed roots.
        Err(_) if !location.contains("://") || location.starts_with("file://") => {
            Ok(Source::Local(format!(
                "{}/{}",
                location.trim_end_matches('/'),
                relative.as_str()
            )))
        }
        Err(e) => Err(refused(reference, e.message)),
    }
}

async fn read_local(path: &str, locations: &LocationPolicy) -> Result<Table, MonitorError> {
    let p = match locations.check(path) {
        Ok(Location::Local(p)) => p,
        Ok(_) => {
            return Err(MonitorError::Invalid(format!(
                "reference {path:?}: not a local file (hint: a CSV or Parquet file under an allowed \
                 root, or one in the artifact store: mlflow-artifacts:/… or runs:/<run id>/…)"
            )));
        }
        Err(e) => {
            return Err(MonitorError::Invalid(format!(
                "reference: {} (hint: twinloop server --allowed-root)",
                e.message
            )));
        }
    };
    tokio::task::spawn_blocking(move || read_table(&p))
        .await?
        .map_err(MonitorError::Reference)
}

/// Copies the stored file to a private temporary file (the readers want a seekable file: a
/// Parquet footer is at its end), reads it, and removes the copy. Read errors name the
/// reference, never the copy's path on the server.
async fn read_stored(
    reference: &str,
    path: &ArtifactPath,
    artifacts: &ArtifactStore,
) -> Result<Table, MonitorError> {
    let name = path.file_name();
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    if !matches!(ext.as_deref(), Some("csv" | "parquet" | "pq")) {
        return Err(refused(
            reference,
            "unknown file type (hint: use a .parquet or .csv file)",
        ));
    }
    let dir = std::env::temp_dir().join(format!(
        "twinloop-reference-{}",
        twinloop_core::ids::new_uuid()
    ));
    let copy = dir.join(name);
    let copied = match tokio::fs::create_dir(&dir).await {
        Ok(()) => artifacts
            .copy_to_file(path, &copy)
            .await
            .map_err(|e| refused(reference, e.message)),
        Err(e) => Err(refused(reference, format!("cannot make a local copy: {e}"))),
    };
    let table = match copied {
        Ok(_) => tokio::task::spawn_blocking(move || read_table(&copy))
            .await
            .map_err(MonitorError::from),
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    table?.map_err(|e| match e {
        twinloop_monitor::Error::Read { source, .. } => refused(reference, source),
        other => refused(reference, other),
    })
}

/// The reference file of `spec`: its path, or for `"training"` the training dataset that the
/// run of the deployment's serving version logged (lineage: version → run → dataset input).
pub async fn path(
    spec: &MonitorSpec,
    deployments: &dyn Deployments,
    registry: &dyn RegistryStore,
    tracking: &dyn TrackingStore,
) -> Result<String, MonitorError> {
    if spec.reference != TRAINING_REFERENCE {
        return Ok(spec.reference.clone());
    }
    let invalid = MonitorError::Invalid;
    let (model, version) = deployments.serving(&spec.deployment).ok_or_else(|| {
        invalid(format!(
            "reference \"training\": no deployment {:?} is serving",
            spec.deployment
        ))
    })?;
    let mv = registry
        .get_model_version(&model, &version)
        .await
        .map_err(MonitorError::Lineage)?;
    let run_id = Some(mv.run_id).filter(|r| !r.is_empty()).ok_or_else(|| {
        invalid(format!(
            "reference \"training\": {model} version {version} has no run to find its training set through"
        ))
    })?;
    let run = tracking
        .get_run(&run_id)
        .await
        .map_err(MonitorError::Lineage)?;
    run.inputs
        .iter()
        .filter(|i| {
            i.tags
                .iter()
                .any(|t| t.key == "mlflow.data.context" && t.value == "training")
        })
        .find_map(|i| dataset_uri(&i.dataset.source))
        .ok_or_else(|| {
            invalid(format!(
                "reference \"training\": run {run_id} of {model} version {version} logged no training \
                 dataset with a file or artifact uri (hint: twinloop features get-historical --run-id, or give the \
                 reference's path)"
            ))
        })
}

/// Where a dataset source `{"uri": …}` (MLflow's source JSON) is: a local path for a `file://`
/// URI or a bare path, an artifact-store reference as it is.
fn dataset_uri(source: &str) -> Option<String> {
    let source: Value = serde_json::from_str(source).ok()?;
    let uri = source.get("uri")?.as_str()?;
    if in_artifact_store(uri) {
        return Some(uri.to_string());
    }
    Some(uri.strip_prefix("file://").unwrap_or(uri).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_uri_becomes_a_path_or_stays_a_store_reference() {
        assert_eq!(
            dataset_uri(r#"{"uri": "file:///data/train.parquet"}"#).as_deref(),
            Some("/data/train.parquet")
        );
        assert_eq!(
            dataset_uri(r#"{"uri": "/t.csv"}"#).as_deref(),
            Some("/t.csv")
        );
        assert_eq!(
            dataset_uri(r#"{"uri": "mlflow-artifacts:/d/t.csv"}"#).as_deref(),
            Some("mlflow-artifacts:/d/t.csv")
        );
        assert_eq!(
            dataset_uri(r#"{"uri": "runs:/abc/t.csv"}"#).as_deref(),
            Some("runs:/abc/t.csv")
        );
        assert_eq!(dataset_uri(r#"{"path": "x"}"#), None);
        assert_eq!(dataset_uri("not json"), None);
    }
}

//! A monitor's reference dataset: a file, or the training set found through lineage.

use std::sync::Arc;

use serde_json::Value;
use twinloop_core::location::{Location, LocationPolicy};
use twinloop_meta::{RegistryStore, TrackingStore};
use twinloop_monitor::io::{Table, read_table};

use crate::actions::Deployments;
use crate::error::MonitorError;
use crate::spec::MonitorSpec;

/// `reference: "training"`: the dataset the serving version's run logged as its training input.
pub const TRAINING_REFERENCE: &str = "training";

/// Reads the reference at `path` when `locations` allows it: a file inside an allowed root,
/// links resolved, so neither a client's path nor a `file://` URI logged as a training set
/// makes the server read its own files.
pub async fn load(path: &str, locations: &LocationPolicy) -> Result<Arc<Table>, MonitorError> {
    let p = match locations.check(path) {
        Ok(Location::Local(p)) => p,
        Ok(_) => {
            return Err(MonitorError::Invalid(format!(
                "reference {path:?}: not a local file (hint: a CSV or Parquet file under an allowed root)"
            )));
        }
        Err(e) => {
            return Err(MonitorError::Invalid(format!(
                "reference: {} (hint: twinloop server --allowed-root)",
                e.message
            )));
        }
    };
    let table = tokio::task::spawn_blocking(move || read_table(&p))
        .await?
        .map_err(MonitorError::Reference)?;
    Ok(Arc::new(table))
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
        .find_map(|i| file_uri(&i.dataset.source))
        .ok_or_else(|| {
            invalid(format!(
                "reference \"training\": run {run_id} of {model} version {version} logged no training \
                 dataset with a file uri (hint: twinloop features get-historical --run-id, or give the \
                 reference's path)"
            ))
        })
}

/// The local path of a dataset source `{"uri": "file:///…"}` (MLflow's source JSON).
fn file_uri(source: &str) -> Option<String> {
    let source: Value = serde_json::from_str(source).ok()?;
    let uri = source.get("uri")?.as_str()?;
    Some(uri.strip_prefix("file://").unwrap_or(uri).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_uri_becomes_a_path() {
        assert_eq!(
            file_uri(r#"{"uri": "file:///data/train.parquet"}"#).as_deref(),
            Some("/data/train.parquet")
        );
        assert_eq!(file_uri(r#"{"uri": "/t.csv"}"#).as_deref(), Some("/t.csv"));
        assert_eq!(file_uri(r#"{"path": "x"}"#), None);
        assert_eq!(file_uri("not json"), None);
    }
}

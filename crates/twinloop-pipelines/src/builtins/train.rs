//! `model.train-linear@1`: the built-in trainer (logistic regression or gradient-boosted trees
//! from `twinloop-learn`), so the loop needs no Python. Reads the training set, trains on the
//! blocking pool, writes the ONNX model and its training metrics.

use serde_json::Value;
use twinloop_core::tracking::{Dataset, DatasetInput, Param, Tag};
use twinloop_learn::dataset::read_table;
use twinloop_learn::train::{TrainConfig, Trained, train};

use super::{Ctx, Values};
use crate::cache::digest::path_digest;

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let mut with = ctx.with.as_object().cloned().unwrap_or_default();
    let Some(Value::String(data)) = with.remove("data") else {
        return Err("model.train-linear@1 with.data: the training set's path".into());
    };
    let config: TrainConfig = serde_json::from_value(Value::Object(with))
        .map_err(|e| format!("model.train-linear@1 with: {e}"))?;
    let model_path = ctx.output_path("model");
    let data_path = data.clone();
    let trained = tokio::task::spawn_blocking(move || {
        let table = read_table(std::path::Path::new(&data), &config.columns())
            .map_err(|e| format!("cannot read the training set: {e}"))?;
        let trained = train(&config, &table).map_err(|e| e.to_string())?;
        std::fs::write(&model_path, &trained.onnx)
            .map_err(|e| format!("cannot write the model: {e}"))?;
        Ok::<_, String>((trained, table.rows, table.dropped))
    })
    .await
    .map_err(|e| format!("the trainer stopped: {e}"))??;
    let (trained, rows, dropped) = trained;
    if !dropped.is_empty() {
        let names: Vec<String> = dropped
            .iter()
            .map(|d| format!("{} ({})", d.column, d.datatype))
            .collect();
        ctx.log.line(format!("not features: {}", names.join(", ")));
    }
    ctx.log.line(format!(
        "trained {} on {rows} rows × {} features ({}): {}",
        trained.trainer,
        trained.features.len(),
        trained.features.join(", "),
        trained
            .train_metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    log_training_run(ctx, &data_path, rows, &trained).await;
    let metrics = serde_json::to_value(&trained.train_metrics).map_err(|e| e.to_string())?;
    Ok(Values::from([("metrics".to_owned(), metrics)]))
}

/// The step's tracking run as MLflow users know a training run: the trainer's params, and the
/// training set as its `training` dataset input, which is how a monitor's `reference:
/// training` finds it (version → run → dataset input).
async fn log_training_run(ctx: &Ctx<'_>, data: &str, rows: usize, trained: &Trained) {
    let (Some(services), Some(run_id)) = (ctx.services, ctx.mlflow_run_id) else {
        return;
    };
    let store = &services.store;
    let mut params = vec![Param {
        key: "trainer".into(),
        value: trained.trainer.into(),
    }];
    if let Some(map) = trained.params.as_object() {
        params.extend(map.iter().map(|(k, v)| Param {
            key: k.clone(),
            value: crate::expr::to_text(v),
        }));
    }
    if let Err(e) = store.log_batch(run_id, &[], &params, &[]).await {
        tracing::warn!(error = %e, "cannot log the trainer's params");
    }
    let digest = path_digest(std::path::Path::new(data)).unwrap_or_default();
    let input = DatasetInput {
        tags: vec![Tag::new("mlflow.data.context", "training")],
        dataset: Dataset {
            name: "training_set".into(),
            digest: digest.chars().take(8).collect(),
            source_type: "local".into(),
            source: serde_json::json!({ "uri": data }).to_string(),
            schema: None,
            profile: Some(serde_json::json!({ "num_rows": rows }).to_string()),
        },
    };
    if let Err(e) = store.log_inputs(run_id, &[input], &[]).await {
        tracing::warn!(error = %e, "cannot log the training set as the run's input");
    }
}

//! `model.train-linear@1`: the built-in trainer (logistic regression or gradient-boosted trees
//! from `twinloop-learn`), so the loop needs no Python. Reads the training set, trains on the
//! blocking pool, writes the ONNX model and its training metrics.

use serde_json::Value;
use twinloop_learn::dataset::read_table;
use twinloop_learn::train::{TrainConfig, train};

use super::{Ctx, Values};

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let mut with = ctx.with.as_object().cloned().unwrap_or_default();
    let Some(Value::String(data)) = with.remove("data") else {
        return Err("model.train-linear@1 with.data: the training set's path".into());
    };
    let config: TrainConfig = serde_json::from_value(Value::Object(with))
        .map_err(|e| format!("model.train-linear@1 with: {e}"))?;
    let model_path = ctx.output_path("model");
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
    let metrics = serde_json::to_value(&trained.train_metrics).map_err(|e| e.to_string())?;
    Ok(Values::from([("metrics".to_owned(), metrics)]))
}

//! The repository the quickstart writes into `--dir` and runs from, so that the user can read
//! it, edit it and run it again: the feature definitions, the training pipeline with its monitor
//! trigger, and a README saying what each file is.

use std::path::Path;

use anyhow::{Context, Result};

use super::data::FEATURES;

/// What makes `bad-model` bad: the pipeline loses every feature but `hour` (a broken edit), so
/// the retrained candidate cannot beat the champion and the gate must reject it.
pub fn train_features(bad_model: bool) -> Vec<&'static str> {
    if bad_model {
        vec!["hour"]
    } else {
        FEATURES.to_vec()
    }
}

fn twinloop_yaml(store_uri: &str) -> String {
    format!(
        "# The feature repository of the quickstart (twinloop features --repo . plan | apply | …).\n\
         project: fraud\n\
         registry: \"{store_uri}\"\n\
         online_store: {{type: embedded}}\n"
    )
}

fn features_yaml() -> String {
    let features: String = FEATURES
        .iter()
        .map(|f| format!("      - {{name: {f}, dtype: float64}}\n"))
        .collect();
    let service: String = FEATURES
        .iter()
        .map(|f| format!("      - transactions:{f}\n"))
        .collect();
    format!(
        "entities:\n  - {{name: transaction, join_keys: [txn_id]}}\n\n\
         sources:\n  - name: transactions\n    path: data/transactions.parquet\n    timestamp_field: event_timestamp\n\n\
         feature_views:\n  - name: transactions\n    entities: [transaction]\n    source: transactions\n    ttl: 3650d\n    features:\n{features}\n\
         feature_services:\n  - name: fraud_v1\n    features:\n{service}"
    )
}

/// How the train step trains: the built-in Rust trainer, or (`--python`) `src/train.py` with
/// scikit-learn and skl2onnx, logging to the step's MLflow run.
fn train_step(bad_model: bool, python: bool) -> String {
    if python {
        let features = train_features(bad_model).join(",");
        return format!(
            "\x20 train:\n    run: python3 src/train.py --features {features}\n    inputs:\n      train: ${{{{ steps.training_set.outputs.train }}}}\n    outputs:\n      model: {{kind: file}}\n      metrics: {{kind: metrics}}\n    code: [src/train.py]\n\n"
        );
    }
    let features = train_features(bad_model).join(", ");
    format!(
        "\x20 train:\n    uses: model.train-linear@1\n    with:\n      data: ${{{{ steps.training_set.outputs.train }}}}\n      label: is_fraud\n      features: [{features}]\n\n"
    )
}

/// The training pipeline: validate the labels, build a point-in-time training set with the
/// newest days held out, train, gate against the serving champion, register, canary. The
/// monitor trigger starts it again when the deployment's monitor asks for a retrain.
pub fn pipeline_yaml(bad_model: bool, python: bool) -> String {
    let train = train_step(bad_model, python);
    format!(
        "pipeline: fraud-train\n\
         description: Train the fraud model, gate it against the champion, canary it.\n\n\
         params:\n  holdout: 3d\n\n\
         triggers:\n  - monitor: {{event: retrain_requested, deployment: fraud}}\n\n\
         policy:\n  concurrency: {{max: 1, on_conflict: skip}}\n  cooldown: 10m\n  max_runs_per_day: 6\n\n\
         steps:\n\
         \x20 validate:\n    uses: data.validate@1\n    with: {{data: data/labels.parquet, fail_on: [quality]}}\n\n\
         \x20 training_set:\n    uses: features.training-set@1\n    needs: [validate]\n    with:\n      entities: data/labels.parquet\n      features: service:fraud_v1\n      split: {{holdout: \"${{{{ params.holdout }}}}\", by: event_timestamp}}\n\n\
         {train}\
         \x20 evaluate:\n    uses: model.evaluate@1\n    with:\n      candidate: ${{{{ steps.train.outputs.model }}}}\n      baseline: models:/fraud@champion\n      data: ${{{{ steps.training_set.outputs.holdout }}}}\n      label: is_fraud\n      metrics:\n        roc_auc: {{threshold: 0.7, min_absolute_change: 0.0}}\n      on_no_baseline: bless\n\n\
         \x20 register:\n    uses: model.register@1\n    when: ${{{{ steps.evaluate.outputs.blessed }}}}\n    with:\n      name: fraud\n      model: ${{{{ steps.train.outputs.model }}}}\n      alias: challenger\n\n\
         \x20 deploy:\n    uses: deploy.canary@1\n    with:\n      deployment: fraud\n      model: fraud\n      candidate: ${{{{ steps.register.outputs.version }}}}\n      steps: [10, 50, 100]\n      interval: 2s\n      max_error_rate: 0.05\n      on_promote: {{alias: champion}}\n"
    )
}

const README: &str = "# The twinloop quickstart's repository\n\n\
Written by `twinloop quickstart`; edit it and run it again.\n\n\
- `twinloop.yaml`, `features.yaml`: the feature repository (one view over `data/transactions.parquet`).\n\
- `data/labels.parquet`: which transaction was fraud; the training set's entity rows.\n\
- `pipelines/fraud-train.yaml`: validate → training set → train → gate → register → canary; a\n\
  monitor's `retrain_requested` starts it again.\n\
- `twinloop-data/`: the metadata store and artifacts of the server the quickstart ran.\n\n\
Try:\n\n\
    twinloop server --backend-store-uri sqlite:///twinloop-data/twinloop.db --artifacts-destination twinloop-data/artifacts\n\
    twinloop pipeline plan pipelines/fraud-train.yaml\n\
    twinloop pipeline run pipelines/fraud-train.yaml --backend-store-uri sqlite:///twinloop-data/twinloop.db --artifacts-destination twinloop-data/artifacts\n";

/// The `--python` trainer: scikit-learn's logistic regression, exported with skl2onnx under the
/// names the built-in trainer uses (input `input`, outputs `label` and `probabilities`, the
/// features in the model's metadata), its params and training set logged to the step's MLflow
/// run, which `mlflow.start_run()` resumes.
const TRAIN_PY: &str = include_str!("files/train.py");

/// Writes the repository's files (the data is written apart, as it "arrives").
pub fn write(dir: &Path, store_uri: &str, bad_model: bool, python: bool) -> Result<()> {
    let mut files = vec![
        ("twinloop.yaml", twinloop_yaml(store_uri)),
        ("features.yaml", features_yaml()),
        (
            "pipelines/fraud-train.yaml",
            pipeline_yaml(bad_model, python),
        ),
        ("README.md", README.to_owned()),
        (".gitignore", "twinloop-data/\n.twinloop/\n".to_owned()),
    ];
    if python {
        files.push(("src/train.py", TRAIN_PY.to_owned()));
    }
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_is_valid_and_bad_model_only_changes_the_features() {
        for bad in [false, true] {
            for python in [false, true] {
                let yaml = pipeline_yaml(bad, python);
                let parsed = twinloop_pipelines::spec::parse("fraud-train.yaml", &yaml);
                assert!(
                    parsed.is_ok(),
                    "{}",
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                );
            }
        }
        assert!(pipeline_yaml(true, false).contains("features: [hour]"));
        assert!(pipeline_yaml(false, false).contains("features: [amount, hour"));
        assert!(pipeline_yaml(true, true).contains("src/train.py --features hour\n"));
    }
}

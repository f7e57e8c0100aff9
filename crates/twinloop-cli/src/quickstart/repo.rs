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

/// The training pipeline: validate the labels, build a point-in-time training set with the
/// newest days held out, train, gate against the serving champion, register, canary. The
/// monitor trigger starts it again when the deployment's monitor asks for a retrain.
pub fn pipeline_yaml(bad_model: bool) -> String {
    let features = train_features(bad_model).join(", ");
    format!(
        "pipeline: fraud-train\n\
         description: Train the fraud model, gate it against the champion, canary it.\n\n\
         params:\n  holdout: 3d\n\n\
         triggers:\n  - monitor: {{event: retrain_requested, deployment: fraud}}\n\n\
         policy:\n  concurrency: {{max: 1, on_conflict: skip}}\n  cooldown: 10m\n  max_runs_per_day: 6\n\n\
         steps:\n\
         \x20 validate:\n    uses: data.validate@1\n    with: {{data: data/labels.parquet, fail_on: [quality]}}\n\n\
         \x20 training_set:\n    uses: features.training-set@1\n    needs: [validate]\n    with:\n      entities: data/labels.parquet\n      features: service:fraud_v1\n      split: {{holdout: \"${{{{ params.holdout }}}}\", by: event_timestamp}}\n\n\
         \x20 train:\n    uses: model.train-linear@1\n    with:\n      data: ${{{{ steps.training_set.outputs.train }}}}\n      label: is_fraud\n      features: [{features}]\n\n\
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

/// Writes the repository's files (the data is written apart, as it "arrives").
pub fn write(dir: &Path, store_uri: &str, bad_model: bool) -> Result<()> {
    let files = [
        ("twinloop.yaml", twinloop_yaml(store_uri)),
        ("features.yaml", features_yaml()),
        ("pipelines/fraud-train.yaml", pipeline_yaml(bad_model)),
        ("README.md", README.to_owned()),
        (".gitignore", "twinloop-data/\n.twinloop/\n".to_owned()),
    ];
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
            let parsed = twinloop_pipelines::spec::parse("fraud-train.yaml", &pipeline_yaml(bad));
            assert!(
                parsed.is_ok(),
                "{}",
                parsed.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
        assert!(pipeline_yaml(true).contains("features: [hour]"));
        assert!(pipeline_yaml(false).contains("features: [amount, hour"));
    }
}

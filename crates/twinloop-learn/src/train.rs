//! The entry point of the `model.train-linear` built-in: a training table and the step's
//! settings in, an ONNX model and its training metrics out. Two algorithms: logistic regression
//! (the default) and gradient-boosted trees (`algorithm: gradient_boosting`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::dataset::{Columns, DatasetError, Table};
use crate::linear::{FitError, LogisticModel, LogisticParams, fit_logistic};
use crate::metrics::{Metric, MetricError, Scores, compute};
use crate::onnx::{ExportError, Provenance, export_logistic, export_trees};
use crate::trees::{BoostedTrees, TreeParams, fit_trees};

/// The step's `with:` settings, less its input (`data`), which the built-in resolves itself:
///
/// ```json
/// {"label": "is_fraud", "exclude": ["user_id"], "algorithm": "logistic_regression",
///  "params": {"l2": 0.001}}
/// ```
///
/// `features` names the columns to use (default: every numeric one but the label and
/// `exclude`); `params` are the algorithm's, each with a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct TrainConfig {
    pub label: String,
    pub features: Option<Vec<String>>,
    pub exclude: Vec<String>,
    pub algorithm: Algorithm,
}

/// A trainer and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    Logistic(LogisticParams),
    GradientBoosting(TreeParams),
}

impl Algorithm {
    /// The name a config and the model's metadata use.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Logistic(_) => "logistic_regression",
            Algorithm::GradientBoosting(_) => "gradient_boosting",
        }
    }

    fn params(&self) -> Result<Value, serde_json::Error> {
        match self {
            Algorithm::Logistic(p) => serde_json::to_value(p),
            Algorithm::GradientBoosting(p) => serde_json::to_value(p),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    label: String,
    #[serde(default)]
    features: Option<Vec<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    algorithm: AlgorithmName,
    #[serde(default)]
    params: Map<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum AlgorithmName {
    #[default]
    LogisticRegression,
    GradientBoosting,
}

impl TryFrom<RawConfig> for TrainConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let params = Value::Object(raw.params);
        let algorithm = match raw.algorithm {
            AlgorithmName::LogisticRegression => serde_json::from_value(params)
                .map(Algorithm::Logistic)
                .map_err(|e| format!("params of logistic_regression: {e}"))?,
            AlgorithmName::GradientBoosting => serde_json::from_value(params)
                .map(Algorithm::GradientBoosting)
                .map_err(|e| format!("params of gradient_boosting: {e}"))?,
        };
        Ok(TrainConfig {
            label: raw.label,
            features: raw.features,
            exclude: raw.exclude,
            algorithm,
        })
    }
}

impl TrainConfig {
    /// The columns to read the training set with.
    pub fn columns(&self) -> Columns {
        Columns {
            label: Some(self.label.clone()),
            features: self.features.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

/// A trained model, exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The encoded ONNX model (see [`crate::onnx`] for its signature and metadata).
    pub onnx: Vec<u8>,
    /// The input's columns, in order.
    pub features: Vec<String>,
    /// e.g. `logistic_regression`.
    pub trainer: &'static str,
    /// Every parameter, defaults included.
    pub params: Value,
    /// `log_loss`, `accuracy` and `roc_auc` on the training rows.
    pub train_metrics: BTreeMap<String, f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("the training set has no label column")]
    NoLabel,
    #[error("cannot train: {0}")]
    Fit(#[from] FitError),
    #[error("cannot score the training rows: {0}")]
    Metric(#[from] MetricError),
    #[error("cannot export the model: {0}")]
    Export(#[from] ExportError),
    #[error("cannot record the parameters: {0}")]
    Params(#[from] serde_json::Error),
}

/// The metrics recorded on the training rows.
const TRAIN_METRICS: [Metric; 3] = [Metric::LogLoss, Metric::Accuracy, Metric::RocAuc];

/// A fitted model of any algorithm.
enum Fitted {
    Logistic(LogisticModel),
    Trees(BoostedTrees),
}

impl Fitted {
    fn fit(algorithm: &Algorithm, table: &Table, y: &[f64]) -> Result<Fitted, FitError> {
        let features = table.features.len();
        Ok(match algorithm {
            Algorithm::Logistic(params) => {
                Fitted::Logistic(fit_logistic(&table.x, y, features, params)?)
            }
            Algorithm::GradientBoosting(params) => {
                Fitted::Trees(fit_trees(&table.x, y, features, params)?)
            }
        })
    }

    fn predict_proba(&self, x: &[f64]) -> Result<Vec<f64>, FitError> {
        match self {
            Fitted::Logistic(model) => model.predict_proba(x),
            Fitted::Trees(model) => model.predict_proba(x),
        }
    }

    fn export(&self, provenance: &Provenance) -> Result<Vec<u8>, ExportError> {
        match self {
            Fitted::Logistic(model) => export_logistic(model, provenance),
            Fitted::Trees(model) => export_trees(model, provenance),
        }
    }
}

/// Fits `config`'s algorithm on `table` (read with [`TrainConfig::columns`]) and exports it.
pub fn train(config: &TrainConfig, table: &Table) -> Result<Trained, LearnError> {
    let y = table.y.as_deref().ok_or(LearnError::NoLabel)?;
    let fitted = Fitted::fit(&config.algorithm, table, y)?;
    let scores = Scores::Probabilities(fitted.predict_proba(&table.x)?);
    let train_metrics = TRAIN_METRICS
        .iter()
        .map(|&m| Ok((m.name().to_owned(), compute(m, y, &scores)?)))
        .collect::<Result<BTreeMap<_, _>, MetricError>>()?;
    let provenance = Provenance {
        trainer: config.algorithm.name().to_owned(),
        features: table.features.clone(),
        params: config.algorithm.params()?,
        train_metrics,
    };
    let onnx = fitted.export(&provenance)?;
    Ok(Trained {
        onnx,
        features: provenance.features,
        trainer: config.algorithm.name(),
        params: provenance.params,
        train_metrics: provenance.train_metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(with: Value) -> Result<TrainConfig, serde_json::Error> {
        serde_json::from_value(with)
    }

    #[test]
    fn a_config_needs_only_the_label() {
        let c = config(json!({"label": "is_fraud"})).unwrap();
        assert_eq!(c.algorithm, Algorithm::Logistic(LogisticParams::default()));
        assert_eq!(
            c.columns(),
            Columns {
                label: Some("is_fraud".into()),
                features: None,
                exclude: vec![],
            }
        );
        let c = config(json!({
            "label": "y", "exclude": ["user_id"], "algorithm": "logistic_regression",
            "params": {"l2": 0.5, "max_iter": 3}
        }))
        .unwrap();
        let Algorithm::Logistic(p) = c.algorithm else {
            panic!("{c:?}");
        };
        assert_eq!((p.l2, p.max_iter), (0.5, 3));
        assert_eq!(c.exclude, ["user_id"]);
        let c = config(json!({
            "label": "y", "algorithm": "gradient_boosting", "params": {"n_trees": 7}
        }))
        .unwrap();
        let Algorithm::GradientBoosting(p) = c.algorithm else {
            panic!("{c:?}");
        };
        assert_eq!(
            (p.n_trees, p.max_depth),
            (7, TreeParams::default().max_depth)
        );
    }

    #[test]
    fn config_mistakes_are_named() {
        for (with, wanted) in [
            (json!({}), "missing field `label`"),
            (json!({"label": "y", "lr": 0.1}), "unknown field `lr`"),
            (
                json!({"label": "y", "params": {"lr": 0.1}}),
                "params of logistic_regression: unknown field `lr`",
            ),
            (
                json!({"label": "y", "algorithm": "svm"}),
                "unknown variant `svm`",
            ),
            (
                json!({"label": "y", "params": {"l2": "big"}}),
                "params of logistic_regression: invalid type",
            ),
            (
                json!({
                    "label": "y", "algorithm": "gradient_boosting",
                    "params": {"l2": 1, "depth": 2}
                }),
                "params of gradient_boosting: unknown field `depth`",
            ),
        ] {
            let err = config(with.clone()).unwrap_err().to_string();
            assert!(err.contains(wanted), "{with}: {err}");
        }
    }

    fn table() -> Table {
        // One informative feature and one pure noise column; the label follows x0 with overlap.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let x0 = f64::from(i % 20) / 10.0 - 1.0;
            let noise = f64::from((i * 7919) % 13) / 13.0;
            x.extend([x0, noise]);
            y.push(if x0 + 0.3 * (noise - 0.5) > 0.0 {
                1.0
            } else {
                0.0
            });
        }
        Table {
            features: vec!["x0".into(), "noise".into()],
            rows: 200,
            x,
            y: Some(y),
            dropped: vec![],
        }
    }

    #[test]
    fn training_records_metrics_params_and_features() {
        let c = config(json!({"label": "y"})).unwrap();
        let trained = train(&c, &table()).unwrap();
        assert_eq!(trained.features, ["x0", "noise"]);
        assert_eq!(trained.trainer, "logistic_regression");
        assert_eq!(trained.params["l2"], json!(1e-4));
        let m = &trained.train_metrics;
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            ["accuracy", "log_loss", "roc_auc"]
        );
        assert!(m["accuracy"] > 0.9, "{m:?}");
        assert!(m["roc_auc"] > 0.95, "{m:?}");
        assert!(m["log_loss"] > 0.0 && m["log_loss"] < 0.3, "{m:?}");
        let metadata = crate::onnx::metadata(&trained.onnx).unwrap();
        assert_eq!(metadata[crate::onnx::TRAINER_KEY], "logistic_regression");
        assert_eq!(
            crate::onnx::features(&trained.onnx).unwrap(),
            Some(trained.features.clone())
        );
    }

    #[test]
    fn gradient_boosting_trains_and_exports_too() {
        let c = config(json!({"label": "y", "algorithm": "gradient_boosting"})).unwrap();
        let trained = train(&c, &table()).unwrap();
        assert_eq!(trained.trainer, "gradient_boosting");
        assert_eq!(trained.params["n_trees"], json!(100));
        assert!(
            trained.train_metrics["accuracy"] > 0.9,
            "{:?}",
            trained.train_metrics
        );
        let metadata = crate::onnx::metadata(&trained.onnx).unwrap();
        assert_eq!(metadata[crate::onnx::TRAINER_KEY], "gradient_boosting");
    }

    #[test]
    fn a_table_without_labels_or_with_one_class_is_refused() {
        let c = config(json!({"label": "y"})).unwrap();
        let unlabelled = Table { y: None, ..table() };
        assert!(matches!(train(&c, &unlabelled), Err(LearnError::NoLabel)));
        let one_class = Table {
            y: Some(vec![1.0; 200]),
            ..table()
        };
        let err = train(&c, &one_class).unwrap_err().to_string();
        assert!(err.contains("needs both classes"), "{err}");
    }
}

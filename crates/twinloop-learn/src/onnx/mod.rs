//! ONNX export of the built-in trainers' models, written with our own declarations of the
//! protobuf messages ([`proto`]), and the reading back of the metadata they carry.
//!
//! Every exported classifier has one input, `input` float `[N, features]` in the order of the
//! `twinloop.features` metadata, and skl2onnx's outputs with zipmap off: `label` int64 `[N]` and
//! `probabilities` float `[N, 2]`.

mod build;
mod logistic;
pub mod proto;
mod trees;

use std::collections::BTreeMap;

use prost::Message;

pub use logistic::export_logistic;
pub use trees::export_trees;

pub const INPUT: &str = "input";
pub const LABEL: &str = "label";
pub const PROBABILITIES: &str = "probabilities";

/// Metadata keys: the feature columns as a JSON list (the input's column order), the trainer's
/// name, its parameters (JSON object) and its metrics on the training rows (JSON object).
pub const FEATURES_KEY: &str = "twinloop.features";
pub const TRAINER_KEY: &str = "twinloop.trainer";
pub const PARAMS_KEY: &str = "twinloop.params";
pub const TRAIN_METRICS_KEY: &str = "twinloop.train_metrics";

/// What an exported model says about how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// e.g. `logistic_regression`.
    pub trainer: String,
    pub features: Vec<String>,
    pub params: serde_json::Value,
    pub train_metrics: BTreeMap<String, f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the model has {model} features but {named} feature names were given")]
    Features { model: usize, named: usize },
    #[error("cannot write the model's metadata: {0}")]
    Metadata(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("metadata {FEATURES_KEY} is not a JSON list of names: {0}")]
    Features(#[from] serde_json::Error),
}

impl Provenance {
    fn check(&self, features: usize) -> Result<(), ExportError> {
        if self.features.len() == features {
            Ok(())
        } else {
            Err(ExportError::Features {
                model: features,
                named: self.features.len(),
            })
        }
    }

    fn metadata(&self) -> Result<Vec<(String, String)>, ExportError> {
        Ok(vec![
            (
                FEATURES_KEY.to_owned(),
                serde_json::to_string(&self.features)?,
            ),
            (TRAINER_KEY.to_owned(), self.trainer.clone()),
            (PARAMS_KEY.to_owned(), serde_json::to_string(&self.params)?),
            (
                TRAIN_METRICS_KEY.to_owned(),
                serde_json::to_string(&self.train_metrics)?,
            ),
        ])
    }
}

/// The `metadata_props` of any ONNX model, ours or another tool's.
pub fn metadata(onnx: &[u8]) -> Result<BTreeMap<String, String>, ReadError> {
    let model = proto::ModelProto::decode(onnx)?;
    Ok(model
        .metadata_props
        .into_iter()
        .filter_map(|p| Some((p.key?, p.value.unwrap_or_default())))
        .collect())
}

/// The feature columns, in input order, of a model this crate exported; `None` for a model
/// without the `twinloop.features` key (one trained elsewhere).
pub fn features(onnx: &[u8]) -> Result<Option<Vec<String>>, ReadError> {
    metadata(onnx)?
        .get(FEATURES_KEY)
        .map(|list| serde_json::from_str(list).map_err(ReadError::from))
        .transpose()
}

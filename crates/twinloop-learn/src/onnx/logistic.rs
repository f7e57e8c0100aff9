//! A logistic model as a standard-opset graph:
//! `input → Sub(mean) → Div(scale) → MatMul(weights) → Add(intercept) → logit`, then the shared
//! classifier tail. The standardization stays a visible step rather than being folded into the
//! weights, so the graph reads like the model.

use super::build::{binary_tail, input, model, node, tensor};
use super::proto::GraphProto;
use super::{ExportError, INPUT, Provenance};
use crate::linear::LogisticModel;

/// The encoded ONNX model of `fitted`, with `provenance` in its metadata.
pub fn export_logistic(
    fitted: &LogisticModel,
    provenance: &Provenance,
) -> Result<Vec<u8>, ExportError> {
    let features = fitted.features();
    provenance.check(features)?;
    let mut initializers = vec![
        tensor("mean", &[features], &fitted.standardizer.mean),
        tensor("scale", &[features], &fitted.standardizer.scale),
        tensor("weights", &[features, 1], &fitted.weights),
        tensor("intercept", &[1], &[fitted.intercept]),
    ];
    let mut nodes = vec![
        node("Sub", &[INPUT, "mean"], "centered", vec![]),
        node("Div", &["centered", "scale"], "standardized", vec![]),
        node("MatMul", &["standardized", "weights"], "margin", vec![]),
        node("Add", &["margin", "intercept"], "logit", vec![]),
    ];
    let output = binary_tail("logit", &mut nodes, &mut initializers);
    let graph = GraphProto {
        node: nodes,
        name: Some("logistic_regression".to_owned()),
        initializer: initializers,
        input: vec![input(features)],
        output,
    };
    Ok(model(graph, false, provenance.metadata()?))
}

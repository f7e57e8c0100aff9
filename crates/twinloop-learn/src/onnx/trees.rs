//! Boosted trees as one `ai.onnx.ml` `TreeEnsembleRegressor` summing the trees' log-odds (with
//! the base score as its base value), then the same classifier tail as the logistic model. A
//! regressor rather than `TreeEnsembleClassifier`, whose binary case derives the second class's
//! score from one weight column by rules of its own: a plain sum of leaves is unambiguous.

use super::build::{binary_tail, floats, input, int, ints, ml_node, model, string, strings};
use super::proto::GraphProto;
use super::{ExportError, INPUT, Provenance};
use crate::trees::{BoostedTrees, Node};

/// The ensemble's attribute lists, one entry per node (and per leaf for the targets).
#[derive(Default)]
struct Columns {
    tree: Vec<i64>,
    node: Vec<i64>,
    feature: Vec<i64>,
    mode: Vec<&'static str>,
    value: Vec<f32>,
    left: Vec<i64>,
    right: Vec<i64>,
    leaf_tree: Vec<i64>,
    leaf_node: Vec<i64>,
    leaf_value: Vec<f32>,
}

fn columns(model: &BoostedTrees) -> Columns {
    let mut c = Columns::default();
    for (t, tree) in model.trees.iter().enumerate() {
        for (n, node) in tree.nodes.iter().enumerate() {
            c.tree.push(t as i64);
            c.node.push(n as i64);
            match *node {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    c.feature.push(feature as i64);
                    c.mode.push("BRANCH_LEQ");
                    c.value.push(threshold);
                    c.left.push(left as i64);
                    c.right.push(right as i64);
                }
                Node::Leaf { value } => {
                    c.feature.push(0);
                    c.mode.push("LEAF");
                    c.value.push(0.0);
                    c.left.push(0);
                    c.right.push(0);
                    c.leaf_tree.push(t as i64);
                    c.leaf_node.push(n as i64);
                    c.leaf_value.push(value);
                }
            }
        }
    }
    c
}

/// The encoded ONNX model of `fitted`, with `provenance` in its metadata.
pub fn export_trees(
    fitted: &BoostedTrees,
    provenance: &Provenance,
) -> Result<Vec<u8>, ExportError> {
    provenance.check(fitted.features)?;
    let c = columns(fitted);
    let targets = c.leaf_node.len();
    let ensemble = ml_node(
        "TreeEnsembleRegressor",
        &[INPUT],
        "logit",
        vec![
            string("aggregate_function", "SUM"),
            floats("base_values", vec![fitted.base_score]),
            int("n_targets", 1),
            ints("nodes_treeids", c.tree),
            ints("nodes_nodeids", c.node),
            ints("nodes_featureids", c.feature),
            strings("nodes_modes", &c.mode),
            floats("nodes_values", c.value),
            ints("nodes_truenodeids", c.left),
            ints("nodes_falsenodeids", c.right),
            string("post_transform", "NONE"),
            ints("target_treeids", c.leaf_tree),
            ints("target_nodeids", c.leaf_node),
            ints("target_ids", vec![0; targets]),
            floats("target_weights", c.leaf_value),
        ],
    );
    let mut nodes = vec![ensemble];
    let mut initializers = Vec::new();
    let output = binary_tail("logit", &mut nodes, &mut initializers);
    let graph = GraphProto {
        node: nodes,
        name: Some("gradient_boosting".to_owned()),
        initializer: initializers,
        input: vec![input(fitted.features)],
        output,
    };
    Ok(model(graph, true, provenance.metadata()?))
}

//! Small constructors for graph pieces, and the output tail every binary classifier shares.

use prost::Message;

use super::proto::{
    AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, data_type,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};
use super::{INPUT, LABEL, PROBABILITIES};

/// IR version 8 (ONNX 1.10): old enough for every ONNX Runtime from 1.10 on.
const IR_VERSION: i64 = 8;
/// The default domain's opset: every operator used here has had its current form since 13.
const OPSET: i64 = 15;
/// `ai.onnx.ml`, for the tree ensembles.
const ML_DOMAIN: &str = "ai.onnx.ml";
const ML_OPSET: i64 = 3;

pub(crate) fn tensor(name: &str, dims: &[usize], values: &[f64]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        // ONNX Runtime computes in f32: the model holds what it will use.
        float_data: values.iter().map(|&v| v as f32).collect(),
        name: Some(name.to_owned()),
    }
}

pub(crate) fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|&i| i.to_owned()).collect(),
        output: vec![output.to_owned()],
        name: Some(output.to_owned()),
        op_type: Some(op.to_owned()),
        domain: None,
        attribute,
    }
}

/// A node of the `ai.onnx.ml` domain.
pub(crate) fn ml_node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        domain: Some(ML_DOMAIN.to_owned()),
        ..node(op, inputs, output, attribute)
    }
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(kind as i32),
        ..AttributeProto::default()
    }
}

pub(crate) fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: Some(value),
        ..attribute(name, AttributeType::Int)
    }
}

pub(crate) fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        s: Some(value.as_bytes().to_vec()),
        ..attribute(name, AttributeType::String)
    }
}

pub(crate) fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        ints: values,
        ..attribute(name, AttributeType::Ints)
    }
}

pub(crate) fn floats(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto {
        floats: values,
        ..attribute(name, AttributeType::Floats)
    }
}

pub(crate) fn strings(name: &str, values: &[&str]) -> AttributeProto {
    AttributeProto {
        strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attribute(name, AttributeType::Strings)
    }
}

/// A dimension: a fixed size, or the batch's symbolic `N`.
pub(crate) enum Dim {
    Batch,
    Fixed(usize),
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => dimension::Value::DimParam("N".to_owned()),
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

/// The graph's one input: float `[N, features]`.
pub(crate) fn input(features: usize) -> ValueInfoProto {
    value_info(INPUT, data_type::FLOAT, &[Dim::Batch, Dim::Fixed(features)])
}

/// From a `[N, 1]` logit to skl2onnx's classifier outputs (with zipmap off): `probabilities`
/// float `[N, 2]` (class 0, class 1) and `label` int64 `[N]`, the names the gate and the
/// monitors read.
pub(crate) fn binary_tail(
    logit: &str,
    nodes: &mut Vec<NodeProto>,
    initializers: &mut Vec<TensorProto>,
) -> Vec<ValueInfoProto> {
    initializers.push(tensor("one", &[1], &[1.0]));
    nodes.extend([
        node("Sigmoid", &[logit], "p1", vec![]),
        node("Sub", &["one", "p1"], "p0", vec![]),
        node("Concat", &["p0", "p1"], PROBABILITIES, vec![int("axis", 1)]),
        node(
            "ArgMax",
            &[PROBABILITIES],
            LABEL,
            vec![int("axis", 1), int("keepdims", 0)],
        ),
    ]);
    vec![
        value_info(LABEL, data_type::INT64, &[Dim::Batch]),
        value_info(
            PROBABILITIES,
            data_type::FLOAT,
            &[Dim::Batch, Dim::Fixed(2)],
        ),
    ]
}

/// The encoded model; `ml` adds the `ai.onnx.ml` opset.
pub(crate) fn model(graph: GraphProto, ml: bool, metadata: Vec<(String, String)>) -> Vec<u8> {
    let mut opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(OPSET),
    }];
    if ml {
        opset_import.push(OperatorSetIdProto {
            domain: Some(ML_DOMAIN.to_owned()),
            version: Some(ML_OPSET),
        });
    }
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import,
        producer_name: Some("twinloop".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        domain: None,
        model_version: None,
        doc_string: None,
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key),
                value: Some(value),
            })
            .collect(),
    }
    .encode_to_vec()
}

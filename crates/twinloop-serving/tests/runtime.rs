//! The ONNX runtime against what onnxruntime's Python API answers for the same rows
//! (tests/models/expected.json, written by tests/models/make_models.py). Needs libonnxruntime:
//! `scripts/install-onnxruntime.sh` (scripts/test.sh runs it).

use std::path::PathBuf;

use serde_json::Value;
use twinloop_serving::runtime::{InferError, OnnxModel, OutputKind};
use twinloop_serving::source::{ModelUri, fetch};
use twinloop_serving::tensor::{Datatype, Tensor, TensorData};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(models_dir().join("expected.json")).unwrap()).unwrap()
}

async fn load(name: &str) -> OnnxModel {
    let uri = ModelUri::Local(models_dir().join(name));
    let (_, files) = fetch(None, &uri).await.expect("the fixture reads");
    OnnxModel::load(&files.onnx, 2).expect("the fixture loads")
}

/// The fixtures' inputs are FP32 numbers or BYTES text (expected.json holds them as JSON).
fn data(datatype: Datatype, values: &[Value]) -> TensorData {
    match datatype {
        Datatype::Fp32 => {
            TensorData::Fp32(values.iter().map(|v| v.as_f64().unwrap() as f32).collect())
        }
        Datatype::Bytes => TensorData::Bytes(
            values
                .iter()
                .map(|v| v.as_str().unwrap().as_bytes().to_vec())
                .collect(),
        ),
        other => panic!("no fixture input is {other}"),
    }
}

fn input_tensors(model: &OnnxModel, case: &Value) -> Vec<Tensor> {
    model
        .inputs
        .iter()
        .map(|spec| {
            let input = &case["inputs"][&spec.name];
            let shape: Vec<i64> = serde_json::from_value(input["shape"].clone()).unwrap();
            let values = input["data"].as_array().unwrap();
            Tensor {
                name: spec.name.clone(),
                shape,
                data: data(spec.datatype, values),
            }
        })
        .collect()
}

fn assert_close(got: &Tensor, want: &Value) {
    let shape: Vec<i64> = serde_json::from_value(want["shape"].clone()).unwrap();
    assert_eq!(got.shape, shape, "{}", got.name);
    let want: Vec<f64> = want["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let got: Vec<f64> = match &got.data {
        TensorData::Fp32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        other => panic!("unexpected output type {:?}", other.datatype()),
    };
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 + 1e-5 * w.abs(), "{g} vs {w}");
    }
}

#[tokio::test]
async fn every_fixture_matches_onnxruntime() {
    let expected = expected();
    for name in [
        "logreg",
        "logreg_zipmap",
        "rf_reg",
        "pipeline",
        "feature_sum",
    ] {
        let model = load(name).await;
        let case = &expected[name];
        let outputs = model.select_outputs(&[]).unwrap();
        let got = model.run(input_tensors(&model, case), &outputs).unwrap();
        assert_eq!(
            got.len(),
            case["outputs"].as_object().unwrap().len(),
            "{name}"
        );
        for tensor in &got {
            assert_close(tensor, &case["outputs"][&tensor.name]);
        }
    }
}

#[tokio::test]
async fn zipmap_is_served_as_a_class_matrix() {
    let model = load("logreg_zipmap").await;
    let probability = model
        .outputs
        .iter()
        .find(|o| o.name == "output_probability")
        .unwrap();
    assert_eq!(probability.datatype, Datatype::Fp32);
    assert!(matches!(probability.kind, OutputKind::ZipMap { .. }));
}

#[tokio::test]
async fn string_inputs_are_bytes_in_the_signature() {
    let model = load("pipeline").await;
    let colour = model.inputs.iter().find(|i| i.name == "colour").unwrap();
    assert_eq!(colour.datatype, Datatype::Bytes);
    assert_eq!(colour.shape, vec![-1, 1]);
}

#[tokio::test]
async fn bad_inputs_name_the_input_and_what_was_expected() {
    let model = load("logreg").await;
    let x = |shape: Vec<i64>, data: TensorData| {
        vec![Tensor {
            name: "X".into(),
            shape,
            data,
        }]
    };
    let cases = [
        (
            x(vec![1, 4], TensorData::Fp64(vec![0.0; 4])),
            "datatype FP64, expected FP32",
        ),
        (
            x(vec![1, 3], TensorData::Fp32(vec![0.0; 3])),
            "expected [-1, 4]",
        ),
        (x(vec![4], TensorData::Fp32(vec![0.0; 4])), "shape [4]"),
        (
            x(vec![1, 4], TensorData::Bytes(vec![b"a".to_vec(); 4])),
            "datatype BYTES",
        ),
        (
            vec![Tensor {
                name: "Y".into(),
                shape: vec![1, 4],
                data: TensorData::Fp32(vec![0.0; 4]),
            }],
            "unknown input \"Y\"",
        ),
        (vec![], "missing input \"X\""),
    ];
    let outputs = model.select_outputs(&[]).unwrap();
    for (inputs, want) in cases {
        match model.run(inputs, &outputs) {
            Err(InferError::Invalid(msg)) => assert!(msg.contains(want), "{msg} lacks {want}"),
            other => panic!("expected an invalid-input error with {want:?}, got {other:?}"),
        }
    }
    let unknown = model.select_outputs(&["nope".into()]).unwrap_err();
    assert!(
        unknown.to_string().contains("label, probabilities"),
        "{unknown}"
    );
}

#[tokio::test]
async fn non_finite_inputs_run_and_come_back_as_they_are() {
    let model = load("rf_reg").await;
    let outputs = model.select_outputs(&[]).unwrap();
    let got = model
        .run(
            vec![Tensor {
                name: "X".into(),
                shape: vec![1, 4],
                data: TensorData::Fp32(vec![f32::NAN, 0.0, 0.0, 0.0]),
            }],
            &outputs,
        )
        .unwrap();
    assert_eq!(got[0].shape, vec![1, 1]);
}

#[test]
fn a_broken_graph_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, b"not an onnx graph").unwrap();
    let err = OnnxModel::load(&path, 1).unwrap_err().to_string();
    assert!(err.contains("cannot load the model"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_each_get_their_own_rows_back() {
    use std::sync::Arc;
    use twinloop_serving::batch::Batcher;
    use twinloop_serving::spec::BatchingSpec;

    let model = Arc::new(load("logreg").await);
    let outputs = model.select_outputs(&[]).unwrap();
    let spec = BatchingSpec {
        max_batch_size: 64,
        max_queue_delay_us: 2_000,
    };
    let batcher = Arc::new(Batcher::start(model.clone(), spec, 2));
    let request = |i: usize| {
        let rows = 1 + i % 3;
        let data: Vec<f32> = (0..rows * 4)
            .map(|j| (i * 7 + j) as f32 / 10.0 - 2.0)
            .collect();
        vec![Tensor {
            name: "X".into(),
            shape: vec![rows as i64, 4],
            data: TensorData::Fp32(data),
        }]
    };
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (batcher, outputs) = (batcher.clone(), outputs.clone());
        tasks.push(tokio::spawn(async move {
            batcher.submit(request(i), outputs).await.unwrap()
        }));
    }
    // Kernels may sum in another order for another batch size: labels equal, floats close.
    for (i, task) in tasks.into_iter().enumerate() {
        let merged = task.await.unwrap();
        let alone = model.run(request(i), &outputs).unwrap();
        assert_eq!(merged[0], alone[0], "request {i}");
        assert_eq!(merged[1].shape, alone[1].shape, "request {i}");
        let (TensorData::Fp32(a), TensorData::Fp32(b)) = (&merged[1].data, &alone[1].data) else {
            panic!("probabilities are FP32")
        };
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-6 + 1e-4 * y.abs(),
                "request {i}: {x} vs {y}"
            );
        }
    }
}

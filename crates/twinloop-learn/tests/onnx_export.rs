//! Exported models run in the serving runtime (ONNX Runtime) and answer what the Rust model
//! answers. Needs libonnxruntime: `scripts/install-onnxruntime.sh`, or ORT_DYLIB_PATH.

use std::collections::BTreeMap;
use std::path::Path;

use twinloop_learn::dataset::read_table;
use twinloop_learn::linear::{LogisticModel, LogisticParams, fit_logistic};
use twinloop_learn::onnx::{self, Provenance, export_logistic, export_trees};
use twinloop_learn::train::{TrainConfig, train};
use twinloop_learn::trees::{TreeParams, fit_trees};
use twinloop_serving::runtime::OnnxModel;
use twinloop_serving::tensor::{Datatype, Tensor, TensorData};

const FEATURES: usize = 4;

/// Rows of four features on different scales, one of them constant, with a noisy label.
fn synthetic(rows: usize) -> (Vec<f64>, Vec<f64>) {
    let mut state = 7u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..rows {
        let amount = next() * 5000.0;
        let age = 18.0 + next() * 60.0;
        let ratio = next() - 0.5;
        x.extend([amount, age, ratio, 3.0]);
        let logit = amount / 1000.0 - 2.5 - (age - 48.0) / 20.0 + 2.0 * ratio;
        y.push(if next() < 1.0 / (1.0 + (-logit).exp()) {
            1.0
        } else {
            0.0
        });
    }
    (x, y)
}

fn names() -> Vec<String> {
    ["amount", "age", "ratio", "constant"]
        .map(str::to_owned)
        .to_vec()
}

fn load(dir: &Path, bytes: &[u8]) -> OnnxModel {
    let path = dir.join("model.onnx");
    std::fs::write(&path, bytes).unwrap();
    OnnxModel::load(&path, 1).expect("ONNX Runtime loads the exported model")
}

/// Runs `x` through the model: (label, probabilities) as ONNX Runtime returns them.
fn infer(model: &OnnxModel, x: &[f32]) -> (Tensor, Tensor) {
    let input = Tensor {
        name: "input".into(),
        shape: vec![(x.len() / FEATURES) as i64, FEATURES as i64],
        data: TensorData::Fp32(x.to_vec()),
    };
    let outputs = model
        .select_outputs(&["label".into(), "probabilities".into()])
        .unwrap();
    let mut got = model.run(vec![input], &outputs).unwrap().into_iter();
    (got.next().unwrap(), got.next().unwrap())
}

fn fitted() -> (Vec<f64>, LogisticModel) {
    let (x, y) = synthetic(2000);
    let model = fit_logistic(&x, &y, FEATURES, &LogisticParams::default()).unwrap();
    (x, model)
}

fn provenance() -> Provenance {
    Provenance {
        trainer: "logistic_regression".into(),
        features: names(),
        params: serde_json::json!({"l2": 1e-4}),
        train_metrics: BTreeMap::from([("accuracy".to_owned(), 0.8)]),
    }
}

#[test]
fn the_signature_is_skl2onnx_style_with_a_symbolic_batch() {
    let (_, fitted) = fitted();
    let bytes = export_logistic(&fitted, &provenance()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = load(dir.path(), &bytes);
    assert_eq!(model.inputs.len(), 1);
    assert_eq!(model.inputs[0].name, "input");
    assert_eq!(model.inputs[0].datatype, Datatype::Fp32);
    assert_eq!(model.inputs[0].shape, [-1, FEATURES as i64]);
    let outputs: Vec<(&str, Datatype, &[i64])> = model
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.datatype, o.shape.as_slice()))
        .collect();
    assert_eq!(
        outputs,
        [
            ("label", Datatype::Int64, &[-1][..]),
            ("probabilities", Datatype::Fp32, &[-1, 2][..]),
        ]
    );
}

#[test]
fn onnx_runtime_answers_what_the_rust_model_answers() {
    let (x, fitted) = fitted();
    let bytes = export_logistic(&fitted, &provenance()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = load(dir.path(), &bytes);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    // The Rust model scores the same f32-rounded inputs ONNX Runtime receives.
    let rounded: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    let want = fitted.predict_proba(&rounded).unwrap();
    assert_same_answers(&model, &x32, &want);
}

/// Checks ONNX Runtime's outputs against the Rust probabilities of the same rows.
fn assert_same_answers(model: &OnnxModel, x32: &[f32], want: &[f64]) {
    let (label, probabilities) = infer(model, x32);
    let rows = want.len();
    assert_eq!(probabilities.shape, [rows as i64, 2]);
    assert_eq!(label.shape, [rows as i64]);
    let (TensorData::Fp32(p), TensorData::Int64(labels)) = (&probabilities.data, &label.data)
    else {
        panic!("output types {probabilities:?} {label:?}");
    };
    let mut positives = 0;
    for (i, want) in want.iter().enumerate() {
        let (p0, p1) = (f64::from(p[2 * i]), f64::from(p[2 * i + 1]));
        assert!((p1 - want).abs() < 1e-5, "row {i}: {p1} vs {want}");
        assert!(
            (p0 - (1.0 - want)).abs() < 1e-5,
            "row {i}: {p0} vs {}",
            1.0 - want
        );
        let argmax = i64::from(p1 > p0);
        assert_eq!(labels[i], argmax, "row {i}");
        positives += argmax;
    }
    // Both classes occur, so the label check compared both outcomes.
    let rows = rows as i64;
    assert!(
        positives > rows / 10 && positives < rows - rows / 10,
        "{positives}"
    );
}

/// Gradient-boosted trees: many rows sit exactly on a split threshold (the features take few
/// values), so a disagreement on `<=` between Rust and ONNX Runtime would show.
#[test]
fn boosted_trees_answer_the_same_in_onnx_runtime() {
    let (x, _) = synthetic(1500);
    let x: Vec<f64> = x.iter().map(|v| (v * 4.0).round() / 4.0).collect();
    let y: Vec<f64> = x
        .chunks_exact(FEATURES)
        .map(|r| f64::from(u8::from((r[0] > 2500.0) != (r[2] > 0.0) || r[1] < 25.0)))
        .collect();
    let params = TreeParams {
        n_trees: 30,
        max_depth: 4,
        min_samples_leaf: 5,
        ..TreeParams::default()
    };
    let fitted = fit_trees(&x, &y, FEATURES, &params).unwrap();
    let provenance = Provenance {
        trainer: "gradient_boosting".into(),
        ..provenance()
    };
    let bytes = export_trees(&fitted, &provenance).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = load(dir.path(), &bytes);
    assert_eq!(model.inputs[0].shape, [-1, FEATURES as i64]);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let want = fitted.predict_proba(&x).unwrap();
    assert_same_answers(&model, &x32, &want);
    assert_eq!(onnx::features(&bytes).unwrap(), Some(names()));
}

#[test]
fn the_metadata_names_the_features_and_the_trainer() {
    let (_, fitted) = fitted();
    let bytes = export_logistic(&fitted, &provenance()).unwrap();
    assert_eq!(onnx::features(&bytes).unwrap(), Some(names()));
    let metadata = onnx::metadata(&bytes).unwrap();
    assert_eq!(metadata[onnx::TRAINER_KEY], "logistic_regression");
    assert_eq!(metadata[onnx::PARAMS_KEY], r#"{"l2":0.0001}"#);
    assert_eq!(metadata[onnx::TRAIN_METRICS_KEY], r#"{"accuracy":0.8}"#);

    let wrong = Provenance {
        features: vec!["amount".into()],
        ..provenance()
    };
    let err = export_logistic(&fitted, &wrong).unwrap_err().to_string();
    assert!(err.contains("4 features but 1"), "{err}");
    assert!(onnx::metadata(b"not a model").is_err());
}

/// The built-in's path: a CSV training set with an entity key and a timestamp → `train` →
/// ONNX Runtime scores the rows as accurately as the training metrics say.
#[test]
fn a_csv_training_set_trains_into_a_servable_model() {
    let (x, y) = synthetic(1000);
    let mut csv = String::from("user_id,event_timestamp,amount,age,ratio,constant,is_fraud\n");
    for (i, (row, label)) in x.chunks_exact(FEATURES).zip(&y).enumerate() {
        csv += &format!(
            "u{i},2024-01-01T00:00:{:02},{},{},{},{},{}\n",
            i % 60,
            row[0],
            row[1],
            row[2],
            row[3],
            *label == 1.0
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.csv");
    std::fs::write(&path, csv).unwrap();
    let config: TrainConfig =
        serde_json::from_value(serde_json::json!({"label": "is_fraud"})).unwrap();
    let table = read_table(&path, &config.columns()).unwrap();
    let dropped: Vec<&str> = table.dropped.iter().map(|d| d.column.as_str()).collect();
    assert_eq!(dropped, ["user_id", "event_timestamp"]);
    let trained = train(&config, &table).unwrap();
    assert_eq!(trained.features, names());

    let model = load(dir.path(), &trained.onnx);
    let x32: Vec<f32> = table.x.iter().map(|&v| v as f32).collect();
    let (label, _) = infer(&model, &x32);
    let TensorData::Int64(labels) = &label.data else {
        panic!("label is {label:?}");
    };
    let right = labels
        .iter()
        .zip(&y)
        .filter(|(l, y)| **l as f64 == **y)
        .count();
    let accuracy = right as f64 / y.len() as f64;
    let recorded = trained.train_metrics["accuracy"];
    assert!(
        (accuracy - recorded).abs() < 0.005,
        "{accuracy} vs {recorded}"
    );
    assert!(accuracy > 0.7, "{accuracy}");
}

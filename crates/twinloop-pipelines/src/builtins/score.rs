//! Scoring a model on a dataset in process with the serving runtime (ONNX Runtime), as the gate
//! needs: both models on the same rows. The input columns come from the model's
//! `twinloop.features` metadata (the built-in trainer writes it), else every numeric column but
//! the label.

use std::path::Path;

use twinloop_learn::dataset::{Columns, Table, read_table};
use twinloop_learn::metrics::Scores;
use twinloop_serving::runtime::OnnxModel;
use twinloop_serving::tensor::{Tensor, TensorData};

/// The label column and the model's scores on every row of `data`: the positive class's
/// probability for a classifier, the prediction for a regressor.
pub(crate) fn score(model: &Path, data: &Path, label: &str) -> Result<(Vec<f64>, Scores), String> {
    let bytes =
        std::fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    let features = twinloop_learn::onnx::features(&bytes)
        .map_err(|e| format!("{} is not an ONNX model: {e}", model.display()))?;
    let table = read_table(
        data,
        &Columns {
            label: Some(label.to_owned()),
            features,
            exclude: Vec::new(),
        },
    )
    .map_err(|e| format!("cannot read the evaluation data: {e}"))?;
    let truth = table.y.clone().unwrap_or_default();
    let onnx =
        OnnxModel::load(model, 1).map_err(|e| format!("cannot load {}: {e}", model.display()))?;
    Ok((truth, run(&onnx, &table)?))
}

fn run(model: &OnnxModel, table: &Table) -> Result<Scores, String> {
    let [input] = model.inputs.as_slice() else {
        return Err(format!(
            "the gate scores models with one input, this one has {}",
            model.inputs.len()
        ));
    };
    let width = table.features.len();
    let tensor = Tensor {
        name: input.name.clone(),
        shape: vec![table.rows as i64, width as i64],
        data: TensorData::Fp32(table.x.iter().map(|&v| v as f32).collect()),
    };
    let wanted: Vec<String> = if model.outputs.iter().any(|o| o.name == "probabilities") {
        vec!["probabilities".into()]
    } else {
        model
            .outputs
            .iter()
            .take(1)
            .map(|o| o.name.clone())
            .collect()
    };
    let specs = model.select_outputs(&wanted).map_err(|e| e.to_string())?;
    let outputs = model
        .run(vec![tensor], &specs)
        .map_err(|e| format!("the model cannot score the evaluation data: {e}"))?;
    let out = outputs
        .into_iter()
        .next()
        .ok_or("the model answered nothing")?;
    let values: Vec<f64> = match out.data {
        TensorData::Fp32(v) => v.into_iter().map(f64::from).collect(),
        TensorData::Fp64(v) => v,
        TensorData::Int64(v) => v.into_iter().map(|x| x as f64).collect(),
        other => {
            return Err(format!(
                "output {} is {:?}; the gate reads numbers",
                out.name,
                other.datatype()
            ));
        }
    };
    let columns = match out.shape.as_slice() {
        [_, c] => usize::try_from(*c).unwrap_or(1).max(1),
        _ => 1,
    };
    if out.name == "probabilities" || columns == 2 {
        // Binary classifier: the positive class is the last column.
        let probabilities = values
            .chunks(columns)
            .map(|row| row.last().copied().unwrap_or(f64::NAN))
            .collect();
        return Ok(Scores::Probabilities(probabilities));
    }
    Ok(Scores::Predictions(
        values.chunks(columns).map(|row| row[0]).collect(),
    ))
}

//! The `MLmodel` file of an MLflow model directory: which file holds the ONNX graph.

use serde::Deserialize;

#[derive(Deserialize)]
struct MlModel {
    #[serde(default)]
    flavors: std::collections::BTreeMap<String, serde_norway::Value>,
}

/// Why an `MLmodel` file names no ONNX graph this server can read.
#[derive(Debug, thiserror::Error)]
pub enum MlModelError {
    #[error("not a valid MLmodel file: {0}")]
    Syntax(#[source] serde_norway::Error),
    #[error(
        "the model has no onnx flavor (flavors: {}); hint: log it with mlflow.onnx.log_model",
        if .flavors.is_empty() { "none".to_string() } else { .flavors.join(", ") }
    )]
    NoOnnxFlavor { flavors: Vec<String> },
    #[error("onnx flavor data {0:?} leaves the model directory")]
    Escapes(String),
}

/// The relative path of the ONNX graph named by the `onnx` flavor (`data`, default `model.onnx`).
pub fn onnx_data_file(mlmodel: &[u8]) -> Result<String, MlModelError> {
    let parsed: MlModel = serde_norway::from_slice(mlmodel).map_err(MlModelError::Syntax)?;
    let Some(onnx) = parsed.flavors.get("onnx") else {
        return Err(MlModelError::NoOnnxFlavor {
            flavors: parsed.flavors.into_keys().collect(),
        });
    };
    let data = onnx
        .get("data")
        .and_then(|d| d.as_str())
        .unwrap_or("model.onnx");
    if data.starts_with('/') || data.split('/').any(|part| part == "..") {
        return Err(MlModelError::Escapes(data.to_string()));
    }
    Ok(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_graph() {
        let text = b"flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17.0\n  python_function:\n    loader_module: mlflow.onnx\n";
        assert_eq!(onnx_data_file(text).unwrap(), "model.onnx");
    }

    #[test]
    fn explains_a_missing_flavor_and_refuses_escapes() {
        let sk = b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n";
        assert!(
            onnx_data_file(sk)
                .unwrap_err()
                .to_string()
                .contains("sklearn")
        );
        let escape = b"flavors:\n  onnx:\n    data: ../../etc/passwd\n";
        assert!(
            onnx_data_file(escape)
                .unwrap_err()
                .to_string()
                .contains("leaves")
        );
    }
}

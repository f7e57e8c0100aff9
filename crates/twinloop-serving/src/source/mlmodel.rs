//! The `MLmodel` file of an MLflow model directory: which file holds the ONNX graph.

use serde::Deserialize;

#[derive(Deserialize)]
struct MlModel {
    #[serde(default)]
    flavors: std::collections::BTreeMap<String, serde_norway::Value>,
}

/// The relative path of the ONNX graph named by the `onnx` flavor (`data`, default `model.onnx`).
pub fn onnx_data_file(mlmodel: &[u8]) -> Result<String, String> {
    let parsed: MlModel =
        serde_norway::from_slice(mlmodel).map_err(|e| format!("not a valid MLmodel file: {e}"))?;
    let Some(onnx) = parsed.flavors.get("onnx") else {
        let found: Vec<&str> = parsed.flavors.keys().map(String::as_str).collect();
        return Err(format!(
            "the model has no onnx flavor (flavors: {}); hint: log it with mlflow.onnx.log_model",
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        ));
    };
    let data = onnx
        .get("data")
        .and_then(|d| d.as_str())
        .unwrap_or("model.onnx");
    if data.starts_with('/') || data.split('/').any(|part| part == "..") {
        return Err(format!(
            "onnx flavor data {data:?} leaves the model directory"
        ));
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
        assert!(onnx_data_file(sk).unwrap_err().contains("sklearn"));
        let escape = b"flavors:\n  onnx:\n    data: ../../etc/passwd\n";
        assert!(onnx_data_file(escape).unwrap_err().contains("leaves"));
    }
}

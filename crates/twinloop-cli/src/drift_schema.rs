//! Where `twinloop monitor drift --schema` takes column types from: our JSON schema file, a
//! model's MLmodel signature, or a feature view's definitions.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
#[cfg(feature = "feature-store")]
use twinloop_features::repo::{DType, FeatureRepo};
use twinloop_monitor::Schema;
use twinloop_monitor::schema::ColumnSchema;

fn typed(kind: &str) -> ColumnSchema {
    ColumnSchema {
        kind: Some(kind.into()),
        ..ColumnSchema::default()
    }
}

/// `feature-view:REPO_DIR:VIEW`, an `MLmodel` file (or a model directory holding one), or a JSON
/// schema file.
pub fn load(arg: &str) -> Result<Schema> {
    if let Some(rest) = arg.strip_prefix("feature-view:") {
        let (repo, view) = rest
            .rsplit_once(':')
            .context("--schema feature-view:REPO_DIR:VIEW needs the repository and the view")?;
        #[cfg(feature = "feature-store")]
        return from_feature_view(Path::new(repo), view);
        #[cfg(not(feature = "feature-store"))]
        bail!(
            "--schema feature-view:{repo}:{view} needs the feature store, which this twinloop was built without"
        );
    }
    let path = Path::new(arg);
    let mlmodel = if path.is_dir() {
        path.join("MLmodel")
    } else {
        path.to_path_buf()
    };
    if mlmodel.file_name().is_some_and(|n| n == "MLmodel") {
        let text = std::fs::read_to_string(&mlmodel)
            .with_context(|| format!("cannot read {}", mlmodel.display()))?;
        return from_signature(&text).with_context(|| format!("{}", mlmodel.display()));
    }
    Ok(Schema::load(path)?)
}

#[cfg(feature = "feature-store")]
fn from_feature_view(repo: &Path, name: &str) -> Result<Schema> {
    let repo = FeatureRepo::load(repo).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let view = repo
        .view(name)
        .with_context(|| format!("no feature view {name:?} in the repository"))?;
    let mut schema = Schema::default();
    for f in &view.features {
        let kind = match f.dtype {
            DType::Int32 | DType::Int64 | DType::Float32 | DType::Float64 => "num",
            DType::Bool | DType::String => "cat",
            DType::Bytes | DType::Timestamp => "skip",
        };
        schema.columns.insert(f.name.clone(), typed(kind));
    }
    Ok(schema)
}

/// Column types from an MLflow model signature's column-based inputs (and outputs).
fn from_signature(mlmodel: &str) -> Result<Schema> {
    let doc: serde_norway::Value =
        serde_norway::from_str(mlmodel).context("not a valid MLmodel file")?;
    let Some(signature) = doc.get("signature") else {
        bail!("the model has no signature (hint: log it with signature= or input_example=)");
    };
    let mut schema = Schema::default();
    for side in ["inputs", "outputs"] {
        let Some(text) = signature.get(side).and_then(|s| s.as_str()) else {
            continue;
        };
        let columns: Vec<Value> =
            serde_json::from_str(text).with_context(|| format!("signature {side} are not JSON"))?;
        for c in columns {
            let (Some(name), Some(ty)) = (c["name"].as_str(), c["type"].as_str()) else {
                if side == "inputs" {
                    bail!(
                        "the signature's inputs are tensors, which name no columns; give a JSON schema"
                    );
                }
                continue;
            };
            let kind = match ty {
                "double" | "float" | "integer" | "long" => "num",
                "string" | "boolean" => "cat",
                _ => "skip",
            };
            schema.columns.insert(name.to_string(), typed(kind));
        }
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_columns_become_types() {
        let mlmodel = "flavors: {}\nsignature:\n  inputs: '[{\"type\": \"double\", \"name\": \"age\", \"required\": true}, {\"type\": \"string\", \"name\": \"city\", \"required\": true}, {\"type\": \"datetime\", \"name\": \"ts\"}]'\n  outputs: '[{\"type\": \"long\", \"name\": \"label\"}]'\n";
        let s = from_signature(mlmodel).unwrap();
        let kinds: Vec<(&str, &str)> = s
            .columns
            .iter()
            .map(|(n, c)| (n.as_str(), c.kind.as_deref().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("age", "num"),
                ("city", "cat"),
                ("label", "num"),
                ("ts", "skip")
            ]
        );
        assert!(
            from_signature("flavors: {}\n")
                .unwrap_err()
                .to_string()
                .contains("no signature")
        );
        let tensors = "signature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 4]}}]'\n";
        assert!(
            from_signature(tensors)
                .unwrap_err()
                .to_string()
                .contains("tensors")
        );
    }

    #[cfg(feature = "feature-store")]
    #[test]
    fn a_feature_view_gives_its_feature_types() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/feature_repo");
        let s = load(&format!(
            "feature-view:{}:driver_hourly_stats",
            repo.display()
        ))
        .unwrap();
        let kinds: Vec<(&str, &str)> = s
            .columns
            .iter()
            .map(|(n, c)| (n.as_str(), c.kind.as_deref().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("acc_rate", "num"),
                ("avg_daily_trips", "num"),
                ("conv_rate", "num")
            ]
        );
        assert!(load(&format!("feature-view:{}:nope", repo.display())).is_err());
    }
}

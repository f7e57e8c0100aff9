//! `model.register@1`: a model file (or MLflow model directory) becomes a registered version
//! that serving can load, once per model digest: a rerun of the same model reuses its version.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::ErrorKind;
use twinloop_core::registry::{ModelVersion, NewModelVersion};
use twinloop_core::tracking::Tag;
use twinloop_meta::{RegistryQuery, StoreHandle};

use super::{Ctx, Values};
use crate::cache::digest::{dir_entries, path_digest};

/// Who the registry records as making the changes of a pipeline's built-ins.
pub(crate) const ACTOR: &str = "twinloop-pipeline";
/// The tag that makes registration idempotent.
const DIGEST_TAG: &str = "twinloop.model_digest";
const BLESSING_TAG: &str = "twinloop.blessing";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    /// An absolute path: an upstream model output or a repo path.
    model: String,
    alias: Option<String>,
    signature_from: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, Value>,
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: Args = ctx.args()?;
    let store = &ctx.services()?.store;
    let model = Path::new(&args.model);
    let digest = digest_of(model).await?;
    let version = match reusable(store, &args.name, &digest).await? {
        Some(existing) => {
            ctx.log.line(format!(
                "reused version {} of {} (model digest {digest})",
                existing.version, args.name
            ));
            existing.version
        }
        None => {
            let created = register(ctx, &args, model, &digest).await?;
            ctx.log.line(format!(
                "registered version {} of {} from {} (model digest {digest})",
                created.version, args.name, created.source
            ));
            created.version
        }
    };
    let version = version.to_string();
    if let Some(alias) = &args.alias {
        set_alias(store, &args.name, alias, &version).await?;
        ctx.log
            .line(format!("alias {}@{alias} -> version {version}", args.name));
    }
    Ok(Values::from([
        ("name".to_owned(), Value::String(args.name)),
        ("version".to_owned(), Value::String(version)),
    ]))
}

/// Points `alias` of `model` at `version`; the registry records the event serving follows.
pub(crate) async fn set_alias(
    store: &StoreHandle,
    model: &str,
    alias: &str,
    version: &str,
) -> Result<(), String> {
    store
        .set_alias(model, alias, version, ACTOR)
        .await
        .map_err(|e| format!("cannot point {model}@{alias} at version {version}: {e}"))
}

async fn digest_of(path: &Path) -> Result<String, String> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || path_digest(&owned))
        .await
        .map_err(|e| format!("cannot digest the model: {e}"))?
        .map_err(|e| format!("cannot read the model {}: {e}", path.display()))
}

/// The oldest live version of `name` registered from the same bytes.
async fn reusable(
    store: &StoreHandle,
    name: &str,
    digest: &str,
) -> Result<Option<ModelVersion>, String> {
    // The digest is hex, safe inside the filter; the name is compared here rather than quoted
    // into it.
    let query = RegistryQuery {
        filter: Some(format!("tags.`{DIGEST_TAG}` = '{digest}'")),
        order_by: vec!["version_number ASC".into()],
        max_results: 1000,
        page_token: None,
    };
    let page = store
        .search_model_versions(&query)
        .await
        .map_err(|e| format!("cannot search the registry for digest {digest}: {e}"))?;
    Ok(page.items.into_iter().find(|v| v.name == name))
}

async fn register(
    ctx: &Ctx<'_>,
    args: &Args,
    model: &Path,
    digest: &str,
) -> Result<ModelVersion, String> {
    let services = ctx.services()?;
    let root = format!("pipelines/{}/{}/model", ctx.run_id, ctx.step);
    upload(&services.artifacts, model, &root).await?;
    ensure_model(&services.store, &args.name, args.description.as_deref()).await?;
    let new = NewModelVersion {
        name: args.name.clone(),
        source: format!("mlflow-artifacts:/{root}"),
        // The version belongs to the run that trained it (MLflow's meaning of a version's run,
        // and how a monitor's `reference: training` finds the training set), else this step's.
        run_id: match crate::record::producing_run(services, digest).await {
            Some(run) => Some(run),
            None => ctx.mlflow_run_id.map(str::to_owned),
        },
        description: args.description.clone(),
        tags: tags(ctx, args, digest).await?,
        user_id: ACTOR.into(),
        ..NewModelVersion::default()
    };
    services
        .store
        .create_model_version(new, ACTOR)
        .await
        .map_err(|e| format!("cannot create a version of {}: {e}", args.name))
}

/// The version's tags: the pipeline's own, then the user's. A `twinloop.blessing` given as the
/// gate's blessing file (an upstream output arrives as its path) is recorded as its digest.
async fn tags(ctx: &Ctx<'_>, args: &Args, digest: &str) -> Result<Vec<Tag>, String> {
    let mut tags = vec![
        Tag::new("twinloop.pipeline", ctx.pipeline),
        Tag::new("twinloop.pipeline_run", ctx.run_id),
        Tag::new(DIGEST_TAG, digest),
        Tag::new("source", "pipeline"),
    ];
    if let Some(data) = &args.signature_from {
        tags.push(Tag::new(
            "twinloop.training_set_digest",
            digest_of(Path::new(data)).await?,
        ));
    }
    for (key, value) in &args.tags {
        let mut text = crate::expr::to_text(value);
        if key == BLESSING_TAG && Path::new(&text).is_absolute() && Path::new(&text).is_file() {
            text = digest_of(Path::new(&text)).await?;
        }
        tags.retain(|t| t.key != *key);
        tags.push(Tag::new(key, text));
    }
    Ok(tags)
}

async fn ensure_model(
    store: &StoreHandle,
    name: &str,
    description: Option<&str>,
) -> Result<(), String> {
    match store.get_registered_model(name).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read registered model {name}: {e}")),
    }
    match store
        .create_registered_model(name, description, &[], ACTOR)
        .await
    {
        Ok(_) => Ok(()),
        // Another run created it meanwhile.
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create registered model {name}: {e}")),
    }
}

/// The MLflow model directory serving loads: a lone ONNX file gets an `MLmodel` naming it; a
/// directory must already be an MLflow model with the `onnx` flavor.
fn model_files(model: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    if !model.is_dir() {
        return Ok(vec![
            ("model.onnx".into(), read(model)?),
            ("MLmodel".into(), MLMODEL.as_bytes().to_vec()),
        ]);
    }
    let mlmodel = read(&model.join("MLmodel")).map_err(|e| {
        format!("{e}: a model directory must be an MLflow model (hint: log it with mlflow.onnx.log_model)")
    })?;
    twinloop_serving::source::onnx_data_file(&mlmodel)
        .map_err(|e| format!("{}/MLmodel: {e}", model.display()))?;
    let entries =
        dir_entries(model).map_err(|e| format!("cannot list {}: {e}", model.display()))?;
    entries
        .into_iter()
        .map(|(rel, _)| Ok((rel.clone(), read(&model.join(&rel))?)))
        .collect()
}

const MLMODEL: &str = "flavors:\n  onnx:\n    data: model.onnx\n";

async fn upload(artifacts: &ArtifactStore, model: &Path, root: &str) -> Result<(), String> {
    let owned = model.to_path_buf();
    let files = tokio::task::spawn_blocking(move || model_files(&owned))
        .await
        .map_err(|e| format!("cannot read the model: {e}"))??;
    for (rel, bytes) in files {
        let path = ArtifactPath::parse(&format!("{root}/{rel}"))
            .map_err(|e| format!("artifact path {root}/{rel}: {e}"))?;
        let body =
            futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
        artifacts
            .put(&path, body)
            .await
            .map_err(|e| format!("cannot upload {root}/{rel}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_onnx_file_gets_an_mlmodel_serving_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.onnx");
        std::fs::write(&file, b"graph").unwrap();
        let files = model_files(&file).unwrap();
        assert_eq!(files[0], ("model.onnx".to_owned(), b"graph".to_vec()));
        let (name, mlmodel) = &files[1];
        assert_eq!(name, "MLmodel");
        assert_eq!(
            twinloop_serving::source::onnx_data_file(mlmodel).unwrap(),
            "model.onnx"
        );
    }

    #[test]
    fn a_directory_must_be_an_onnx_mlflow_model() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.onnx"), b"graph").unwrap();
        let missing = model_files(dir.path()).unwrap_err();
        assert!(missing.contains("must be an MLflow model"), "{missing}");
        std::fs::write(dir.path().join("MLmodel"), "flavors:\n  sklearn: {}\n").unwrap();
        assert!(model_files(dir.path()).unwrap_err().contains("MLmodel"));
        std::fs::write(dir.path().join("MLmodel"), MLMODEL).unwrap();
        let mut names: Vec<String> = model_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["MLmodel", "model.onnx"]);
    }
}

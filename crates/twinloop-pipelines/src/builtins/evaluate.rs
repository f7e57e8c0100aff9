//! `model.evaluate@1`, the gate (design §7): the candidate and the baseline (resolved now, from
//! the registry) scored in process on the same holdout rows, judged by `twinloop-learn`'s gate,
//! and a blessing always written. The champion's stored training metrics are never used: they
//! came from another evaluation set.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use twinloop_core::tracking::Metric;
use twinloop_learn::gate::{Blessing, GateSpec, judge};
use twinloop_serving::deploy::StoreRegistry;
use twinloop_serving::source::{ModelUri, fetch};

use super::{Ctx, Values};
use crate::cache::digest::path_digest;

/// The keys of `with:` that are not the gate's spec.
const INPUT_KEYS: [&str; 4] = ["candidate", "data", "label", "baseline"];

#[derive(Deserialize)]
struct Inputs {
    candidate: String,
    data: String,
    label: String,
    baseline: Option<String>,
}

/// Splits `with:` into the models and data, and the gate's spec.
fn split(with: &Value) -> Result<(Inputs, GateSpec), String> {
    let map = with.as_object().cloned().unwrap_or_default();
    let (inputs, spec): (Map<String, Value>, Map<String, Value>) = map
        .into_iter()
        .partition(|(k, _)| INPUT_KEYS.contains(&k.as_str()));
    let inputs: Inputs = serde_json::from_value(Value::Object(inputs))
        .map_err(|e| format!("model.evaluate@1 with: {e}"))?;
    let spec: GateSpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| format!("model.evaluate@1 with: {e}"))?;
    spec.check().map_err(|problems| problems.join("; "))?;
    Ok((inputs, spec))
}

/// What is wrong with the gate's spec as written, when it can be read before the run: a spec
/// with expressions in it is checked when it runs.
pub(crate) fn check(with: &Value) -> Vec<String> {
    let mut spec = with.as_object().cloned().unwrap_or_default();
    spec.retain(|k, _| !INPUT_KEYS.contains(&k.as_str()));
    if Value::Object(spec.clone()).to_string().contains("${{") {
        return Vec::new();
    }
    match serde_json::from_value::<GateSpec>(Value::Object(spec)) {
        Ok(spec) => spec.check().err().unwrap_or_default(),
        Err(e) => vec![e.to_string()],
    }
}

/// The bootstrap's seed: fixed by the run id, so a run's intervals can be replayed.
fn seed(run_id: &str) -> u64 {
    let digest = Sha256::digest(run_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// The baseline's model file and version, or `None` when there is none yet (an alias that is
/// not set is "no baseline", not an error).
async fn baseline(ctx: &Ctx<'_>, uri: &str) -> Result<Option<(PathBuf, String)>, String> {
    let parsed = ModelUri::parse(uri).map_err(|e| e.to_string())?;
    let services = ctx.services()?;
    if let ModelUri::Alias { name, alias } = &parsed {
        match services.store.get_model_version_by_alias(name, alias).await {
            Ok(_) => {}
            Err(e) if e.kind == twinloop_core::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot resolve {uri}: {e}")),
        }
    }
    // Pipelines register from the artifact store; a local source is not theirs to read.
    let registry = StoreRegistry {
        store: services.store.clone(),
        artifacts: services.artifacts.clone(),
        locations: None,
    };
    let (resolved, files) = fetch(Some(&registry), &parsed)
        .await
        .map_err(|e| format!("cannot fetch the baseline {uri}: {e}"))?;
    // The download goes with `files`; the attempt's directory keeps a copy to score and inspect.
    let path = ctx.outputs_dir.with_file_name("baseline.onnx");
    std::fs::copy(&files.onnx, &path).map_err(|e| format!("cannot keep the baseline: {e}"))?;
    Ok(Some((path, resolved.version)))
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let (inputs, spec) = split(&ctx.with)?;
    let baseline = match &inputs.baseline {
        Some(uri) => baseline(ctx, uri).await?,
        None => None,
    };
    match &baseline {
        Some((_, version)) => ctx.log.line(format!(
            "baseline: {} (version {version})",
            inputs.baseline.as_deref().unwrap_or_default()
        )),
        None => ctx.log.line("no baseline: value thresholds only"),
    }
    let seed = seed(ctx.run_id);
    let baseline_path = baseline.as_ref().map(|(p, _)| p.clone());
    let (candidate, data, label) = (
        PathBuf::from(&inputs.candidate),
        PathBuf::from(&inputs.data),
        inputs.label.clone(),
    );
    let mut blessing = tokio::task::spawn_blocking(move || {
        let (truth, candidate_scores) = super::score::score(&candidate, &data, &label)
            .map_err(|e| format!("candidate: {e}"))?;
        let baseline_scores = match &baseline_path {
            Some(path) => {
                let (_, scores) = super::score::score(path, &data, &label)
                    .map_err(|e| format!("baseline: {e}"))?;
                Some(scores)
            }
            None => None,
        };
        let mut blessing = judge(
            &spec,
            &truth,
            &candidate_scores,
            baseline_scores.as_ref(),
            seed,
        )
        .map_err(|e| e.to_string())?;
        blessing.candidate_model = digest_of(&candidate);
        blessing.baseline_model = baseline_path.as_deref().and_then(digest_of);
        blessing.eval_data_digest = digest_of(&data);
        Ok::<_, String>(blessing)
    })
    .await
    .map_err(|e| format!("the gate stopped: {e}"))??;
    blessing.baseline_version = baseline.map(|(_, v)| v);
    finish(ctx, &blessing).await
}

/// What every gate does with its verdict: the reasons in the log, the blessing written, both
/// sides' metrics on the step's tracking run, and the value outputs `when:` reads.
pub(super) async fn finish(ctx: &Ctx<'_>, blessing: &Blessing) -> Result<Values, String> {
    for reason in &blessing.reasons {
        ctx.log.line(reason);
    }
    ctx.log.line(if blessing.blessed {
        "blessed"
    } else {
        "not blessed"
    });
    let json = serde_json::to_vec_pretty(blessing).map_err(|e| e.to_string())?;
    std::fs::write(ctx.output_path("blessing"), json)
        .map_err(|e| format!("cannot write the blessing: {e}"))?;
    log_metrics(ctx, blessing).await;
    Ok(Values::from([
        ("blessed".to_owned(), Value::Bool(blessing.blessed)),
        (
            "reasons".to_owned(),
            serde_json::to_value(&blessing.reasons).map_err(|e| e.to_string())?,
        ),
        (
            "baseline_version".to_owned(),
            blessing
                .baseline_version
                .clone()
                .map_or(Value::Null, Value::String),
        ),
    ]))
}

fn digest_of(path: &Path) -> Option<String> {
    path_digest(path).ok()
}

/// The candidate's and baseline's holdout metrics on the step's tracking run, as
/// `candidate_<metric>` and `baseline_<metric>`.
async fn log_metrics(ctx: &Ctx<'_>, blessing: &Blessing) {
    let (Some(services), Some(run_id)) = (ctx.services, ctx.mlflow_run_id) else {
        return;
    };
    let now = twinloop_core::time::now_ms();
    let metric = |key: String, value: f64| Metric {
        key,
        value,
        timestamp: now,
        step: 0,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    };
    let mut metrics: Vec<Metric> = blessing
        .candidate
        .iter()
        .map(|(k, v)| metric(format!("candidate_{k}"), *v))
        .collect();
    if let Some(baseline) = &blessing.baseline {
        metrics.extend(
            baseline
                .iter()
                .map(|(k, v)| metric(format!("baseline_{k}"), *v)),
        );
    }
    if let Err(e) = services.store.log_batch(run_id, &metrics, &[], &[]).await {
        tracing::warn!(error = %e, "cannot log the gate's metrics");
    }
}

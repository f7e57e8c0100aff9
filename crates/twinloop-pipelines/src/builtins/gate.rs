//! `model.gate@1`, the gate for models the engine cannot score (design §3): the candidate's
//! metrics as a `run:` step computed them, against a baseline's (another step's metrics, a file
//! of them, or the tracking run of a registered version, resolved now), judged by
//! `twinloop-learn`'s gate with `model.evaluate@1`'s `MetricThreshold` semantics and written
//! as the same blessing. Without rows there is no bootstrap: points are compared.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};
use twinloop_learn::gate::{GateSpec, judge_reported};
use twinloop_serving::source::ModelUri;

use super::{Ctx, Values};

/// The keys of `with:` that are not the gate's spec.
const INPUT_KEYS: [&str; 2] = ["candidate", "baseline"];

/// Splits `with:` into the two sides and the gate's spec.
fn split(with: &Value) -> Result<(Value, Option<Value>, GateSpec), String> {
    let mut map = with.as_object().cloned().unwrap_or_default();
    let candidate = map
        .remove("candidate")
        .ok_or("model.gate@1 needs `with.candidate`")?;
    let baseline = map.remove("baseline").filter(|b| !b.is_null());
    let spec: GateSpec = serde_json::from_value(Value::Object(map))
        .map_err(|e| format!("model.gate@1 with: {e}"))?;
    spec.check_reported()
        .map_err(|problems| problems.join("; "))?;
    Ok((candidate, baseline, spec))
}

/// What is wrong with `with:` as written, when it can be read before the run: the spec (with
/// thresholds, each metric's direction known), and a baseline location the gate cannot read.
pub(crate) fn check(with: &Value) -> Vec<String> {
    let mut spec = with.as_object().cloned().unwrap_or_default();
    spec.retain(|k, _| !INPUT_KEYS.contains(&k.as_str()));
    let mut problems = if Value::Object(spec.clone()).to_string().contains("${{") {
        Vec::new()
    } else {
        match serde_json::from_value::<GateSpec>(Value::Object(spec)) {
            Ok(spec) => spec.check_reported().err().unwrap_or_default(),
            Err(e) => vec![e.to_string()],
        }
    };
    if let Some(Value::String(baseline)) = with.get("baseline")
        && super::with::is_uri(baseline)
        && !baseline.contains("${{")
        && let Err(e) = tracking_uri(baseline)
    {
        problems.push(e);
    }
    problems
}

/// A baseline in tracking.
#[derive(Debug)]
enum Tracking {
    /// `models:/NAME@ALIAS`: the run of the version the alias names.
    Alias { name: String, alias: String },
    /// `models:/NAME/VERSION`: the run of that version.
    Version { name: String, version: String },
    /// A run's metrics (`runs:/RUN_ID`; a path after the id, as in a model URI, is ignored).
    Run(String),
}

fn tracking_uri(text: &str) -> Result<Tracking, String> {
    let refused = || {
        format!(
            "with.baseline {text:?}: name a registered version (models:/NAME@ALIAS, models:/NAME/VERSION), a run (runs:/RUN_ID), an upstream metrics output or a JSON file"
        )
    };
    if let Some(rest) = text.strip_prefix("runs:/") {
        return match rest.split('/').next() {
            Some(id) if !id.is_empty() => Ok(Tracking::Run(id.to_owned())),
            _ => Err(refused()),
        };
    }
    match ModelUri::parse(text) {
        Ok(ModelUri::Alias { name, alias }) => Ok(Tracking::Alias { name, alias }),
        Ok(ModelUri::Version { name, version }) => Ok(Tracking::Version { name, version }),
        _ => Err(refused()),
    }
}

/// One side's metrics: a JSON object of numbers (an upstream `metrics` output, or written in
/// `with:`), or the path of a JSON file holding one (an upstream file output, a repo file).
fn metrics(what: &str, value: &Value) -> Result<BTreeMap<String, f64>, String> {
    match value {
        Value::Object(map) => numbers(what, map),
        Value::String(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("with.{what}: cannot read {path}: {e}"))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => numbers(what, &map),
                Ok(_) => Err(format!(
                    "with.{what}: {} holds JSON that is not an object of metrics",
                    Path::new(path).display()
                )),
                Err(e) => Err(format!("with.{what}: {path} is not JSON: {e}")),
            }
        }
        other => Err(format!(
            "with.{what}: expected metrics (a JSON object of numbers, or a file of one), not {other}"
        )),
    }
}

fn numbers(what: &str, map: &Map<String, Value>) -> Result<BTreeMap<String, f64>, String> {
    map.iter()
        .map(|(name, v)| {
            v.as_f64()
                .map(|x| (name.clone(), x))
                .ok_or_else(|| format!("with.{what}: metric {name} is {v}, not a number"))
        })
        .collect()
}

/// A baseline found in tracking: its latest metrics and, for a registered version, the version.
struct Tracked {
    metrics: BTreeMap<String, f64>,
    version: Option<String>,
    model_id: Option<String>,
}

/// The metrics of the baseline's tracking run, or `None` when an alias names no version yet
/// (no baseline, not an error, as for `model.evaluate@1`).
async fn tracked(ctx: &Ctx<'_>, text: &str) -> Result<Option<Tracked>, String> {
    let uri = tracking_uri(text)?;
    let store = &ctx.services()?.store;
    let cannot = |e: twinloop_core::Error| format!("cannot resolve the baseline {text}: {e}");
    let (run_id, version, model_id) = match uri {
        Tracking::Alias { name, alias } => {
            match store.get_model_version_by_alias(&name, &alias).await {
                Ok(v) => (v.run_id, Some(v.version.to_string()), v.model_id),
                Err(e) if e.kind == twinloop_core::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(cannot(e)),
            }
        }
        Tracking::Version { name, version } => {
            let v = store
                .get_model_version(&name, &version)
                .await
                .map_err(cannot)?;
            (v.run_id, Some(v.version.to_string()), v.model_id)
        }
        Tracking::Run(run_id) => (run_id, None, None),
    };
    if run_id.is_empty() {
        return Err(format!(
            "the baseline {text} was registered without a run, so it has no metrics to compare with"
        ));
    }
    let run = store.get_run(&run_id).await.map_err(cannot)?;
    Ok(Some(Tracked {
        metrics: run
            .data
            .metrics
            .iter()
            .map(|m| (m.key.clone(), m.value))
            .collect(),
        version,
        model_id,
    }))
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let (candidate, baseline, spec) = split(&ctx.with)?;
    let candidate = metrics("candidate", &candidate)?;
    let (baseline, version, model_id) = match &baseline {
        Some(Value::String(text)) if super::with::is_uri(text) => match tracked(ctx, text).await? {
            Some(t) => {
                ctx.log.line(format!(
                    "baseline: {text}{}",
                    t.version
                        .as_ref()
                        .map_or_else(String::new, |v| format!(" (version {v})"))
                ));
                (Some(t.metrics), t.version, t.model_id)
            }
            None => (None, None, None),
        },
        Some(value) => {
            ctx.log.line("baseline: the metrics given");
            (Some(metrics("baseline", value)?), None, None)
        }
        None => (None, None, None),
    };
    if baseline.is_none() {
        ctx.log.line("no baseline: value thresholds only");
    }
    let mut blessing =
        judge_reported(&spec, &candidate, baseline.as_ref()).map_err(|e| e.to_string())?;
    blessing.baseline_version = version;
    blessing.baseline_model = model_id;
    super::evaluate::finish(ctx, &blessing).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_spec_is_checked_when_the_file_loads() {
        let ok = json!({
            "candidate": "${{ steps.train.outputs.metrics }}",
            "baseline": "models:/fraud@champion",
            "metrics": {"val_auc": {"threshold": 0.8, "greater_is_better": true}},
            "on_no_baseline": "reject",
        });
        assert_eq!(check(&ok), Vec::<String>::new());
        let empty = check(&json!({"candidate": "m.json", "metrics": {}}));
        assert!(empty[0].starts_with("metrics: no metric"), "{empty:?}");
        let direction =
            check(&json!({"candidate": "m.json", "metrics": {"val_auc": {"threshold": 0.8}}}));
        assert!(direction[0].contains("greater_is_better"), "{direction:?}");
        let s3 = check(&json!({
            "candidate": "m.json",
            "baseline": "s3://bucket/metrics.json",
            "metrics": {"f1": {"threshold": 0.5}},
        }));
        assert!(s3[0].starts_with("with.baseline \"s3://"), "{s3:?}");
        let typo = check(&json!({"candidate": "m.json", "metrics": {"f1": {"treshold": 0.5}}}));
        assert!(typo[0].contains("treshold"), "{typo:?}");
    }

    #[test]
    fn metrics_come_as_an_object_or_a_file_of_one() {
        assert_eq!(
            metrics("candidate", &json!({"f1": 0.5, "n": 3})).unwrap(),
            BTreeMap::from([("f1".to_owned(), 0.5), ("n".to_owned(), 3.0)])
        );
        assert_eq!(
            metrics("candidate", &json!({"f1": "high"})).unwrap_err(),
            "with.candidate: metric f1 is \"high\", not a number"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics.json");
        std::fs::write(&file, r#"{"f1": 0.75}"#).unwrap();
        let path = json!(file.display().to_string());
        assert_eq!(metrics("baseline", &path).unwrap()["f1"], 0.75);
        std::fs::write(&file, "[1, 2]").unwrap();
        assert!(
            metrics("baseline", &path)
                .unwrap_err()
                .contains("not an object of metrics")
        );
        assert!(
            metrics("baseline", &json!(3))
                .unwrap_err()
                .starts_with("with.baseline: expected")
        );
    }

    #[test]
    fn tracking_baselines_are_versions_or_runs() {
        assert!(matches!(
            tracking_uri("models:/m@champion"),
            Ok(Tracking::Alias { alias, .. }) if alias == "champion"
        ));
        assert!(matches!(
            tracking_uri("models:/m/3"),
            Ok(Tracking::Version { version, .. }) if version == "3"
        ));
        assert!(matches!(tracking_uri("runs:/abc"), Ok(Tracking::Run(id)) if id == "abc"));
        assert!(matches!(tracking_uri("runs:/abc/model"), Ok(Tracking::Run(id)) if id == "abc"));
        assert!(tracking_uri("runs:/").is_err());
        assert!(tracking_uri("s3://b/k").is_err());
    }
}

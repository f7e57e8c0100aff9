//! The built-in steps (`uses:`), which run in process: their catalog, their `with:` handling
//! and their implementations.

mod canary;
mod catalog;
mod evaluate;
mod gate;
mod materialize;
mod notify;
mod profile;
mod register;
mod score;
mod train;
mod training_set;
mod validate_data;
pub mod with;

pub use catalog::Builtin;

use serde_json::Value;

/// What is wrong with a built-in's `with:` before anything runs: missing or unknown keys, and
/// each built-in's own rules (a gate with no thresholds is refused, not an empty blessing).
pub fn check(builtin: Builtin, with: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(map) = with.as_object() else {
        return vec!["`with:` is a mapping of arguments".into()];
    };
    let (required, optional) = builtin.args();
    for key in required {
        if !map.contains_key(*key) {
            problems.push(format!("{builtin} needs `with.{key}`"));
        }
    }
    for key in map.keys() {
        if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
            let mut known: Vec<&str> = required.iter().chain(optional).copied().collect();
            known.sort_unstable();
            problems.push(format!(
                "{builtin} has no argument {key:?} (it takes: {})",
                known.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        problems.extend(match builtin {
            Builtin::ModelEvaluate => evaluate::check(with),
            Builtin::ModelGate => gate::check(with),
            Builtin::DataProfile => profile::check(with),
            Builtin::FeaturesMaterialize => materialize::check(with),
            _ => Vec::new(),
        });
    }
    problems
}

/// What a built-in's attempt is given: its rendered `with:`, where to write its file outputs,
/// the log, and the services of the run.
pub(crate) struct Ctx<'a> {
    pub builtin: Builtin,
    pub run_id: &'a str,
    pub pipeline: &'a str,
    pub step: &'a str,
    pub repo: &'a std::path::Path,
    pub with: Value,
    /// `outputs/<name>` is where a file output goes.
    pub outputs_dir: std::path::PathBuf,
    pub services: Option<&'a crate::services::Services>,
    /// The step run's id in tracking, when the run is recorded there.
    pub mlflow_run_id: Option<&'a str>,
    pub log: Log,
}

/// The attempt's `stdout.log`: what the built-in did, line by line.
pub(crate) struct Log(std::sync::Mutex<std::fs::File>);

impl Log {
    pub fn new(file: std::fs::File) -> Log {
        Log(std::sync::Mutex::new(file))
    }

    pub fn line(&self, text: impl AsRef<str>) {
        use std::io::Write;
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = writeln!(file, "{}", text.as_ref()) {
            tracing::warn!(error = %e, "cannot write a built-in's log");
        }
    }
}

impl Ctx<'_> {
    /// The typed arguments, or an error saying which one is wrong.
    pub fn args<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.with.clone()).map_err(|e| format!("{} with: {e}", self.builtin))
    }

    pub fn output_path(&self, name: &str) -> std::path::PathBuf {
        self.outputs_dir.join(name)
    }

    pub fn services(&self) -> Result<&crate::services::Services, String> {
        self.services.ok_or_else(|| {
            format!(
                "{} needs the metadata store: run the pipeline with `twinloop pipeline run` (which opens the store) or on a server",
                self.builtin
            )
        })
    }
}

/// The value outputs a built-in produced; its file outputs are in `Ctx::outputs_dir`.
pub(crate) type Values = std::collections::BTreeMap<String, Value>;

/// What a built-in's result depends on besides its rendered `with:` and inputs, as
/// `name → digest` entries of its cache key: the training set's feature definitions and sources.
/// An `Err` says what could not be read; the step fails with it.
pub(crate) fn extra_digests(
    builtin: Builtin,
    with: &Value,
    repo: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    match builtin {
        Builtin::FeaturesTrainingSet => training_set::source_digests(with, repo),
        _ => Ok(std::collections::BTreeMap::new()),
    }
}

/// Runs the built-in. An `Err` fails the attempt with that reason.
pub(crate) async fn execute(ctx: &Ctx<'_>) -> Result<Values, String> {
    match ctx.builtin {
        Builtin::FeaturesTrainingSet => training_set::run(ctx).await,
        Builtin::ModelTrainLinear => train::run(ctx).await,
        Builtin::ModelEvaluate => evaluate::run(ctx).await,
        Builtin::DataValidate => validate_data::run(ctx).await,
        Builtin::DataProfile => profile::run(ctx).await,
        Builtin::FeaturesMaterialize => materialize::run(ctx).await,
        Builtin::ModelGate => gate::run(ctx).await,
        Builtin::ModelRegister => register::run(ctx).await,
        Builtin::DeploySetAlias => canary::set_alias_step(ctx).await,
        Builtin::DeployCanary => canary::canary_step(ctx).await,
        Builtin::NotifyWebhook => notify::run(ctx).await,
    }
}

//! The built-in steps a pipeline may `uses:`, what each produces and how it is cached. A name
//! outside this list, or a version it does not have, is refused when the file loads.

use std::fmt;

use crate::spec::OutputKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Builtin {
    DataValidate,
    DataProfile,
    FeaturesTrainingSet,
    FeaturesMaterialize,
    ModelTrainLinear,
    ModelEvaluate,
    ModelGate,
    ModelRegister,
    DeployCanary,
    DeploySetAlias,
    NotifyWebhook,
}

const ALL: [Builtin; 11] = [
    Builtin::DataValidate,
    Builtin::DataProfile,
    Builtin::FeaturesTrainingSet,
    Builtin::FeaturesMaterialize,
    Builtin::ModelTrainLinear,
    Builtin::ModelEvaluate,
    Builtin::ModelGate,
    Builtin::ModelRegister,
    Builtin::DeployCanary,
    Builtin::DeploySetAlias,
    Builtin::NotifyWebhook,
];

impl Builtin {
    /// Parses `name@version`; every built-in is at version 1.
    pub fn parse(text: &str) -> Result<Builtin, String> {
        let known = || {
            ALL.iter()
                .map(|b| format!("{}@1", b.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some((name, version)) = text.split_once('@') else {
            return Err(format!(
                "`uses: {text}` needs a version, as in `{text}@1` (built-ins: {})",
                known()
            ));
        };
        let builtin = ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| format!("unknown built-in {name:?}; the built-ins are {}", known()))?;
        if version != "1" {
            return Err(format!("{name} has no version {version:?}; use {name}@1"));
        }
        Ok(builtin)
    }

    pub fn name(self) -> &'static str {
        match self {
            Builtin::DataValidate => "data.validate",
            Builtin::DataProfile => "data.profile",
            Builtin::FeaturesTrainingSet => "features.training-set",
            Builtin::FeaturesMaterialize => "features.materialize",
            Builtin::ModelTrainLinear => "model.train-linear",
            Builtin::ModelEvaluate => "model.evaluate",
            Builtin::ModelGate => "model.gate",
            Builtin::ModelRegister => "model.register",
            Builtin::DeployCanary => "deploy.canary",
            Builtin::DeploySetAlias => "deploy.set-alias",
            Builtin::NotifyWebhook => "notify.webhook",
        }
    }

    /// The outputs every run of the built-in produces, as `steps.<id>.outputs.<name>`. A data
    /// profile is a file: it is nested and holds text (types, top values), so it is not
    /// `metrics`, and a wide dataset's would pass a `value`'s 64 KiB; its dataset-level numbers
    /// are `metrics`, which also land on the step's tracking run.
    pub fn outputs(self) -> &'static [(&'static str, OutputKind)] {
        use OutputKind::{File, Metrics, Value};
        match self {
            Builtin::DataValidate => &[("report", File), ("drift", Value)],
            Builtin::DataProfile => &[("profile", File), ("summary", File), ("metrics", Metrics)],
            Builtin::FeaturesTrainingSet => &[("train", File), ("holdout", File), ("rows", Value)],
            Builtin::FeaturesMaterialize => &[("rows", Metrics), ("views", Value)],
            Builtin::ModelTrainLinear => &[("model", File), ("metrics", Metrics)],
            Builtin::ModelEvaluate | Builtin::ModelGate => &[
                ("blessing", File),
                ("blessed", Value),
                ("reasons", Value),
                ("baseline_version", Value),
            ],
            Builtin::ModelRegister => &[("name", Value), ("version", Value)],
            Builtin::DeployCanary => &[("outcome", Value), ("reason", Value), ("version", Value)],
            Builtin::DeploySetAlias => &[("version", Value)],
            Builtin::NotifyWebhook => &[("status", Value)],
        }
    }

    /// The `with:` keys the built-in requires, then those it also accepts.
    pub fn args(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Builtin::DataValidate => (
                &["data"],
                &[
                    "schema",
                    "reference",
                    "fail_on",
                    "warn_on",
                    "columns",
                    "drift_share",
                ],
            ),
            Builtin::DataProfile => (&["data"], &["columns", "top", "quantiles"]),
            Builtin::FeaturesTrainingSet => (&["entities", "features"], &["repo", "split"]),
            Builtin::FeaturesMaterialize => {
                (&[], &["repo", "views", "start", "end", "incremental"])
            }
            Builtin::ModelTrainLinear => (
                &["data", "label"],
                &["features", "exclude", "algorithm", "params"],
            ),
            Builtin::ModelEvaluate => (
                &["candidate", "data", "label", "metrics"],
                &[
                    "baseline",
                    "confidence",
                    "on_no_baseline",
                    "bootstrap_samples",
                ],
            ),
            Builtin::ModelGate => (&["candidate", "metrics"], &["baseline", "on_no_baseline"]),
            Builtin::ModelRegister => (
                &["name", "model"],
                &["alias", "signature_from", "description", "tags"],
            ),
            Builtin::DeployCanary => (
                &["deployment", "candidate"],
                &[
                    "model",
                    "steps",
                    "interval",
                    "max_error_rate",
                    "max_p99_ms",
                    "on_promote",
                    "wait",
                ],
            ),
            Builtin::DeploySetAlias => (&["model", "alias", "version"], &[]),
            Builtin::NotifyWebhook => (&["url"], &["body", "secret"]),
        }
    }

    /// Whether a result may be reused from the cache. Steps with effects outside their outputs
    /// (the registry, deployments, the online store, a webhook) are never cached: they are
    /// idempotent instead. The gates are not cached either, because a baseline from the registry
    /// is resolved when they run.
    pub fn cacheable(self) -> bool {
        matches!(
            self,
            Builtin::DataValidate
                | Builtin::DataProfile
                | Builtin::FeaturesTrainingSet
                | Builtin::ModelTrainLinear
        )
    }

    /// Whether the step judges a candidate and writes a blessing, which `pipeline bless` may
    /// override.
    pub fn is_gate(self) -> bool {
        matches!(self, Builtin::ModelEvaluate | Builtin::ModelGate)
    }

    /// `with:` keys whose plain-string values name files of the repo: they are digested into the
    /// cache key like `inputs:` paths and handed to the built-in as absolute paths.
    pub fn path_args(self) -> &'static [&'static str] {
        match self {
            Builtin::DataValidate => &["data", "reference", "schema"],
            Builtin::DataProfile | Builtin::ModelTrainLinear => &["data"],
            Builtin::ModelEvaluate => &["candidate", "data"],
            Builtin::FeaturesTrainingSet => &["entities"],
            Builtin::ModelGate => &["candidate", "baseline"],
            Builtin::ModelRegister => &["model", "signature_from"],
            Builtin::FeaturesMaterialize
            | Builtin::DeployCanary
            | Builtin::DeploySetAlias
            | Builtin::NotifyWebhook => &[],
        }
    }

    /// Whether the run is rejected (not failed) by what this step produced: the gate did not
    /// bless, or the canary rolled back. The pipeline did its job; the candidate lost.
    pub fn rejection(self, outputs: &crate::state::StepOutputs) -> Option<String> {
        let value = |name: &str| outputs.get(name).and_then(|o| o.value.clone());
        match self {
            Builtin::ModelEvaluate | Builtin::ModelGate => match value("blessed") {
                Some(serde_json::Value::Bool(false)) => {
                    let reasons = value("reasons")
                        .and_then(|r| serde_json::from_value::<Vec<String>>(r).ok())
                        .unwrap_or_default();
                    let failed: Vec<String> =
                        reasons.into_iter().filter(|r| r.ends_with('✗')).collect();
                    Some(format!("the gate did not bless: {}", failed.join("; ")))
                }
                _ => None,
            },
            Builtin::DeployCanary => match value("outcome") {
                Some(serde_json::Value::String(o)) if o == "rolled_back" => Some(format!(
                    "the canary rolled back: {}",
                    value("reason")
                        .as_ref()
                        .map_or_else(String::new, crate::expr::to_text)
                )),
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@1", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknowns_are_named() {
        for b in ALL {
            assert_eq!(Builtin::parse(&b.to_string()), Ok(b));
        }
        assert!(
            Builtin::parse("model.evaluate")
                .unwrap_err()
                .contains("needs a version")
        );
        assert!(
            Builtin::parse("model.evaluate@2")
                .unwrap_err()
                .contains("no version")
        );
        let unknown = Builtin::parse("model.magic@1").unwrap_err();
        assert!(
            unknown.contains("unknown built-in") && unknown.contains("model.evaluate@1"),
            "{unknown}"
        );
    }
}

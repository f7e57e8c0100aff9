//! What a gate asks: the `with:` of a `model.evaluate@1` step, less the inputs (candidate,
//! baseline, data, label) that the built-in resolves itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::Metric;

/// The paired bootstrap's resamples when the spec does not say.
pub const DEFAULT_BOOTSTRAP_SAMPLES: usize = 1000;
/// Below this a 95% percentile interval rests on two or three resamples per tail.
const MIN_BOOTSTRAP_SAMPLES: usize = 100;
/// Above this the gate's time grows without making the interval any more useful.
const MAX_BOOTSTRAP_SAMPLES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Metric name → its thresholds.
    pub metrics: BTreeMap<String, MetricThreshold>,
    /// With a confidence c in (0, 1), a change threshold passes only if the c-interval of the
    /// paired bootstrap of the delta clears it; without, the point values are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub on_no_baseline: OnNoBaseline,
    #[serde(default = "default_bootstrap_samples")]
    pub bootstrap_samples: usize,
}

fn default_bootstrap_samples() -> usize {
    DEFAULT_BOOTSTRAP_SAMPLES
}

/// MLflow's `MetricThreshold`, with `greater_is_better` defaulting to the metric's own direction.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    /// A bound on the candidate's value, in the good direction (≥ if greater is better, else ≤).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The candidate must beat the baseline by at least this much. Unlike MLflow, 0 is allowed:
    /// it means "no worse than the baseline".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_absolute_change: Option<f64>,
    /// The same as a fraction (0 to 1) of the baseline's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_relative_change: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greater_is_better: Option<bool>,
}

/// What the gate does when there is no baseline (the first model, or the alias is unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoBaseline {
    /// Check the value thresholds only.
    #[default]
    Bless,
    /// Do not bless.
    Reject,
}

/// One metric of the spec, resolved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Judged<'a> {
    pub(super) name: &'a str,
    pub(super) metric: Metric,
    pub(super) threshold: &'a MetricThreshold,
    pub(super) greater_is_better: bool,
}

impl GateSpec {
    /// What parse-time validation reports: every problem, each naming its field. A gate with no
    /// thresholds is an error here, so that it can never bless everything silently.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.metrics.is_empty() {
            errors.push(
                "metrics: no metric to judge by; a gate without thresholds would bless any model"
                    .to_owned(),
            );
        }
        for (name, t) in &self.metrics {
            if let Err(e) = name.parse::<Metric>() {
                errors.push(format!("metrics.{name}: {e}"));
            }
            errors.extend(
                t.problems()
                    .into_iter()
                    .map(|p| format!("metrics.{name}: {p}")),
            );
        }
        if let Some(c) = self.confidence
            && !(c > 0.0 && c < 1.0)
        {
            errors.push(format!(
                "confidence: {c} is not between 0 and 1 (exclusive), e.g. 0.95"
            ));
        }
        if !(MIN_BOOTSTRAP_SAMPLES..=MAX_BOOTSTRAP_SAMPLES).contains(&self.bootstrap_samples) {
            errors.push(format!(
                "bootstrap_samples: {} is not between {MIN_BOOTSTRAP_SAMPLES} and \
                 {MAX_BOOTSTRAP_SAMPLES}",
                self.bootstrap_samples
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The metrics in name order, or `check`'s errors.
    pub(super) fn judged(&self) -> Result<Vec<Judged<'_>>, Vec<String>> {
        self.check()?;
        Ok(self
            .metrics
            .iter()
            .filter_map(|(name, threshold)| {
                let metric = name.parse::<Metric>().ok()?;
                Some(Judged {
                    name,
                    metric,
                    threshold,
                    greater_is_better: threshold
                        .greater_is_better
                        .unwrap_or_else(|| metric.greater_is_better()),
                })
            })
            .collect())
    }
}

impl MetricThreshold {
    /// Whether a baseline is needed to judge this metric.
    pub fn has_change(&self) -> bool {
        self.min_absolute_change.is_some() || self.min_relative_change.is_some()
    }

    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.threshold.is_none() && !self.has_change() {
            out.push(
                "no threshold, min_absolute_change or min_relative_change; give at least one"
                    .to_owned(),
            );
        }
        if let Some(t) = self.threshold
            && !t.is_finite()
        {
            out.push(format!("threshold {t} is not a finite number"));
        }
        if let Some(a) = self.min_absolute_change
            && !(a.is_finite() && a >= 0.0)
        {
            out.push(format!(
                "min_absolute_change {a} must be a number ≥ 0 (the direction comes from \
                 greater_is_better)"
            ));
        }
        if let Some(r) = self.min_relative_change
            && !(0.0..=1.0).contains(&r)
        {
            out.push(format!(
                "min_relative_change {r} must be between 0 and 1 (a fraction of the baseline)"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> GateSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_designs_example_parses_with_defaults() {
        let s = spec(
            r#"{"metrics": {
                  "roc_auc": {"threshold": 0.80, "min_absolute_change": 0.0, "greater_is_better": true},
                  "log_loss": {"min_relative_change": 0.0, "greater_is_better": false}},
                "confidence": 0.95, "on_no_baseline": "bless"}"#,
        );
        assert_eq!(s.check(), Ok(()));
        assert_eq!(s.bootstrap_samples, DEFAULT_BOOTSTRAP_SAMPLES);
        assert_eq!(s.metrics["roc_auc"].threshold, Some(0.80));
        let defaults = spec(r#"{"metrics": {"mae": {"threshold": 1}}}"#);
        assert_eq!(defaults.on_no_baseline, OnNoBaseline::Bless);
        assert_eq!(defaults.confidence, None);
        let judged = defaults.judged().unwrap();
        assert!(!judged[0].greater_is_better, "mae is lower-is-better");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            serde_json::from_str::<GateSpec>(r#"{"metrics": {}, "confidense": 0.9}"#).unwrap_err();
        assert!(err.to_string().contains("confidense"), "{err}");
        let err = serde_json::from_str::<GateSpec>(r#"{"metrics": {"f1": {"treshold": 0.9}}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("treshold"), "{err}");
        let err = serde_json::from_str::<GateSpec>(r#"{"metrics": {}, "on_no_baseline": "pass"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("pass"), "{err}");
    }

    #[test]
    fn a_spec_with_no_thresholds_is_refused() {
        let errors = spec(r#"{"metrics": {}}"#).check().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("metrics: "), "{errors:?}");
        let errors = spec(r#"{"metrics": {"roc_auc": {"greater_is_better": true}}}"#)
            .check()
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("metrics.roc_auc: no threshold"),
            "{errors:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_naming_its_field() {
        let errors = spec(
            r#"{"metrics": {"auc": {"threshold": 0.8},
                            "rmse": {"min_absolute_change": -1, "min_relative_change": 1.5}},
                "confidence": 1.0, "bootstrap_samples": 5}"#,
        )
        .check()
        .unwrap_err();
        let starts: Vec<&str> = errors
            .iter()
            .map(|e| e.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "metrics.auc:",
                "metrics.rmse:",
                "metrics.rmse:",
                "confidence:",
                "bootstrap_samples:"
            ],
            "{errors:?}"
        );
        assert!(errors[0].contains("unknown metric `auc`"), "{errors:?}");
        assert!(
            spec(r#"{"metrics": {"f1": {"threshold": 0.5}}, "confidence": 0}"#)
                .check()
                .is_err()
        );
    }
}

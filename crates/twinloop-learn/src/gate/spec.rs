//! What a gate asks: the `with:` of a `model.evaluate@1` or `model.gate@1` step, less the
//! inputs (candidate, baseline, data, label) that the built-in resolves itself.

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
    pub(super) threshold: &'a MetricThreshold,
    pub(super) greater_is_better: bool,
}

/// Where the metrics' values come from, which decides the names a spec may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The gate computes them from both models' scores: only the metrics it knows.
    Computed,
    /// A step reported them: any name, but an unknown one must say which way is better, and
    /// there are no rows for a bootstrap.
    Reported,
}

impl GateSpec {
    /// What parse-time validation of `model.evaluate@1` reports: every problem, each naming its
    /// field. A gate with no thresholds is an error here, so that it can never bless everything
    /// silently.
    pub fn check(&self) -> Result<(), Vec<String>> {
        into_result(self.problems(Source::Computed))
    }

    /// The same for metrics a step computed (`model.gate@1`): a metric twinloop does not know
    /// needs `greater_is_better`, and `confidence` is refused, since no rows are there to
    /// resample.
    pub fn check_reported(&self) -> Result<(), Vec<String>> {
        into_result(self.problems(Source::Reported))
    }

    fn problems(&self, source: Source) -> Vec<String> {
        let mut errors = Vec::new();
        if self.metrics.is_empty() {
            errors.push(
                "metrics: no metric to judge by; a gate without thresholds would bless any model"
                    .to_owned(),
            );
        }
        for (name, t) in &self.metrics {
            match (name.parse::<Metric>(), source) {
                (Ok(_), _) => {}
                (Err(e), Source::Computed) => errors.push(format!("metrics.{name}: {e}")),
                (Err(_), Source::Reported) if name.trim().is_empty() => {
                    errors.push("metrics: a metric's name is empty".to_owned());
                }
                (Err(_), Source::Reported) if t.greater_is_better.is_none() => {
                    errors.push(format!(
                        "metrics.{name}: not a metric twinloop knows, so its direction must be \
                         given: greater_is_better: true or false"
                    ));
                }
                (Err(_), Source::Reported) => {}
            }
            errors.extend(
                t.problems()
                    .into_iter()
                    .map(|p| format!("metrics.{name}: {p}")),
            );
        }
        match (self.confidence, source) {
            (Some(c), Source::Computed) if !(c > 0.0 && c < 1.0) => errors.push(format!(
                "confidence: {c} is not between 0 and 1 (exclusive), e.g. 0.95"
            )),
            (Some(_), Source::Reported) => errors.push(
                "confidence: reported metrics have no rows to resample; compare the points \
                 (or use model.evaluate@1, which scores both models)"
                    .to_owned(),
            ),
            _ => {}
        }
        if source == Source::Computed
            && !(MIN_BOOTSTRAP_SAMPLES..=MAX_BOOTSTRAP_SAMPLES).contains(&self.bootstrap_samples)
        {
            errors.push(format!(
                "bootstrap_samples: {} is not between {MIN_BOOTSTRAP_SAMPLES} and \
                 {MAX_BOOTSTRAP_SAMPLES}",
                self.bootstrap_samples
            ));
        }
        errors
    }

    /// The metrics in name order with the metric each computes, or `check`'s errors.
    pub(super) fn judged(&self) -> Result<Vec<(Judged<'_>, Metric)>, Vec<String>> {
        self.check()?;
        Ok(self
            .metrics
            .iter()
            .filter_map(|(name, threshold)| {
                let metric = name.parse::<Metric>().ok()?;
                let judged = Judged {
                    name,
                    threshold,
                    greater_is_better: threshold
                        .greater_is_better
                        .unwrap_or_else(|| metric.greater_is_better()),
                };
                Some((judged, metric))
            })
            .collect())
    }

    /// The metrics in name order, or `check_reported`'s errors.
    pub(super) fn judged_reported(&self) -> Result<Vec<Judged<'_>>, Vec<String>> {
        self.check_reported()?;
        Ok(self
            .metrics
            .iter()
            .filter_map(|(name, threshold)| {
                let greater_is_better = threshold
                    .greater_is_better
                    .or_else(|| name.parse::<Metric>().ok().map(Metric::greater_is_better))?;
                Some(Judged {
                    name,
                    threshold,
                    greater_is_better,
                })
            })
            .collect())
    }
}

fn into_result(errors: Vec<String>) -> Result<(), Vec<String>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
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
        assert!(!judged[0].0.greater_is_better, "mae is lower-is-better");
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

    #[test]
    fn reported_metrics_may_have_any_name_that_says_its_direction() {
        let s = spec(
            r#"{"metrics": {"ndcg_at_10": {"threshold": 0.3, "greater_is_better": true},
                            "mae": {"min_relative_change": 0.0}}}"#,
        );
        assert_eq!(s.check_reported(), Ok(()));
        assert!(
            s.check().is_err(),
            "model.evaluate cannot compute ndcg_at_10"
        );
        let judged = s.judged_reported().unwrap();
        let directions: Vec<(&str, bool)> = judged
            .iter()
            .map(|j| (j.name, j.greater_is_better))
            .collect();
        assert_eq!(directions, [("mae", false), ("ndcg_at_10", true)]);

        let errors = spec(r#"{"metrics": {"ndcg_at_10": {"threshold": 0.3}}, "confidence": 0.95}"#)
            .check_reported()
            .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("metrics.ndcg_at_10: not a metric twinloop knows"),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("confidence: "), "{errors:?}");
        let errors = spec(r#"{"metrics": {}}"#).check_reported().unwrap_err();
        assert!(errors[0].starts_with("metrics: no metric"), "{errors:?}");
    }
}

//! The evaluation gate of `model.evaluate@1` (design: pipelines.md §7): MLflow's
//! `MetricThreshold` semantics over both models' metrics on the same holdout, and, with a
//! `confidence`, a paired bootstrap so that a candidate better by noise only is not blessed.
//! `model.gate@1` applies the same checks to metrics a step reported ([`judge_reported`]).
//!
//! [`judge`] returns a [`Blessing`], the artifact the step always writes. The fields that only the
//! built-in knows (the baseline's version, model ids, the eval data's digest) are `None` here and
//! filled by the caller before writing.

mod judge;
mod reason;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::bootstrap::{BootstrapError, Interval};
use crate::metrics::MetricError;

pub use judge::{judge, judge_reported};
pub use spec::{DEFAULT_BOOTSTRAP_SAMPLES, GateSpec, MetricThreshold, OnNoBaseline};

/// The gate's verdict and everything it was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blessing {
    pub blessed: bool,
    /// There was no baseline to compare with; a reason says what the gate did instead.
    pub no_baseline: bool,
    /// Metric name → the candidate's value on the holdout.
    pub candidate: BTreeMap<String, f64>,
    /// The baseline's values on the same holdout, when there was a baseline.
    pub baseline: Option<BTreeMap<String, f64>>,
    /// Metric name → candidate − baseline (the raw difference, whatever the good direction).
    pub deltas: BTreeMap<String, f64>,
    /// Metric name → the paired bootstrap's interval of the delta, for the metrics whose change
    /// thresholds were judged with a confidence.
    pub intervals: BTreeMap<String, Interval>,
    /// One human line per check, e.g. `roc_auc Δ +0.0130 [95% +0.0040, +0.0220] ≥ 0 ✓`.
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
    pub confidence: Option<f64>,
    /// The bootstrap's seed, so the intervals can be replayed.
    pub seed: u64,
    /// Filled by the built-in step: the baseline's resolved model version.
    #[serde(default)]
    pub baseline_version: Option<String>,
    /// Filled by the built-in step: the candidate's model id (or digest).
    #[serde(default)]
    pub candidate_model: Option<String>,
    /// Filled by the built-in step: the baseline's model id (or digest).
    #[serde(default)]
    pub baseline_model: Option<String>,
    /// Filled by the built-in step: the digest of the holdout both models were scored on.
    #[serde(default)]
    pub eval_data_digest: Option<String>,
}

/// One threshold of one metric, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub metric: String,
    pub kind: CheckKind,
    pub passed: bool,
    pub greater_is_better: bool,
    /// `threshold`: the candidate's value. `min_absolute_change`: candidate − baseline.
    /// `min_relative_change`: (candidate − baseline) / |baseline|, or candidate − baseline when
    /// the baseline is 0 (MLflow's fallback: then any strict improvement passes).
    pub observed: f64,
    /// The bound `observed` must reach: ≥ it if greater is better, else ≤ it. For the changes
    /// the bound carries the good direction's sign (+min, or −min for lower-is-better).
    pub bound: f64,
    /// With a confidence: the interval of `observed`; its end on the bad side must reach `bound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// A `min_relative_change` against a baseline of 0, judged by MLflow's fallback: `observed`
    /// is then candidate − baseline and `bound` ±1e-10.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zero_baseline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Threshold,
    MinAbsoluteChange,
    MinRelativeChange,
}

/// Why the gate could not judge: the step fails; it never blesses on an error.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GateError {
    #[error("invalid gate: {}", .0.join("; "))]
    Spec(Vec<String>),
    #[error("candidate: {0}")]
    Candidate(MetricError),
    #[error("baseline: {0}")]
    Baseline(MetricError),
    #[error(
        "the candidate has {candidate} scores, the baseline {baseline}; the same rows are needed"
    )]
    Rows { candidate: usize, baseline: usize },
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(
        "{side}: no metric `{metric}` among the reported ones ({})",
        list(reported)
    )]
    MissingMetric {
        side: Side,
        metric: String,
        reported: Vec<String>,
    },
    #[error("{side}: metric `{metric}` is {value}, not a finite number")]
    NotFinite {
        side: Side,
        metric: String,
        value: f64,
    },
}

/// Which model a reported metric belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Candidate,
    Baseline,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Candidate => "candidate",
            Side::Baseline => "baseline",
        })
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none were".to_owned()
    } else {
        format!("it has: {}", names.join(", "))
    }
}

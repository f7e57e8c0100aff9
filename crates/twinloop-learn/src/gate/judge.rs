//! Applying the thresholds: MLflow's `MetricThreshold` semantics, with the paired bootstrap's
//! interval in place of the point delta when the spec asks for a confidence.

use std::collections::BTreeMap;

use super::reason;
use super::spec::{GateSpec, Judged, OnNoBaseline};
use super::{Blessing, Check, CheckKind, GateError};
use crate::bootstrap::{Interval, paired_bootstrap};
use crate::metrics::{Metric, Scores, compute};

/// MLflow's margin when the baseline is 0 and a relative change cannot be taken: the candidate
/// must then be strictly better by this much.
const ZERO_BASELINE_MARGIN: f64 = 1e-10;

/// Judges `candidate` (and `baseline`, if any) on the holdout `truth`. `seed` seeds the bootstrap
/// (the built-in derives it from the run id, so a run replays to the same blessing).
pub fn judge(
    spec: &GateSpec,
    truth: &[f64],
    candidate: &Scores,
    baseline: Option<&Scores>,
    seed: u64,
) -> Result<Blessing, GateError> {
    let judged = spec.judged().map_err(GateError::Spec)?;
    if let Some(b) = baseline
        && b.values().len() != candidate.values().len()
    {
        return Err(GateError::Rows {
            candidate: candidate.values().len(),
            baseline: b.values().len(),
        });
    }
    let mut candidate_values = Vec::with_capacity(judged.len());
    let mut baseline_values = Vec::with_capacity(judged.len());
    for j in &judged {
        candidate_values.push(compute(j.metric, truth, candidate).map_err(GateError::Candidate)?);
        if let Some(b) = baseline {
            baseline_values.push(compute(j.metric, truth, b).map_err(GateError::Baseline)?);
        }
    }
    let intervals = match (baseline, spec.confidence) {
        (Some(b), Some(confidence)) => {
            let changes: Vec<Metric> = judged
                .iter()
                .filter(|j| j.threshold.has_change())
                .map(|j| j.metric)
                .collect();
            paired_bootstrap(truth, candidate, b, &changes, spec.bootstrap_samples, seed)?
                .into_iter()
                .map(|r| (r.metric, r.delta_interval(confidence)))
                .collect()
        }
        _ => BTreeMap::new(),
    };

    let mut checks = Vec::new();
    for (i, j) in judged.iter().enumerate() {
        let c = candidate_values[i];
        if let Some(t) = j.threshold.threshold {
            checks.push(value_check(j, c, t));
        }
        if let Some(&b) = baseline_values.get(i) {
            let interval = intervals.get(&j.metric).copied();
            if let Some(min) = j.threshold.min_absolute_change {
                checks.push(absolute_check(j, c, b, min, interval));
            }
            if let Some(min) = j.threshold.min_relative_change {
                checks.push(relative_check(j, c, b, min, interval));
            }
        }
    }

    let mut reasons = Vec::new();
    if baseline.is_none() {
        reasons.push(reason::no_baseline(spec.on_no_baseline));
    }
    reasons.extend(checks.iter().map(reason::line));
    let blessed = !(baseline.is_none() && spec.on_no_baseline == OnNoBaseline::Reject)
        && checks.iter().all(|c| c.passed);
    let by_name = |values: &[f64]| -> BTreeMap<String, f64> {
        judged
            .iter()
            .zip(values)
            .map(|(j, &v)| (j.name.to_owned(), v))
            .collect()
    };
    Ok(Blessing {
        blessed,
        no_baseline: baseline.is_none(),
        candidate: by_name(&candidate_values),
        baseline: baseline.map(|_| by_name(&baseline_values)),
        deltas: judged
            .iter()
            .zip(candidate_values.iter().zip(&baseline_values))
            .map(|(j, (c, b))| (j.name.to_owned(), c - b))
            .collect(),
        intervals: intervals
            .into_iter()
            .map(|(m, i)| (m.name().to_owned(), i))
            .collect(),
        reasons,
        checks,
        confidence: spec.confidence,
        seed,
        baseline_version: None,
        candidate_model: None,
        baseline_model: None,
        eval_data_digest: None,
    })
}

/// `a` is at least as good as `b` in the metric's direction.
fn at_least(greater_is_better: bool, a: f64, b: f64) -> bool {
    if greater_is_better { a >= b } else { a <= b }
}

/// The interval's end on the bad side reaches `bound`.
fn interval_clears(greater_is_better: bool, interval: Interval, bound: f64) -> bool {
    let bad_end = if greater_is_better {
        interval.low
    } else {
        interval.high
    };
    at_least(greater_is_better, bad_end, bound)
}

/// +x if greater is better, else −x: a required change pointing the good way.
fn toward_good(greater_is_better: bool, x: f64) -> f64 {
    // 0 − x rather than −x, so that a required change of 0 is written 0, not -0.
    if greater_is_better { x } else { 0.0 - x }
}

fn value_check(j: &Judged<'_>, candidate: f64, threshold: f64) -> Check {
    Check {
        metric: j.name.to_owned(),
        kind: CheckKind::Threshold,
        passed: at_least(j.greater_is_better, candidate, threshold),
        greater_is_better: j.greater_is_better,
        observed: candidate,
        bound: threshold,
        interval: None,
        zero_baseline: false,
    }
}

fn absolute_check(
    j: &Judged<'_>,
    candidate: f64,
    baseline: f64,
    min: f64,
    interval: Option<Interval>,
) -> Check {
    let bound = toward_good(j.greater_is_better, min);
    let passed = match interval {
        Some(i) => interval_clears(j.greater_is_better, i, bound),
        // MLflow's exact comparison: candidate against baseline ± min.
        None => at_least(j.greater_is_better, candidate, baseline + bound),
    };
    Check {
        metric: j.name.to_owned(),
        kind: CheckKind::MinAbsoluteChange,
        passed,
        greater_is_better: j.greater_is_better,
        observed: candidate - baseline,
        bound,
        interval,
        zero_baseline: false,
    }
}

/// MLflow divides by the baseline; dividing by its magnitude gives the same number for every
/// metric here but R², where a negative baseline would otherwise flip the sign of an improvement.
fn relative_check(
    j: &Judged<'_>,
    candidate: f64,
    baseline: f64,
    min: f64,
    interval: Option<Interval>,
) -> Check {
    let g = j.greater_is_better;
    let (observed, bound, interval) = if baseline == 0.0 {
        (
            candidate - baseline,
            toward_good(g, ZERO_BASELINE_MARGIN),
            interval,
        )
    } else {
        (
            (candidate - baseline) / baseline.abs(),
            toward_good(g, min),
            interval.map(|i| i.scaled(baseline.abs())),
        )
    };
    let passed = match interval {
        Some(i) => interval_clears(g, i, bound),
        None => at_least(g, observed, bound),
    };
    Check {
        metric: j.name.to_owned(),
        kind: CheckKind::MinRelativeChange,
        passed,
        greater_is_better: g,
        observed,
        bound,
        interval,
        zero_baseline: baseline == 0.0,
    }
}

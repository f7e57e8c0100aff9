//! Applying the thresholds: MLflow's `MetricThreshold` semantics, with the paired bootstrap's
//! interval in place of the point delta when the spec asks for a confidence.

use std::collections::BTreeMap;

use super::reason;
use super::spec::{GateSpec, Judged, OnNoBaseline};
use super::{Blessing, Check, CheckKind, GateError, Side};
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
    for (_, metric) in &judged {
        candidate_values.push(compute(*metric, truth, candidate).map_err(GateError::Candidate)?);
        if let Some(b) = baseline {
            baseline_values.push(Some(
                compute(*metric, truth, b).map_err(GateError::Baseline)?,
            ));
        }
    }
    let intervals = match (baseline, spec.confidence) {
        (Some(b), Some(confidence)) => {
            let changes: Vec<Metric> = judged
                .iter()
                .filter(|(j, _)| j.threshold.has_change())
                .map(|(_, m)| *m)
                .collect();
            paired_bootstrap(truth, candidate, b, &changes, spec.bootstrap_samples, seed)?
                .into_iter()
                .map(|r| (r.metric.name().to_owned(), r.delta_interval(confidence)))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    let judged: Vec<Judged<'_>> = judged.into_iter().map(|(j, _)| j).collect();
    let baseline_values = baseline.map(|_| baseline_values.as_slice());
    Ok(verdict(
        spec,
        &judged,
        &candidate_values,
        baseline_values,
        intervals,
        seed,
    ))
}

/// Judges metrics a step computed itself (`model.gate@1`, for models the gate cannot score):
/// the same checks as [`judge`] on the reported values, compared as points since there are no
/// rows to resample. A judged metric the candidate did not report, or a baseline's value a
/// change threshold needs, is an error: the gate never blesses what it could not measure.
pub fn judge_reported(
    spec: &GateSpec,
    candidate: &BTreeMap<String, f64>,
    baseline: Option<&BTreeMap<String, f64>>,
) -> Result<Blessing, GateError> {
    let judged = spec.judged_reported().map_err(GateError::Spec)?;
    let candidate_values = judged
        .iter()
        .map(|j| reported(Side::Candidate, candidate, j.name))
        .collect::<Result<Vec<f64>, _>>()?;
    let baseline_values = baseline
        .map(|b| {
            judged
                .iter()
                .map(|j| {
                    if j.threshold.has_change() {
                        reported(Side::Baseline, b, j.name).map(Some)
                    } else {
                        Ok(b.get(j.name).copied().filter(|v| v.is_finite()))
                    }
                })
                .collect::<Result<Vec<Option<f64>>, _>>()
        })
        .transpose()?;
    Ok(verdict(
        spec,
        &judged,
        &candidate_values,
        baseline_values.as_deref(),
        BTreeMap::new(),
        0,
    ))
}

fn reported(side: Side, values: &BTreeMap<String, f64>, name: &str) -> Result<f64, GateError> {
    match values.get(name) {
        Some(v) if v.is_finite() => Ok(*v),
        Some(v) => Err(GateError::NotFinite {
            side,
            metric: name.to_owned(),
            value: *v,
        }),
        None => Err(GateError::MissingMetric {
            side,
            metric: name.to_owned(),
            reported: values.keys().cloned().collect(),
        }),
    }
}

/// The checks of every judged metric and the blessing they add up to. `baseline` holds a value
/// per judged metric (`None` where the baseline has none and no change threshold needs one);
/// `intervals` are the bootstrap's, by metric name.
fn verdict(
    spec: &GateSpec,
    judged: &[Judged<'_>],
    candidate: &[f64],
    baseline: Option<&[Option<f64>]>,
    intervals: BTreeMap<String, Interval>,
    seed: u64,
) -> Blessing {
    let mut checks = Vec::new();
    for (i, j) in judged.iter().enumerate() {
        let c = candidate[i];
        if let Some(t) = j.threshold.threshold {
            checks.push(value_check(j, c, t));
        }
        if let Some(b) = baseline.and_then(|b| b.get(i).copied().flatten()) {
            let interval = intervals.get(j.name).copied();
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
    let paired = |b: &[Option<f64>]| -> Vec<(String, f64, f64)> {
        judged
            .iter()
            .zip(candidate.iter().zip(b))
            .filter_map(|(j, (c, b))| Some((j.name.to_owned(), *c, (*b)?)))
            .collect()
    };
    let pairs = baseline.map(paired);
    Blessing {
        blessed,
        no_baseline: baseline.is_none(),
        candidate: judged
            .iter()
            .zip(candidate)
            .map(|(j, &v)| (j.name.to_owned(), v))
            .collect(),
        baseline: pairs
            .as_ref()
            .map(|p| p.iter().map(|(n, _, b)| (n.clone(), *b)).collect()),
        deltas: pairs
            .iter()
            .flatten()
            .map(|(n, c, b)| (n.clone(), c - b))
            .collect(),
        intervals,
        reasons,
        checks,
        confidence: spec.confidence,
        seed,
        baseline_version: None,
        candidate_model: None,
        baseline_model: None,
        eval_data_digest: None,
    }
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

//! The gate's semantics table and acceptance test A16 (pipelines.md §13) at the library level.

use std::collections::BTreeMap;

use super::*;
use crate::bootstrap::SplitMix64;
use crate::metrics::{Metric, Problem, Scores};

fn spec(json: &str) -> GateSpec {
    serde_json::from_str(json).unwrap()
}

/// Regression scores whose MAE against a zero truth is exactly `mae`.
fn mae_of(mae: f64) -> Scores {
    Scores::Predictions(vec![mae; 4])
}

const ZERO: [f64; 4] = [0.0; 4];

/// Blessed? for a one-metric MAE spec, candidate MAE `c`, baseline MAE `b` (or none).
fn mae_gate(thresholds: &str, c: f64, b: Option<f64>) -> Blessing {
    let s = spec(&format!(r#"{{"metrics": {{"mae": {thresholds}}}}}"#));
    let baseline = b.map(mae_of);
    judge(&s, &ZERO, &mae_of(c), baseline.as_ref(), 1).unwrap()
}

/// (thresholds, candidate MAE, baseline MAE, blessed)
const SEMANTICS: &[(&str, f64, Option<f64>, bool)] = &[
    // threshold: a bound in the good direction, inclusive.
    (r#"{"threshold": 0.5}"#, 0.4, None, true),
    (r#"{"threshold": 0.5}"#, 0.5, None, true),
    (r#"{"threshold": 0.5}"#, 0.6, None, false),
    (
        r#"{"threshold": 0.5, "greater_is_better": true}"#,
        0.6,
        None,
        true,
    ),
    (
        r#"{"threshold": 0.5, "greater_is_better": true}"#,
        0.4,
        None,
        false,
    ),
    // min_absolute_change: beat the baseline by at least that much.
    (r#"{"min_absolute_change": 0.1}"#, 0.35, Some(0.5), true),
    (r#"{"min_absolute_change": 0.1}"#, 0.45, Some(0.5), false),
    (
        r#"{"min_absolute_change": 0.1, "greater_is_better": true}"#,
        0.65,
        Some(0.5),
        true,
    ),
    (
        r#"{"min_absolute_change": 0.1, "greater_is_better": true}"#,
        0.55,
        Some(0.5),
        false,
    ),
    // 0 means "no worse": a tie passes, a worse candidate does not.
    (r#"{"min_absolute_change": 0}"#, 0.5, Some(0.5), true),
    (r#"{"min_absolute_change": 0}"#, 0.51, Some(0.5), false),
    // min_relative_change: as a fraction of the baseline.
    (r#"{"min_relative_change": 0.1}"#, 0.44, Some(0.5), true),
    (r#"{"min_relative_change": 0.1}"#, 0.46, Some(0.5), false),
    (
        r#"{"min_relative_change": 0.1, "greater_is_better": true}"#,
        0.56,
        Some(0.5),
        true,
    ),
    (
        r#"{"min_relative_change": 0.1, "greater_is_better": true}"#,
        0.54,
        Some(0.5),
        false,
    ),
    // A baseline of 0: MLflow's fallback, any strict improvement passes, a tie does not.
    (
        r#"{"min_relative_change": 0.5, "greater_is_better": true}"#,
        0.01,
        Some(0.0),
        true,
    ),
    (
        r#"{"min_relative_change": 0.5, "greater_is_better": true}"#,
        0.0,
        Some(0.0),
        false,
    ),
    (r#"{"min_relative_change": 0.5}"#, 0.0, Some(0.0), false),
    // No baseline with on_no_baseline: bless (the default): value thresholds only.
    (
        r#"{"threshold": 0.5, "min_absolute_change": 0.1}"#,
        0.4,
        None,
        true,
    ),
    (
        r#"{"threshold": 0.5, "min_absolute_change": 0.1}"#,
        0.6,
        None,
        false,
    ),
    (r#"{"min_absolute_change": 0.1}"#, 0.9, None, true),
    // All thresholds of a metric must pass.
    (
        r#"{"threshold": 0.5, "min_absolute_change": 0.1}"#,
        0.45,
        Some(0.5),
        false,
    ),
    (
        r#"{"threshold": 0.5, "min_absolute_change": 0.1}"#,
        0.35,
        Some(0.5),
        true,
    ),
];

#[test]
fn threshold_semantics_table() {
    for &(thresholds, c, b, want) in SEMANTICS {
        let blessing = mae_gate(thresholds, c, b);
        assert_eq!(
            blessing.blessed, want,
            "{thresholds} candidate {c} baseline {b:?}: {:?}",
            blessing.reasons
        );
        assert_eq!(blessing.no_baseline, b.is_none());
    }
}

#[test]
fn default_directions_come_from_the_metric() {
    // Accuracy 0.7 (the metrics fixture) against a 0.8 threshold: greater is better, so it fails.
    let truth = [0., 0., 1., 1., 0., 1., 0., 1., 1., 0.];
    let p = Scores::Probabilities(vec![0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2, 0.4, 0.6, 0.7]);
    let s = spec(r#"{"metrics": {"accuracy": {"threshold": 0.8}}}"#);
    assert!(!judge(&s, &truth, &p, None, 1).unwrap().blessed);
    let s = spec(r#"{"metrics": {"accuracy": {"threshold": 0.6}}}"#);
    assert!(judge(&s, &truth, &p, None, 1).unwrap().blessed);
}

#[test]
fn no_baseline_is_said_either_way_and_reject_refuses() {
    let bless = mae_gate(
        r#"{"threshold": 0.5, "min_absolute_change": 0.1}"#,
        0.4,
        None,
    );
    assert!(bless.blessed && bless.no_baseline);
    assert_eq!(bless.baseline, None);
    assert!(
        bless.reasons[0].starts_with("no baseline"),
        "{:?}",
        bless.reasons
    );
    assert_eq!(bless.checks.len(), 1, "the change threshold is not checked");

    let s = spec(r#"{"metrics": {"mae": {"threshold": 0.5}}, "on_no_baseline": "reject"}"#);
    let reject = judge(&s, &ZERO, &mae_of(0.1), None, 1).unwrap();
    assert!(!reject.blessed && reject.no_baseline);
    assert!(
        reject.reasons[0].starts_with("no baseline"),
        "{:?}",
        reject.reasons
    );
    // With a baseline, reject changes nothing.
    let with_baseline = judge(&s, &ZERO, &mae_of(0.1), Some(&mae_of(0.2)), 1).unwrap();
    assert!(with_baseline.blessed && !with_baseline.no_baseline);
}

#[test]
fn reasons_read_as_the_design_shows_them() {
    let reasons = |thresholds: &str, c, b| mae_gate(thresholds, c, b).reasons;
    assert_eq!(
        reasons(r#"{"threshold": 0.5}"#, 0.4, None)[1],
        "mae 0.4000 ≤ 0.5 ✓"
    );
    assert_eq!(
        reasons(r#"{"threshold": 0.5}"#, 0.6, None)[1],
        "mae 0.6000 > 0.5 ✗"
    );
    assert_eq!(
        reasons(r#"{"min_absolute_change": 0.1}"#, 0.35, Some(0.5)),
        ["mae Δ -0.1500 ≤ -0.1 ✓"]
    );
    assert_eq!(
        reasons(
            r#"{"min_absolute_change": 0, "greater_is_better": true}"#,
            0.4,
            Some(0.5)
        ),
        ["mae Δ -0.1000 < 0 ✗"]
    );
    assert_eq!(
        reasons(r#"{"min_relative_change": 0}"#, 0.504, Some(0.5)),
        ["mae Δ +0.80% > 0% ✗"]
    );
    assert_eq!(
        reasons(
            r#"{"min_relative_change": 0.05, "greater_is_better": true}"#,
            0.6,
            Some(0.5)
        ),
        ["mae Δ +20.00% ≥ +5% ✓"]
    );
    let zero = reasons(r#"{"min_relative_change": 0.5}"#, 0.0, Some(0.0));
    assert_eq!(
        zero,
        ["mae Δ +0.0000 > -1e-10 ✗ (the baseline is 0: any improvement passes)"]
    );
}

#[test]
fn a_metric_that_cannot_be_computed_is_an_error_not_a_blessing() {
    let s = spec(r#"{"metrics": {"roc_auc": {"threshold": 0.5}}}"#);
    let p = Scores::Probabilities(vec![0.2, 0.7, 0.9]);
    let err = judge(&s, &[1.0, 1.0, 1.0], &p, Some(&p), 1).unwrap_err();
    assert_eq!(
        err,
        GateError::Candidate(crate::metrics::MetricError {
            metric: Metric::RocAuc,
            problem: Problem::SingleClass { class: 1 }
        })
    );
    let bad = Scores::Probabilities(vec![0.2, f64::NAN, 0.9]);
    let err = judge(&s, &[1.0, 0.0, 1.0], &p, Some(&bad), 1).unwrap_err();
    assert!(matches!(err, GateError::Baseline(_)), "{err}");
    let short = Scores::Probabilities(vec![0.2, 0.5]);
    let err = judge(&s, &[1.0, 0.0, 1.0], &p, Some(&short), 1).unwrap_err();
    assert!(matches!(err, GateError::Rows { .. }), "{err}");
}

#[test]
fn a_spec_without_thresholds_is_refused_by_judge_too() {
    let s = spec(r#"{"metrics": {"mae": {}}}"#);
    let err = judge(&s, &ZERO, &mae_of(0.1), None, 1).unwrap_err();
    assert!(
        matches!(&err, GateError::Spec(e) if e[0].starts_with("metrics.mae: no threshold")),
        "{err}"
    );
}

fn reported(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn reported_metrics_are_judged_as_computed_ones_are() {
    for &(thresholds, c, b, _) in SEMANTICS {
        let s = spec(&format!(r#"{{"metrics": {{"mae": {thresholds}}}}}"#));
        let baseline = b.map(|b| reported(&[("mae", b)]));
        let from_values = judge_reported(&s, &reported(&[("mae", c)]), baseline.as_ref()).unwrap();
        let from_scores = Blessing {
            seed: 0,
            ..mae_gate(thresholds, c, b)
        };
        assert_eq!(from_values, from_scores, "{thresholds} {c} {b:?}");
    }
}

#[test]
fn a_reported_metric_may_be_anything_with_a_direction() {
    let s = spec(
        r#"{"metrics": {"ndcg": {"min_absolute_change": 0.01, "greater_is_better": true},
                        "latency_ms": {"threshold": 50, "greater_is_better": false}}}"#,
    );
    let candidate = reported(&[("ndcg", 0.42), ("latency_ms", 40.0), ("other", 1.0)]);
    // The baseline's latency is not needed: only a change threshold reads the baseline.
    let baseline = reported(&[("ndcg", 0.40)]);
    let blessing = judge_reported(&s, &candidate, Some(&baseline)).unwrap();
    assert!(blessing.blessed, "{:?}", blessing.reasons);
    assert_eq!(
        blessing.reasons,
        ["latency_ms 40.0000 ≤ 50 ✓", "ndcg Δ +0.0200 ≥ +0.01 ✓"]
    );
    assert_eq!(blessing.baseline, Some(reported(&[("ndcg", 0.40)])));
    assert_eq!(blessing.candidate.len(), 2, "only judged metrics are kept");
    let worse = reported(&[("ndcg", 0.405), ("latency_ms", 40.0)]);
    assert!(!judge_reported(&s, &worse, Some(&baseline)).unwrap().blessed);
}

#[test]
fn a_metric_that_was_not_reported_is_an_error_not_a_blessing() {
    let s = spec(r#"{"metrics": {"f1": {"threshold": 0.5, "min_relative_change": 0}}}"#);
    let err = judge_reported(&s, &reported(&[("acc", 0.9)]), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "candidate: no metric `f1` among the reported ones (it has: acc)"
    );
    let err = judge_reported(&s, &reported(&[("f1", 0.9)]), Some(&BTreeMap::new())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "baseline: no metric `f1` among the reported ones (none were)"
    );
    let err = judge_reported(&s, &reported(&[("f1", f64::NAN)]), None).unwrap_err();
    assert!(
        matches!(
            &err,
            GateError::NotFinite {
                side: Side::Candidate,
                ..
            }
        ),
        "{err}"
    );
    let s = spec(r#"{"metrics": {"f1": {"threshold": 0.5}}, "on_no_baseline": "reject"}"#);
    let rejected = judge_reported(&s, &reported(&[("f1", 0.9)]), None).unwrap();
    assert!(!rejected.blessed && rejected.no_baseline);
}

/// A binary holdout where a model scores `weight·y + (1 − weight)·u` for uniform noise u.
struct Holdout {
    truth: Vec<f64>,
    noise: Vec<f64>,
}

#[expect(clippy::cast_precision_loss, reason = "test noise")]
fn uniform(rng: &mut SplitMix64) -> f64 {
    rng.below(1 << 20) as f64 / f64::from(1u32 << 20)
}

impl Holdout {
    fn new(n: usize) -> Self {
        let mut rng = SplitMix64::new(2024);
        let truth = (0..n)
            .map(|_| f64::from(u8::from(rng.below(2) == 1)))
            .collect();
        let noise = (0..n).map(|_| uniform(&mut rng)).collect();
        Holdout { truth, noise }
    }

    fn model(&self, weight: f64) -> Vec<f64> {
        Self::scores(&self.truth, &self.noise, weight)
    }

    /// The same model with its noise nudged by up to ±0.025 and wrapped into [0, 1): the noise
    /// stays uniform, so the model is exactly as good in distribution and differs by chance only.
    fn jittered(&self, weight: f64, rng: &mut SplitMix64) -> Vec<f64> {
        let noise: Vec<f64> = self
            .noise
            .iter()
            .map(|u| (u + 0.05 * (uniform(rng) - 0.5)).rem_euclid(1.0))
            .collect();
        Self::scores(&self.truth, &noise, weight)
    }

    fn scores(truth: &[f64], noise: &[f64], weight: f64) -> Vec<f64> {
        truth
            .iter()
            .zip(noise)
            .map(|(y, u)| weight * y + (1.0 - weight) * u)
            .collect()
    }
}

fn point(metric: Metric, truth: &[f64], scores: &[f64]) -> f64 {
    crate::metrics::compute(metric, truth, &Scores::Probabilities(scores.to_vec())).unwrap()
}

const A16_SPEC: &str =
    r#"{"metrics": {"roc_auc": {"min_absolute_change": 0.0}}, "confidence": 0.95}"#;

/// A16: the same model with a little jitter, whose point value happens to be better, is not
/// blessed with a confidence (and would be by a point comparison) — in both directions.
#[test]
fn a16_a_candidate_better_by_noise_only_is_not_blessed() {
    let h = Holdout::new(10_000);
    let baseline = h.model(0.25);
    for metric in [Metric::RocAuc, Metric::LogLoss] {
        let better = |c: f64, b: f64| {
            if metric.greater_is_better() {
                c > b
            } else {
                c < b
            }
        };
        let mut rng = SplitMix64::new(7);
        let jittered = (0..20)
            .map(|_| h.jittered(0.25, &mut rng))
            .find(|c| {
                better(
                    point(metric, &h.truth, c),
                    point(metric, &h.truth, &baseline),
                )
            })
            .expect("some jitter improves the point value");
        let candidate = Scores::Probabilities(jittered);
        let baseline = Scores::Probabilities(baseline.clone());
        let name = metric.name();
        let point_spec = format!(r#"{{"metrics": {{"{name}": {{"min_absolute_change": 0.0}}}}}}"#);
        let with_confidence = point_spec.replace("}}}", r#"}}, "confidence": 0.95}"#);

        let gated = judge(
            &spec(&with_confidence),
            &h.truth,
            &candidate,
            Some(&baseline),
            42,
        );
        let gated = gated.unwrap();
        assert!(!gated.blessed, "{:?}", gated.reasons);
        let i = gated.intervals[name];
        assert!(i.low < 0.0 && 0.0 < i.high, "{name} {i:?}");
        assert!(gated.reasons[0].contains("[95% -"), "{:?}", gated.reasons);

        let pointwise = judge(
            &spec(&point_spec),
            &h.truth,
            &candidate,
            Some(&baseline),
            42,
        );
        let pointwise = pointwise.unwrap();
        assert!(
            pointwise.blessed,
            "{name}: a point comparison is fooled by the noise"
        );
        assert!(pointwise.intervals.is_empty());
    }
}

/// A16: a real gap is blessed with the same confidence.
#[test]
fn a16_a_real_gap_is_blessed() {
    let h = Holdout::new(2_000);
    let baseline = Scores::Probabilities(h.model(0.25));
    let candidate = Scores::Probabilities(h.model(0.3));
    let gated = judge(&spec(A16_SPEC), &h.truth, &candidate, Some(&baseline), 42).unwrap();
    assert!(gated.blessed, "{:?}", gated.reasons);
    assert!(gated.intervals["roc_auc"].low > 0.0);
    assert!(gated.reasons[0].ends_with("≥ 0 ✓"), "{:?}", gated.reasons);
}

/// A16: deterministic for a fixed seed; the blessing survives its JSON round trip.
#[test]
fn a16_the_same_seed_gives_the_same_blessing() {
    let h = Holdout::new(1_000);
    let baseline = Scores::Probabilities(h.model(0.25));
    let candidate = Scores::Probabilities(h.model(0.27));
    let s = spec(
        r#"{"metrics": {"roc_auc": {"threshold": 0.7, "min_absolute_change": 0.0},
                        "log_loss": {"min_relative_change": 0.0}},
            "confidence": 0.9, "bootstrap_samples": 300}"#,
    );
    let run = |seed| judge(&s, &h.truth, &candidate, Some(&baseline), seed).unwrap();
    let first = run(9);
    assert_eq!(first, run(9));
    assert_ne!(first.intervals, run(10).intervals);
    assert_eq!(first.checks.len(), 3);
    let json = serde_json::to_string(&first).unwrap();
    assert_eq!(serde_json::from_str::<Blessing>(&json).unwrap(), first);
}

//! The metrics a model is judged by. The names are the ones live monitoring uses
//! (`twinloop-watch`'s performance report), so a gate's threshold and a live alert speak of the
//! same number. Every metric is computed over optionally weighted rows: weight = how many times a
//! row was drawn, which is how the paired bootstrap re-scores a resample without copying it.

mod pointwise;
mod ranking;

use std::cell::OnceCell;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A metric the gate (and live monitoring) knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    RocAuc,
    PrAuc,
    LogLoss,
    Rmse,
    Mae,
    R2,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::RocAuc,
        Metric::PrAuc,
        Metric::LogLoss,
        Metric::Rmse,
        Metric::Mae,
        Metric::R2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
            Metric::PrAuc => "pr_auc",
            Metric::LogLoss => "log_loss",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
        }
    }

    /// The direction a threshold is read in when the spec does not say.
    pub fn greater_is_better(self) -> bool {
        !matches!(self, Metric::LogLoss | Metric::Rmse | Metric::Mae)
    }

    /// Whether the metric reads class probabilities (otherwise regression predictions).
    pub fn is_classification(self) -> bool {
        !matches!(self, Metric::Rmse | Metric::Mae | Metric::R2)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name no one knows; the message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown metric `{0}` (known: accuracy, precision, recall, f1, roc_auc, pr_auc, log_loss, rmse, mae, r2)"
)]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMetric(s.to_owned()))
    }
}

/// What a model gave for each holdout row.
#[derive(Debug, Clone, PartialEq)]
pub enum Scores {
    /// Binary classification: the probability of the positive class (truth 1). The predicted
    /// label, for accuracy / precision / recall / F1, is 1 when the probability is ≥ 0.5.
    Probabilities(Vec<f64>),
    /// Regression: the predicted value.
    Predictions(Vec<f64>),
}

impl Scores {
    pub fn values(&self) -> &[f64] {
        match self {
            Scores::Probabilities(v) | Scores::Predictions(v) => v,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Scores::Probabilities(_) => "class probabilities",
            Scores::Predictions(_) => "regression predictions",
        }
    }
}

/// A metric that cannot be computed: the gate fails the step rather than bless on it.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{metric}: {problem}")]
pub struct MetricError {
    pub metric: Metric,
    pub problem: Problem,
}

/// Why a metric cannot be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Problem {
    #[error("no rows to judge")]
    Empty,
    #[error("{truth} truth values but {scores} scores")]
    Length { truth: usize, scores: usize },
    #[error("row {row}: the {what} is {value}, not a finite number")]
    NotFinite {
        row: usize,
        what: &'static str,
        value: f64,
    },
    #[error("row {row}: the truth is {value}; a binary metric needs 0 or 1")]
    NotBinary { row: usize, value: f64 },
    #[error("row {row}: the probability {value} is outside [0, 1]")]
    NotProbability { row: usize, value: f64 },
    #[error("the truth has a single class (every row is {class}); it needs both 0 and 1")]
    SingleClass { class: u8 },
    #[error("the truth has no positive rows (1), so the metric is undefined")]
    NoPositives,
    #[error("the truth is constant, so R² is undefined")]
    ConstantTruth,
    #[error("it needs {wants} but the model gave {got}")]
    WrongScores {
        wants: &'static str,
        got: &'static str,
    },
}

/// Computes `metric` over every row once.
pub fn compute(metric: Metric, truth: &[f64], scores: &Scores) -> Result<f64, MetricError> {
    Sample::new(truth, scores)
        .and_then(|sample| sample.eval(metric, None))
        .map_err(|problem| MetricError { metric, problem })
}

/// Validated rows, with the score order kept for re-scoring many weighted resamples.
pub(crate) struct Sample<'a> {
    truth: &'a [f64],
    scores: &'a Scores,
    ascending: OnceCell<Vec<usize>>,
}

impl<'a> Sample<'a> {
    pub(crate) fn new(truth: &'a [f64], scores: &'a Scores) -> Result<Self, Problem> {
        let values = scores.values();
        if truth.len() != values.len() {
            return Err(Problem::Length {
                truth: truth.len(),
                scores: values.len(),
            });
        }
        if truth.is_empty() {
            return Err(Problem::Empty);
        }
        for (row, (&t, &s)) in truth.iter().zip(values).enumerate() {
            if !t.is_finite() {
                return Err(Problem::NotFinite {
                    row,
                    what: "truth",
                    value: t,
                });
            }
            if !s.is_finite() {
                return Err(Problem::NotFinite {
                    row,
                    what: "score",
                    value: s,
                });
            }
            if let Scores::Probabilities(_) = scores {
                if t != 0.0 && t != 1.0 {
                    return Err(Problem::NotBinary { row, value: t });
                }
                if !(0.0..=1.0).contains(&s) {
                    return Err(Problem::NotProbability { row, value: s });
                }
            }
        }
        Ok(Sample {
            truth,
            scores,
            ascending: OnceCell::new(),
        })
    }

    /// `weights[i]` is how many times row `i` counts; `None` counts every row once.
    pub(crate) fn eval(&self, metric: Metric, weights: Option<&[u32]>) -> Result<f64, Problem> {
        let values = self.scores.values();
        let rows = Rows {
            truth: self.truth,
            values,
            weights,
        };
        match (metric.is_classification(), self.scores) {
            (true, Scores::Probabilities(_)) | (false, Scores::Predictions(_)) => {}
            (wants_probabilities, got) => {
                return Err(Problem::WrongScores {
                    wants: if wants_probabilities {
                        "class probabilities"
                    } else {
                        "regression predictions"
                    },
                    got: got.describe(),
                });
            }
        }
        match metric {
            Metric::Accuracy => pointwise::confusion(&rows).map(|c| c.accuracy()),
            Metric::Precision => pointwise::confusion(&rows).map(|c| c.precision()),
            Metric::Recall => pointwise::confusion(&rows)?.recall(),
            Metric::F1 => pointwise::confusion(&rows)?.f1(),
            Metric::LogLoss => pointwise::log_loss(&rows),
            Metric::Rmse => pointwise::rmse(&rows),
            Metric::Mae => pointwise::mae(&rows),
            Metric::R2 => pointwise::r2(&rows),
            Metric::RocAuc => ranking::roc_auc(&rows, self.ascending()),
            Metric::PrAuc => ranking::average_precision(&rows, self.ascending()),
        }
    }

    fn ascending(&self) -> &[usize] {
        self.ascending.get_or_init(|| {
            let values = self.scores.values();
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
            order
        })
    }
}

/// Rows with their weights, as the metric functions read them.
struct Rows<'a> {
    truth: &'a [f64],
    values: &'a [f64],
    weights: Option<&'a [u32]>,
}

impl Rows<'_> {
    fn weight(&self, row: usize) -> f64 {
        self.weights.map_or(1.0, |w| f64::from(w[row]))
    }

    /// (truth, score, weight) of each row that counts at least once.
    fn iter(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        (0..self.truth.len()).filter_map(|row| {
            let w = self.weight(row);
            (w > 0.0).then(|| (self.truth[row], self.values[row], w))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The classification fixture of these tests: ten rows with tied scores (0.4 three times,
    // across both classes) so that the tie handling of AUC and AP is exercised.
    const TRUTH: [f64; 10] = [0., 0., 1., 1., 0., 1., 0., 1., 1., 0.];
    const PROBS: [f64; 10] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2, 0.4, 0.6, 0.7];

    fn probs() -> Scores {
        Scores::Probabilities(PROBS.to_vec())
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>(), Ok(m));
        }
        let err = "auc".parse::<Metric>().unwrap_err();
        assert!(err.to_string().contains("`auc`"), "{err}");
    }

    #[test]
    fn directions() {
        assert!(Metric::RocAuc.greater_is_better());
        assert!(Metric::R2.greater_is_better());
        assert!(!Metric::LogLoss.greater_is_better());
        assert!(!Metric::Rmse.greater_is_better());
        assert!(!Metric::Mae.greater_is_better());
    }

    // Expected values from scikit-learn 1.9.1 on the fixture: accuracy_score, precision_score,
    // recall_score, f1_score on labels p >= 0.5; roc_auc_score, average_precision_score and
    // log_loss on the probabilities.
    #[test]
    fn classification_metrics_match_scikit_learn() {
        let p = probs();
        close(compute(Metric::Accuracy, &TRUTH, &p).unwrap(), 0.7);
        close(compute(Metric::Precision, &TRUTH, &p).unwrap(), 0.75);
        close(compute(Metric::Recall, &TRUTH, &p).unwrap(), 0.6);
        close(
            compute(Metric::F1, &TRUTH, &p).unwrap(),
            0.666_666_666_666_666_6,
        );
        close(compute(Metric::RocAuc, &TRUTH, &p).unwrap(), 0.76);
        close(
            compute(Metric::PrAuc, &TRUTH, &p).unwrap(),
            0.789_285_714_285_714_4,
        );
        close(
            compute(Metric::LogLoss, &TRUTH, &p).unwrap(),
            0.535_957_066_594_081_4,
        );
    }

    // scikit-learn 1.9.1: roc_auc_score([1,0,1,0,1,0], [.5,.5,.5,.5,.9,.1]) and
    // average_precision_score on the same: a tie group that mixes both classes.
    #[test]
    fn ranking_metrics_split_ties_like_scikit_learn() {
        let truth = [1., 0., 1., 0., 1., 0.];
        let p = Scores::Probabilities(vec![0.5, 0.5, 0.5, 0.5, 0.9, 0.1]);
        close(
            compute(Metric::RocAuc, &truth, &p).unwrap(),
            0.777_777_777_777_777_8,
        );
        close(
            compute(Metric::PrAuc, &truth, &p).unwrap(),
            0.733_333_333_333_333_4,
        );
    }

    // By hand: a probability of 0 for a positive row is clipped to 1e-15, so the loss is
    // -ln(1e-15) = 34.538776394910684 rather than infinity.
    #[test]
    fn log_loss_clips_at_1e15() {
        let loss = compute(Metric::LogLoss, &[1.0], &Scores::Probabilities(vec![0.0])).unwrap();
        close(loss, 34.538_776_394_910_684);
    }

    // scikit-learn's documented example: y_true = [3, -0.5, 2, 7], y_pred = [2.5, 0.0, 2, 8];
    // values from scikit-learn 1.9.1 (RMSE = sqrt(mean_squared_error)).
    #[test]
    fn regression_metrics_match_scikit_learn() {
        let truth = [3.0, -0.5, 2.0, 7.0];
        let pred = Scores::Predictions(vec![2.5, 0.0, 2.0, 8.0]);
        close(
            compute(Metric::Rmse, &truth, &pred).unwrap(),
            0.612_372_435_695_794_5,
        );
        close(compute(Metric::Mae, &truth, &pred).unwrap(), 0.5);
        close(
            compute(Metric::R2, &truth, &pred).unwrap(),
            0.948_608_137_044_967_9,
        );
    }

    #[test]
    fn weights_count_rows_as_if_repeated() {
        let weights = [2, 0, 1, 3, 1, 0, 1, 2, 1, 1];
        let mut truth = Vec::new();
        let mut scores = Vec::new();
        for (row, &w) in weights.iter().enumerate() {
            for _ in 0..w {
                truth.push(TRUTH[row]);
                scores.push(PROBS[row]);
            }
        }
        let repeated = Scores::Probabilities(scores);
        let p = probs();
        let sample = Sample::new(&TRUTH, &p).unwrap();
        for m in Metric::ALL.into_iter().filter(|m| m.is_classification()) {
            let weighted = sample.eval(m, Some(&weights)).unwrap();
            close(weighted, compute(m, &truth, &repeated).unwrap());
        }
        let reg_truth = [3.0, -0.5, 2.0, 7.0];
        let reg = Scores::Predictions(vec![2.5, 0.0, 2.0, 8.0]);
        let sample = Sample::new(&reg_truth, &reg).unwrap();
        let repeated_truth = [3.0, 3.0, 2.0, 7.0, 7.0, 7.0];
        let repeated = Scores::Predictions(vec![2.5, 2.5, 2.0, 8.0, 8.0, 8.0]);
        for m in [Metric::Rmse, Metric::Mae, Metric::R2] {
            let weighted = sample.eval(m, Some(&[2, 0, 1, 3])).unwrap();
            close(weighted, compute(m, &repeated_truth, &repeated).unwrap());
        }
    }

    #[test]
    fn no_predicted_positive_is_precision_zero_as_in_scikit_learn() {
        let p = Scores::Probabilities(vec![0.1, 0.2, 0.3]);
        let truth = [1.0, 0.0, 1.0];
        assert_eq!(compute(Metric::Precision, &truth, &p), Ok(0.0));
        assert_eq!(compute(Metric::F1, &truth, &p), Ok(0.0));
    }

    #[test]
    fn a_single_class_cannot_be_ranked() {
        let p = Scores::Probabilities(vec![0.2, 0.9, 0.4]);
        let err = compute(Metric::RocAuc, &[1.0, 1.0, 1.0], &p).unwrap_err();
        assert_eq!(err.problem, Problem::SingleClass { class: 1 });
        assert!(err.to_string().starts_with("roc_auc: "), "{err}");
        let err = compute(Metric::PrAuc, &[0.0, 0.0, 0.0], &p).unwrap_err();
        assert_eq!(err.problem, Problem::NoPositives);
        let err = compute(Metric::Recall, &[0.0, 0.0, 0.0], &p).unwrap_err();
        assert_eq!(err.problem, Problem::NoPositives);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_row() {
        let p = Scores::Probabilities(vec![0.2, f64::NAN]);
        let err = compute(Metric::Accuracy, &[0.0, 1.0], &p).unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::NotFinite {
                row: 1,
                what: "score",
                ..
            }
        ));
        let p = Scores::Probabilities(vec![0.2, 0.3]);
        assert_eq!(
            compute(Metric::Accuracy, &[0.0, 2.0], &p)
                .unwrap_err()
                .problem,
            Problem::NotBinary { row: 1, value: 2.0 }
        );
        let p = Scores::Probabilities(vec![0.2, 1.3]);
        assert_eq!(
            compute(Metric::Accuracy, &[0.0, 1.0], &p)
                .unwrap_err()
                .problem,
            Problem::NotProbability { row: 1, value: 1.3 }
        );
        assert_eq!(
            compute(Metric::Accuracy, &[], &Scores::Probabilities(vec![]))
                .unwrap_err()
                .problem,
            Problem::Empty
        );
        assert_eq!(
            compute(Metric::Mae, &[1.0], &Scores::Predictions(vec![1.0, 2.0]))
                .unwrap_err()
                .problem,
            Problem::Length {
                truth: 1,
                scores: 2
            }
        );
        let err = compute(Metric::RocAuc, &[1.0], &Scores::Predictions(vec![1.0])).unwrap_err();
        assert!(matches!(err.problem, Problem::WrongScores { .. }), "{err}");
        let err = compute(
            Metric::R2,
            &[2.0, 2.0],
            &Scores::Predictions(vec![1.0, 3.0]),
        )
        .unwrap_err();
        assert_eq!(err.problem, Problem::ConstantTruth);
    }
}

//! Metrics that are sums over rows: the confusion-matrix ones, log loss and the regression errors.

use super::{Problem, Rows};

/// scikit-learn's `log_loss` clip: a confident wrong answer costs -ln(1e-15), not infinity.
const CLIP: f64 = 1e-15;

/// Weighted counts of predicted (p ≥ 0.5) against true labels.
pub(super) struct Confusion {
    tp: f64,
    fp: f64,
    tn: f64,
    fn_: f64,
}

pub(super) fn confusion(rows: &Rows<'_>) -> Result<Confusion, Problem> {
    let mut c = Confusion {
        tp: 0.0,
        fp: 0.0,
        tn: 0.0,
        fn_: 0.0,
    };
    for (truth, p, w) in rows.iter() {
        match (truth == 1.0, p >= 0.5) {
            (true, true) => c.tp += w,
            (false, true) => c.fp += w,
            (false, false) => c.tn += w,
            (true, false) => c.fn_ += w,
        }
    }
    if c.tp + c.fp + c.tn + c.fn_ == 0.0 {
        return Err(Problem::Empty);
    }
    Ok(c)
}

impl Confusion {
    pub(super) fn accuracy(&self) -> f64 {
        (self.tp + self.tn) / (self.tp + self.fp + self.tn + self.fn_)
    }

    /// scikit-learn's zero_division default: a model that predicts no positive has precision 0,
    /// a legitimately bad score rather than an undefined one.
    pub(super) fn precision(&self) -> f64 {
        if self.tp + self.fp == 0.0 {
            0.0
        } else {
            self.tp / (self.tp + self.fp)
        }
    }

    /// Without positive rows the holdout cannot judge recall (nor F1) at all.
    pub(super) fn recall(&self) -> Result<f64, Problem> {
        self.positives().map(|positives| self.tp / positives)
    }

    pub(super) fn f1(&self) -> Result<f64, Problem> {
        self.positives()
            .map(|_| 2.0 * self.tp / (2.0 * self.tp + self.fp + self.fn_))
    }

    fn positives(&self) -> Result<f64, Problem> {
        let positives = self.tp + self.fn_;
        if positives == 0.0 {
            Err(Problem::NoPositives)
        } else {
            Ok(positives)
        }
    }
}

/// Weighted mean of `f(truth, score)`.
fn mean(rows: &Rows<'_>, f: impl Fn(f64, f64) -> f64) -> Result<f64, Problem> {
    let (mut sum, mut total) = (0.0, 0.0);
    for (truth, score, w) in rows.iter() {
        sum += w * f(truth, score);
        total += w;
    }
    if total == 0.0 {
        return Err(Problem::Empty);
    }
    Ok(sum / total)
}

pub(super) fn log_loss(rows: &Rows<'_>) -> Result<f64, Problem> {
    mean(rows, |truth, p| {
        let p = p.clamp(CLIP, 1.0 - CLIP);
        if truth == 1.0 {
            -p.ln()
        } else {
            -(1.0 - p).ln()
        }
    })
}

pub(super) fn rmse(rows: &Rows<'_>) -> Result<f64, Problem> {
    mean(rows, |truth, pred| (pred - truth).powi(2)).map(f64::sqrt)
}

pub(super) fn mae(rows: &Rows<'_>) -> Result<f64, Problem> {
    mean(rows, |truth, pred| (pred - truth).abs())
}

/// 1 − SS_res / SS_tot. A constant truth makes SS_tot 0: scikit-learn then reports 1 or 0 by
/// convention, but a gate must not pass or fail a model on a convention, so it is an error.
pub(super) fn r2(rows: &Rows<'_>) -> Result<f64, Problem> {
    let truth_mean = mean(rows, |truth, _| truth)?;
    let residual = mean(rows, |truth, pred| (truth - pred).powi(2))?;
    let total = mean(rows, |truth, _| (truth - truth_mean).powi(2))?;
    if total == 0.0 {
        return Err(Problem::ConstantTruth);
    }
    Ok(1.0 - residual / total)
}

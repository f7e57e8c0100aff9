//! Binary logistic regression fitted by Newton's method (IRLS) on standardized features.
//!
//! Newton rather than gradient descent: with the few dozen features of a tabular model the
//! Hessian is tiny, so each iteration costs one pass over the rows, it converges in about ten
//! iterations with no learning rate to tune, and the same data always gives the same model.

use serde::{Deserialize, Serialize};

/// Hyperparameters, as a step's `with:` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticParams {
    /// L2 penalty on the standardized weights (not the intercept), added to the mean log loss:
    /// `l2 / 2 · ‖w‖²`. Small by default: enough to keep separable data finite.
    pub l2: f64,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Converged when no gradient component exceeds this.
    pub tol: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            l2: 1e-4,
            max_iter: 50,
            tol: 1e-6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("no rows to train on")]
    Empty,
    #[error("{values} values are not {rows} rows of {features} features")]
    Shape {
        values: usize,
        rows: usize,
        features: usize,
    },
    #[error("{labels} labels for {rows} rows")]
    Labels { labels: usize, rows: usize },
    #[error("the label of row {row} is {value}; a binary classifier needs 0 or 1 (or booleans)")]
    NotBinary { row: usize, value: f64 },
    #[error("every label is {0}; a classifier needs both classes")]
    OneClass(f64),
    #[error("parameter {name}: {reason}")]
    Param { name: &'static str, reason: String },
    #[error("the Newton system could not be solved (features may be collinear); raise l2")]
    Singular,
}

/// Each feature's mean and scale on the training rows: `z = (x - mean) / scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    /// The population standard deviation, or 1 for a constant column (it then only shifts).
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// `x` is row-major with `features` columns and at least one row.
    pub fn fit(x: &[f64], features: usize) -> Standardizer {
        let rows = x.len() / features.max(1);
        let n = rows.max(1) as f64;
        let mut mean = vec![0.0; features];
        for row in x.chunks_exact(features) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; features];
        for row in x.chunks_exact(features) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(s, m): (&f64, &f64)| {
                let std = (s / n).sqrt();
                // Summing identical values can leave a rounding residue: that is still constant.
                if std > 1e-12 * m.abs().max(1.0) {
                    std
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer { mean, scale }
    }

    fn apply(&self, row: &[f64], out: &mut [f64]) {
        for (((o, v), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.scale) {
            *o = (v - m) / s;
        }
    }
}

/// A fitted model: `P(y = 1 | x) = sigmoid(w · standardize(x) + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticModel {
    pub standardizer: Standardizer,
    /// On the standardized features.
    pub weights: Vec<f64>,
    pub intercept: f64,
    pub iterations: usize,
    pub converged: bool,
}

impl LogisticModel {
    pub fn features(&self) -> usize {
        self.weights.len()
    }

    /// The weights in the features' own units (what changes the log-odds per unit of x).
    pub fn coefficients(&self) -> Vec<f64> {
        self.weights
            .iter()
            .zip(&self.standardizer.scale)
            .map(|(w, s)| w / s)
            .collect()
    }

    /// `P(y = 1)` for each row of the row-major `x`.
    pub fn predict_proba(&self, x: &[f64]) -> Result<Vec<f64>, FitError> {
        let features = self.features();
        check_shape(x, features)?;
        let mut z = vec![0.0; features];
        Ok(x.chunks_exact(features.max(1))
            .map(|row| {
                self.standardizer.apply(row, &mut z);
                sigmoid(dot(&self.weights, &z) + self.intercept)
            })
            .collect())
    }
}

pub(crate) fn check_shape(x: &[f64], features: usize) -> Result<usize, FitError> {
    if features == 0 || !x.len().is_multiple_of(features) {
        return Err(FitError::Shape {
            values: x.len(),
            rows: x.len() / features.max(1),
            features,
        });
    }
    Ok(x.len() / features)
}

pub(crate) fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^t)` without overflow.
fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_params(params: &LogisticParams) -> Result<(), FitError> {
    let param = |name, reason: &str| FitError::Param {
        name,
        reason: reason.to_owned(),
    };
    if !(params.l2.is_finite() && params.l2 >= 0.0) {
        return Err(param("l2", "must be a finite number ≥ 0"));
    }
    if !(params.tol.is_finite() && params.tol > 0.0) {
        return Err(param("tol", "must be a finite number > 0"));
    }
    if params.max_iter == 0 {
        return Err(param("max_iter", "must be at least 1"));
    }
    Ok(())
}

pub(crate) fn check_labels(y: &[f64], rows: usize) -> Result<(), FitError> {
    if y.len() != rows {
        return Err(FitError::Labels {
            labels: y.len(),
            rows,
        });
    }
    if let Some((row, &value)) = y.iter().enumerate().find(|(_, v)| **v != 0.0 && **v != 1.0) {
        return Err(FitError::NotBinary { row, value });
    }
    if y.iter().all(|v| *v == y[0]) {
        return Err(FitError::OneClass(y[0]));
    }
    Ok(())
}

/// The rows standardized, with a trailing 1 for the intercept: `rows × (features + 1)`.
fn design(x: &[f64], features: usize, standardizer: &Standardizer) -> Vec<f64> {
    let width = features + 1;
    let mut z = vec![1.0; x.len() / features * width];
    for (row, out) in x.chunks_exact(features).zip(z.chunks_exact_mut(width)) {
        standardizer.apply(row, &mut out[..features]);
    }
    z
}

/// The penalized mean log loss at `theta` (weights then intercept).
fn objective(z: &[f64], y: &[f64], theta: &[f64], l2: f64) -> f64 {
    let n = y.len() as f64;
    let loss: f64 = z
        .chunks_exact(theta.len())
        .zip(y)
        .map(|(row, &t)| {
            let m = dot(row, theta);
            softplus(m) - t * m
        })
        .sum();
    let weights = &theta[..theta.len() - 1];
    loss / n + l2 / 2.0 * dot(weights, weights)
}

/// The gradient and the Hessian (dense, row-major `d × d`) of [`objective`].
fn derivatives(z: &[f64], y: &[f64], theta: &[f64], l2: f64) -> (Vec<f64>, Vec<f64>) {
    let d = theta.len();
    let n = y.len() as f64;
    let mut grad = vec![0.0; d];
    let mut hess = vec![0.0; d * d];
    for (row, &t) in z.chunks_exact(d).zip(y) {
        let p = sigmoid(dot(row, theta));
        let r = p - t;
        let w = p * (1.0 - p);
        for a in 0..d {
            grad[a] += r * row[a];
            let wa = w * row[a];
            for b in 0..=a {
                hess[a * d + b] += wa * row[b];
            }
        }
    }
    for a in 0..d {
        grad[a] /= n;
        for b in 0..=a {
            hess[a * d + b] /= n;
            hess[b * d + a] = hess[a * d + b];
        }
    }
    for a in 0..d - 1 {
        grad[a] += l2 * theta[a];
        hess[a * d + a] += l2;
    }
    (grad, hess)
}

/// Solves `m · x = v` for a symmetric positive definite `m` (Cholesky).
fn solve_spd(m: &[f64], v: &[f64]) -> Option<Vec<f64>> {
    let d = v.len();
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s = m[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    let mut x = v.to_vec();
    for i in 0..d {
        x[i] = (x[i] - (0..i).map(|k| l[i * d + k] * x[k]).sum::<f64>()) / l[i * d + i];
    }
    for i in (0..d).rev() {
        x[i] = (x[i] - (i + 1..d).map(|k| l[k * d + i] * x[k]).sum::<f64>()) / l[i * d + i];
    }
    Some(x)
}

/// The Newton step, damped towards gradient descent when the Hessian is (nearly) singular,
/// which happens on separable data with no penalty.
fn newton_step(grad: &[f64], hess: &[f64]) -> Result<Vec<f64>, FitError> {
    let d = grad.len();
    let mut damping = 0.0;
    for _ in 0..12 {
        let mut m = hess.to_vec();
        for a in 0..d {
            m[a * d + a] += damping;
        }
        if let Some(step) = solve_spd(&m, grad) {
            return Ok(step);
        }
        damping = if damping == 0.0 {
            1e-10
        } else {
            damping * 100.0
        };
    }
    Err(FitError::Singular)
}

/// Fits `y` (0/1) on the row-major `x` of `features` columns.
pub fn fit_logistic(
    x: &[f64],
    y: &[f64],
    features: usize,
    params: &LogisticParams,
) -> Result<LogisticModel, FitError> {
    check_params(params)?;
    let rows = check_shape(x, features)?;
    if rows == 0 {
        return Err(FitError::Empty);
    }
    check_labels(y, rows)?;
    let standardizer = Standardizer::fit(x, features);
    let z = design(x, features, &standardizer);
    let mut theta = vec![0.0; features + 1];
    // Start from the base rate: the first Newton step then only has the features to explain.
    let positive = y.iter().sum::<f64>() / rows as f64;
    theta[features] = (positive / (1.0 - positive)).ln();
    let mut current = objective(&z, y, &theta, params.l2);
    let mut iterations = 0;
    let mut converged = false;
    while iterations < params.max_iter {
        let (grad, hess) = derivatives(&z, y, &theta, params.l2);
        if grad.iter().all(|g| g.abs() <= params.tol) {
            converged = true;
            break;
        }
        iterations += 1;
        let step = newton_step(&grad, &hess)?;
        let slope = dot(&grad, &step);
        // Backtracking (Armijo): a full Newton step can overshoot far from the optimum.
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
            let value = objective(&z, y, &trial, params.l2);
            if value <= current - 1e-4 * t * slope {
                theta = trial;
                current = value;
                accepted = true;
                break;
            }
            t /= 2.0;
        }
        if !accepted {
            // No descent left at machine precision: as good as this model gets.
            converged = true;
            break;
        }
    }
    let intercept = theta[features];
    theta.truncate(features);
    Ok(LogisticModel {
        standardizer,
        weights: theta,
        intercept,
        iterations,
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream in [0, 1): tests need reproducible noise, not good randomness.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Rows of `[a, b, constant]` with `P(y=1) = sigmoid(2a - 3b + 0.5)`; with `noisy` false the
    /// label is the sign of the logit, so the classes are separable.
    fn synthetic(rows: usize, noisy: bool) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Lcg(42);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..rows {
            let a = rng.next() * 4.0 - 2.0;
            let b = 100.0 + rng.next() * 2.0;
            x.extend([a, b, 7.0]);
            let logit = 2.0 * a - 3.0 * (b - 101.0) + 0.5;
            let p = sigmoid(logit);
            let label = if noisy { rng.next() < p } else { logit > 0.0 };
            y.push(if label { 1.0 } else { 0.0 });
        }
        (x, y)
    }

    fn accuracy(model: &LogisticModel, x: &[f64], y: &[f64]) -> f64 {
        let p = model.predict_proba(x).unwrap();
        let right = p
            .iter()
            .zip(y)
            .filter(|(p, y)| (**p >= 0.5) == (**y == 1.0))
            .count();
        right as f64 / y.len() as f64
    }

    #[test]
    fn separable_data_is_learnt_with_the_right_signs() {
        let (x, y) = synthetic(2000, false);
        let model = fit_logistic(&x, &y, 3, &LogisticParams::default()).unwrap();
        assert!(accuracy(&model, &x, &y) > 0.99, "{model:?}");
        let c = model.coefficients();
        assert!(c[0] > 0.0 && c[1] < 0.0, "{c:?}");
        // The b/a ratio of the generating logit is -1.5.
        assert!((c[1] / c[0] + 1.5).abs() < 0.1, "{c:?}");
    }

    #[test]
    fn noisy_data_recovers_the_generating_coefficients() {
        let (x, y) = synthetic(20_000, true);
        let model = fit_logistic(&x, &y, 3, &LogisticParams::default()).unwrap();
        assert!(model.converged && model.iterations < 15, "{model:?}");
        let c = model.coefficients();
        assert!((c[0] - 2.0).abs() < 0.15, "{c:?}");
        assert!((c[1] + 3.0).abs() < 0.2, "{c:?}");
        // The Bayes rate of this set is about 0.8: a fit near it, not a perfect one.
        let acc = accuracy(&model, &x, &y);
        assert!((0.75..0.9).contains(&acc), "{acc}");
    }

    #[test]
    fn a_constant_column_gets_scale_one_and_no_weight() {
        let (x, y) = synthetic(500, true);
        let model = fit_logistic(&x, &y, 3, &LogisticParams::default()).unwrap();
        assert_eq!(model.standardizer.scale[2], 1.0);
        assert_eq!(model.standardizer.mean[2], 7.0);
        assert!(model.weights[2].abs() < 1e-9, "{model:?}");
        assert!(model.standardizer.scale[1] > 0.5 && model.standardizer.scale[1] < 0.6);
        let p = model.predict_proba(&x).unwrap();
        assert!(p.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
    }

    #[test]
    fn a_rounding_residue_counts_as_constant() {
        let s = Standardizer::fit(&[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], 1);
        assert_eq!(s.scale, [1.0]);
    }

    #[test]
    fn stronger_l2_shrinks_the_weights() {
        let (x, y) = synthetic(1000, true);
        let weak = fit_logistic(&x, &y, 3, &LogisticParams::default()).unwrap();
        let strong = LogisticParams {
            l2: 1.0,
            ..LogisticParams::default()
        };
        let strong = fit_logistic(&x, &y, 3, &strong).unwrap();
        assert!(strong.weights[0].abs() < weak.weights[0].abs() / 2.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let params = LogisticParams::default();
        assert_eq!(
            fit_logistic(&[1.0, 2.0], &[0.0, 2.0], 1, &params),
            Err(FitError::NotBinary { row: 1, value: 2.0 })
        );
        assert_eq!(
            fit_logistic(&[1.0, 2.0], &[1.0, 1.0], 1, &params),
            Err(FitError::OneClass(1.0))
        );
        assert_eq!(fit_logistic(&[], &[], 1, &params), Err(FitError::Empty));
        assert!(matches!(
            fit_logistic(&[1.0, 2.0, 3.0], &[0.0, 1.0], 2, &params),
            Err(FitError::Shape { .. })
        ));
        assert!(matches!(
            fit_logistic(&[1.0, 2.0], &[0.0], 1, &params),
            Err(FitError::Labels { labels: 1, rows: 2 })
        ));
        let negative = LogisticParams { l2: -1.0, ..params };
        assert!(matches!(
            fit_logistic(&[1.0, 2.0], &[0.0, 1.0], 1, &negative),
            Err(FitError::Param { name: "l2", .. })
        ));
        let (x, y) = synthetic(10, true);
        let model = fit_logistic(&x, &y, 3, &params).unwrap();
        assert!(matches!(
            model.predict_proba(&[1.0, 2.0]),
            Err(FitError::Shape { .. })
        ));
    }

    #[test]
    fn separable_data_without_penalty_stays_finite() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [0.0, 0.0, 1.0, 1.0];
        let params = LogisticParams {
            l2: 0.0,
            ..LogisticParams::default()
        };
        let model = fit_logistic(&x, &y, 1, &params).unwrap();
        let p = model.predict_proba(&x).unwrap();
        assert!(p[0] < 0.01 && p[3] > 0.99, "{p:?}");
        assert!(model.weights.iter().all(|w| w.is_finite()));
    }

    #[test]
    fn the_params_parse_from_json_and_refuse_unknown_keys() {
        let p: LogisticParams = serde_json::from_str(r#"{"l2": 0.01}"#).unwrap();
        assert_eq!(p.l2, 0.01);
        assert_eq!(p.max_iter, LogisticParams::default().max_iter);
        let err = serde_json::from_str::<LogisticParams>(r#"{"lr": 0.1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `lr`"), "{err}");
    }
}

//! Gradient-boosted regression trees on the logistic loss, for binary classification.
//!
//! Second-order boosting as XGBoost and LightGBM do it: each tree fits the loss's gradient and
//! Hessian, leaves take the Newton value `-G / (H + l2)`, splits maximise the matching gain.
//! Features are cut into at most `max_bins` quantile bins once, so finding a node's split is one
//! pass over its rows. No sampling: the same data always gives the same trees.
//!
//! Thresholds and leaf values are `f32`, and a row goes left when `(x as f32) <= threshold`:
//! that is what ONNX Runtime's tree ensemble does with the exported model, so both agree on
//! every row, including rows exactly on a threshold.

use serde::{Deserialize, Serialize};

use crate::linear::{FitError, check_labels, check_shape, sigmoid};

/// Hyperparameters, as a step's `with:` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreeParams {
    pub n_trees: usize,
    pub max_depth: usize,
    /// Shrinks each tree's leaves.
    pub learning_rate: f64,
    /// A split is only taken if both sides keep at least this many rows.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values (XGBoost's `lambda`).
    pub l2: f64,
    /// Quantile bins per feature, 2 to 256.
    pub max_bins: usize,
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams {
            n_trees: 100,
            max_depth: 3,
            learning_rate: 0.1,
            min_samples_leaf: 20,
            l2: 1.0,
            max_bins: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// Rows with `(x[feature] as f32) <= threshold` go to `left`, the others to `right`.
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
    /// A contribution to the log-odds.
    Leaf { value: f32 },
}

/// One tree; `nodes[0]` is the root, children are indices into `nodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Only a hand-built tree can point outside `nodes` or `row`: such a branch contributes
    /// nothing (a missing feature goes right, as NaN does in ONNX Runtime) rather than panic.
    fn value(&self, row: &[f64]) -> f32 {
        let mut at = 0;
        loop {
            match self.nodes.get(at) {
                Some(Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                }) => {
                    let x = row.get(*feature).copied().unwrap_or(f64::NAN) as f32;
                    at = if x <= *threshold { *left } else { *right };
                }
                Some(Node::Leaf { value }) => return *value,
                None => return 0.0,
            }
        }
    }
}

/// `P(y = 1 | x) = sigmoid(base_score + Σ tree(x))`.
#[derive(Debug, Clone, PartialEq)]
pub struct BoostedTrees {
    pub features: usize,
    /// The log-odds of the training base rate.
    pub base_score: f32,
    pub trees: Vec<Tree>,
}

impl BoostedTrees {
    /// `P(y = 1)` for each row of the row-major `x`.
    pub fn predict_proba(&self, x: &[f64]) -> Result<Vec<f64>, FitError> {
        check_shape(x, self.features)?;
        Ok(x.chunks_exact(self.features)
            .map(|row| {
                let margin: f64 = self.trees.iter().map(|t| f64::from(t.value(row))).sum();
                sigmoid(f64::from(self.base_score) + margin)
            })
            .collect())
    }
}

fn check_params(params: &TreeParams) -> Result<(), FitError> {
    let param = |name, reason: &str| {
        Err(FitError::Param {
            name,
            reason: reason.to_owned(),
        })
    };
    if params.n_trees == 0 {
        return param("n_trees", "must be at least 1");
    }
    if params.max_depth == 0 {
        return param("max_depth", "must be at least 1");
    }
    if !(params.learning_rate.is_finite() && params.learning_rate > 0.0) {
        return param("learning_rate", "must be a finite number > 0");
    }
    if params.min_samples_leaf == 0 {
        return param("min_samples_leaf", "must be at least 1");
    }
    if !(params.l2.is_finite() && params.l2 >= 0.0) {
        return param("l2", "must be a finite number ≥ 0");
    }
    if !(2..=256).contains(&params.max_bins) {
        return param("max_bins", "must be between 2 and 256");
    }
    Ok(())
}

/// Each feature's cut points, and each row's bin: `bin <= j` exactly when `x <= cuts[j]`.
struct Binned {
    cuts: Vec<Vec<f32>>,
    /// Per feature, per row.
    bins: Vec<Vec<u8>>,
}

fn bin(x: &[f64], features: usize, max_bins: usize) -> Binned {
    let mut cuts = Vec::with_capacity(features);
    let mut bins = Vec::with_capacity(features);
    for f in 0..features {
        let column: Vec<f32> = x
            .iter()
            .skip(f)
            .step_by(features)
            .map(|&v| v as f32)
            .collect();
        let mut sorted = column.clone();
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len();
        let max = sorted[n - 1];
        let mut distinct = sorted.clone();
        distinct.dedup();
        let feature_cuts: Vec<f32> = if distinct.len() <= max_bins {
            distinct.pop();
            distinct
        } else {
            let mut quantiles: Vec<f32> = (1..max_bins).map(|i| sorted[i * n / max_bins]).collect();
            quantiles.dedup();
            // A cut at the maximum sends every row left: no split.
            quantiles.retain(|&c| c < max);
            quantiles
        };
        bins.push(
            column
                .iter()
                .map(|v| feature_cuts.partition_point(|c| c < v) as u8)
                .collect(),
        );
        cuts.push(feature_cuts);
    }
    Binned { cuts, bins }
}

/// Sums of the loss's gradient and Hessian over some rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: usize,
}

impl Sums {
    fn add(&mut self, g: f64, h: f64) {
        self.g += g;
        self.h += h;
        self.n += 1;
    }

    fn score(self, l2: f64) -> f64 {
        self.g * self.g / (self.h + l2)
    }

    fn minus(self, other: Sums) -> Sums {
        Sums {
            g: self.g - other.g,
            h: self.h - other.h,
            n: self.n - other.n,
        }
    }
}

struct Grower<'a> {
    data: &'a Binned,
    params: &'a TreeParams,
    grad: &'a [f64],
    hess: &'a [f64],
    nodes: Vec<Node>,
}

/// The best split of a node: (gain, feature, cut index).
fn best_split(grower: &Grower, rows: &[usize], total: Sums) -> Option<(usize, usize)> {
    let params = grower.params;
    let parent = total.score(params.l2);
    let mut best: Option<(f64, usize, usize)> = None;
    for (f, cuts) in grower.data.cuts.iter().enumerate() {
        let mut hist = vec![Sums::default(); cuts.len() + 1];
        let bins = &grower.data.bins[f];
        for &r in rows {
            hist[usize::from(bins[r])].add(grower.grad[r], grower.hess[r]);
        }
        let mut left = Sums::default();
        for (j, sums) in hist.iter().take(cuts.len()).enumerate() {
            left.g += sums.g;
            left.h += sums.h;
            left.n += sums.n;
            let right = total.minus(left);
            if left.n < params.min_samples_leaf || right.n < params.min_samples_leaf {
                continue;
            }
            let gain = left.score(params.l2) + right.score(params.l2) - parent;
            if gain > 1e-12 && best.is_none_or(|(b, _, _)| gain > b) {
                best = Some((gain, f, j));
            }
        }
    }
    best.map(|(_, f, j)| (f, j))
}

impl Grower<'_> {
    /// Grows the subtree over `rows` and returns its node index; each row's leaf value is added
    /// to `margin`.
    fn grow(&mut self, rows: Vec<usize>, depth: usize, margin: &mut [f64]) -> usize {
        let mut total = Sums::default();
        for &r in &rows {
            total.add(self.grad[r], self.hess[r]);
        }
        let split = (depth < self.params.max_depth
            && rows.len() >= 2 * self.params.min_samples_leaf)
            .then(|| best_split(self, &rows, total))
            .flatten();
        let at = self.nodes.len();
        let Some((feature, cut)) = split else {
            let value = (-self.params.learning_rate * total.g / (total.h + self.params.l2)) as f32;
            for &r in &rows {
                margin[r] += f64::from(value);
            }
            self.nodes.push(Node::Leaf { value });
            return at;
        };
        let threshold = self.data.cuts[feature][cut];
        self.nodes.push(Node::Leaf { value: 0.0 });
        let bins = &self.data.bins[feature];
        let (left_rows, right_rows): (Vec<usize>, Vec<usize>) =
            rows.into_iter().partition(|&r| usize::from(bins[r]) <= cut);
        let left = self.grow(left_rows, depth + 1, margin);
        let right = self.grow(right_rows, depth + 1, margin);
        self.nodes[at] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        at
    }
}

/// Fits `y` (0/1) on the row-major `x` of `features` columns.
pub fn fit_trees(
    x: &[f64],
    y: &[f64],
    features: usize,
    params: &TreeParams,
) -> Result<BoostedTrees, FitError> {
    check_params(params)?;
    let rows = check_shape(x, features)?;
    if rows == 0 {
        return Err(FitError::Empty);
    }
    check_labels(y, rows)?;
    let data = bin(x, features, params.max_bins);
    let positive = y.iter().sum::<f64>() / rows as f64;
    let base_score = (positive / (1.0 - positive)).ln() as f32;
    let mut margin = vec![f64::from(base_score); rows];
    let mut grad = vec![0.0; rows];
    let mut hess = vec![0.0; rows];
    let mut trees = Vec::with_capacity(params.n_trees);
    for _ in 0..params.n_trees {
        for r in 0..rows {
            let p = sigmoid(margin[r]);
            grad[r] = p - y[r];
            hess[r] = (p * (1.0 - p)).max(1e-16);
        }
        let mut grower = Grower {
            data: &data,
            params,
            grad: &grad,
            hess: &hess,
            nodes: Vec::new(),
        };
        grower.grow((0..rows).collect(), 0, &mut margin);
        trees.push(Tree {
            nodes: grower.nodes,
        });
    }
    Ok(BoostedTrees {
        features,
        base_score,
        trees,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label no linear model can learn: positive inside a band of `a`, or when `b` is high.
    fn nonlinear(rows: usize) -> (Vec<f64>, Vec<f64>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..rows {
            let a = (i % 100) as f64 / 100.0;
            let b = ((i * 37) % 101) as f64 / 101.0;
            x.extend([a, b, 5.0]);
            let positive = (0.3..0.6).contains(&a) || b > 0.8;
            y.push(if positive { 1.0 } else { 0.0 });
        }
        (x, y)
    }

    fn accuracy(p: &[f64], y: &[f64]) -> f64 {
        let right = p
            .iter()
            .zip(y)
            .filter(|(p, y)| (**p >= 0.5) == (**y == 1.0))
            .count();
        right as f64 / y.len() as f64
    }

    #[test]
    fn trees_learn_what_a_line_cannot() {
        let (x, y) = nonlinear(2000);
        let model = fit_trees(&x, &y, 3, &TreeParams::default()).unwrap();
        let p = model.predict_proba(&x).unwrap();
        assert!(accuracy(&p, &y) > 0.98, "{}", accuracy(&p, &y));
        let linear = crate::linear::fit_logistic(&x, &y, 3, &Default::default()).unwrap();
        let q = linear.predict_proba(&x).unwrap();
        assert!(accuracy(&q, &y) < 0.85, "{}", accuracy(&q, &y));
        // The constant column never splits.
        let splits_on_constant = model
            .trees
            .iter()
            .flat_map(|t| &t.nodes)
            .any(|n| matches!(n, Node::Split { feature: 2, .. }));
        assert!(!splits_on_constant);
    }

    #[test]
    fn depth_and_leaf_size_bound_the_trees() {
        let (x, y) = nonlinear(500);
        let params = TreeParams {
            n_trees: 5,
            max_depth: 2,
            min_samples_leaf: 100,
            ..TreeParams::default()
        };
        let model = fit_trees(&x, &y, 3, &params).unwrap();
        assert_eq!(model.trees.len(), 5);
        for tree in &model.trees {
            // Depth 2: at most 3 splits and 4 leaves.
            assert!(tree.nodes.len() <= 7, "{tree:?}");
            assert!(tree.nodes.len() >= 3, "{tree:?}");
        }
    }

    #[test]
    fn a_row_on_a_threshold_goes_left() {
        let tree = Tree {
            nodes: vec![
                Node::Split {
                    feature: 0,
                    threshold: 0.5,
                    left: 1,
                    right: 2,
                },
                Node::Leaf { value: -1.0 },
                Node::Leaf { value: 1.0 },
            ],
        };
        assert_eq!(tree.value(&[0.5]), -1.0);
        assert_eq!(tree.value(&[0.500_001]), 1.0);
    }

    #[test]
    fn bins_agree_with_the_thresholds() {
        let x: Vec<f64> = (0..1000).map(|i| f64::from(i % 250) * 0.37).collect();
        let binned = bin(&x, 1, 16);
        let cuts = &binned.cuts[0];
        assert!(cuts.len() <= 15 && cuts.len() >= 10, "{cuts:?}");
        for (v, b) in x.iter().zip(&binned.bins[0]) {
            for (j, c) in cuts.iter().enumerate() {
                assert_eq!(usize::from(*b) <= j, *v as f32 <= *c, "{v} {j}");
            }
        }
        let few = bin(&[1.0, 2.0, 2.0, 3.0], 1, 16);
        assert_eq!(few.cuts[0], [1.0, 2.0]);
        assert_eq!(few.bins[0], [0, 1, 1, 2]);
    }

    #[test]
    fn the_same_data_gives_the_same_trees() {
        let (x, y) = nonlinear(300);
        let params = TreeParams {
            n_trees: 10,
            ..TreeParams::default()
        };
        assert_eq!(
            fit_trees(&x, &y, 3, &params).unwrap(),
            fit_trees(&x, &y, 3, &params).unwrap()
        );
    }

    #[test]
    fn bad_params_and_labels_are_errors() {
        let (x, y) = nonlinear(100);
        for (params, name) in [
            (
                TreeParams {
                    n_trees: 0,
                    ..TreeParams::default()
                },
                "n_trees",
            ),
            (
                TreeParams {
                    max_bins: 300,
                    ..TreeParams::default()
                },
                "max_bins",
            ),
            (
                TreeParams {
                    learning_rate: 0.0,
                    ..TreeParams::default()
                },
                "learning_rate",
            ),
        ] {
            let err = fit_trees(&x, &y, 3, &params);
            assert!(
                matches!(err, Err(FitError::Param { name: n, .. }) if n == name),
                "{name}: {err:?}"
            );
        }
        assert_eq!(
            fit_trees(&[1.0, 2.0], &[0.0, 3.0], 1, &TreeParams::default()),
            Err(FitError::NotBinary { row: 1, value: 3.0 })
        );
    }
}

//! Live performance: logged predictions joined with their labels.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::frame::{number, tensor};
use crate::log::Logged;
use crate::spec::Task;

/// One labelled row: the prediction, the class probabilities if any, the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub predicted: Value,
    pub probabilities: Option<Vec<f64>>,
    pub truth: Value,
}

/// Pairs for every predicted row that has a label; `labels` maps a request id to its label
/// (one value for a one-row request, or a list with one per row).
pub fn join(
    rows: &[Logged],
    labels: &BTreeMap<String, Value>,
    prediction: &str,
    probabilities: Option<&str>,
) -> Vec<Pair> {
    let mut out = Vec::new();
    for logged in rows {
        let Some(label) = labels.get(&logged.request_id) else {
            continue;
        };
        let Some((shape, predicted)) = tensor(&logged.outputs, prediction) else {
            continue;
        };
        let n = shape.first().copied().unwrap_or(1).max(1);
        let truths: Vec<Value> = match label {
            Value::Array(items) if n > 1 || items.len() == 1 => items.clone(),
            one => vec![one.clone()],
        };
        let probs = probabilities.and_then(|p| tensor(&logged.outputs, p));
        for r in 0..n.min(truths.len()) {
            let probabilities = probs.as_ref().map(|(s, d)| {
                let width = s.get(1).copied().unwrap_or(1).max(1);
                d[r * width..(r + 1) * width]
                    .iter()
                    .map(|v| number(v).unwrap_or(f64::NAN))
                    .collect()
            });
            let width = predicted.len() / n;
            out.push(Pair {
                predicted: predicted[r * width].clone(),
                probabilities,
                truth: truths[r].clone(),
            });
        }
    }
    out
}

fn key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .map(|f| {
                if f.fract() == 0.0 {
                    format!("{}", f as i64)
                } else {
                    f.to_string()
                }
            })
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// accuracy, precision / recall / F1 (macro over the classes seen), and with probabilities log
/// loss and ROC AUC (binary, or macro one-vs-rest) — or RMSE and MAE for regression.
pub fn metrics(pairs: &[Pair], task: Task) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if pairs.is_empty() {
        return m;
    }
    m.insert("labelled_rows".into(), pairs.len() as f64);
    match task {
        Task::Regression => {
            let errors: Vec<f64> = pairs
                .iter()
                .filter_map(|p| Some(number(&p.predicted)? - number(&p.truth)?))
                .collect();
            if !errors.is_empty() {
                let n = errors.len() as f64;
                m.insert(
                    "rmse".into(),
                    (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
                );
                m.insert(
                    "mae".into(),
                    errors.iter().map(|e| e.abs()).sum::<f64>() / n,
                );
            }
        }
        Task::Classification => classification(pairs, &mut m),
    }
    m
}

fn classification(pairs: &[Pair], m: &mut BTreeMap<String, f64>) {
    let predicted: Vec<String> = pairs.iter().map(|p| key(&p.predicted)).collect();
    let truth: Vec<String> = pairs.iter().map(|p| key(&p.truth)).collect();
    let n = pairs.len() as f64;
    let correct = predicted.iter().zip(&truth).filter(|(a, b)| a == b).count() as f64;
    m.insert("accuracy".into(), correct / n);
    let mut classes: Vec<&String> = truth.iter().chain(&predicted).collect();
    classes.sort();
    classes.dedup();
    let (mut p_sum, mut r_sum, mut f_sum) = (0.0, 0.0, 0.0);
    for c in &classes {
        let tp = predicted
            .iter()
            .zip(&truth)
            .filter(|(p, t)| p == c && t == c)
            .count() as f64;
        let fp = predicted
            .iter()
            .zip(&truth)
            .filter(|(p, t)| p == c && t != c)
            .count() as f64;
        let fneg = predicted
            .iter()
            .zip(&truth)
            .filter(|(p, t)| p != c && t == c)
            .count() as f64;
        let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let recall = if tp + fneg > 0.0 {
            tp / (tp + fneg)
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        p_sum += precision;
        r_sum += recall;
        f_sum += f1;
    }
    let k = classes.len() as f64;
    m.insert("precision".into(), p_sum / k);
    m.insert("recall".into(), r_sum / k);
    m.insert("f1".into(), f_sum / k);
    // Probability columns are the classes in order, and class labels are their indices (as
    // skl2onnx writes them for integer-coded classes).
    let with_probs: Vec<(&Vec<f64>, usize)> = pairs
        .iter()
        .filter_map(|p| Some((p.probabilities.as_ref()?, number(&p.truth)? as usize)))
        .filter(|(probs, t)| *t < probs.len())
        .collect();
    if with_probs.len() == pairs.len() {
        let eps = 1e-15;
        let loss = with_probs
            .iter()
            .map(|(p, t)| -(p[*t].clamp(eps, 1.0 - eps)).ln())
            .sum::<f64>()
            / n;
        m.insert("log_loss".into(), loss);
        let width = with_probs[0].0.len();
        let aucs: Vec<f64> = if width == 2 {
            auc(&with_probs, 1).into_iter().collect()
        } else {
            (0..width).filter_map(|c| auc(&with_probs, c)).collect()
        };
        if !aucs.is_empty() {
            m.insert(
                "roc_auc".into(),
                aucs.iter().sum::<f64>() / aucs.len() as f64,
            );
        }
    }
}

/// ROC AUC of class `c` against the rest (Mann–Whitney, ties counted half); None when one side
/// is empty.
fn auc(rows: &[(&Vec<f64>, usize)], c: usize) -> Option<f64> {
    let pos: Vec<f64> = rows
        .iter()
        .filter(|(_, t)| *t == c)
        .map(|(p, _)| p[c])
        .collect();
    let neg: Vec<f64> = rows
        .iter()
        .filter(|(_, t)| *t != c)
        .map(|(p, _)| p[c])
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in &pos {
        for q in &neg {
            wins += if p > q {
                1.0
            } else if p == q {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pair(predicted: i64, probs: [f64; 2], truth: i64) -> Pair {
        Pair {
            predicted: json!(predicted),
            probabilities: Some(probs.to_vec()),
            truth: json!(truth),
        }
    }

    #[test]
    fn classification_metrics_match_hand_computed_values() {
        // sklearn: accuracy 0.75, macro precision (1 + 0.5)/2, recall (0.5 + 1)/2,
        // roc_auc_score([0,0,1,1],[0.1,0.6,0.7,0.8]) = 1.0, log_loss = 0.3375…
        let pairs = [
            pair(0, [0.9, 0.1], 0),
            pair(1, [0.4, 0.6], 0),
            pair(1, [0.3, 0.7], 1),
            pair(1, [0.2, 0.8], 1),
        ];
        let m = metrics(&pairs, Task::Classification);
        assert_eq!(m["accuracy"], 0.75);
        assert!((m["precision"] - 0.8333333333333333).abs() < 1e-12);
        assert!((m["recall"] - 0.75).abs() < 1e-12);
        assert_eq!(m["roc_auc"], 1.0);
        let want = -(0.9f64.ln() + 0.4f64.ln() + 0.7f64.ln() + 0.8f64.ln()) / 4.0;
        assert!((m["log_loss"] - want).abs() < 1e-12);
    }

    #[test]
    fn regression_metrics() {
        let pairs = [
            Pair {
                predicted: json!(1.0),
                probabilities: None,
                truth: json!(2.0),
            },
            Pair {
                predicted: json!(3.0),
                probabilities: None,
                truth: json!(1.0),
            },
        ];
        let m = metrics(&pairs, Task::Regression);
        assert_eq!(m["mae"], 1.5);
        assert!((m["rmse"] - (2.5f64).sqrt()).abs() < 1e-12);
    }
}

//! ROC AUC and average precision, read off one walk over the rows in score order. The order is
//! sorted once per model; every bootstrap resample only changes the weights, so re-scoring a
//! resample costs O(n), not a sort.

use super::{Problem, Rows};

/// Weighted positives and negatives of one group of equal scores.
struct Group {
    positives: f64,
    negatives: f64,
}

/// The groups of equal scores, in the order `ascending` visits them (or the reverse).
fn groups<'r>(
    rows: &'r Rows<'_>,
    order: impl Iterator<Item = &'r usize> + 'r,
) -> impl Iterator<Item = Group> + 'r {
    let mut order = order.copied().peekable();
    std::iter::from_fn(move || {
        let first = order.next()?;
        let score = rows.values[first];
        let mut group = Group {
            positives: 0.0,
            negatives: 0.0,
        };
        let mut add = |row: usize| {
            let w = rows.weight(row);
            if rows.truth[row] == 1.0 {
                group.positives += w;
            } else {
                group.negatives += w;
            }
        };
        add(first);
        while let Some(row) = order.next_if(|&row| rows.values[row] == score) {
            add(row);
        }
        Some(group)
    })
}

/// Mann–Whitney U over the weighted rows: the share of (positive, negative) pairs ranked the right
/// way round, a tie counting one half — the same number as average ranks give.
pub(super) fn roc_auc(rows: &Rows<'_>, ascending: &[usize]) -> Result<f64, Problem> {
    let (mut pairs, mut negatives_below, mut positives) = (0.0, 0.0, 0.0);
    for g in groups(rows, ascending.iter()) {
        pairs += g.positives * (negatives_below + g.negatives / 2.0);
        negatives_below += g.negatives;
        positives += g.positives;
    }
    match (positives > 0.0, negatives_below > 0.0) {
        (true, true) => Ok(pairs / (positives * negatives_below)),
        (true, false) => Err(Problem::SingleClass { class: 1 }),
        (false, true) => Err(Problem::SingleClass { class: 0 }),
        (false, false) => Err(Problem::Empty),
    }
}

/// scikit-learn's `average_precision_score`: Σ (Rₙ − Rₙ₋₁) Pₙ over the distinct scores from the
/// highest down, with no interpolation.
pub(super) fn average_precision(rows: &Rows<'_>, ascending: &[usize]) -> Result<f64, Problem> {
    let positives: f64 = rows
        .iter()
        .filter(|&(truth, _, _)| truth == 1.0)
        .map(|(_, _, w)| w)
        .sum();
    if positives == 0.0 {
        return Err(Problem::NoPositives);
    }
    let (mut true_pos, mut false_pos, mut ap) = (0.0, 0.0, 0.0);
    for g in groups(rows, ascending.iter().rev()) {
        true_pos += g.positives;
        false_pos += g.negatives;
        if g.positives > 0.0 {
            ap += (g.positives / positives) * true_pos / (true_pos + false_pos);
        }
    }
    Ok(ap)
}

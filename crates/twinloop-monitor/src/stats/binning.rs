//! Evidently's `get_binned_data`: the proportions PSI and Jensen–Shannon compare.
//!
//! Numerical columns whose reference has more than 20 distinct values get numpy's Sturges
//! bins: equal width over the combined [min, max], k = ⌈log2(n_ref + n_cur) + 1⌉ bins,
//! half-open except the last. Everything else gets one bin per distinct value. The docstring's
//! "reference quantiles" and the `n_bins=30` argument are stale in Evidently; neither is used.

/// Bin edges as `np.histogram_bin_edges(combined, bins="sturges")` produces them.
pub fn sturges_edges(min: f64, max: f64, n: usize) -> Vec<f64> {
    let (mut first, mut last) = (min, max);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let width = (max - min) / ((n as f64).log2() + 1.0);
    let k = if width > 0.0 {
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    let k = k.max(1);
    // np.linspace: start + i·step, with the last edge pinned to stop.
    let step = (last - first) / k as f64;
    let mut edges: Vec<f64> = (0..=k).map(|i| first + i as f64 * step).collect();
    edges[k] = last;
    edges
}

/// Counts per bin of a sorted sample, as `np.histogram(sample, edges)` counts them.
pub fn histogram_sorted(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let k = edges.len() - 1;
    let mut counts = vec![0u64; k];
    // Left edges use side='left' searches and the right-most edge side='right', so the last
    // bin is closed.
    let pos = |x: f64, inclusive: bool| -> usize {
        if inclusive {
            sorted.partition_point(|v| *v <= x)
        } else {
            sorted.partition_point(|v| *v < x)
        }
    };
    let mut prev = pos(edges[0], false);
    for (b, c) in counts.iter_mut().enumerate() {
        let next = pos(edges[b + 1], b + 1 == k);
        *c = (next - prev) as u64;
        prev = next;
    }
    counts
}

/// Proportions count / n for each side.
pub fn proportions(counts: &[u64], n: u64) -> Vec<f64> {
    counts.iter().map(|c| *c as f64 / n as f64).collect()
}

/// PSI's zero smoothing, each side on its own: zeros become (smallest non-zero)/1e6 when that
/// smallest share is at most 1e-4, else 1e-4. Nothing is renormalised, as in Evidently.
pub fn fill_zeroes(p: &mut [f64]) {
    let min_nonzero = p
        .iter()
        .copied()
        .filter(|v| *v != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !min_nonzero.is_finite() {
        return;
    }
    let fill = if min_nonzero <= 1e-4 {
        min_nonzero / 1e6
    } else {
        1e-4
    };
    for v in p.iter_mut().filter(|v| **v == 0.0) {
        *v = fill;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sturges_matches_numpy() {
        // np.histogram_bin_edges(np.arange(1000.0), bins="sturges") has 12 edges, 0 … 999.
        let e = sturges_edges(0.0, 999.0, 1000);
        assert_eq!(e.len(), 12);
        assert_eq!(e[0], 0.0);
        assert_eq!(e[11], 999.0);
        assert!((e[1] - 90.81818181818181).abs() < 1e-12);
        let sorted: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let h = histogram_sorted(&sorted, &e);
        assert_eq!(h.iter().sum::<u64>(), 1000);
        assert_eq!(h[0], 91);
        assert_eq!(h[5], 90);
        assert_eq!(h[10], 91);
    }

    #[test]
    fn zero_fill_rules() {
        let mut p = vec![0.5, 0.0, 0.5];
        fill_zeroes(&mut p);
        assert_eq!(p[1], 1e-4);
        let mut p = vec![0.99995, 0.00005, 0.0];
        fill_zeroes(&mut p);
        assert_eq!(p[2], 0.00005 / 1e6);
    }
}

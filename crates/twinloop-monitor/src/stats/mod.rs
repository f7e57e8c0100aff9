//! The statistical tests, each written against scipy's definition of the same quantity.
//! Inputs are already cleaned (no NaN, no ±inf); the caller decides which test runs.

pub mod binning;
pub mod ks;
pub mod special;

/// The tests Evidently's `DataDriftPreset` can pick, under Evidently's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Test {
    Ks,
    Chisquare,
    Z,
    Wasserstein,
    Jensenshannon,
    Psi,
}

impl Test {
    pub fn name(self) -> &'static str {
        match self {
            Test::Ks => "ks",
            Test::Chisquare => "chisquare",
            Test::Z => "z",
            Test::Wasserstein => "wasserstein",
            Test::Jensenshannon => "jensenshannon",
            Test::Psi => "psi",
        }
    }

    pub fn parse(s: &str) -> Option<Test> {
        Some(match s {
            "ks" => Test::Ks,
            "chisquare" => Test::Chisquare,
            "z" => Test::Z,
            "wasserstein" => Test::Wasserstein,
            "jensenshannon" => Test::Jensenshannon,
            "psi" => Test::Psi,
            _ => return None,
        })
    }

    /// What the score is, for people reading the report.
    pub fn display(self) -> &'static str {
        match self {
            Test::Ks => "K-S p-value",
            Test::Chisquare => "chi-square p-value",
            Test::Z => "Z-test p-value",
            Test::Wasserstein => "Wasserstein distance (normed)",
            Test::Jensenshannon => "Jensen-Shannon distance",
            Test::Psi => "PSI",
        }
    }

    /// Evidently's default threshold for the test.
    pub fn default_threshold(self) -> f64 {
        match self {
            Test::Ks | Test::Chisquare | Test::Z => 0.05,
            Test::Wasserstein | Test::Jensenshannon | Test::Psi => 0.1,
        }
    }

    /// p-value tests flag drift when the score is small, distances when it is large; KS alone
    /// counts equality as drift (`p <= t`), as Evidently does.
    pub fn is_drift(self, score: f64, threshold: f64) -> bool {
        match self {
            Test::Ks => score <= threshold,
            Test::Chisquare | Test::Z => score < threshold,
            Test::Wasserstein | Test::Jensenshannon | Test::Psi => score >= threshold,
        }
    }

    /// Which column kinds the test accepts when asked for explicitly (Evidently's registry:
    /// `chisquare` and `z` are registered for categorical columns only, `ks` and `wasserstein`
    /// for numerical only, `jensenshannon` and `psi` for both).
    pub fn allows(self, numerical: bool) -> bool {
        match self {
            Test::Ks | Test::Wasserstein => numerical,
            Test::Chisquare | Test::Z => !numerical,
            Test::Jensenshannon | Test::Psi => true,
        }
    }
}

/// Sum with Neumaier compensation: numpy sums pairwise, and a plain left-to-right sum over a
/// million values drifts further from it than a compensated one does.
pub fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c, mut plain) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        plain += v;
        let t = s + v;
        if s.abs() >= v.abs() {
            c += (s - t) + v;
        } else {
            c += (v - t) + s;
        }
        s = t;
    }
    // With an infinite term the compensation turns into NaN; the plain sum is the answer then.
    if plain.is_finite() { s + c } else { plain }
}

/// Population standard deviation (numpy's default `ddof=0`).
pub fn std_pop(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = sum(values.iter().copied()) / n;
    (sum(values.iter().map(|v| (v - mean) * (v - mean))) / n).sqrt()
}

/// First Wasserstein distance between two sorted samples: ∫|F_u − F_v|, walking the merged
/// order once instead of materialising the concatenation.
pub fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut s, mut c) = (0.0f64, 0.0f64);
    let mut prev: Option<f64> = None;
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        if let Some(p) = prev {
            // Between p and x the CDFs are constant at the counts consumed so far.
            let term = (i as f64 / nu - j as f64 / nv).abs() * (x - p);
            let t = s + term;
            c += if s.abs() >= term.abs() {
                (s - t) + term
            } else {
                (term - t) + s
            };
            s = t;
        }
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        prev = Some(x);
    }
    s + c
}

/// Pearson's chi-square test p-value (`scipy.stats.chisquare`, ddof 0): k − 1 degrees of freedom.
/// An expected count of zero with an observed count above zero makes the statistic infinite and
/// p = 0, as in scipy.
pub fn chisquare(f_obs: &[f64], f_exp: &[f64]) -> f64 {
    let stat = sum(f_obs.iter().zip(f_exp).map(|(o, e)| {
        let d = o - e;
        if *e == 0.0 {
            if d == 0.0 { f64::NAN } else { f64::INFINITY }
        } else {
            d * d / e
        }
    }));
    special::chi2_sf(stat, f_obs.len() as f64 - 1.0)
}

/// Evidently's two-proportion Z-test. `ref_first`/`cur_first` count the rows equal to the
/// smallest key; the indicator is "not the smallest key". The p-value is 2·(1 − Φ(|z|)) as
/// Evidently writes it, so it underflows to 0 for |z| above about 8.3.
pub fn z_test(ref_first: u64, n_ref: u64, cur_first: u64, n_cur: u64) -> f64 {
    let (n1, n2) = (n_ref as f64, n_cur as f64);
    let p1 = (n_ref - ref_first) as f64 / n1;
    let p2 = (n_cur - cur_first) as f64 / n2;
    let p = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    2.0 * (1.0 - special::norm_cdf(z.abs()))
}

/// Jensen–Shannon distance (natural log, square root of the divergence), scipy's
/// `spatial.distance.jensenshannon`: both vectors are renormalised to sum 1 first.
pub fn jensenshannon(p: &[f64], q: &[f64]) -> f64 {
    let sp = sum(p.iter().copied());
    let sq = sum(q.iter().copied());
    let rel_entr = |x: f64, y: f64| -> f64 {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let (mut left, mut right) = (Vec::with_capacity(p.len()), Vec::with_capacity(p.len()));
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left.push(rel_entr(a, m));
        right.push(rel_entr(b, m));
    }
    let js = sum(left) + sum(right);
    (js / 2.0).sqrt()
}

/// Population stability index Σ (r − c)·ln(r / c) over smoothed proportions.
pub fn psi(r: &[f64], c: &[f64]) -> f64 {
    sum(r.iter().zip(c).map(|(r, c)| (r - c) * (r / c).ln()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasserstein_matches_scipy() {
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert!((wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-15);
        // wasserstein_distance([0, 1, 1, 4], [1, 2, 2]) == 1.1666666666666667
        let w = wasserstein(&[0.0, 1.0, 1.0, 4.0], &[1.0, 2.0, 2.0]);
        assert!((w - 1.1666666666666667).abs() < 1e-15, "{w}");
    }

    #[test]
    fn chisquare_and_z_match_scipy() {
        // scipy.stats.chisquare([10, 20, 30], [20, 20, 20]).pvalue
        let p = chisquare(&[10.0, 20.0, 30.0], &[20.0, 20.0, 20.0]);
        assert!((p - 0.006737946999085468).abs() < 1e-15, "{p}");
        assert_eq!(chisquare(&[1.0, 2.0], &[3.0, 0.0]), 0.0);
        // Evidently's z-test on 30/100 vs 45/100 "non-first" rows.
        let z = z_test(70, 100, 55, 100);
        assert!((z - 0.02845973691631065).abs() < 1e-12, "{z}");
    }

    #[test]
    fn jensenshannon_matches_scipy() {
        // scipy.spatial.distance.jensenshannon([0.5, 0.5, 0], [0, 0.1, 0.9])
        let d = jensenshannon(&[0.5, 0.5, 0.0], &[0.0, 0.1, 0.9]);
        assert!((d - 0.7469797975180145).abs() < 1e-15, "{d}");
    }
}

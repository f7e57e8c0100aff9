//! Streaming, mergeable column profiles, so windows of production data can be profiled as they
//! arrive and combined later (per hour → per day) without keeping the rows.
//!
//! Error bounds:
//! - count, missing, infinite, min, max: exact.
//! - mean and variance: exact up to floating-point rounding (Chan et al.'s pairwise update).
//! - quantiles: a log-bucket sketch (the DDSketch construction). For relative accuracy `alpha`
//!   every returned quantile `q̂` of a value `q` satisfies |q̂ − q| ≤ alpha·|q|, whatever the
//!   order of inserts and merges; values with |x| < `MIN_MAGNITUDE` fall into one zero bucket
//!   (absolute error below `MIN_MAGNITUDE`). Memory grows with log(max/min)/alpha buckets, about
//!   2,800 for alpha = 0.01 over 1e-9 … 1e9, independent of the number of rows.
//! - categories: exact counts up to `max_categories` distinct values; the rest are counted in
//!   `other` (so the share of unseen categories is exact, their names are not).
//!
//! Merging is associative and commutative, so profiles of any partition of the rows merge to
//! the profile of all of them.

use std::collections::{BTreeMap, HashMap};

const MIN_MAGNITUDE: f64 = 1e-9;

#[derive(Debug, Clone)]
pub struct NumericProfile {
    pub count: u64,
    pub missing: u64,
    pub infinite: u64,
    pub min: f64,
    pub max: f64,
    mean: f64,
    m2: f64,
    alpha: f64,
    gamma_ln: f64,
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    zero: u64,
}

impl NumericProfile {
    /// `alpha` is the relative accuracy of quantiles, e.g. 0.01.
    pub fn new(alpha: f64) -> NumericProfile {
        assert!(alpha > 0.0 && alpha < 1.0, "alpha within (0, 1)");
        NumericProfile {
            count: 0,
            missing: 0,
            infinite: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
            alpha,
            gamma_ln: ((1.0 + alpha) / (1.0 - alpha)).ln(),
            positive: BTreeMap::new(),
            negative: BTreeMap::new(),
            zero: 0,
        }
    }

    pub fn insert(&mut self, x: Option<f64>) {
        let Some(x) = x.filter(|x| !x.is_nan()) else {
            self.missing += 1;
            return;
        };
        if x.is_infinite() {
            self.infinite += 1;
            return;
        }
        self.count += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
        if x.abs() < MIN_MAGNITUDE {
            self.zero += 1;
        } else {
            let k = (x.abs().ln() / self.gamma_ln).ceil() as i32;
            *if x > 0.0 {
                &mut self.positive
            } else {
                &mut self.negative
            }
            .entry(k)
            .or_default() += 1;
        }
    }

    /// Combines two profiles built with the same `alpha`.
    pub fn merge(&mut self, other: &NumericProfile) {
        assert_eq!(
            self.alpha, other.alpha,
            "profiles merge only with the same alpha"
        );
        let n = self.count + other.count;
        if n > 0 {
            let d = other.mean - self.mean;
            self.m2 += other.m2 + d * d * self.count as f64 * other.count as f64 / n as f64;
            self.mean += d * other.count as f64 / n as f64;
        }
        self.count = n;
        self.missing += other.missing;
        self.infinite += other.infinite;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.zero += other.zero;
        for (k, v) in &other.positive {
            *self.positive.entry(*k).or_default() += v;
        }
        for (k, v) in &other.negative {
            *self.negative.entry(*k).or_default() += v;
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.mean }
    }

    /// Population variance.
    pub fn variance(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.m2 / self.count as f64
        }
    }

    /// The q-quantile (0 ≤ q ≤ 1) within relative error `alpha`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        let value = |k: i32| 2.0 * (k as f64 * self.gamma_ln).exp() / (1.0 + self.gamma_ln.exp());
        let mut seen = 0u64;
        for (k, c) in self.negative.iter().rev() {
            seen += c;
            if seen > rank {
                return Some((-value(*k)).clamp(self.min, self.max));
            }
        }
        seen += self.zero;
        if seen > rank {
            return Some(0.0f64.clamp(self.min, self.max));
        }
        for (k, c) in &self.positive {
            seen += c;
            if seen > rank {
                return Some(value(*k).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[derive(Debug, Clone)]
pub struct CategoricalProfile {
    pub counts: HashMap<String, u64>,
    pub other: u64,
    pub missing: u64,
    pub max_categories: usize,
}

impl CategoricalProfile {
    pub fn new(max_categories: usize) -> CategoricalProfile {
        CategoricalProfile {
            counts: HashMap::new(),
            other: 0,
            missing: 0,
            max_categories,
        }
    }

    pub fn insert(&mut self, v: Option<&str>) {
        match v {
            None => self.missing += 1,
            Some(s) => self.add(s, 1),
        }
    }

    fn add(&mut self, s: &str, n: u64) {
        if let Some(c) = self.counts.get_mut(s) {
            *c += n;
        } else if self.counts.len() < self.max_categories {
            self.counts.insert(s.to_string(), n);
        } else {
            self.other += n;
        }
    }

    pub fn merge(&mut self, other: &CategoricalProfile) {
        for (k, v) in &other.counts {
            self.add(k, *v);
        }
        self.other += other.other;
        self.missing += other.missing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<f64> {
        // A deterministic, skewed sample with negatives, zeros and a wide range.
        (0..20_000)
            .map(|i| ((i * 7919 % 10007) as f64 - 3000.0).powi(3) / 1e6)
            .collect()
    }

    #[test]
    fn quantiles_are_within_the_documented_bound() {
        let alpha = 0.01;
        let mut p = NumericProfile::new(alpha);
        let mut v = data();
        for x in &v {
            p.insert(Some(*x));
        }
        v.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            let exact = v[(q * (v.len() - 1) as f64).floor() as usize];
            let got = p.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= alpha * exact.abs() + MIN_MAGNITUDE,
                "q={q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merged_windows_equal_one_pass() {
        let v = data();
        let mut whole = NumericProfile::new(0.01);
        let mut parts = [
            NumericProfile::new(0.01),
            NumericProfile::new(0.01),
            NumericProfile::new(0.01),
        ];
        for (i, x) in v.iter().enumerate() {
            whole.insert(Some(*x));
            parts[i % 3].insert(Some(*x));
        }
        parts[0].insert(None);
        parts[1].insert(Some(f64::INFINITY));
        let mut merged = parts[2].clone();
        merged.merge(&parts[0]);
        merged.merge(&parts[1]);
        assert_eq!(merged.count, whole.count);
        assert_eq!((merged.missing, merged.infinite), (1, 1));
        assert_eq!((merged.min, merged.max), (whole.min, whole.max));
        assert!((merged.mean() - whole.mean()).abs() < 1e-9);
        assert!((merged.variance() - whole.variance()).abs() / whole.variance() < 1e-12);
        for q in [0.1, 0.5, 0.9] {
            assert_eq!(merged.quantile(q), whole.quantile(q));
        }
    }

    #[test]
    fn categories_cap_into_other() {
        let mut a = CategoricalProfile::new(2);
        for s in ["a", "b", "c", "a"] {
            a.insert(Some(s));
        }
        a.insert(None);
        let mut b = CategoricalProfile::new(2);
        b.insert(Some("d"));
        a.merge(&b);
        assert_eq!(a.counts["a"], 2);
        assert_eq!(a.other, 2);
        assert_eq!(a.missing, 1);
    }
}

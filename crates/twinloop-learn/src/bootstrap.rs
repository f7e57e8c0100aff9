//! The paired bootstrap: resample holdout rows with replacement, score the candidate and the
//! baseline on the **same** resample, and read a percentile interval off the deltas. Pairing
//! matters: both models' errors on a hard row move together, so the delta's interval is much
//! narrower than two independent intervals would suggest, and honest.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::metrics::{Metric, MetricError, Sample, Scores};

/// Fewer computable resamples than this share (e.g. resamples with one class, for AUC) make the
/// interval too biased to gate on.
const MIN_VALID_SHARE: f64 = 0.9;

/// A two-sided percentile interval at `confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub confidence: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// The interval of `x / divisor` (divisor > 0), for reading a change relative to a baseline.
    pub fn scaled(self, divisor: f64) -> Interval {
        Interval {
            confidence: self.confidence,
            low: self.low / divisor,
            high: self.high / divisor,
        }
    }
}

/// One metric's candidate and baseline values on each resample it could be computed on.
#[derive(Debug, Clone, PartialEq)]
pub struct Replicates {
    pub metric: Metric,
    pub pairs: Vec<(f64, f64)>,
}

impl Replicates {
    /// The percentile interval of candidate − baseline.
    pub fn delta_interval(&self, confidence: f64) -> Interval {
        let mut deltas: Vec<f64> = self.pairs.iter().map(|(c, b)| c - b).collect();
        percentile_interval(&mut deltas, confidence)
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Metric(#[from] MetricError),
    #[error(
        "{metric}: only {valid} of {samples} bootstrap resamples could be scored (the others had \
         e.g. a single class); the holdout is too small to gate on with a confidence"
    )]
    TooFewResamples {
        metric: Metric,
        valid: usize,
        samples: usize,
    },
}

/// Resamples the rows `samples` times (seeded by `seed`) and scores both models on each resample
/// for every metric in `metrics`.
pub fn paired_bootstrap(
    truth: &[f64],
    candidate: &Scores,
    baseline: &Scores,
    metrics: &[Metric],
    samples: usize,
    seed: u64,
) -> Result<Vec<Replicates>, BootstrapError> {
    let Some(&first) = metrics.first() else {
        return Ok(Vec::new());
    };
    let sample = |scores| {
        Sample::new(truth, scores).map_err(|problem| MetricError {
            metric: first,
            problem,
        })
    };
    let (candidate, baseline) = (sample(candidate)?, sample(baseline)?);
    for &metric in metrics {
        for s in [&candidate, &baseline] {
            s.eval(metric, None)
                .map_err(|problem| MetricError { metric, problem })?;
        }
    }
    let mut out: Vec<Replicates> = metrics
        .iter()
        .map(|&metric| Replicates {
            metric,
            pairs: Vec::with_capacity(samples),
        })
        .collect();
    let n = truth.len();
    let mut rng = SplitMix64::new(seed);
    let mut counts = vec![0u32; n];
    for _ in 0..samples {
        counts.fill(0);
        for _ in 0..n {
            counts[rng.below(n)] += 1;
        }
        for r in &mut out {
            // A resample the metric is undefined on (one class, say) is left out, and counted
            // below through the number of pairs.
            if let (Ok(c), Ok(b)) = (
                candidate.eval(r.metric, Some(&counts)),
                baseline.eval(r.metric, Some(&counts)),
            ) {
                r.pairs.push((c, b));
            }
        }
    }
    for r in &out {
        #[expect(
            clippy::cast_precision_loss,
            reason = "sample counts are far below 2^52"
        )]
        if (r.pairs.len() as f64) < MIN_VALID_SHARE * samples as f64 {
            return Err(BootstrapError::TooFewResamples {
                metric: r.metric,
                valid: r.pairs.len(),
                samples,
            });
        }
    }
    Ok(out)
}

/// The (1 − c)/2 and (1 + c)/2 quantiles, linearly interpolated between order statistics (numpy's
/// default). `values` is sorted in place; an empty slice gives NaN ends.
pub fn percentile_interval(values: &mut [f64], confidence: f64) -> Interval {
    values.sort_by(f64::total_cmp);
    Interval {
        confidence,
        low: quantile(values, (1.0 - confidence) / 2.0),
        high: quantile(values, (1.0 + confidence) / 2.0),
    }
}

#[expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "positions are small non-negative indices"
)]
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let below = pos.floor() as usize;
    let above = pos.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (pos - below as f64)
}

/// SplitMix64 (Steele, Lea & Flood 2014): a few lines of wrapping integer arithmetic, so the same
/// seed draws the same rows on every platform and with every dependency version — a blessing
/// must replay bit for bit for a fixed run id. Public for others that need a seeded sequence
/// with the same guarantee (the quickstart's generated data).
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in 0..n by multiply-shift; its bias, n / 2⁶⁴, is far below anything a
    /// bootstrap can see.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the product shifted right by 64 is below n, a usize"
    )]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A number in [0, 1) from the top 53 bits.
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 bits are exactly representable in an f64"
    )]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 1234567 of the reference algorithm
        // (https://prng.di.unimi.it/splitmix64.c), from an independent Python transcription.
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn indices_stay_in_range_and_cover_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..1000 {
            seen[rng.below(5)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 150), "{seen:?}");
    }

    #[test]
    fn percentile_interval_interpolates_like_numpy() {
        // numpy.percentile(range(11), [5, 95]) = [0.5, 9.5].
        let mut values: Vec<f64> = (0..=10).rev().map(f64::from).collect();
        let i = percentile_interval(&mut values, 0.90);
        assert!(
            (i.low - 0.5).abs() < 1e-12 && (i.high - 9.5).abs() < 1e-12,
            "{i:?}"
        );
        assert!(percentile_interval(&mut [], 0.9).low.is_nan());
    }

    fn holdout(n: usize) -> (Vec<f64>, Scores, Scores) {
        let mut rng = SplitMix64::new(99);
        let mut truth = Vec::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let y = f64::from(u8::from(rng.below(2) == 1));
            #[expect(clippy::cast_precision_loss, reason = "test noise")]
            let noise = rng.below(1000) as f64 / 1000.0;
            truth.push(y);
            a.push((0.3 * y + 0.7 * noise).clamp(0.0, 1.0));
            b.push((0.1 * y + 0.9 * noise).clamp(0.0, 1.0));
        }
        (truth, Scores::Probabilities(a), Scores::Probabilities(b))
    }

    #[test]
    fn same_seed_same_replicates_other_seed_other_ones() {
        let (truth, a, b) = holdout(200);
        let run = |seed| paired_bootstrap(&truth, &a, &b, &[Metric::RocAuc], 200, seed).unwrap();
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn a_model_against_itself_has_a_zero_width_interval() {
        let (truth, a, _) = holdout(100);
        let reps = paired_bootstrap(&truth, &a, &a, &[Metric::LogLoss], 300, 1).unwrap();
        let i = reps[0].delta_interval(0.95);
        assert_eq!((i.low, i.high), (0.0, 0.0));
    }

    #[test]
    fn a_real_gap_has_an_interval_above_zero() {
        let (truth, a, b) = holdout(500);
        let reps = paired_bootstrap(&truth, &a, &b, &[Metric::RocAuc], 1000, 3).unwrap();
        assert_eq!(reps[0].pairs.len(), 1000);
        let i = reps[0].delta_interval(0.95);
        assert!(i.low > 0.0 && i.low < i.high, "{i:?}");
    }

    #[test]
    fn too_few_positives_to_resample_is_an_error_not_an_interval() {
        // One positive in 20 rows: about a third of the resamples miss it.
        let mut truth = vec![0.0; 20];
        truth[3] = 1.0;
        let p = Scores::Probabilities((0..20).map(|i| f64::from(i) / 20.0).collect());
        let err = paired_bootstrap(&truth, &p, &p, &[Metric::RocAuc], 200, 1).unwrap_err();
        assert!(
            matches!(
                err,
                BootstrapError::TooFewResamples {
                    metric: Metric::RocAuc,
                    samples: 200,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_input_is_the_metric_error() {
        let p = Scores::Probabilities(vec![0.5, 0.5]);
        let err = paired_bootstrap(&[1.0, 1.0], &p, &p, &[Metric::RocAuc], 10, 1).unwrap_err();
        assert!(matches!(err, BootstrapError::Metric(_)), "{err}");
    }
}

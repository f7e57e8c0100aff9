//! A metric's history read as it is sent, so that serving a million points never holds them all:
//! [`MetricHistory`] hands out chunks of points while the store reads the next ones.

use tokio::sync::mpsc;
use twinloop_core::Result;
use twinloop_core::tracking::{Metric, Page};

/// The most points in one [`HistoryPart::Points`].
pub const HISTORY_CHUNK: usize = 1024;

/// What a [`MetricHistory`] yields: points in history order, then, when `max_results` cut the
/// history short, the token of the next page.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryPart {
    Points(Vec<Metric>),
    NextPageToken(String),
}

/// The parts of one page of a metric's history, read ahead by at most a few chunks. Dropping it
/// stops the read.
pub struct MetricHistory {
    parts: mpsc::Receiver<Result<HistoryPart>>,
}

impl MetricHistory {
    /// A history fed through `parts`, for a store implementation to hand out.
    pub fn new(parts: mpsc::Receiver<Result<HistoryPart>>) -> MetricHistory {
        MetricHistory { parts }
    }

    /// The next part; `None` once the page is complete. An error ends the history.
    pub async fn next(&mut self) -> Option<Result<HistoryPart>> {
        self.parts.recv().await
    }

    /// The whole page in memory, for callers that want it at once.
    pub async fn collect(mut self) -> Result<Page<Metric>> {
        let mut page = Page {
            items: Vec::new(),
            next_page_token: None,
        };
        while let Some(part) = self.next().await {
            match part? {
                HistoryPart::Points(points) => page.items.extend(points),
                HistoryPart::NextPageToken(token) => page.next_page_token = Some(token),
            }
        }
        Ok(page)
    }
}

impl MetricHistory {
    /// The points MLflow's `get-history-bulk-interval` answers for one run: the history's points
    /// with a step in `steps` (inclusive; all when `None`), in (step, timestamp, value) order,
    /// thinned to at most `max_results` by [`sample_indices`].
    ///
    /// The points in range are held while they are sorted: the history is read in timestamp
    /// order, and the sample is taken in step order.
    pub async fn sampled(
        mut self,
        steps: Option<(i64, i64)>,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        let in_range = |m: &Metric| steps.is_none_or(|(lo, hi)| (lo..=hi).contains(&m.step));
        let mut points = Vec::new();
        while let Some(part) = self.next().await {
            if let HistoryPart::Points(chunk) = part? {
                points.extend(chunk.into_iter().filter(in_range));
            }
        }
        points.sort_by(sample_order);
        let keep = sample_indices(points.len(), max_results);
        let mut keep = keep.into_iter().peekable();
        Ok(points
            .into_iter()
            .enumerate()
            .filter_map(|(i, m)| keep.next_if_eq(&i).map(|_| m))
            .collect())
    }
}

/// MLflow's order for sampling: step, timestamp, then the stored value, where NaN is stored as
/// 0 and sorts after a real 0 (`is_nan` is the last key).
fn sample_order(a: &Metric, b: &Metric) -> std::cmp::Ordering {
    let stored = |m: &Metric| {
        (
            if m.value.is_nan() { 0.0 } else { m.value },
            m.value.is_nan(),
        )
    };
    let (va, na) = stored(a);
    let (vb, nb) = stored(b);
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then(va.total_cmp(&vb))
        .then(na.cmp(&nb))
}

/// Which of `n` ordered points MLflow's SQL store keeps for `max_results` (at least 1): the
/// first point of each of `NTILE(max_results)`'s buckets (so every point when `n` is no more
/// than that), with the last point always kept, in place of the last bucket's first when the
/// sample is full. Ascending.
pub fn sample_indices(n: usize, max_results: usize) -> Vec<usize> {
    let buckets = max_results.max(1);
    if n <= buckets {
        return (0..n).collect();
    }
    // NTILE gives the first `n % buckets` buckets one point more than the others.
    let (size, larger) = (n / buckets, n % buckets);
    let mut keep: Vec<usize> = (0..buckets).map(|b| b * size + b.min(larger)).collect();
    if let Some(last) = keep.last_mut() {
        *last = n - 1;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history of `(step, timestamp, value)` points, in the order the store reads them.
    fn history(points: &[(i64, i64, f64)]) -> MetricHistory {
        let (parts, received) = mpsc::channel(2);
        let mut points: Vec<Metric> = points
            .iter()
            .map(|&(step, timestamp, value)| Metric::new("m", value, timestamp, step))
            .collect();
        points.sort_by_key(|m| (m.timestamp, m.step));
        tokio::spawn(async move {
            for chunk in points.chunks(3) {
                let _ = parts.send(Ok(HistoryPart::Points(chunk.to_vec()))).await;
            }
        });
        MetricHistory::new(received)
    }

    async fn sampled(
        points: &[(i64, i64, f64)],
        max_results: usize,
        steps: Option<(i64, i64)>,
    ) -> Vec<(i64, i64, f64)> {
        history(points)
            .sampled(steps, max_results)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.step, m.timestamp, m.value))
            .collect()
    }

    /// Each expected list is what MLflow 3.17.2's `SqlAlchemyStore.get_metric_history_bulk_interval`
    /// returned for the same points on SQLite.
    #[tokio::test]
    async fn samples_as_mlflows_sql_store_does() {
        let ten: Vec<_> = (0..10).map(|s| (s, 100 + s, s as f64)).collect();
        assert_eq!(
            sampled(&ten, 3, None).await,
            [(0, 100, 0.0), (4, 104, 4.0), (9, 109, 9.0)]
        );
        let seven: Vec<_> = (0..7).map(|s| (s, 100 + s, s as f64)).collect();
        assert_eq!(sampled(&seven, 7, None).await, seven);
        let gappy: Vec<_> = (0..100)
            .step_by(3)
            .map(|s| (s, 1000 - s, s as f64))
            .collect();
        let steps: Vec<i64> = sampled(&gappy, 8, Some((10, 90)))
            .await
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(steps, [12, 24, 36, 48, 57, 66, 75, 90]);
        let one_step: Vec<_> = (0..20).map(|i| (0, 100 + i, (i % 5) as f64)).collect();
        assert_eq!(
            sampled(&one_step, 4, None).await,
            [(0, 100, 0.0), (0, 105, 0.0), (0, 110, 0.0), (0, 119, 4.0)]
        );
        let five: Vec<_> = (0..5).map(|s| (s, 100, s as f64)).collect();
        assert_eq!(sampled(&five, 1, None).await, [(4, 100, 4.0)]);
        let ties = [
            (5, 100, f64::NAN),
            (5, 100, 1.0),
            (5, 100, 0.0),
            (5, 100, -1.0),
            (6, 50, 2.0),
            (4, 200, 3.0),
        ];
        assert_eq!(
            sampled(&ties, 3, None).await,
            [(4, 200, 3.0), (5, 100, 0.0), (6, 50, 2.0)]
        );
        let thirteen: Vec<_> = (0..13).map(|s| (s, 100, s as f64)).collect();
        let steps: Vec<i64> = sampled(&thirteen, 5, Some((0, 12)))
            .await
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(steps, [0, 3, 6, 9, 12]);
    }

    #[test]
    fn indices_keep_the_ends_and_never_exceed_the_limit() {
        assert_eq!(sample_indices(0, 5), Vec::<usize>::new());
        assert_eq!(sample_indices(3, 0), [2]);
        for n in 0..60 {
            for m in 1..20 {
                let keep = sample_indices(n, m);
                assert!(keep.len() <= m && keep.len() == n.min(m), "{n} {m}");
                assert!(keep.windows(2).all(|w| w[0] < w[1]), "{n} {m}");
                if n > 0 {
                    assert_eq!(keep.last(), Some(&(n - 1)), "{n} {m}");
                    assert!(m == 1 || keep[0] == 0, "{n} {m}");
                }
            }
        }
    }
}

//! Metric summaries: `latest_metrics` keeps, beside each (run, key)'s latest point, the minimum,
//! maximum and number of points. A batch is summarised in memory, one row per key, and merged
//! into the stored row by one upsert whose every term commutes (min of mins, max of maxes, sum of
//! counts, the newer of two latest points), so concurrent batches lose nothing.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Any, Transaction};
use twinloop_core::run_columns::{MetricSummary, RunSummaries};
use twinloop_core::tracking::Metric;
use twinloop_core::{Error, Result};

use super::SqlStore;
use super::query::{MAX_ARGS, RowExt, Sql, backend_of, chunks_for, encode_metric_value};

/// The most runs one summaries read may name.
pub const MAX_SUMMARY_RUNS: usize = 1000;
/// The most metric keys one summaries read may name.
pub const MAX_SUMMARY_KEYS: usize = 1000;

/// Whether `a` replaces `b` as the latest point: a higher step, or the same step and a timestamp
/// no lower (so of two equal points the later write wins, as in MLflow's `latest_metrics`).
fn is_newer(a: &Metric, b: &Metric) -> bool {
    (a.step, a.timestamp) >= (b.step, b.timestamp)
}

/// One key's share of a batch.
#[derive(Debug)]
pub(super) struct KeySummary<'a> {
    /// Over the batch's non-NaN values.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Points the batch stored: a point already stored (a retried batch) is not counted again.
    pub count: i64,
    pub latest: &'a Metric,
}

/// Summarises a batch per key, in key order (the order rows are locked in, so two concurrent
/// batches never wait on each other crosswise). `stored` counts, per key, the points that the
/// insert actually added.
pub(super) fn summarise<'a>(
    metrics: &'a [Metric],
    stored: &HashMap<String, i64>,
) -> BTreeMap<&'a str, KeySummary<'a>> {
    let mut out: BTreeMap<&str, KeySummary> = BTreeMap::new();
    for m in metrics {
        let s = out.entry(&m.key).or_insert_with(|| KeySummary {
            min: None,
            max: None,
            count: stored.get(&m.key).copied().unwrap_or(0),
            latest: m,
        });
        if !m.value.is_nan() {
            s.min = Some(s.min.map_or(m.value, |v| v.min(m.value)));
            s.max = Some(s.max.map_or(m.value, |v| v.max(m.value)));
        }
        if is_newer(m, s.latest) {
            s.latest = m;
        }
    }
    out
}

/// The newer-point test of the upsert, in SQL: the same rule as [`is_newer`].
const NEWER: &str = "(excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step \
                     AND excluded.timestamp >= latest_metrics.timestamp))";

/// The head of the summaries upsert; a row is `(run, key, latest point, min, max, count)`.
pub(super) const INSERT: &str = "INSERT INTO latest_metrics (run_uuid, key, step, timestamp, value, is_nan, min_value, max_value, value_count) VALUES ";

/// What follows [`INSERT`]'s rows: the merge with a stored row, answering each key's count after
/// it (`key, value_count`).
pub(super) fn merge() -> String {
    // SQLite's two-argument MIN/MAX are NULL when either side is, so the merge spells the NULL
    // cases out (NULL: no non-NaN point yet).
    format!(
        " ON CONFLICT (run_uuid, key) DO UPDATE SET \
         step = CASE WHEN {NEWER} THEN excluded.step ELSE latest_metrics.step END, \
         timestamp = CASE WHEN {NEWER} THEN excluded.timestamp ELSE latest_metrics.timestamp END, \
         value = CASE WHEN {NEWER} THEN excluded.value ELSE latest_metrics.value END, \
         is_nan = CASE WHEN {NEWER} THEN excluded.is_nan ELSE latest_metrics.is_nan END, \
         min_value = CASE WHEN excluded.min_value IS NULL OR latest_metrics.min_value <= excluded.min_value \
             THEN latest_metrics.min_value ELSE excluded.min_value END, \
         max_value = CASE WHEN excluded.max_value IS NULL OR latest_metrics.max_value >= excluded.max_value \
             THEN latest_metrics.max_value ELSE excluded.max_value END, \
         value_count = latest_metrics.value_count + excluded.value_count \
         RETURNING key, value_count"
    )
}

/// Whether a key's row, holding `count` points after the merge of a batch that added `batch` of
/// them, was inserted by that batch: a row that existed already held at least one point more.
pub(super) fn is_new_key(batch: i64, count: i64) -> bool {
    batch > 0 && count == batch
}

/// Merges a batch's summaries into `latest_metrics`; returns the keys the run had no row for
/// before.
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    metrics: &[Metric],
    stored: &HashMap<String, i64>,
) -> Result<Vec<String>> {
    let summaries: Vec<(&str, KeySummary)> = summarise(metrics, stored).into_iter().collect();
    let mut new_keys = Vec::new();
    for chunk in chunks_for(&summaries, 9, MAX_ARGS) {
        let mut sql = Sql::new(backend_of(tx), INSERT);
        for (i, (key, s)) in chunk.iter().enumerate() {
            let (value, is_nan) = encode_metric_value(s.latest.value);
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .arg(run_id)
                .push(", ")
                .arg(*key)
                .push(", ")
                .arg(s.latest.step)
                .push(", ")
                .arg(s.latest.timestamp)
                .push(", ")
                .arg(value)
                .push(", ")
                .arg(is_nan);
            // A missing min or max is a literal NULL: sqlx 0.8's Any driver binds a NULL float
            // as PostgreSQL float4, and a statement first prepared that way then refuses the
            // float8 values of later batches.
            for bound in [s.min, s.max] {
                match bound {
                    Some(v) => sql.push(", ").arg(v),
                    None => sql.push(", NULL"),
                };
            }
            sql.push(", ").arg(s.count).push(")");
        }
        sql.push(&merge());
        for row in sql.fetch_all(&mut **tx).await? {
            let key = row.text(0)?;
            let count = row.int(1)?;
            let batch = summaries
                .binary_search_by(|(k, _)| (*k).cmp(key.as_str()))
                .map(|i| summaries[i].1.count)
                .unwrap_or(0);
            if is_new_key(batch, count) {
                new_keys.push(key);
            }
        }
    }
    Ok(new_keys)
}

impl SqlStore {
    /// The summaries of `keys` (every key when `None`) for each of `run_ids`, in the order asked,
    /// each run's by key. A run with no such metric, or no such run, has an empty list.
    pub(super) async fn read_metric_summaries(
        &self,
        run_ids: &[String],
        keys: Option<&[String]>,
    ) -> Result<Vec<RunSummaries>> {
        if run_ids.len() > MAX_SUMMARY_RUNS {
            return Err(Error::invalid(format!(
                "At most {MAX_SUMMARY_RUNS} runs can be summarised in one request; {} were given",
                run_ids.len()
            )));
        }
        if let Some(keys) = keys
            && keys.len() > MAX_SUMMARY_KEYS
        {
            return Err(Error::invalid(format!(
                "At most {MAX_SUMMARY_KEYS} metric keys can be summarised in one request; {} were given",
                keys.len()
            )));
        }
        let mut runs: Vec<RunSummaries> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for id in run_ids {
            if !index.contains_key(id.as_str()) {
                index.insert(id, runs.len());
                runs.push(RunSummaries {
                    run_id: id.clone(),
                    metrics: Vec::new(),
                });
            }
        }
        if runs.is_empty() || keys.is_some_and(|k| k.is_empty()) {
            return Ok(runs);
        }
        let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        let mut sql = self.sql(
            "SELECT run_uuid, key, min_value, max_value, value_count, value, is_nan, step, timestamp \
             FROM latest_metrics WHERE run_uuid IN ",
        );
        sql.arg_list(&ids);
        if let Some(keys) = keys {
            sql.push(" AND key IN ").arg_list(keys);
        }
        sql.push(" ORDER BY run_uuid, key");
        sql.read(&self.bulk_reader).await?.for_each(|row| {
            let run = index[row.text(0)?.as_str()];
            let is_nan = row.int(6)? != 0;
            runs[run].metrics.push(MetricSummary {
                key: row.text(1)?,
                min: row.opt_float(2)?,
                max: row.opt_float(3)?,
                count: row.int(4)?,
                last: if is_nan { f64::NAN } else { row.float(5)? },
                last_step: row.int(7)?,
                last_timestamp: row.int(8)?,
            });
            Ok(())
        })?;
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
        Metric::new(key, value, timestamp, step)
    }

    #[test]
    fn a_batch_is_one_summary_per_key() {
        let batch = [
            point("b", 3.0, 10, 1),
            point("a", f64::NAN, 10, 5),
            point("b", -1.0, 11, 2),
            point("a", 2.0, 12, 4),
            point("b", 7.0, 9, 2),
            point("a", f64::INFINITY, 13, 3),
        ];
        let stored = HashMap::from([("a".to_string(), 3), ("b".to_string(), 2)]);
        let s = summarise(&batch, &stored);
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), ["a", "b"]);
        let a = &s["a"];
        assert_eq!((a.min, a.max, a.count), (Some(2.0), Some(f64::INFINITY), 3));
        assert!(
            a.latest.value.is_nan(),
            "step 5 is the latest even when NaN"
        );
        let b = &s["b"];
        // A retried point is not stored twice, so only what the insert added counts.
        assert_eq!((b.min, b.max, b.count), (Some(-1.0), Some(7.0), 2));
        assert_eq!((b.latest.step, b.latest.timestamp), (2, 11));
    }

    #[test]
    fn of_equal_step_and_time_the_later_point_is_latest() {
        let batch = [point("a", 1.0, 5, 1), point("a", 2.0, 5, 1)];
        let s = summarise(&batch, &HashMap::new());
        assert_eq!(s["a"].latest.value, 2.0);
        assert_eq!(s["a"].count, 0);
    }

    #[test]
    fn an_all_nan_batch_has_no_min_or_max() {
        let batch = [point("a", f64::NAN, 1, 0), point("a", f64::NAN, 2, 1)];
        let s = summarise(&batch, &HashMap::from([("a".to_string(), 2)]));
        assert_eq!((s["a"].min, s["a"].max, s["a"].count), (None, None, 2));
    }
}

//! The metric histories MLflow's UI charts across runs: `get-history-bulk` (every point of up to
//! 100 runs, 25,000 in all) and `get-history-bulk-interval` (each run's history sampled as
//! MLflow's SQL store samples it: meta's [`MetricHistory::sampled`]). Both read through the
//! store's metric history.
//!
//! [`MetricHistory::sampled`]: twinloop_meta::history::MetricHistory::sampled

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use twinloop_core::tracking::Metric;

use super::json::{Listing, Plain, list, plain_list};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryParams, SEE_THE_DOCS, invalid_value, missing};

type S = State<std::sync::Arc<crate::AppState>>;

/// MLflow's limits: runs per request, points per bulk reply, points per run of an interval.
const MAX_RUNS: usize = 100;
const MAX_BULK_RESULTS: i64 = 25_000;
const MAX_INTERVAL_RESULTS: i64 = 2_500;

/// `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id=…&run_id=…&metric_key=…`: the runs
/// in id order, each history in the store's order, cut at `max_results` points in all.
pub async fn bulk(State(s): S, q: QueryParams) -> ApiResult<Json<Plain<Metric>>> {
    let mut run_ids = q.get_all("run_id");
    if run_ids.is_empty() {
        return Err(ApiError::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if run_ids.len() > MAX_RUNS {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than {MAX_RUNS} run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    let key = q.get("metric_key").ok_or_else(|| {
        ApiError::invalid("GetMetricHistoryBulk request must specify a metric_key.")
    })?;
    let max_results = match q.opt_i64("max_results")? {
        Some(n) if n < 0 => {
            return Err(invalid_value("max_results", &Value::from(n)));
        }
        n => n.unwrap_or(MAX_BULK_RESULTS).min(MAX_BULK_RESULTS),
    };
    // MLflow reads the runs with one `IN`: a repeated id is read once.
    run_ids.sort();
    run_ids.dedup();
    let mut metrics = Vec::new();
    for run_id in run_ids {
        let left = max_results - metrics.len() as i64;
        if left <= 0 {
            break;
        }
        let page = s
            .store
            .get_metric_history(&run_id, key, Some(left), None)
            .await?;
        metrics.extend(page.items.into_iter().map(|m| Metric {
            run_id: Some(run_id.clone()),
            ..m
        }));
    }
    Ok(plain_list("metrics", metrics))
}

/// `GET …/metrics/get-history-bulk-interval?run_ids=…&metric_key=…[&start_step&end_step]
/// [&max_results]`: each run's points (in the order asked, a repeated run again) sampled to at
/// most `max_results`.
pub async fn bulk_interval(State(s): S, q: QueryParams) -> ApiResult<Json<Listing<Metric>>> {
    let run_ids = q.get_all("run_ids");
    if run_ids.is_empty() {
        return Err(missing("run_ids"));
    }
    if run_ids.len() > MAX_RUNS {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS} run_ids. Received {} run_ids.{SEE_THE_DOCS}",
            run_ids.len()
        )));
    }
    let key = q.required("metric_key")?;
    let start = q.opt_i64("start_step")?;
    let end = q.opt_i64("end_step")?;
    let max_results = q.opt_i64("max_results")?.unwrap_or(MAX_INTERVAL_RESULTS);
    if !(1..=MAX_INTERVAL_RESULTS).contains(&max_results) {
        return Err(ApiError::invalid(format!(
            "max_results must be between 1 and {MAX_INTERVAL_RESULTS}.{SEE_THE_DOCS}"
        )));
    }
    let steps = match (start, end) {
        (Some(start), Some(end)) if start > end => {
            return Err(ApiError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
            )));
        }
        (Some(start), Some(end)) => Some((start, end)),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let mut metrics = Vec::new();
    for run_id in run_ids {
        let history = s
            .store
            .stream_metric_history(&run_id, key, None, None)
            .await?;
        let sampled = history.sampled(steps, max_results as usize).await?;
        metrics.extend(sampled.into_iter().map(|m| Metric {
            run_id: Some(run_id.clone()),
            ..m
        }));
    }
    Ok(list("metrics", metrics))
}

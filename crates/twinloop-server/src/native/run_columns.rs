//! `/api/twinloop/v1/metrics/summaries` and `/api/twinloop/v1/experiments/{id}/keys`: what a runs
//! table's columns read, encoded as `twinloop_api::run_columns`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use twinloop_api::run_columns as api;
use twinloop_core::run_columns::{KeyKind, KeyQuery, MetricSummary, RunSummaries};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;

/// Keys listed when the request names no limit.
const DEFAULT_KEY_LIMIT: i64 = 1000;

/// A comma-separated list parameter, blanks dropped.
fn list(q: &QueryParams, name: &str) -> Option<Vec<String>> {
    q.get(name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

fn summary(m: &MetricSummary) -> api::MetricSummary {
    api::MetricSummary {
        count: m.count,
        key: m.key.clone(),
        last: api::MetricValue(m.last),
        last_step: m.last_step,
        last_timestamp: m.last_timestamp,
        max: m.max.map(api::MetricValue),
        min: m.min.map(api::MetricValue),
    }
}

fn run(r: &RunSummaries) -> api::RunSummaries {
    api::RunSummaries {
        metrics: r.metrics.iter().map(summary).collect(),
        run_id: r.run_id.clone(),
    }
}

pub async fn summaries(
    State(s): State<Arc<AppState>>,
    q: QueryParams,
) -> ApiResult<Json<api::MetricSummaries>> {
    let run_ids = list(&q, "run_ids").unwrap_or_default();
    if run_ids.is_empty() {
        return Err(ApiError::invalid(
            "Missing value for required parameter 'run_ids' (comma-separated run ids)",
        ));
    }
    let keys = list(&q, "keys");
    let runs = s.store.metric_summaries(&run_ids, keys.as_deref()).await?;
    Ok(Json(api::MetricSummaries {
        runs: runs.iter().map(run).collect(),
    }))
}

pub async fn keys(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: QueryParams,
) -> ApiResult<Json<api::ExperimentKeys>> {
    let kind = KeyKind::parse(q.get("kind").unwrap_or("metric"))?;
    let limit = q.opt_i64("limit")?.unwrap_or(DEFAULT_KEY_LIMIT);
    let limit = u32::try_from(limit).map_err(|_| {
        ApiError::invalid(format!(
            "Invalid limit {limit}: expected 1 to {}",
            twinloop_meta::MAX_KEY_LIMIT
        ))
    })?;
    let query = KeyQuery {
        kind,
        contains: q.get("q").unwrap_or("").to_string(),
        limit,
    };
    let found = s.store.experiment_keys(&id, &query).await?;
    Ok(Json(api::ExperimentKeys {
        keys: found
            .keys
            .into_iter()
            .map(|k| api::KeyCount {
                key: k.key,
                runs: k.runs,
            })
            .collect(),
        total: found.total,
    }))
}

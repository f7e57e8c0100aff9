//! `GET /metrics/series`: one metric of up to 1,000 runs, downsampled by the store for a chart.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use twinloop_api::series as api;
use twinloop_meta::series::{Series, SeriesData, SeriesQuery, XAxis};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::QueryParams;

/// Buckets when the request names none: about a chart's width in pixels.
const DEFAULT_BUCKETS: i64 = 1000;

pub async fn series(
    State(s): State<Arc<AppState>>,
    q: QueryParams,
) -> ApiResult<Json<api::SeriesResponse>> {
    let buckets = q.opt_i64("buckets")?.unwrap_or(DEFAULT_BUCKETS);
    let query = SeriesQuery {
        // Repeated (`run_ids=a&run_ids=b`) or comma-separated, as a URL a person writes.
        run_ids: q
            .get_all("run_ids")
            .iter()
            .flat_map(|ids| ids.split(','))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(String::from)
            .collect(),
        key: q.required("key")?.to_string(),
        x: XAxis::parse(q.get("x").unwrap_or("step"))?,
        from: q.opt_i64("from")?,
        to: q.opt_i64("to")?,
        // Out of u32's range is out of the allowed range too; the store says so.
        buckets: u32::try_from(buckets.max(0)).unwrap_or(u32::MAX),
    };
    let series = s.store.metric_series(&query).await?;
    Ok(Json(response(&query, series)))
}

fn response(q: &SeriesQuery, series: Series) -> api::SeriesResponse {
    api::SeriesResponse {
        bucket_width: series.range.map(|r| r.bucket_width),
        from: series.range.map(|r| r.from),
        key: q.key.clone(),
        runs: series
            .runs
            .into_iter()
            .map(|run| match run.data {
                SeriesData::Raw(p) => api::RunSeries {
                    buckets: None,
                    points: Some(api::SeriesPoints {
                        step: p.step,
                        timestamp: p.timestamp,
                        value: p.value,
                        x: p.x,
                    }),
                    raw: true,
                    run_id: run.run_id,
                },
                SeriesData::Buckets(b) => api::RunSeries {
                    buckets: Some(api::SeriesBuckets {
                        count: b.count,
                        last: b.last,
                        max: b.max,
                        min: b.min,
                        x_hi: b.x_hi,
                        x_lo: b.x_lo,
                    }),
                    points: None,
                    raw: false,
                    run_id: run.run_id,
                },
            })
            .collect(),
        to: series.range.map(|r| r.to),
        x: q.x.as_str().to_string(),
    }
}

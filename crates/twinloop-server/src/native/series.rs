//! `GET /metrics/series`: one metric of up to 1,000 runs, downsampled by the store for a chart.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use twinloop_api::series as api;
use twinloop_meta::series::{Series, SeriesData, SeriesQuery, SeriesRange, XAxis};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::QueryParams;

/// Buckets when the request names none: about a chart's width in pixels.
const DEFAULT_BUCKETS: i64 = 1000;

/// Significant digits of bucket values on the wire: far finer than a pixel, and short enough
/// that 4,000 buckets stay under 200 KB (full doubles took 318 KB).
const DIGITS: usize = 7;

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
        origin: series.range.map(|r| r.origin),
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
                        index: b
                            .x_lo
                            .iter()
                            .map(|&lo| bucket_index(series.range, lo))
                            .collect(),
                        last: rounded(b.last, Toward::Nearest),
                        max: rounded(b.max, Toward::Up),
                        min: rounded(b.min, Toward::Down),
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

/// The number of the bucket that starts at `x_lo`.
fn bucket_index(range: Option<SeriesRange>, x_lo: i64) -> u64 {
    let Some(r) = range else { return 0 };
    let offset = i128::from(x_lo) - i128::from(r.origin);
    u64::try_from(offset.div_euclid(i128::from(r.bucket_width.max(1)))).unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
enum Toward {
    Down,
    Nearest,
    Up,
}

fn rounded(values: Vec<f64>, toward: Toward) -> Vec<f64> {
    values.into_iter().map(|v| round(v, toward)).collect()
}

/// `v` to [`DIGITS`] significant digits, in the direction asked: a band rounded outwards still
/// holds every point it summarises. A value the rounding would make infinite stays as it is.
fn round(v: f64, toward: Toward) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    // `d.dddddde±N`, the nearest decimal of DIGITS digits; a step of one in its last digit
    // moves it past `v` in the direction asked when the nearest lies on the wrong side.
    let text = format!("{:.*e}", DIGITS - 1, v);
    let Some((mantissa, exponent)) = text.split_once('e') else {
        return v;
    };
    let (Ok(digits), Ok(exponent)) = (
        mantissa.replace('.', "").parse::<i64>(),
        exponent.parse::<i32>(),
    ) else {
        return v;
    };
    let at = |digits: i64| -> f64 {
        format!("{digits}e{}", exponent - (DIGITS as i32 - 1))
            .parse()
            .unwrap_or(v)
    };
    let near = at(digits);
    let out = match toward {
        Toward::Down if near > v => at(digits - 1),
        Toward::Up if near < v => at(digits + 1),
        _ => near,
    };
    if out.is_finite() { out } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_round_outwards_to_seven_digits() {
        let v = 0.031_622_776_601_683_79;
        assert_eq!(round(v, Toward::Down), 0.031_622_77);
        assert_eq!(round(v, Toward::Up), 0.031_622_78);
        assert_eq!(round(v, Toward::Nearest), 0.031_622_78);
        assert_eq!(round(-v, Toward::Down), -0.031_622_78);
        assert_eq!(round(-v, Toward::Up), -0.031_622_77);
        for exact in [1e6, 0.5, -2.25, 0.0, 123_456_700.0] {
            for toward in [Toward::Down, Toward::Nearest, Toward::Up] {
                assert_eq!(round(exact, toward), exact);
            }
        }
        assert_eq!(round(f64::MAX, Toward::Up), f64::MAX);
        assert_eq!(round(f64::MIN_POSITIVE, Toward::Down), 2.225_073e-308);
        // Pseudo-random values of every magnitude: the band always holds the value.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let (down, up) = (round(v, Toward::Down), round(v, Toward::Up));
            assert!(down <= v && v <= up, "{v:e}: {down:e} {up:e}");
        }
    }
}

//! Wire types of the native API: a metric of many runs, downsampled for a chart
//! (`GET /metrics/series`). Columns rather than objects per point, buckets named by their number
//! rather than their bounds, and bucket values to 7 significant digits, so that a 4,000-bucket
//! answer stays under 200 KB; a client hands each column to its chart as it is.

use serde::{Deserialize, Serialize};

/// The answer of `GET /metrics/series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesResponse {
    /// The width of a bucket on the x axis (the first and last bucket may be cut short by the
    /// range); null when the range is empty.
    pub bucket_width: Option<i64>,
    /// The range answered, inclusive: the bounds asked for, or the runs' smallest and largest x;
    /// null when no bound was given and no run has a point.
    pub from: Option<i64>,
    pub key: String,
    /// Where bucket 0 starts, at or below `from`: bucket `i` spans `origin + i * bucket_width`
    /// to `origin + (i + 1) * bucket_width - 1`, clipped to `from..=to`; null with `from`.
    pub origin: Option<i64>,
    /// One per distinct run id asked for, in the order asked.
    pub runs: Vec<RunSeries>,
    pub to: Option<i64>,
    /// `step`, `time` (ms since the epoch) or `relative` (ms since the run's first point).
    pub x: String,
}

/// One run's points in range: `points` when `raw` (all of them, at most `buckets`; empty
/// columns for a run without any), else `buckets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSeries {
    pub buckets: Option<SeriesBuckets>,
    pub points: Option<SeriesPoints>,
    pub raw: bool,
    pub run_id: String,
}

/// Non-empty buckets in x order, one column per field. `index` is the bucket's number (see
/// [`SeriesResponse::origin`]); `last` is the value at the bucket's greatest x. Values keep 7
/// significant digits, `min` rounded down and `max` up, so every point still lies in its band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesBuckets {
    pub count: Vec<u64>,
    pub index: Vec<u64>,
    pub last: Vec<f64>,
    pub max: Vec<f64>,
    pub min: Vec<f64>,
}

/// Points in x order, one column per field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoints {
    pub step: Vec<i64>,
    pub timestamp: Vec<i64>,
    pub value: Vec<f64>,
    pub x: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn a_series_answer_round_trips() {
        round_trips::<SeriesResponse>(
            r#"{"bucket_width":256,"from":3,"key":"loss","origin":0,"runs":[{"buckets":{"count":[253,12],"index":[0,1],"last":[0.5,0.25],"max":[2.0,0.5],"min":[0.125,0.25]},"points":null,"raw":false,"run_id":"a"},{"buckets":null,"points":{"step":[3],"timestamp":[1764300000000],"value":[-1.5],"x":[3]},"raw":true,"run_id":"b"}],"to":267,"x":"step"}"#,
        );
    }
}

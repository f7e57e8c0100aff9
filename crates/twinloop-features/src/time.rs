//! Timestamps as microseconds since the epoch, UTC.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use twinloop_core::{Error, Result};

// The feature store's helpers speak of `micros`; the clock is the one every crate reads.
pub use twinloop_core::time::now_us as now_micros;

/// Parses RFC 3339 (`2024-01-07T23:00:00Z`, offsets allowed) or a zone-less date-time, which is
/// taken as UTC.
pub fn parse_timestamp(text: &str) -> Result<i64> {
    let text = text.trim();
    let micros = parse_any(text).ok_or_else(|| {
        Error::invalid(format!(
            "{text:?} is not a timestamp: use RFC 3339, e.g. 2024-01-07T23:00:00Z"
        ))
    })?;
    // chrono reads years past RFC 3339's 0000–9999 (`-024-01-01`), which would be answered
    // as text (`-0024-…`) that no client, nor this function, reads back.
    if !(RFC3339_FIRST..=RFC3339_LAST).contains(&micros) {
        return Err(Error::invalid(format!(
            "{text:?} is outside the years 0000 to 9999 that RFC 3339 can write"
        )));
    }
    Ok(micros)
}

/// Seconds since the epoch (Feast's numeric timestamps) as microseconds, when they fall in the
/// years RFC 3339 can write: a larger number would be answered as text no client reads back.
pub fn epoch_seconds_micros(seconds: f64) -> Option<i64> {
    let micros = (seconds * 1e6).round();
    (micros.is_finite() && (RFC3339_FIRST as f64..=RFC3339_LAST as f64).contains(&micros))
        .then_some(micros as i64)
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, in microseconds.
const RFC3339_FIRST: i64 = -62_167_219_200_000_000;
const RFC3339_LAST: i64 = 253_402_300_799_999_999;

fn parse_any(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_micros()
        })
}

/// RFC 3339 with `Z` and as many fractional digits as needed (0, 3 or 6), like Feast.
pub fn format_micros(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// Reads a timestamp column of any unit or zone (zone-less = UTC), a date, or RFC 3339 text, as
/// microseconds since the epoch.
pub fn micros_column(name: &str, column: &ArrayRef) -> Result<Int64Array> {
    let target = DataType::Timestamp(TimeUnit::Microsecond, None);
    let as_timestamp = match column.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, None) => column.clone(),
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => cast(column, &target)
            .map_err(|e| Error::invalid(format!("column {name:?}")).with_source(e))?,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(column, &DataType::Utf8)
                .map_err(|e| Error::invalid(format!("column {name:?}")).with_source(e))?;
            let text = text.as_string::<i32>();
            let mut out = Vec::with_capacity(text.len());
            for i in 0..text.len() {
                out.push(if text.is_null(i) {
                    None
                } else {
                    Some(parse_timestamp(text.value(i)).map_err(|e| {
                        Error::invalid(format!("column {name:?} row {i}: {}", e.message))
                    })?)
                });
            }
            return Ok(Int64Array::from(out));
        }
        other => {
            return Err(Error::invalid(format!(
                "column {name:?} holds {other}, not timestamps"
            )));
        }
    };
    let ts = as_timestamp.as_primitive::<TimestampMicrosecondType>();
    Ok(Int64Array::new(ts.values().clone(), ts.nulls().cloned()))
}

/// A UTC microsecond timestamp column.
pub fn timestamp_array(values: Int64Array) -> ArrayRef {
    Arc::new(
        arrow::array::TimestampMicrosecondArray::new(
            values.values().clone(),
            values.nulls().cloned(),
        )
        .with_timezone("UTC"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_outside_rfc3339_years_are_refused() {
        assert_eq!(epoch_seconds_micros(1.5), Some(1_500_000));
        assert_eq!(epoch_seconds_micros(1.7e19), None);
        assert_eq!(epoch_seconds_micros(-1e12), None);
        assert_eq!(epoch_seconds_micros(f64::NAN), None);
    }

    #[test]
    fn years_rfc3339_cannot_write_are_refused() {
        // fuzz/regressions/feast_push: year -24 was read, then answered as `-0024-…Z`.
        assert!(parse_timestamp("-024-01-01T00:00:00").is_err());
        assert!(parse_timestamp("+10000-01-01").is_err());
        for edge in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            let micros = parse_timestamp(edge).unwrap();
            assert_eq!(format_micros(micros), edge);
            assert_eq!(parse_timestamp(&format_micros(micros)).unwrap(), micros);
        }
    }

    #[test]
    fn naive_times_are_utc() {
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00").unwrap(),
            1_704_067_200_000_000
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00Z").unwrap(),
            1_704_067_200_000_000
        );
        assert_eq!(
            parse_timestamp("2024-01-01T01:00:00+01:00").unwrap(),
            1_704_067_200_000_000
        );
        assert_eq!(
            parse_timestamp("2024-01-01 00:00:00.000001").unwrap(),
            1_704_067_200_000_001
        );
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn formats_like_feast() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_micros(1_500_000), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_micros(1), "1970-01-01T00:00:00.000001Z");
    }
}

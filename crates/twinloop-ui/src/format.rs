//! How values read on a page: times in UTC, durations, metric values.

use chrono::DateTime;

/// A millisecond timestamp as `2026-01-31 12:00:05` (UTC).
pub(crate) fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

pub(crate) fn opt_time(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_default()
}

/// The time between two millisecond timestamps, to the unit that matters: `850ms`, `4.2s`,
/// `3m 05s`, `2h 10m`, `3d 4h`.
pub(crate) fn duration(start: Option<i64>, end: Option<i64>) -> String {
    let (Some(start), Some(end)) = (start, end) else {
        return String::new();
    };
    let ms = end.saturating_sub(start);
    if ms < 0 {
        return String::new();
    }
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// A metric value short enough for a table cell: up to six decimals without trailing zeros,
/// scientific notation for very large or small magnitudes. The exact value goes in a tooltip.
pub(crate) fn value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-4..1e9).contains(&abs) {
        return format!("{v:.4e}");
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value(0.5), "0.5");
        assert_eq!(value(1.0), "1");
        assert_eq!(value(0.123456789), "0.123457");
        assert_eq!(value(-0.0), "0");
        assert_eq!(value(1e12), "1.0000e12");
        assert_eq!(value(0.00001234), "1.2340e-5");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_767_225_605_000), "2026-01-01 00:00:05");
        assert_eq!(duration(Some(0), Some(850)), "850ms");
        assert_eq!(duration(Some(0), Some(4_200)), "4.2s");
        assert_eq!(duration(Some(0), Some(185_000)), "3m 05s");
        assert_eq!(duration(Some(0), Some(7_800_000)), "2h 10m");
        assert_eq!(duration(Some(0), Some(273_600_000)), "3d 4h");
        assert_eq!(duration(Some(5), None), "");
        assert_eq!(duration(Some(5), Some(1)), "");
    }
}

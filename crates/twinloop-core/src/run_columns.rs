//! What a runs table shows beside MLflow's run: per-metric summaries (min, max, count, last) and
//! the keys an experiment's runs carry, for a column picker.

use std::fmt;

use crate::{Error, Result};

/// The summary of one metric of one run, maintained as points are logged.
///
/// NaN points are counted but take no part in `min` and `max`, so both are `None` when every
/// point is NaN. Infinities are ordinary values there. `last` is the run's latest value in
/// MLflow's sense (highest step, then highest timestamp, then the later write) and may be NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    pub key: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub count: i64,
    pub last: f64,
    pub last_step: i64,
    pub last_timestamp: i64,
}

/// One run's metric summaries, ordered by key.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummaries {
    pub run_id: String,
    pub metrics: Vec<MetricSummary>,
}

/// Which of a run's key spaces a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Metric,
    Param,
    Tag,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Metric => "metric",
            KeyKind::Param => "param",
            KeyKind::Tag => "tag",
        }
    }

    pub fn parse(s: &str) -> Result<KeyKind> {
        match s {
            "metric" => Ok(KeyKind::Metric),
            "param" => Ok(KeyKind::Param),
            "tag" => Ok(KeyKind::Tag),
            other => Err(Error::invalid(format!(
                "Invalid key kind {other:?}; expected metric, param or tag"
            ))),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A distinct key of an experiment and how many of its runs (active or deleted) have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCount {
    pub key: String,
    pub runs: i64,
}

/// Which keys of an experiment to list: one kind, those containing `contains` (ignoring ASCII
/// case; all when empty), at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuery {
    pub kind: KeyKind,
    pub contains: String,
    pub limit: u32,
}

/// The keys a [`KeyQuery`] found, most used first, and how many matched in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList {
    pub keys: Vec<KeyCount>,
    pub total: i64,
}

/// Runs grouped by the value of one param: `metric`'s last values (NaN left out) are aggregated
/// per group. At most `limit` groups, most runs first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupQuery {
    pub param: String,
    pub metric: Option<String>,
    pub limit: u32,
}

/// One group of runs: those whose param has `value` (`None`: runs without the param).
#[derive(Debug, Clone, PartialEq)]
pub struct RunGroup {
    pub value: Option<String>,
    pub runs: i64,
    /// How many of the group's runs have a (non-NaN) value of the grouped metric.
    pub with_metric: i64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kinds_parse_their_own_names_only() {
        for kind in [KeyKind::Metric, KeyKind::Param, KeyKind::Tag] {
            assert_eq!(KeyKind::parse(kind.as_str()).unwrap(), kind);
        }
        let e = KeyKind::parse("metrics").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
        assert!(e.message.contains("metric, param or tag"), "{}", e.message);
    }
}

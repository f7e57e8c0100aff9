//! Metric summaries in the search language: `metrics.loss.min|max|count|last`.
//!
//! Metric keys may contain dots, so `metrics.a.min` could name the summary `min` of `a` or the
//! key `a.min` itself. The rule:
//! - ``metrics.`a.min` `` (a quoted key) is always the literal key, MLflow's latest value;
//! - ``metrics.`a`.min`` (a quoted key, then a summary) is always the summary;
//! - unquoted `metrics.a.min` is the literal key `a.min` when a run of the searched experiments
//!   has logged it, so MLflow's meaning is kept wherever it has one, and the summary of `a`
//!   otherwise (`SummaryRef::or_literal`; the SQL layer decides).

use super::filter::Entity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    Min,
    Max,
    Count,
    /// The latest value, as plain `metrics.<key>` reads it.
    Last,
}

impl Summary {
    pub fn parse(word: &str) -> Option<Summary> {
        match word {
            "min" => Some(Summary::Min),
            "max" => Some(Summary::Max),
            "count" => Some(Summary::Count),
            "last" => Some(Summary::Last),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Summary::Min => "min",
            Summary::Max => "max",
            Summary::Count => "count",
            Summary::Last => "last",
        }
    }
}

/// A summary of one metric named by a filter clause or an order-by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRef {
    pub summary: Summary,
    /// The metric summarised.
    pub key: String,
    /// For the unquoted form, the literal key it names instead when the searched experiments
    /// have it.
    pub or_literal: Option<String>,
}

/// The key an identifier names for `entity`, and the summary it asks for if any. An error is
/// the position it concerns and what is wrong.
pub(super) fn resolve(
    entity: Entity,
    key: String,
    quoted: bool,
    suffix: Option<(String, usize)>,
) -> Result<(String, Option<SummaryRef>), (usize, String)> {
    if let Some((word, pos)) = suffix {
        if entity != Entity::Metric {
            return Err((
                pos,
                format!(
                    "only metrics have summaries; .{word} cannot follow a {} key",
                    entity.name()
                ),
            ));
        }
        let summary = Summary::parse(&word).ok_or_else(|| {
            (
                pos,
                format!("unknown metric summary {word:?}; use min, max, count or last"),
            )
        })?;
        let summary = SummaryRef {
            summary,
            key: key.clone(),
            or_literal: None,
        };
        return Ok((key, Some(summary)));
    }
    if entity == Entity::Metric
        && !quoted
        && let Some((base, word)) = key.rsplit_once('.')
        && !base.is_empty()
        && let Some(summary) = Summary::parse(word)
    {
        let summary = SummaryRef {
            summary,
            key: base.to_string(),
            or_literal: Some(key.clone()),
        };
        return Ok((key, Some(summary)));
    }
    Ok((key, None))
}

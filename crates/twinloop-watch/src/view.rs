//! What `Monitors` answers: typed views of monitors, their windows and their history. The
//! native API's shapes of them are the server's (`twinloop_api::monitors`).

use std::collections::BTreeMap;

use twinloop_core::monitoring::MetricPoint;

use crate::alerts::RuleState;
use crate::spec::MonitorSpec;
use crate::storage::{Event, MonitorState};

/// One monitor in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSummary {
    pub name: String,
    pub deployment: String,
    pub windows: u64,
    /// The rules that are firing.
    pub firing: Vec<String>,
}

/// A monitor's spec, state, latest closed windows and metric series.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorStatus {
    pub name: String,
    pub spec: MonitorSpec,
    pub state: MonitorState,
    /// Oldest first.
    pub windows: Vec<ClosedWindow>,
    /// Per metric, `(window end µs, value)` oldest first.
    pub series: BTreeMap<String, Vec<(i64, f64)>>,
}

/// A closed window's metrics and the rules whose condition held in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub start_us: i64,
    pub end_us: i64,
    pub metrics: BTreeMap<String, f64>,
    pub rules_holding: Vec<String>,
}

/// A monitor's rule states and its events.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertHistory {
    pub name: String,
    pub rules: BTreeMap<String, RuleState>,
    pub events: Vec<Event>,
}

/// Points grouped by metric, oldest first.
pub fn series(points: Vec<MetricPoint>) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for p in points {
        series
            .entry(p.metric)
            .or_default()
            .push((p.window_end, p.value));
    }
    series
}

/// The last `n` windows in `points` (ordered by window start), oldest first, each with its
/// metrics and the rules whose condition held in it. `truncated`: the points were cut at the
/// query's limit, so the oldest window may be incomplete and is left out.
pub fn recent_windows(
    spec: &MonitorSpec,
    points: &[MetricPoint],
    truncated: bool,
    n: usize,
) -> Vec<ClosedWindow> {
    let mut windows: Vec<ClosedWindow> = Vec::new();
    for p in points {
        match windows.last_mut() {
            Some(w) if w.start_us == p.window_start => {
                w.metrics.insert(p.metric.clone(), p.value);
            }
            _ => windows.push(ClosedWindow {
                start_us: p.window_start,
                end_us: p.window_end,
                metrics: BTreeMap::from([(p.metric.clone(), p.value)]),
                rules_holding: Vec::new(),
            }),
        }
    }
    if truncated && !windows.is_empty() {
        windows.remove(0);
    }
    let skip = windows.len().saturating_sub(n);
    let mut recent: Vec<ClosedWindow> = windows.into_iter().skip(skip).collect();
    for w in &mut recent {
        w.rules_holding = spec
            .rules
            .iter()
            .filter(|r| w.metrics.get(&r.metric).is_some_and(|v| r.holds(*v)))
            .map(|r| r.name.clone())
            .collect();
    }
    recent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start: i64, metric: &str, value: f64) -> MetricPoint {
        MetricPoint {
            monitor: "m".into(),
            window_start: start,
            window_end: start + 10,
            metric: metric.into(),
            value,
        }
    }

    fn spec() -> MonitorSpec {
        serde_json::from_value(serde_json::json!({
            "name": "m", "deployment": "d", "reference": "r.csv", "window": {"rows": 10},
            "rules": [{"name": "drift", "metric": "share_of_drifted_columns", "op": ">=", "threshold": 0.5},
                      {"name": "accuracy", "metric": "accuracy", "op": "<", "threshold": 0.8}]}))
        .unwrap()
    }

    #[test]
    fn recent_windows_group_points_and_name_the_rules_that_held() {
        let points = [
            point(0, "rows", 10.0),
            point(0, "share_of_drifted_columns", 0.0),
            point(10, "rows", 0.0),
            point(20, "accuracy", 0.5),
            point(20, "rows", 10.0),
            point(20, "share_of_drifted_columns", 0.75),
        ];
        let windows = recent_windows(&spec(), &points, false, 2);
        assert_eq!(
            windows,
            [
                ClosedWindow {
                    start_us: 10,
                    end_us: 20,
                    metrics: BTreeMap::from([("rows".to_string(), 0.0)]),
                    rules_holding: vec![],
                },
                ClosedWindow {
                    start_us: 20,
                    end_us: 30,
                    metrics: BTreeMap::from([
                        ("accuracy".to_string(), 0.5),
                        ("rows".to_string(), 10.0),
                        ("share_of_drifted_columns".to_string(), 0.75),
                    ]),
                    rules_holding: vec!["drift".into(), "accuracy".into()],
                },
            ]
        );
    }

    #[test]
    fn a_window_cut_by_the_query_limit_is_left_out() {
        let points = [
            point(0, "share_of_drifted_columns", 0.9),
            point(10, "rows", 5.0),
        ];
        let windows = recent_windows(&spec(), &points, true, 10);
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].start_us, 10);
    }

    #[test]
    fn series_are_per_metric_in_point_order() {
        let points = vec![
            point(0, "rows", 1.0),
            point(10, "rows", 2.0),
            point(10, "accuracy", 0.5),
        ];
        assert_eq!(
            series(points),
            BTreeMap::from([
                ("accuracy".to_string(), vec![(20, 0.5)]),
                ("rows".to_string(), vec![(10, 1.0), (20, 2.0)]),
            ])
        );
    }
}

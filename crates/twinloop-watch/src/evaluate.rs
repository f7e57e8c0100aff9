//! A closed window's metrics: rows and latency, drift and data quality against the reference,
//! and performance where labels have arrived.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use twinloop_monitor::io::Table;
use twinloop_monitor::{Options, Report, run_drift};

use crate::frame::to_table;
use crate::log::Logged;
use crate::performance::{join, metrics as performance};
use crate::spec::MonitorSpec;

/// Every metric of one window. `labels` (request id → label) is `None` when the monitor has no
/// prediction output or the labels could not be read.
pub async fn window_metrics(
    spec: &MonitorSpec,
    reference: &Arc<Table>,
    rows: &[Logged],
    labels: Option<&BTreeMap<String, Value>>,
) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    m.insert("rows".to_string(), rows.len() as f64);
    if rows.is_empty() {
        return m;
    }
    m.insert("latency_p99_ms".into(), latency_p99_ms(rows));
    let current = to_table(rows, &spec.features, spec.prediction.as_deref());
    let reference = reference.clone();
    let drift =
        tokio::task::spawn_blocking(move || run_drift(&reference, &current, &Options::default()))
            .await;
    match drift {
        Ok(Ok(report)) => drift_metrics(&report, spec.prediction.as_deref(), &mut m),
        Ok(Err(e)) => tracing::warn!(monitor = %spec.name, error = %e, "drift not computed"),
        Err(e) => tracing::error!(monitor = %spec.name, error = %e, "drift stopped"),
    }
    if let (Some(prediction), Some(labels)) = (&spec.prediction, labels) {
        let pairs = join(rows, labels, prediction, spec.probabilities.as_deref());
        for (k, v) in performance(&pairs, spec.task) {
            if let Some(trained) = spec.training_metrics.get(&k) {
                m.insert(format!("{k}_vs_training"), v - trained);
            }
            m.insert(k, v);
        }
    }
    m
}

/// The 99th percentile of the rows' latencies (nearest rank), in milliseconds.
fn latency_p99_ms(rows: &[Logged]) -> f64 {
    let mut latencies: Vec<i64> = rows.iter().map(|r| r.latency_us).collect();
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1] as f64 / 1000.0
}

fn drift_metrics(report: &Report, prediction: Option<&str>, m: &mut BTreeMap<String, f64>) {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    m.insert("dataset_drift".into(), flag(report.dataset_drift));
    m.insert(
        "share_of_drifted_columns".into(),
        report.share_of_drifted_columns,
    );
    m.insert("drifted_columns".into(), report.drifted_columns as f64);
    m.insert("quality_findings".into(), report.findings.len() as f64);
    let missing = report
        .quality
        .values()
        .map(|q| q.missing_share_current)
        .fold(0.0, f64::max);
    m.insert("max_missing_share".into(), missing);
    for (col, c) in &report.columns {
        m.insert(format!("drift_score:{col}"), c.score);
        if Some(col.as_str()) == prediction {
            m.insert("prediction_drift_score".into(), c.score);
            m.insert("prediction_drifted".into(), flag(c.drifted));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(latency_us: i64) -> Logged {
        Logged {
            time_us: 1,
            request_id: "r".into(),
            model_version: "1".into(),
            latency_us,
            inputs: serde_json::Map::new(),
            outputs: serde_json::Map::new(),
        }
    }

    #[test]
    fn p99_is_the_nearest_rank() {
        let rows: Vec<Logged> = (1..=200).map(|i| logged(i * 1000)).collect();
        assert_eq!(latency_p99_ms(&rows), 198.0);
        assert_eq!(latency_p99_ms(&[logged(1500)]), 1.5);
    }
}

//! The traffic simulator: replays transactions as Open Inference Protocol requests to the
//! deployment, then sends their labels, as a fraud team's case system would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Result, bail};
use serde_json::json;
use twinloop_api::monitors::{Label, LabelsAccepted};

use super::data::Transaction;
use crate::client::Api;

/// Rows per request: the requests are batched as a client scoring a queue would.
const ROWS_PER_REQUEST: usize = 10;

/// Counts what the simulator sent, shared with the summary.
#[derive(Default)]
pub struct Sent {
    pub requests: AtomicU64,
    pub rows: AtomicU64,
    pub failed: AtomicU64,
    /// The newest request id that was answered (after a promotion, one the champion served),
    /// for the summary's lineage walk.
    pub sample: std::sync::Mutex<Option<String>>,
}

pub struct Traffic {
    pub url: String,
    pub http: reqwest::Client,
    pub api: Arc<Api>,
    pub sent: Arc<Sent>,
}

impl Traffic {
    /// Sends `rows` once, in batched requests, then their labels.
    pub async fn replay(&self, rows: &[Transaction], tag: &str) -> Result<()> {
        let mut labels = Vec::new();
        for (i, chunk) in rows.chunks(ROWS_PER_REQUEST).enumerate() {
            let id = format!("{tag}-{}-{i}", chunk[0].id);
            let data: Vec<f64> = chunk.iter().flat_map(|t| t.features).collect();
            let body = json!({
                "id": id,
                "inputs": [{
                    "name": "input",
                    "shape": [chunk.len(), super::data::FEATURES.len()],
                    "datatype": "FP32",
                    "data": data,
                }],
            });
            let answer = self
                .http
                .post(format!("{}/v2/models/fraud/infer", self.url))
                .json(&body)
                .send()
                .await;
            self.sent.requests.fetch_add(1, Ordering::Relaxed);
            match answer {
                Ok(r) if r.status().is_success() => {
                    self.sent
                        .rows
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    *self.sent.sample.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
                }
                _ => {
                    self.sent.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            labels.push(Label {
                label: json!(
                    chunk
                        .iter()
                        .map(|t| i64::from(t.is_fraud))
                        .collect::<Vec<_>>()
                ),
                request_id: id,
                timestamp: None,
            });
        }
        if labels.is_empty() {
            bail!(
                "the deployment answered none of {} requests",
                rows.len().div_ceil(ROWS_PER_REQUEST)
            );
        }
        let _: LabelsAccepted = self
            .api
            .post_as("/api/twinloop/v1/labels", &labels, "sending labels")
            .await?;
        Ok(())
    }

    /// Replays `rows` over and over until `stop` is set: traffic that goes on while the loop
    /// retrains and the canary moves.
    pub async fn keep_sending(self: Arc<Self>, rows: Arc<Vec<Transaction>>, stop: Arc<AtomicBool>) {
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for chunk in rows.chunks(100) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = self.replay(chunk, &format!("r{round}")).await {
                    tracing::debug!(error = %e, "a traffic batch failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
            round += 1;
        }
    }
}

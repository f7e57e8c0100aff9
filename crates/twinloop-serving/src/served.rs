//! A model version ready to answer: its ONNX sessions, its batcher, and the counters a canary
//! gate reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::batch::Batcher;
use crate::runtime::{InferError, LoadError, OnnxModel, TensorSpec};
use crate::source::{ModelRegistry, ModelUri, SourceError, fetch};
use crate::spec::BatchingSpec;
use crate::tensor::{Datatype, Tensor, TensorData};

pub struct ServedModel {
    pub name: String,
    pub version: String,
    pub onnx: Arc<OnnxModel>,
    pub batching: BatchingSpec,
    batcher: Option<Batcher>,
    pub window: Window,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServedModel({} v{})", self.name, self.version)
    }
}

/// What this replica has answered since the last [`Window::take`] (what it adds to a canary's
/// traffic in the store).
#[derive(Default)]
pub struct Window {
    traffic: Mutex<Traffic>,
}

/// A summary of what a canary step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: f64,
}

/// Latency buckets per doubling: a bucket's upper bound is at most 9 % above any latency in it.
const BUCKETS_PER_DOUBLING: f64 = 8.0;

/// Requests counted by latency bucket, and how many failed. Buckets, not samples, so that
/// replicas add theirs up in the store and a p99 is read from the sum; a bucket `b` holds the
/// latencies in (2^((b-1)/8), 2^(b/8)] µs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    pub errors: u64,
    pub latency: BTreeMap<u32, u64>,
}

/// The store's bucket for failed requests, beside the latency buckets.
const ERRORS_BUCKET: i64 = -1;

impl Traffic {
    pub fn record(&mut self, latency: Duration, ok: bool) {
        let us = latency.as_micros().max(1) as f64;
        let bucket = (us.log2() * BUCKETS_PER_DOUBLING).ceil() as u32;
        *self.latency.entry(bucket).or_default() += 1;
        if !ok {
            self.errors += 1;
        }
    }

    pub fn requests(&self) -> u64 {
        self.latency.values().sum()
    }

    pub fn add(&mut self, other: &Traffic) {
        self.errors += other.errors;
        for (bucket, n) in &other.latency {
            *self.latency.entry(*bucket).or_default() += n;
        }
    }

    /// What was added after `before`, an earlier reading of the same sums.
    pub fn since(&self, before: &Traffic) -> Traffic {
        let latency = self
            .latency
            .iter()
            .map(|(b, n)| (*b, n.saturating_sub(*before.latency.get(b).unwrap_or(&0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        Traffic {
            errors: self.errors.saturating_sub(before.errors),
            latency,
        }
    }

    /// Requests, failures and the p99 latency, as the upper bound of its bucket (never below
    /// the true p99).
    pub fn stats(&self) -> WindowStats {
        let requests = self.requests();
        let rank = ((requests as f64 * 0.99).ceil() as u64).clamp(1, requests.max(1));
        let mut seen = 0;
        let mut p99_ms = 0.0;
        for (bucket, n) in &self.latency {
            seen += n;
            if seen >= rank {
                p99_ms = (f64::from(*bucket) / BUCKETS_PER_DOUBLING).exp2() / 1000.0;
                break;
            }
        }
        WindowStats {
            requests,
            errors: self.errors,
            p99_ms,
        }
    }

    /// As the store keeps it: (bucket, count), failures in bucket -1.
    pub fn to_rows(&self) -> Vec<(i64, i64)> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let errors = (self.errors > 0).then(|| (ERRORS_BUCKET, count(self.errors)));
        errors
            .into_iter()
            .chain(self.latency.iter().map(|(b, n)| (i64::from(*b), count(*n))))
            .collect()
    }

    pub fn from_rows(rows: &[(i64, i64)]) -> Traffic {
        let mut traffic = Traffic::default();
        for &(bucket, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match u32::try_from(bucket) {
                Ok(b) => *traffic.latency.entry(b).or_default() += n,
                Err(_) if bucket == ERRORS_BUCKET => traffic.errors += n,
                Err(_) => {}
            }
        }
        traffic
    }
}

impl Window {
    pub fn record(&self, latency: Duration, ok: bool) {
        self.lock().record(latency, ok);
    }

    /// What was answered since the last take.
    pub fn take(&self) -> Traffic {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what a take could not hand on, to be handed on with the next.
    pub fn put_back(&self, traffic: &Traffic) {
        self.lock().add(traffic);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Traffic> {
        self.traffic.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a model version could not be made ready to serve.
#[derive(Debug, thiserror::Error)]
pub enum ServedLoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The blocking task that loads or warms the model panicked or was cancelled.
    #[error("{step} stopped: {source}")]
    Stopped {
        step: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("{uri} loads but fails on a warm-up row: {source}")]
    WarmUp {
        uri: String,
        #[source]
        source: InferError,
    },
}

impl ServedModel {
    /// Resolves and loads `uri`, then runs one warm-up row so the first request pays no
    /// first-run cost. `name` overrides the registered name.
    pub async fn load(
        registry: Option<&dyn ModelRegistry>,
        uri: &ModelUri,
        name: Option<&str>,
        batching: BatchingSpec,
        pool_size: usize,
    ) -> Result<Arc<ServedModel>, ServedLoadError> {
        let (resolved, files) = fetch(registry, uri).await?;
        let onnx = tokio::task::spawn_blocking(move || OnnxModel::load(&files.onnx, pool_size))
            .await
            .map_err(|source| ServedLoadError::Stopped {
                step: "model loading",
                source,
            })??;
        let onnx = Arc::new(onnx);
        let name = name
            .map(str::to_string)
            .or(resolved.name)
            .unwrap_or_else(|| "model".into());
        let warm = onnx.clone();
        tokio::task::spawn_blocking(move || warm_up(&warm))
            .await
            .map_err(|source| ServedLoadError::Stopped {
                step: "warm-up",
                source,
            })?
            .map_err(|source| ServedLoadError::WarmUp {
                uri: uri.to_string(),
                source,
            })?;
        let batcher = (batching.max_queue_delay_us > 0)
            .then(|| Batcher::start(onnx.clone(), batching, pool_size));
        Ok(Arc::new(ServedModel {
            name,
            version: resolved.version,
            onnx,
            batching,
            batcher,
            window: Window::default(),
        }))
    }

    /// Validates and runs one request (through the batcher when batching is on).
    pub async fn infer(
        &self,
        inputs: Vec<Tensor>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, InferError> {
        self.onnx.validate(&inputs)?;
        let rows = inputs
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(1);
        if rows > self.batching.max_batch_size as i64 {
            return Err(InferError::Invalid(format!(
                "input {:?}: batch of {rows} rows, the limit is {} (max_batch_size)",
                inputs[0].name, self.batching.max_batch_size
            )));
        }
        let specs = self.onnx.select_outputs(outputs)?;
        if let Some(batcher) = &self.batcher {
            return batcher.submit(inputs, specs).await;
        }
        let onnx = self.onnx.clone();
        tokio::task::spawn_blocking(move || onnx.run(inputs, &specs))
            .await
            .map_err(|e| InferError::Failed(format!("inference stopped: {e}")))?
    }
}

/// One row of zeros (empty strings for text) in each input's shape, with variable dims as 1.
fn warm_up(model: &OnnxModel) -> Result<(), InferError> {
    let inputs = model.inputs.iter().map(zero_row).collect();
    let outputs = model.select_outputs(&[])?;
    model.run(inputs, &outputs).map(|_| ())
}

fn zero_row(spec: &TensorSpec) -> Tensor {
    let shape: Vec<i64> = spec
        .shape
        .iter()
        .map(|&d| if d < 0 { 1 } else { d })
        .collect();
    let n = shape.iter().product::<i64>().max(0) as usize;
    let data = match spec.datatype {
        Datatype::Bool => TensorData::Bool(vec![false; n]),
        Datatype::Uint8 => TensorData::Uint8(vec![0; n]),
        Datatype::Uint16 => TensorData::Uint16(vec![0; n]),
        Datatype::Uint32 => TensorData::Uint32(vec![0; n]),
        Datatype::Uint64 => TensorData::Uint64(vec![0; n]),
        Datatype::Int8 => TensorData::Int8(vec![0; n]),
        Datatype::Int16 => TensorData::Int16(vec![0; n]),
        Datatype::Int32 => TensorData::Int32(vec![0; n]),
        Datatype::Int64 => TensorData::Int64(vec![0; n]),
        Datatype::Fp16 => TensorData::Fp16(vec![0; n]),
        Datatype::Fp32 => TensorData::Fp32(vec![0.0; n]),
        Datatype::Fp64 => TensorData::Fp64(vec![0.0; n]),
        Datatype::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
    };
    Tensor {
        name: spec.name.clone(),
        shape,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_traffic_adds_up_and_a_step_reads_what_came_since() {
        let (mut a, mut b) = (Traffic::default(), Traffic::default());
        for ms in 1..=99 {
            a.record(Duration::from_millis(ms), true);
        }
        b.record(Duration::from_millis(500), false);
        let mut sum = Traffic::from_rows(&a.to_rows());
        sum.add(&Traffic::from_rows(&b.to_rows()));
        let stats = sum.stats();
        assert_eq!((stats.requests, stats.errors), (100, 1));
        // The 99th of 100 latencies is 99 ms: its bucket's bound is at most 9 % above.
        assert!((99.0..=99.0 * 1.091).contains(&stats.p99_ms), "{stats:?}");
        let later = {
            let mut t = sum.clone();
            t.record(Duration::from_millis(2), false);
            t
        };
        let step = later.since(&sum).stats();
        assert_eq!((step.requests, step.errors), (1, 1));
        assert!((2.0..=2.0 * 1.091).contains(&step.p99_ms), "{step:?}");
        assert_eq!(Traffic::default().stats().p99_ms, 0.0);
    }
}

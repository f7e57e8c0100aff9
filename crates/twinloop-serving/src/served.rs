//! A model version ready to answer: its ONNX sessions, its batcher, and the counters a canary
//! gate reads.

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Requests, failures and latencies since the last [`Window::take`] (what a canary step saw).
#[derive(Default)]
pub struct Window {
    requests: AtomicU64,
    errors: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// A summary of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: f64,
}

/// Latencies kept per window; past this the window keeps the first ones (enough for a p99).
const WINDOW_SAMPLES: usize = 100_000;

impl Window {
    pub fn record(&self, latency: Duration, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut l = self.latencies_us.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() < WINDOW_SAMPLES {
            l.push(latency.as_micros() as u64);
        }
    }

    pub fn take(&self) -> WindowStats {
        let mut l =
            std::mem::take(&mut *self.latencies_us.lock().unwrap_or_else(|p| p.into_inner()));
        l.sort_unstable();
        let p99 = if l.is_empty() {
            0.0
        } else {
            l[((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1] as f64 / 1000.0
        };
        WindowStats {
            requests: self.requests.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            p99_ms: p99,
        }
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

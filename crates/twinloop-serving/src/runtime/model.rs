//! A loaded ONNX model: its V2 signature and a pool of sessions (ort's `run` takes `&mut`, so
//! concurrent requests each need a session of their own).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ort::session::{Session, builder::GraphOptimizationLevel};

use super::convert::{from_value, to_value};
use super::library::environment;
use super::signature::{InferError, LoadError, TensorSpec, io_spec};
use crate::tensor::{Tensor, show_shape};

pub struct OnnxModel {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl OnnxModel {
    /// Loads the ONNX graph at `path` (external data files beside it are found relative to it)
    /// into `pool_size` sessions of one thread each.
    pub fn load(path: &std::path::Path, pool_size: usize) -> Result<OnnxModel, LoadError> {
        let env = environment()?;
        let mut sessions = Vec::with_capacity(pool_size.max(1));
        for _ in 0..pool_size.max(1) {
            let session = Session::builder(&env)
                .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
                .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
                .and_then(|b| {
                    b.with_optimization_level(GraphOptimizationLevel::All)
                        .map_err(Into::into)
                })
                .and_then(|mut b| b.commit_from_file(path))
                .map_err(LoadError::Session)?;
            sessions.push(Mutex::new(session));
        }
        let first = sessions[0]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let inputs = first
            .inputs()
            .iter()
            .map(|o| io_spec(o.name(), o.dtype(), "input"))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = first
            .outputs()
            .iter()
            .map(|o| io_spec(o.name(), o.dtype(), "output"))
            .collect::<Result<Vec<_>, _>>()?;
        drop(first);
        Ok(OnnxModel {
            inputs,
            outputs,
            sessions,
            next: AtomicUsize::new(0),
        })
    }

    /// Checks that `inputs` are exactly the model's inputs, with their datatypes and shapes.
    pub fn validate(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        let expected = || {
            self.inputs
                .iter()
                .map(|s| format!("{} ({})", s.name, s.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, t) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|o| o.name == t.name) {
                return Err(InferError::Invalid(format!(
                    "input {:?} is given twice",
                    t.name
                )));
            }
            let Some(spec) = self.inputs.iter().find(|s| s.name == t.name) else {
                return Err(InferError::Invalid(format!(
                    "unknown input {:?}: the model's inputs are {}",
                    t.name,
                    expected()
                )));
            };
            let datatype = t.data.datatype();
            if datatype != spec.datatype {
                return Err(InferError::Invalid(format!(
                    "input {:?}: datatype {}, expected {}",
                    t.name,
                    datatype.name(),
                    spec.datatype.name()
                )));
            }
            let fits = t.shape.len() == spec.shape.len()
                && t.shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&got, &want)| want < 0 || got == want);
            if !fits {
                return Err(InferError::Invalid(format!(
                    "input {:?}: shape {}, expected {:?} (-1 is any size)",
                    t.name,
                    show_shape(&t.shape),
                    spec.shape
                )));
            }
        }
        if let Some(missing) = self
            .inputs
            .iter()
            .find(|s| !inputs.iter().any(|t| t.name == s.name))
        {
            return Err(InferError::Invalid(format!(
                "missing input {:?}: the model's inputs are {}",
                missing.name,
                expected()
            )));
        }
        Ok(())
    }

    /// The output specs for `names` (every output when empty), in the order asked.
    pub fn select_outputs(&self, names: &[String]) -> Result<Vec<TensorSpec>, InferError> {
        if names.is_empty() {
            return Ok(self.outputs.clone());
        }
        names
            .iter()
            .map(|n| {
                self.outputs
                    .iter()
                    .find(|s| &s.name == n)
                    .cloned()
                    .ok_or_else(|| {
                        InferError::Invalid(format!(
                            "unknown output {n:?}: the model's outputs are {}",
                            self.outputs
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .collect()
    }

    /// Runs validated inputs on a free session (blocking; call from a blocking thread).
    pub fn run(
        &self,
        inputs: Vec<Tensor>,
        outputs: &[TensorSpec],
    ) -> Result<Vec<Tensor>, InferError> {
        self.validate(&inputs)?;
        let values = inputs
            .into_iter()
            .map(|t| Ok((t.name.clone(), to_value(t)?)))
            .collect::<Result<Vec<_>, InferError>>()?;
        let mut session = self.acquire();
        let result = session
            .run(values)
            .map_err(|e| InferError::Invalid(format!("the model rejected the input: {e}")))?;
        outputs
            .iter()
            .map(|spec| {
                let value = result.get(&spec.name).ok_or_else(|| {
                    InferError::Failed(format!("the model produced no output {:?}", spec.name))
                })?;
                from_value(&spec.name, spec.kind, value)
            })
            .collect()
    }

    /// A free session if there is one, else waits on the next in turn.
    fn acquire(&self) -> std::sync::MutexGuard<'_, Session> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        for i in 0..n {
            if let Ok(guard) = self.sessions[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.sessions[start % n]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

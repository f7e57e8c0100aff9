//! The serving engine: live deployments by name, routing a request to one of their versions,
//! mirroring it to a shadow, and recording the answer (metrics, canary window, prediction log).
//! Both `twinloop serve` and `twinloop server` put their models behind one `Engine`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use twinloop_core::time::now_us;

use crate::infer::{InferRequest, InferResponse};
use crate::predlog::{PredictionLog, PredictionRecord, Role, Status};
use crate::runtime::{InferError, TensorSpec};
use crate::served::ServedModel;
use crate::spec::DeploymentSpec;
use crate::tensor::{Tensor, TensorData};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    /// What serving depends on (the metadata store, the online feature store) failed; answered
    /// as `Failed` is, with the domain error kept as the source so its cause stays reachable.
    #[error("{0}")]
    Internal(#[source] twinloop_core::Error),
}

impl From<InferError> for ServeError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::Invalid(m) => ServeError::Invalid(m),
            InferError::Failed(m) => ServeError::Failed(m),
        }
    }
}

/// A deployment as it runs: its spec and the loaded model of each route.
#[derive(Debug)]
pub struct Endpoint {
    pub spec: DeploymentSpec,
    /// One per spec route, same order; weights come from the spec.
    pub routes: Vec<Arc<ServedModel>>,
    pub shadow: Option<Arc<ServedModel>>,
}

impl Endpoint {
    fn weight(&self, i: usize) -> u64 {
        self.spec.routes[i].weight as u64
    }

    /// The route for this request: by `/versions/<v>`, by the sticky key's hash, or at random,
    /// in proportion to the weights.
    fn pick(
        &self,
        version: Option<&str>,
        request: &InferRequest,
    ) -> Result<&Arc<ServedModel>, ServeError> {
        if let Some(v) = version {
            return self.routes.iter().find(|m| m.version == v).ok_or_else(|| {
                ServeError::NotFound(format!(
                    "model {:?} has no version {v:?} being served (serving: {})",
                    self.spec.name,
                    self.routes
                        .iter()
                        .map(|m| m.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            });
        }
        let total: u64 = (0..self.routes.len()).map(|i| self.weight(i)).sum();
        let point = match self
            .spec
            .sticky_key
            .as_deref()
            .and_then(|k| sticky_value(request, k))
        {
            Some(key) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                h.finish() % total.max(1)
            }
            None => rand::random_range(0..total.max(1)),
        };
        let mut acc = 0;
        for (i, m) in self.routes.iter().enumerate() {
            acc += self.weight(i);
            if point < acc {
                return Ok(m);
            }
        }
        Ok(&self.routes[0])
    }
}

/// The sticky key's value: a request parameter of that name, else the first element of an input
/// of that name.
fn sticky_value(request: &InferRequest, key: &str) -> Option<String> {
    if let Some(v) = request.parameters.get(key) {
        return Some(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    let input = request.inputs.iter().find(|t| t.name == key)?;
    input.data.to_json().first().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Online features for enrichment: the deployment's feature service, looked up by entity keys.
#[async_trait]
pub trait FeatureLookup: Send + Sync {
    /// Adds the service's features that the model takes as inputs, given entity keys from
    /// `parameters.entities` or inputs named like the join keys (removed unless the model takes
    /// them too).
    async fn enrich(
        &self,
        service: &str,
        request: &mut InferRequest,
        model_inputs: &[TensorSpec],
    ) -> Result<(), ServeError>;
}

#[derive(Default)]
pub struct Engine {
    endpoints: RwLock<HashMap<String, Arc<Endpoint>>>,
    pub log: RwLock<Option<PredictionLog>>,
    ready: AtomicBool,
    features: RwLock<Option<Arc<dyn FeatureLookup>>>,
}

impl Engine {
    pub fn new(log: PredictionLog) -> Engine {
        Engine {
            log: RwLock::new(Some(log)),
            ..Engine::default()
        }
    }

    pub fn set_features(&self, lookup: Arc<dyn FeatureLookup>) {
        *self.features.write().unwrap_or_else(|p| p.into_inner()) = Some(lookup);
    }

    /// Puts `endpoint` in place of the deployment of the same name in one step: requests already
    /// running finish on the old one, the next ones use the new one.
    pub fn put(&self, endpoint: Endpoint) {
        let mut map = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        map.insert(endpoint.spec.name.clone(), Arc::new(endpoint));
    }

    pub fn remove(&self, name: &str) -> bool {
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Readiness: false until the process has loaded what it was started with.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn endpoint(&self, name: &str) -> Result<Arc<Endpoint>, ServeError> {
        self.get(name).ok_or_else(|| {
            ServeError::NotFound(format!(
                "unknown model {name:?}; serving: {}",
                match self.names() {
                    n if n.is_empty() => "nothing".to_string(),
                    n => n.join(", "),
                }
            ))
        })
    }

    /// The model behind `name` (and `version`), for metadata and readiness.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ServeError> {
        let endpoint = self.endpoint(name)?;
        match version {
            Some(_) => endpoint.pick(version, &InferRequest::default()).cloned(),
            None => Ok(endpoint
                .routes
                .iter()
                .zip(&endpoint.spec.routes)
                .max_by_key(|(_, r)| r.weight)
                .map(|(m, _)| m.clone())
                .expect("a deployment has a route")),
        }
    }

    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        mut request: InferRequest,
    ) -> Result<InferResponse, ServeError> {
        let started = Instant::now();
        let endpoint = self.endpoint(name)?;
        let model = endpoint.pick(version, &request)?.clone();
        if let Some(service) = &endpoint.spec.feature_service {
            let lookup = self
                .features
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let lookup = lookup.ok_or_else(|| {
                ServeError::Unavailable(format!(
                    "deployment {name:?} names feature service {service:?}, but this server has no feature store (hint: start it with --feature-repo)"
                ))
            })?;
            lookup
                .enrich(service, &mut request, &model.onnx.inputs)
                .await?;
        }
        let request_id = request
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let outputs = std::mem::take(&mut request.outputs);
        let log = self
            .log
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(PredictionLog::enabled);
        let logged_inputs = log.as_ref().map(|_| request.inputs.clone());
        if let Some(shadow) = endpoint.shadow.clone() {
            self.mirror(
                shadow,
                name,
                &request_id,
                request.inputs.clone(),
                outputs.clone(),
                log.clone(),
            );
        }
        let result = model.infer(request.inputs, &outputs).await;
        let elapsed = started.elapsed();
        record(name, &model, elapsed, &result);
        if let (Some(log), Some(inputs)) = (&log, logged_inputs) {
            log.append(log_record(
                name,
                &model,
                Role::Primary,
                &request_id,
                inputs,
                &result,
                elapsed,
            ));
        }
        let outputs = result?;
        Ok(InferResponse {
            model_name: name.to_string(),
            model_version: Some(model.version.clone()),
            id: Some(request_id),
            outputs,
        })
    }

    /// Runs a copy on the shadow model in the background; only the log sees its answer.
    fn mirror(
        &self,
        shadow: Arc<ServedModel>,
        name: &str,
        request_id: &str,
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
        log: Option<PredictionLog>,
    ) {
        let name = name.to_string();
        let request_id = request_id.to_string();
        tokio::spawn(async move {
            let started = Instant::now();
            let logged = log.as_ref().map(|_| inputs.clone());
            let result = shadow.infer(inputs, &outputs).await;
            let elapsed = started.elapsed();
            shadow.window.record(elapsed, result.is_ok());
            metrics::counter!("twinloop_serving_shadow_requests_total", "deployment" => name.clone(), "version" => shadow.version.clone(), "status" => status(&result)).increment(1);
            if let (Some(log), Some(inputs)) = (log, logged) {
                log.append(log_record(
                    &name,
                    &shadow,
                    Role::Shadow,
                    &request_id,
                    inputs,
                    &result,
                    elapsed,
                ));
            }
        });
    }
}

fn status<T>(result: &Result<T, InferError>) -> &'static str {
    if result.is_ok() { "ok" } else { "error" }
}

fn record(
    name: &str,
    model: &ServedModel,
    elapsed: std::time::Duration,
    result: &Result<Vec<Tensor>, InferError>,
) {
    // A canary's gate counts every failed request: a candidate that refuses what the stable
    // version accepts is failing the traffic it was given.
    model.window.record(elapsed, result.is_ok());
    let labels = [
        ("deployment", name.to_string()),
        ("version", model.version.clone()),
    ];
    metrics::counter!(
        "twinloop_serving_requests_total",
        &[
            ("deployment", name.to_string()),
            ("version", model.version.clone()),
            ("status", status(result).to_string())
        ]
    )
    .increment(1);
    metrics::histogram!("twinloop_serving_request_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(outputs) = result
        && outputs.iter().any(has_nan)
    {
        metrics::counter!("twinloop_serving_nan_outputs_total", &labels).increment(1);
    }
}

fn has_nan(t: &Tensor) -> bool {
    match &t.data {
        TensorData::Fp32(v) => v.iter().any(|x| x.is_nan()),
        TensorData::Fp64(v) => v.iter().any(|x| x.is_nan()),
        _ => false,
    }
}

fn log_record(
    deployment: &str,
    model: &ServedModel,
    role: Role,
    request_id: &str,
    inputs: Vec<Tensor>,
    result: &Result<Vec<Tensor>, InferError>,
    elapsed: std::time::Duration,
) -> PredictionRecord {
    PredictionRecord {
        time_us: now_us(),
        request_id: request_id.to_string(),
        deployment: deployment.to_string(),
        model_name: model.name.clone(),
        model_version: model.version.clone(),
        role,
        status: if result.is_ok() {
            Status::Ok
        } else {
            Status::Error
        },
        latency_us: elapsed.as_micros() as i64,
        inputs,
        outputs: result.clone().unwrap_or_default(),
        error: result.as_ref().err().map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::ServeError;

    #[test]
    fn a_store_failure_reads_as_before_and_keeps_its_cause() {
        let io = std::io::Error::other("disk full");
        let e = ServeError::Internal(twinloop_core::Error::internal_from("cannot save", io));
        assert_eq!(e.to_string(), "cannot save: disk full");
        let store = e.source().expect("the store's error");
        assert_eq!(store.to_string(), "cannot save: disk full");
        assert_eq!(
            store.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
    }
}

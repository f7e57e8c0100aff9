//! Feature enrichment for deployments: entity keys in a V2 request become the feature service's
//! online features, joined in-process by the same [`OnlineService`] that answers
//! `/get-online-features` (so the same statuses and TTL rules apply).

use std::borrow::Cow;

use async_trait::async_trait;
use serde_json::Value as Json;
use twinloop_core::ErrorKind;
use twinloop_features::serving::{FeatureSelection, FeatureStatus, OnlineQuery, OnlineService};
use twinloop_features::value::Value;
use twinloop_serving::engine::{FeatureLookup, ServeError};
use twinloop_serving::infer::InferRequest;
use twinloop_serving::runtime::TensorSpec;
use twinloop_serving::tensor::{Datatype, Tensor, TensorData};

use crate::features::feast::{JsonColumn, status_name, value_json};

pub struct OnlineEnrichment {
    pub service: OnlineService,
}

fn serve_error(e: twinloop_core::Error) -> ServeError {
    match e.kind {
        ErrorKind::NotFound => ServeError::NotFound(e.message),
        ErrorKind::InvalidArgument => ServeError::Invalid(e.message),
        _ => ServeError::Internal(e),
    }
}

impl OnlineEnrichment {
    fn join_keys(&self, service: &str) -> Result<Vec<String>, ServeError> {
        let repo = self.service.repo();
        let refs = repo.service_refs(service).map_err(serve_error)?;
        let mut keys: Vec<String> = Vec::new();
        for r in refs {
            if let Some(view) = repo.view(&r.view) {
                for k in repo.join_keys(view) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        Ok(keys)
    }
}

/// The entity columns: `parameters.entities` (`{"driver_id": [1001, …]}`), else inputs named
/// like the join keys.
fn entities(
    request: &mut InferRequest,
    keys: &[String],
    model_inputs: &[TensorSpec],
) -> Result<Vec<(String, JsonColumn)>, ServeError> {
    if let Some(Json::Object(map)) = request.parameters.get("entities") {
        return map
            .iter()
            .map(|(k, v)| match v {
                Json::Array(values) => Ok((k.clone(), JsonColumn(values.clone()))),
                other => Ok((k.clone(), JsonColumn(vec![other.clone()]))),
            })
            .collect();
    }
    let mut out = Vec::new();
    for key in keys {
        let Some(pos) = request.inputs.iter().position(|t| &t.name == key) else {
            return Err(ServeError::Invalid(format!(
                "this deployment joins features by {key:?}: send parameters.entities or an input named {key:?}"
            )));
        };
        let values = request.inputs[pos].data.to_json();
        if !model_inputs.iter().any(|s| &s.name == key) {
            request.inputs.remove(pos);
        }
        out.push((key.clone(), JsonColumn(values)));
    }
    Ok(out)
}

/// One feature column as the model's input: its datatype, `[N]` or `[N, 1]`. Missing values
/// (NOT_FOUND, OUTSIDE_MAX_AGE, nulls) are NaN for float inputs; other types need a value.
fn column(
    spec: &TensorSpec,
    values: &[Value],
    statuses: &[FeatureStatus],
) -> Result<Tensor, ServeError> {
    let n = values.len();
    let missing = |i: usize| {
        ServeError::Invalid(format!(
            "feature {:?} of row {i} is {} and input {:?} is {}, which has no missing value",
            spec.name,
            statuses.get(i).map_or("null", |s| status_name(*s)),
            spec.name,
            spec.datatype.name()
        ))
    };
    // A present value of the wrong kind is the feature view's mismatch with the model.
    let wrong = |i: usize, v: &Value| {
        ServeError::Invalid(format!(
            "feature {:?} of row {i} is {}, which does not fit input {:?} ({})",
            spec.name,
            value_json(v),
            spec.name,
            spec.datatype.name()
        ))
    };
    let each =
        |convert: &dyn Fn(&Value) -> Option<TensorData>| -> Result<Vec<TensorData>, ServeError> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Null => Err(missing(i)),
                    v => convert(v).ok_or_else(|| wrong(i, v)),
                })
                .collect()
        };
    let data = match spec.datatype {
        Datatype::Fp32 => TensorData::Fp32(
            values
                .iter()
                .map(|v| finite(v).map_or(f32::NAN, |x| x as f32))
                .collect(),
        ),
        Datatype::Fp64 => TensorData::Fp64(
            values
                .iter()
                .map(|v| finite(v).unwrap_or(f64::NAN))
                .collect(),
        ),
        Datatype::Int64 => join(each(&|v| integer(v).map(|x| TensorData::Int64(vec![x])))?),
        Datatype::Int32 => join(each(&|v| {
            integer(v)
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| TensorData::Int32(vec![x]))
        })?),
        Datatype::Bool => join(each(&|v| match v {
            Value::Bool(b) => Some(TensorData::Bool(vec![*b])),
            _ => None,
        })?),
        // Bytes inputs take the value's text as Feast writes it (base64 for bytes).
        Datatype::Bytes => join(each(&|v| {
            Some(TensorData::Bytes(vec![match value_json(v) {
                Json::String(s) => s.into_bytes(),
                other => other.to_string().into_bytes(),
            }]))
        })?),
        other => {
            return Err(ServeError::Invalid(format!(
                "input {:?} is {}, which feature enrichment does not fill",
                spec.name,
                other.name()
            )));
        }
    };
    let shape = if spec.shape.len() == 1 {
        vec![n as i64]
    } else {
        vec![n as i64, 1]
    };
    Ok(Tensor {
        name: spec.name.clone(),
        shape,
        data,
    })
}

/// A number as a float input reads it: non-finite floats count as missing, as they would
/// after a round trip through Feast's JSON ("NaN" is not a number there).
fn finite(v: &Value) -> Option<f64> {
    match v {
        Value::Int32(x) => Some(f64::from(*x)),
        Value::Int64(x) => Some(*x as f64),
        Value::Float32(x) if x.is_finite() => Some(f64::from(*x)),
        Value::Float64(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int32(x) => Some(i64::from(*x)),
        Value::Int64(x) => Some(*x),
        _ => None,
    }
}

/// An entity column sent as JSON, as a model input would read it if one is named like it.
fn sent_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n.as_i64().map_or_else(
            || Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            Value::Int64,
        ),
        Json::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// One tensor of the elements, in order (all of one type).
fn join(parts: Vec<TensorData>) -> TensorData {
    let mut parts = parts.into_iter();
    let mut all = parts.next().unwrap_or(TensorData::Fp32(Vec::new()));
    for p in parts {
        all.append(p);
    }
    all
}

#[async_trait]
impl FeatureLookup for OnlineEnrichment {
    async fn enrich(
        &self,
        service: &str,
        request: &mut InferRequest,
        model_inputs: &[TensorSpec],
    ) -> Result<(), ServeError> {
        let keys = self.join_keys(service)?;
        let query = OnlineQuery {
            features: FeatureSelection::Service(service.to_string()),
            entities: entities(request, &keys, model_inputs)?,
            full_feature_names: false,
        };
        let answer = self
            .service
            .get_online_features(&query)
            .await
            .map_err(serve_error)?;
        // Entity columns that are not join keys are echoed as sent, and present.
        let present = vec![FeatureStatus::Present; answer.rows];
        let sent = query.entities.iter().map(|(name, column)| {
            let values: Vec<Value> = column.0.iter().map(sent_value).collect();
            (name, Cow::Owned(values), present.as_slice())
        });
        let features = answer.features.iter().map(|c| {
            (
                &c.name,
                Cow::Borrowed(c.values.as_slice()),
                c.statuses.as_slice(),
            )
        });
        for (name, values, statuses) in sent.chain(features) {
            if keys.iter().any(|k| k == name) || request.inputs.iter().any(|t| &t.name == name) {
                continue;
            }
            let Some(spec) = model_inputs.iter().find(|s| &s.name == name) else {
                continue;
            };
            request.inputs.push(column(spec, &values, statuses)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinloop_serving::runtime::OutputKind;

    fn spec(name: &str, datatype: Datatype, shape: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype,
            shape,
            kind: OutputKind::Tensor,
        }
    }

    #[test]
    fn missing_floats_are_nan_and_missing_ints_are_refused() {
        let values = [Value::Float64(1.5), Value::Null];
        let statuses = [FeatureStatus::Present, FeatureStatus::OutsideMaxAge];
        let t = column(
            &spec("conv", Datatype::Fp32, vec![-1, 1]),
            &values,
            &statuses,
        )
        .unwrap();
        assert_eq!(t.shape, vec![2, 1]);
        let TensorData::Fp32(v) = t.data else {
            panic!()
        };
        assert!(v[0] == 1.5 && v[1].is_nan());
        let trips = spec("trips", Datatype::Int64, vec![-1]);
        let ints = [Value::Int64(3), Value::Null];
        let err = column(&trips, &ints, &statuses).unwrap_err();
        assert!(err.to_string().contains("OUTSIDE_MAX_AGE"), "{err}");
        let t = column(&trips, &ints[..1], &statuses).unwrap();
        assert_eq!((t.shape, t.data), (vec![1], TensorData::Int64(vec![3])));
        let err = column(&trips, &values, &statuses).unwrap_err();
        assert!(err.to_string().contains("1.5"), "{err}");
    }

    #[test]
    fn key_inputs_become_entities_and_leave_unless_the_model_takes_them() {
        let mut request = InferRequest {
            inputs: vec![Tensor {
                name: "driver_id".into(),
                shape: vec![2],
                data: TensorData::Int64(vec![1001, 1002]),
            }],
            ..InferRequest::default()
        };
        let got = entities(&mut request, &["driver_id".into()], &[]).unwrap();
        assert_eq!(
            got,
            vec![(
                "driver_id".to_string(),
                JsonColumn(vec![Json::from(1001), Json::from(1002)])
            )]
        );
        assert!(request.inputs.is_empty());
        let err = entities(&mut request, &["driver_id".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("parameters.entities"));
    }
}

//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`). Inputs arrive in
//! `raw_input_contents` (tritonclient's only form) or typed contents; outputs always go back in
//! `raw_output_contents`, which is what tritonclient reads.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use crate::engine::{Engine, ServeError};
use crate::http::BODY_LIMIT;
use crate::v2::{Datatype, InferRequest, ProtocolError, RequestedOutput, Tensor, TensorData};

#[allow(clippy::all, clippy::pedantic)]
mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::infer_parameter::ParameterChoice;
use proto::model_metadata_response::TensorMetadata;
use proto::*;

impl From<ServeError> for Status {
    fn from(e: ServeError) -> Status {
        match e {
            ServeError::NotFound(m) => Status::not_found(m),
            ServeError::Invalid(m) => Status::invalid_argument(m),
            ServeError::Unavailable(m) => Status::unavailable(m),
            ServeError::Failed(m) => Status::internal(m),
        }
    }
}

fn invalid(e: ProtocolError) -> Status {
    Status::invalid_argument(e.0)
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

fn parameters(map: HashMap<String, InferParameter>) -> Map<String, Value> {
    map.into_iter()
        .filter_map(|(k, p)| {
            let v = match p.parameter_choice? {
                ParameterChoice::BoolParam(b) => Value::from(b),
                ParameterChoice::Int64Param(i) => Value::from(i),
                ParameterChoice::StringParam(s) => Value::from(s),
                ParameterChoice::DoubleParam(d) => Value::from(d),
                ParameterChoice::Uint64Param(u) => Value::from(u),
            };
            Some((k, v))
        })
        .collect()
}

/// Typed contents as tensor data; the field must match the datatype.
fn typed(
    name: &str,
    datatype: Datatype,
    c: InferTensorContents,
) -> Result<TensorData, ProtocolError> {
    let narrow = |v: Vec<i32>| v.into_iter().map(|x| x as i64).collect::<Vec<_>>();
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(c.bool_contents),
        Datatype::Int32 => TensorData::Int32(c.int_contents),
        Datatype::Int64 => TensorData::Int64(c.int64_contents),
        Datatype::Uint32 => TensorData::Uint32(c.uint_contents),
        Datatype::Uint64 => TensorData::Uint64(c.uint64_contents),
        Datatype::Fp32 => TensorData::Fp32(c.fp32_contents),
        Datatype::Fp64 => TensorData::Fp64(c.fp64_contents),
        Datatype::Bytes => TensorData::Bytes(c.bytes_contents),
        Datatype::Int8 | Datatype::Int16 | Datatype::Uint8 | Datatype::Uint16 => {
            let ints = narrow(c.int_contents);
            let values: Vec<Value> = ints.into_iter().map(Value::from).collect();
            TensorData::from_json(name, datatype, &values)?
        }
        Datatype::Fp16 => {
            return Err(ProtocolError(format!(
                "input {name:?}: FP16 travels only in raw_input_contents"
            )));
        }
    })
}

/// A gRPC infer request in the REST decoder's terms.
fn decode(request: ModelInferRequest) -> Result<InferRequest, ProtocolError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ProtocolError(format!(
            "{} inputs but {} raw_input_contents",
            request.inputs.len(),
            raw.len()
        )));
    }
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for (i, input) in request.inputs.into_iter().enumerate() {
        let datatype = Datatype::parse(&input.datatype)
            .map_err(|e| ProtocolError(format!("input {:?}: {}", input.name, e.0)))?;
        let count = crate::v2::element_count(&input.name, &input.shape)?;
        let data = match raw.get(i) {
            Some(bytes) => TensorData::from_le_bytes(&input.name, datatype, count, bytes)?,
            None => {
                let data = typed(&input.name, datatype, input.contents.unwrap_or_default())?;
                if data.len() != count {
                    return Err(ProtocolError(format!(
                        "input {:?}: shape {:?} needs {count} elements, contents have {}",
                        input.name,
                        input.shape,
                        data.len()
                    )));
                }
                data
            }
        };
        inputs.push(Tensor {
            name: input.name,
            shape: input.shape,
            data,
        });
    }
    Ok(InferRequest {
        id: (!request.id.is_empty()).then_some(request.id),
        parameters: parameters(request.parameters),
        inputs,
        outputs: request
            .outputs
            .into_iter()
            .map(|o| RequestedOutput {
                name: o.name,
                binary: None,
            })
            .collect(),
    })
}

struct Service {
    engine: Arc<Engine>,
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.engine.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let ready = self.engine.model(&r.name, version(&r.version)).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "twinloop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let model = self.engine.model(&r.name, version(&r.version))?;
        let endpoint = self
            .engine
            .get(&r.name)
            .ok_or_else(|| Status::not_found(r.name.clone()))?;
        let tensor = |s: &crate::runtime::TensorSpec| TensorMetadata {
            name: s.name.clone(),
            datatype: s.datatype.name().into(),
            shape: s.shape.clone(),
        };
        Ok(Response::new(ModelMetadataResponse {
            name: r.name,
            versions: endpoint.routes.iter().map(|m| m.version.clone()).collect(),
            platform: "onnx_onnxv1".into(),
            inputs: model.onnx.inputs.iter().map(tensor).collect(),
            outputs: model.onnx.outputs.iter().map(tensor).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let r = request.into_inner();
        let name = r.model_name.clone();
        let requested_version = r.model_version.clone();
        let infer = decode(r).map_err(invalid)?;
        let response = self
            .engine
            .infer(&name, version(&requested_version), infer)
            .await?;
        let mut outputs = Vec::with_capacity(response.outputs.len());
        let mut raw = Vec::with_capacity(response.outputs.len());
        for t in response.outputs {
            raw.push(t.data.to_le_bytes());
            outputs.push(model_infer_response::InferOutputTensor {
                name: t.name,
                datatype: t.data.datatype().name().into(),
                shape: t.shape,
                parameters: HashMap::new(),
                contents: None,
            });
        }
        Ok(Response::new(ModelInferResponse {
            model_name: response.model_name,
            model_version: response.model_version.unwrap_or_default(),
            id: response.id.unwrap_or_default(),
            parameters: HashMap::new(),
            outputs,
            raw_output_contents: raw,
        }))
    }
}

/// Serves the gRPC service on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, engine: Arc<Engine>) {
    let service = GrpcInferenceServiceServer::new(Service { engine })
        .max_decoding_message_size(BODY_LIMIT)
        .max_encoding_message_size(BODY_LIMIT);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(incoming)
        .await
    {
        tracing::error!(error = %e, "the gRPC server stopped");
    }
}

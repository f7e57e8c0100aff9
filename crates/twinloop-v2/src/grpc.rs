//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`). Inputs arrive in
//! `raw_input_contents` (tritonclient's only form) or typed contents; outputs always go back in
//! `raw_output_contents`, which is what tritonclient reads.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Service as TowerService, http};
use tonic::server::NamedService;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Response, Status};
use twinloop_serving::engine::{Engine, ServeError};
use twinloop_serving::infer::InferRequest;
use twinloop_serving::runtime::TensorSpec;
use twinloop_serving::tensor::{Datatype, Tensor, TensorData, show_shape};

use crate::ProtocolError;
use crate::elements::{ElementCodec, element_count};
use crate::http::BODY_LIMIT;

/// The messages of `proto/inference.proto`, for callers of [`decode_infer_request`].
#[allow(clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::infer_parameter::ParameterChoice;
use proto::model_metadata_response::TensorMetadata;
use proto::*;

/// The gRPC status of each engine error, as http.rs gives each its HTTP status.
fn status(e: ServeError) -> Status {
    match e {
        ServeError::NotFound(m) => Status::not_found(m),
        ServeError::Invalid(m) => Status::invalid_argument(m),
        ServeError::Unavailable(m) => Status::unavailable(m),
        ServeError::Failed(m) => Status::internal(m),
        e @ ServeError::Internal(_) => Status::internal(e.to_string()),
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

/// Typed contents as tensor data, with the name of the field they were read from; the field
/// must match the datatype. Every vector here was decoded from the message, so converting it
/// costs no more than the message did.
fn typed(
    name: &str,
    datatype: Datatype,
    c: InferTensorContents,
) -> Result<(&'static str, TensorData), ProtocolError> {
    // The proto carries 8- and 16-bit integers widened to 32 bits.
    fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>>(
        name: &str,
        datatype: Datatype,
        ints: Vec<S>,
    ) -> Result<Vec<T>, ProtocolError> {
        ints.into_iter()
            .enumerate()
            .map(|(i, x)| {
                T::try_from(x).map_err(|_| {
                    ProtocolError(format!(
                        "input {name:?}: element {i} is {x}, not a valid {datatype} value"
                    ))
                })
            })
            .collect()
    }
    Ok(match datatype {
        Datatype::Bool => ("bool_contents", TensorData::Bool(c.bool_contents)),
        Datatype::Int32 => ("int_contents", TensorData::Int32(c.int_contents)),
        Datatype::Int64 => ("int64_contents", TensorData::Int64(c.int64_contents)),
        Datatype::Uint32 => ("uint_contents", TensorData::Uint32(c.uint_contents)),
        Datatype::Uint64 => ("uint64_contents", TensorData::Uint64(c.uint64_contents)),
        Datatype::Fp32 => ("fp32_contents", TensorData::Fp32(c.fp32_contents)),
        Datatype::Fp64 => ("fp64_contents", TensorData::Fp64(c.fp64_contents)),
        Datatype::Bytes => ("bytes_contents", TensorData::Bytes(c.bytes_contents)),
        Datatype::Int8 => (
            "int_contents",
            TensorData::Int8(narrow(name, datatype, c.int_contents)?),
        ),
        Datatype::Int16 => (
            "int_contents",
            TensorData::Int16(narrow(name, datatype, c.int_contents)?),
        ),
        Datatype::Uint8 => (
            "uint_contents",
            TensorData::Uint8(narrow(name, datatype, c.uint_contents)?),
        ),
        Datatype::Uint16 => (
            "uint_contents",
            TensorData::Uint16(narrow(name, datatype, c.uint_contents)?),
        ),
        Datatype::Fp16 => {
            return Err(ProtocolError(format!(
                "input {name:?}: FP16 travels only in raw_input_contents"
            )));
        }
    })
}
/// A gRPC infer request in the REST decoder's terms, held to the same checks: every shape is
/// counted against [`MAX_ELEMENTS`](twinloop_serving::tensor::MAX_ELEMENTS) and against the contents that came
/// with it.
pub fn decode_infer_request(request: ModelInferRequest) -> Result<InferRequest, ProtocolError> {
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
            .map_err(|e| ProtocolError(format!("input {:?}: {e}", input.name)))?;
        let count = element_count(&input.name, &input.shape)?;
        // An empty contents message beside raw contents carries nothing to disagree with.
        let contents = input
            .contents
            .filter(|c| *c != InferTensorContents::default());
        let data = match (raw.get(i), contents) {
            (Some(_), Some(_)) => {
                return Err(ProtocolError(format!(
                    "input {:?}: has both contents and raw_input_contents",
                    input.name
                )));
            }
            (Some(bytes), None) => TensorData::from_le_bytes(&input.name, datatype, count, bytes)?,
            (None, contents) => {
                let (field, data) = typed(&input.name, datatype, contents.unwrap_or_default())?;
                if data.len() != count {
                    return Err(ProtocolError(format!(
                        "input {:?}: shape {} needs {count} elements, {field} has {}",
                        input.name,
                        show_shape(&input.shape),
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
        outputs: request.outputs.into_iter().map(|o| o.name).collect(),
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
        let model = self
            .engine
            .model(&r.name, version(&r.version))
            .map_err(status)?;
        let endpoint = self
            .engine
            .get(&r.name)
            .ok_or_else(|| Status::not_found(r.name.clone()))?;
        let tensor = |s: &TensorSpec| TensorMetadata {
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
        let infer = decode_infer_request(r).map_err(invalid)?;
        let response = self
            .engine
            .infer(&name, version(&requested_version), infer)
            .await
            .map_err(status)?;
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

/// The service's name on the wire: its methods are called at `/{SERVICE}/{method}`.
pub const SERVICE: &str = proto::grpc_inference_service_server::SERVICE_NAME;

/// Every method of the service, as `proto/inference.proto` declares them.
pub const METHODS: [&str; 6] = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
];

/// The REST route (its method and `http.rs` pattern) that answers what the gRPC method answers,
/// so that whatever decides who may call a REST route decides its gRPC twin the same way.
pub fn rest_twin(method: &str) -> Option<(http::Method, &'static str)> {
    Some(match method {
        "ServerLive" => (http::Method::GET, "/v2/health/live"),
        "ServerReady" => (http::Method::GET, "/v2/health/ready"),
        "ModelReady" => (http::Method::GET, "/v2/models/{name}/ready"),
        "ServerMetadata" => (http::Method::GET, "/v2"),
        "ModelMetadata" => (http::Method::GET, "/v2/models/{name}"),
        "ModelInfer" => (http::Method::POST, "/v2/models/{name}/infer"),
        _ => return None,
    })
}

/// A call as a [`Gate`] sees it, before its message is read.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `/inference.GRPCInferenceService/ModelInfer`, or whatever path the client called.
    pub path: &'a str,
    /// The `authorization` metadata (tritonclient sends its `headers` as metadata).
    pub authorization: Option<&'a str>,
    pub peer: Option<IpAddr>,
}

/// Why a gate turned a call away; answered as the gRPC status of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    PermissionDenied(String),
    /// The gate could not decide (its store failed).
    Internal(String),
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        match refusal {
            Refusal::Unauthenticated(m) => Status::unauthenticated(m),
            Refusal::PermissionDenied(m) => Status::permission_denied(m),
            Refusal::Internal(m) => Status::internal(m),
        }
    }
}

/// Decides whether a call may go on (the server's credentials and rules, under `--auth`).
#[tonic::async_trait]
pub trait Gate: Send + Sync {
    async fn admit(&self, call: Call<'_>) -> Result<(), Refusal>;
}

/// A service whose every call passes its gate first: a refused one is answered with the
/// refusal's status and its message is never read.
#[derive(Clone)]
struct Gated<S> {
    inner: S,
    gate: Arc<dyn Gate>,
}

impl<S: NamedService> NamedService for Gated<S> {
    const NAME: &'static str = S::NAME;
}

type Body = tonic::body::Body;

impl<S> TowerService<http::Request<Body>> for Gated<S>
where
    S: TowerService<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone made ready by `poll_ready` serves this call; a fresh one waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let gate = self.gate.clone();
        // Owned copies: the request's body is not `Sync`, so no borrow of it may cross an await.
        let path = request.uri().path().to_owned();
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        Box::pin(async move {
            let call = Call {
                path: &path,
                authorization: authorization.as_deref(),
                peer,
            };
            if let Err(refusal) = gate.admit(call).await {
                return Ok(Status::from(refusal).into_http());
            }
            inner.call(request).await
        })
    }
}

/// How often the server pings an HTTP/2 connection's peer, and how long it waits for the answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The methods a full port still answers: probes must, or an orchestrator would restart a
/// server that is merely busy (as `/v2/health` over REST).
const ALWAYS_ANSWERED: [&str; 3] = ["ServerLive", "ServerReady", "ModelReady"];

/// How the gRPC port bounds its clients.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Calls running at once over all of the port's connections, [`ALWAYS_ANSWERED`] aside;
    /// one more is refused with `RESOURCE_EXHAUSTED` at once.
    pub max_concurrent_calls: usize,
    /// How long a new connection may take to send HTTP/2's preface.
    pub preface_timeout: Duration,
}

/// A service whose calls take a permit of one semaphore shared by every connection: per
/// connection bounds (tonic's) would let a client open more connections. A call that finds none
/// is refused at once, never queued, which is what tritonclient's and gRPC's retry policies
/// expect of a busy server.
#[derive(Clone)]
struct Bounded<S> {
    inner: S,
    calls: Arc<Semaphore>,
}

impl<S: NamedService> NamedService for Bounded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> TowerService<http::Request<Body>> for Bounded<S>
where
    S: TowerService<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let method = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(SERVICE))
            .and_then(|p| p.strip_prefix('/'));
        if method.is_some_and(|m| ALWAYS_ANSWERED.contains(&m)) {
            return Box::pin(inner.call(request));
        }
        let Ok(permit) = self.calls.clone().try_acquire_owned() else {
            tracing::debug!("a gRPC call refused: the port's bound is full");
            let refusal = Status::resource_exhausted("Too many concurrent requests; retry shortly");
            return Box::pin(std::future::ready(Ok(refusal.into_http())));
        };
        // A unary answer is whole once its future resolves, so the permit goes with it.
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            response
        })
    }
}

/// HTTP/2's connection preface, which every client sends first.
const PREFACE_LEN: usize = 24;

/// An accepted connection whose preface was read to time it, handed back to the reader first.
struct Prefaced {
    preface: [u8; PREFACE_LEN],
    given: usize,
    tcp: TcpStream,
}

impl AsyncRead for Prefaced {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.given < PREFACE_LEN {
            let n = buf.remaining().min(PREFACE_LEN - this.given);
            buf.put_slice(&this.preface[this.given..this.given + n]);
            this.given += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefaced {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl Connected for Prefaced {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

/// The connections of `listener` that sent their first 24 bytes within `preface_timeout`, for
/// tonic, which has no handshake timer: hyper would wait for a silent client's preface forever.
/// Each new connection waits in a task of its own, so one slow client never holds up the
/// accepting; the accepting stops once tonic drops the stream.
fn prefaced(
    listener: TcpListener,
    preface_timeout: Duration,
) -> ReceiverStream<Result<Prefaced, Infallible>> {
    let (ready, incoming) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before accept: the
                        // listener itself is fine, so wait a little rather than spin or stop.
                        tracing::warn!("accepting a gRPC connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = ready.closed() => break,
            };
            // Small answers must not wait for the peer's delayed ACK (Nagle).
            let _ = tcp.set_nodelay(true);
            let ready = ready.clone();
            tokio::spawn(async move {
                let mut tcp = tcp;
                let mut preface = [0; PREFACE_LEN];
                // Too slow, or closed first: dropping the stream closes the connection.
                if let Ok(Ok(_)) =
                    tokio::time::timeout(preface_timeout, tcp.read_exact(&mut preface)).await
                {
                    let _ = ready
                        .send(Ok(Prefaced {
                            preface,
                            given: 0,
                            tcp,
                        }))
                        .await;
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}

/// Serves the gRPC service on `listener` until `shutdown` resolves; requests in flight then
/// finish before it returns, so their answers reach the prediction log before it closes. With a
/// `gate`, every call passes it before anything else happens, and past `bounds`.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    gate: Option<Arc<dyn Gate>>,
    bounds: Bounds,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let service = GrpcInferenceServiceServer::new(Service { engine })
        .max_decoding_message_size(BODY_LIMIT)
        .max_encoding_message_size(BODY_LIMIT);
    let calls = Arc::new(Semaphore::new(bounds.max_concurrent_calls.max(1)));
    // A peer that stops answering HTTP/2 pings (a dead client, or a slow one that never
    // finishes its frames) is dropped after a minute instead of holding its streams forever.
    let mut server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    // The bound outside the gate, as over REST: a flood of bad credentials is bounded too.
    let router = match gate {
        Some(gate) => server.add_service(Bounded {
            inner: Gated {
                inner: service,
                gate,
            },
            calls,
        }),
        None => server.add_service(Bounded {
            inner: service,
            calls,
        }),
    };
    let incoming = prefaced(listener, bounds.preface_timeout);
    if let Err(e) = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
    {
        tracing::error!(error = %e, "the gRPC server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_infer_request::InferInputTensor;

    fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            parameters: HashMap::new(),
            contents: None,
        }
    }

    fn raw_error(input: InferInputTensor, raw: Vec<u8>) -> String {
        decode_infer_request(ModelInferRequest {
            inputs: vec![input],
            raw_input_contents: vec![raw],
            ..Default::default()
        })
        .unwrap_err()
        .0
    }

    fn typed_error(mut input: InferInputTensor, contents: InferTensorContents) -> String {
        input.contents = Some(contents);
        decode_infer_request(ModelInferRequest {
            inputs: vec![input],
            ..Default::default()
        })
        .unwrap_err()
        .0
    }

    #[test]
    fn every_method_of_the_proto_is_listed_with_a_rest_twin() {
        let declared: Vec<&str> = include_str!("../proto/inference.proto")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(str::trim)
            .collect();
        assert_eq!(declared, METHODS);
        assert_eq!(SERVICE, "inference.GRPCInferenceService");
        for method in METHODS {
            assert!(rest_twin(method).is_some(), "{method} has no REST twin");
        }
        assert_eq!(rest_twin("Reflect"), None);
    }

    #[test]
    fn raw_contents_must_hold_exactly_the_declared_shape() {
        let ok = decode_infer_request(ModelInferRequest {
            id: "r1".into(),
            inputs: vec![input("x", "FP32", &[1, 2])],
            raw_input_contents: vec![[1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.id.as_deref(), Some("r1"));
        assert_eq!(ok.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0]));

        let cases = [
            // The reported abort over gRPC, in both element kinds.
            (
                input("X", "FP32", &[1_000_000_000, 4]),
                vec![0; 16],
                "is too large",
            ),
            (
                input("S", "BYTES", &[1_000_000_000_000]),
                vec![0; 4],
                "is too large",
            ),
            (input("X", "FP32", &[-4]), vec![0; 16], "negative dimension"),
            (
                input("X", "FP32", &[i64::MAX, 2]),
                vec![0; 16],
                "is too large",
            ),
            (
                input("X", "FP32", &[2, 2]),
                vec![0; 15],
                "holds 15 bytes, but 4 FP32 elements need 16",
            ),
            (
                input("X", "FP32", &[2, 2]),
                vec![0; 17],
                "holds 17 bytes, but 4 FP32 elements need 16",
            ),
            (
                input("X", "FP32", &[0, 4]),
                vec![0; 4],
                "holds 4 bytes, but 0 FP32 elements need 0",
            ),
            (
                input("S", "BYTES", &[1]),
                [&u32::MAX.to_le_bytes()[..], b"ab"].concat(),
                "length prefix says 4294967295 bytes, 2 remain",
            ),
            (
                input("S", "BYTES", &[5]),
                vec![0; 16],
                "too few for 5 BYTES elements",
            ),
        ];
        for (input, raw, needle) in cases {
            let name = input.name.clone();
            let err = raw_error(input, raw);
            assert!(err.starts_with(&format!("input {name:?}: ")), "{err}");
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn raw_contents_must_match_the_inputs() {
        let err = decode_infer_request(ModelInferRequest {
            inputs: vec![input("a", "FP32", &[1]), input("b", "FP32", &[1])],
            raw_input_contents: vec![vec![0; 4]],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.0, "2 inputs but 1 raw_input_contents");
        let mut both = input("x", "FP32", &[1]);
        both.contents = Some(InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        });
        assert_eq!(
            raw_error(both, vec![0; 4]),
            "input \"x\": has both contents and raw_input_contents"
        );
        let mut empty = input("x", "FP32", &[1]);
        empty.contents = Some(InferTensorContents::default());
        let ok = decode_infer_request(ModelInferRequest {
            inputs: vec![empty],
            raw_input_contents: vec![vec![0; 4]],
            ..Default::default()
        });
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn typed_contents_are_counted_in_the_datatype_s_field() {
        let fp32 = |n: usize| InferTensorContents {
            fp32_contents: vec![0.5; n],
            ..Default::default()
        };
        let err = typed_error(input("X", "FP32", &[1_000_000_000, 4]), fp32(4));
        assert!(err.contains("is too large"), "{err}");
        let err = typed_error(input("X", "FP32", &[2, 2]), fp32(3));
        assert_eq!(
            err,
            "input \"X\": shape [2, 2] needs 4 elements, fp32_contents has 3"
        );
        let err = typed_error(input("X", "FP32", &[0]), fp32(1));
        assert_eq!(
            err,
            "input \"X\": shape [0] needs 0 elements, fp32_contents has 1"
        );
        // Contents in another type's field are not the declared datatype's.
        let ints = InferTensorContents {
            int_contents: vec![1, 2],
            ..Default::default()
        };
        let err = typed_error(input("X", "FP32", &[2]), ints.clone());
        assert_eq!(
            err,
            "input \"X\": shape [2] needs 2 elements, fp32_contents has 0"
        );
        let err = typed_error(
            input("X", "INT8", &[2]),
            InferTensorContents {
                int_contents: vec![1, 300],
                ..Default::default()
            },
        );
        assert_eq!(err, "input \"X\": element 1 is 300, not a valid INT8 value");
        let err = typed_error(input("X", "FP16", &[2]), ints);
        assert!(
            err.contains("FP16 travels only in raw_input_contents"),
            "{err}"
        );
        let strings = InferTensorContents {
            bytes_contents: vec![b"a".to_vec()],
            ..Default::default()
        };
        let err = typed_error(input("S", "BYTES", &[1_000_000_000_000]), strings);
        assert!(err.contains("is too large"), "{err}");

        let narrow = decode_infer_request(ModelInferRequest {
            inputs: vec![InferInputTensor {
                contents: Some(InferTensorContents {
                    uint_contents: vec![0, 255],
                    ..Default::default()
                }),
                ..input("u", "UINT8", &[2])
            }],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(narrow.inputs[0].data, TensorData::Uint8(vec![0, 255]));
    }
}

//! The Open Inference Protocol over REST (KServe V2), as tritonclient and KServe clients speak it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use twinloop_serving::engine::{Engine, ServeError};
use twinloop_serving::runtime::TensorSpec;

use crate::{HEADER_LENGTH, ProtocolError, RestRequest, decode_request, encode_response};

/// Requests larger than this are refused with 413 before they are parsed: one byte per element
/// of the largest tensor serving accepts, the densest any encoding gets.
pub const BODY_LIMIT: usize = twinloop_serving::tensor::MAX_ELEMENTS;

pub struct HttpError(StatusCode, String);

impl From<ServeError> for HttpError {
    fn from(e: ServeError) -> Self {
        let status = match &e {
            ServeError::NotFound(_) => StatusCode::NOT_FOUND,
            ServeError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Failed(_) | ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError(status, e.to_string())
    }
}

impl From<ProtocolError> for HttpError {
    fn from(e: ProtocolError) -> Self {
        HttpError(StatusCode::BAD_REQUEST, e.0)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

type Result<T> = std::result::Result<T, HttpError>;

/// The V2 routes plus `/metrics`, over `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    twinloop_core::metrics::prometheus();
    Router::new()
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { axum::Json(json!({"live": true})) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(refuse_announced_oversize))
        .with_state(engine)
}

/// A body announced past [`BODY_LIMIT`] is refused before any of it is read: the body limit
/// alone would wait for the client to send the bytes it announced.
async fn refuse_announced_oversize(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > BODY_LIMIT as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}

fn too_large() -> HttpError {
    HttpError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {} MiB", BODY_LIMIT >> 20),
    )
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        twinloop_core::metrics::prometheus().render(),
    )
}

async fn server_metadata() -> impl IntoResponse {
    axum::Json(json!({
        "name": "twinloop",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

async fn server_ready(State(engine): State<Arc<Engine>>) -> Response {
    let ready = engine.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(json!({"ready": ready}))).into_response()
}

/// V2 model metadata for `name` (and `version`).
pub fn metadata(
    engine: &Engine,
    name: &str,
    version: Option<&str>,
) -> std::result::Result<Value, ServeError> {
    let model = engine.model(name, version)?;
    let endpoint = engine
        .get(name)
        .ok_or_else(|| ServeError::NotFound(name.to_string()))?;
    let tensor =
        |s: &TensorSpec| json!({"name": s.name, "datatype": s.datatype.name(), "shape": s.shape});
    Ok(json!({
        "name": name,
        "versions": endpoint.routes.iter().map(|m| m.version.clone()).collect::<Vec<_>>(),
        "platform": "onnx_onnxv1",
        "inputs": model.onnx.inputs.iter().map(tensor).collect::<Vec<_>>(),
        "outputs": model.onnx.outputs.iter().map(tensor).collect::<Vec<_>>(),
    }))
}

async fn model_metadata(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse> {
    Ok(axum::Json(metadata(&engine, &name, None)?))
}

async fn model_metadata_version(
    State(engine): State<Arc<Engine>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    Ok(axum::Json(metadata(&engine, &name, Some(&version))?))
}

async fn model_ready(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse> {
    engine.model(&name, None)?;
    Ok(axum::Json(json!({"name": name, "ready": true})))
}

async fn model_ready_version(
    State(engine): State<Arc<Engine>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    engine.model(&name, Some(&version))?;
    Ok(axum::Json(json!({"name": name, "ready": true})))
}

/// The body, or the JSON error a client can read when it is too large or cut short.
fn body(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            HttpError(e.status(), format!("cannot read the request body: {e}"))
        }
    })
}

async fn infer(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    run(&engine, &name, None, &headers, &body(bytes)?).await
}

async fn infer_version(
    State(engine): State<Arc<Engine>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    run(&engine, &name, Some(&version), &headers, &body(bytes)?).await
}

async fn run(
    engine: &Engine,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let header_length = match headers.get(HEADER_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    HttpError(
                        StatusCode::BAD_REQUEST,
                        format!("{HEADER_LENGTH} must be a byte count"),
                    )
                })?,
        ),
        None => None,
    };
    let RestRequest { infer, binary } = decode_request(body, header_length)?;
    let response = engine.infer(name, version, infer).await?;
    let (bytes, json_length) = encode_response(&response, |n| binary.wants(n));
    let mut out = Response::new(axum::body::Body::from(bytes));
    let h = out.headers_mut();
    match json_length {
        Some(n) => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(HEADER_LENGTH, HeaderValue::from(n));
        }
        None => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(out)
}

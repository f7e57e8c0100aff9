//! The online feature server (`twinloop features serve`): Feast's HTTP routes over
//! [`OnlineService`], plus Prometheus metrics. Handlers only decode ([`feast`]'s shapes), call
//! the library and encode; errors are JSON `{"error", "code"}` with a 4xx status for anything
//! the client sent.

pub mod feast;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::json;
use twinloop_core::{Error, ErrorKind};
use twinloop_features::progress::Progress;
use twinloop_features::serving::OnlineService;
use twinloop_features::store::FeatureStore;
use twinloop_features::time::parse_timestamp;

pub struct FeatureServerState {
    pub service: OnlineService,
    pub features: FeatureStore,
}

struct FeatureError(Error);

impl IntoResponse for FeatureError {
    fn into_response(self) -> Response {
        let status = match self.0.kind {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = json!({"error": self.0.message, "code": crate::error::mlflow_code(self.0.kind)});
        (status, axum::Json(body)).into_response()
    }
}

impl From<Error> for FeatureError {
    fn from(e: Error) -> Self {
        FeatureError(e)
    }
}

/// Largest request body: pushes carry whole batches of rows.
const BODY_LIMIT: usize = 64 << 20;

fn decode<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, FeatureError> {
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorKind::TooLarge
        } else {
            ErrorKind::InvalidArgument
        };
        FeatureError(Error::new(
            code,
            format!(
                "cannot read the request body: {e} (limit {} MiB)",
                BODY_LIMIT >> 20
            ),
        ))
    })?;
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path == "?" || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at {path}: {inner}")
        };
        FeatureError(Error::invalid(message))
    })
}

fn observe(route: &'static str, started: Instant, ok: bool) {
    let status = if ok { "ok" } else { "error" };
    metrics::counter!("twinloop_features_requests_total", "route" => route, "status" => status)
        .increment(1);
    metrics::histogram!("twinloop_features_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
}

pub fn router(state: Arc<FeatureServerState>) -> Router {
    twinloop_core::metrics::prometheus();
    routes().with_state(state)
}

/// The feature server's routes, before state (the auth table's test enumerates them).
pub(crate) fn routes() -> Router<Arc<FeatureServerState>> {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/metrics", get(metrics_text))
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/materialize", post(materialize))
        .route("/materialize-incremental", post(materialize_incremental))
        .fallback(|uri: axum::http::Uri| async move {
            FeatureError(Error::not_found(format!("no endpoint at {}", uri.path())))
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        twinloop_core::metrics::prometheus().render(),
    )
}

async fn get_online_features(
    State(state): State<Arc<FeatureServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let request: feast::OnlineRequest = decode(body)?;
        let rows = request.rows();
        let query = request.into_query()?;
        let answer = state.service.get_online_features(&query).await?;
        metrics::counter!("twinloop_features_entity_rows_total").increment(rows as u64);
        Ok::<_, FeatureError>(feast::online_response(&query, &answer))
    }
    .await;
    observe("get-online-features", started, result.is_ok());
    match result {
        Ok(reply) => axum::Json(reply).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn push(
    State(state): State<Arc<FeatureServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let request: feast::PushRequest = decode(body)?;
        let outcome = state.service.push(&request.into_request()?).await?;
        metrics::counter!("twinloop_features_pushed_rows_total").increment(outcome.rows as u64);
        Ok::<_, FeatureError>(feast::push_response(&outcome))
    }
    .await;
    observe("push", started, result.is_ok());
    match result {
        Ok(reply) => axum::Json(reply).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn materialize(
    State(state): State<Arc<FeatureServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run_materialize(state, body, false).await
}

async fn materialize_incremental(
    State(state): State<Arc<FeatureServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run_materialize(state, body, true).await
}

async fn run_materialize(
    state: Arc<FeatureServerState>,
    body: Result<Bytes, BytesRejection>,
    incremental: bool,
) -> Response {
    let result = async {
        let request: feast::MaterializeRequest = decode(body)?;
        let end = parse_timestamp(&request.end_ts)?;
        let store = state.service.store().as_ref();
        let done = if incremental {
            state
                .features
                .materialize_incremental(store, end, &request.feature_views, &Progress::none())
                .await?
        } else {
            let start = request
                .start_ts
                .as_deref()
                .ok_or_else(|| Error::invalid("`start_ts` is required"))
                .and_then(parse_timestamp)?;
            state
                .features
                .materialize(store, start, end, &request.feature_views, &Progress::none())
                .await?
        };
        Ok::<_, FeatureError>(feast::materialize_response(&done))
    }
    .await;
    match result {
        Ok(reply) => axum::Json(reply).into_response(),
        Err(e) => e.into_response(),
    }
}

/// How the feature server treats its clients (`--header-read-timeout`,
/// `--max-concurrent-requests`).
pub struct Bounds {
    pub header_read_timeout: std::time::Duration,
    pub max_concurrent_requests: usize,
}

/// Serves the feature server on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<FeatureServerState>,
    auth: Option<Arc<crate::auth::Auth>>,
    bounds: Bounds,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `--auth`: the tracking server's rules table, which has the feature server's routes; a
    // route layer, so the guard sees the matched route.
    let app = match auth {
        Some(auth) => router(state).route_layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::guard,
        )),
        None => router(state),
    };
    // Outside auth, so a flood of bad credentials is bounded too.
    let limits =
        crate::limits::Limits::shared(bounds.max_concurrent_requests, crate::limits::Shape::Feast);
    let app = crate::limits::bounded(app, Arc::new(limits));
    crate::listen::serve(
        listener,
        app,
        bounds.header_read_timeout,
        crate::limits::Shape::Feast,
        shutdown,
    )
    .await
}

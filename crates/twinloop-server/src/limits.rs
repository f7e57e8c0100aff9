//! Bounded concurrency per route class (issue 15 part 6): a burst of expensive requests
//! (searches, artifact transfers, inference) takes at most its class's share of the server, and
//! a request that finds its class full is answered at once with 429 and `Retry-After` instead of
//! waiting in an unbounded queue. The stock MLflow client retries 429 with back-off, so a full
//! class slows a client down without failing it.
//!
//! A request holds its permit until its answer's body has been sent, so a download that streams
//! for a minute counts for that minute (a body already in memory frees it at once).
//!
//! `twinloop serve` and the feature server use the same guard with one bound shared by all
//! their routes ([`Limits::shared`]), each answering in its own protocol's error shape.

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::Semaphore;

/// How many requests of each class may run at once (`--max-concurrent-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    pub search: usize,
    pub artifacts: usize,
    pub infer: usize,
    pub other: usize,
}

impl Default for LimitConfig {
    /// Searches cost the database most per request, so they get the smallest share; transfers
    /// hold a connection and a file or S3 stream each; inference is batched behind its own
    /// queue, so it may have many waiting.
    fn default() -> Self {
        LimitConfig {
            search: 64,
            artifacts: 128,
            infer: 512,
            other: 1024,
        }
    }
}

/// The route classes, each with its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Search,
    Artifacts,
    Infer,
    Other,
}

impl Class {
    fn of(path: &str) -> Class {
        if path.starts_with("/v2/") {
            return if path.ends_with("/infer") || path.ends_with("/generate") {
                Class::Infer
            } else {
                Class::Other
            };
        }
        if path.contains("/mlflow-artifacts/")
            || path.ends_with("get-artifact")
            || path.ends_with("/artifacts/list")
            || path.ends_with("/upload-artifact")
        {
            return Class::Artifacts;
        }
        if path.ends_with("/search")
            || path.ends_with("/search-datasets")
            || path.ends_with("/graphql")
        {
            return Class::Search;
        }
        Class::Other
    }

    fn name(self) -> &'static str {
        match self {
            Class::Search => "search",
            Class::Artifacts => "artifact transfer",
            Class::Infer => "inference",
            Class::Other => "request",
        }
    }
}

/// The body of a refusal, in the error shape of the listener's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// MLflow's `{"error_code", "message"}` (`twinloop server`).
    Mlflow,
    /// The Open Inference Protocol's `{"error"}` (`twinloop serve`).
    OpenInference,
    /// The feature server's `{"error", "code"}`.
    Feast,
}

/// One semaphore per class.
#[derive(Debug)]
pub struct Limits {
    search: Arc<Semaphore>,
    artifacts: Arc<Semaphore>,
    infer: Arc<Semaphore>,
    other: Arc<Semaphore>,
    shape: Shape,
}

impl Limits {
    /// The tracking server's bounds, one per class, refused in MLflow's shape.
    pub fn new(config: LimitConfig) -> Limits {
        let bound = |n: usize| Arc::new(Semaphore::new(n.max(1)));
        Limits {
            search: bound(config.search),
            artifacts: bound(config.artifacts),
            infer: bound(config.infer),
            other: bound(config.other),
            shape: Shape::Mlflow,
        }
    }

    /// One bound for every route of a single-purpose listener (`twinloop serve`, the feature
    /// server): what it serves costs alike, so a class of its own would only let a burst of one
    /// route through past the bound.
    pub fn shared(requests: usize, shape: Shape) -> Limits {
        let one = Arc::new(Semaphore::new(requests.max(1)));
        Limits {
            search: one.clone(),
            artifacts: one.clone(),
            infer: one.clone(),
            other: one,
            shape,
        }
    }

    fn semaphore(&self, class: Class) -> &Arc<Semaphore> {
        match class {
            Class::Search => &self.search,
            Class::Artifacts => &self.artifacts,
            Class::Infer => &self.infer,
            Class::Other => &self.other,
        }
    }
}

/// `app` with every request through [`guard`].
pub fn bounded(app: axum::Router, limits: Arc<Limits>) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(limits, guard))
}

/// The middleware: a permit of the request's class, or 429 at once.
async fn guard(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    // Probes must answer even when every class is full, or an orchestrator would restart a
    // server that is merely busy; a scrape must too, or metrics would go blank exactly while
    // the server is overloaded.
    let path = req.uri().path();
    if matches!(path, "/health" | "/version" | "/metrics") || path.starts_with("/v2/health") {
        return next.run(req).await;
    }
    let class = Class::of(path);
    let Ok(permit) = limits.semaphore(class).clone().try_acquire_owned() else {
        tracing::debug!(class = class.name(), "a request refused: its class is full");
        return busy(class, limits.shape);
    };
    let response = next.run(req).await;
    // A body already in memory costs nothing more to send.
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut data = body.into_data_stream();
    let streamed = futures::stream::poll_fn(move |cx| {
        let _held = &permit;
        data.poll_next_unpin(cx)
    });
    Response::from_parts(parts, Body::from_stream(streamed))
}

/// The listener's error shape with the code MLflow gives a resource limit; `Retry-After` tells
/// clients other than MLflow's (which backs off by itself) when to come back.
fn busy(class: Class, shape: Shape) -> Response {
    let message = match class {
        Class::Other => "Too many concurrent requests; retry shortly".to_string(),
        _ => format!(
            "Too many concurrent {} requests; retry shortly",
            class.name()
        ),
    };
    let body = match shape {
        Shape::Mlflow => {
            serde_json::json!({"error_code": "RESOURCE_EXHAUSTED", "message": message})
        }
        Shape::OpenInference => serde_json::json!({"error": message}),
        Shape::Feast => serde_json::json!({"error": message, "code": "RESOURCE_EXHAUSTED"}),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_classes() {
        for (path, class) in [
            ("/api/2.0/mlflow/runs/search", Class::Search),
            ("/ajax-api/2.0/mlflow/experiments/search", Class::Search),
            ("/api/2.0/mlflow/model-versions/search", Class::Search),
            ("/graphql", Class::Search),
            (
                "/api/2.0/mlflow-artifacts/artifacts/a/b.txt",
                Class::Artifacts,
            ),
            ("/get-artifact", Class::Artifacts),
            ("/model-versions/get-artifact", Class::Artifacts),
            ("/api/2.0/mlflow/artifacts/list", Class::Artifacts),
            ("/ajax-api/2.0/mlflow/upload-artifact", Class::Artifacts),
            ("/v2/models/fraud/infer", Class::Infer),
            ("/v2/models/fraud/versions/1/infer", Class::Infer),
            ("/v2/models/fraud", Class::Other),
            ("/api/2.0/mlflow/runs/log-batch", Class::Other),
            ("/api/twinloop/v1/deployments", Class::Other),
        ] {
            assert_eq!(Class::of(path), class, "{path}");
        }
    }

    #[tokio::test]
    async fn a_full_class_answers_429_and_the_others_still_run() {
        let limits = Arc::new(Limits::new(LimitConfig {
            search: 1,
            ..LimitConfig::default()
        }));
        let held = limits.search.clone().try_acquire_owned().unwrap();
        let busy = limits.search.clone().try_acquire_owned();
        assert!(busy.is_err());
        assert!(limits.other.clone().try_acquire_owned().is_ok());
        drop(held);
        assert!(limits.search.clone().try_acquire_owned().is_ok());
        let response = super::busy(Class::Search, Shape::Mlflow);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn a_shared_bound_counts_every_class_once() {
        let limits = Limits::shared(2, Shape::OpenInference);
        let _infer = limits.infer.clone().try_acquire_owned().unwrap();
        let _other = limits.other.clone().try_acquire_owned().unwrap();
        for class in [Class::Search, Class::Artifacts, Class::Infer, Class::Other] {
            assert!(limits.semaphore(class).clone().try_acquire_owned().is_err());
        }
    }

    #[tokio::test]
    async fn each_shape_is_its_protocols_error() {
        for (shape, expected) in [
            (
                Shape::Mlflow,
                serde_json::json!({"error_code": "RESOURCE_EXHAUSTED", "message": "Too many concurrent inference requests; retry shortly"}),
            ),
            (
                Shape::OpenInference,
                serde_json::json!({"error": "Too many concurrent inference requests; retry shortly"}),
            ),
            (
                Shape::Feast,
                serde_json::json!({"error": "Too many concurrent inference requests; retry shortly", "code": "RESOURCE_EXHAUSTED"}),
            ),
        ] {
            let response = super::busy(Class::Infer, shape);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            let body = axum::body::to_bytes(response.into_body(), 1 << 10)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, expected, "{shape:?}");
        }
    }
}

//! The HTTP surface of twinloop: the only crate that knows wire shapes. Handlers decode a
//! request into domain types, call the library crates, and encode the answer; they hold no
//! logic of their own.
//!
//! Routes: the MLflow tracking and registry REST API (`/api/2.0/mlflow/…`, also under
//! `/ajax-api/…` as MLflow serves its UI), the MLflow artifact proxy
//! (`/api/2.0/mlflow-artifacts/…`), the UI's download routes (`/get-artifact`,
//! `/model-versions/get-artifact`), twinloop's own API (`/api/twinloop/v1/…`: lineage, registry
//! events), `/health`, `/version`, `/api/3.0/mlflow/server-info`, and the web UI (`/`,
//! `/experiments/…`, `/static/…`: `ui`, rendering with `twinloop-ui`).
//!
//! Cargo features (see Cargo.toml): `serving` adds deployments (`/v2`, native `/deployments`)
//! and production monitors; `feature-store` adds the feature server ([`features`]); feature
//! enrichment of serving ([`enrich`]) needs both.

mod artifacts;
pub mod auth;
mod breaker;
pub mod browser;
#[cfg(all(feature = "serving", feature = "feature-store"))]
pub mod enrich;
mod error;
mod extract;
#[cfg(feature = "feature-store")]
pub mod features;
pub mod limits;
pub mod listen;
mod mlflow;
mod native;
mod ui;
pub mod webhooks;
mod welcome;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use twinloop_artifacts::ArtifactStore;
use twinloop_meta::StoreHandle;

pub use error::ApiError;
#[doc(hidden)]
pub use mlflow::fuzz::decode_request_body as fuzz_mlflow_request_body;

/// The MLflow release whose client protocol this server speaks; `/version` reports it because
/// clients compare it against their own.
pub const MLFLOW_COMPAT_VERSION: &str = "3.17.2";

pub struct AppState {
    /// Tracking, the registry, lineage and webhooks: the handlers call it through the per-area
    /// traits' methods.
    pub store: StoreHandle,
    pub artifacts: ArtifactStore,
    /// Whether the `mlflow-artifacts` proxy answers; off (`--no-serve-artifacts`), clients read
    /// and write the experiments' artifact locations themselves.
    pub serve_artifacts: bool,
    /// Which locations clients may name (experiments' artifact locations, model version
    /// sources, deployments' and monitors' files): `--allowed-root`, `--allowed-scheme`.
    pub locations: twinloop_core::location::LocationPolicy,
    /// Where webhooks and alerts may be sent: public addresses and `--outbound-allow`.
    pub outbound: webhooks::Outbound,
    /// `--ui-read-only`: the web UI shows no form that changes anything and refuses its POSTs.
    pub ui_read_only: bool,
    /// Users, grants and tokens (`--auth`); `None`: every route is open, as without MLflow's
    /// basic-auth app.
    pub auth: Option<Arc<auth::Auth>>,
    /// `--allowed-hosts` and `--cors-allowed-origins`.
    pub browser: Arc<browser::BrowserPolicy>,
    /// How long a client may take to send a request's head, and a kept-alive connection may sit
    /// idle between requests (`--header-read-timeout`).
    pub header_read_timeout: std::time::Duration,
    /// How many requests of each route class run at once (`--max-concurrent-*`).
    pub limits: Arc<limits::Limits>,
    /// Registered pipelines, their runs and triggers (`/pipelines`, `/runs`, `/triggers`).
    pub pipelines: twinloop_pipelines::schedule::Scheduler,
    #[cfg(feature = "serving")]
    pub serving: Serving,
}

/// The inference engine behind `/v2/…`, the deployments that feed it and the monitors that
/// watch them.
#[cfg(feature = "serving")]
#[derive(Clone)]
pub struct Serving {
    pub engine: Arc<twinloop_serving::engine::Engine>,
    pub deployments: Arc<twinloop_serving::deploy::DeploymentManager>,
    pub monitors: Arc<twinloop_watch::Monitors>,
}

/// What monitors ask of the deployments: their rollback action, and which version serves.
#[cfg(feature = "serving")]
pub struct MonitoredDeployments {
    pub manager: Arc<twinloop_serving::deploy::DeploymentManager>,
    pub engine: Arc<twinloop_serving::engine::Engine>,
}

#[cfg(feature = "serving")]
#[async_trait::async_trait]
impl twinloop_watch::Deployments for MonitoredDeployments {
    async fn rollback(&self, deployment: &str) -> Result<String, twinloop_watch::RollbackError> {
        self.manager
            .rollback(deployment)
            .await
            .map(|_| format!("deployment {deployment:?} rolled back"))
            .map_err(twinloop_watch::RollbackError::from)
    }

    fn serving(&self, deployment: &str) -> Option<(String, String)> {
        let model = self.engine.model(deployment, None).ok()?;
        Some((model.name.clone(), model.version.clone()))
    }
}

/// The routes of the server's own routers, before state: what [`router`] serves, and what the
/// auth table's test enumerates.
fn routes(serve_artifacts: bool) -> Router<Arc<AppState>> {
    let proxy = |prefix| {
        if serve_artifacts {
            artifacts::routes()
        } else {
            artifacts::disabled_routes(prefix)
        }
    };
    Router::new()
        .merge(ui::routes())
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_COMPAT_VERSION }))
        .route("/api/3.0/mlflow/server-info", get(mlflow::server_info))
        // MLflow's UI downloads through these two, outside the API prefixes.
        .route("/get-artifact", get(mlflow::artifact_reads::get_run_file))
        .route(
            "/model-versions/get-artifact",
            get(mlflow::artifact_reads::get_model_version_file),
        )
        .nest(
            "/api/2.0/mlflow",
            mlflow::routes().merge(auth::users::v2_routes()),
        )
        .nest(
            "/ajax-api/2.0/mlflow",
            mlflow::ajax_routes().merge(auth::users::v2_routes()),
        )
        .nest("/api/3.0/mlflow", auth::users::v3_routes())
        .nest("/ajax-api/3.0/mlflow", auth::users::v3_routes())
        .nest(
            "/api/2.0/mlflow-artifacts",
            proxy("/api/2.0/mlflow-artifacts"),
        )
        .nest(
            "/ajax-api/2.0/mlflow-artifacts",
            proxy("/ajax-api/2.0/mlflow-artifacts"),
        )
        .nest("/api/twinloop/v1", native::routes())
}

pub fn router(state: Arc<AppState>) -> Router {
    let router = routes(state.serve_artifacts)
        .fallback(welcome::not_found)
        .with_state(state.clone());
    #[cfg(feature = "serving")]
    let router = router.merge(twinloop_v2::http::router(state.serving.engine.clone()));
    // After every merge, so no router escapes it; a route layer, so it sees the matched route.
    let router = match &state.auth {
        Some(auth) => router.route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::guard,
        )),
        None => router,
    };
    // After the merge, so /v2 requests get a span too.
    let app = router.layer(TraceLayer::new_for_http());
    // GraphQL answers each root field by sending the REST request it names through the app as
    // built up to here, so every layer and rule of that route applies as to a direct request: a
    // layer added after this line would not guard GraphQL's reads.
    let inner = app.clone();
    let app = app.route(
        "/graphql",
        axum::routing::post(move |headers, body| {
            mlflow::graphql::handle(inner.clone(), headers, body)
        }),
    );
    // Outside GraphQL too: one GraphQL request is one request that needs the store.
    let app = breaker::guarded(app, breaker::Breaker::for_store(state.store.clone()));
    // Outside GraphQL, so a GraphQL request is one search, not one per field it asks.
    let app = limits::bounded(app, state.limits.clone());
    // Outermost: a foreign Host or origin is refused before anything else looks at the request,
    // and GraphQL's own sub-requests (which carry no Host) are not checked twice.
    app.layer(axum::middleware::from_fn_with_state(
        state.browser.clone(),
        browser::guard,
    ))
}

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests finish.
/// Also delivers registry events to webhooks while it runs, and then gives delivery up.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let delivery = webhooks::spawn(state.store.clone(), state.outbound.clone()).await;
    let header_read_timeout = state.header_read_timeout;
    let served = listen::serve(
        listener,
        router(state),
        header_read_timeout,
        limits::Shape::Mlflow,
        shutdown,
    )
    .await;
    // After the last request's events, so that they are delivered here or by the next holder.
    delivery.stop().await;
    served
}

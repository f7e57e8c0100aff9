//! twinloop's own JSON API (`/api/twinloop/v1/…`) for what the MLflow protocol does not cover:
//! deployments, monitors, the lineage graph, the registry's event stream and its webhooks.
//! Bodies are `twinloop_api`'s types, shared with the CLI; handlers map them to and from the
//! domain crates' types. Documented in `openapi.json`, served at
//! `/api/twinloop/v1/openapi.json`. Errors use the same `{error_code, message}` shape.

#[cfg(feature = "serving")]
mod deployments;
mod events;
mod lineage;
#[cfg(feature = "serving")]
mod monitors;
mod pipelines;
mod run_columns;
mod series;
mod webhooks;

pub use events::event_json;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};

use crate::AppState;
use crate::extract::MAX_JSON_BODY;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<Arc<AppState>> {
    let router = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/registry/events", get(events::list))
        .route("/registry/events/stream", get(events::stream))
        .route(
            "/registry/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route("/registry/webhooks/{id}", delete(webhooks::delete))
        .route(
            "/registry/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route("/lineage/artifacts", post(lineage::put_artifact))
        .route("/lineage/executions", post(lineage::put_execution))
        .route("/lineage/contexts", post(lineage::put_context))
        .route("/lineage/events", post(lineage::put_event))
        .route("/lineage/memberships", post(lineage::put_membership))
        .route("/lineage/nodes/{*key}", get(lineage::get_node))
        .route("/lineage/graph", get(lineage::graph))
        .route("/experiments/{id}/keys", get(run_columns::keys))
        .route("/metrics/summaries", get(run_columns::summaries))
        .route(
            "/metrics/series",
            get(series::series).layer(crate::ui::compressed()),
        )
        .route("/pipelines", post(pipelines::apply).get(pipelines::list))
        .route("/pipelines/events", get(pipelines::events))
        .route("/pipelines/{name}", get(pipelines::get))
        .route("/pipelines/{name}/runs", post(pipelines::start_run))
        .route("/runs", get(pipelines::runs))
        .route("/runs/{id}", get(pipelines::get_run))
        .route("/runs/{id}/cancel", post(pipelines::cancel))
        .route("/triggers", get(pipelines::triggers))
        .route("/triggers/pause", post(pipelines::pause))
        .route("/triggers/resume", post(pipelines::resume))
        .merge(crate::auth::tokens::routes());
    #[cfg(feature = "serving")]
    let router = serving_routes(router);
    router.layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

/// Deployments and the monitors that watch them.
#[cfg(feature = "serving")]
fn serving_routes(router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    router
        .route(
            "/deployments",
            post(deployments::create).get(deployments::list),
        )
        .route(
            "/deployments/{name}",
            get(deployments::get).delete(deployments::delete),
        )
        .route("/deployments/{name}/traffic", post(deployments::traffic))
        .route("/deployments/{name}/canary", post(deployments::canary))
        .route("/deployments/{name}/promote", post(deployments::promote))
        .route("/deployments/{name}/rollback", post(deployments::rollback))
        .route("/monitors", post(monitors::create).get(monitors::list))
        .route("/monitors/events", get(monitors::events))
        .route(
            "/monitors/{name}",
            get(monitors::get).delete(monitors::delete),
        )
        .route("/monitors/{name}/alerts", get(monitors::alerts))
        .route("/labels", post(monitors::labels))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

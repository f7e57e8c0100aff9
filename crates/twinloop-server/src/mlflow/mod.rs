//! The MLflow tracking REST API. Each handler is a few lines: decode, call the store, encode.

pub(crate) mod artifact_reads;
mod bulk_history;
mod datasets;
mod experiments;
pub mod fuzz;
pub(crate) mod graphql;
mod history;
mod json;
mod logged_models;
mod registry;
mod runs;
mod webhooks;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};

use crate::AppState;
use crate::extract::MAX_JSON_BODY;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/experiments/create", post(experiments::create))
        .route("/experiments/get", get(experiments::get))
        .route("/experiments/get-by-name", get(experiments::get_by_name))
        .route(
            "/experiments/search",
            post(experiments::search_post).get(experiments::search_get),
        )
        .route("/experiments/update", post(experiments::update))
        .route("/experiments/delete", post(experiments::delete))
        .route("/experiments/restore", post(experiments::restore))
        .route("/experiments/search-datasets", post(datasets::search))
        .route(
            "/experiments/set-experiment-tag",
            post(experiments::set_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            post(experiments::delete_tag),
        )
        .route("/runs/create", post(runs::create))
        .route("/runs/get", get(runs::get))
        .route("/runs/update", post(runs::update))
        .route("/runs/delete", post(runs::delete))
        .route("/runs/restore", post(runs::restore))
        .route("/runs/search", post(runs::search))
        .route("/runs/log-metric", post(runs::log_metric))
        .route("/runs/log-parameter", post(runs::log_param))
        .route("/runs/log-batch", post(runs::log_batch))
        .route("/runs/set-tag", post(runs::set_tag))
        .route("/runs/delete-tag", post(runs::delete_tag))
        .route("/runs/log-inputs", post(runs::log_inputs))
        .route("/runs/outputs", post(runs::log_outputs))
        .route("/metrics/get-history", get(runs::metric_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(bulk_history::bulk_interval),
        )
        .route("/artifacts/list", get(artifact_reads::list_run))
        .route("/logged-models", post(logged_models::create))
        .route("/logged-models/search", post(logged_models::search))
        .route(
            "/logged-models/{model_id}",
            get(logged_models::get)
                .patch(logged_models::finalize)
                .delete(logged_models::delete),
        )
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(artifact_reads::list_logged_model),
        )
        .route(
            "/logged-models/{model_id}/artifacts/files",
            get(artifact_reads::get_logged_model_file),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(logged_models::log_params),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(logged_models::set_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{key}",
            delete(logged_models::delete_tag),
        )
        .route("/registered-models/create", post(registry::create_model))
        .route("/registered-models/get", get(registry::get_model))
        .route("/registered-models/rename", post(registry::rename_model))
        .route("/registered-models/update", patch(registry::update_model))
        .route("/registered-models/delete", delete(registry::delete_model))
        .route("/registered-models/set-tag", post(registry::set_model_tag))
        .route(
            "/registered-models/delete-tag",
            delete(registry::delete_model_tag),
        )
        .route("/registered-models/search", get(registry::search_models))
        .route(
            "/registered-models/get-latest-versions",
            post(registry::latest_versions_post).get(registry::latest_versions_get),
        )
        .route(
            "/registered-models/alias",
            post(registry::set_alias)
                .get(registry::get_by_alias)
                .delete(registry::delete_alias),
        )
        .route("/model-versions/create", post(registry::create_version))
        .route("/model-versions/get", get(registry::get_version))
        .route("/model-versions/update", patch(registry::update_version))
        .route("/model-versions/delete", delete(registry::delete_version))
        .route("/model-versions/set-tag", post(registry::set_version_tag))
        .route(
            "/model-versions/delete-tag",
            delete(registry::delete_version_tag),
        )
        .route("/model-versions/search", get(registry::search_versions))
        .route(
            "/model-versions/get-download-uri",
            get(registry::download_uri),
        )
        .route(
            "/model-versions/transition-stage",
            post(registry::transition_stage),
        )
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{webhook_id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{webhook_id}/test", post(webhooks::test))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

/// The routes as MLflow mounts them under `/ajax-api/2.0/mlflow`: those of [`routes`], and
/// `get-history-bulk` and `upload-artifact`, which MLflow serves to its UI only. The upload reads
/// its raw body under its own limit, MLflow's 10 MB.
pub fn ajax_routes() -> Router<Arc<AppState>> {
    routes()
        .route("/metrics/get-history-bulk", get(bulk_history::bulk))
        .route("/upload-artifact", post(artifact_reads::upload_run_file))
}

/// Tells the client which optional server features exist; twinloop offers none of the
/// multipart or workspace extensions, so the client uses plain proxied uploads.
pub async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
    }))
}

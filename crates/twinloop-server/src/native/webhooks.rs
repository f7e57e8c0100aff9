//! `/api/twinloop/v1/registry/webhooks`: subscriptions to the registry's events and their
//! delivery log, encoded as `twinloop_api::webhooks`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use twinloop_api::Empty;
use twinloop_api::webhooks as api;
use twinloop_core::registry::{NewWebhook, RegistryEventKind, Webhook, WebhookDelivery};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::wire::required_str;

type S = State<Arc<AppState>>;

/// A webhook as shown to callers: the secret is never echoed back.
fn webhook(w: &Webhook) -> api::Webhook {
    api::Webhook {
        created_time: w.created_time,
        events: w.events.iter().map(|k| k.as_str().to_string()).collect(),
        id: w.id,
        model_name: w.model_name.clone(),
        url: w.url.clone(),
    }
}

fn delivery(d: &WebhookDelivery) -> api::Delivery {
    api::Delivery {
        attempt: d.attempt,
        delivered: d.delivered,
        error: d.error.clone(),
        event_id: d.event_id,
        id: d.id,
        status_code: d.status_code,
        time: d.time,
        webhook_id: d.webhook_id,
    }
}

pub async fn create(
    State(s): S,
    JsonBody(req): JsonBody<api::NewWebhook>,
) -> ApiResult<Json<api::WebhookCreated>> {
    let events = req
        .events
        .iter()
        .map(|e| {
            RegistryEventKind::parse(e).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Unknown event kind {e:?}: expected MODEL_CREATED, MODEL_RENAMED, MODEL_DELETED, VERSION_CREATED, VERSION_DELETED, STAGE_CHANGED, ALIAS_SET or ALIAS_DELETED"
                ))
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let url = required_str(req.url, "url")?;
    s.outbound.check(&url).await?;
    let hook = s
        .store
        .create_webhook(NewWebhook {
            url,
            secret: required_str(req.secret, "secret")?,
            events,
            model_name: req.model_name.filter(|m| !m.is_empty()),
        })
        .await?;
    Ok(Json(api::WebhookCreated {
        webhook: webhook(&hook),
    }))
}

pub async fn list(State(s): S) -> ApiResult<Json<api::WebhookList>> {
    let hooks = s.store.list_webhooks().await?;
    Ok(Json(api::WebhookList {
        webhooks: hooks.iter().map(webhook).collect(),
    }))
}

pub async fn delete(State(s): S, Path(id): Path<i64>) -> ApiResult<Json<Empty>> {
    s.store.delete_webhook(id).await?;
    Ok(Json(Empty {}))
}

pub async fn deliveries(
    State(s): S,
    Path(id): Path<i64>,
    q: QueryParams,
) -> ApiResult<Json<api::DeliveryList>> {
    let limit = q.opt_i64("limit")?.unwrap_or(100);
    let log = s.store.list_deliveries(id, limit).await?;
    Ok(Json(api::DeliveryList {
        deliveries: log.iter().map(delivery).collect(),
    }))
}

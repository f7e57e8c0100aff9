use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_core::registry::{NewWebhook, RegistryEventKind, Webhook, WebhookDelivery};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::wire::required_str;

type S = State<Arc<AppState>>;

/// A webhook as shown to callers: the secret is never echoed back.
fn webhook_json(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": w.events.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "model_name": w.model_name,
        "created_time": w.created_time,
    })
}

fn delivery_json(d: &WebhookDelivery) -> Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "attempt": d.attempt,
        "status_code": d.status_code,
        "error": d.error,
        "delivered": d.delivered,
        "time": d.time,
    })
}

#[derive(Deserialize)]
pub struct Create {
    url: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    model_name: Option<String>,
}

pub async fn create(State(s): S, JsonBody(req): JsonBody<Create>) -> ApiResult<Json<Value>> {
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
    let hook = s
        .webhooks
        .create_webhook(NewWebhook {
            url: required_str(req.url, "url")?,
            secret: required_str(req.secret, "secret")?,
            events,
            model_name: req.model_name.filter(|m| !m.is_empty()),
        })
        .await?;
    Ok(Json(json!({"webhook": webhook_json(&hook)})))
}

pub async fn list(State(s): S) -> ApiResult<Json<Value>> {
    let hooks = s.webhooks.list_webhooks().await?;
    Ok(Json(
        json!({"webhooks": hooks.iter().map(webhook_json).collect::<Vec<_>>()}),
    ))
}

pub async fn delete(State(s): S, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    s.webhooks.delete_webhook(id).await?;
    Ok(Json(json!({})))
}

pub async fn deliveries(
    State(s): S,
    Path(id): Path<i64>,
    q: QueryParams,
) -> ApiResult<Json<Value>> {
    let limit = q.opt_i64("limit")?.unwrap_or(100);
    let log = s.webhooks.list_deliveries(id, limit).await?;
    Ok(Json(
        json!({"deliveries": log.iter().map(delivery_json).collect::<Vec<_>>()}),
    ))
}

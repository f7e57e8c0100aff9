//! MLflow 3's webhook API (`/webhooks`, `/webhooks/{id}`, `/webhooks/{id}/test`): subscriptions
//! kept by the `WebhookStore` beside twinloop's own, delivered by `crate::webhooks`. Secrets
//! are written, never read back.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use twinloop_core::registry::{
    MLFLOW_EVENTS, MlflowEvent, MlflowWebhook, MlflowWebhookUpdate, NewMlflowWebhook,
};

use super::json::{One, ToWire, listing, one};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, missing};
use crate::webhooks::{Reach, test_delivery};
use crate::wire::required_str;

type S = State<Arc<AppState>>;

/// An event as MLflow's JSON names it: `{"entity": "MODEL_VERSION", "action": "CREATED"}`.
#[derive(Deserialize)]
pub struct WireEvent {
    entity: Option<String>,
    action: Option<String>,
}

fn event_of(e: WireEvent) -> ApiResult<MlflowEvent> {
    let entity = e.entity.unwrap_or_default().to_ascii_lowercase();
    let action = e.action.unwrap_or_default().to_ascii_lowercase();
    MlflowEvent::parse(&format!("{entity}.{action}")).ok_or_else(|| {
        let valid: Vec<String> = MLFLOW_EVENTS
            .iter()
            .filter_map(|name| name.split_once('.'))
            .filter(|(en, _)| *en == entity)
            .map(|(_, a)| format!("'{a}'"))
            .collect();
        ApiError::invalid(format!(
            "Invalid action '{action}' for entity '{entity}'. Valid actions are: [{}]",
            valid.join(", ")
        ))
    })
}

fn events_of(events: Vec<WireEvent>) -> ApiResult<Vec<MlflowEvent>> {
    events.into_iter().map(event_of).collect()
}

fn active_of(status: &str) -> ApiResult<bool> {
    match status {
        "ACTIVE" => Ok(true),
        "DISABLED" => Ok(false),
        other => Err(ApiError::invalid(format!(
            "Invalid webhook status {other:?}: expected ACTIVE or DISABLED"
        ))),
    }
}

impl ToWire for MlflowWebhook {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|e| {
                json!({
                    "entity": e.entity().to_ascii_uppercase(),
                    "action": e.action().to_ascii_uppercase(),
                })
            })
            .collect();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("webhook_id", &self.webhook_id)?;
        map.serialize_entry("name", &self.name)?;
        if let Some(description) = self.description.as_ref().filter(|d| !d.is_empty()) {
            map.serialize_entry("description", description)?;
        }
        map.serialize_entry("url", &self.url)?;
        map.serialize_entry("events", &events)?;
        let status = if self.active { "ACTIVE" } else { "DISABLED" };
        map.serialize_entry("status", status)?;
        map.serialize_entry("creation_timestamp", &self.creation_timestamp)?;
        map.serialize_entry("last_updated_timestamp", &self.last_updated_timestamp)?;
        map.end()
    }
}

#[derive(Deserialize)]
pub struct CreateWebhook {
    name: Option<String>,
    url: Option<String>,
    events: Option<Vec<WireEvent>>,
    description: Option<String>,
    secret: Option<String>,
    status: Option<String>,
}

pub async fn create(
    State(s): S,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> ApiResult<Json<One<MlflowWebhook>>> {
    let name = required_str(req.name, "name")?;
    let url = required_str(req.url, "url")?;
    let events = events_of(
        req.events
            .filter(|e| !e.is_empty())
            .ok_or_else(|| missing("events"))?,
    )?;
    let active = req.status.as_deref().map_or(Ok(true), active_of)?;
    Reach::from_env(&s.outbound).check(&url).await?;
    let hook = s
        .store
        .create_mlflow_webhook(NewMlflowWebhook {
            name,
            url,
            events,
            description: req.description.filter(|d| !d.is_empty()),
            secret: req.secret.filter(|d| !d.is_empty()),
            active,
        })
        .await?;
    Ok(one("webhook", hook))
}

pub async fn list(
    State(s): S,
    q: QueryParams,
) -> ApiResult<Json<super::json::Listing<MlflowWebhook>>> {
    let max_results = q.opt_i64("max_results")?.filter(|n| *n != 0).unwrap_or(100);
    let page = s
        .store
        .list_mlflow_webhooks(max_results, q.get("page_token").filter(|t| !t.is_empty()))
        .await?;
    Ok(listing("webhooks", page))
}

pub async fn get(State(s): S, Path(id): Path<String>) -> ApiResult<Json<One<MlflowWebhook>>> {
    Ok(one("webhook", s.store.get_mlflow_webhook(&id).await?))
}

#[derive(Deserialize)]
pub struct UpdateWebhook {
    name: Option<String>,
    description: Option<String>,
    url: Option<String>,
    events: Option<Vec<WireEvent>>,
    secret: Option<String>,
    status: Option<String>,
}

/// As MLflow's handler reads the request: an empty name, URL or event list changes nothing,
/// while a description or secret that is present (even empty) replaces the stored one.
pub async fn update(
    State(s): S,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateWebhook>,
) -> ApiResult<Json<One<MlflowWebhook>>> {
    let url = req.url.filter(|u| !u.is_empty());
    let update = MlflowWebhookUpdate {
        name: req.name.filter(|n| !n.is_empty()),
        description: req.description,
        events: req
            .events
            .filter(|e| !e.is_empty())
            .map(events_of)
            .transpose()?,
        secret: req.secret,
        active: req.status.as_deref().map(active_of).transpose()?,
        url: url.clone(),
    };
    // The webhook must exist before its URL is judged, as MLflow reads it first.
    s.store.get_mlflow_webhook(&id).await?;
    if let Some(url) = &url {
        Reach::from_env(&s.outbound).check(url).await?;
    }
    Ok(one(
        "webhook",
        s.store.update_mlflow_webhook(&id, update).await?,
    ))
}

pub async fn delete(State(s): S, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    s.store.delete_mlflow_webhook(&id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct TestWebhook {
    event: Option<WireEvent>,
}

/// Sends the example payload of `event` (else the webhook's first event) once and reports what
/// came back; nothing is recorded.
pub async fn test(
    State(s): S,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<TestWebhook>,
) -> ApiResult<Json<Value>> {
    let event = req.event.map(event_of).transpose()?;
    let hook = s.store.get_mlflow_webhook(&id).await?;
    let result = test_delivery(&hook, event, &s.outbound).await;
    let mut answer = serde_json::Map::new();
    answer.insert("success".into(), result.success.into());
    if let Some(status) = result.response_status {
        answer.insert("response_status".into(), status.into());
    }
    if let Some(body) = result.response_body.filter(|b| !b.is_empty()) {
        answer.insert("response_body".into(), body.into());
    }
    if let Some(error) = result.error_message {
        answer.insert("error_message".into(), error.into());
    }
    Ok(Json(json!({ "result": answer })))
}

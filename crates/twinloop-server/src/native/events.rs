//! The registry's event log, as a page of JSON (poll) or a server-sent-events stream that a
//! serving process follows: first what was recorded after `after`, then each new event live.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use twinloop_core::registry::RegistryEvent;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::QueryParams;

pub fn event_json(e: &RegistryEvent) -> Value {
    json!({
        "id": e.id,
        "timestamp": e.timestamp,
        "actor": e.actor,
        "kind": e.kind.as_str(),
        "model_name": e.model_name,
        "version": e.version.map(|v| v.to_string()),
        "alias": e.alias,
        "before": e.before,
        "after": e.after,
    })
}

pub async fn list(State(s): State<Arc<AppState>>, q: QueryParams) -> ApiResult<Json<Value>> {
    let after = q.opt_i64("after")?.unwrap_or(0);
    let limit = q.opt_i64("limit")?.unwrap_or(1000);
    let events = s.registry.registry_events(after, limit).await?;
    Ok(Json(
        json!({"events": events.iter().map(event_json).collect::<Vec<_>>()}),
    ))
}

fn sse(e: &RegistryEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .id(e.id.to_string())
        .event(e.kind.as_str())
        .data(event_json(e).to_string()))
}

pub async fn stream(
    State(s): State<Arc<AppState>>,
    q: QueryParams,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = q.opt_i64("after")?.unwrap_or(0);
    // Subscribe before reading the backlog so nothing committed in between is missed; the
    // id check drops what both would deliver.
    let live = s.registry.subscribe_registry_events();
    let backlog = s.registry.registry_events(after, 10_000).await?;
    let last = backlog.last().map(|e| e.id).unwrap_or(after);
    let backlog = stream::iter(backlog.iter().map(sse).collect::<Vec<_>>());
    let live = stream::unfold(live, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((event, rx)),
                // A slow reader skips what it missed; it can catch up with ?after=.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |e| std::future::ready(e.id > last))
    .map(|e| sse(&e));
    Ok(
        Sse::new(backlog.chain(live))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
}

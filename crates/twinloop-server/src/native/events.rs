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
use tokio::sync::broadcast::error::RecvError;
use twinloop_api::events as api;
use twinloop_core::registry::RegistryEvent;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;

/// A registry event as the event page, the stream and webhook bodies carry it.
pub fn event(e: &RegistryEvent) -> api::RegistryEvent {
    api::RegistryEvent {
        actor: e.actor.clone(),
        after: e.after.clone(),
        alias: e.alias.clone(),
        before: e.before.clone(),
        id: e.id,
        kind: e.kind.as_str().to_string(),
        model_name: e.model_name.clone(),
        timestamp: e.timestamp,
        version: e.version.map(|v| v.to_string()),
    }
}

/// The bytes of an event for the stream and for webhook bodies (whose signature covers them).
pub fn event_json(e: &RegistryEvent) -> String {
    // A struct of strings and integers always serialises; the fallback is never taken.
    serde_json::to_string(&event(e)).unwrap_or_default()
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    q: QueryParams,
) -> ApiResult<Json<api::EventPage>> {
    let after = q.opt_i64("after")?.unwrap_or(0);
    let limit = q.opt_i64("limit")?.unwrap_or(1000);
    let events = s.store.registry_events(after, limit).await?;
    Ok(Json(api::EventPage {
        events: events.iter().map(event).collect(),
    }))
}

fn sse(e: &RegistryEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .id(e.id.to_string())
        .event(e.kind.as_str())
        .data(event_json(e)))
}

/// Event ids are the log's, the same on every replica, so a client reconnecting through another
/// replica resumes where it was: after `Last-Event-ID` (which a reconnecting `EventSource`
/// sends, and which wins) or `?after=`.
pub async fn stream(
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    q: QueryParams,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let resumed = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|id| id.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID is not an event id"))
        })
        .transpose()?;
    let after = match resumed {
        Some(id) => id,
        None => q.opt_i64("after")?.unwrap_or(0),
    };
    // Subscribe before reading the backlog so nothing committed in between is missed; the
    // id check drops what both would deliver.
    let live = s.store.subscribe_registry_events();
    let backlog = s.store.registry_events(after, 10_000).await?;
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

//! Every replica's view of the event log: committed registry events, whichever process wrote
//! them, handed to this process's subscribers once each.
//!
//! A process publishes its own events as it commits them ([`EventFeed::publish`]); a task tails
//! the table for the others' (and for any of its own it has not published yet), woken by
//! PostgreSQL's `NOTIFY` (a trigger on the table) and polling besides, so a lost notification or a
//! dropped listener only delays. Ids can become visible out of order on PostgreSQL: the tail reads
//! through an [`EventCursor`], so an event that commits late is still published, after later
//! ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, oneshot};
use twinloop_core::registry::RegistryEvent;

use super::events::read_events;
use crate::event_cursor::EventCursor;
use crate::sql::Backend;

/// How often the table is read when nothing wakes the tail.
const POLL: Duration = Duration::from_millis(500);
/// How long a published id is remembered, so that the tail and the committing writer, racing
/// for the same event, publish it once.
const REMEMBER: Duration = Duration::from_secs(120);
const PAGE: i64 = 1000;
const CHANNEL: &str = "twinloop_registry_events";

/// The broadcast of committed events and the ids already handed to it.
pub(crate) struct EventFeed {
    sender: broadcast::Sender<RegistryEvent>,
    published: Mutex<HashMap<i64, Instant>>,
}

impl EventFeed {
    pub(crate) fn new() -> Arc<EventFeed> {
        Arc::new(EventFeed {
            sender: broadcast::channel(1024).0,
            published: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.sender.subscribe()
    }

    /// Hands `event` to the subscribers unless it was already.
    pub(crate) fn publish(&self, event: RegistryEvent) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if published.insert(event.id, Instant::now()).is_none() {
            // Nobody listening is not an error.
            let _ = self.sender.send(event);
        }
    }

    fn forget_settled(&self, floor: i64) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published.retain(|id, at| *id > floor || at.elapsed() < REMEMBER);
    }
}

/// Starts tailing the event table after `floor`; the task ends when `stop`'s sender is dropped.
pub(crate) fn spawn(
    backend: Backend,
    reader: AnyPool,
    pg_url: Option<String>,
    feed: Arc<EventFeed>,
    floor: i64,
    mut stop: oneshot::Receiver<()>,
) {
    tokio::spawn(async move {
        let mut settled = EventCursor::new(floor);
        let mut listener: Option<PgListener> = None;
        loop {
            if reader.is_closed() {
                return;
            }
            if listener.is_none()
                && let Some(url) = &pg_url
            {
                listener = listen(url).await;
            }
            read_new(backend, &reader, &feed, &mut settled).await;
            let heard = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                ok = heard => if !ok { listener = None },
                () = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

async fn listen(url: &str) -> Option<PgListener> {
    let attempt = async {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match attempt.await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for registry events; polling");
            None
        }
    }
}

async fn read_new(backend: Backend, reader: &AnyPool, feed: &EventFeed, settled: &mut EventCursor) {
    let mut after = settled.floor();
    loop {
        let page = match read_events(backend, reader, after, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                // Tried again at the next poll, from the same floor: nothing is skipped.
                tracing::warn!(error = %e, "cannot read registry events");
                return;
            }
        };
        let full = page.len() as i64 == PAGE;
        for event in page {
            after = event.id;
            if settled.see(event.id) {
                feed.publish(event);
            }
        }
        if !full {
            break;
        }
    }
    settled.settle(Instant::now());
    feed.forget_settled(settled.floor());
    if settled.waiting() {
        tracing::debug!(
            floor = settled.floor(),
            "registry event ids missing; waiting"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_published_once_whoever_comes_first() {
        let feed = EventFeed::new();
        let mut rx = feed.subscribe();
        let event = RegistryEvent {
            id: 4,
            timestamp: 0,
            actor: "a".into(),
            kind: twinloop_core::registry::RegistryEventKind::AliasSet,
            model_name: "m".into(),
            version: Some(1),
            alias: Some("champion".into()),
            before: None,
            after: Some("1".into()),
            detail: Default::default(),
        };
        feed.publish(event.clone());
        feed.publish(event.clone());
        assert_eq!(rx.try_recv().unwrap(), event);
        assert!(rx.try_recv().is_err());
        feed.forget_settled(10);
        feed.publish(event);
        assert!(
            rx.try_recv().is_err(),
            "remembered for a while after it settled"
        );
    }
}

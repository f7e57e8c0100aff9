//! Every replica's view of the event log: committed registry events, whichever process wrote
//! them, handed to this process's subscribers once each.
//!
//! A process publishes its own events as it commits them ([`EventFeed::publish`]); a task tails
//! the table for the others' (and for any of its own it has not published yet), woken by
//! PostgreSQL's `NOTIFY` (a trigger on the table) and polling besides, so a lost notification or a
//! dropped listener only delays. On PostgreSQL ids are taken when a row is inserted, not when it
//! commits, so id 7 can become visible before id 6: the tail keeps a floor below which every id is
//! settled and remembers the ids above it it has seen; a missing id is waited for until
//! [`SETTLE`] has passed (a transaction that rolled back leaves a hole forever), and an event
//! that commits late is still published, after later ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, oneshot};
use twinloop_core::registry::RegistryEvent;

use super::events::read_events;
use crate::sql::Backend;

/// How long a missing id is waited for: longer than a registry write's transaction lasts.
const SETTLE: Duration = Duration::from_secs(30);
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

/// Which ids the tail has settled: all up to `floor`, and `seen` above it.
#[derive(Debug)]
pub(crate) struct Settled {
    floor: i64,
    seen: BTreeSet<i64>,
    missing: BTreeMap<i64, Instant>,
}

impl Settled {
    pub(crate) fn new(floor: i64) -> Settled {
        Settled {
            floor,
            seen: BTreeSet::new(),
            missing: BTreeMap::new(),
        }
    }

    /// Below this every id has been seen or given up on: the next read starts after it.
    pub(crate) fn floor(&self) -> i64 {
        self.floor
    }

    /// Records `id` as read; answers whether it is new.
    pub(crate) fn see(&mut self, id: i64) -> bool {
        if id <= self.floor {
            return false;
        }
        self.missing.remove(&id);
        self.seen.insert(id)
    }

    /// Notes the holes below the highest id seen, gives up on those older than `settle`, and
    /// raises the floor over everything settled.
    pub(crate) fn settle(&mut self, now: Instant, settle: Duration) {
        if let Some(&top) = self.seen.last() {
            for id in self.floor + 1..top {
                if !self.seen.contains(&id) {
                    self.missing.entry(id).or_insert(now);
                }
            }
        }
        loop {
            let next = self.floor + 1;
            if self.seen.remove(&next) {
                self.floor = next;
            } else if self
                .missing
                .get(&next)
                .is_some_and(|since| now.duration_since(*since) >= settle)
            {
                self.missing.remove(&next);
                self.floor = next;
            } else {
                return;
            }
        }
    }

    /// Whether an id is still awaited.
    pub(crate) fn waiting(&self) -> bool {
        !self.missing.is_empty()
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
        let mut settled = Settled::new(floor);
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

async fn read_new(backend: Backend, reader: &AnyPool, feed: &EventFeed, settled: &mut Settled) {
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
    settled.settle(Instant::now(), SETTLE);
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
    fn a_late_commit_is_still_seen_and_the_floor_waits_for_it() {
        let t0 = Instant::now();
        let mut s = Settled::new(5);
        assert!(s.see(6));
        assert!(s.see(8));
        s.settle(t0, SETTLE);
        assert_eq!(s.floor(), 6, "7 is missing: the floor stops below it");
        assert!(s.waiting());
        assert!(!s.see(8), "seen once");
        assert!(s.see(7), "7 committed late");
        s.settle(t0, SETTLE);
        assert_eq!(s.floor(), 8);
        assert!(!s.waiting());
        assert!(!s.see(7) && !s.see(3), "below the floor is old");
    }

    #[test]
    fn a_hole_left_by_a_rollback_is_given_up_after_the_settle_time() {
        let t0 = Instant::now();
        let mut s = Settled::new(0);
        s.see(1);
        s.see(3);
        s.settle(t0, SETTLE);
        assert_eq!(s.floor(), 1);
        s.settle(t0 + SETTLE / 2, SETTLE);
        assert_eq!(s.floor(), 1);
        s.settle(t0 + SETTLE, SETTLE);
        assert_eq!(s.floor(), 3);
        assert!(!s.waiting());
    }

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

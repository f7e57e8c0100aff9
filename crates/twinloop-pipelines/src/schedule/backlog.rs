//! The run events the scheduler broadcasts, numbered and kept in a bounded ring, so that a
//! reader that reconnects gets what it missed instead of a silent gap.
//!
//! Ids are `<epoch>-<seq>`: the epoch is the scheduler's start (its clock in milliseconds) and
//! the sequence grows by one per event. The epoch makes an id from an earlier server process
//! recognisably foreign, where a bare counter restarting at 1 would let a reconnecting reader
//! skip the new process's first events as "already seen".
//!
//! A publication and a reader's arrival take the same lock: the reader copies the ring and
//! subscribes to the live channel as one step, so every event reaches it exactly once, either
//! from the ring or live.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast::{self, error::RecvError};

use super::RunEvent;

/// How many events are kept for readers that reconnect.
pub const CAPACITY: usize = 1_024;

/// An event's id within the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub epoch: i64,
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event id {0:?} is not EPOCH-SEQ (the id of an event this stream sent)")]
pub struct BadEventId(pub String);

impl FromStr for EventId {
    type Err = BadEventId;

    fn from_str(text: &str) -> Result<EventId, BadEventId> {
        let bad = || BadEventId(text.to_owned());
        let (epoch, seq) = text.trim().split_once('-').ok_or_else(bad)?;
        Ok(EventId {
            epoch: epoch.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// A run event with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Numbered {
    pub id: EventId,
    pub event: RunEvent,
}

/// What a reader receives next.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Event(Numbered),
    /// Events after `after` are gone: older than the ring, or from another server process. The
    /// reader should re-read the runs' records; the events that follow are the oldest kept.
    Lost(Lost),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    /// The last event the reader had (as it named it).
    pub after: EventId,
    /// The oldest event still kept, which comes next; `None` when none is kept.
    pub oldest: Option<EventId>,
}

/// The numbered ring and the live channel; cheap to clone.
#[derive(Clone)]
pub struct Backlog {
    shared: Arc<Shared>,
}

struct Shared {
    epoch: i64,
    capacity: usize,
    /// Shared with the followers, who refill from it; the sender is not, so that readers see
    /// the channel close when the scheduler is gone.
    ring: Arc<Mutex<Ring>>,
    live: broadcast::Sender<Numbered>,
}

struct Ring {
    next: u64,
    kept: VecDeque<Numbered>,
}

impl Backlog {
    /// Keeps the newest `capacity` events (at least one) of the stream that starts at `epoch`.
    pub fn new(epoch: i64, capacity: usize) -> Backlog {
        let capacity = capacity.max(1);
        Backlog {
            shared: Arc::new(Shared {
                epoch,
                capacity,
                ring: Arc::new(Mutex::new(Ring {
                    next: 1,
                    kept: VecDeque::with_capacity(capacity),
                })),
                live: broadcast::channel(capacity).0,
            }),
        }
    }

    /// Numbers `event`, keeps it and sends it to the readers.
    pub fn publish(&self, event: RunEvent) -> EventId {
        let shared = &self.shared;
        let mut ring = lock(&shared.ring);
        let id = EventId {
            epoch: shared.epoch,
            seq: ring.next,
        };
        ring.next += 1;
        if ring.kept.len() == shared.capacity {
            ring.kept.pop_front();
        }
        let numbered = Numbered { id, event };
        ring.kept.push_back(numbered.clone());
        // Nobody listening is not an error.
        let _ = shared.live.send(numbered);
        id
    }

    /// A reader of the events after `after` (the kept ones first), or of the events from now on
    /// when `after` is `None`.
    pub fn follow(&self, after: Option<EventId>) -> Follower {
        let shared = &self.shared;
        let ring = lock(&shared.ring);
        let live = shared.live.subscribe();
        let newest = ring.next - 1;
        let mut follower = Follower {
            epoch: shared.epoch,
            ring: shared.ring.clone(),
            pending: VecDeque::new(),
            last: newest,
            live,
        };
        if let Some(after) = after {
            // An id this process has not sent yet cannot be from it: treated as foreign.
            let ours = after.epoch == shared.epoch && after.seq <= newest;
            let from = if ours { after.seq } else { 0 };
            follower.last = from;
            if !ours || ring.kept.front().is_some_and(|e| e.id.seq > from + 1) {
                follower.pending.push_back(Delivery::Lost(Lost {
                    after,
                    oldest: ring.kept.front().map(|e| e.id),
                }));
            }
            follower.queue_kept(&ring);
        }
        follower
    }
}

fn lock(ring: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    // No code that holds the lock can panic halfway through a change, so a poisoned ring is
    // still consistent.
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One reader's position in the stream.
pub struct Follower {
    epoch: i64,
    ring: Arc<Mutex<Ring>>,
    pending: VecDeque<Delivery>,
    /// The sequence number of the last event handed out (or skipped as already seen).
    last: u64,
    live: broadcast::Receiver<Numbered>,
}

impl Follower {
    /// The next delivery; `None` once the scheduler is gone. A reader too slow for the live
    /// channel is refilled from the ring, and told what the ring no longer has.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.pending.pop_front() {
                return Some(delivery);
            }
            match self.live.recv().await {
                Ok(numbered) if numbered.id.seq > self.last => {
                    self.last = numbered.id.seq;
                    return Some(Delivery::Event(numbered));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.catch_up(),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// After the live channel dropped events for this reader: the kept ones it has not had.
    fn catch_up(&mut self) {
        let ring = self.ring.clone();
        let ring = lock(&ring);
        if ring.kept.front().is_some_and(|e| e.id.seq > self.last + 1) {
            self.pending.push_back(Delivery::Lost(Lost {
                after: EventId {
                    epoch: self.epoch,
                    seq: self.last,
                },
                oldest: ring.kept.front().map(|e| e.id),
            }));
        }
        self.queue_kept(&ring);
    }

    /// Queues the kept events after `last`, and moves `last` past them (the live channel may
    /// bring them again; they are then skipped).
    fn queue_kept(&mut self, ring: &Ring) {
        for numbered in ring.kept.iter().filter(|e| e.id.seq > self.last) {
            self.pending.push_back(Delivery::Event(numbered.clone()));
        }
        if let Some(newest) = ring.kept.back() {
            self.last = self.last.max(newest.id.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::exec::Event;

    fn event(n: u32) -> RunEvent {
        RunEvent {
            run_id: format!("r{n}"),
            pipeline: "p".into(),
            at_ms: i64::from(n),
            event: Event::StepStarted {
                step: "a".into(),
                attempt: n,
            },
        }
    }

    fn id(seq: u64) -> EventId {
        EventId { epoch: 7, seq }
    }

    /// The deliveries already waiting, without blocking.
    fn ready(follower: &mut Follower) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(d) = follower.next().now_or_never().flatten() {
            out.push(d);
        }
        out
    }

    fn seqs(deliveries: &[Delivery]) -> Vec<u64> {
        deliveries
            .iter()
            .filter_map(|d| match d {
                Delivery::Event(e) => Some(e.id.seq),
                Delivery::Lost(_) => None,
            })
            .collect()
    }

    #[test]
    fn ids_print_and_parse_back() {
        assert_eq!(id(42).to_string(), "7-42");
        assert_eq!("7-42".parse::<EventId>(), Ok(id(42)));
        for bad in ["", "42", "7-", "-3", "a-1", "7-1-2", "7--1"] {
            assert_eq!(
                bad.parse::<EventId>(),
                Err(BadEventId(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_reader_after_an_id_gets_exactly_the_events_it_missed_then_live_ones() {
        let backlog = Backlog::new(7, 8);
        let first: Vec<EventId> = (1..=5).map(|n| backlog.publish(event(n))).collect();
        assert_eq!(first, (1..=5).map(id).collect::<Vec<_>>());

        let mut from_now = backlog.follow(None);
        let mut after_two = backlog.follow(Some(id(2)));
        let mut up_to_date = backlog.follow(Some(id(5)));
        assert!(ready(&mut from_now).is_empty());
        assert_eq!(seqs(&ready(&mut after_two)), [3, 4, 5]);
        assert!(ready(&mut up_to_date).is_empty());

        backlog.publish(event(6));
        for follower in [&mut from_now, &mut after_two, &mut up_to_date] {
            let got = ready(follower);
            assert_eq!(seqs(&got), [6]);
            let Delivery::Event(e) = &got[0] else {
                panic!("{got:?}")
            };
            assert_eq!(e.event, event(6));
        }
    }

    #[test]
    fn an_id_older_than_the_ring_or_from_another_process_is_told_lost_then_gets_the_ring() {
        let backlog = Backlog::new(7, 3);
        for n in 1..=6 {
            backlog.publish(event(n));
        }
        // Kept: 4, 5, 6. After 3 nothing is lost; after 2, event 3 is.
        assert_eq!(seqs(&ready(&mut backlog.follow(Some(id(3))))), [4, 5, 6]);
        let lost = ready(&mut backlog.follow(Some(id(2))));
        assert_eq!(
            lost[0],
            Delivery::Lost(Lost {
                after: id(2),
                oldest: Some(id(4))
            })
        );
        assert_eq!(seqs(&lost), [4, 5, 6]);
        // Another process's id, or one this process has not reached: everything kept, after
        // the notice.
        for foreign in [EventId { epoch: 6, seq: 5 }, id(99)] {
            let got = ready(&mut backlog.follow(Some(foreign)));
            assert!(
                matches!(&got[0], Delivery::Lost(l) if l.after == foreign),
                "{got:?}"
            );
            assert_eq!(seqs(&got), [4, 5, 6]);
        }
        // Nothing kept yet: a foreign id is still told, with no oldest.
        let empty = Backlog::new(8, 3);
        assert_eq!(
            ready(&mut empty.follow(Some(id(1)))),
            [Delivery::Lost(Lost {
                after: id(1),
                oldest: None
            })]
        );
    }

    #[test]
    fn a_reader_slower_than_the_live_channel_is_refilled_from_the_ring() {
        let backlog = Backlog::new(7, 4);
        let mut slow = backlog.follow(None);
        // The live channel holds 4: publishing 6 unread makes it lag by 2, and the ring has 3-6.
        for n in 1..=6 {
            backlog.publish(event(n));
        }
        let got = ready(&mut slow);
        assert_eq!(
            got[0],
            Delivery::Lost(Lost {
                after: id(0),
                oldest: Some(id(3))
            })
        );
        assert_eq!(seqs(&got), [3, 4, 5, 6], "each event once: {got:?}");
        backlog.publish(event(7));
        assert_eq!(seqs(&ready(&mut slow)), [7]);
    }

    #[tokio::test]
    async fn a_reader_ends_when_the_scheduler_is_gone() {
        let backlog = Backlog::new(7, 4);
        let mut follower = backlog.follow(None);
        drop(backlog);
        assert_eq!(follower.next().await, None);
    }
}

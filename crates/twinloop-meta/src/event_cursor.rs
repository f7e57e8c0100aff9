//! [`EventCursor`]: reading the registry's event log in id order when ids can become visible out
//! of order. On PostgreSQL an id is taken when a row is inserted, not when it commits, so id 7
//! can be read before id 6 commits; a reader that only remembered "the last id read" would skip
//! 6 for ever. The cursor keeps a floor below which every id is settled and the ids above it it
//! has seen; a missing id is awaited until [`SETTLE`] has passed (a transaction that rolled back
//! leaves a hole for ever), and one that commits late is still reported, after later ones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a missing id is awaited: longer than a registry write's transaction lasts.
pub const SETTLE: Duration = Duration::from_secs(30);

/// How far a reader of the event log has got: every id up to `floor` is settled (seen, or
/// given up on), and `seen` holds those above it already read.
#[derive(Debug)]
pub struct EventCursor {
    floor: i64,
    seen: BTreeSet<i64>,
    missing: BTreeMap<i64, Instant>,
}

impl EventCursor {
    pub fn new(floor: i64) -> EventCursor {
        EventCursor {
            floor,
            seen: BTreeSet::new(),
            missing: BTreeMap::new(),
        }
    }

    /// Below this every id has been seen or given up on: the next read starts after it.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// Records `id` as read; answers whether it is new.
    pub fn see(&mut self, id: i64) -> bool {
        if id <= self.floor {
            return false;
        }
        self.missing.remove(&id);
        self.seen.insert(id)
    }

    /// Notes the holes below the highest id seen, gives up on those older than [`SETTLE`], and
    /// raises the floor over everything settled.
    pub fn settle(&mut self, now: Instant) {
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
                .is_some_and(|since| now.duration_since(*since) >= SETTLE)
            {
                self.missing.remove(&next);
                self.floor = next;
            } else {
                return;
            }
        }
    }

    /// Whether an id is still awaited.
    pub fn waiting(&self) -> bool {
        !self.missing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_commit_is_still_seen_and_the_floor_waits_for_it() {
        let t0 = Instant::now();
        let mut s = EventCursor::new(5);
        assert!(s.see(6));
        assert!(s.see(8));
        s.settle(t0);
        assert_eq!(s.floor(), 6, "7 is missing: the floor stops below it");
        assert!(s.waiting());
        assert!(!s.see(8), "seen once");
        assert!(s.see(7), "7 committed late");
        s.settle(t0);
        assert_eq!(s.floor(), 8);
        assert!(!s.waiting());
        assert!(!s.see(7) && !s.see(3), "below the floor is old");
    }

    #[test]
    fn a_hole_left_by_a_rollback_is_given_up_after_the_settle_time() {
        let t0 = Instant::now();
        let mut s = EventCursor::new(0);
        s.see(1);
        s.see(3);
        s.settle(t0);
        assert_eq!(s.floor(), 1);
        s.settle(t0 + SETTLE / 2);
        assert_eq!(s.floor(), 1);
        s.settle(t0 + SETTLE);
        assert_eq!(s.floor(), 3);
        assert!(!s.waiting());
    }
}

//! Where trigger events come from: schedule ticks, monitor events and registry events, each read
//! from a cursor the trigger keeps in the store. A new trigger's cursor starts at "now" (the
//! newest event, the current time), so applying a pipeline never replays history.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use twinloop_core::registry::RegistryEvent;
use twinloop_core::time::now_ms;
use twinloop_meta::event_cursor::EventCursor;
use twinloop_meta::pipelines::TriggerEvent;

use super::data::Snapshot;
use super::{Fire, Inner, Result, ScheduleError, State};
use crate::expr::{Ref, Scope};
use crate::spec::{DataTrigger, MonitorTrigger, Pipeline, RegistryTrigger, Schedule, Trigger};
use crate::state::TriggerContext;

/// Events read per source per poll.
const BATCH: i64 = 500;

/// A tick older than this when first seen was missed (the server was down), not merely late.
const LATE_MS: i64 = 2_000;

/// The cursor of a trigger: its position and what it is, so that a changed trigger at the same
/// position starts afresh.
fn cursor_name(index: usize, trigger: &Trigger) -> String {
    format!("{index}:{}", trigger.describe())
}

/// The flag that pauses a trigger, beside its cursor.
fn paused_name(index: usize, trigger: &Trigger) -> String {
    format!("paused:{}", cursor_name(index, trigger))
}

impl Inner {
    /// Whether the trigger at `index` of `pipeline` is paused.
    pub(super) async fn is_paused(
        &self,
        pipeline: &str,
        index: usize,
        trigger: &Trigger,
    ) -> Result<bool> {
        let flag = self
            .store
            .pipeline_cursor(pipeline, &paused_name(index, trigger))
            .await?;
        Ok(flag.as_deref() == Some("true"))
    }

    pub(super) async fn set_paused(
        &self,
        pipeline: &str,
        index: usize,
        trigger: &Trigger,
        paused: bool,
    ) -> Result<()> {
        let value = if paused { "true" } else { "false" };
        Ok(self
            .store
            .set_pipeline_cursor(pipeline, &paused_name(index, trigger), value)
            .await?)
    }

    /// Gives every trigger of `pipeline` that has no cursor one at the present.
    pub(super) async fn init_cursors(&self, pipeline: &Pipeline, repo: &str) -> Result<()> {
        for (index, trigger) in pipeline.triggers.iter().enumerate() {
            let name = cursor_name(index, trigger);
            if self
                .store
                .pipeline_cursor(&pipeline.name, &name)
                .await?
                .is_some()
            {
                continue;
            }
            let start = match trigger {
                Trigger::Schedule(_) => now_ms(),
                Trigger::Monitor(_) => self.newest_monitor_event().await?,
                Trigger::Registry(_) => self.newest_registry_event().await?,
                Trigger::Data(d) => {
                    let snapshot = read_snapshot(watched(repo, &d.path)).await?;
                    self.store
                        .set_pipeline_cursor(&pipeline.name, &name, &snapshot.to_cursor())
                        .await?;
                    continue;
                }
                Trigger::Pipeline(_) => continue,
            };
            self.store
                .set_pipeline_cursor(&pipeline.name, &name, &start.to_string())
                .await?;
        }
        Ok(())
    }

    async fn newest_monitor_event(&self) -> Result<i64> {
        let mut after = 0;
        loop {
            let page = self.store.monitor_events(None, after, 10_000).await?;
            match page.last() {
                Some(last) => after = last.id,
                None => return Ok(after),
            }
        }
    }

    async fn newest_registry_event(&self) -> Result<i64> {
        let mut after = 0;
        loop {
            let page = self.store.registry_events(after, 10_000).await?;
            match page.last() {
                Some(last) => after = last.id,
                None => return Ok(after),
            }
        }
    }

    /// One round over every trigger of every pipeline; errors are logged and the trigger is
    /// tried again on the next round (its cursor has not moved).
    pub(super) async fn poll(self: &Arc<Self>) {
        let mut state = self.state.lock().await;
        let work: Vec<(String, String, usize, Trigger)> = state
            .pipelines
            .iter()
            .flat_map(|(name, entry)| {
                entry
                    .spec
                    .triggers
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (name.clone(), entry.version.repo.clone(), i, t.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, repo, index, trigger) in work {
            let done = match &trigger {
                Trigger::Schedule(s) => {
                    self.poll_schedule(&mut state, &name, index, &trigger, s)
                        .await
                }
                Trigger::Monitor(m) => {
                    self.poll_monitor(&mut state, &name, index, &trigger, m)
                        .await
                }
                Trigger::Registry(r) => {
                    self.poll_registry(&mut state, &name, index, &trigger, r)
                        .await
                }
                Trigger::Data(d) => {
                    let at = (index, &trigger);
                    self.poll_data(&mut state, &name, &repo, at, d).await
                }
                Trigger::Pipeline(_) => Ok(()),
            };
            if let Err(e) = done {
                tracing::warn!(pipeline = %name, trigger = index, "trigger poll failed: {e}");
            }
        }
    }

    async fn cursor(&self, pipeline: &str, name: &str) -> Result<Option<i64>> {
        Ok(self
            .store
            .pipeline_cursor(pipeline, name)
            .await?
            .and_then(|v| v.parse().ok()))
    }

    async fn poll_schedule(
        self: &Arc<Self>,
        state: &mut State,
        pipeline: &str,
        index: usize,
        trigger: &Trigger,
        schedule: &Schedule,
    ) -> Result<()> {
        let cursor = cursor_name(index, trigger);
        let now = now_ms();
        let Some(last) = self.cursor(pipeline, &cursor).await? else {
            self.store
                .set_pipeline_cursor(pipeline, &cursor, &now.to_string())
                .await?;
            return Ok(());
        };
        let due = due_ticks(schedule, last, now);
        let Some(&newest) = due.last() else {
            return Ok(());
        };
        let (missed, fire) = split_due(schedule, &due, now);
        if let (Some(first), Some(last_missed)) = (missed.first(), missed.last()) {
            let event = TriggerEvent {
                id: 0,
                pipeline: pipeline.to_owned(),
                trigger_index: i64::try_from(index).unwrap_or(i64::MAX),
                dedup_key: format!("missed:{first}-{last_missed}"),
                outcome: "missed".into(),
                reason: Some(format!(
                    "{} tick(s) from {} to {} passed while the server was down (catchup: {})",
                    missed.len(),
                    iso(*first),
                    iso(*last_missed),
                    schedule.catchup
                )),
                run_id: None,
                at_ms: now,
            };
            let value = last_missed.to_string();
            self.store
                .record_trigger_event(&event, None, Some((&cursor, &value)))
                .await?;
        }
        let fires = fire
            .into_iter()
            .map(|tick| Fire {
                index,
                dedup_key: tick.to_string(),
                kind: trigger.kind(),
                cause: json!({"tick_ms": tick, "tick": iso(tick)}),
                chain: Vec::new(),
                cursor: Some((cursor.clone(), tick.to_string())),
            })
            .collect();
        self.fire_batch(state, pipeline, &cursor, newest, fires)
            .await
    }

    /// Fires what a batch of events asked for, each event's row moving the cursor with it, then
    /// moves the cursor past the whole batch (events no trigger wanted included).
    async fn fire_batch(
        self: &Arc<Self>,
        state: &mut State,
        pipeline: &str,
        cursor: &str,
        newest: i64,
        fires: Vec<Fire>,
    ) -> Result<()> {
        for f in fires {
            self.fire(state, pipeline, f).await?;
        }
        self.store
            .set_pipeline_cursor(pipeline, cursor, &newest.to_string())
            .await?;
        Ok(())
    }

    /// Reads monitor events through an [`EventCursor`], as registry events are: on PostgreSQL
    /// an event can commit after one with a higher id. Every monitor's events are read and
    /// filtered here, so that the only holes the cursor waits for are ids not committed yet.
    async fn poll_monitor(
        self: &Arc<Self>,
        state: &mut State,
        pipeline: &str,
        index: usize,
        trigger: &Trigger,
        wanted: &MonitorTrigger,
    ) -> Result<()> {
        let cursor = cursor_name(index, trigger);
        let key = (pipeline.to_owned(), cursor.clone());
        let Some(stored) = self.cursor(pipeline, &cursor).await? else {
            return Ok(());
        };
        // Each poll stores its floor, so a stored cursor that differs was moved by someone else
        // (an operator replaying events, a replica that held the lease meanwhile): it wins.
        let reading = state
            .event_cursors
            .entry(key.clone())
            .or_insert_with(|| EventCursor::new(stored));
        if reading.floor() != stored {
            *reading = EventCursor::new(stored);
        }
        let before = reading.floor();
        let events = self.store.monitor_events(None, before, BATCH).await?;
        let fresh: Vec<_> = events.into_iter().filter(|e| reading.see(e.id)).collect();
        reading.settle(Instant::now());
        let floor = reading.floor();
        if fresh.is_empty() && floor == before {
            return Ok(());
        }
        let fires = fresh
            .into_iter()
            .filter(|event| wanted.monitor.as_ref().is_none_or(|m| *m == event.monitor))
            .filter_map(|event| {
                let alert: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
                monitor_matches(wanted, &event.kind, &alert).then(|| Fire {
                    index,
                    dedup_key: event.id.to_string(),
                    kind: "monitor",
                    cause: json!({"monitor_event_id": event.id, "monitor": event.monitor, "alert": alert}),
                    chain: Vec::new(),
                    cursor: Some((cursor.clone(), floor.to_string())),
                })
            })
            .collect();
        let fired = self
            .fire_batch(state, pipeline, &cursor, floor, fires)
            .await;
        if fired.is_err() {
            // Read again from the stored floor next time: what did not fire is read again.
            state.event_cursors.remove(&key);
        }
        fired
    }

    /// Reads the registry's events through an [`EventCursor`]: on PostgreSQL an event can
    /// commit after one with a higher id, and a plain "last id" would skip it. The stored cursor
    /// is the floor below which every event is settled; events above it already fired are
    /// refused by their unique row if read again after a failover.
    async fn poll_registry(
        self: &Arc<Self>,
        state: &mut State,
        pipeline: &str,
        index: usize,
        trigger: &Trigger,
        wanted: &RegistryTrigger,
    ) -> Result<()> {
        let cursor = cursor_name(index, trigger);
        let key = (pipeline.to_owned(), cursor.clone());
        if !state.event_cursors.contains_key(&key) {
            let Some(after) = self.cursor(pipeline, &cursor).await? else {
                return Ok(());
            };
            state
                .event_cursors
                .insert(key.clone(), EventCursor::new(after));
        }
        let Some(reading) = state.event_cursors.get_mut(&key) else {
            return Ok(());
        };
        let before = reading.floor();
        let events = self.store.registry_events(before, BATCH).await?;
        let fresh: Vec<RegistryEvent> = events.into_iter().filter(|e| reading.see(e.id)).collect();
        reading.settle(Instant::now());
        let floor = reading.floor();
        if fresh.is_empty() && floor == before {
            return Ok(());
        }
        let mut fires = Vec::new();
        for event in fresh {
            if event.kind.as_str() != wanted.event || event.model_name != wanted.model {
                continue;
            }
            let (payload, chain) = match self.registry_payload(&event).await {
                Ok(found) => found,
                Err(e) => {
                    // Read again from the stored floor next time: this event has not fired.
                    state.event_cursors.remove(&key);
                    return Err(e);
                }
            };
            let context = TriggerContext {
                kind: "registry".into(),
                payload: payload.clone(),
            };
            if let Some(filter) = &wanted.filter
                && !crate::expr::truthy(&filter.eval(&EventScope(&context)))
            {
                continue;
            }
            fires.push(Fire {
                index,
                dedup_key: event.id.to_string(),
                kind: "registry",
                cause: payload,
                chain,
                cursor: Some((cursor.clone(), floor.to_string())),
            });
        }
        let fired = self
            .fire_batch(state, pipeline, &cursor, floor, fires)
            .await;
        if fired.is_err() {
            state.event_cursors.remove(&key);
        }
        fired
    }

    /// A data trigger: polls the path at its own pace, fires once a change has settled, with the
    /// snapshot of what fired it.
    async fn poll_data(
        self: &Arc<Self>,
        state: &mut State,
        pipeline: &str,
        repo: &str,
        (index, trigger): (usize, &Trigger),
        wanted: &DataTrigger,
    ) -> Result<()> {
        let now = now_ms();
        let watch = state
            .watches
            .entry((pipeline.to_owned(), index))
            .or_default();
        if now < watch.next_poll_ms {
            return Ok(());
        }
        watch.next_poll_ms = now + millis(wanted.poll);
        let cursor = cursor_name(index, trigger);
        let root = watched(repo, &wanted.path);
        let current = read_snapshot(root.clone()).await?;
        let Some(fired) = self
            .store
            .pipeline_cursor(pipeline, &cursor)
            .await?
            .and_then(|c| Snapshot::from_cursor(&c))
        else {
            return Ok(self
                .store
                .set_pipeline_cursor(pipeline, &cursor, &current.to_cursor())
                .await?);
        };
        if !watch.settled(
            &fired.fingerprint,
            &current.fingerprint,
            now,
            millis(wanted.settle),
        ) {
            return Ok(());
        }
        watch.pending = None;
        let snapshots = Path::new(repo).join(".twinloop").join("snapshots");
        let keeping = current.clone();
        let kept = tokio::task::spawn_blocking(move || keeping.keep(&root, &snapshots))
            .await
            .map_err(|e| ScheduleError::Io(format!("keeping a data snapshot: {e}")))?
            .map_err(|e| ScheduleError::Io(format!("keeping a data snapshot: {e}")))?;
        let Some(kept) = kept else {
            // Changed while it was copied: it has not settled after all.
            return Ok(());
        };
        let f = Fire {
            index,
            dedup_key: current.fingerprint.clone(),
            kind: "data",
            cause: json!({
                "path": wanted.path,
                "fingerprint": current.fingerprint,
                "snapshot": kept.display().to_string(),
                "files": current.files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
                "changes": current.changes(&fired),
            }),
            chain: Vec::new(),
            cursor: Some((cursor.clone(), current.to_cursor())),
        };
        self.fire(state, pipeline, f).await?;
        self.store
            .set_pipeline_cursor(pipeline, &cursor, &current.to_cursor())
            .await?;
        Ok(())
    }

    /// The event as `trigger.payload` sees it (with the version's tags and its `source` tag),
    /// and the cause chain of the pipeline run that registered the version, if one did.
    async fn registry_payload(&self, event: &RegistryEvent) -> Result<(Value, Vec<String>)> {
        let mut tags = serde_json::Map::new();
        if let Some(version) = event.version
            && let Ok(v) = self
                .store
                .get_model_version(&event.model_name, &version.to_string())
                .await
        {
            for tag in v.tags {
                tags.insert(tag.key, Value::String(tag.value));
            }
        }
        let mut chain: Vec<String> = Vec::new();
        if let Some(Value::String(run_id)) = tags.get("twinloop.pipeline_run")
            && let Some(run) = self.store.pipeline_run(run_id).await?
        {
            chain = serde_json::from_str(&run.chain).unwrap_or_default();
        }
        if let Some(Value::String(name)) = tags.get("twinloop.pipeline")
            && !chain.contains(name)
        {
            chain.push(name.clone());
        }
        let payload = json!({
            "registry_event_id": event.id,
            "kind": event.kind.as_str(),
            "model": event.model_name,
            "version": event.version,
            "alias": event.alias,
            "actor": event.actor,
            "timestamp": event.timestamp,
            "source": tags.get("source").cloned().unwrap_or(Value::Null),
            "tags": tags,
        });
        Ok((payload, chain))
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A data trigger's path: relative to the repository unless absolute.
fn watched(repo: &str, path: &str) -> PathBuf {
    Path::new(repo).join(path)
}

async fn read_snapshot(root: PathBuf) -> Result<Snapshot> {
    let shown = root.display().to_string();
    tokio::task::spawn_blocking(move || Snapshot::read(&root))
        .await
        .map_err(|e| ScheduleError::Io(format!("reading {shown}: {e}")))?
        .map_err(|e| ScheduleError::Io(format!("reading {shown}: {e}")))
}

/// A `where:` filter's view: the trigger only.
struct EventScope<'a>(&'a TriggerContext);

impl Scope for EventScope<'_> {
    fn get(&self, reference: &Ref) -> Value {
        match reference {
            Ref::TriggerKind => Value::String(self.0.kind.clone()),
            Ref::TriggerPayload(path) => self.0.lookup(path),
            _ => Value::Null,
        }
    }
}

fn monitor_matches(wanted: &MonitorTrigger, kind: &str, alert: &Value) -> bool {
    let field = |name: &str| alert.get(name).and_then(Value::as_str);
    kind == wanted.event
        && wanted
            .deployment
            .as_deref()
            .is_none_or(|d| field("deployment") == Some(d))
        && wanted
            .rule
            .as_deref()
            .is_none_or(|r| field("rule") == Some(r))
}

/// Ticks in (`last`, `now`], oldest first; bounded so a long outage of a fast schedule cannot
/// make an unbounded list (the oldest are dropped: only their count is reported).
fn due_ticks(schedule: &Schedule, last: i64, now: i64) -> Vec<i64> {
    const KEEP: usize = 10_000;
    let mut due = std::collections::VecDeque::new();
    let mut at = last;
    while let Some(next) = schedule.next_after(at).filter(|&t| t <= now) {
        if due.len() == KEEP {
            due.pop_front();
        }
        due.push_back(next);
        at = next;
    }
    due.into()
}

/// Which due ticks run and which were missed. `catchup: false` runs only a tick that is on time
/// (a server that was down starts no burst); `catchup: true` runs the newest `max_catchup`.
fn split_due(schedule: &Schedule, due: &[i64], now: i64) -> (Vec<i64>, Vec<i64>) {
    let keep = if schedule.catchup {
        usize::try_from(schedule.max_catchup).unwrap_or(usize::MAX)
    } else {
        usize::from(due.last().is_some_and(|&t| now - t <= LATE_MS))
    };
    let split = due.len().saturating_sub(keep);
    (due[..split].to_vec(), due[split..].to_vec())
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::When;

    fn every(secs: u64, catchup: bool, max_catchup: u32) -> Schedule {
        Schedule {
            when: When::Every(Duration::from_secs(secs)),
            catchup,
            max_catchup,
        }
    }

    #[test]
    fn a_server_that_was_down_records_missed_ticks_and_starts_no_burst() {
        let s = every(2, false, 1);
        let due = due_ticks(&s, 0, 9_000);
        assert_eq!(due, [2_000, 4_000, 6_000, 8_000]);
        // The newest tick is on time: it runs; the rest were missed.
        assert_eq!(
            split_due(&s, &due, 9_000),
            (vec![2_000, 4_000, 6_000], vec![8_000])
        );
        // Nothing on time: every tick was missed.
        assert_eq!(split_due(&s, &due, 12_500).1, Vec::<i64>::new());
        let catching_up = every(2, true, 2);
        assert_eq!(
            split_due(&catching_up, &due, 20_000),
            (vec![2_000, 4_000], vec![6_000, 8_000])
        );
        assert!(due_ticks(&s, 8_000, 9_999).is_empty());
    }

    #[test]
    fn monitor_filters_read_the_alert() {
        let wanted = MonitorTrigger {
            event: "retrain_requested".into(),
            monitor: None,
            deployment: Some("fraud".into()),
            rule: None,
        };
        let alert = json!({"deployment": "fraud", "rule": "drift"});
        assert!(monitor_matches(&wanted, "retrain_requested", &alert));
        assert!(!monitor_matches(&wanted, "alert_firing", &alert));
        assert!(!monitor_matches(
            &wanted,
            "retrain_requested",
            &json!({"deployment": "other"})
        ));
    }
}

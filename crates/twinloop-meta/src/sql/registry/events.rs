//! The registry's event log, and [`Change`]: how every registry write runs, so that its events
//! are recorded in its transaction and announced only once that transaction commits.

use std::ops::{Deref, DerefMut};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::broadcast;
use twinloop_core::registry::{EventDetail, RegistryEvent, RegistryEventKind};
use twinloop_core::time::now_ms;
use twinloop_core::tracking::Tag;
use twinloop_core::{Error, Result};

use crate::sql::query::{Arg, RowExt, Sql};
use crate::sql::{Backend, SqlStore, db_err};
use crate::store::RegistryEventLog;

/// One registry write: a transaction (which it dereferences to) and the events recorded in it.
/// Dropped without [`Change::commit`], it rolls back and announces nothing.
pub(super) struct Change<'s> {
    store: &'s SqlStore,
    tx: Transaction<'static, Any>,
    events: Vec<RegistryEvent>,
}

impl SqlStore {
    pub(super) async fn change(&self) -> Result<Change<'_>> {
        let tx = self.writer.begin().await.map_err(db_err)?;
        Ok(Change {
            store: self,
            tx,
            events: Vec::new(),
        })
    }
}

impl Change<'_> {
    /// Writes the event in this transaction; subscribers hear of it after the commit.
    pub(super) async fn record(&mut self, actor: &str, spec: EventSpec<'_>) -> Result<()> {
        let timestamp = now_ms();
        let mut sql = self.store.sql(
            "INSERT INTO registry_events (timestamp, actor, kind, model_name, version, alias, before, after, detail) VALUES ",
        );
        sql.tuple([
            Arg::from(timestamp),
            Arg::from(actor),
            Arg::from(spec.kind.as_str()),
            Arg::from(spec.model_name),
            Arg::from(spec.version),
            Arg::from(spec.alias.map(String::from)),
            Arg::from(spec.before.clone()),
            Arg::from(spec.after.clone()),
            Arg::from(encode_detail(&spec.detail)),
        ])
        .push(" RETURNING id");
        let id = sql.fetch_one(&mut *self.tx).await?.int(0)?;
        self.events.push(RegistryEvent {
            id,
            timestamp,
            actor: actor.to_string(),
            kind: spec.kind,
            model_name: spec.model_name.to_string(),
            version: spec.version,
            alias: spec.alias.map(String::from),
            before: spec.before,
            after: spec.after,
            detail: spec.detail,
        });
        Ok(())
    }

    pub(super) async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(db_err)?;
        for event in self.events {
            self.store.feed.publish(event);
        }
        Ok(())
    }
}

impl Deref for Change<'_> {
    type Target = Transaction<'static, Any>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for Change<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// What a [`Change`] records: the kind, the model, and what the change touched.
pub(super) struct EventSpec<'a> {
    kind: RegistryEventKind,
    model_name: &'a str,
    version: Option<i64>,
    alias: Option<&'a str>,
    before: Option<String>,
    after: Option<String>,
    detail: EventDetail,
}

impl<'a> EventSpec<'a> {
    pub(super) fn new(kind: RegistryEventKind, model_name: &'a str) -> Self {
        EventSpec {
            kind,
            model_name,
            version: None,
            alias: None,
            before: None,
            after: None,
            detail: EventDetail::default(),
        }
    }

    /// What the request carried that webhook payloads repeat.
    pub(super) fn detail(mut self, detail: EventDetail) -> Self {
        self.detail = detail;
        self
    }

    pub(super) fn version(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }

    pub(super) fn alias(mut self, alias: &'a str) -> Self {
        self.alias = Some(alias);
        self
    }

    /// The value before and after the change: a version, a stage or a name.
    pub(super) fn change(mut self, before: Option<String>, after: Option<String>) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}

#[async_trait]
impl RegistryEventLog for SqlStore {
    async fn registry_events(&self, after: i64, limit: i64) -> Result<Vec<RegistryEvent>> {
        read_events(self.backend, &self.reader, after, limit).await
    }

    async fn latest_registry_event_id(&self) -> Result<i64> {
        self.sql("SELECT COALESCE(MAX(id), 0) FROM registry_events")
            .fetch_one(&self.reader)
            .await?
            .int(0)
    }

    async fn model_registry_events(
        &self,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RegistryEvent>> {
        // The names the model had, newest first, each with the ids its events lie between: a
        // name's history starts where the model was created or renamed to it (what the name
        // held before belonged to another model) and ends at the rename away from it.
        let mut names: Vec<(String, Option<i64>, Option<i64>)> = Vec::new();
        let (mut current, mut until) = (name.to_string(), None);
        while names.len() < MAX_RENAMES {
            let mut sql =
                self.sql("SELECT id, kind, before FROM registry_events WHERE model_name = ");
            sql.arg(current.clone())
                .push(" AND kind IN (")
                .arg(RegistryEventKind::ModelCreated.as_str())
                .push(", ")
                .arg(RegistryEventKind::ModelRenamed.as_str())
                .push(")");
            if let Some(until) = until {
                sql.push(" AND id < ").arg(until);
            }
            sql.push(" ORDER BY id DESC LIMIT 1");
            let start = sql.fetch_optional(&self.reader).await?;
            let from = start.as_ref().map(|r| r.int(0)).transpose()?;
            names.push((current.clone(), from, until));
            let Some(row) = start else { break };
            let renamed = row.text(1)? == RegistryEventKind::ModelRenamed.as_str();
            match row.opt_text(2)? {
                Some(old) if renamed && !names.iter().any(|(n, _, _)| *n == old) => {
                    (current, until) = (old, from);
                }
                _ => break,
            }
        }
        let sql = model_events_query(self.sql(""), &names, before, limit);
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    fn subscribe_registry_events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.feed.subscribe()
    }
}

/// The events of the names a model had (each `(name, from id, until id)`), newest first, before
/// `before`, at most `limit`: for one name a backwards walk of `registry_events_by_model`.
fn model_events_query(
    mut sql: Sql,
    names: &[(String, Option<i64>, Option<i64>)],
    before: Option<i64>,
    limit: i64,
) -> Sql {
    sql.push(&format!(
        "SELECT {EVENT_COLUMNS} FROM registry_events WHERE ("
    ));
    for (i, (n, from, until)) in names.iter().enumerate() {
        sql.push(if i == 0 {
            "(model_name = "
        } else {
            " OR (model_name = "
        })
        .arg(n.clone());
        if let Some(from) = from {
            sql.push(" AND id >= ").arg(*from);
        }
        if let Some(until) = until {
            sql.push(" AND id < ").arg(*until);
        }
        sql.push(")");
    }
    sql.push(")");
    if let Some(before) = before {
        sql.push(" AND id < ").arg(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .arg(limit.clamp(1, 10_000));
    sql
}

/// How many renames back a model's history is followed.
const MAX_RENAMES: usize = 16;

const EVENT_COLUMNS: &str =
    "id, timestamp, actor, kind, model_name, version, alias, before, after, detail";

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<RegistryEvent> {
    Ok(RegistryEvent {
        id: r.int(0)?,
        timestamp: r.int(1)?,
        actor: r.text(2)?,
        kind: RegistryEventKind::parse(&r.text(3)?)
            .ok_or_else(|| Error::internal("unknown registry event kind"))?,
        model_name: r.text(4)?,
        version: r.opt_int(5)?,
        alias: r.opt_text(6)?,
        before: r.opt_text(7)?,
        after: r.opt_text(8)?,
        detail: decode_detail(r.opt_text(9)?.as_deref()),
    })
}

/// Recorded events with an id greater than `after`, oldest first: the log's one reader, which
/// the event tail shares.
pub(super) async fn read_events(
    backend: Backend,
    reader: &AnyPool,
    after: i64,
    limit: i64,
) -> Result<Vec<RegistryEvent>> {
    let mut sql = Sql::new(
        backend,
        &format!("SELECT {EVENT_COLUMNS} FROM registry_events WHERE id > "),
    );
    sql.arg(after)
        .push(" ORDER BY id LIMIT ")
        .arg(limit.clamp(1, 10_000));
    sql.fetch_all(reader)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
}

fn tags_json(tags: &[Tag]) -> Value {
    tags.iter()
        .map(|t| (t.key.clone(), Value::from(t.value.clone())))
        .collect::<Map<_, _>>()
        .into()
}

/// The detail as a JSON document, or NULL when there is none.
fn encode_detail(d: &EventDetail) -> Option<String> {
    if *d == EventDetail::default() {
        return None;
    }
    let doc = json!({
        "tags": tags_json(&d.tags),
        "description": d.description,
        "source": d.source,
        "run_id": d.run_id,
        "tag": d.tag.as_ref().map(|t| json!({"key": t.key, "value": t.value})),
    });
    Some(doc.to_string())
}

/// Reads back what [`encode_detail`] wrote; a missing or unreadable one reads as empty, since
/// the detail only enriches webhook payloads.
fn decode_detail(doc: Option<&str>) -> EventDetail {
    let Some(Ok(doc)) = doc.map(serde_json::from_str::<Value>) else {
        return EventDetail::default();
    };
    let text = |v: &Value| v.as_str().map(String::from);
    EventDetail {
        tags: doc["tags"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| Tag {
                        key: k.clone(),
                        value: v.as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        description: text(&doc["description"]),
        source: text(&doc["source"]),
        run_id: text(&doc["run_id"]),
        tag: doc["tag"]["key"].as_str().map(|key| Tag {
            key: key.to_string(),
            value: doc["tag"]["value"].as_str().unwrap_or_default().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_reads_back_as_written() {
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        let detail = EventDetail {
            tags: vec![tag("a", "1"), tag("b", "")],
            description: Some("d".into()),
            source: Some("runs:/r/model".into()),
            run_id: None,
            tag: Some(tag("k", "v")),
        };
        let doc = encode_detail(&detail);
        assert_eq!(decode_detail(doc.as_deref()), detail);
        assert_eq!(encode_detail(&EventDetail::default()), None);
        assert_eq!(decode_detail(None), EventDetail::default());
        assert_eq!(decode_detail(Some("not json")), EventDetail::default());
    }

    /// A model's timeline stays one index walk however many events other models have.
    #[tokio::test]
    async fn a_models_events_are_read_by_index_not_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let uri = crate::sql::StoreUri::Sqlite(dir.path().join("plan.db"));
        let store = SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap();
        let names = [("churn".to_string(), Some(3), None)];
        let plan = model_events_query(store.sql(""), &names, Some(90), 50).explained();
        let details: Vec<String> = plan
            .fetch_all(&store.reader)
            .await
            .unwrap()
            .iter()
            .map(|r| r.text(3).unwrap())
            .collect();
        assert!(
            details
                .iter()
                .any(|d| d.contains("USING INDEX registry_events_by_model"))
                && !details.iter().any(|d| d.contains("TEMP B-TREE")),
            "{details:?}"
        );
    }
}

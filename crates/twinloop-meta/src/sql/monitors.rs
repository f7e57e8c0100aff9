//! Production monitors on SQL: monitor documents, metric points, labels and events.

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::monitoring::{Label, MetricPoint, MonitorEvent, MonitorRecord};
use twinloop_core::time::now_ms;

use super::query::{Arg, RowExt};
use super::{SqlStore, db_err};
use crate::store::MonitorStore;

#[async_trait]
impl MonitorStore for SqlStore {
    async fn put_monitor(&self, record: &MonitorRecord) -> Result<()> {
        self.put_document("monitors", &record.name, &record.spec, &record.state)
            .await
    }

    async fn monitors(&self) -> Result<Vec<MonitorRecord>> {
        Ok(self
            .documents("monitors")
            .await?
            .into_iter()
            .map(|(name, spec, state, update_time)| MonitorRecord {
                name,
                spec,
                state,
                update_time,
            })
            .collect())
    }

    /// The monitor goes with its history (metric points and events), in one transaction.
    async fn delete_monitor(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        for table in ["monitor_points", "monitor_events"] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE monitor = "));
            sql.arg(name);
            sql.execute(&mut *tx).await?;
        }
        let mut sql = self.sql("DELETE FROM monitors WHERE name = ");
        sql.arg(name);
        let found = sql.execute(&mut *tx).await? > 0;
        tx.commit().await.map_err(db_err)?;
        Ok(found)
    }

    /// Writes a window's points in one transaction (a re-run window replaces its values).
    async fn put_points(&self, points: &[MetricPoint]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        for p in points {
            let mut sql = self.sql(
                "INSERT INTO monitor_points (monitor, window_start, window_end, metric, value) VALUES ",
            );
            sql.tuple([
                Arg::from(&p.monitor),
                Arg::from(p.window_start),
                Arg::from(p.window_end),
                Arg::from(&p.metric),
                Arg::from(p.value),
            ]);
            sql.push(
                " ON CONFLICT (monitor, window_start, metric) DO UPDATE SET \
                 window_end = excluded.window_end, value = excluded.value",
            );
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn points(&self, monitor: &str, limit: i64) -> Result<Vec<MetricPoint>> {
        let mut sql = self.sql(
            "SELECT monitor, window_start, window_end, metric, value FROM monitor_points WHERE monitor = ",
        );
        sql.arg(monitor)
            .push(" ORDER BY window_start DESC, metric DESC LIMIT ")
            .arg(limit);
        let mut points: Vec<MetricPoint> = sql
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(MetricPoint {
                    monitor: row.text(0)?,
                    window_start: row.int(1)?,
                    window_end: row.int(2)?,
                    metric: row.text(3)?,
                    value: row.float(4)?,
                })
            })
            .collect::<Result<_>>()?;
        points.reverse();
        Ok(points)
    }

    /// Upserts labels (posting the same request id again replaces its label).
    async fn put_labels(&self, labels: &[Label]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        for l in labels {
            let mut sql = self.sql("INSERT INTO labels (request_id, label, time) VALUES ");
            sql.tuple([
                Arg::from(&l.request_id),
                Arg::from(&l.label),
                Arg::from(l.time),
            ]);
            sql.push(" ON CONFLICT (request_id) DO UPDATE SET label = excluded.label, time = excluded.time");
            sql.execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn labels(&self, request_ids: &[String]) -> Result<Vec<Label>> {
        let mut out = Vec::new();
        for chunk in request_ids.chunks(500) {
            let mut sql =
                self.sql("SELECT request_id, label, time FROM labels WHERE request_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.arg(id);
            }
            sql.push(")");
            for row in sql.fetch_all(&self.reader).await? {
                out.push(Label {
                    request_id: row.text(0)?,
                    label: row.text(1)?,
                    time: row.int(2)?,
                });
            }
        }
        Ok(out)
    }

    async fn add_monitor_event(&self, monitor: &str, kind: &str, payload: &str) -> Result<i64> {
        let mut sql = self.sql("INSERT INTO monitor_events (monitor, kind, time, payload) VALUES ");
        sql.tuple([
            Arg::from(monitor),
            Arg::from(kind),
            Arg::from(now_ms()),
            Arg::from(payload),
        ]);
        sql.push(" RETURNING id");
        let row = sql.fetch_one(&self.writer).await?;
        row.int(0)
    }

    async fn monitor_events(
        &self,
        monitor: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MonitorEvent>> {
        let mut sql =
            self.sql("SELECT id, monitor, kind, time, payload FROM monitor_events WHERE id > ");
        sql.arg(after);
        if let Some(m) = monitor {
            sql.push(" AND monitor = ").arg(m);
        }
        sql.push(" ORDER BY id LIMIT ").arg(limit);
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(MonitorEvent {
                    id: row.int(0)?,
                    monitor: row.text(1)?,
                    kind: row.text(2)?,
                    time: row.int(3)?,
                    payload: row.text(4)?,
                })
            })
            .collect()
    }
}

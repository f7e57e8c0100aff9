//! Pipelines on SQL: applied versions, runs, trigger events (unique per pipeline, trigger and
//! dedup key) and trigger cursors.

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::time::now_ms;

use super::query::{Arg, RowExt};
use super::{SqlStore, db_err};
use crate::pipelines::{
    NewPipelineVersion, PipelineRun, PipelineStore, PipelineVersion, RunChange, TriggerEvent,
};

const VERSION_COLUMNS: &str = "name, version, spec, digest, repo, file, applied_ms";
const RUN_COLUMNS: &str = "id, pipeline, version, state, trigger_kind, cause, params, chain, \
     reason, created_ms, started_ms, ended_ms, executor";

fn version_of(row: &dyn RowExt) -> Result<PipelineVersion> {
    Ok(PipelineVersion {
        name: row.text(0)?,
        version: row.int(1)?,
        spec: row.text(2)?,
        digest: row.text(3)?,
        repo: row.text(4)?,
        file: row.text(5)?,
        applied_ms: row.int(6)?,
    })
}

fn run_of(row: &dyn RowExt) -> Result<PipelineRun> {
    Ok(PipelineRun {
        id: row.text(0)?,
        pipeline: row.text(1)?,
        version: row.int(2)?,
        state: row.text(3)?,
        trigger_kind: row.text(4)?,
        cause: row.text(5)?,
        params: row.text(6)?,
        chain: row.text(7)?,
        reason: row.opt_text(8)?,
        created_ms: row.int(9)?,
        started_ms: row.opt_int(10)?,
        ended_ms: row.opt_int(11)?,
        executor: row.opt_text(12)?,
    })
}

impl SqlStore {
    fn insert_run(&self, run: &PipelineRun) -> super::query::Sql {
        let mut sql = self.sql(&format!(
            "INSERT INTO pipeline_runs ({RUN_COLUMNS}) VALUES "
        ));
        sql.tuple([
            Arg::from(&run.id),
            Arg::from(&run.pipeline),
            Arg::from(run.version),
            Arg::from(&run.state),
            Arg::from(&run.trigger_kind),
            Arg::from(&run.cause),
            Arg::from(&run.params),
            Arg::from(&run.chain),
            Arg::from(run.reason.clone()),
            Arg::from(run.created_ms),
            Arg::from(run.started_ms),
            Arg::from(run.ended_ms),
            Arg::from(run.executor.clone()),
        ]);
        sql
    }

    /// True for a run whose executor's liveness lease has expired or never existed.
    fn orphaned(&self) -> String {
        format!(
            "(executor IS NULL OR NOT EXISTS (SELECT 1 FROM leases l \
             WHERE l.name = pipeline_runs.executor AND l.expires_at > {}))",
            self.db_now_ms()
        )
    }

    fn upsert_cursor(&self, pipeline: &str, name: &str, value: &str) -> super::query::Sql {
        let mut sql = self.sql("INSERT INTO pipeline_cursors (pipeline, name, value) VALUES ");
        sql.tuple([Arg::from(pipeline), Arg::from(name), Arg::from(value)]);
        sql.push(" ON CONFLICT (pipeline, name) DO UPDATE SET value = excluded.value");
        sql
    }
}

#[async_trait]
impl PipelineStore for SqlStore {
    async fn apply_pipeline(&self, new: &NewPipelineVersion) -> Result<(PipelineVersion, bool)> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM pipelines WHERE name = "
        ));
        sql.arg(&new.name).push(" ORDER BY version DESC LIMIT 1");
        let newest = match sql.fetch_optional(&mut *tx).await? {
            Some(row) => Some(version_of(&row)?),
            None => None,
        };
        if let Some(newest) = newest.as_ref().filter(|v| v.digest == new.digest) {
            return Ok((newest.clone(), false));
        }
        let version = PipelineVersion {
            name: new.name.clone(),
            version: newest.map_or(1, |v| v.version + 1),
            spec: new.spec.clone(),
            digest: new.digest.clone(),
            repo: new.repo.clone(),
            file: new.file.clone(),
            applied_ms: now_ms(),
        };
        let mut sql = self.sql(&format!(
            "INSERT INTO pipelines ({VERSION_COLUMNS}) VALUES "
        ));
        sql.tuple([
            Arg::from(&version.name),
            Arg::from(version.version),
            Arg::from(&version.spec),
            Arg::from(&version.digest),
            Arg::from(&version.repo),
            Arg::from(&version.file),
            Arg::from(version.applied_ms),
        ]);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((version, true))
    }

    async fn pipelines(&self) -> Result<Vec<PipelineVersion>> {
        let sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM pipelines p WHERE version = \
             (SELECT MAX(version) FROM pipelines q WHERE q.name = p.name) ORDER BY name"
        ));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| version_of(row))
            .collect()
    }

    async fn pipeline_version(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<PipelineVersion>> {
        let mut sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM pipelines WHERE name = "
        ));
        sql.arg(name);
        if let Some(v) = version {
            sql.push(" AND version = ").arg(v);
        }
        sql.push(" ORDER BY version DESC LIMIT 1");
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => Ok(Some(version_of(&row)?)),
            None => Ok(None),
        }
    }

    async fn create_pipeline_run(&self, run: &PipelineRun) -> Result<()> {
        self.insert_run(run).execute(&self.writer).await.map(|_| ())
    }

    async fn record_trigger_event(
        &self,
        event: &TriggerEvent,
        run: Option<&PipelineRun>,
        cursor: Option<(&str, &str)>,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql(
            "INSERT INTO pipeline_trigger_events \
             (pipeline, trigger_index, dedup_key, outcome, reason, run_id, at_ms) VALUES ",
        );
        sql.tuple([
            Arg::from(&event.pipeline),
            Arg::from(event.trigger_index),
            Arg::from(&event.dedup_key),
            Arg::from(&event.outcome),
            Arg::from(event.reason.clone()),
            Arg::from(event.run_id.clone()),
            Arg::from(event.at_ms),
        ]);
        sql.push(" ON CONFLICT (pipeline, trigger_index, dedup_key) DO NOTHING");
        if sql.execute(&mut *tx).await? == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        if let Some(run) = run {
            self.insert_run(run).execute(&mut *tx).await?;
        }
        if let Some((name, value)) = cursor {
            self.upsert_cursor(&event.pipeline, name, value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn update_pipeline_run(&self, id: &str, change: &RunChange) -> Result<()> {
        let mut sql = self.sql("UPDATE pipeline_runs SET state = ");
        sql.arg(&change.state)
            .push(", reason = COALESCE(")
            .arg(change.reason.clone())
            .push(", reason), started_ms = COALESCE(")
            .arg(change.started_ms)
            .push(", started_ms), ended_ms = COALESCE(")
            .arg(change.ended_ms)
            .push(", ended_ms) WHERE id = ")
            .arg(id);
        if sql.execute(&self.writer).await? == 0 {
            return Err(twinloop_core::Error::not_found(format!(
                "no pipeline run {id:?}"
            )));
        }
        Ok(())
    }

    async fn pipeline_run(&self, id: &str) -> Result<Option<PipelineRun>> {
        let mut sql = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = "
        ));
        sql.arg(id);
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => Ok(Some(run_of(&row)?)),
            None => Ok(None),
        }
    }

    async fn pipeline_runs(
        &self,
        pipeline: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PipelineRun>> {
        let mut sql = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE 1 = 1"
        ));
        if let Some(p) = pipeline {
            sql.push(" AND pipeline = ").arg(p);
        }
        if let Some(s) = state {
            sql.push(" AND state = ").arg(s);
        }
        sql.push(" ORDER BY created_ms DESC, id DESC LIMIT ")
            .arg(limit);
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| run_of(row))
            .collect()
    }

    async fn trigger_events(
        &self,
        pipeline: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TriggerEvent>> {
        let mut sql = self.sql(
            "SELECT id, pipeline, trigger_index, dedup_key, outcome, reason, run_id, at_ms \
             FROM pipeline_trigger_events WHERE 1 = 1",
        );
        if let Some(p) = pipeline {
            sql.push(" AND pipeline = ").arg(p);
        }
        sql.push(" ORDER BY id DESC LIMIT ").arg(limit);
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| {
                Ok(TriggerEvent {
                    id: row.int(0)?,
                    pipeline: row.text(1)?,
                    trigger_index: row.int(2)?,
                    dedup_key: row.text(3)?,
                    outcome: row.text(4)?,
                    reason: row.opt_text(5)?,
                    run_id: row.opt_text(6)?,
                    at_ms: row.int(7)?,
                })
            })
            .collect()
    }

    async fn orphaned_pipeline_runs(&self, state: &str, limit: i64) -> Result<Vec<PipelineRun>> {
        let mut sql = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE state = "
        ));
        sql.arg(state)
            .push(&format!(" AND {}", self.orphaned()))
            .push(" ORDER BY created_ms, id LIMIT ")
            .arg(limit);
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| run_of(row))
            .collect()
    }

    async fn adopt_pipeline_run(&self, id: &str, state: &str, executor: &str) -> Result<bool> {
        let mut sql = self.sql("UPDATE pipeline_runs SET executor = ");
        sql.arg(executor)
            .push(" WHERE id = ")
            .arg(id)
            .push(" AND state = ")
            .arg(state)
            .push(&format!(" AND {}", self.orphaned()));
        Ok(sql.execute(&self.writer).await? == 1)
    }

    async fn request_pipeline_run_cancel(&self, id: &str) -> Result<bool> {
        let mut sql = self.sql("UPDATE pipeline_runs SET cancel_requested_ms = ");
        sql.arg(now_ms())
            .push(" WHERE id = ")
            .arg(id)
            .push(" AND state IN ('QUEUED', 'RUNNING')");
        Ok(sql.execute(&self.writer).await? == 1)
    }

    async fn pipeline_runs_to_cancel(&self, executor: &str) -> Result<Vec<String>> {
        let mut sql = self.sql("SELECT id FROM pipeline_runs WHERE executor = ");
        sql.arg(executor).push(
            " AND cancel_requested_ms IS NOT NULL AND state IN ('QUEUED', 'RUNNING') ORDER BY id",
        );
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| row.text(0))
            .collect()
    }

    async fn pipeline_cursor(&self, pipeline: &str, name: &str) -> Result<Option<String>> {
        let mut sql = self.sql("SELECT value FROM pipeline_cursors WHERE pipeline = ");
        sql.arg(pipeline).push(" AND name = ").arg(name);
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => Ok(Some(row.text(0)?)),
            None => Ok(None),
        }
    }

    async fn set_pipeline_cursor(&self, pipeline: &str, name: &str, value: &str) -> Result<()> {
        self.upsert_cursor(pipeline, name, value)
            .execute(&self.writer)
            .await
            .map(|_| ())
    }
}

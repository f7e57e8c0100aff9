//! Feature store definitions and materialization runs on SQL.

use async_trait::async_trait;
use twinloop_core::Result;
use twinloop_core::features::{FeatureChange, FeatureObject, MaterializationRun};
use twinloop_core::time::now_ms;

use super::query::{Arg, RowExt, Sql};
use super::{SqlStore, db_err};
use crate::store::FeatureRegistry;

const OBJECT_COLUMNS: &str = "project, kind, name, version, spec, create_time";

fn object_from_row(row: &dyn RowExt) -> Result<FeatureObject> {
    Ok(FeatureObject {
        project: row.text(0)?,
        kind: row.text(1)?,
        name: row.text(2)?,
        version: row.int(3)?,
        spec: row.text(4)?,
        create_time: row.int(5)?,
    })
}

fn run_from_row(row: &dyn RowExt) -> Result<MaterializationRun> {
    Ok(MaterializationRun {
        project: row.text(0)?,
        view: row.text(1)?,
        start_time: row.int(2)?,
        end_time: row.int(3)?,
        source_rows: row.int(4)?,
        entities: row.int(5)?,
        written: row.int(6)?,
        finish_time: row.int(7)?,
    })
}

#[async_trait]
impl FeatureRegistry for SqlStore {
    async fn feature_objects(&self, project: &str) -> Result<Vec<FeatureObject>> {
        // The latest version of each definition, unless that version removed it.
        let mut sql = self.sql(&format!(
            "SELECT {OBJECT_COLUMNS} FROM feature_objects o WHERE deleted = 0 AND project = "
        ));
        sql.arg(project).push(
            " AND version = (SELECT MAX(version) FROM feature_objects l \
             WHERE l.project = o.project AND l.kind = o.kind AND l.name = o.name) \
             ORDER BY kind, name",
        );
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| object_from_row(r))
            .collect()
    }

    async fn apply_feature_changes(
        &self,
        project: &str,
        changes: &[FeatureChange],
    ) -> Result<Vec<FeatureObject>> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let now = now_ms();
        let mut applied = Vec::new();
        for change in changes {
            let (kind, name, spec, deleted) = match change {
                FeatureChange::Put { kind, name, spec } => (kind, name, Some(spec), 0),
                FeatureChange::Remove { kind, name } => (kind, name, None, 1),
            };
            let mut last = Sql::new(
                self.backend(),
                "SELECT version, spec, deleted FROM feature_objects WHERE project = ",
            );
            last.arg(project)
                .push(" AND kind = ")
                .arg(kind)
                .push(" AND name = ")
                .arg(name)
                .push(" ORDER BY version DESC LIMIT 1");
            let previous = last.fetch_optional(&mut *tx).await?;
            let (version, previous_spec, was_deleted) = match &previous {
                Some(row) => (row.int(0)?, row.text(1)?, row.int(2)? == 1),
                None => (0, String::new(), true),
            };
            let unchanged = match spec {
                Some(spec) => !was_deleted && *spec == previous_spec,
                None => was_deleted,
            };
            if unchanged {
                continue;
            }
            let spec = spec.cloned().unwrap_or(previous_spec);
            let mut insert = Sql::new(
                self.backend(),
                "INSERT INTO feature_objects (project, kind, name, version, spec, deleted, create_time) VALUES ",
            );
            insert.tuple([
                Arg::from(project),
                Arg::from(kind),
                Arg::from(name),
                Arg::from(version + 1),
                Arg::from(&spec),
                Arg::from(deleted),
                Arg::from(now),
            ]);
            insert.execute(&mut *tx).await?;
            applied.push(FeatureObject {
                project: project.to_string(),
                kind: kind.clone(),
                name: name.clone(),
                version: version + 1,
                spec,
                create_time: now,
            });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(applied)
    }

    async fn record_materialization(&self, run: &MaterializationRun) -> Result<()> {
        let mut sql = self.sql(
            "INSERT INTO feature_materializations (project, view, start_time, end_time, source_rows, \
             entities, written, finish_time) VALUES ",
        );
        sql.tuple([
            Arg::from(&run.project),
            Arg::from(&run.view),
            Arg::from(run.start_time),
            Arg::from(run.end_time),
            Arg::from(run.source_rows),
            Arg::from(run.entities),
            Arg::from(run.written),
            Arg::from(run.finish_time),
        ]);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn materializations(&self, project: &str, view: &str) -> Result<Vec<MaterializationRun>> {
        let mut sql = self.sql(
            "SELECT project, view, start_time, end_time, source_rows, entities, written, finish_time \
             FROM feature_materializations WHERE project = ",
        );
        sql.arg(project)
            .push(" AND view = ")
            .arg(view)
            .push(" ORDER BY id");
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| run_from_row(r))
            .collect()
    }
}

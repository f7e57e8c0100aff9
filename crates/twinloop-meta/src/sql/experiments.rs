use std::collections::HashMap;

use async_trait::async_trait;
use twinloop_core::time::now_ms;
use twinloop_core::tracking::{Experiment, LifecycleStage, Page, Tag};
use twinloop_core::{Error, Result};

use super::filter::{numeric_comparison, string_comparison};
use super::pairs::{EXPERIMENT_TAGS, OnConflict};
use super::query::{RowExt, Sql, Window, backend_of};
use super::{SqlStore, db_err};
use crate::artifact_uri::{append_to_uri_path, resolve_if_local, validate_location};
use crate::search::{Entity, parse_filter, parse_order_by};
use crate::store::{ExperimentQuery, ExperimentStore};
use crate::validation::{
    validate_artifact_location_length, validate_experiment_name, validate_experiment_tag,
};

const COLUMNS: &str = "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

/// Any integer is an id, as in MLflow: one that no experiment has (a negative one) is not found
/// rather than invalid.
pub(crate) fn parse_experiment_id(id: &str) -> Result<i64> {
    id.trim().parse::<i64>().map_err(|_| {
        Error::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))
    })
}

fn experiment_from_row(row: &dyn RowExt) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: row.int(0)?.to_string(),
        name: row.text(1)?,
        artifact_location: row.text(2)?,
        lifecycle_stage: LifecycleStage::parse(&row.text(3)?)?,
        creation_time: row.int(4)?,
        last_update_time: row.int(5)?,
        tags: Vec::new(),
    })
}

impl SqlStore {
    pub(super) async fn ensure_default_experiment(&self) -> Result<()> {
        let now = now_ms();
        let mut sql = self.sql(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (0, 'Default', ",
        );
        sql.arg(append_to_uri_path(&self.artifact_root, &["0"]))
            .push(", 'active', ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(") ON CONFLICT DO NOTHING");
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn attach_tags(&self, experiments: &mut [Experiment]) -> Result<()> {
        if experiments.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = experiments
            .iter()
            .map(|e| e.experiment_id.parse::<i64>().unwrap_or(-1))
            .collect();
        let mut sql = self
            .sql("SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ");
        sql.arg_list(&ids).push(" ORDER BY key");
        let rows = sql.fetch_all(&self.reader).await?;
        let mut by_id: HashMap<String, Vec<Tag>> = HashMap::new();
        for row in rows {
            by_id
                .entry(row.int(0)?.to_string())
                .or_default()
                .push(Tag::new(row.text(1)?, row.text(2)?));
        }
        for e in experiments {
            e.tags = by_id.remove(&e.experiment_id).unwrap_or_default();
        }
        Ok(())
    }

    /// Deleting an experiment deletes its active runs with the same timestamp, so that restoring
    /// it brings back exactly those runs and not ones deleted on their own before.
    pub(super) async fn set_experiment_stage(
        &self,
        experiment_id: &str,
        stage: LifecycleStage,
    ) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        if id == 0 && stage == LifecycleStage::Deleted {
            return Err(Error::invalid(
                "Cannot delete the Default experiment (id 0).",
            ));
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        experiment_stage(&mut tx, id).await?;
        let mut when = self.sql("SELECT last_update_time FROM experiments WHERE experiment_id = ");
        when.arg(id);
        let deleted_at = when.fetch_one(&mut *tx).await?.int(0)?;
        let now = now_ms();
        let mut runs = self.sql("UPDATE runs SET lifecycle_stage = ");
        match stage {
            LifecycleStage::Deleted => {
                runs.arg("deleted")
                    .push(", deleted_time = ")
                    .arg(now)
                    .push(" WHERE experiment_id = ")
                    .arg(id)
                    .push(" AND lifecycle_stage = 'active'");
            }
            LifecycleStage::Active => {
                runs.arg("active")
                    .push(", deleted_time = NULL WHERE experiment_id = ")
                    .arg(id)
                    .push(" AND lifecycle_stage = 'deleted' AND deleted_time = ")
                    .arg(deleted_at);
            }
        }
        runs.execute(&mut *tx).await?;
        let mut sql = self.sql("UPDATE experiments SET lifecycle_stage = ");
        sql.arg(stage.as_str())
            .push(", last_update_time = ")
            .arg(now)
            .push(" WHERE experiment_id = ")
            .arg(id);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }
}

pub(super) async fn experiment_stage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<LifecycleStage> {
    let mut sql = Sql::new(
        backend_of(tx),
        "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ",
    );
    sql.arg(id);
    let row = sql.fetch_optional(&mut **tx).await?;
    let row = row.ok_or_else(|| Error::not_found(format!("No Experiment with id={id} exists")))?;
    LifecycleStage::parse(&row.text(0)?)
}

#[async_trait]
impl ExperimentStore for SqlStore {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        validate_experiment_name(name)?;
        tags.iter().try_for_each(validate_experiment_tag)?;
        if let Some(location) = artifact_location.filter(|l| !l.is_empty()) {
            validate_artifact_location_length(location)?;
            validate_location(location)?;
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut existing = self.sql("SELECT lifecycle_stage FROM experiments WHERE name = ");
        existing.arg(name);
        if let Some(row) = existing.fetch_optional(&mut *tx).await? {
            let hint = if row.text(0)? == "deleted" {
                " It is in the deleted state: restore it, or delete it permanently, to reuse the name."
            } else {
                ""
            };
            return Err(Error::already_exists(format!(
                "Experiment(name={name}) already exists.{hint}"
            )));
        }
        let now = now_ms();
        let mut insert = self.sql(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (",
        );
        insert
            .arg(name)
            .push(", '', 'active', ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(") RETURNING experiment_id");
        let id = insert.fetch_one(&mut *tx).await?.int(0)?;
        let location = match artifact_location.filter(|l| !l.is_empty()) {
            // Relative to the server's working directory, as MLflow resolves it.
            Some(l) => {
                let cwd = std::env::current_dir()
                    .map_err(|e| Error::internal_from("cannot read the working directory", e))?;
                resolve_if_local(l, &cwd)
            }
            None => append_to_uri_path(&self.artifact_root, &[&id.to_string()]),
        };
        let mut update = self.sql("UPDATE experiments SET artifact_location = ");
        update.arg(location).push(" WHERE experiment_id = ").arg(id);
        update.execute(&mut *tx).await?;
        EXPERIMENT_TAGS
            .write(&mut tx, id, tags, OnConflict::Overwrite)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id.to_string())
    }

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM experiments e WHERE e.experiment_id = "
        ));
        sql.arg(id);
        let row = sql.fetch_optional(&self.reader).await?;
        let row = row.ok_or_else(|| {
            Error::not_found(format!("No Experiment with id={experiment_id} exists"))
        })?;
        let mut experiments = vec![experiment_from_row(&row)?];
        self.attach_tags(&mut experiments).await?;
        Ok(experiments.remove(0))
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM experiments e WHERE e.name = "
        ));
        sql.arg(name);
        let row = sql.fetch_optional(&self.reader).await?;
        let row = row.ok_or_else(|| {
            Error::not_found(format!("Experiment with name '{name}' does not exist."))
        })?;
        let mut experiments = vec![experiment_from_row(&row)?];
        self.attach_tags(&mut experiments).await?;
        Ok(experiments.remove(0))
    }

    async fn search_experiments(&self, q: &ExperimentQuery) -> Result<Page<Experiment>> {
        let window = Window::parse(q.max_results, q.page_token.as_deref())?;
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM experiments e WHERE e.lifecycle_stage IN "
        ));
        sql.arg_list(q.view_type.stages());
        for clause in parse_filter(q.filter.as_deref().unwrap_or(""), true)? {
            sql.push(" AND ");
            match clause.entity {
                Entity::Attribute => match clause.key.as_str() {
                    "name" => string_comparison(&mut sql, "e.name", &clause)?,
                    "creation_time" | "last_update_time" => {
                        numeric_comparison(&mut sql, &format!("e.{}", clause.key), &clause, true)?
                    }
                    other => {
                        return Err(clause.invalid(&format!(
                            "invalid attribute key {other:?}; experiments can be filtered by name, creation_time, last_update_time and tags.<key>"
                        )));
                    }
                },
                Entity::Tag => {
                    sql.push("EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id AND t.key = ")
                        .arg(&clause.key)
                        .push(" AND ");
                    string_comparison(&mut sql, "t.value", &clause)?;
                    sql.push(")");
                }
                _ => {
                    return Err(clause.invalid(
                        "experiments can be filtered by attributes (name, creation_time, last_update_time) and tags only",
                    ));
                }
            }
        }
        let mut terms = Vec::new();
        let mut has_id = false;
        for text in &q.order_by {
            let key = parse_order_by(text, true)?;
            let column = match (key.entity, key.key.as_str()) {
                (Entity::Attribute, "name") => "e.name",
                (Entity::Attribute, "experiment_id") => {
                    has_id = true;
                    "e.experiment_id"
                }
                (Entity::Attribute, "creation_time") => "e.creation_time",
                (Entity::Attribute, "last_update_time") => "e.last_update_time",
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid order_by clause {text:?}: experiments can be ordered by name, experiment_id, creation_time or last_update_time"
                    )));
                }
            };
            terms.push(format!(
                "{column} {}",
                if key.ascending { "ASC" } else { "DESC" }
            ));
        }
        // MLflow's default order, and its tie-breaker when the caller's order lacks the id.
        if q.order_by.is_empty() {
            terms.push("e.creation_time DESC".into());
            terms.push("e.experiment_id ASC".into());
        } else if !has_id {
            terms.push("e.experiment_id DESC".into());
        }
        sql.push(" ORDER BY ").push(&terms.join(", "));
        window.apply(&mut sql);
        let rows = sql.read(&self.bulk_reader).await?;
        let mut page = window.page(&rows, experiment_from_row)?;
        self.attach_tags(&mut page.items).await?;
        Ok(page)
    }

    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        validate_experiment_name(new_name)?;
        let id = parse_experiment_id(experiment_id)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let stage = experiment_stage(&mut tx, id).await?;
        if stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot rename a non-active experiment. Experiment {experiment_id} is deleted."
            )));
        }
        let mut sql = self.sql("UPDATE experiments SET name = ");
        sql.arg(new_name)
            .push(", last_update_time = ")
            .arg(now_ms())
            .push(" WHERE experiment_id = ")
            .arg(id);
        sql.execute(&mut *tx).await.map_err(|e| match e.kind {
            twinloop_core::ErrorKind::AlreadyExists => {
                Error::already_exists(format!("Experiment(name={new_name}) already exists."))
            }
            _ => e,
        })?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(experiment_id, LifecycleStage::Deleted)
            .await
    }

    async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(experiment_id, LifecycleStage::Active)
            .await
    }

    async fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()> {
        validate_experiment_tag(tag)?;
        let id = parse_experiment_id(experiment_id)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        if experiment_stage(&mut tx, id).await? != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        EXPERIMENT_TAGS
            .write(
                &mut tx,
                id,
                std::slice::from_ref(tag),
                OnConflict::Overwrite,
            )
            .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        experiment_stage(&mut tx, id).await?;
        if !EXPERIMENT_TAGS.delete(&mut tx, id, key).await? {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {experiment_id}"
            )));
        }
        tx.commit().await.map_err(db_err)
    }
}

use std::collections::HashMap;

use async_trait::async_trait;
use twinloop_core::ids::{new_logged_model_id, random_run_name};
use twinloop_core::lineage::{EventKind, NodeKind};
use twinloop_core::time::now_ms;
use twinloop_core::tracking::*;
use twinloop_core::{Error, Result};

use super::experiments::parse_experiment_id;
use super::filter::{lookup, numeric_comparison, string_comparison};
use super::lineage::{self, ensure_node};
use super::pairs::{MODEL_PARAMS, MODEL_TAGS, OnConflict};
use super::query::{RowExt, Sql, Window, decode_metric_value};
use super::{SqlStore, db_err};
use crate::artifact_uri::append_to_uri_path;
use crate::search::{Entity, parse_filter};
use crate::store::{DatasetFilter, LoggedModelQuery, LoggedModelStore};
use crate::validation::{validate_param, validate_tag};

const COLUMNS: &str = "lm.model_id, lm.experiment_id, lm.name, lm.artifact_uri, lm.status, lm.model_type, \
     lm.source_run_id, lm.creation_timestamp_ms, lm.last_updated_timestamp_ms";

const STRING_ATTRIBUTES: &[(&str, &str)] = &[
    ("name", "lm.name"),
    ("model_id", "lm.model_id"),
    ("model_type", "lm.model_type"),
    ("status", "lm.status"),
    ("source_run_id", "lm.source_run_id"),
];

const NUMERIC_ATTRIBUTES: &[(&str, &str)] = &[
    ("creation_timestamp", "lm.creation_timestamp_ms"),
    ("creation_time", "lm.creation_timestamp_ms"),
    ("creation_timestamp_ms", "lm.creation_timestamp_ms"),
    ("last_updated_timestamp", "lm.last_updated_timestamp_ms"),
    ("last_updated_timestamp_ms", "lm.last_updated_timestamp_ms"),
];

/// Which of a model's metrics a comparison or an ordering reads.
enum OnDatasets<'a> {
    Any,
    /// Metrics on one dataset name (an order-by's `dataset_name`).
    Named(&'a str),
    /// Metrics on any of the search's `datasets`.
    Listed(&'a [DatasetFilter]),
}

/// ` AND (…)`: the metric row `mm` is on one of `datasets`.
fn on_datasets_sql(sql: &mut Sql, datasets: &[DatasetFilter]) {
    sql.push(" AND (");
    for (i, d) in datasets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(mm.dataset_name = ").arg(&d.dataset_name);
        if let Some(digest) = &d.dataset_digest {
            sql.push(" AND mm.dataset_digest = ").arg(digest);
        }
        sql.push(")");
    }
    sql.push(")");
}

/// The latest value of a model metric, as a scalar subquery usable in WHERE and ORDER BY.
fn latest_metric_sql(sql: &mut Sql, key: &str, datasets: &OnDatasets) {
    sql.push("(SELECT mm.value FROM logged_model_metrics mm WHERE mm.model_id = lm.model_id AND mm.is_nan = 0 AND mm.key = ")
        .arg(key);
    match datasets {
        OnDatasets::Any => {}
        OnDatasets::Named(name) => {
            sql.push(" AND mm.dataset_name = ").arg(*name);
        }
        OnDatasets::Listed(listed) => on_datasets_sql(sql, listed),
    }
    sql.push(" ORDER BY mm.step DESC, mm.timestamp DESC LIMIT 1)");
}

fn model_from_row(row: &dyn RowExt) -> Result<LoggedModel> {
    Ok(LoggedModel {
        model_id: row.text(0)?,
        experiment_id: row.int(1)?.to_string(),
        name: row.text(2)?,
        artifact_uri: row.text(3)?,
        status: LoggedModelStatus::parse(&row.text(4)?)?,
        model_type: row.text(5)?,
        source_run_id: row.text(6)?,
        creation_timestamp_ms: row.int(7)?,
        last_updated_timestamp_ms: row.int(8)?,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

fn model_not_found(model_id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{model_id}' not found"))
}

impl SqlStore {
    async fn attach_model_details(&self, models: &mut [LoggedModel]) -> Result<()> {
        if models.is_empty() {
            return Ok(());
        }
        let index: HashMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.model_id.clone(), i))
            .collect();
        let ids: Vec<String> = models.iter().map(|m| m.model_id.clone()).collect();
        for chunk in ids.chunks(500) {
            for (table, is_tag) in [("logged_model_tags", true), ("logged_model_params", false)] {
                let mut sql = self.sql(&format!(
                    "SELECT model_id, key, value FROM {table} WHERE model_id IN "
                ));
                sql.arg_list(chunk).push(" ORDER BY key");
                for row in sql.fetch_all(&self.reader).await? {
                    let model = &mut models[index[&row.text(0)?]];
                    let pair = Tag::new(row.text(1)?, row.text(2)?);
                    if is_tag {
                        model.tags.push(pair)
                    } else {
                        model.params.push(pair)
                    }
                }
            }
            let mut sql = self.sql(
                "SELECT model_id, run_uuid, key, value, is_nan, timestamp, step, dataset_name, dataset_digest \
                 FROM logged_model_metrics WHERE model_id IN ",
            );
            sql.arg_list(chunk).push(" ORDER BY key, step, timestamp");
            for row in sql.fetch_all(&self.reader).await? {
                let model = &mut models[index[&row.text(0)?]];
                let mut metric = Metric::new(
                    row.text(2)?,
                    decode_metric_value(row.float(3)?, row.int(4)?),
                    row.int(5)?,
                    row.int(6)?,
                );
                metric.model_id = Some(model.model_id.clone());
                metric.run_id = Some(row.text(1)?);
                metric.dataset_name = row.opt_text(7)?;
                metric.dataset_digest = row.opt_text(8)?;
                model.metrics.push(metric);
            }
        }
        Ok(())
    }

    async fn require_model(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        model_id: &str,
    ) -> Result<()> {
        let mut sql = self
            .sql("SELECT 1 FROM logged_models WHERE lifecycle_stage = 'active' AND model_id = ");
        sql.arg(model_id);
        match sql.fetch_optional(&mut **tx).await? {
            Some(_) => Ok(()),
            None => Err(model_not_found(model_id)),
        }
    }
}

#[async_trait]
impl LoggedModelStore for SqlStore {
    async fn create_logged_model(&self, new: NewLoggedModel) -> Result<LoggedModel> {
        let exp_id = parse_experiment_id(&new.experiment_id)?;
        new.params.iter().try_for_each(validate_param)?;
        new.tags.iter().try_for_each(validate_tag)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut exp = self.sql(
            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ",
        );
        exp.arg(exp_id);
        let row = exp.fetch_optional(&mut *tx).await?;
        let row =
            row.ok_or_else(|| Error::not_found(format!("No Experiment with id={exp_id} exists")))?;
        if row.text(1)? != "active" {
            return Err(Error::invalid(format!(
                "The experiment {exp_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        let model_id = new_logged_model_id();
        let now = now_ms();
        let model = LoggedModel {
            artifact_uri: append_to_uri_path(&row.text(0)?, &["models", &model_id, "artifacts"]),
            model_id,
            experiment_id: exp_id.to_string(),
            name: new
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(random_run_name),
            status: LoggedModelStatus::Pending,
            model_type: new.model_type.unwrap_or_default(),
            source_run_id: new.source_run_id.unwrap_or_default(),
            creation_timestamp_ms: now,
            last_updated_timestamp_ms: now,
            tags: new.tags,
            params: new.params,
            metrics: Vec::new(),
        };
        let mut insert = self.sql(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_uri, status, model_type, source_run_id, \
             creation_timestamp_ms, last_updated_timestamp_ms, lifecycle_stage) VALUES (",
        );
        insert
            .arg(&model.model_id)
            .push(", ")
            .arg(exp_id)
            .push(", ")
            .arg(&model.name)
            .push(", ")
            .arg(&model.artifact_uri)
            .push(", ")
            .arg(model.status.as_str())
            .push(", ")
            .arg(&model.model_type)
            .push(", ")
            .arg(&model.source_run_id)
            .push(", ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(", 'active')");
        insert.execute(&mut *tx).await?;
        MODEL_TAGS
            .write(
                &mut tx,
                model.model_id.as_str(),
                &model.tags,
                OnConflict::Overwrite,
            )
            .await?;
        MODEL_PARAMS
            .write(
                &mut tx,
                model.model_id.as_str(),
                &model.params,
                OnConflict::Keep,
            )
            .await?;
        // Lineage: a logged model is an artifact, the output of the run that made it.
        let node = ensure_node(
            &mut tx,
            NodeKind::Artifact,
            &lineage::logged_model_node(&model.model_id, Some(&model.artifact_uri)),
        )
        .await?;
        if !model.source_run_id.is_empty() {
            let run = ensure_node(
                &mut tx,
                NodeKind::Execution,
                &lineage::run_node(&model.source_run_id),
            )
            .await?;
            lineage::link(&mut tx, node, run, EventKind::Output).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(model)
    }

    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM logged_models lm WHERE lm.model_id = "
        ));
        sql.arg(model_id);
        if !allow_deleted {
            sql.push(" AND lm.lifecycle_stage = 'active'");
        }
        let row = sql.fetch_optional(&self.reader).await?;
        let mut models = vec![model_from_row(
            &row.ok_or_else(|| model_not_found(model_id))?,
        )?];
        self.attach_model_details(&mut models).await?;
        Ok(models.remove(0))
    }

    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        self.require_model(&mut tx, model_id).await?;
        let mut sql = self.sql("UPDATE logged_models SET status = ");
        sql.arg(status.as_str())
            .push(", last_updated_timestamp_ms = ")
            .arg(now_ms())
            .push(" WHERE model_id = ")
            .arg(model_id);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_logged_model(model_id, false).await
    }

    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        self.require_model(&mut tx, model_id).await?;
        let mut sql = self.sql(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ",
        );
        sql.arg(now_ms()).push(" WHERE model_id = ").arg(model_id);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_logged_model_tags(&self, model_id: &str, tags: &[Tag]) -> Result<()> {
        tags.iter().try_for_each(validate_tag)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        self.require_model(&mut tx, model_id).await?;
        MODEL_TAGS
            .write(&mut tx, model_id, tags, OnConflict::Overwrite)
            .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        self.require_model(&mut tx, model_id).await?;
        if !MODEL_TAGS.delete(&mut tx, model_id, key).await? {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' on logged model '{model_id}'"
            )));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn log_logged_model_params(&self, model_id: &str, params: &[Param]) -> Result<()> {
        params.iter().try_for_each(validate_param)?;
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        self.require_model(&mut tx, model_id).await?;
        MODEL_PARAMS
            .write(&mut tx, model_id, params, OnConflict::Keep)
            .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn search_logged_models(&self, q: &LoggedModelQuery) -> Result<Page<LoggedModel>> {
        let window = Window::parse(q.max_results, q.page_token.as_deref())?;
        let experiment_ids = q
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        if experiment_ids.is_empty() {
            return Err(Error::invalid(
                "search_logged_models needs at least one experiment id",
            ));
        }
        if q.datasets.iter().any(|d| d.dataset_name.is_empty()) {
            return Err(Error::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            ));
        }
        let on_datasets = if q.datasets.is_empty() {
            OnDatasets::Any
        } else {
            OnDatasets::Listed(&q.datasets)
        };
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM logged_models lm WHERE lm.lifecycle_stage = 'active' AND lm.experiment_id IN "
        ));
        sql.arg_list(&experiment_ids);
        let clauses = parse_filter(q.filter.as_deref().unwrap_or(""), true)?;
        // Without a metric comparison to restrict, the datasets still keep only the models
        // with some metric on them.
        if !q.datasets.is_empty() && !clauses.iter().any(|c| c.entity == Entity::Metric) {
            sql.push(
                " AND EXISTS (SELECT 1 FROM logged_model_metrics mm WHERE mm.model_id = lm.model_id",
            );
            on_datasets_sql(&mut sql, &q.datasets);
            sql.push(")");
        }
        for clause in clauses {
            sql.push(" AND ");
            match clause.entity {
                Entity::Attribute => {
                    if let Some(column) = lookup(STRING_ATTRIBUTES, &clause.key) {
                        string_comparison(&mut sql, column, &clause)?;
                    } else if let Some(column) = lookup(NUMERIC_ATTRIBUTES, &clause.key) {
                        numeric_comparison(&mut sql, column, &clause, true)?;
                    } else {
                        return Err(clause.invalid(&format!(
                            "invalid attribute {:?}; logged models can be filtered by name, model_id, model_type, status, source_run_id, creation_timestamp, last_updated_timestamp, metrics.<key>, params.<key> and tags.<key>",
                            clause.key
                        )));
                    }
                }
                Entity::Metric => {
                    // The unquoted form keeps MLflow's meaning here: the literal key.
                    if clause
                        .summary
                        .as_ref()
                        .is_some_and(|s| s.or_literal.is_none())
                    {
                        return Err(clause.invalid("metric summaries can be searched on runs only"));
                    }
                    latest_metric_sql(&mut sql, &clause.key, &on_datasets);
                    sql.push(" IS NOT NULL AND ");
                    latest_metric_sql(&mut sql, &clause.key, &on_datasets);
                    numeric_comparison(&mut sql, "", &clause, false)?;
                }
                Entity::Param | Entity::Tag => {
                    let table = if clause.entity == Entity::Param {
                        "logged_model_params"
                    } else {
                        "logged_model_tags"
                    };
                    sql.push(&format!("EXISTS (SELECT 1 FROM {table} p WHERE p.model_id = lm.model_id AND p.key = "))
                        .arg(&clause.key)
                        .push(" AND ");
                    string_comparison(&mut sql, "p.value", &clause)?;
                    sql.push(")");
                }
                Entity::Dataset => {
                    return Err(
                        clause.invalid("use the datasets field to filter logged models by dataset")
                    );
                }
            }
        }
        sql.push(" ORDER BY ");
        for order in &q.order_by {
            let dir = if order.ascending { " ASC, " } else { " DESC, " };
            if let Some(key) = order.field_name.strip_prefix("metrics.") {
                let on = order
                    .dataset_name
                    .as_deref()
                    .map_or(OnDatasets::Any, OnDatasets::Named);
                sql.push("CASE WHEN ");
                latest_metric_sql(&mut sql, key, &on);
                sql.push(" IS NULL THEN 1 ELSE 0 END ASC, ");
                latest_metric_sql(&mut sql, key, &on);
                sql.push(dir);
            } else {
                let column = lookup(STRING_ATTRIBUTES, &order.field_name)
                    .or_else(|| lookup(NUMERIC_ATTRIBUTES, &order.field_name))
                    .ok_or_else(|| Error::invalid(format!(
                        "Invalid order_by field {:?}: logged models can be ordered by name, model_id, creation_timestamp, last_updated_timestamp or metrics.<key>",
                        order.field_name
                    )))?;
                sql.push(column).push(dir);
            }
        }
        sql.push("lm.creation_timestamp_ms DESC, lm.model_id ASC");
        window.apply(&mut sql);
        let rows = sql.read(&self.bulk_reader).await?;
        let mut page = window.page(&rows, model_from_row)?;
        self.attach_model_details(&mut page.items).await?;
        Ok(page)
    }
}

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Any;
use sqlx::Transaction;
use twinloop_core::ids::{is_run_id, new_run_id, random_run_name};
use twinloop_core::lineage::{EventKind, NewNode, NodeKind};
use twinloop_core::run_columns::KeyKind;
use twinloop_core::time::now_ms;
use twinloop_core::tracking::*;
use twinloop_core::{Error, Result};

use super::experiments::parse_experiment_id;
use super::lineage::{self, ensure_node};
use super::native_writer::Batch;
use super::pairs::{OnConflict, RUN_PARAMS, RUN_TAGS};
use super::query::{
    Arg, MAX_ARGS, RowExt, Sql, Window, backend_of, chunks_for, decode_metric_value,
    encode_metric_value,
};
use super::run_search;
use super::{SqlStore, db_err, keys, rollups, summaries};
use crate::artifact_uri::append_to_uri_path;
use crate::history::MetricHistory;
use crate::series::{Series, SeriesQuery};
use crate::store::{RunQuery, RunStore};
use crate::validation::{validate_batch, validate_tag};

pub(super) const RUN_COLUMNS: &str = "r.run_uuid, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";

pub(super) const RUN_NAME_TAG: &str = "mlflow.runName";

/// Largest number of run ids put in one `IN (…)` list.
const IN_CHUNK: usize = 500;

pub(super) fn run_info_from_row(row: &dyn RowExt) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: row.text(0)?,
        experiment_id: row.int(1)?.to_string(),
        run_name: row.text(2)?,
        user_id: row.text(3)?,
        status: RunStatus::parse(&row.text(4)?)?,
        start_time: row.opt_int(5)?,
        end_time: row.opt_int(6)?,
        artifact_uri: row.text(7)?,
        lifecycle_stage: LifecycleStage::parse(&row.text(8)?)?,
    })
}

pub(super) fn run_not_found(run_id: &str) -> Error {
    Error::not_found(format!("Run with id={run_id} not found"))
}

/// Reads a run's lifecycle stage inside a write transaction; errors if it doesn't exist.
async fn run_stage(tx: &mut Transaction<'_, Any>, run_id: &str) -> Result<LifecycleStage> {
    if !is_run_id(run_id) {
        return Err(run_not_found(run_id));
    }
    let mut sql = Sql::new(
        backend_of(tx),
        "SELECT lifecycle_stage FROM runs WHERE run_uuid = ",
    );
    sql.arg(run_id);
    let row = sql.fetch_optional(&mut **tx).await?;
    LifecycleStage::parse(&row.ok_or_else(|| run_not_found(run_id))?.text(0)?)
}

async fn require_active_run(tx: &mut Transaction<'_, Any>, run_id: &str) -> Result<()> {
    require_active(run_id, run_stage(tx, run_id).await?)
}

/// Refuses writes to a deleted run, as MLflow does.
pub(super) fn require_active(run_id: &str, stage: LifecycleStage) -> Result<()> {
    match stage {
        LifecycleStage::Active => Ok(()),
        LifecycleStage::Deleted => Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is deleted."
        ))),
    }
}

/// A param logged again with another value: MLflow keeps the first and refuses the request.
pub(super) fn param_changed(run_id: &str, param: &Param, old: &str) -> Error {
    Error::invalid(format!(
        "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for run ID='{run_id}'. Attempted logging new value '{}'.",
        param.key, param.value
    ))
}

/// Writes run tags; `mlflow.runName` also renames the run, as in MLflow.
async fn upsert_tags(tx: &mut Transaction<'_, Any>, run_id: &str, tags: &[Tag]) -> Result<()> {
    let new_keys = RUN_TAGS.insert_new(tx, run_id, tags).await?;
    RUN_TAGS
        .write(tx, run_id, tags, OnConflict::Overwrite)
        .await?;
    keys::count_new(tx, run_id, KeyKind::Tag, &new_keys).await?;
    if let Some(name) = tags.iter().rev().find(|t| t.key == RUN_NAME_TAG) {
        let mut sql = Sql::new(backend_of(tx), "UPDATE runs SET name = ");
        sql.arg(&name.value).push(" WHERE run_uuid = ").arg(run_id);
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes params, refusing to change the value of one already logged. The check runs after the
/// insert so that, on PostgreSQL, a concurrent writer of the same key is seen.
async fn insert_params(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    params: &[Param],
) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    let new_keys = RUN_PARAMS.insert_new(tx, run_id, params).await?;
    keys::count_new(tx, run_id, KeyKind::Param, &new_keys).await?;
    let keys: Vec<&str> = params.iter().map(|p| p.key.as_str()).collect();
    let mut check = Sql::new(
        backend_of(tx),
        "SELECT key, value FROM params WHERE run_uuid = ",
    );
    check.arg(run_id).push(" AND key IN ").arg_list(&keys);
    let stored: HashMap<String, String> = check
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect::<Result<_>>()?;
    for p in params {
        if let Some(old) = stored.get(&p.key).filter(|old| **old != p.value) {
            return Err(param_changed(run_id, p, old));
        }
    }
    Ok(())
}

async fn insert_metrics(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    metrics: &[Metric],
) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    // The points the insert adds, per key: a point stored before (a retried batch) is not
    // counted again in the summaries.
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut inserted: Vec<Metric> = Vec::new();
    for chunk in chunks_for(metrics, 6, MAX_ARGS) {
        for m in insert_metric_chunk(tx, run_id, chunk).await? {
            *stored.entry(m.key.clone()).or_default() += 1;
            inserted.push(m);
        }
    }
    let new_keys = summaries::record(tx, run_id, metrics, &stored).await?;
    keys::count_new(tx, run_id, KeyKind::Metric, &new_keys).await?;
    rollups::record(tx, run_id, &inserted).await?;
    let linked: Vec<&Metric> = metrics.iter().filter(|m| m.model_id.is_some()).collect();
    for chunk in linked.chunks(MAX_ARGS / 9) {
        let mut sql = Sql::new(
            backend_of(tx),
            "INSERT INTO logged_model_metrics (model_id, run_uuid, key, step, timestamp, value, is_nan, dataset_name, dataset_digest) VALUES ",
        );
        for (i, m) in chunk.iter().enumerate() {
            let (value, is_nan) = encode_metric_value(m.value);
            if i > 0 {
                sql.push(", ");
            }
            sql.tuple([
                Arg::from(m.model_id.clone().unwrap_or_default()),
                Arg::from(run_id),
                Arg::from(&m.key),
                Arg::from(m.step),
                Arg::from(m.timestamp),
                Arg::from(value),
                Arg::from(is_nan),
                Arg::from(m.dataset_name.clone()),
                Arg::from(m.dataset_digest.clone()),
            ]);
        }
        sql.push(" ON CONFLICT DO NOTHING");
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts `chunk` and returns the points it really added. Usually that is all of them, known
/// from the count of rows changed; only when some were stored already (a retried batch) is the
/// insert undone and redone with `RETURNING`, whose rows cost far more to read back than the
/// insert itself.
async fn insert_metric_chunk(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    chunk: &[Metric],
) -> Result<Vec<Metric>> {
    let mut sql = Sql::new(
        backend_of(tx),
        "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES ",
    );
    push_metric_rows(&mut sql, run_id, chunk);
    sql.push(" ON CONFLICT DO NOTHING");
    let mut attempt = sqlx::Connection::begin(&mut **tx).await.map_err(db_err)?;
    if sql.execute(&mut *attempt).await? == chunk.len() as u64 {
        attempt.commit().await.map_err(db_err)?;
        return Ok(chunk.to_vec());
    }
    attempt.rollback().await.map_err(db_err)?;
    sql.push(" RETURNING key, step, timestamp, value, is_nan");
    sql.fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| rollups::inserted_point(row))
        .collect()
}

/// The position after the last of a run's rows in `table` (`run_inputs`, `run_model_inputs`).
async fn next_position(tx: &mut Transaction<'_, Any>, table: &str, run_id: &str) -> Result<i64> {
    let mut sql = Sql::new(
        backend_of(tx),
        &format!("SELECT COALESCE(MAX(position), -1) + 1 FROM {table} WHERE run_uuid = "),
    );
    sql.arg(run_id);
    sql.fetch_one(&mut **tx).await?.int(0)
}

fn push_metric_rows(sql: &mut Sql, run_id: &str, metrics: &[Metric]) {
    for (i, m) in metrics.iter().enumerate() {
        let (value, is_nan) = encode_metric_value(m.value);
        if i > 0 {
            sql.push(", ");
        }
        sql.tuple([
            Arg::from(run_id),
            Arg::from(&m.key),
            Arg::from(m.step),
            Arg::from(m.timestamp),
            Arg::from(value),
            Arg::from(is_nan),
        ]);
    }
}

impl SqlStore {
    /// Attaches latest metrics, params, tags, inputs and outputs to runs, a few queries per
    /// batch of runs rather than per run. Each query's rows are decoded where they are read
    /// (`Sql::read_as`) and then handed to their runs.
    pub(super) async fn load_runs(&self, infos: Vec<RunInfo>) -> Result<Vec<Run>> {
        let mut runs: Vec<Run> = infos
            .into_iter()
            .map(|info| Run {
                info,
                data: RunData::default(),
                inputs: Vec::new(),
                model_inputs: Vec::new(),
                outputs: Vec::new(),
            })
            .collect();
        let index: HashMap<String, usize> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.info.run_id.clone(), i))
            .collect();
        let ids: Vec<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
        let mut metrics = Vec::new();
        let mut params = Vec::new();
        let mut tags = Vec::new();
        let mut inputs = Vec::new();
        let mut model_inputs = Vec::new();
        let mut outputs = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut sql = self.sql(
                "SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_uuid IN ",
            );
            sql.arg_list(chunk).push(" ORDER BY key");
            metrics.extend(
                sql.read_as(&self.bulk_reader, |row| {
                    Ok((
                        row.text(0)?,
                        Metric::new(
                            row.text(1)?,
                            decode_metric_value(row.float(2)?, row.int(3)?),
                            row.int(4)?,
                            row.int(5)?,
                        ),
                    ))
                })
                .await?,
            );
            for (table, out) in [("params", &mut params), ("tags", &mut tags)] {
                let mut sql = self.sql(&format!(
                    "SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN "
                ));
                sql.arg_list(chunk).push(" ORDER BY key");
                out.extend(
                    sql.read_as(&self.bulk_reader, |row| {
                        Ok((row.text(0)?, Tag::new(row.text(1)?, row.text(2)?)))
                    })
                    .await?,
                );
            }
            let mut sql = self.sql(
                "SELECT ri.run_uuid, ri.tags, d.name, d.digest, d.source_type, d.source, d.schema, d.profile \
                 FROM run_inputs ri JOIN datasets d ON d.dataset_uuid = ri.dataset_uuid WHERE ri.run_uuid IN ",
            );
            sql.arg_list(chunk)
                .push(" ORDER BY ri.position, d.name, d.digest");
            inputs.extend(
                sql.read_as(&self.bulk_reader, |row| {
                    let tags: Vec<(String, String)> =
                        serde_json::from_str(&row.text(1)?).unwrap_or_default();
                    Ok((
                        row.text(0)?,
                        DatasetInput {
                            tags: tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
                            dataset: Dataset {
                                name: row.text(2)?,
                                digest: row.text(3)?,
                                source_type: row.text(4)?,
                                source: row.text(5)?,
                                schema: row.opt_text(6)?,
                                profile: row.opt_text(7)?,
                            },
                        },
                    ))
                })
                .await?,
            );
            let mut sql =
                self.sql("SELECT run_uuid, model_id FROM run_model_inputs WHERE run_uuid IN ");
            sql.arg_list(chunk).push(" ORDER BY position");
            model_inputs.extend(
                sql.read_as(&self.bulk_reader, |row| {
                    Ok((
                        row.text(0)?,
                        ModelInput {
                            model_id: row.text(1)?,
                        },
                    ))
                })
                .await?,
            );
            let mut sql =
                self.sql("SELECT run_uuid, model_id, step FROM run_outputs WHERE run_uuid IN ");
            sql.arg_list(chunk).push(" ORDER BY step, model_id");
            outputs.extend(
                sql.read_as(&self.bulk_reader, |row| {
                    Ok((
                        row.text(0)?,
                        ModelOutput {
                            model_id: row.text(1)?,
                            step: row.int(2)?,
                        },
                    ))
                })
                .await?,
            );
        }
        fn owner<'a>(
            runs: &'a mut [Run],
            index: &HashMap<String, usize>,
            run_id: &str,
        ) -> Result<&'a mut Run> {
            index.get(run_id).map(|&i| &mut runs[i]).ok_or_else(|| {
                Error::internal(format!("a row of run {run_id}, which was not asked for"))
            })
        }
        for (run_id, metric) in metrics {
            owner(&mut runs, &index, &run_id)?.data.metrics.push(metric);
        }
        for (run_id, param) in params {
            owner(&mut runs, &index, &run_id)?.data.params.push(param);
        }
        for (run_id, tag) in tags {
            owner(&mut runs, &index, &run_id)?.data.tags.push(tag);
        }
        for (run_id, input) in inputs {
            owner(&mut runs, &index, &run_id)?.inputs.push(input);
        }
        for (run_id, input) in model_inputs {
            owner(&mut runs, &index, &run_id)?.model_inputs.push(input);
        }
        for (run_id, output) in outputs {
            owner(&mut runs, &index, &run_id)?.outputs.push(output);
        }
        Ok(runs)
    }

    pub(super) async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        run_stage(&mut tx, run_id).await?;
        let mut sql = self.sql("UPDATE runs SET lifecycle_stage = ");
        sql.arg(stage.as_str()).push(", deleted_time = ");
        match stage {
            LifecycleStage::Deleted => sql.arg(now_ms()),
            LifecycleStage::Active => sql.push("NULL"),
        };
        sql.push(" WHERE run_uuid = ").arg(run_id);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }
}

/// From this position on, a window of the default order is sought through the index rather
/// than skipped (below it, skipping is as cheap as the two extra reads).
const SEEK_FROM: u64 = 500;

impl SqlStore {
    /// Where a window deep in a plain newest-first listing starts, on SQLite (PostgreSQL sorts
    /// NULL start times first, and its plans differ): the start time at its position, read from
    /// `runs_by_experiment` alone, and how many runs of that same start time to skip.
    async fn seek(&self, q: &RunQuery) -> Result<Option<run_search::Seek>> {
        let offset = crate::search::decode_page_token(q.page_token.as_deref())?;
        if self.backend != super::Backend::Sqlite || offset < SEEK_FROM || !run_search::seekable(q)
        {
            return Ok(None);
        }
        let at = self.sql("SELECT r.start_time FROM runs r");
        let Some(sql) = run_search::start_time_at(at, q, offset)? else {
            return Ok(None);
        };
        let mut start_time = None;
        sql.read(&self.bulk_reader).await?.for_each(|row| {
            start_time = row.opt_int(0)?;
            Ok(())
        })?;
        // Past the end, or among runs without a start time: skip as usual.
        let Some(start_time) = start_time else {
            return Ok(None);
        };
        let count = self.sql("SELECT COUNT(*) FROM runs r");
        let Some(sql) = run_search::started_after(count, q, start_time)? else {
            return Ok(None);
        };
        let mut newer = 0;
        sql.read(&self.bulk_reader).await?.for_each(|row| {
            newer = row.int(0)?;
            Ok(())
        })?;
        Ok(Some(run_search::Seek {
            start_time,
            skip: offset.saturating_sub(u64::try_from(newer).unwrap_or(0)),
        }))
    }
}

/// How many times the searched experiments' runs with the lead metric the metric's index may
/// hold in all before walking it would read more than sorting the experiments' runs.
const LEAD_INDEX_SPREAD: u128 = 4;

impl SqlStore {
    /// The page of a search ordered first by a metric's last value, read from the runs where
    /// that value is a number (`run_search::finite_lead_query`) when they fill it; `None` when
    /// they do not, or when the metric's index is mostly other experiments' runs, whose walk
    /// could cost more than the general query.
    async fn finite_lead_page(&self, q: &RunQuery) -> Result<Option<Page<RunInfo>>> {
        let Some((key, experiment_ids)) = run_search::lead_metric(q)? else {
            return Ok(None);
        };
        let wanted =
            u128::from(Window::parse(q.max_results, q.page_token.as_deref())?.rows_wanted());
        let mut counts = self.sql("SELECT CAST(COALESCE(SUM(CASE WHEN experiment_id IN ");
        counts
            .arg_list(&experiment_ids)
            .push(
                " THEN runs ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(runs), 0) AS BIGINT) \
                   FROM experiment_keys WHERE kind = 'metric' AND key = ",
            )
            .arg(&key);
        let (mut searched, mut all) = (0u128, 0u128);
        counts.read(&self.bulk_reader).await?.for_each(|row| {
            searched = u128::try_from(row.int(0)?).unwrap_or(0);
            all = u128::try_from(row.int(1)?).unwrap_or(0);
            Ok(())
        })?;
        if searched < wanted || all > LEAD_INDEX_SPREAD * searched {
            return Ok(None);
        }
        // SQLite's planner (3.46 on) drives from `runs_by_experiment` when left to choose, which
        // is the sort this read avoids; CROSS JOIN makes it walk the metric's index first.
        let tables = match self.backend {
            super::Backend::Sqlite => "latest_metrics o0 CROSS JOIN runs r",
            super::Backend::Postgres => "runs r JOIN latest_metrics o0",
        };
        let select = self.sql(&format!("SELECT {RUN_COLUMNS} FROM {tables}"));
        let Some((sql, window)) = run_search::finite_lead_query(select, q)? else {
            return Ok(None);
        };
        let page = window.page_of(sql.read_as(&self.bulk_reader, run_info_from_row).await?);
        Ok(page.next_page_token.is_some().then_some(page))
    }
}

#[async_trait]
impl RunStore for SqlStore {
    async fn create_run(&self, new: NewRun) -> Result<Run> {
        let experiment_id = if new.experiment_id.is_empty() {
            "0".to_string()
        } else {
            new.experiment_id.clone()
        };
        let exp_id = parse_experiment_id(&experiment_id)?;
        new.tags.iter().try_for_each(validate_tag)?;
        let run_name = new
            .run_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                new.tags
                    .iter()
                    .find(|t| t.key == RUN_NAME_TAG)
                    .map(|t| t.value.clone())
            })
            .unwrap_or_else(random_run_name);
        let mut tags: Vec<Tag> = new
            .tags
            .into_iter()
            .filter(|t| t.key != RUN_NAME_TAG)
            .collect();
        tags.push(Tag::new(RUN_NAME_TAG, run_name.clone()));

        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut exp = self.sql(
            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ",
        );
        exp.arg(exp_id);
        let row = exp.fetch_optional(&mut *tx).await?;
        let row = row.ok_or_else(|| {
            Error::not_found(format!("No Experiment with id={experiment_id} exists"))
        })?;
        if row.text(1)? != "active" {
            return Err(Error::invalid(format!(
                "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        let run_id = new_run_id();
        let info = RunInfo {
            artifact_uri: append_to_uri_path(&row.text(0)?, &[&run_id, "artifacts"]),
            run_id,
            experiment_id,
            run_name,
            user_id: new.user_id,
            status: RunStatus::Running,
            start_time: Some(new.start_time.unwrap_or_else(now_ms)),
            end_time: None,
            lifecycle_stage: LifecycleStage::Active,
        };
        let mut insert = self.sql(
            "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES (",
        );
        insert
            .arg(&info.run_id)
            .push(", ")
            .arg(exp_id)
            .push(", ")
            .arg(&info.run_name)
            .push(", ")
            .arg(&info.user_id)
            .push(", ")
            .arg(info.status.as_str())
            .push(", ")
            .arg(info.start_time)
            .push(", NULL, ")
            .arg(&info.artifact_uri)
            .push(", 'active')");
        insert.execute(&mut *tx).await?;
        upsert_tags(&mut tx, &info.run_id, &tags).await?;
        // Lineage: the run is an execution in its experiment's context.
        let run_node = ensure_node(
            &mut tx,
            NodeKind::Execution,
            &NewNode {
                name: info.run_name.clone(),
                ..lineage::run_node(&info.run_id)
            },
        )
        .await?;
        let experiment = ensure_node(
            &mut tx,
            NodeKind::Context,
            &NewNode {
                node_type: "experiment".into(),
                name: format!("experiment {exp_id}"),
                uri: None,
                external_id: Some(format!("experiment:{exp_id}")),
                properties: None,
            },
        )
        .await?;
        lineage::associate(&mut tx, experiment, run_node).await?;
        tx.commit().await.map_err(db_err)?;
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Run {
            info,
            data: RunData {
                tags,
                ..RunData::default()
            },
            inputs: Vec::new(),
            model_inputs: Vec::new(),
            outputs: Vec::new(),
        })
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        if !is_run_id(run_id) {
            return Err(run_not_found(run_id));
        }
        let mut sql = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = "
        ));
        sql.arg(run_id);
        let row = sql.fetch_optional(&self.reader).await?;
        let info = run_info_from_row(&row.ok_or_else(|| run_not_found(run_id))?)?;
        Ok(self.load_runs(vec![info]).await?.remove(0))
    }

    async fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_active_run(&mut tx, run_id).await?;
        let mut sql = self.sql("UPDATE runs SET run_uuid = run_uuid");
        if let Some(status) = update.status {
            sql.push(", status = ").arg(status.as_str());
        }
        if let Some(end_time) = update.end_time {
            sql.push(", end_time = ").arg(end_time);
        }
        sql.push(" WHERE run_uuid = ").arg(run_id);
        sql.execute(&mut *tx).await?;
        if let Some(name) = update.run_name.filter(|n| !n.is_empty()) {
            validate_tag(&Tag::new(RUN_NAME_TAG, name.clone()))?;
            upsert_tags(&mut tx, run_id, &[Tag::new(RUN_NAME_TAG, name)]).await?;
        }
        let mut read = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = "
        ));
        read.arg(run_id);
        let info = run_info_from_row(&read.fetch_one(&mut *tx).await?)?;
        tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Deleted).await
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Active).await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> Result<()> {
        validate_batch(metrics, params, tags)?;
        if let Some(native) = &self.native_writer {
            let batch = Batch {
                run_id: run_id.to_owned(),
                metrics: metrics.to_vec(),
                params: params.to_vec(),
                tags: tags.to_vec(),
            };
            return native.log_batch(batch).await;
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_active_run(&mut tx, run_id).await?;
        insert_params(&mut tx, run_id, params).await?;
        if !tags.is_empty() {
            upsert_tags(&mut tx, run_id, tags).await?;
        }
        insert_metrics(&mut tx, run_id, metrics).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_active_run(&mut tx, run_id).await?;
        if !RUN_TAGS.delete(&mut tx, run_id, key).await? {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        keys::uncount(&mut tx, run_id, KeyKind::Tag, key).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        inputs: &[DatasetInput],
        models: &[ModelInput],
    ) -> Result<()> {
        if inputs.len() > 1000 {
            return Err(Error::invalid(
                "A log_inputs request can contain at most 1000 datasets",
            ));
        }
        for input in inputs {
            if input.dataset.name.is_empty() || input.dataset.digest.is_empty() {
                return Err(Error::invalid(
                    "Every dataset input needs a name and a digest",
                ));
            }
            input.tags.iter().try_for_each(validate_tag)?;
        }
        if models.iter().any(|m| m.model_id.is_empty()) {
            return Err(Error::invalid("Every model input needs a model_id"));
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_active_run(&mut tx, run_id).await?;
        let mut exp = self.sql("SELECT experiment_id FROM runs WHERE run_uuid = ");
        exp.arg(run_id);
        let exp_id = exp.fetch_one(&mut *tx).await?.int(0)?;
        // New inputs go after those already logged; one logged again keeps its position.
        let first_position = next_position(&mut tx, "run_inputs", run_id).await?;
        for (position, input) in (first_position..).zip(inputs) {
            let d = &input.dataset;
            let mut upsert = self.sql(
                "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) VALUES (",
            );
            upsert
                .arg(new_run_id())
                .push(", ")
                .arg(exp_id)
                .push(", ")
                .arg(&d.name)
                .push(", ")
                .arg(&d.digest)
                .push(", ")
                .arg(&d.source_type)
                .push(", ")
                .arg(&d.source)
                .push(", ")
                .arg(d.schema.clone())
                .push(", ")
                .arg(d.profile.clone())
                .push(") ON CONFLICT (experiment_id, name, digest) DO NOTHING");
            upsert.execute(&mut *tx).await?;
            let mut find = self.sql("SELECT dataset_uuid FROM datasets WHERE experiment_id = ");
            find.arg(exp_id)
                .push(" AND name = ")
                .arg(&d.name)
                .push(" AND digest = ")
                .arg(&d.digest);
            let dataset_uuid = find.fetch_one(&mut *tx).await?.text(0)?;
            let context = input
                .tags
                .iter()
                .find(|t| t.key == "mlflow.data.context")
                .map(|t| t.value.clone());
            let tags_json = serde_json::to_string(
                &input
                    .tags
                    .iter()
                    .map(|t| (t.key.as_str(), t.value.as_str()))
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| Error::internal_from("cannot encode dataset input tags", e))?;
            let mut link = self.sql(
                "INSERT INTO run_inputs (run_uuid, dataset_uuid, context, tags, position) VALUES (",
            );
            link.arg(run_id)
                .push(", ")
                .arg(dataset_uuid)
                .push(", ")
                .arg(context)
                .push(", ")
                .arg(tags_json)
                .push(", ")
                .arg(position)
                .push(") ON CONFLICT (run_uuid, dataset_uuid) DO UPDATE SET context = excluded.context, tags = excluded.tags");
            link.execute(&mut *tx).await?;
            let dataset = ensure_node(
                &mut tx,
                NodeKind::Artifact,
                &NewNode {
                    node_type: "dataset".into(),
                    name: d.name.clone(),
                    uri: Some(d.source.clone()).filter(|s| !s.is_empty()),
                    external_id: Some(format!("dataset:{exp_id}/{}@{}", d.name, d.digest)),
                    properties: None,
                },
            )
            .await?;
            let run_node =
                ensure_node(&mut tx, NodeKind::Execution, &lineage::run_node(run_id)).await?;
            lineage::link(&mut tx, dataset, run_node, EventKind::Input).await?;
        }
        let first_position = next_position(&mut tx, "run_model_inputs", run_id).await?;
        for (position, input) in (first_position..).zip(models) {
            let mut sql =
                self.sql("INSERT INTO run_model_inputs (run_uuid, model_id, position) VALUES (");
            sql.arg(run_id)
                .push(", ")
                .arg(&input.model_id)
                .push(", ")
                .arg(position)
                .push(") ON CONFLICT (run_uuid, model_id) DO NOTHING");
            sql.execute(&mut *tx).await?;
            // Lineage: a model the run read is one of its inputs, as a dataset is.
            let model = ensure_node(
                &mut tx,
                NodeKind::Artifact,
                &lineage::logged_model_node(&input.model_id, None),
            )
            .await?;
            let run_node =
                ensure_node(&mut tx, NodeKind::Execution, &lineage::run_node(run_id)).await?;
            lineage::link(&mut tx, model, run_node, EventKind::Input).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn log_outputs(&self, run_id: &str, outputs: &[ModelOutput]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        require_active_run(&mut tx, run_id).await?;
        for output in outputs {
            let mut sql = self.sql("INSERT INTO run_outputs (run_uuid, model_id, step) VALUES (");
            sql.arg(run_id)
                .push(", ")
                .arg(&output.model_id)
                .push(", ")
                .arg(output.step)
                .push(") ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step");
            sql.execute(&mut *tx).await?;
            let model = ensure_node(
                &mut tx,
                NodeKind::Artifact,
                &lineage::logged_model_node(&output.model_id, None),
            )
            .await?;
            let run_node =
                ensure_node(&mut tx, NodeKind::Execution, &lineage::run_node(run_id)).await?;
            lineage::link(&mut tx, model, run_node, EventKind::Output).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        self.metric_history(run_id, key, max_results, page_token)?
            .collect()
            .await
    }

    async fn stream_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<MetricHistory> {
        self.metric_history(run_id, key, max_results, page_token)
    }

    async fn metric_series(&self, query: &SeriesQuery) -> Result<Series> {
        self.downsample(query).await
    }

    async fn search_runs(&self, q: &RunQuery) -> Result<Page<Run>> {
        let page = match self.finite_lead_page(q).await? {
            Some(page) => page,
            None => {
                let select = self.sql(&format!("SELECT {RUN_COLUMNS} FROM runs r"));
                let seek = self.seek(q).await?;
                let Some((sql, window)) = run_search::runs_query_from(select, q, seek)? else {
                    return Ok(Page {
                        items: Vec::new(),
                        next_page_token: None,
                    });
                };
                window.page_of(sql.read_as(&self.bulk_reader, run_info_from_row).await?)
            }
        };
        let items = self.load_runs(page.items).await?;
        let next_page_token = page.next_page_token;
        Ok(Page {
            items,
            next_page_token,
        })
    }
}

//! Training sets on Spark: the plan's join as Spark SQL ([`sql`]), run by a PySpark job
//! (`job.py`) that `spark-submit` starts ([`submit`]).
//!
//! twinloop stages what it alone reads the way the embedded engine does: the entity rows, each
//! with its row number, its time in µs and every view's join keys normalized (the CSV rules,
//! the key casts), as Parquet. Spark reads the sources itself, with the rows pushed to them,
//! and writes one row per entity row: its number, whether each view matched, the features.
//! That result is read back, checked to hold every entity row exactly once, and written beside
//! the entity file's own columns in input order, so the output is the file the embedded engine
//! writes: the same columns, types and order.

mod sql;
mod submit;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use twinloop_core::{Error, Result};

use super::entities::{EntityReader, OutputWriter};
use super::plan::{self, ViewJob};
use super::{HistoricalRequest, HistoricalSummary, internal};
use crate::keys::{cast_to, normalize};
use crate::progress::{Progress, Stage};
use crate::repo::{FeatureRepo, SparkConfig};
use crate::source::push_log_dir;
use crate::time::micros_column;

const JOB: &str = include_str!("job.py");

pub(super) async fn get_historical(
    repo: &FeatureRepo,
    request: &HistoricalRequest,
    config: &SparkConfig,
) -> Result<HistoricalSummary> {
    for r in &request.features {
        if repo.view(&r.view).is_some_and(|v| v.sql.is_some()) {
            return Err(Error::invalid(format!(
                "feature view {:?} computes its features with sql:, which is DataFusion's \
                 dialect; the Spark engine reads plain sources only (use --engine embedded)",
                r.view
            )));
        }
    }
    let program = submit::configured_program(config)?;
    let staging = tempfile::Builder::new()
        .prefix("twinloop-spark-")
        .tempdir()
        .map_err(|e| Error::internal("temporary directory").with_source(e))?;
    let dir = staging.path();
    let reader = EntityReader::open(&request.entities)?;
    let ts_column = reader.timestamp_column(request.timestamp_column.as_deref())?;
    let plan = plan::plan(
        repo,
        &request.features,
        request.full_feature_names,
        &reader.schema,
        dir,
        request.memory_limit,
    )
    .await?;
    let started = std::time::Instant::now();
    let entities = dir.join("entities.parquet");
    let rows = stage_entities(reader, &ts_column, &plan.jobs, &entities, &request.progress)?;

    let views: Vec<sql::ViewSql<'_>> = plan
        .jobs
        .iter()
        .map(|job| {
            let view = &job.layout.view;
            sql::ViewSql {
                join_keys: &job.layout.join_keys,
                key_types: &job.layout.key_types,
                timestamp_field: &job.layout.timestamp_field,
                created_field: job.layout.created_field.as_deref(),
                features: job
                    .features
                    .iter()
                    .map(|&f| (view.features[f].name.as_str(), view.features[f].dtype))
                    .collect(),
                ttl_micros: view.ttl_micros,
            }
        })
        .collect();
    let query = sql::training_set_sql(&views, &plan.slots);
    let sources = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| source_entry(repo, job, j))
        .collect::<Vec<_>>();
    let (job_path, plan_path) = (dir.join("job.py"), dir.join("plan.json"));
    let (result, stats) = (dir.join("result"), dir.join("stats.json"));
    let job_plan = json!({
        "entities": entities.display().to_string(),
        "sources": sources,
        "sql": query,
        "output": result.display().to_string(),
        "stats": stats.display().to_string(),
    });
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text)
            .map_err(|e| Error::internal(format!("writing {}", path.display())).with_source(e))
    };
    write(&job_path, JOB)?;
    write(&plan_path, &job_plan.to_string())?;
    tracing::debug!(rows, elapsed = ?started.elapsed(), "entity rows staged for Spark");

    let log = dir.join("spark.log");
    if let Some(why) = submit::run(&program, config, &job_path, &plan_path, dir, &log).await? {
        let kept = staging.keep();
        return Err(Error::invalid(format!(
            "the Spark job ({}) failed with {why} (its plan, job and whole log are kept in {})",
            program.display(),
            kept.display()
        )));
    }
    tracing::debug!(elapsed = ?started.elapsed(), "Spark job finished");

    let source_rows = read_source_rows(&stats, &plan.jobs)?;
    let joined = Joined::read(&result, rows, plan.jobs.len())?;
    write_output(
        request,
        &joined,
        &plan.out_schema,
        plan.feature_columns.len(),
    )?;
    tracing::debug!(elapsed = ?started.elapsed(), "training set written");
    Ok(HistoricalSummary {
        rows,
        feature_columns: plan.feature_columns,
        matched: plan
            .jobs
            .iter()
            .zip(&joined.matched)
            .map(|(job, &m)| (job.layout.view.name.clone(), m))
            .collect(),
        source_rows,
        spilled_bytes: 0,
        schema: plan.out_schema,
    })
}

/// Where and how the job reads view `j`'s source.
fn source_entry(repo: &FeatureRepo, job: &ViewJob, j: usize) -> serde_json::Value {
    let source = repo
        .source(&job.layout.view.source)
        .expect("checked when the repository was loaded");
    let location = if let Some(rest) = source.path.strip_prefix("s3://") {
        // Hadoop's S3 file system answers to s3a:// (it needs hadoop-aws on Spark's classpath).
        format!("s3a://{rest}")
    } else if source.path.contains("://") || Path::new(&source.path).is_absolute() {
        source.path.clone()
    } else {
        repo.root.join(&source.path).display().to_string()
    };
    let csv = location.ends_with(".csv");
    // DataFusion reads only the .parquet files of a directory, and of any remote location;
    // Spark would read them all.
    let remote = location.contains("://");
    let glob_filter = (!csv && (remote || Path::new(&location).is_dir())).then_some("*.parquet");
    let log = push_log_dir(repo, &source.name);
    let has_log = std::fs::read_dir(&log)
        .map(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "parquet")))
        })
        .unwrap_or(false);
    json!({
        "table": format!("twinloop_source_{j}"),
        "view": job.layout.view.name,
        "location": location,
        "format": if csv { "csv" } else { "parquet" },
        "glob_filter": glob_filter,
        "push_log": has_log.then(|| log.display().to_string()),
    })
}

/// Writes `entity_row`, `entity_ts` (µs) and every view's join keys, normalized to the types
/// its source's keys are compared as, as `v{j}_k{i}`. Returns the number of rows.
fn stage_entities(
    reader: EntityReader,
    ts_column: &str,
    jobs: &[ViewJob],
    path: &Path,
    progress: &Progress,
) -> Result<usize> {
    let mut fields = vec![
        Field::new("entity_row", DataType::Int64, false),
        Field::new("entity_ts", DataType::Int64, true),
    ];
    for (j, job) in jobs.iter().enumerate() {
        for (i, t) in job.layout.key_types.iter().enumerate() {
            fields.push(Field::new(format!("v{j}_k{i}"), t.clone(), true));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let file = std::fs::File::create(path)
        .map_err(|e| Error::internal("staging the entity rows").with_source(e))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)
        .map_err(|e| Error::internal("staging the entity rows").with_source(e))?;
    let stage = Stage::EntityRows;
    progress.started(&stage, Some(reader.rows as u64));
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch?;
        let ts = batch.column_by_name(ts_column).ok_or_else(|| {
            Error::invalid(format!("the entity file has no column {ts_column:?}"))
        })?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                rows as i64..(rows + batch.num_rows()) as i64,
            )),
            Arc::new(micros_column(ts_column, ts)?),
        ];
        for job in jobs {
            for (key, t) in job.layout.join_keys.iter().zip(&job.layout.key_types) {
                let column = batch.column_by_name(key).ok_or_else(|| {
                    Error::invalid(format!("the entity file has no column {key:?}"))
                })?;
                columns.push(
                    normalize(key, column, t)
                        .map_err(|e| Error::invalid(format!("entity file: {}", e.message)))?,
                );
            }
        }
        let staged = RecordBatch::try_new(schema.clone(), columns).map_err(internal)?;
        writer
            .write(&staged)
            .map_err(|e| Error::internal("staging the entity rows").with_source(e))?;
        rows += batch.num_rows();
        progress.advanced(&stage, rows as u64);
    }
    writer
        .close()
        .map_err(|e| Error::internal("staging the entity rows").with_source(e))?;
    progress.finished(&stage);
    Ok(rows)
}

/// The source rows each view read, as the job counted them.
fn read_source_rows(stats: &Path, jobs: &[ViewJob]) -> Result<Vec<(String, usize)>> {
    let text = std::fs::read_to_string(stats)
        .map_err(|e| Error::internal("the Spark job wrote no statistics").with_source(e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::internal("the Spark job's statistics").with_source(e))?;
    Ok(jobs
        .iter()
        .map(|job| {
            let name = job.layout.view.name.clone();
            let read = value["source_rows"][&name].as_u64().unwrap_or(0) as usize;
            (name, read)
        })
        .collect())
}

/// The job's result, indexed by entity row.
struct Joined {
    /// `entity_row`, `matched_{j}`…, `c{i}`… of every result row.
    batch: RecordBatch,
    /// Per entity row, its row in `batch`.
    position: Vec<u32>,
    /// Per view, the entity rows that found a feature row.
    matched: Vec<usize>,
}

impl Joined {
    fn read(dir: &Path, rows: usize, views: usize) -> Result<Joined> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::internal("the Spark job wrote no result").with_source(e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        let mut batches = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        for path in files {
            let file = std::fs::File::open(&path)
                .map_err(|e| Error::internal("the Spark job's result").with_source(e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.with_batch_size(65_536).build())
                .map_err(|e| Error::internal("the Spark job's result").with_source(e))?;
            schema.get_or_insert_with(|| reader.schema());
            for batch in reader {
                batches.push(batch.map_err(internal)?);
            }
        }
        let Some(schema) = schema else {
            return Err(Error::internal("the Spark job wrote no result file"));
        };
        let batch = arrow::compute::concat_batches(&schema, &batches).map_err(internal)?;
        let ids = batch
            .column_by_name("entity_row")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| Error::internal("the Spark job's result has no entity_row"))?;
        let mut position = vec![u32::MAX; rows];
        for (r, id) in ids.iter().enumerate() {
            let slot = id
                .and_then(|id| usize::try_from(id).ok())
                .and_then(|id| position.get_mut(id))
                .filter(|slot| **slot == u32::MAX)
                .ok_or_else(|| {
                    Error::internal(format!(
                        "the Spark job returned entity row {id:?} twice or out of range"
                    ))
                })?;
            *slot = r as u32;
        }
        if batch.num_rows() != rows {
            return Err(Error::internal(format!(
                "the Spark job returned {} rows for {rows} entity rows",
                batch.num_rows()
            )));
        }
        let matched = (0..views)
            .map(|j| {
                batch
                    .column_by_name(&format!("matched_{j}"))
                    .and_then(|c| c.as_boolean_opt())
                    .map(|m| m.true_count())
                    .ok_or_else(|| Error::internal(format!("the Spark job's result: matched_{j}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Joined {
            batch,
            position,
            matched,
        })
    }
}

/// Writes the entity file's rows in input order, each with its features from `joined`.
fn write_output(
    request: &HistoricalRequest,
    joined: &Joined,
    out_schema: &SchemaRef,
    feature_count: usize,
) -> Result<()> {
    let stage = Stage::Writing;
    let progress = &request.progress;
    progress.started(&stage, Some(joined.position.len() as u64));
    let fields = out_schema.fields();
    let features: Vec<(&ArrayRef, &DataType)> = fields[fields.len() - feature_count..]
        .iter()
        .enumerate()
        .map(|(i, field)| {
            joined
                .batch
                .column_by_name(&format!("c{i}"))
                .map(|c| (c, field.data_type()))
                .ok_or_else(|| Error::internal(format!("the Spark job's result: c{i}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut writer = OutputWriter::create(&request.output, out_schema.clone())?;
    let mut lo = 0usize;
    for batch in EntityReader::open(&request.entities)? {
        let batch = batch?;
        let hi = lo + batch.num_rows();
        if hi > joined.position.len() {
            return Err(Error::invalid(format!(
                "the entity file {} grew while the join ran",
                request.entities.display()
            )));
        }
        let indices = UInt32Array::from(joined.position[lo..hi].to_vec());
        let mut columns = batch.columns().to_vec();
        for (column, want) in &features {
            let taken = take(column.as_ref(), &indices, None).map_err(internal)?;
            columns.push(cast_to(&taken, want)?);
        }
        let out = RecordBatch::try_new(out_schema.clone(), columns)
            .map_err(|e| Error::internal("training set batch").with_source(e))?;
        writer.write(&out)?;
        progress.advanced(&stage, hi as u64);
        lo = hi;
    }
    if lo != joined.position.len() {
        return Err(Error::invalid(format!(
            "the entity file {} shrank while the join ran",
            request.entities.display()
        )));
    }
    writer.finish()?;
    progress.finished(&stage);
    Ok(())
}

//! Point-in-time-correct training sets (`get-historical`).
//!
//! The entity file is read once and each view's entity rows are hash-partitioned by key; each
//! view's source rows are partitioned the same way; each partition pair is joined by a
//! sort-merge as-of join ([`asof`]); the per-partition results, ordered by input row, are merged
//! back into the input order while the output is written. Partitions live in memory until the
//! memory limit is reached and then spill to Arrow IPC files ([`spill`]), so no step holds more
//! than one partition of one view, whatever the size of the inputs.
//!
//! With `offline_store: {type: spark}` the same join runs as Spark SQL instead ([`spark`]): the
//! plan and the output are shared, the join between them is Spark's.

mod asof;
mod entities;
mod join;
mod merge;
mod partition;
mod plan;
mod spark;
mod spill;

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use twinloop_core::{Error, Result};

use crate::progress::Progress;
use crate::repo::{FeatureRef, FeatureRepo, OfflineStoreConfig};
pub use entities::EntityReader;
use merge::MergeInput;

/// Hash partitions per view; enough that one partition of a source many times larger than
/// memory still fits.
const PARTITIONS: usize = 16;

#[derive(Debug, Clone)]
pub struct HistoricalRequest {
    pub entities: PathBuf,
    pub features: Vec<FeatureRef>,
    pub full_feature_names: bool,
    pub timestamp_column: Option<String>,
    pub output: PathBuf,
    /// Bytes of partition data kept in memory before spilling to disk.
    pub memory_limit: usize,
    pub progress: Progress,
}

#[derive(Debug, Clone)]
pub struct HistoricalSummary {
    pub rows: usize,
    pub feature_columns: Vec<String>,
    /// Rows with at least one feature found, per view.
    pub matched: Vec<(String, usize)>,
    pub source_rows: Vec<(String, usize)>,
    pub spilled_bytes: usize,
    pub schema: SchemaRef,
}

/// Builds the training set with the repository's offline engine.
pub async fn get_historical(
    repo: &FeatureRepo,
    request: &HistoricalRequest,
) -> Result<HistoricalSummary> {
    match &repo.config.offline_store {
        OfflineStoreConfig::Embedded {} => embedded(repo, request).await,
        OfflineStoreConfig::Spark(config) => spark::get_historical(repo, request, config).await,
    }
}

/// Builds the training set in stages: plan the views, partition the entity rows, then per view
/// partition its source rows and join partition by partition, and finally merge the results
/// back into input order while writing.
async fn embedded(repo: &FeatureRepo, request: &HistoricalRequest) -> Result<HistoricalSummary> {
    let spill_dir = tempfile::Builder::new()
        .prefix("twinloop-pit-")
        .tempdir()
        .map_err(|e| Error::internal("temporary directory").with_source(e))?;
    let spill = spill_dir.path();
    let reader = EntityReader::open(&request.entities)?;
    let ts_column = reader.timestamp_column(request.timestamp_column.as_deref())?;
    let entity_schema = reader.schema.clone();
    let mut plan = plan::plan(
        repo,
        &request.features,
        request.full_feature_names,
        &entity_schema,
        spill,
        request.memory_limit,
    )
    .await?;

    let started = std::time::Instant::now();
    let entities = partition::partition_entities(
        reader,
        &ts_column,
        &mut plan.jobs,
        request.memory_limit,
        &request.progress,
    )?;
    tracing::debug!(rows = entities.rows, elapsed = ?started.elapsed(), "entity rows partitioned");

    let mut views = Vec::new();
    let mut matched = Vec::new();
    let mut source_rows = Vec::new();
    let mut spilled = 0usize;
    let result_budget = request.memory_limit / 4 / plan.jobs.len().max(1);
    for (j, job) in plan.jobs.into_iter().enumerate() {
        let name = job.layout.view.name.clone();
        let (feature_parts, read) = partition::partition_source(
            repo,
            &job,
            &format!("features-{j}"),
            &entities,
            spill,
            request.memory_limit / 2,
            &request.progress,
        )
        .await?;
        tracing::debug!(view = %name, read, elapsed = ?started.elapsed(), "source rows partitioned");
        source_rows.push((name.clone(), read));
        spilled += feature_parts.spilled_bytes() + job.entity_parts.spilled_bytes();
        let joined = join::join_view(
            &job.layout.view,
            &job.features,
            job.entity_parts,
            feature_parts,
            &format!("result-{j}"),
            spill,
            result_budget,
        )?;
        tracing::debug!(view = %name, elapsed = ?started.elapsed(), "partitions joined");
        matched.push((name, joined.matched));
        spilled += joined.spilled_bytes;
        views.push(joined);
    }

    let rows = entities.rows;
    merge::merge_and_write(
        MergeInput {
            entities: &request.entities,
            kept: entities.kept,
            rows,
            views,
            slots: &plan.slots,
        },
        &request.output,
        &plan.out_schema,
        &request.progress,
    )?;
    tracing::debug!(elapsed = ?started.elapsed(), "training set written");
    Ok(HistoricalSummary {
        rows,
        feature_columns: plan.feature_columns,
        matched,
        source_rows,
        spilled_bytes: spilled,
        schema: plan.out_schema,
    })
}

fn internal(e: arrow::error::ArrowError) -> Error {
    Error::internal("point-in-time join").with_source(e)
}

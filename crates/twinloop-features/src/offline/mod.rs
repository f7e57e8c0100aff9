//! Point-in-time-correct training sets (`get-historical`).
//!
//! The entity file is read once and each view's entity rows are hash-partitioned by key; each
//! view's source rows are partitioned the same way; each partition pair is joined by a
//! sort-merge as-of join ([`asof`]); the per-partition results, ordered by input row, are merged
//! back into the input order while the output is written. Partitions live in memory until the
//! memory limit is reached and then spill to Arrow IPC files ([`spill`]), so no step holds more
//! than one partition of one view, whatever the size of the inputs.

mod asof;
mod entities;
mod spill;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Int64Array, RecordBatch, UInt32Array, UInt64Array,
    new_null_array,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::{interleave, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use twinloop_core::{Error, Result};

use crate::keys::{EncodedKeys, normalize};
use crate::repo::{FeatureRef, FeatureRepo};
use crate::source::{self, ViewLayout};
use crate::time::micros_column;
pub use entities::EntityReader;
use entities::OutputWriter;
use spill::{PartStream, Partitions};

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
    pub progress: bool,
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

/// One view's part of the request.
struct ViewJob {
    layout: ViewLayout,
    /// Positions in the view's feature list of the requested features, in request order.
    features: Vec<usize>,
    entity_parts: Partitions,
}

pub async fn get_historical(
    repo: &FeatureRepo,
    request: &HistoricalRequest,
) -> Result<HistoricalSummary> {
    let spill_dir = tempfile::Builder::new()
        .prefix("twinloop-pit-")
        .tempdir()
        .map_err(|e| Error::internal(format!("temporary directory: {e}")))?;
    let reader = EntityReader::open(&request.entities)?;
    let ts_column = reader.timestamp_column(request.timestamp_column.as_deref())?;
    let entity_schema = reader.schema.clone();

    // Which views, which of their features, and where each lands in the output.
    let mut jobs: Vec<ViewJob> = Vec::new();
    let mut output_slots: Vec<(usize, usize)> = Vec::new();
    let mut names: HashMap<String, String> = entity_schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), "the entity file".to_string()))
        .collect();
    let views_requested = distinct_views(&request.features);
    let entity_budget = request.memory_limit / 4 / views_requested.max(1);
    for r in &request.features {
        let view = repo
            .view(&r.view)
            .ok_or_else(|| Error::invalid(format!("unknown feature view {:?}", r.view)))?;
        let position = view
            .features
            .iter()
            .position(|f| f.name == r.feature)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "feature view {:?} has no feature {:?}",
                    r.view, r.feature
                ))
            })?;
        let name = r.column_name(request.full_feature_names);
        if let Some(owner) = names.insert(name.clone(), format!("feature view {:?}", r.view)) {
            return Err(Error::invalid(format!(
                "feature column {name:?} from {r} clashes with a column of {owner}; use --full-feature-names"
            )));
        }
        let job = match jobs.iter().position(|j| j.layout.view.name == r.view) {
            Some(j) => j,
            None => {
                let layout = source::layout(repo, view).await?;
                for key in &layout.join_keys {
                    if entity_schema.field_with_name(key).is_err() {
                        return Err(Error::invalid(format!(
                            "the entity file has no column {key:?}, a join key of feature view {:?}",
                            view.name
                        )));
                    }
                }
                let schema = Arc::new(Schema::new(vec![
                    Field::new("key", DataType::Binary, false),
                    Field::new("ts", DataType::Int64, false),
                    Field::new("row", DataType::UInt64, false),
                ]));
                let label = format!("entities-{}", jobs.len());
                jobs.push(ViewJob {
                    layout,
                    features: Vec::new(),
                    entity_parts: Partitions::new(
                        schema,
                        PARTITIONS,
                        spill_dir.path().into(),
                        &label,
                        entity_budget,
                    ),
                });
                jobs.len() - 1
            }
        };
        output_slots.push((job, jobs[job].features.len()));
        jobs[job].features.push(position);
    }
    let mut out_fields: Vec<Field> = entity_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut feature_columns = Vec::new();
    for (r, &(job, slot)) in request.features.iter().zip(&output_slots) {
        let feature = &jobs[job].layout.view.features[jobs[job].features[slot]];
        let name = r.column_name(request.full_feature_names);
        out_fields.push(Field::new(&name, feature.dtype.arrow(), true));
        feature_columns.push(name);
    }
    let out_schema: SchemaRef = Arc::new(Schema::new(out_fields));

    let started = std::time::Instant::now();
    // Phase 1: partition the entity rows of every view; keep the batches when they are small.
    let bar = progress_bar(request.progress, reader.rows as u64, "entity rows");
    let mut kept: Option<Vec<RecordBatch>> = Some(Vec::new());
    let mut kept_bytes = 0usize;
    let mut rows = 0usize;
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for batch in reader {
        let batch = batch?;
        let ts = micros_column(
            &ts_column,
            batch.column_by_name(&ts_column).expect("checked"),
        )?;
        if let Some(lo) = arrow::compute::min(&ts) {
            min_ts = min_ts.min(lo);
        }
        if let Some(hi) = arrow::compute::max(&ts) {
            max_ts = max_ts.max(hi);
        }
        let row_ids = UInt64Array::from_iter_values(rows as u64..(rows + batch.num_rows()) as u64);
        for job in &mut jobs {
            let key_columns = job
                .layout
                .join_keys
                .iter()
                .zip(&job.layout.key_types)
                .map(|(k, t)| normalize(k, batch.column_by_name(k).expect("checked"), t))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| Error::invalid(format!("entity file: {}", e.message)))?;
            let keys = EncodedKeys::encode(&key_columns);
            let columns: Vec<ArrayRef> = vec![Arc::new(ts.clone()), Arc::new(row_ids.clone())];
            partition_into(&mut job.entity_parts, &keys, ts.nulls(), &columns)?;
        }
        rows += batch.num_rows();
        bar.inc(batch.num_rows() as u64);
        if let Some(batches) = kept.as_mut() {
            kept_bytes += batch.get_array_memory_size();
            if kept_bytes > request.memory_limit / 8 {
                kept = None;
            } else {
                batches.push(batch);
            }
        }
    }
    bar.finish_and_clear();
    tracing::debug!(rows, elapsed = ?started.elapsed(), "entity rows partitioned");

    // Phase 2: per view, partition the source rows and join partition by partition.
    let mut results: Vec<(SchemaRef, Vec<PartStream>)> = Vec::new();
    let mut matched = Vec::new();
    let mut source_rows = Vec::new();
    let mut spilled = 0usize;
    let result_budget = request.memory_limit / 4 / jobs.len().max(1);
    for (j, job) in jobs.into_iter().enumerate() {
        let view = job.layout.view.clone();
        let bar = spinner(request.progress, &format!("{}: source rows", view.name));
        let wanted: Vec<usize> = job.features.clone();
        let mut fields = vec![
            Field::new("key", DataType::Binary, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("created", DataType::Int64, false),
        ];
        for &f in &wanted {
            fields.push(Field::new(
                format!("f{f}"),
                view.features[f].dtype.arrow(),
                true,
            ));
        }
        let feature_parts = Partitions::new(
            Arc::new(Schema::new(fields)),
            PARTITIONS,
            spill_dir.path().into(),
            &format!("features-{j}"),
            request.memory_limit / 2,
        );
        let ttl = view.ttl_micros;
        let earliest = ttl.map_or(i64::MIN, |t| min_ts.saturating_sub(t));
        let (_, streams) = source::scan_partitioned(repo, &view).await?;
        let feature_parts = Arc::new(Mutex::new(feature_parts));
        let read_rows = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for mut stream in streams {
            let (parts, read_rows, bar, wanted) = (
                feature_parts.clone(),
                read_rows.clone(),
                bar.clone(),
                wanted.clone(),
            );
            // Each DataFusion partition is converted and routed on its own task (and core).
            tasks.push(tokio::spawn(async move {
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    let n = read_rows.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
                    bar.set_position((n + batch.len()) as u64);
                    let routed = route_source_batch(&batch, &wanted, max_ts, earliest, &parts)?;
                    let mut parts = parts.lock().expect("no panics while held");
                    for (p, b) in routed {
                        parts.push(p, b)?;
                    }
                }
                Ok::<(), Error>(())
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| Error::internal(format!("source reader: {e}")))??;
        }
        let read = read_rows.load(std::sync::atomic::Ordering::Relaxed);
        let feature_parts = Arc::try_unwrap(feature_parts)
            .map_err(|_| Error::internal("source readers still running"))?
            .into_inner()
            .expect("no panics while held");
        bar.finish_and_clear();
        tracing::debug!(view = %view.name, read, elapsed = ?started.elapsed(), "source rows partitioned");
        source_rows.push((view.name.clone(), read));
        spilled += feature_parts.spilled_bytes() + job.entity_parts.spilled_bytes();

        let result_schema = {
            let mut fields = vec![Field::new("row", DataType::UInt64, false)];
            for &f in &wanted {
                fields.push(Field::new(
                    format!("f{f}"),
                    view.features[f].dtype.arrow(),
                    true,
                ));
            }
            Arc::new(Schema::new(fields))
        };
        let result_parts = Mutex::new(Partitions::new(
            result_schema.clone(),
            PARTITIONS,
            spill_dir.path().into(),
            &format!("result-{j}"),
            result_budget,
        ));
        let schemas = (job.entity_parts.schema(), feature_parts.schema());
        let pairs = Mutex::new(
            job.entity_parts
                .into_streams()
                .into_iter()
                .zip(feature_parts.into_streams())
                .enumerate(),
        );
        let matched_rows = std::sync::atomic::AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let next = pairs.lock().expect("no panics while held").next();
                        let Some((p, (entities, features))) = next else {
                            break;
                        };
                        // Spilled partitions are read back outside the lock, in parallel.
                        let outcome = collect_part(entities, &schemas.0).and_then(|e| {
                            let f = collect_part(features, &schemas.1)?;
                            join_partition(&e, &f, ttl, &result_schema)
                        });
                        match outcome.and_then(|(batch, found)| {
                            matched_rows.fetch_add(found, std::sync::atomic::Ordering::Relaxed);
                            result_parts
                                .lock()
                                .expect("no panics while held")
                                .push(p, batch)
                        }) {
                            Ok(()) => {}
                            Err(e) => {
                                failure
                                    .lock()
                                    .expect("no panics while held")
                                    .get_or_insert(e);
                                break;
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().expect("workers joined") {
            return Err(e);
        }
        tracing::debug!(view = %view.name, elapsed = ?started.elapsed(), "partitions joined");
        matched.push((view.name.clone(), matched_rows.into_inner()));
        let result_parts = result_parts.into_inner().expect("workers joined");
        spilled += result_parts.spilled_bytes();
        results.push((result_schema.clone(), result_parts.into_streams()));
    }

    // Phase 3: walk the entity rows in input order and write them with their features.
    let bar = progress_bar(request.progress, rows as u64, "writing");
    let mut writer = OutputWriter::create(&request.output, out_schema.clone())?;
    let mut cursors: Vec<(SchemaRef, Vec<Cursor>)> = results
        .into_iter()
        .map(|(schema, streams)| (schema, streams.into_iter().map(Cursor::new).collect()))
        .collect();
    let entity_batches: Box<dyn Iterator<Item = Result<RecordBatch>>> = match kept {
        Some(batches) => Box::new(batches.into_iter().map(Ok)),
        None => Box::new(EntityReader::open(&request.entities)?),
    };
    let mut lo = 0u64;
    for batch in entity_batches {
        let batch = batch?;
        let hi = lo + batch.num_rows() as u64;
        let mut per_view: Vec<Vec<ArrayRef>> = Vec::new();
        for (schema, view_cursors) in &mut cursors {
            per_view.push(gather(view_cursors, schema, lo, hi)?);
        }
        let mut columns = batch.columns().to_vec();
        for &(job, slot) in &output_slots {
            columns.push(per_view[job][slot].clone());
        }
        let out = RecordBatch::try_new(out_schema.clone(), columns)
            .map_err(|e| Error::internal(format!("training set batch: {e}")))?;
        writer.write(&out)?;
        bar.inc(batch.num_rows() as u64);
        lo = hi;
    }
    writer.finish()?;
    bar.finish_and_clear();
    tracing::debug!(elapsed = ?started.elapsed(), "training set written");
    Ok(HistoricalSummary {
        rows,
        feature_columns,
        matched,
        source_rows,
        spilled_bytes: spilled,
        schema: out_schema,
    })
}

fn distinct_views(refs: &[FeatureRef]) -> usize {
    let mut views: Vec<&str> = refs.iter().map(|r| r.view.as_str()).collect();
    views.sort_unstable();
    views.dedup();
    views.len()
}

fn progress_bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn spinner(show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {human_pos} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar
}

fn collect_part(stream: PartStream, schema: &SchemaRef) -> Result<RecordBatch> {
    let batches = stream.collect::<Result<Vec<_>>>()?;
    arrow::compute::concat_batches(schema, &batches).map_err(internal)
}

/// FNV-1a: stable across runs and platforms, cheap for short keys.
fn partition_of(key: &[u8], count: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % count as u64) as usize
}

/// Splits a source batch into per-partition batches of `[key, ts, created, features…]`, keeping
/// only rows that can win for some entity row.
fn route_source_batch(
    batch: &crate::source::ViewBatch,
    wanted: &[usize],
    max_ts: i64,
    earliest: i64,
    parts: &Mutex<Partitions>,
) -> Result<Vec<(usize, RecordBatch)>> {
    // Rows later than every entity row, or older than the TTL of every one, never win.
    let keep: arrow::array::BooleanArray = batch
        .event_ts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Some(t.is_some_and(|t| t <= max_ts && t >= earliest) && batch.keys.get(i).is_some())
        })
        .collect();
    let created: ArrayRef = Arc::new(match &batch.created_ts {
        Some(c) => Int64Array::from_iter_values(c.iter().map(|v| v.unwrap_or(i64::MIN))),
        None => Int64Array::from(vec![0; batch.len()]),
    });
    let mut columns: Vec<ArrayRef> = vec![Arc::new(batch.event_ts.clone()), created];
    columns.extend(wanted.iter().map(|&f| batch.features[f].clone()));
    let (count, schema) = {
        let parts = parts.lock().expect("no panics while held");
        (parts.count(), parts.schema())
    };
    split_by_partition(count, &schema, &batch.keys, &keep, &columns)
}

/// Adds rows with a key (and a non-null `ts` when `ts_nulls` says so) to their partitions:
/// columns are prefixed with the encoded key.
fn partition_into(
    parts: &mut Partitions,
    keys: &EncodedKeys,
    ts_nulls: Option<&arrow::buffer::NullBuffer>,
    columns: &[ArrayRef],
) -> Result<()> {
    let keep: arrow::array::BooleanArray = (0..keys.len())
        .map(|i| Some(keys.get(i).is_some() && ts_nulls.is_none_or(|n| n.is_valid(i))))
        .collect();
    partition_filtered(parts, keys, &keep, columns)
}

fn partition_filtered(
    parts: &mut Partitions,
    keys: &EncodedKeys,
    keep: &arrow::array::BooleanArray,
    columns: &[ArrayRef],
) -> Result<()> {
    for (p, batch) in split_by_partition(parts.count(), &parts.schema(), keys, keep, columns)? {
        parts.push(p, batch)?;
    }
    Ok(())
}

/// The kept rows of `columns`, prefixed with their encoded key, grouped by key partition.
fn split_by_partition(
    count: usize,
    schema: &SchemaRef,
    keys: &EncodedKeys,
    keep: &arrow::array::BooleanArray,
    columns: &[ArrayRef],
) -> Result<Vec<(usize, RecordBatch)>> {
    let mut by_part: Vec<Vec<u32>> = vec![Vec::new(); count];
    for i in 0..keys.len() {
        if !keep.value(i) {
            continue;
        }
        let key = keys.get(i).expect("kept rows have keys");
        by_part[partition_of(key, count)].push(i as u32);
    }
    let key_column = key_array(keys);
    let mut out = Vec::new();
    for (p, rows) in by_part.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let indices = UInt32Array::from(rows);
        let mut taken = vec![take(&key_column, &indices, None).map_err(internal)?];
        for c in columns {
            taken.push(take(c, &indices, None).map_err(internal)?);
        }
        out.push((
            p,
            RecordBatch::try_new(schema.clone(), taken).map_err(internal)?,
        ));
    }
    Ok(out)
}

fn key_array(keys: &EncodedKeys) -> BinaryArray {
    let (data, offsets) = keys.parts();
    let offsets: Vec<i32> = offsets.iter().map(|&o| o as i32).collect();
    BinaryArray::new(
        OffsetBuffer::new(offsets.into()),
        Buffer::from(data.to_vec()),
        None,
    )
}

fn internal(e: arrow::error::ArrowError) -> Error {
    Error::internal(format!("point-in-time join: {e}"))
}

/// Joins one partition: returns `[row, features…]` ordered by input row, and how many rows
/// found a feature row.
fn join_partition(
    entities: &RecordBatch,
    features: &RecordBatch,
    ttl: Option<i64>,
    schema: &SchemaRef,
) -> Result<(RecordBatch, usize)> {
    fn side(b: &RecordBatch) -> asof::Side<'_> {
        asof::Side {
            keys: b.column(0).as_binary::<i32>(),
            event_ts: b.column(1).as_primitive::<arrow::datatypes::Int64Type>(),
        }
    }
    let winners = asof::asof_join(
        &side(entities),
        &side(features),
        Some(
            features
                .column(2)
                .as_primitive::<arrow::datatypes::Int64Type>(),
        ),
        ttl,
    );
    let rows = entities.column(2).as_primitive::<UInt64Type>().values();
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_unstable_by_key(|&i| rows[i as usize]);
    let found = winners.iter().filter(|w| w.is_some()).count();
    let indices: UInt32Array = order.iter().map(|&i| winners[i as usize]).collect();
    let row_column: ArrayRef = Arc::new(UInt64Array::from_iter_values(
        order.iter().map(|&i| rows[i as usize]),
    ));
    let mut columns = vec![row_column];
    for c in &features.columns()[3..] {
        columns.push(take(c, &indices, None).map_err(internal)?);
    }
    Ok((
        RecordBatch::try_new(schema.clone(), columns).map_err(internal)?,
        found,
    ))
}

/// Reads one partition's join result in row order.
struct Cursor {
    stream: PartStream,
    batch: Option<RecordBatch>,
    pos: usize,
}

impl Cursor {
    fn new(stream: PartStream) -> Self {
        Cursor {
            stream,
            batch: None,
            pos: 0,
        }
    }
}

/// The feature columns of one view for input rows `lo..hi`, merged from every partition.
fn gather(cursors: &mut [Cursor], schema: &SchemaRef, lo: u64, hi: u64) -> Result<Vec<ArrayRef>> {
    let n = (hi - lo) as usize;
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut indices: Vec<(usize, usize)> = vec![(usize::MAX, 0); n];
    for cursor in cursors.iter_mut() {
        loop {
            let exhausted = cursor
                .batch
                .as_ref()
                .is_none_or(|b| cursor.pos >= b.num_rows());
            if exhausted {
                match cursor.stream.next() {
                    Some(batch) => {
                        cursor.batch = Some(batch?);
                        cursor.pos = 0;
                        continue;
                    }
                    None => break,
                }
            }
            let batch = cursor.batch.as_ref().expect("loaded");
            let rows = batch.column(0).as_primitive::<UInt64Type>().values();
            let start = cursor.pos;
            while cursor.pos < rows.len() && rows[cursor.pos] < hi {
                cursor.pos += 1;
            }
            if cursor.pos > start {
                sources.push(batch.clone());
                let source = sources.len() - 1;
                for i in start..cursor.pos {
                    indices[(rows[i] - lo) as usize] = (source, i);
                }
            }
            if cursor.pos < rows.len() {
                break;
            }
        }
    }
    // Rows no partition holds (no key, no timestamp) take their features from an all-null row.
    let null_source = sources.len();
    let null_row: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), 1))
        .collect();
    for slot in &mut indices {
        if slot.0 == usize::MAX {
            *slot = (null_source, 0);
        }
    }
    let mut out = Vec::new();
    for (c, null) in null_row.iter().enumerate().skip(1) {
        let mut arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
        arrays.push(null.as_ref());
        out.push(interleave(&arrays, &indices).map_err(internal)?);
    }
    Ok(out)
}

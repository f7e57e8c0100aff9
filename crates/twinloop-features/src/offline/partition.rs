//! Partitioning by key: the entity rows of every view in one pass over the entity file, then
//! each view's source rows, both into the same [`PARTITIONS`] hash partitions so that each
//! partition pair joins on its own.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, BinaryArray, Int64Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use twinloop_core::{Error, Result};

use super::entities::EntityReader;
use super::plan::ViewJob;
use super::spill::Partitions;
use super::{PARTITIONS, internal};
use crate::keys::{EncodedKeys, normalize};
use crate::progress::{Progress, Stage};
use crate::repo::FeatureRepo;
use crate::source;
use crate::time::micros_column;

/// What the pass over the entity file found.
pub(super) struct EntityPass {
    pub rows: usize,
    /// The earliest and latest entity timestamps (µs); (`i64::MAX`, `i64::MIN`) without any.
    pub min_ts: i64,
    pub max_ts: i64,
    /// The entity batches, when they fit an eighth of the memory limit: writing the output
    /// then needs no second read of the file.
    pub kept: Option<Vec<RecordBatch>>,
}

/// Entity batches kept while their size stays within a budget, none once it is exceeded.
struct Kept {
    batches: Option<Vec<RecordBatch>>,
    bytes: usize,
    budget: usize,
}

impl Kept {
    fn new(budget: usize) -> Kept {
        Kept {
            batches: Some(Vec::new()),
            bytes: 0,
            budget,
        }
    }

    fn keep(&mut self, batch: RecordBatch) {
        if let Some(batches) = self.batches.as_mut() {
            self.bytes += batch.get_array_memory_size();
            if self.bytes > self.budget {
                self.batches = None;
            } else {
                batches.push(batch);
            }
        }
    }
}

/// Reads the entity file once and partitions its rows (key, time, row number) for every view.
pub(super) fn partition_entities(
    reader: EntityReader,
    ts_column: &str,
    jobs: &mut [ViewJob],
    memory_limit: usize,
    progress: &Progress,
) -> Result<EntityPass> {
    let stage = Stage::EntityRows;
    progress.started(&stage, Some(reader.rows as u64));
    let mut kept = Kept::new(memory_limit / 8);
    let mut rows = 0usize;
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for batch in reader {
        let batch = batch?;
        let ts_array = batch.column_by_name(ts_column).ok_or_else(|| {
            Error::invalid(format!("the entity file has no column {ts_column:?}"))
        })?;
        let ts = micros_column(ts_column, ts_array)?;
        if let Some(lo) = arrow::compute::min(&ts) {
            min_ts = min_ts.min(lo);
        }
        if let Some(hi) = arrow::compute::max(&ts) {
            max_ts = max_ts.max(hi);
        }
        let row_ids = UInt64Array::from_iter_values(rows as u64..(rows + batch.num_rows()) as u64);
        for job in jobs.iter_mut() {
            let key_columns = job
                .layout
                .join_keys
                .iter()
                .zip(&job.layout.key_types)
                .map(|(k, t)| {
                    let column = batch.column_by_name(k).ok_or_else(|| {
                        Error::invalid(format!("the entity file has no column {k:?}"))
                    })?;
                    normalize(k, column, t)
                })
                .collect::<Result<Vec<_>>>()
                .map_err(|e| Error::invalid(format!("entity file: {}", e.message)))?;
            let keys = EncodedKeys::encode(&key_columns);
            let columns: Vec<ArrayRef> = vec![Arc::new(ts.clone()), Arc::new(row_ids.clone())];
            partition_into(&mut job.entity_parts, &keys, ts.nulls(), &columns)?;
        }
        rows += batch.num_rows();
        progress.advanced(&stage, rows as u64);
        kept.keep(batch);
    }
    progress.finished(&stage);
    Ok(EntityPass {
        rows,
        min_ts,
        max_ts,
        kept: kept.batches,
    })
}

/// Partitions one view's source rows (`[key, ts, created, requested features…]`), keeping only
/// rows that can win for some entity row of `entities`. Returns the partitions and how many
/// source rows were read.
pub(super) async fn partition_source(
    repo: &FeatureRepo,
    job: &ViewJob,
    label: &str,
    entities: &EntityPass,
    spill_dir: &Path,
    budget: usize,
    progress: &Progress,
) -> Result<(Partitions, usize)> {
    let view = &job.layout.view;
    let stage = Stage::SourceRows {
        view: view.name.clone(),
    };
    progress.started(&stage, None);
    let mut fields = vec![
        Field::new("key", DataType::Binary, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("created", DataType::Int64, false),
    ];
    for &f in &job.features {
        fields.push(Field::new(
            format!("f{f}"),
            view.features[f].dtype.arrow(),
            true,
        ));
    }
    let parts = Partitions::new(
        Arc::new(Schema::new(fields)),
        PARTITIONS,
        spill_dir.into(),
        label,
        budget,
    );
    let earliest = view
        .ttl_micros
        .map_or(i64::MIN, |t| entities.min_ts.saturating_sub(t));
    let max_ts = entities.max_ts;
    let (_, streams) = source::scan_partitioned(repo, view).await?;
    let parts = Arc::new(Mutex::new(parts));
    let read_rows = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut stream in streams {
        let (parts, read_rows, progress, stage, wanted) = (
            parts.clone(),
            read_rows.clone(),
            progress.clone(),
            stage.clone(),
            job.features.clone(),
        );
        // Each DataFusion partition is converted and routed on its own task (and core).
        tasks.push(tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let n = read_rows.fetch_add(batch.len(), Ordering::Relaxed);
                progress.advanced(&stage, (n + batch.len()) as u64);
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
            .map_err(|e| Error::internal("source reader").with_source(e))??;
    }
    let parts = Arc::try_unwrap(parts)
        .map_err(|_| Error::internal("source readers still running"))?
        .into_inner()
        .expect("no panics while held");
    progress.finished(&stage);
    Ok((parts, read_rows.load(Ordering::Relaxed)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_batches_are_all_or_none() {
        let batch = RecordBatch::try_from_iter([(
            "a",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .unwrap();
        let size = batch.get_array_memory_size();
        let mut kept = Kept::new(2 * size);
        kept.keep(batch.clone());
        kept.keep(batch.clone());
        assert_eq!(kept.batches.as_ref().map(Vec::len), Some(2));
        kept.keep(batch.clone());
        assert!(kept.batches.is_none());
        kept.keep(batch);
        assert!(kept.batches.is_none(), "once dropped, never kept again");
    }

    #[test]
    fn rows_go_to_their_key_partition_and_rows_without_key_or_time_nowhere() {
        let keys =
            EncodedKeys::encode(&[
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(1)])) as ArrayRef,
            ]);
        let ts = Int64Array::from(vec![Some(10), None, Some(30), Some(40)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("ts", DataType::Int64, false),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Partitions::new(schema, 4, dir.path().into(), "t", 1 << 20);
        let columns: Vec<ArrayRef> = vec![Arc::new(ts.clone())];
        partition_into(&mut parts, &keys, ts.nulls(), &columns).unwrap();
        let key = keys.get(0).unwrap();
        let home = partition_of(key, 4);
        let mut total = 0;
        for (p, stream) in parts.into_streams().into_iter().enumerate() {
            for batch in stream {
                let batch = batch.unwrap();
                total += batch.num_rows();
                if batch.num_rows() > 0 {
                    assert_eq!(p, home, "only key 1 has rows with a time");
                }
            }
        }
        assert_eq!(total, 2, "key 1 twice; key 2 has no time, row 2 no key");
    }
}

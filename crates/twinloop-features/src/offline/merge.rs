//! Writing the training set: the entity rows in input order, each with its features gathered
//! from the per-view, per-partition join results (every one in row order, so one forward pass
//! over each suffices).

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::compute::interleave;
use arrow::datatypes::{SchemaRef, UInt64Type};
use twinloop_core::{Error, Result};

use super::entities::{EntityReader, OutputWriter};
use super::internal;
use super::join::JoinedView;
use super::spill::PartStream;
use crate::progress::{Progress, Stage};

/// Where the output rows come from.
pub(super) struct MergeInput<'a> {
    /// The entity file, read again unless its batches were kept.
    pub entities: &'a Path,
    pub kept: Option<Vec<RecordBatch>>,
    pub rows: usize,
    pub views: Vec<JoinedView>,
    /// Per output feature column: its view and its place among the view's joined columns.
    pub slots: &'a [(usize, usize)],
}

/// Walks the entity rows in input order and writes them with their features to `output`.
pub(super) fn merge_and_write(
    input: MergeInput<'_>,
    output: &Path,
    out_schema: &SchemaRef,
    progress: &Progress,
) -> Result<()> {
    let stage = Stage::Writing;
    progress.started(&stage, Some(input.rows as u64));
    let mut writer = OutputWriter::create(output, out_schema.clone())?;
    let mut cursors: Vec<(SchemaRef, Vec<Cursor>)> = input
        .views
        .into_iter()
        .map(|v| (v.schema, v.streams.into_iter().map(Cursor::new).collect()))
        .collect();
    let entity_batches: Box<dyn Iterator<Item = Result<RecordBatch>>> = match input.kept {
        Some(batches) => Box::new(batches.into_iter().map(Ok)),
        None => Box::new(EntityReader::open(input.entities)?),
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
        for &(job, slot) in input.slots {
            columns.push(per_view[job][slot].clone());
        }
        let out = RecordBatch::try_new(out_schema.clone(), columns)
            .map_err(|e| Error::internal("training set batch").with_source(e))?;
        writer.write(&out)?;
        progress.advanced(&stage, hi);
        lo = hi;
    }
    writer.finish()?;
    progress.finished(&stage);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, UInt64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use crate::offline::spill::Partitions;

    #[test]
    fn rows_are_gathered_from_every_partition_in_input_order() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("f0", DataType::Int64, true),
        ]));
        let batch = |rows: Vec<u64>, values: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(UInt64Array::from(rows)) as ArrayRef,
                    Arc::new(Int64Array::from(values)) as ArrayRef,
                ],
            )
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Partitions::new(schema.clone(), 2, dir.path().into(), "r", 1 << 20);
        parts.push(0, batch(vec![0, 3], vec![10, 13])).unwrap();
        parts.push(0, batch(vec![4], vec![14])).unwrap();
        parts.push(1, batch(vec![1], vec![11])).unwrap();
        let mut cursors: Vec<Cursor> = parts.into_streams().into_iter().map(Cursor::new).collect();
        let first = gather(&mut cursors, &schema, 0, 3).unwrap();
        let second = gather(&mut cursors, &schema, 3, 5).unwrap();
        let values =
            |c: &ArrayRef| -> Vec<Option<i64>> { c.as_primitive::<Int64Type>().iter().collect() };
        // Row 2 is in no partition (it had no key): its features are null.
        assert_eq!(values(&first[0]), [Some(10), Some(11), None]);
        assert_eq!(values(&second[0]), [Some(13), Some(14)]);
    }
}

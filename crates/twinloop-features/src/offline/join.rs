//! Joining one view partition by partition: each pair of entity and source partitions is read
//! back and joined by [`asof`] on a worker thread; the results, ordered by entity row, go to
//! result partitions that the output merge reads in order.

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use twinloop_core::{Error, Result};

use super::spill::{PartStream, Partitions};
use super::{PARTITIONS, asof, internal};
use crate::repo::FeatureView;

/// One view joined: `[row, features…]` per partition, in row order within each.
pub(super) struct JoinedView {
    pub schema: SchemaRef,
    pub streams: Vec<PartStream>,
    /// Entity rows that found a feature row.
    pub matched: usize,
    pub spilled_bytes: usize,
}

/// Joins every partition pair of one view on all cores; `wanted` are the positions of the
/// requested features in the view.
pub(super) fn join_view(
    view: &FeatureView,
    wanted: &[usize],
    entity_parts: Partitions,
    feature_parts: Partitions,
    label: &str,
    spill_dir: &Path,
    budget: usize,
) -> Result<JoinedView> {
    let ttl = view.ttl_micros;
    let result_schema = {
        let mut fields = vec![Field::new("row", DataType::UInt64, false)];
        for &f in wanted {
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
        spill_dir.into(),
        label,
        budget,
    ));
    let schemas = (entity_parts.schema(), feature_parts.schema());
    let pairs = Mutex::new(
        entity_parts
            .into_streams()
            .into_iter()
            .zip(feature_parts.into_streams())
            .enumerate(),
    );
    let matched_rows = AtomicUsize::new(0);
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
                        matched_rows.fetch_add(found, Ordering::Relaxed);
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
    let result_parts = result_parts.into_inner().expect("workers joined");
    Ok(JoinedView {
        schema: result_schema,
        spilled_bytes: result_parts.spilled_bytes(),
        streams: result_parts.into_streams(),
        matched: matched_rows.into_inner(),
    })
}

fn collect_part(stream: PartStream, schema: &SchemaRef) -> Result<RecordBatch> {
    let batches = stream.collect::<Result<Vec<_>>>()?;
    arrow::compute::concat_batches(schema, &batches).map_err(internal)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, Int64Array};
    use arrow::datatypes::Int64Type;

    #[test]
    fn a_partition_joins_as_of_each_row_and_comes_out_in_row_order() {
        // Entity rows 7 and 3 of key "a", row 5 of key "b"; features of "a" at t=10 and t=20.
        let entities = RecordBatch::try_from_iter([
            (
                "key",
                Arc::new(BinaryArray::from_vec(vec![b"a", b"a", b"b"])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(Int64Array::from(vec![25, 15, 30])) as ArrayRef,
            ),
            (
                "row",
                Arc::new(UInt64Array::from(vec![7, 3, 5])) as ArrayRef,
            ),
        ])
        .unwrap();
        let features = RecordBatch::try_from_iter([
            (
                "key",
                Arc::new(BinaryArray::from_vec(vec![b"a", b"a"])) as ArrayRef,
            ),
            ("ts", Arc::new(Int64Array::from(vec![10, 20])) as ArrayRef),
            (
                "created",
                Arc::new(Int64Array::from(vec![0, 0])) as ArrayRef,
            ),
            ("f0", Arc::new(Int64Array::from(vec![100, 200])) as ArrayRef),
        ])
        .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("f0", DataType::Int64, true),
        ]));
        let (out, found) = join_partition(&entities, &features, None, &schema).unwrap();
        assert_eq!(found, 2);
        assert_eq!(
            out.column(0).as_primitive::<UInt64Type>().values(),
            &[3, 5, 7]
        );
        let values: Vec<Option<i64>> = out.column(1).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(values, [Some(100), None, Some(200)]);
        // Both matches are 5 older than their entity rows: a TTL of 4 drops them.
        let (_, found) = join_partition(&entities, &features, Some(4), &schema).unwrap();
        assert_eq!(found, 0);
    }
}

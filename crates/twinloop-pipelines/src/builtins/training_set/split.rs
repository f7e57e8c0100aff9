//! The time-based split of a joined training set: rows within the holdout window of the newest
//! timestamp are held out, every other row trains. Both files keep the joined file's schema, so
//! an empty holdout is still a readable Parquet file.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use twinloop_monitor::parquet_pages::{ReadsEndAtItsEnd, checked};

const BATCH_ROWS: usize = 65_536;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Counts {
    pub train: usize,
    pub holdout: usize,
    /// The first held-out instant (µs), exclusive, when there is a split.
    pub cutoff: Option<i64>,
}

impl Counts {
    pub fn describe(&self) -> String {
        match self.cutoff {
            Some(cutoff) => format!(
                "split: {} train rows, {} holdout rows (after {})",
                self.train,
                self.holdout,
                twinloop_features::time::format_micros(cutoff)
            ),
            None => format!("no split: {} train rows, empty holdout", self.train),
        }
    }
}

/// Splits `joined` into `train` and `holdout`. With `(window µs, column)`, a row is held out
/// when its timestamp is after the newest timestamp minus the window; without, every row trains.
pub(super) fn split(
    joined: &Path,
    holdout: Option<(i64, &str)>,
    train_path: &Path,
    holdout_path: &Path,
) -> Result<Counts, String> {
    let schema = reader(joined)?.schema().clone();
    let cutoff = match holdout {
        Some((window, column)) => {
            let newest = newest(joined, column)?
                .ok_or("the training set has no rows to split: the entity file is empty")?;
            Some((newest.saturating_sub(window), column))
        }
        None => None,
    };
    let mut train = Writer::create(train_path, &schema)?;
    let mut held = Writer::create(holdout_path, &schema)?;
    for batch in batches(joined)? {
        let batch = batch?;
        match cutoff {
            None => train.write(&batch)?,
            Some((cutoff, column)) => {
                let ts = timestamps(&batch, column)?;
                let late: BooleanArray = ts.iter().map(|t| t.map(|t| t > cutoff)).collect();
                let early = not(&late).map_err(|e| e.to_string())?;
                train.write(&filter_record_batch(&batch, &early).map_err(|e| e.to_string())?)?;
                held.write(&filter_record_batch(&batch, &late).map_err(|e| e.to_string())?)?;
            }
        }
    }
    let counts = Counts {
        train: train.close()?,
        holdout: held.close()?,
        cutoff: cutoff.map(|(c, _)| c),
    };
    if counts.cutoff.is_some() && counts.train == 0 {
        return Err(format!(
            "the holdout window covers every row: no training rows are left ({} rows are newer than {}); shorten split.holdout",
            counts.holdout,
            counts
                .cutoff
                .map_or_else(String::new, twinloop_features::time::format_micros)
        ));
    }
    Ok(counts)
}

fn reader(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<ReadsEndAtItsEnd<File>>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = checked(file)
        .map_err(|e| format!("cannot read {}: invalid Parquet page: {e}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch, String>>, String> {
    let reader = reader(path)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    Ok(reader.map(move |b| b.map_err(|e| format!("cannot read {shown}: {e}"))))
}

/// The newest timestamp of `column`, or `None` without rows.
fn newest(path: &Path, column: &str) -> Result<Option<i64>, String> {
    let mut newest = None;
    for batch in batches(path)? {
        let ts = timestamps(&batch?, column)?;
        newest = newest.max(arrow::compute::max(&ts));
    }
    Ok(newest)
}

/// The split column as µs; a null would fall on neither side, so it is refused.
fn timestamps(batch: &RecordBatch, column: &str) -> Result<Int64Array, String> {
    let array: &ArrayRef = batch.column_by_name(column).ok_or_else(|| {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        format!(
            "with.split.by: the training set has no column {column:?} (it has: {})",
            names.join(", ")
        )
    })?;
    let ts = twinloop_features::time::micros_column(column, array)
        .map_err(|e| format!("with.split.by: {}", e.message))?;
    if ts.null_count() > 0 {
        return Err(format!(
            "with.split.by: column {column:?} has {} empty timestamps, which belong to neither train nor holdout",
            ts.null_count()
        ));
    }
    Ok(ts)
}

struct Writer {
    inner: ArrowWriter<File>,
    rows: usize,
    path: String,
}

impl Writer {
    fn create(path: &Path, schema: &SchemaRef) -> Result<Writer, String> {
        let shown = path.display().to_string();
        let file = File::create(path).map_err(|e| format!("cannot write {shown}: {e}"))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let inner = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
        Ok(Writer {
            inner,
            rows: 0,
            path: shown,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows();
        self.inner
            .write(batch)
            .map_err(|e| format!("cannot write {}: {e}", self.path))
    }

    fn close(self) -> Result<usize, String> {
        self.inner
            .close()
            .map_err(|e| format!("cannot write {}: {e}", self.path))?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn write(path: &Path, days: &[Option<i64>]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..days.len() as i64)),
                Arc::new(
                    TimestampMicrosecondArray::from_iter(days.iter().map(|d| d.map(|d| d * DAY)))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn ids(path: &Path) -> Vec<i64> {
        batches(path)
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                ids.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn rows_within_the_window_of_the_newest_are_held_out() {
        let dir = tempfile::tempdir().unwrap();
        let (joined, train, holdout) = (
            dir.path().join("j.parquet"),
            dir.path().join("train"),
            dir.path().join("holdout"),
        );
        // Days 0..=9 out of order; a 3-day window from day 9 holds out days 7, 8 and 9 (day 6
        // is exactly three days old: outside).
        write(
            &joined,
            &[Some(9), Some(0), Some(6), Some(7), Some(3), Some(8)],
        );
        let counts = split(
            &joined,
            Some((3 * DAY, "event_timestamp")),
            &train,
            &holdout,
        )
        .unwrap();
        assert_eq!(
            counts,
            Counts {
                train: 3,
                holdout: 3,
                cutoff: Some(6 * DAY)
            }
        );
        assert_eq!(ids(&train), [1, 2, 4]);
        assert_eq!(ids(&holdout), [0, 3, 5]);
    }

    #[test]
    fn without_a_split_the_holdout_is_empty_with_the_same_schema() {
        let dir = tempfile::tempdir().unwrap();
        let (joined, train, holdout) = (
            dir.path().join("j.parquet"),
            dir.path().join("train"),
            dir.path().join("holdout"),
        );
        write(&joined, &[Some(1), Some(2)]);
        let counts = split(&joined, None, &train, &holdout).unwrap();
        assert_eq!((counts.train, counts.holdout), (2, 0));
        assert_eq!(ids(&holdout), Vec::<i64>::new());
        assert_eq!(
            reader(&holdout).unwrap().schema(),
            reader(&joined).unwrap().schema()
        );
    }

    #[test]
    fn bad_splits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (joined, train, holdout) = (
            dir.path().join("j.parquet"),
            dir.path().join("train"),
            dir.path().join("holdout"),
        );
        write(&joined, &[Some(1), Some(2)]);
        let all = split(
            &joined,
            Some((30 * DAY, "event_timestamp")),
            &train,
            &holdout,
        );
        assert!(all.unwrap_err().contains("no training rows"));
        let missing = split(&joined, Some((DAY, "label_time")), &train, &holdout).unwrap_err();
        assert!(missing.contains("\"label_time\"") && missing.contains("id, event_timestamp"));
        write(&joined, &[Some(1), None]);
        let nulls = split(&joined, Some((DAY, "event_timestamp")), &train, &holdout).unwrap_err();
        assert!(nulls.contains("1 empty timestamps"), "{nulls}");
    }
}

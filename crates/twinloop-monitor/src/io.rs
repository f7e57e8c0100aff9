//! Reading a reference or current dataset (Parquet or CSV) into one Arrow array per column.

use std::fs::File;
use std::path::Path;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::Error;

/// A dataset as named, fully concatenated columns, in file order.
#[derive(Debug)]
pub struct Table {
    pub columns: Vec<(String, ArrayRef)>,
    pub rows: usize,
}

/// Reads `path` by its extension: `.parquet`/`.pq` or `.csv` (header row, types inferred from
/// every row, empty fields are nulls).
pub fn read_table(path: &Path) -> Result<Table, Error> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (schema, batches) = match ext.as_str() {
        // The parquet crate asserts on some malformed metadata (a negative column chunk
        // offset) instead of answering an error: a hostile file must be a read error, not a
        // panic that takes a monitor or the CLI down.
        "parquet" | "pq" => {
            std::panic::catch_unwind(|| read_parquet(path)).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "malformed Parquet metadata".to_string());
                Err(read_err(path, std::io::Error::other(what)))
            })?
        }
        "csv" => read_csv(path)?,
        _ => {
            return Err(Error::input(format!(
                "{}: unknown file type (hint: use a .parquet or .csv file)",
                path.display()
            )));
        }
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let parts: Vec<&dyn arrow::array::Array> =
            batches.iter().map(|b| b.column(i).as_ref()).collect();
        let array = if parts.is_empty() {
            arrow::array::new_empty_array(field.data_type())
        } else {
            arrow::compute::concat(&parts).map_err(|e| read_err(path, e))?
        };
        columns.push((field.name().clone(), array));
    }
    Ok(Table { columns, rows })
}

fn read_err(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Read {
        path: path.display().to_string(),
        source: Box::new(e),
    }
}

fn read_parquet(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    crate::parquet_pages::check_page_sizes(&file).map_err(|e| {
        read_err(
            path,
            std::io::Error::other(format!("invalid Parquet page: {e}")),
        )
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| read_err(path, e))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(path, e))?;
    Ok((schema, batches))
}

/// The CSV decoder reserves room for a whole batch of every column before it reads a row, so a
/// batch is no larger than the file can fill: a row of `columns` fields takes at least
/// `columns` bytes (its separators and line end). A header of 600 names and no rows reserved
/// hundreds of megabytes at 64 Ki rows a batch.
fn csv_batch_rows(bytes: u64, columns: usize) -> usize {
    let rows = (bytes / columns.max(1) as u64).saturating_add(1);
    usize::try_from(rows).unwrap_or(usize::MAX).min(64 * 1024)
}

fn read_csv(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    use arrow::csv::ReaderBuilder;
    use arrow::csv::reader::Format;
    use std::io::Seek;
    let mut file = File::open(path).map_err(|e| read_err(path, e))?;
    let format = Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(&mut file, None)
        .map_err(|e| read_err(path, e))?;
    if schema.fields().is_empty() {
        return Err(Error::input(format!(
            "{}: empty file, no header row",
            path.display()
        )));
    }
    file.rewind().map_err(|e| read_err(path, e))?;
    let bytes = file.metadata().map_err(|e| read_err(path, e))?.len();
    let schema = std::sync::Arc::new(schema);
    let reader = ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(csv_batch_rows(bytes, schema.fields().len()))
        .build(file)
        .map_err(|e| read_err(path, e))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(path, e))?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::csv_batch_rows;

    #[test]
    fn a_csv_batch_is_no_larger_than_the_file_can_fill() {
        assert_eq!(csv_batch_rows(2_000, 600), 4);
        assert_eq!(csv_batch_rows(0, 1), 1);
        assert_eq!(csv_batch_rows(10_000_000, 3), 64 * 1024);
        assert_eq!(csv_batch_rows(u64::MAX, 1), 64 * 1024);
    }
}

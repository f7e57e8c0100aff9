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

/// How much memory one table may take once decoded. A file's size says little about it: a
/// Parquet file of a few hundred bytes can declare millions of rows whose run-length-encoded
/// values expand to hundreds of megabytes, and a server reading a monitor's reference must
/// refuse such a file rather than run out of memory.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// The decoded Arrow arrays of all columns, in bytes.
    pub max_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits { max_bytes: 4 << 30 }
    }
}

/// Rows a Parquet batch decodes at once: the budget is checked between batches, so this bounds
/// how far one read can run past it.
const PARQUET_BATCH_ROWS: usize = 8 * 1024;

/// Reads `path` within the default [`ReadLimits`].
pub fn read_table(path: &Path) -> Result<Table, Error> {
    read_table_within(path, ReadLimits::default())
}

/// A dataset file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    /// A header row, then types inferred from every row; empty fields are nulls.
    Csv,
}

/// Reads `path` by its extension, `.parquet`/`.pq` or `.csv`, refusing a table that would need
/// more memory than `limits` allow.
pub fn read_table_within(path: &Path, limits: ReadLimits) -> Result<Table, Error> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = match ext.as_str() {
        "parquet" | "pq" => FileFormat::Parquet,
        "csv" => FileFormat::Csv,
        _ => {
            return Err(Error::input(format!(
                "{}: unknown file type (hint: use a .parquet or .csv file)",
                path.display()
            )));
        }
    };
    read_format(path, format, limits)
}

/// Reads `path` as `format` within `limits`.
pub fn read_format(path: &Path, format: FileFormat, limits: ReadLimits) -> Result<Table, Error> {
    let mut budget = Budget {
        limits,
        used: 0,
        path,
    };
    let (schema, batches) = match format {
        FileFormat::Parquet => crate::parquet_pages::catching_panics(
            || read_parquet(path, &mut budget),
            |what| read_err(path, std::io::Error::other(what)),
        )?,
        FileFormat::Csv => read_csv(path, &mut budget)?,
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

/// The decoded bytes of a read so far, against its limit.
struct Budget<'a> {
    limits: ReadLimits,
    used: u64,
    path: &'a Path,
}

impl Budget<'_> {
    fn refused(&self, needs: u64) -> Error {
        Error::input(format!(
            "{}: the table needs more than {} MiB of memory once decoded ({} MiB or more); \
             hint: compare a sample of the data, or raise the limit",
            self.path.display(),
            self.limits.max_bytes >> 20,
            needs >> 20
        ))
    }

    /// Refuses `rows` declared rows before any is decoded when even their narrowest encoding
    /// (fixed-width values, string offsets) is past the limit.
    fn check_declared(&self, rows: u64, schema: &arrow::datatypes::Schema) -> Result<(), Error> {
        let row_bytes: u64 = schema
            .fields()
            .iter()
            .map(|f| least_bytes_per_value(f.data_type()))
            .sum();
        let needs = rows.saturating_mul(row_bytes);
        if needs > self.limits.max_bytes {
            return Err(self.refused(needs));
        }
        Ok(())
    }

    fn take(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.used = self
            .used
            .saturating_add(batch.get_array_memory_size() as u64);
        if self.used > self.limits.max_bytes {
            return Err(self.refused(self.used));
        }
        Ok(())
    }

    fn collect(
        &mut self,
        batches: impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
    ) -> Result<Vec<RecordBatch>, Error> {
        let mut kept = Vec::new();
        for batch in batches {
            let batch = batch.map_err(|e| read_err(self.path, e))?;
            self.take(&batch)?;
            kept.push(batch);
        }
        Ok(kept)
    }
}

/// The fewest bytes one value of `data_type` takes in an Arrow array: its fixed width, or the
/// offset a variable-width value needs; zero where that is less than a byte.
fn least_bytes_per_value(data_type: &arrow::datatypes::DataType) -> u64 {
    use arrow::datatypes::DataType;
    match data_type {
        DataType::Utf8 | DataType::Binary | DataType::List(_) => 4,
        DataType::LargeUtf8 | DataType::LargeBinary | DataType::LargeList(_) => 8,
        DataType::Utf8View | DataType::BinaryView => 16,
        other => other.primitive_width().unwrap_or(0) as u64,
    }
}

fn read_parquet(path: &Path, budget: &mut Budget) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let file = crate::parquet_pages::checked(file).map_err(|e| {
        read_err(
            path,
            std::io::Error::other(format!("invalid Parquet page: {e}")),
        )
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(path, e))?;
    let schema = builder.schema().clone();
    let declared = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| u64::try_from(g.num_rows()).unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    budget.check_declared(declared, &schema)?;
    let reader = builder
        .with_batch_size(PARQUET_BATCH_ROWS)
        .build()
        .map_err(|e| read_err(path, e))?;
    let batches = budget.collect(reader)?;
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

fn read_csv(path: &Path, budget: &mut Budget) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
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
    let batches = budget.collect(reader)?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;

    use super::{ReadLimits, csv_batch_rows, read_table_within};

    /// Writes `column` as a one-column Parquet file (dictionary and run-length encoded, as
    /// writers do by default) and returns its path and size.
    fn parquet(dir: &tempfile::TempDir, column: ArrayRef) -> (std::path::PathBuf, u64) {
        let path = dir.path().join("t.parquet");
        let batch = RecordBatch::try_from_iter([("x", column)]).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        (path, size)
    }

    const ONE_MIB: ReadLimits = ReadLimits { max_bytes: 1 << 20 };

    #[test]
    fn declared_rows_past_the_limit_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let (path, size) = parquet(&dir, Arc::new(Int64Array::from(vec![7; 1_000_000])));
        assert!(size < 64 * 1024, "{size} bytes");
        let err = read_table_within(&path, ONE_MIB).unwrap_err().to_string();
        assert!(err.contains("more than 1 MiB of memory"), "{err}");
        assert!(err.contains("(7 MiB or more)"), "{err}");
        let table = read_table_within(
            &path,
            ReadLimits {
                max_bytes: 16 << 20,
            },
        )
        .unwrap();
        assert_eq!(table.rows, 1_000_000);
    }

    #[test]
    fn a_page_header_that_would_be_read_past_the_file_end_is_refused() {
        // Found by fuzzing: the parquet crate read a page header of column c, whose field 3
        // declares another type, as Parquet's page header, skipped a list of 2^31 doubles at
        // the end of the file, where its skip takes a double it cannot read to be no bytes
        // long, and read on for a minute. The walk refuses the field's type.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../fuzz/regressions/drift_parquet/page-header-list-of-doubles-past-the-end.parquet",
        );
        let err = read_table_within(&path, ONE_MIB).unwrap_err().to_string();
        assert!(err.contains("invalid Parquet page"), "{err}");
    }

    #[test]
    fn a_table_growing_past_the_limit_while_decoded_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let long = "v".repeat(1000);
        let (path, size) = parquet(&dir, Arc::new(StringArray::from(vec![long; 20_000])));
        // Declared, 20,000 string offsets fit in 1 MiB; decoded, 20 MB of text does not.
        assert!(size < 64 * 1024, "{size} bytes");
        let err = read_table_within(&path, ONE_MIB).unwrap_err().to_string();
        assert!(err.contains("more than 1 MiB of memory"), "{err}");
    }

    #[test]
    fn a_csv_table_is_held_to_the_same_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("a,b\n");
        for i in 0..100_000 {
            text.push_str(&format!("{i},{}\n", i % 7));
        }
        std::fs::write(&path, text).unwrap();
        assert!(read_table_within(&path, ONE_MIB).is_err());
        let table = read_table_within(&path, ReadLimits { max_bytes: 8 << 20 }).unwrap();
        assert_eq!(table.rows, 100_000);
    }

    #[test]
    fn a_csv_batch_is_no_larger_than_the_file_can_fill() {
        assert_eq!(csv_batch_rows(2_000, 600), 4);
        assert_eq!(csv_batch_rows(0, 1), 1);
        assert_eq!(csv_batch_rows(10_000_000, 3), 64 * 1024);
        assert_eq!(csv_batch_rows(u64::MAX, 1), 64 * 1024);
    }
}

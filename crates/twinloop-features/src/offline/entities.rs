//! Reading the entity file (Parquet or CSV) in its own row order, and writing the training set.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use twinloop_core::{Error, Result};

const BATCH_ROWS: usize = 65_536;

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// An ordered reader of the entity rows.
pub struct EntityReader {
    pub schema: SchemaRef,
    pub rows: usize,
    batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
}

impl EntityReader {
    pub fn open(path: &Path) -> Result<EntityReader> {
        let open = || {
            File::open(path).map_err(|e| {
                Error::invalid(format!("cannot open entity file {}", path.display())).with_source(e)
            })
        };
        let bad = |e: twinloop_core::error::BoxError| {
            Error::invalid(format!("entity file {}", path.display())).with_source(e)
        };
        if is_csv(path) {
            let format = arrow::csv::reader::Format::default().with_header(true);
            let (inferred, rows) = format
                .infer_schema(open()?, None)
                .map_err(|e| bad(e.into()))?;
            // CSV text carries no unit: read times as UTC microseconds, like the features.
            let schema = Arc::new(Schema::new(
                inferred
                    .fields()
                    .iter()
                    .map(|f| match f.data_type() {
                        DataType::Timestamp(_, _) => Field::new(
                            f.name(),
                            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                            true,
                        ),
                        _ => f.as_ref().clone(),
                    })
                    .collect::<Vec<_>>(),
            ));
            let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_format(format)
                .with_batch_size(BATCH_ROWS)
                .build(open()?)
                .map_err(|e| bad(e.into()))?;
            Ok(Self::from_batches(path, schema, rows, reader))
        } else {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(|e| bad(e.into()))?;
            let rows = builder.metadata().file_metadata().num_rows() as usize;
            let schema = builder.schema().clone();
            let reader = builder
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| bad(e.into()))?;
            Ok(Self::from_batches(path, schema, rows, reader))
        }
    }

    fn from_batches(
        path: &Path,
        schema: SchemaRef,
        rows: usize,
        reader: impl Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>
        + Send
        + 'static,
    ) -> EntityReader {
        let path = path.display().to_string();
        EntityReader {
            schema,
            rows,
            batches: Box::new(reader.map(move |b| {
                b.map_err(|e| Error::invalid(format!("entity file {path}")).with_source(e))
            })),
        }
    }

    /// The entity timestamp column: `wanted` if given, else `event_timestamp`, else the only
    /// timestamp column (as Feast picks it).
    pub fn timestamp_column(&self, wanted: Option<&str>) -> Result<String> {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if let Some(name) = wanted {
            return if names.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(Error::invalid(format!(
                    "the entity file has no column {name:?} (it has: {})",
                    names.join(", ")
                )))
            };
        }
        if names.contains(&"event_timestamp") {
            return Ok("event_timestamp".into());
        }
        let timestamps: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
            .map(|f| f.name().as_str())
            .collect();
        match timestamps.as_slice() {
            [one] => Ok(one.to_string()),
            _ => Err(Error::invalid(format!(
                "the entity file needs an event_timestamp column (or pass --timestamp-column); it has: {}",
                names.join(", ")
            ))),
        }
    }
}

impl Iterator for EntityReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next()
    }
}

/// Writes the training set as Parquet (or CSV when the name ends in `.csv`).
pub enum OutputWriter {
    Parquet(ArrowWriter<File>),
    Csv(arrow::csv::Writer<File>),
}

impl OutputWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<OutputWriter> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::invalid(format!("cannot create {}", parent.display())).with_source(e)
            })?;
        }
        let file = File::create(path).map_err(|e| {
            Error::invalid(format!("cannot create {}", path.display())).with_source(e)
        })?;
        if is_csv(path) {
            return Ok(OutputWriter::Csv(arrow::csv::Writer::new(file)));
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        ArrowWriter::try_new(file, schema, Some(props))
            .map(OutputWriter::Parquet)
            .map_err(|e| Error::internal("parquet writer").with_source(e))
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let r = match self {
            OutputWriter::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            OutputWriter::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
        };
        r.map_err(|e| Error::internal("writing the training set").with_source(e))
    }

    pub fn finish(self) -> Result<()> {
        match self {
            OutputWriter::Parquet(w) => w
                .close()
                .map(|_| ())
                .map_err(|e| Error::internal("writing the training set").with_source(e)),
            OutputWriter::Csv(_) => Ok(()),
        }
    }
}

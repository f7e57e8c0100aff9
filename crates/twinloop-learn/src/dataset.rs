//! A training or evaluation set read from Parquet or CSV into one dense `f64` matrix.
//!
//! Which columns are features: the ones named, or by default every numeric or boolean column
//! except the label and the `exclude` list. Columns of other types (timestamps, text, dates) are
//! left out on their own and reported in [`Table::dropped`], because training sets carry entity
//! keys and `event_timestamp` beside the features. Integer ids are numeric, so entity keys must be
//! named in `exclude`.
//!
//! Nulls and NaN are refused with the column and count rather than imputed: a served model gets
//! no imputation either, so a model trained on filled-in values would see inputs it never learnt.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch};
use arrow::compute::cast;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;

/// Which columns to read: the label, and the features (named, or all usable ones but `exclude`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// `None` reads features only, e.g. rows to score.
    pub label: Option<String>,
    /// In this order; `None` takes every numeric or boolean column in file order.
    pub features: Option<Vec<String>>,
    /// Left out of the default feature list (entity keys, ids).
    pub exclude: Vec<String>,
}

/// The rows as a dense matrix, features in the order of `features`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub features: Vec<String>,
    pub rows: usize,
    /// Row-major: row `i` is `x[i * features.len()..(i + 1) * features.len()]`.
    pub x: Vec<f64>,
    /// The label as numbers: booleans are 0/1, integers keep their value.
    pub y: Option<Vec<f64>>,
    /// Columns left out of the default feature list because of their type, in file order.
    pub dropped: Vec<Dropped>,
}

impl Table {
    /// The `i`th row, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        let width = self.features.len();
        self.x.get(i * width..(i + 1) * width)
    }
}

/// A column that was not used as a feature, and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub column: String,
    pub datatype: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read Parquet: {source}", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("{}: cannot read CSV: {source}", path.display())]
    Csv { path: PathBuf, source: ArrowError },
    #[error("{}: no .parquet or .csv file in this directory", path.display())]
    NoFiles { path: PathBuf },
    #[error("{}: no column {column:?}; the columns are {available}", path.display())]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{}: column {column:?} is {datatype}, not a number or a boolean", path.display())]
    NotNumeric {
        path: PathBuf,
        column: String,
        datatype: String,
    },
    #[error(
        "{}: column {column:?} has {count} null values in {rows} rows; fill or drop them first \
         (the trainer does not impute)",
        path.display()
    )]
    Nulls {
        path: PathBuf,
        column: String,
        count: usize,
        rows: usize,
    },
    #[error("{}: column {column:?} has {count} NaN or infinite values", path.display())]
    NotFinite {
        path: PathBuf,
        column: String,
        count: usize,
    },
    #[error("{}: the label {label:?} is also a feature", path.display())]
    LabelIsFeature { path: PathBuf, label: String },
    #[error("{}: no feature columns{}", path.display(), describe_dropped(dropped))]
    NoFeatures {
        path: PathBuf,
        dropped: Vec<Dropped>,
    },
}

fn describe_dropped(dropped: &[Dropped]) -> String {
    if dropped.is_empty() {
        return String::new();
    }
    let list: Vec<String> = dropped
        .iter()
        .map(|d| format!("{} ({})", d.column, d.datatype))
        .collect();
    format!(" (not numeric: {})", list.join(", "))
}

/// Reads a Parquet or CSV file, or every `.parquet` / `.csv` file under a directory (in path
/// order, skipping names starting with `.` or `_` such as `_SUCCESS`). A single file's format is
/// told by its first bytes, since pipeline outputs are stored content-addressed without a
/// suffix. The feature list is settled on the first file; the others must have its columns.
pub fn read_table(path: &Path, columns: &Columns) -> Result<Table, DatasetError> {
    let files = data_files(path)?;
    let mut table: Option<Table> = None;
    for file in &files {
        let (schema, batches) = read_file(file)?;
        let table = match &mut table {
            Some(table) => table,
            None => table.insert(empty_table(file, &schema, columns)?),
        };
        append(table, file, &schema, &batches, columns.label.as_deref())?;
    }
    table.ok_or_else(|| DatasetError::NoFiles {
        path: path.to_path_buf(),
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn data_files(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::NoFiles {
            path: path.to_path_buf(),
        });
    }
    Ok(files)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if entry.file_type().map_err(io_error(&path))?.is_dir() {
            collect_files(&path, files)?;
        } else if name.ends_with(".parquet") || name.ends_with(".csv") {
            files.push(path);
        }
    }
    Ok(())
}

fn is_parquet(path: &Path) -> Result<bool, DatasetError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut read = 0;
    while read < magic.len() {
        match file.read(&mut magic[read..]).map_err(io_error(path))? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read == magic.len() && &magic == b"PAR1")
}

fn read_file(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>), DatasetError> {
    if is_parquet(path)? {
        read_parquet(path)
    } else {
        read_csv(path)
    }
}

fn read_parquet(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>), DatasetError> {
    let parquet_error = |source| DatasetError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let schema = Arc::clone(builder.schema());
    let batches = builder
        .build()
        .map_err(parquet_error)?
        .collect::<Result<Vec<_>, ArrowError>>()
        .map_err(|e| parquet_error(ParquetError::from(e)))?;
    Ok((schema, batches))
}

fn read_csv(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>), DatasetError> {
    let csv_error = |source| DatasetError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let format = Format::default().with_header(true);
    let file = File::open(path).map_err(io_error(path))?;
    let (schema, _) = format.infer_schema(file, None).map_err(csv_error)?;
    let schema = Arc::new(schema);
    let file = File::open(path).map_err(io_error(path))?;
    let batches = arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
        .with_format(format)
        .build(file)
        .map_err(csv_error)?
        .collect::<Result<Vec<_>, ArrowError>>()
        .map_err(csv_error)?;
    Ok((schema, batches))
}

fn is_usable(datatype: &DataType) -> bool {
    datatype.is_numeric() || *datatype == DataType::Boolean
}

fn find<'a>(
    path: &Path,
    schema: &'a Schema,
    column: &str,
) -> Result<&'a arrow::datatypes::Field, DatasetError> {
    schema
        .field_with_name(column)
        .map_err(|_| DatasetError::MissingColumn {
            path: path.to_path_buf(),
            column: column.to_owned(),
            available: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn check_usable(path: &Path, schema: &Schema, column: &str) -> Result<(), DatasetError> {
    let field = find(path, schema, column)?;
    if is_usable(field.data_type()) {
        Ok(())
    } else {
        Err(DatasetError::NotNumeric {
            path: path.to_path_buf(),
            column: column.to_owned(),
            datatype: field.data_type().to_string(),
        })
    }
}

/// The table's columns, settled on the first file, with no rows yet.
fn empty_table(path: &Path, schema: &Schema, columns: &Columns) -> Result<Table, DatasetError> {
    let label = columns.label.as_deref();
    if let Some(label) = label {
        check_usable(path, schema, label)?;
    }
    let mut dropped = Vec::new();
    let features = match &columns.features {
        Some(named) => {
            if let Some(label) = label.filter(|l| named.iter().any(|f| f == l)) {
                return Err(DatasetError::LabelIsFeature {
                    path: path.to_path_buf(),
                    label: label.to_owned(),
                });
            }
            for column in named {
                check_usable(path, schema, column)?;
            }
            named.clone()
        }
        None => {
            let mut features = Vec::new();
            for field in schema.fields() {
                let name = field.name();
                if Some(name.as_str()) == label || columns.exclude.contains(name) {
                    continue;
                }
                if is_usable(field.data_type()) {
                    features.push(name.clone());
                } else {
                    dropped.push(Dropped {
                        column: name.clone(),
                        datatype: field.data_type().to_string(),
                    });
                }
            }
            features
        }
    };
    if features.is_empty() {
        return Err(DatasetError::NoFeatures {
            path: path.to_path_buf(),
            dropped,
        });
    }
    Ok(Table {
        features,
        rows: 0,
        x: Vec::new(),
        y: label.map(|_| Vec::new()),
        dropped,
    })
}

/// `column` of `batch` as finite `f64`s.
fn numbers(path: &Path, batch: &RecordBatch, column: &str) -> Result<Float64Array, DatasetError> {
    let schema = batch.schema();
    let field = find(path, &schema, column)?;
    let not_numeric = || DatasetError::NotNumeric {
        path: path.to_path_buf(),
        column: column.to_owned(),
        datatype: field.data_type().to_string(),
    };
    let array = batch.column_by_name(column).ok_or_else(not_numeric)?;
    let nulls = array.null_count();
    if nulls > 0 {
        return Err(DatasetError::Nulls {
            path: path.to_path_buf(),
            column: column.to_owned(),
            count: nulls,
            rows: array.len(),
        });
    }
    let values = cast(array, &DataType::Float64)
        .map_err(|_| not_numeric())?
        .as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(not_numeric)?;
    let bad = values.values().iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(DatasetError::NotFinite {
            path: path.to_path_buf(),
            column: column.to_owned(),
            count: bad,
        });
    }
    Ok(values)
}

fn append(
    table: &mut Table,
    path: &Path,
    schema: &Schema,
    batches: &[RecordBatch],
    label: Option<&str>,
) -> Result<(), DatasetError> {
    for column in table.features.iter().map(String::as_str).chain(label) {
        check_usable(path, schema, column)?;
    }
    for batch in batches {
        let columns = table
            .features
            .iter()
            .map(|f| numbers(path, batch, f))
            .collect::<Result<Vec<_>, _>>()?;
        table.x.reserve(batch.num_rows() * columns.len());
        for row in 0..batch.num_rows() {
            table.x.extend(columns.iter().map(|c| c.value(row)));
        }
        if let (Some(label), Some(y)) = (label, table.y.as_mut()) {
            y.extend(numbers(path, batch, label)?.values().iter().copied());
        }
        table.rows += batch.num_rows();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Field, TimeUnit};
    use parquet::arrow::ArrowWriter;

    fn write_parquet(path: &Path, batch: &RecordBatch) {
        let file = File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    fn batch(label: ArrayRef) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("amount", DataType::Float64, false),
            Field::new("country", DataType::Utf8, false),
            Field::new("count", DataType::Int64, false),
            Field::new("label", label.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![7, 8, 9])),
                Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])),
                Arc::new(StringArray::from(vec!["fr", "de", "it"])),
                Arc::new(Int64Array::from(vec![10, 20, 30])),
                label,
            ],
        )
        .unwrap()
    }

    fn labelled(exclude: &[&str]) -> Columns {
        Columns {
            label: Some("label".into()),
            features: None,
            exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn parquet_default_features_skip_label_excluded_and_non_numeric_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.parquet");
        write_parquet(&path, &batch(Arc::new(Int64Array::from(vec![0, 1, 0]))));
        let table = read_table(&path, &labelled(&["user_id"])).unwrap();
        assert_eq!(table.features, ["amount", "count"]);
        assert_eq!(table.rows, 3);
        assert_eq!(table.x, [1.5, 10.0, 2.5, 20.0, 3.5, 30.0]);
        assert_eq!(table.row(1), Some(&[2.5, 20.0][..]));
        assert_eq!(table.row(3), None);
        assert_eq!(table.y.as_deref(), Some(&[0.0, 1.0, 0.0][..]));
        let dropped: Vec<&str> = table.dropped.iter().map(|d| d.column.as_str()).collect();
        assert_eq!(dropped, ["event_timestamp", "country"]);
    }

    #[test]
    fn boolean_and_float_labels_become_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.parquet");
        write_parquet(
            &path,
            &batch(Arc::new(BooleanArray::from(vec![true, false, true]))),
        );
        let table = read_table(&path, &labelled(&[])).unwrap();
        assert_eq!(table.y.as_deref(), Some(&[1.0, 0.0, 1.0][..]));
        assert_eq!(table.features, ["user_id", "amount", "count"]);

        let path = dir.path().join("f.parquet");
        write_parquet(
            &path,
            &batch(Arc::new(Float64Array::from(vec![0.0, 1.0, 1.0]))),
        );
        let table = read_table(&path, &labelled(&[])).unwrap();
        assert_eq!(table.y.as_deref(), Some(&[0.0, 1.0, 1.0][..]));
    }

    #[test]
    fn csv_with_int_bool_and_float_labels() {
        let dir = tempfile::tempdir().unwrap();
        for (label, want) in [
            ("1\n0", [1.0, 0.0]),
            ("true\nfalse", [1.0, 0.0]),
            ("0.0\n1.0", [0.0, 1.0]),
        ] {
            let path = dir.path().join("t.csv");
            let mut rows = label.lines();
            let text = format!(
                "id,when,x1,flag,label\n\
                 a,2024-01-01T00:00:00,0.5,true,{}\n\
                 b,2024-01-02T00:00:00,1.5,false,{}\n",
                rows.next().unwrap(),
                rows.next().unwrap()
            );
            std::fs::write(&path, text).unwrap();
            let table = read_table(&path, &labelled(&[])).unwrap();
            assert_eq!(table.features, ["x1", "flag"], "{label}");
            assert_eq!(table.x, [0.5, 1.0, 1.5, 0.0]);
            assert_eq!(table.y.as_deref(), Some(&want[..]), "{label}");
            let dropped: Vec<&str> = table.dropped.iter().map(|d| d.column.as_str()).collect();
            assert_eq!(dropped, ["id", "when"]);
        }
    }

    #[test]
    fn a_missing_label_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "x1,x2\n1,2\n").unwrap();
        let columns = Columns {
            label: Some("is_fraud".into()),
            ..Columns::default()
        };
        let err = read_table(&path, &columns).unwrap_err().to_string();
        assert!(err.contains("no column \"is_fraud\""), "{err}");
        assert!(err.contains("x1, x2"), "{err}");
        assert!(err.contains("t.csv"), "{err}");
    }

    #[test]
    fn named_features_keep_their_order_and_must_be_numeric() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a,b,s\n1,2,x\n3,4,y\n").unwrap();
        let columns = Columns {
            label: None,
            features: Some(vec!["b".into(), "a".into()]),
            exclude: Vec::new(),
        };
        let table = read_table(&path, &columns).unwrap();
        assert_eq!(table.x, [2.0, 1.0, 4.0, 3.0]);
        assert_eq!(table.y, None);

        let columns = Columns {
            features: Some(vec!["s".into()]),
            ..columns
        };
        let err = read_table(&path, &columns).unwrap_err();
        assert!(
            matches!(&err, DatasetError::NotNumeric { column, .. } if column == "s"),
            "{err}"
        );
    }

    #[test]
    fn nulls_and_nan_are_refused_with_column_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a,b,label\n1,,0\n2,,1\n3,5,1\n").unwrap();
        let err = read_table(&path, &labelled(&[])).unwrap_err();
        assert!(
            matches!(&err, DatasetError::Nulls { column, count: 2, rows: 3, .. } if column == "b"),
            "{err}"
        );
        let path = dir.path().join("nan.parquet");
        write_parquet(
            &path,
            &batch(Arc::new(Float64Array::from(vec![0.0, f64::NAN, 1.0]))),
        );
        let err = read_table(&path, &labelled(&[])).unwrap_err();
        assert!(
            matches!(&err, DatasetError::NotFinite { column, count: 1, .. } if column == "label"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_is_read_in_path_order_and_markers_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("part=2")).unwrap();
        std::fs::write(dir.path().join("part=2/b.csv"), "x,label\n3,1\n").unwrap();
        std::fs::write(dir.path().join("a.csv"), "x,label\n1,0\n2,1\n").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not data").unwrap();
        let table = read_table(dir.path(), &labelled(&[])).unwrap();
        assert_eq!(table.x, [1.0, 2.0, 3.0]);
        assert_eq!(table.y.as_deref(), Some(&[0.0, 1.0, 1.0][..]));

        let empty = tempfile::tempdir().unwrap();
        let err = read_table(empty.path(), &labelled(&[])).unwrap_err();
        assert!(matches!(err, DatasetError::NoFiles { .. }), "{err}");
    }

    #[test]
    fn a_later_file_without_a_feature_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x,y,label\n1,2,0\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "x,label\n1,0\n").unwrap();
        let err = read_table(dir.path(), &labelled(&[])).unwrap_err();
        assert!(
            matches!(&err, DatasetError::MissingColumn { path, column, .. }
                if column == "y" && path.ends_with("b.csv")),
            "{err}"
        );
    }

    #[test]
    fn a_parquet_file_without_a_suffix_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        write_parquet(&path, &batch(Arc::new(Int64Array::from(vec![0, 1, 0]))));
        let table = read_table(&path, &labelled(&["user_id", "count"])).unwrap();
        assert_eq!(table.features, ["amount"]);
    }

    #[test]
    fn only_text_columns_is_an_error_listing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "name,label\nx,1\n").unwrap();
        let err = read_table(&path, &labelled(&[])).unwrap_err().to_string();
        assert!(
            err.contains("no feature columns (not numeric: name (Utf8))"),
            "{err}"
        );
    }
}

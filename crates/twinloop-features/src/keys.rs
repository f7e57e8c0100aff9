//! Entity keys as bytes. Offline joins, materialization and online reads all encode join-key
//! values the same way, so that a key written from a Parquet row is found by a JSON request.
//! The encoding is ours (not Arrow's row format, which may change between Arrow releases)
//! because online stores keep it on disk.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use twinloop_core::{Error, Result};

/// The type a join-key column is compared as: every integer type becomes int64, every string
/// type utf8, every binary type binary.
pub fn key_type(source: &DataType) -> Result<DataType> {
    match source {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Ok(DataType::Int64),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(DataType::Utf8),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Ok(DataType::Binary),
        other => Err(Error::invalid(format!(
            "join keys must be integers, strings or bytes, not {other}"
        ))),
    }
}

/// Casts a key column to its [`key_type`]; a value that does not fit (a string that is not a
/// number for an int64 key) is an error naming the column.
pub fn normalize(name: &str, column: &ArrayRef, want: &DataType) -> Result<ArrayRef> {
    if column.data_type() == want {
        return Ok(column.clone());
    }
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow::compute::cast_with_options(column, want, &options).map_err(|e| {
        Error::invalid(format!(
            "join key {name:?}: cannot read {} values as {want}",
            column.data_type()
        ))
        .with_source(e)
    })
}

/// The keys of a batch, one byte string per row, in one arena.
#[derive(Debug, Default)]
pub struct EncodedKeys {
    data: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` is row i's key.
    offsets: Vec<usize>,
    /// Rows with a null in any key column have no key and never match.
    valid: Vec<bool>,
}

impl EncodedKeys {
    /// Encodes rows of already-normalized key columns (see [`normalize`]).
    pub fn encode(columns: &[ArrayRef]) -> EncodedKeys {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut keys = EncodedKeys {
            data: Vec::with_capacity(rows * 9 * columns.len()),
            offsets: Vec::with_capacity(rows + 1),
            valid: vec![true; rows],
        };
        keys.offsets.push(0);
        for row in 0..rows {
            for column in columns {
                if column.is_null(row) {
                    keys.valid[row] = false;
                    continue;
                }
                encode_value(column, row, &mut keys.data);
            }
            keys.offsets.push(keys.data.len());
        }
        keys
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    /// The arena and the row offsets into it.
    pub fn parts(&self) -> (&[u8], &[usize]) {
        (&self.data, &self.offsets)
    }

    pub fn get(&self, row: usize) -> Option<&[u8]> {
        self.valid[row].then(|| &self.data[self.offsets[row]..self.offsets[row + 1]])
    }
}

fn encode_value(column: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    match column.data_type() {
        DataType::Int64 => {
            out.push(b'i');
            out.extend_from_slice(&column.as_primitive::<Int64Type>().value(row).to_be_bytes());
        }
        DataType::Utf8 => {
            let value = column.as_string::<i32>().value(row).as_bytes();
            out.push(b's');
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        DataType::Binary => {
            let value = column.as_binary::<i32>().value(row);
            out.push(b'b');
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        other => unreachable!("key columns are normalized before encoding, got {other}"),
    }
}

/// Normalizes and encodes named key columns taken from `columns`.
pub fn encode_columns(
    names: &[String],
    columns: &[ArrayRef],
    types: &[DataType],
) -> Result<EncodedKeys> {
    let normalized = names
        .iter()
        .zip(columns)
        .zip(types)
        .map(|((name, column), want)| normalize(name, column, want))
        .collect::<Result<Vec<_>>>()?;
    Ok(EncodedKeys::encode(&normalized))
}

/// Casts any column to `want` (used for feature values, which are checked compatible first).
pub fn cast_to(column: &ArrayRef, want: &DataType) -> Result<ArrayRef> {
    if column.data_type() == want {
        return Ok(column.clone());
    }
    cast(column, want).map_err(|e| Error::internal(format!("cast to {want}")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn the_same_value_encodes_the_same_from_any_integer_type() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["7", "8"]));
        let ka = encode_columns(&["k".into()], &[a], &[DataType::Int64]).unwrap();
        let kb = encode_columns(&["k".into()], &[b], &[DataType::Int64]).unwrap();
        assert_eq!(ka.get(0), kb.get(0));
        assert_eq!(ka.get(1), None);
        assert_ne!(kb.get(1), kb.get(0));
    }

    #[test]
    fn composite_keys_do_not_collide() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["ab", "a"]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["c", "bc"]));
        let keys = EncodedKeys::encode(&[a, b]);
        assert_ne!(keys.get(0), keys.get(1));
    }

    #[test]
    fn a_non_numeric_string_is_an_error_naming_the_key() {
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let err = encode_columns(&["driver_id".into()], &[b], &[DataType::Int64]).unwrap_err();
        assert!(err.message.contains("driver_id"), "{}", err.message);
    }
}

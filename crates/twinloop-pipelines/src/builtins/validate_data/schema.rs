//! The expected shape of the data, as a YAML file:
//!
//! ```yaml
//! columns:
//!   amount: {dtype: float64, nullable: false, min: 0, max: 10000}
//!   country: {dtype: string}
//! ```
//!
//! `dtype` is a feature-repository type (`bool`, `int32`, `int64`, `float32`, `float64`,
//! `string`, `bytes`, `timestamp`, each also accepting its lossless narrower types) or a family
//! (`int`, `float`, `number`, `date`). Every column named must be present; others may be too.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use serde::Deserialize;
use twinloop_features::repo::DType;
use twinloop_monitor::io::Table;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Schema {
    columns: BTreeMap<String, Column>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Column {
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default = "yes")]
    nullable: bool,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

fn yes() -> bool {
    true
}

enum Expected {
    Exact(DType),
    Int,
    Float,
    Number,
    Date,
}

impl Expected {
    fn parse(text: &str) -> Result<Expected, String> {
        Ok(match text {
            "int" | "integer" => Expected::Int,
            "float" => Expected::Float,
            "number" | "numeric" => Expected::Number,
            "date" => Expected::Date,
            other => serde_json::from_value(serde_json::Value::String(other.into()))
                .map(Expected::Exact)
                .map_err(|_| {
                    format!("dtype {other:?} is not one of bool, int32, int64, float32, float64, string, bytes, timestamp, int, float, number, date")
                })?,
        })
    }

    fn accepts(&self, found: &DataType) -> bool {
        match self {
            Expected::Exact(dtype) => dtype.accepts(found),
            Expected::Int => found.is_integer(),
            Expected::Float => found.is_floating(),
            Expected::Number => found.is_integer() || found.is_floating(),
            Expected::Date => matches!(found, DataType::Date32 | DataType::Date64),
        }
    }
}

impl Schema {
    /// Reads and checks the file: an unknown dtype or an inverted range is an error here, not a
    /// data problem later.
    pub fn load(path: &Path) -> Result<Schema, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("with.schema: cannot read {}: {e}", path.display()))?;
        let schema: Schema = serde_norway::from_str(&text)
            .map_err(|e| format!("with.schema: {}: {e}", path.display()))?;
        for (name, column) in &schema.columns {
            if let Some(dtype) = &column.dtype {
                Expected::parse(dtype).map_err(|e| format!("with.schema: column {name}: {e}"))?;
            }
            if let (Some(min), Some(max)) = (column.min, column.max)
                && min > max
            {
                return Err(format!(
                    "with.schema: column {name}: min {min} is above max {max}"
                ));
            }
        }
        Ok(schema)
    }

    /// Every way the data breaks the schema, one message per column and rule, each naming the
    /// column.
    pub fn check(&self, table: &Table) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, column) in &self.columns {
            let Some((_, array)) = table.columns.iter().find(|(n, _)| n == name) else {
                problems.push(format!("column {name} is missing"));
                continue;
            };
            problems.extend(column.check(name, array));
        }
        problems
    }
}

impl Column {
    fn check(&self, name: &str, array: &ArrayRef) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(dtype) = &self.dtype
            && let Ok(expected) = Expected::parse(dtype)
            && !expected.accepts(array.data_type())
        {
            problems.push(format!(
                "column {name} is {}, not {dtype}",
                array.data_type()
            ));
        }
        if !self.nullable && array.null_count() > 0 {
            problems.push(format!(
                "column {name} has {} empty values but is not nullable",
                array.null_count()
            ));
        }
        if self.min.is_none() && self.max.is_none() {
            return problems;
        }
        let numeric = array.data_type().is_integer() || array.data_type().is_floating();
        let Some(values) = numeric
            .then(|| arrow::compute::cast(array, &DataType::Float64).ok())
            .flatten()
        else {
            problems.push(format!(
                "column {name} holds {}, so its min/max cannot be checked",
                array.data_type()
            ));
            return problems;
        };
        let values = values.as_primitive::<Float64Type>();
        let (min, max) = (
            self.min.unwrap_or(f64::NEG_INFINITY),
            self.max.unwrap_or(f64::INFINITY),
        );
        let outside: Vec<f64> = values
            .iter()
            .flatten()
            .filter(|v| *v < min || *v > max)
            .collect();
        if let Some(first) = outside.first() {
            problems.push(format!(
                "column {name} has {} values outside [{min}, {max}] (e.g. {first})",
                outside.len()
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int32Array, StringArray};

    use super::*;

    fn schema(text: &str) -> Result<Schema, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.yaml");
        std::fs::write(&path, text).unwrap();
        Schema::load(&path)
    }

    fn table() -> Table {
        Table {
            columns: vec![
                (
                    "amount".into(),
                    Arc::new(Float64Array::from(vec![Some(1.0), None, Some(250.0)])) as ArrayRef,
                ),
                (
                    "count".into(),
                    Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef,
                ),
                (
                    "country".into(),
                    Arc::new(StringArray::from(vec!["DE", "FR", "DE"])) as ArrayRef,
                ),
            ],
            rows: 3,
        }
    }

    #[test]
    fn clean_data_passes() {
        let s = schema(
            "columns:
  amount: {dtype: float64, min: 0, max: 1000}
  count: {dtype: int64, nullable: false, min: 1}
  country: {dtype: string, nullable: false}
",
        )
        .unwrap();
        assert_eq!(s.check(&table()), Vec::<String>::new());
    }

    #[test]
    fn each_violation_names_its_column() {
        let s = schema(
            "columns:
  amount: {dtype: number, nullable: false, max: 100}
  count: {dtype: float}
  country: {min: 0}
  label: {dtype: bool}
",
        )
        .unwrap();
        assert_eq!(
            s.check(&table()),
            [
                "column amount has 1 empty values but is not nullable",
                "column amount has 1 values outside [-inf, 100] (e.g. 250)",
                "column count is Int32, not float",
                "column country holds Utf8, so its min/max cannot be checked",
                "column label is missing",
            ]
        );
    }

    #[test]
    fn bad_schemas_are_refused_when_loaded() {
        assert!(
            schema("columns: {a: {dtype: decimal}}")
                .unwrap_err()
                .contains("column a: dtype \"decimal\"")
        );
        assert!(
            schema("columns: {a: {min: 5, max: 1}}")
                .unwrap_err()
                .contains("min 5 is above max 1")
        );
        assert!(
            schema("columns: {a: {typo: 1}}")
                .unwrap_err()
                .contains("typo")
        );
    }
}

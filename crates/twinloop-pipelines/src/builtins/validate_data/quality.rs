//! Quality checks that need no reference: rows to learn from, columns that hold something.
//! An empty dataset or an entirely empty column fails; a constant column is only a warning
//! (it may be a filter's doing, and a trainer can drop it).

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray, Scalar};
use arrow::datatypes::Float64Type;
use serde::Serialize;
use twinloop_monitor::io::Table;

#[derive(Debug, Default, Serialize)]
pub(super) struct Quality {
    pub rows: usize,
    pub columns: BTreeMap<String, ColumnQuality>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub(super) struct ColumnQuality {
    /// Share of rows that are null (or NaN).
    pub null_share: f64,
    pub constant: bool,
}

pub(super) fn check(table: &Table) -> Quality {
    let mut quality = Quality {
        rows: table.rows,
        ..Quality::default()
    };
    if table.rows == 0 {
        quality.problems.push("the data has no rows".into());
        return quality;
    }
    for (name, array) in &table.columns {
        let missing = missing(array);
        let constant = missing < array.len() && is_constant(array);
        if missing == array.len() {
            quality.problems.push(format!(
                "column {name} is empty in all {} rows",
                array.len()
            ));
        } else if constant && array.len() > 1 {
            quality
                .warnings
                .push(format!("column {name} holds a single value"));
        }
        quality.columns.insert(
            name.clone(),
            ColumnQuality {
                null_share: missing as f64 / array.len() as f64,
                constant,
            },
        );
    }
    quality
}

fn missing(array: &ArrayRef) -> usize {
    let nan = if array.data_type().is_floating() {
        arrow::compute::cast(array, &arrow::datatypes::DataType::Float64)
            .map(|a| {
                a.as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .filter(|v| v.is_nan())
                    .count()
            })
            .unwrap_or(0)
    } else {
        0
    };
    array.null_count() + nan
}

/// Whether every non-null value equals the first; types the comparison kernel does not know
/// (lists, structs) are never called constant.
fn is_constant(array: &ArrayRef) -> bool {
    let Some(first) = (0..array.len()).find(|&i| array.is_valid(i)) else {
        return false;
    };
    let scalar = Scalar::new(array.slice(first, 1));
    arrow::compute::kernels::cmp::eq(array, &scalar)
        .is_ok_and(|same| same.true_count() == array.len() - array.null_count())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};

    use super::*;

    fn table(columns: Vec<(&str, ArrayRef)>) -> Table {
        let rows = columns.first().map_or(0, |(_, a)| a.len());
        Table {
            columns: columns
                .into_iter()
                .map(|(n, a)| (n.to_owned(), a))
                .collect(),
            rows,
        }
    }

    #[test]
    fn empty_columns_fail_and_constant_ones_warn() {
        let q = check(&table(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(f64::NAN),
                    None,
                    Some(2.0),
                ])),
            ),
            ("gone", Arc::new(Int64Array::from(vec![None::<i64>; 4]))),
            (
                "same",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("a"),
                    Some("a"),
                ])),
            ),
        ]));
        assert_eq!(q.problems, ["column gone is empty in all 4 rows"]);
        assert_eq!(q.warnings, ["column same holds a single value"]);
        assert_eq!(
            q.columns["x"],
            ColumnQuality {
                null_share: 0.5,
                constant: false
            }
        );
        assert!(q.columns["same"].constant && !q.columns["gone"].constant);
    }

    #[test]
    fn no_rows_is_a_problem() {
        let q = check(&table(vec![(
            "x",
            Arc::new(Int64Array::from(Vec::<i64>::new())),
        )]));
        assert_eq!(q.problems, ["the data has no rows"]);
    }
}

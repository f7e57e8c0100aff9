//! What a column holds, seen the way pandas would see it after `read_parquet`, because
//! Evidently types columns from the pandas dtype.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type};

/// The pandas dtype family a column would load as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phys {
    /// float16/32/64, and integers with nulls (pandas turns those into float64).
    Float,
    /// Signed integers without nulls.
    Int,
    /// Unsigned integers without nulls: pandas `uint*`, which Evidently does not type (skipped).
    UInt,
    /// Booleans without nulls.
    Bool,
    /// Booleans with nulls: pandas `object` holding bools, which Evidently does not type.
    BoolWithNulls,
    /// Strings (pandas `object` holding str).
    Str,
    /// Dictionary-encoded values: pandas `category`, always categorical.
    Category,
    /// Dates, times, lists, binary, …: Evidently skips them.
    Other,
}

impl Phys {
    pub fn of(array: &ArrayRef) -> Phys {
        let nulls = array.null_count() > 0;
        match array.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Phys::Float,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                if nulls {
                    Phys::Float
                } else {
                    Phys::Int
                }
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                if nulls {
                    Phys::Float
                } else {
                    Phys::UInt
                }
            }
            DataType::Boolean => {
                if nulls {
                    Phys::BoolWithNulls
                } else {
                    Phys::Bool
                }
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Phys::Str,
            DataType::Dictionary(_, _) => Phys::Category,
            DataType::Null => Phys::Str,
            _ => Phys::Other,
        }
    }

    /// Whether the values are numbers (so two sides with different number types still compare).
    pub fn is_numeric(self) -> bool {
        matches!(self, Phys::Float | Phys::Int | Phys::UInt)
    }

    /// Coarse family used to detect a type mismatch between reference and current.
    pub fn family(self) -> &'static str {
        match self {
            Phys::Float | Phys::Int | Phys::UInt => "number",
            Phys::Bool | Phys::BoolWithNulls => "bool",
            Phys::Str | Phys::Category => "string",
            Phys::Other => "other",
        }
    }
}

/// Counts of what a numerical side holds besides finite values.
#[derive(Clone, Copy, Debug, Default)]
pub struct NumCounts {
    pub len: u64,
    pub missing: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
}

/// A side as f64, with nulls and NaN dropped and ±inf dropped too (Evidently's ValueDrift
/// cleaning, applied the same way every time here), sorted ascending.
pub fn finite_sorted(array: &ArrayRef) -> (Vec<f64>, NumCounts) {
    let mut counts = NumCounts {
        len: array.len() as u64,
        ..Default::default()
    };
    let Ok(cast) = arrow::compute::cast(array, &DataType::Float64) else {
        counts.missing = counts.len;
        return (Vec::new(), counts);
    };
    let values = cast.as_primitive::<Float64Type>();
    let mut out = Vec::with_capacity(values.len() - values.null_count());
    for v in values.iter() {
        match v {
            None => counts.missing += 1,
            Some(x) if x.is_nan() => counts.missing += 1,
            Some(x) if x == f64::INFINITY => counts.pos_inf += 1,
            Some(x) if x == f64::NEG_INFINITY => counts.neg_inf += 1,
            // -0.0 and 0.0 are one value to pandas' unique(); keep them one value here.
            Some(x) => out.push(if x == 0.0 { 0.0 } else { x }),
        }
    }
    out.sort_unstable_by(f64::total_cmp);
    (out, counts)
}

/// Number of distinct values in a sorted slice, counting at most `cap`.
pub fn distinct_sorted(sorted: &[f64], cap: usize) -> usize {
    let mut n = 0;
    let mut prev: Option<f64> = None;
    for &v in sorted {
        if prev != Some(v) {
            n += 1;
            if n >= cap {
                return n;
            }
            prev = Some(v);
        }
    }
    n
}

/// Distinct values of two sorted slices together, counting at most `cap`.
pub fn distinct_merged(a: &[f64], b: &[f64], cap: usize) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        n += 1;
        if n >= cap {
            return n;
        }
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
    }
    n
}

/// Per-value counts of two sorted slices over the union of their values, in ascending order.
pub fn value_counts_merged(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    let (mut keys, mut ca, mut cb) = (Vec::new(), Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        let (si, sj) = (i, j);
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
        keys.push(x);
        ca.push((i - si) as u64);
        cb.push((j - sj) as u64);
    }
    (keys, ca, cb)
}

/// Distinct non-null values of an integer column, counting at most `cap` (the int typing rule
/// only needs to know whether there are more than ten).
pub fn distinct_ints(array: &ArrayRef, cap: usize) -> usize {
    let Ok(cast) = arrow::compute::cast(array, &DataType::Float64) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    for v in cast.as_primitive::<Float64Type>().iter().flatten() {
        seen.insert(v.to_bits());
        if seen.len() >= cap {
            break;
        }
    }
    seen.len()
}

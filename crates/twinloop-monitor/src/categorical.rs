//! Category counts of both sides in one pass each: every categorical test (chi-square, Z,
//! Jensen–Shannon, PSI) needs only these counts.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type};

use crate::column::Phys;

/// A category value. Keys of one column share one variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    Bool(bool),
    Num(f64),
    Str(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Bool(b) => write!(f, "{b}"),
            Key::Num(x) => write!(f, "{x}"),
            Key::Str(s) => f.write_str(s),
        }
    }
}

/// Counts per key over the union of both sides' non-missing values, keys ascending (the
/// Z-test needs the smallest key).
#[derive(Debug, Default)]
pub struct CatCounts {
    pub keys: Vec<Key>,
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
    pub ref_missing: u64,
    pub cur_missing: u64,
}

impl CatCounts {
    pub fn n_ref(&self) -> u64 {
        self.reference.iter().sum()
    }
    pub fn n_cur(&self) -> u64 {
        self.current.iter().sum()
    }
    pub fn cur_distinct(&self) -> usize {
        self.current.iter().filter(|c| **c > 0).count()
    }
}

/// Counts both sides. Numbers (and numbers vs. integers) are matched by value, strings by text.
pub fn count(reference: &ArrayRef, current: &ArrayRef) -> CatCounts {
    let (pr, pc) = (Phys::of(reference), Phys::of(current));
    if pr.is_numeric() && pc.is_numeric() {
        count_numbers(reference, current)
    } else if matches!(pr, Phys::Bool | Phys::BoolWithNulls)
        && matches!(pc, Phys::Bool | Phys::BoolWithNulls)
    {
        count_bools(reference, current)
    } else {
        count_strings(reference, current)
    }
}

fn count_numbers(reference: &ArrayRef, current: &ArrayRef) -> CatCounts {
    let mut map: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut missing = [0u64; 2];
    for (side, array) in [reference, current].into_iter().enumerate() {
        let Ok(cast) = arrow::compute::cast(array, &DataType::Float64) else {
            missing[side] += array.len() as u64;
            continue;
        };
        for v in cast.as_primitive::<Float64Type>().iter() {
            match v {
                // Evidently drops NaN and ±inf before testing; the quality section reports them.
                Some(x) if x.is_finite() => {
                    let x = if x == 0.0 { 0.0 } else { x };
                    let e = map.entry(x.to_bits()).or_default();
                    if side == 0 { e.0 += 1 } else { e.1 += 1 }
                }
                _ => missing[side] += 1,
            }
        }
    }
    let mut rows: Vec<(f64, (u64, u64))> = map
        .into_iter()
        .map(|(k, c)| (f64::from_bits(k), c))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    finish(rows.into_iter().map(|(k, c)| (Key::Num(k), c)), missing)
}

fn count_bools(reference: &ArrayRef, current: &ArrayRef) -> CatCounts {
    let mut c = [[0u64; 2]; 2];
    let mut missing = [0u64; 2];
    for (side, array) in [reference, current].into_iter().enumerate() {
        for v in array.as_boolean().iter() {
            match v {
                Some(b) => c[usize::from(b)][side] += 1,
                None => missing[side] += 1,
            }
        }
    }
    let rows = [
        (Key::Bool(false), (c[0][0], c[0][1])),
        (Key::Bool(true), (c[1][0], c[1][1])),
    ];
    finish(rows.into_iter().filter(|(_, (a, b))| a + b > 0), missing)
}

fn count_strings(reference: &ArrayRef, current: &ArrayRef) -> CatCounts {
    let r = arrow::compute::cast(reference, &DataType::Utf8).ok();
    let c = arrow::compute::cast(current, &DataType::Utf8).ok();
    let mut map: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut missing = [0u64; 2];
    for (side, array) in [&r, &c].into_iter().enumerate() {
        let Some(array) = array else {
            missing[side] += [reference, current][side].len() as u64;
            continue;
        };
        for v in array.as_string::<i32>().iter() {
            match v {
                Some(s) => {
                    let e = map.entry(s).or_default();
                    if side == 0 { e.0 += 1 } else { e.1 += 1 }
                }
                None => missing[side] += 1,
            }
        }
    }
    let mut rows: Vec<(&str, (u64, u64))> = map.into_iter().collect();
    // Python sorts str by code point, which is UTF-8 byte order.
    rows.sort_by(|a, b| a.0.cmp(b.0));
    finish(
        rows.into_iter().map(|(k, c)| (Key::Str(k.to_string()), c)),
        missing,
    )
}

fn finish(rows: impl Iterator<Item = (Key, (u64, u64))>, missing: [u64; 2]) -> CatCounts {
    let mut out = CatCounts {
        ref_missing: missing[0],
        cur_missing: missing[1],
        ..Default::default()
    };
    for (k, (a, b)) in rows {
        out.keys.push(k);
        out.reference.push(a);
        out.current.push(b);
    }
    out
}

/// Distinct non-null strings of one side, counting at most `cap`: the text-vs-categorical rule
/// compares it with half the non-null count.
pub fn distinct_strings(array: &ArrayRef, cap: usize) -> (usize, usize) {
    let Ok(cast) = arrow::compute::cast(array, &DataType::Utf8) else {
        return (0, 0);
    };
    let strings = cast.as_string::<i32>();
    let mut seen = std::collections::HashSet::new();
    for s in strings.iter().flatten() {
        seen.insert(s);
        if seen.len() >= cap {
            break;
        }
    }
    (seen.len(), strings.len() - strings.null_count())
}

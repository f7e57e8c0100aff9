//! A dataset's profile, the summary Evidently's `DataSummaryPreset` and pandas' `describe()`
//! give: per column its type (typed as the drift engine types it), counts, missing values,
//! distinct values, numeric statistics and the most frequent values; per dataset the totals.
//!
//! The statistics come from [`crate::profile`]'s streaming sketches, so their error bounds are
//! the ones documented there: counts, min, max, mean and std are exact (up to rounding),
//! quantiles are within `QUANTILE_ALPHA` relative error. Distinct values and top values are
//! exact up to `MAX_DISTINCT` distinct values per column; past it `distinct` is a lower bound
//! (`distinct_capped`), and the top values are the most frequent of the first `MAX_DISTINCT`
//! values seen.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use serde::Serialize;

use crate::column::Phys;
use crate::engine::column_type;
use crate::io::Table;
use crate::profile::{CategoricalProfile, NumericProfile};

/// Relative accuracy of the quantiles.
const QUANTILE_ALPHA: f64 = 0.01;
/// Distinct values counted (and categories kept) per column.
pub const MAX_DISTINCT: usize = 10_000;

#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// How many of the most frequent values each non-numerical column lists.
    pub top: usize,
    /// The quantiles of numerical columns, each within [0, 1].
    pub quantiles: Vec<f64>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            top: 10,
            quantiles: vec![0.05, 0.25, 0.5, 0.75, 0.95],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableProfile {
    pub rows: usize,
    pub columns: usize,
    /// Null or NaN cells over every column.
    pub missing_cells: u64,
    /// `missing_cells` over rows × columns (0 for an empty table).
    pub missing_share: f64,
    /// Column type → how many columns have it.
    pub types: BTreeMap<&'static str, usize>,
    /// Columns holding a single distinct value.
    pub constant_columns: Vec<String>,
    /// Columns with no value at all.
    pub empty_columns: Vec<String>,
    /// In the file's column order.
    pub column_profiles: Vec<ColumnProfile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnProfile {
    pub name: String,
    /// `num`, `cat`, `text` (Evidently's inference, as the drift engine applies it),
    /// `datetime`, or `unknown`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The Arrow type as read.
    pub dtype: String,
    /// Values present: rows less missing ones.
    pub count: u64,
    /// Nulls, and NaN in floating-point columns.
    pub missing: u64,
    pub missing_share: f64,
    pub distinct: u64,
    /// `distinct` stopped counting at `MAX_DISTINCT`: there are at least that many.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub distinct_capped: bool,
    /// Numerical columns with at least one finite value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericSummary>,
    /// Dates and times: the earliest and latest, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<(String, String)>,
    /// The most frequent values of columns that are not numerical, most frequent first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<Vec<TopValue>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NumericSummary {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The sample standard deviation (n − 1, as pandas and Evidently give it); 0 for one value.
    pub std: f64,
    /// ±inf values: counted, but left out of the statistics.
    pub infinite: u64,
    pub quantiles: Vec<Quantile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantile {
    pub q: f64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
    /// Of the values present.
    pub share: f64,
}

/// Profiles every column of `table`. Quantiles outside [0, 1] are an error, not a clamp.
pub fn profile_table(
    table: &Table,
    options: &ProfileOptions,
) -> Result<TableProfile, crate::Error> {
    if let Some(q) = options.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        return Err(crate::Error::input(format!(
            "quantile {q} is not within [0, 1]"
        )));
    }
    let column_profiles: Vec<ColumnProfile> = table
        .columns
        .iter()
        .map(|(name, values)| profile_column(name, values, options))
        .collect();
    let missing_cells = column_profiles.iter().map(|c| c.missing).sum();
    let cells = table.rows * column_profiles.len();
    let mut types = BTreeMap::new();
    for c in &column_profiles {
        *types.entry(c.kind).or_default() += 1;
    }
    let names = |keep: fn(&ColumnProfile) -> bool| {
        column_profiles
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.clone())
            .collect()
    };
    Ok(TableProfile {
        rows: table.rows,
        columns: column_profiles.len(),
        missing_cells,
        missing_share: share(missing_cells, cells as u64),
        types,
        constant_columns: names(|c| c.distinct == 1),
        empty_columns: names(|c| c.count == 0),
        column_profiles,
    })
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn is_temporal(dtype: &DataType) -> bool {
    matches!(
        dtype,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    )
}

fn profile_column(name: &str, values: &ArrayRef, options: &ProfileOptions) -> ColumnProfile {
    let kind = if is_temporal(values.data_type()) {
        "datetime"
    } else {
        column_type(values)
    };
    let rows = values.len() as u64;
    let mut column = ColumnProfile {
        name: name.to_owned(),
        kind,
        dtype: values.data_type().to_string(),
        count: 0,
        missing: 0,
        missing_share: 0.0,
        distinct: 0,
        distinct_capped: false,
        numeric: None,
        range: None,
        top: None,
    };
    if Phys::of(values).is_numeric() {
        numeric(&mut column, values, options);
    } else if kind == "datetime" {
        temporal(&mut column, values);
    }
    if !matches!(kind, "num" | "datetime") {
        categories(&mut column, values, options.top);
    }
    column.count = rows - column.missing;
    column.missing_share = share(column.missing, rows);
    column
}

/// Statistics of a numerical column from the streaming sketch, and its distinct values.
fn numeric(column: &mut ColumnProfile, values: &ArrayRef, options: &ProfileOptions) {
    let Ok(cast) = arrow::compute::cast(values, &DataType::Float64) else {
        return;
    };
    let mut sketch = NumericProfile::new(QUANTILE_ALPHA);
    let mut seen = HashSet::new();
    for x in cast.as_primitive::<Float64Type>().iter() {
        sketch.insert(x);
        if let Some(x) = x.filter(|x| !x.is_nan())
            && seen.len() < MAX_DISTINCT
        {
            // -0.0 and 0.0 are one value.
            let x = if x == 0.0 { 0.0f64 } else { x };
            seen.insert(x.to_bits());
        }
    }
    column.missing = sketch.missing;
    column.distinct = seen.len() as u64;
    column.distinct_capped = seen.len() >= MAX_DISTINCT;
    if sketch.count == 0 {
        return;
    }
    let n = sketch.count as f64;
    let std = if sketch.count > 1 {
        (sketch.variance() * n / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    column.numeric = Some(NumericSummary {
        min: sketch.min,
        max: sketch.max,
        mean: sketch.mean(),
        std,
        infinite: sketch.infinite,
        quantiles: options
            .quantiles
            .iter()
            .filter_map(|&q| sketch.quantile(q).map(|value| Quantile { q, value }))
            .collect(),
    });
}

/// The earliest and latest of a date or time column, and its distinct values.
fn temporal(column: &mut ColumnProfile, values: &ArrayRef) {
    column.missing = values.logical_null_count() as u64;
    let Ok(ticks) = arrow::compute::cast(values, &DataType::Int64) else {
        return;
    };
    let ticks = ticks.as_primitive::<arrow::datatypes::Int64Type>();
    let mut seen = HashSet::new();
    // (ticks, row) of the earliest and the latest.
    let mut lo: Option<(i64, usize)> = None;
    let mut hi: Option<(i64, usize)> = None;
    for (i, t) in ticks.iter().enumerate() {
        let Some(t) = t else { continue };
        if seen.len() < MAX_DISTINCT {
            seen.insert(t);
        }
        if lo.is_none_or(|(l, _)| t < l) {
            lo = Some((t, i));
        }
        if hi.is_none_or(|(h, _)| t > h) {
            hi = Some((t, i));
        }
    }
    column.distinct = seen.len() as u64;
    column.distinct_capped = seen.len() >= MAX_DISTINCT;
    if let (Some((_, l)), Some((_, h))) = (lo, hi) {
        column.range = show_time(values, l).zip(show_time(values, h));
    }
}

/// A date or time as ISO 8601 text. Zoned times are instants: written in UTC, ending in `Z`
/// (Arrow would need the zone database to write them in their zone).
fn show_time(values: &ArrayRef, i: usize) -> Option<String> {
    use arrow::util::display::array_value_to_string;
    match values.data_type() {
        DataType::Timestamp(unit, Some(_)) => {
            let naive =
                arrow::compute::cast(&values.slice(i, 1), &DataType::Timestamp(*unit, None))
                    .ok()?;
            array_value_to_string(&naive, 0).ok().map(|t| t + "Z")
        }
        _ => array_value_to_string(values, i).ok(),
    }
}

/// Counts of the values as text, for the top values (and the distinct count of columns that
/// are not numerical).
fn categories(column: &mut ColumnProfile, values: &ArrayRef, top: usize) {
    let Ok(text) = arrow::compute::cast(values, &DataType::Utf8) else {
        return;
    };
    let mut counts = CategoricalProfile::new(MAX_DISTINCT);
    for v in text.as_string::<i32>().iter() {
        counts.insert(v);
    }
    let numeric = Phys::of(values).is_numeric();
    if !numeric {
        // NaN is not missing here: a float column's missing values were counted by `numeric`.
        column.missing = counts.missing;
        column.distinct = counts.counts.len() as u64 + u64::from(counts.other > 0);
        column.distinct_capped = counts.other > 0;
    }
    let present: u64 = counts.counts.values().sum::<u64>() + counts.other;
    let mut ranked: Vec<(&String, &u64)> = counts
        .counts
        .iter()
        .filter(|(value, _)| !(numeric && value.as_str() == "NaN"))
        .collect();
    // Most frequent first; ties in value order, so a profile reads the same every time.
    ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    column.top = Some(
        ranked
            .into_iter()
            .take(top)
            .map(|(value, &count)| TopValue {
                value: value.clone(),
                count,
                share: share(count, present),
            })
            .collect(),
    );
}

impl TableProfile {
    /// A Markdown summary: the dataset's totals, then one table row per column.
    pub fn to_markdown(&self, title: &str) -> String {
        let mut out = format!(
            "# {title}\n\n{} rows, {} columns; {} missing cells ({:.2}%)\n",
            self.rows,
            self.columns,
            self.missing_cells,
            100.0 * self.missing_share
        );
        if !self.types.is_empty() {
            let types: Vec<String> = self.types.iter().map(|(t, n)| format!("{n} {t}")).collect();
            out.push_str(&format!("\ncolumn types: {}\n", types.join(", ")));
        }
        for (what, names) in [
            ("constant columns", &self.constant_columns),
            ("empty columns", &self.empty_columns),
        ] {
            if !names.is_empty() {
                out.push_str(&format!("\n{what}: {}\n", names.join(", ")));
            }
        }
        out.push_str(
            "\n| column | type | dtype | count | missing | distinct | mean | std | min | median | max | top values |\n\
             |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for c in &self.column_profiles {
            let number = |x: Option<f64>| x.map_or_else(String::new, |x| format!("{x:.4}"));
            let n = c.numeric.as_ref();
            let median = n.and_then(|n| n.quantiles.iter().find(|q| q.q == 0.5).map(|q| q.value));
            let (min, max) = match (&c.range, n) {
                (Some((lo, hi)), _) => (lo.clone(), hi.clone()),
                (None, n) => (number(n.map(|n| n.min)), number(n.map(|n| n.max))),
            };
            let top = c.top.as_ref().map_or_else(String::new, |top| {
                top.iter()
                    .take(3)
                    .map(|t| format!("{} ({:.1}%)", escape(&t.value), 100.0 * t.share))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} ({:.1}%) | {}{} | {} | {} | {min} | {} | {max} | {top} |\n",
                escape(&c.name),
                c.kind,
                c.dtype,
                c.count,
                c.missing,
                100.0 * c.missing_share,
                c.distinct,
                if c.distinct_capped { "+" } else { "" },
                number(n.map(|n| n.mean)),
                number(n.map(|n| n.std)),
                number(median),
            ));
        }
        out
    }
}

/// A value as table-cell text: pipes escaped, line breaks as spaces.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

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

    fn column<'a>(p: &'a TableProfile, name: &str) -> &'a ColumnProfile {
        p.column_profiles.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn numbers_get_statistics_and_strings_their_top_values() {
        // amount: 1..=100 with a null, a NaN and an infinity; country: 60 DE, 30 FR, 13 IT.
        let mut amounts: Vec<Option<f64>> = (1..=100).map(|i| Some(f64::from(i))).collect();
        amounts.extend([None, Some(f64::NAN), Some(f64::INFINITY)]);
        let countries: Vec<&str> = (0..103)
            .map(|i| match i {
                0..60 => "DE",
                60..90 => "FR",
                _ => "IT",
            })
            .collect();
        let p = profile_table(
            &table(vec![
                ("amount", Arc::new(Float64Array::from(amounts))),
                ("country", Arc::new(StringArray::from(countries))),
            ]),
            &ProfileOptions::default(),
        )
        .unwrap();
        assert_eq!((p.rows, p.columns, p.missing_cells), (103, 2, 2));
        assert_eq!(p.types, BTreeMap::from([("cat", 1), ("num", 1)]));
        let amount = column(&p, "amount");
        assert_eq!(amount.kind, "num");
        assert_eq!(
            (amount.count, amount.missing, amount.distinct),
            (101, 2, 101)
        );
        let n = amount.numeric.as_ref().unwrap();
        assert_eq!((n.min, n.max, n.mean, n.infinite), (1.0, 100.0, 50.5, 1));
        // pandas: pd.Series(range(1, 101)).std() = 29.011491975882016
        assert!((n.std - 29.011_491_975_882_016).abs() < 1e-9, "{}", n.std);
        let median = n.quantiles.iter().find(|q| q.q == 0.5).unwrap().value;
        assert!((median - 50.0).abs() <= 0.01 * 50.0, "{median}");
        assert!(amount.top.is_none(), "numerical columns list no top values");

        let country = column(&p, "country");
        assert_eq!(
            (country.kind, country.count, country.distinct),
            ("cat", 103, 3)
        );
        assert!(country.numeric.is_none());
        let top = country.top.as_ref().unwrap();
        assert_eq!(
            top.iter()
                .map(|t| (t.value.as_str(), t.count))
                .collect::<Vec<_>>(),
            [("DE", 60), ("FR", 30), ("IT", 13)]
        );
        assert!((top[0].share - 60.0 / 103.0).abs() < 1e-12);
    }

    #[test]
    fn low_cardinality_integers_are_categorical_with_both_views() {
        let p = profile_table(
            &table(vec![
                (
                    "stars",
                    Arc::new(Int64Array::from_iter_values((0..50).map(|i| i % 5))),
                ),
                (
                    "flag",
                    Arc::new(BooleanArray::from_iter((0..50).map(|i| Some(i < 10)))),
                ),
            ]),
            &ProfileOptions {
                top: 2,
                quantiles: vec![0.0, 1.0],
            },
        )
        .unwrap();
        let stars = column(&p, "stars");
        assert_eq!((stars.kind, stars.distinct), ("cat", 5));
        let n = stars.numeric.as_ref().unwrap();
        assert_eq!(
            n.quantiles,
            [
                Quantile { q: 0.0, value: 0.0 },
                Quantile { q: 1.0, value: 4.0 }
            ]
        );
        assert_eq!(stars.top.as_ref().unwrap().len(), 2, "top is capped");
        let flag = column(&p, "flag");
        assert_eq!(flag.kind, "cat");
        assert_eq!(flag.top.as_ref().unwrap()[0].value, "false");
    }

    #[test]
    fn empty_constant_and_dated_columns_are_named() {
        let day = 86_400_000_000i64;
        let p = profile_table(
            &table(vec![
                ("gone", Arc::new(Float64Array::from(vec![None::<f64>; 3]))),
                ("same", Arc::new(StringArray::from(vec!["a", "a", "a"]))),
                (
                    "at",
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![Some(2 * day), None, Some(0)])
                            .with_timezone("UTC"),
                    ),
                ),
            ]),
            &ProfileOptions::default(),
        )
        .unwrap();
        assert_eq!(p.empty_columns, ["gone"]);
        assert_eq!(p.constant_columns, ["same"]);
        assert_eq!(p.missing_cells, 4);
        let gone = column(&p, "gone");
        assert!(gone.numeric.is_none() && gone.count == 0);
        let at = column(&p, "at");
        assert_eq!((at.kind, at.missing, at.distinct), ("datetime", 1, 2));
        assert_eq!(
            at.range,
            Some(("1970-01-01T00:00:00Z".into(), "1970-01-03T00:00:00Z".into()))
        );
        let md = p.to_markdown("profile of d");
        assert!(
            md.starts_with("# profile of d\n\n3 rows, 3 columns; 4 missing cells"),
            "{md}"
        );
        assert!(md.contains("empty columns: gone"), "{md}");
        assert!(
            md.contains("| same | cat | Utf8 | 3 | 0 (0.0%) | 1 |"),
            "{md}"
        );
    }

    #[test]
    fn a_quantile_outside_zero_to_one_is_refused() {
        let err = profile_table(
            &table(vec![("x", Arc::new(Float64Array::from(vec![1.0])))]),
            &ProfileOptions {
                top: 1,
                quantiles: vec![50.0],
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "quantile 50 is not within [0, 1]");
    }
}

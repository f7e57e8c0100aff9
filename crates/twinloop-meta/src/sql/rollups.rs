//! The rollup pyramid behind metric series: per (run, key) and level 2 to 12, one row per cell
//! of 4^level steps that holds a finite value, with how many such points it holds, their min and
//! max, the last of them by (step, timestamp, value) (`migrations/*/0010_metric_rollups.sql`),
//! and the smallest and greatest timestamp among them (`0017_rollup_timestamps.sql`), so that a
//! time axis can tell which cells lie inside one of its buckets.
//!
//! Beside the pyramid, one row per (run, key) at [`NON_FINITE_LEVEL`] counts the NaN and infinite
//! points the pyramid leaves out, with their timestamps' extent: with it a time axis knows a
//! run's whole extent without reading its rows.
//!
//! Kept in the transaction that logs the points, from the points the insert really added (a
//! point refused as a duplicate, e.g. in a retried batch, must not be counted twice). A batch is
//! folded in memory first, so 1,000 consecutive steps of one key touch about 90 rows, written
//! with one statement.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};
use twinloop_core::Result;
use twinloop_core::tracking::Metric;

use super::query::{Arg, MAX_ARGS, RowExt, Sql, backend_of, chunks_for, decode_metric_value};
use crate::series::{Cell, MIN_LEVEL, Point, TOP_LEVEL, cell_width};

/// The level of the row that holds a (run, key)'s NaN and infinite points: how many (`points`),
/// the extent of their timestamps, and the last of them by (step, timestamp); its value columns
/// hold 0. Outside the pyramid's levels, which every read of cells names, so no bucket ever
/// folds it. Points logged before it was kept are not in it: a reader compares its count and the
/// pyramid's with `latest_metrics.value_count` and reads the rows when they differ.
pub(super) const NON_FINITE_LEVEL: i64 = -1;

/// The head of the cells upsert, whose rows are followed by [`MERGE`].
pub(super) const INSERT: &str = "INSERT INTO metric_rollups (run_uuid, key, level, cell, points, \
     min_value, max_value, last_step, last_timestamp, last_value, min_timestamp, max_timestamp) VALUES ";

/// A stored cell is merged with the batch's: counts add, extremes combine, the later last wins
/// (compared as the series compares points, step then timestamp then value).
pub(super) const MERGE: &str = " ON CONFLICT (run_uuid, key, level, cell) DO UPDATE SET \
     points = metric_rollups.points + excluded.points, \
     min_value = CASE WHEN excluded.min_value < metric_rollups.min_value \
         THEN excluded.min_value ELSE metric_rollups.min_value END, \
     max_value = CASE WHEN excluded.max_value > metric_rollups.max_value \
         THEN excluded.max_value ELSE metric_rollups.max_value END, \
     min_timestamp = CASE WHEN excluded.min_timestamp < metric_rollups.min_timestamp \
         THEN excluded.min_timestamp ELSE metric_rollups.min_timestamp END, \
     max_timestamp = CASE WHEN excluded.max_timestamp > metric_rollups.max_timestamp \
         THEN excluded.max_timestamp ELSE metric_rollups.max_timestamp END, \
     last_step = CASE WHEN (excluded.last_step, excluded.last_timestamp, excluded.last_value) \
         > (metric_rollups.last_step, metric_rollups.last_timestamp, metric_rollups.last_value) \
         THEN excluded.last_step ELSE metric_rollups.last_step END, \
     last_timestamp = CASE WHEN (excluded.last_step, excluded.last_timestamp, excluded.last_value) \
         > (metric_rollups.last_step, metric_rollups.last_timestamp, metric_rollups.last_value) \
         THEN excluded.last_timestamp ELSE metric_rollups.last_timestamp END, \
     last_value = CASE WHEN (excluded.last_step, excluded.last_timestamp, excluded.last_value) \
         > (metric_rollups.last_step, metric_rollups.last_timestamp, metric_rollups.last_value) \
         THEN excluded.last_value ELSE metric_rollups.last_value END";

/// Adds `inserted`, the points of `run_id` that the current transaction has just stored, to
/// their cells at every level.
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    run_id: &str,
    inserted: &[Metric],
) -> Result<()> {
    let cells = fold(inserted);
    for chunk in chunks_for(&cells, 12, MAX_ARGS) {
        let mut sql = Sql::new(backend_of(tx), INSERT);
        for (i, ((key, level, cell), c)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.tuple([
                Arg::from(run_id),
                Arg::from(*key),
                Arg::from(*level),
                Arg::from(*cell),
                Arg::from(i64::try_from(c.count).unwrap_or(i64::MAX)),
                Arg::from(c.min),
                Arg::from(c.max),
                Arg::from(c.last.step),
                Arg::from(c.last.timestamp),
                Arg::from(c.last.value),
                Arg::from(c.min_timestamp),
                Arg::from(c.max_timestamp),
            ]);
        }
        sql.push(MERGE);
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The batch's finite points summed per (key, level, cell), and its others per key in cell 0 of
/// [`NON_FINITE_LEVEL`]. Points are folded into the finest level only; each level above is
/// folded from the one below, four of its cells to one (a cell's sum does not depend on how its
/// points were grouped), so a batch costs one map update per point and per finer cell rather
/// than one per point and level.
pub(super) fn fold<'a>(
    points: impl IntoIterator<Item = &'a Metric>,
) -> Vec<((&'a str, i64, i64), Cell)> {
    fn merge<'a>(
        cells: &mut BTreeMap<(&'a str, i64, i64), Cell>,
        at: (&'a str, i64, i64),
        point: Cell,
    ) {
        cells
            .entry(at)
            .and_modify(|c| c.merge(&point))
            .or_insert(point);
    }
    let mut finest = BTreeMap::new();
    let mut cells = BTreeMap::new();
    for m in points {
        let key = m.key.as_str();
        let point = |value| {
            Cell::of(Point {
                x: m.step,
                step: m.step,
                timestamp: m.timestamp,
                value,
            })
        };
        if m.value.is_finite() {
            let cell = m.step.div_euclid(cell_width(MIN_LEVEL));
            merge(
                &mut finest,
                (key, i64::from(MIN_LEVEL), cell),
                point(m.value),
            );
        } else {
            merge(&mut cells, (key, NON_FINITE_LEVEL, 0), point(0.0));
        }
    }
    let mut below = finest;
    for level in MIN_LEVEL + 1..=TOP_LEVEL {
        let mut above = BTreeMap::new();
        for (&(key, _, cell), c) in &below {
            // floor(floor(step / 4^l) / 4) = floor(step / 4^(l+1)), negative steps too.
            merge(&mut above, (key, i64::from(level), cell.div_euclid(4)), *c);
        }
        cells.append(&mut below);
        below = above;
    }
    cells.append(&mut below);
    cells.into_iter().collect()
}

/// A point as the metrics insert returns it: `key, step, timestamp, value, is_nan`.
pub(super) fn inserted_point(row: &dyn RowExt) -> Result<Metric> {
    Ok(Metric::new(
        row.text(0)?,
        decode_metric_value(row.float(3)?, row.int(4)?),
        row.int(2)?,
        row.int(1)?,
    ))
}

/// The columns [`cell_from_row`] reads, in its order.
pub(super) const CELL_COLUMNS: &str = "points, min_value, max_value, last_step, last_timestamp, \
     last_value, min_timestamp, max_timestamp";

/// A stored cell, from [`CELL_COLUMNS`] starting at column `at`.
pub(super) fn cell_from_row(row: &dyn RowExt, at: usize) -> Result<Cell> {
    let last_step = row.int(at + 3)?;
    Ok(Cell {
        count: u64::try_from(row.int(at)?).unwrap_or(0),
        min: row.float(at + 1)?,
        max: row.float(at + 2)?,
        last: Point {
            x: last_step,
            step: last_step,
            timestamp: row.int(at + 4)?,
            value: row.float(at + 5)?,
        },
        min_timestamp: row.int(at + 6)?,
        max_timestamp: row.int(at + 7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_consecutive_steps_touches_few_cells_and_counts_non_finite_values_apart() {
        let mut batch: Vec<Metric> = (0..1000)
            .map(|s| Metric::new("loss", s as f64, 1, s))
            .collect();
        batch.push(Metric::new("loss", f64::NAN, 7, 5000));
        batch.push(Metric::new("loss", f64::INFINITY, 3, 6000));
        let cells = fold(&batch);
        assert!(cells.len() < 100, "{} cells", cells.len());
        let others: Vec<_> = cells
            .iter()
            .filter(|((_, l, _), _)| *l == NON_FINITE_LEVEL)
            .collect();
        assert_eq!(others.len(), 1);
        let (_, c) = others[0];
        assert_eq!(
            (
                c.count,
                c.min_timestamp,
                c.max_timestamp,
                c.last.step,
                c.max
            ),
            (2, 3, 7, 6000, 0.0)
        );
        let level2: Vec<_> = cells.iter().filter(|((_, l, _), _)| *l == 2).collect();
        assert_eq!(level2.len(), 63);
        let ((_, _, first), c) = level2[0];
        assert_eq!(
            (*first, c.count, c.min, c.max, c.last.step),
            (0, 16, 0.0, 15.0, 15)
        );
        for level in MIN_LEVEL..=TOP_LEVEL {
            let total: u64 = cells
                .iter()
                .filter(|((_, l, _), _)| *l == i64::from(level))
                .map(|(_, c)| c.count)
                .sum();
            assert_eq!(total, 1000, "level {level}");
        }
    }

    /// The level-by-level fold sums exactly what folding every point into every level sums.
    #[test]
    fn folding_level_by_level_equals_folding_each_point_into_every_level() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let points: Vec<Metric> = (0..3000)
            .map(|i| {
                let r = next();
                let step = (r % 200_000) as i64 - 100_000;
                let value = match r % 97 {
                    0 => f64::NAN,
                    1 => f64::NEG_INFINITY,
                    _ => (r >> 11) as f64 / 1e9,
                };
                Metric::new(["a", "b", "c"][i % 3], value, (r % 1000) as i64, step)
            })
            .collect();
        let mut want: BTreeMap<(&str, i64, i64), Cell> = BTreeMap::new();
        for m in &points {
            let p = |value| {
                Cell::of(Point {
                    x: m.step,
                    step: m.step,
                    timestamp: m.timestamp,
                    value,
                })
            };
            let mut add = |at, c: Cell| {
                want.entry(at).and_modify(|w| w.merge(&c)).or_insert(c);
            };
            if !m.value.is_finite() {
                add((m.key.as_str(), NON_FINITE_LEVEL, 0), p(0.0));
                continue;
            }
            for level in MIN_LEVEL..=TOP_LEVEL {
                let cell = m.step.div_euclid(cell_width(level));
                add((m.key.as_str(), i64::from(level), cell), p(m.value));
            }
        }
        let got = fold(&points);
        assert_eq!(got.len(), want.len());
        for ((at, c), (want_at, w)) in got.iter().zip(&want) {
            assert_eq!(at, want_at);
            assert_eq!(
                (c.count, c.min, c.max, c.min_timestamp, c.max_timestamp),
                (w.count, w.min, w.max, w.min_timestamp, w.max_timestamp),
                "{at:?}"
            );
            assert_eq!(
                (c.last.step, c.last.timestamp, c.last.value),
                (w.last.step, w.last.timestamp, w.last.value),
                "{at:?}"
            );
        }
    }

    #[test]
    fn negative_steps_fall_in_the_cell_below_zero() {
        let points = [Metric::new("m", 1.0, 1, -1), Metric::new("m", 2.0, 1, -16)];
        let cells = fold(&points);
        let at_level_2: Vec<i64> = cells
            .iter()
            .filter(|((_, l, _), _)| *l == 2)
            .map(|((_, _, c), _)| *c)
            .collect();
        assert_eq!(at_level_2, vec![-1]);
    }
}

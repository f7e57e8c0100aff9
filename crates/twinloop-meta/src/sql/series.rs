//! Reads metric series (`crate::series`): the runs' extents on the x axis, then per run the
//! rollup cells and edge rows that cover the range exactly (step axis, buckets of 16 steps or
//! more), or a walk down the pyramid (time axes: see [`SqlStore::time_series`]), or one pass
//! over the rows in range, folded as they arrive.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use twinloop_core::Result;
use twinloop_core::ids::is_run_id;

use super::SqlStore;
use super::query::MAX_ARGS;
use super::query::{RowExt, Sql};
use super::rollups::{CELL_COLUMNS, NON_FINITE_LEVEL, cell_from_row};
use crate::series::{
    Cell, Fold, Layout, MIN_LEVEL, Piece, Point, RawPoints, RunSeries, Series, SeriesData,
    SeriesQuery, SeriesRange, TOP_LEVEL, TimeFold, XAxis, cell_steps, cover,
};

/// Largest number of run ids put in one `IN (…)` list.
const IN_CHUNK: usize = 500;

/// A run's points of the key on the x axis: `lo..=hi`, and for the relative axis the timestamp
/// that x counts from.
#[derive(Debug, Clone, Copy)]
struct Extent {
    lo: i64,
    hi: i64,
    t0: i64,
}

impl SqlStore {
    pub(super) async fn downsample(&self, q: &SeriesQuery) -> Result<Series> {
        q.validate()?;
        let mut seen = HashSet::new();
        let run_ids: Vec<&str> = q
            .run_ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let extents = self.extents(q, &run_ids).await?;
        let lo = q.from.or_else(|| extents.values().map(|e| e.lo).min());
        let hi = q.to.or_else(|| extents.values().map(|e| e.hi).max());
        let layout = match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => Some(Layout::new(lo, hi, q.buckets)),
            _ => None,
        };
        let mut runs = Vec::with_capacity(run_ids.len());
        for run_id in run_ids {
            let data = match (layout, extents.get(run_id)) {
                (Some(layout), Some(extent))
                    if extent.lo <= layout.hi && layout.lo <= extent.hi =>
                {
                    self.run_series(run_id, q, layout, extent).await?
                }
                _ => SeriesData::Raw(RawPoints::default()),
            };
            runs.push(RunSeries {
                run_id: run_id.to_string(),
                data,
            });
        }
        Ok(Series {
            range: layout.map(|l| SeriesRange {
                from: l.lo,
                to: l.hi,
                bucket_width: l.width(),
                origin: l.origin(),
            }),
            runs,
        })
    }

    /// The extents of the runs that have points of the key. Skipped on the step and time axes
    /// when both bounds are given; the relative axis always needs each run's first timestamp.
    async fn extents(&self, q: &SeriesQuery, run_ids: &[&str]) -> Result<HashMap<String, Extent>> {
        let ids: Vec<&str> = run_ids.iter().copied().filter(|id| is_run_id(id)).collect();
        let mut extents = HashMap::new();
        if q.x != XAxis::Relative && q.from.is_some() && q.to.is_some() {
            // Every run may have points in range; the reads that follow find out.
            for id in ids {
                extents.insert(
                    id.to_string(),
                    Extent {
                        lo: i64::MIN,
                        hi: i64::MAX,
                        t0: 0,
                    },
                );
            }
            return Ok(extents);
        }
        let scan: Vec<&str> = if q.x == XAxis::Step {
            ids
        } else {
            self.time_extents_from_rollups(q, &ids, &mut extents)
                .await?
        };
        for chunk in scan.chunks(IN_CHUNK) {
            // One aggregate per subquery, so that SQLite reads the ends of each run's steps from
            // the primary key instead of scanning them; time has no index and is scanned.
            let mut sql = match q.x {
                XAxis::Step => {
                    let mut sql = self.sql(
                        "SELECT r.run_uuid, \
                         (SELECT MIN(m.step) FROM metrics m WHERE m.run_uuid = r.run_uuid AND m.key = ",
                    );
                    sql.arg(&q.key).push(
                        "), (SELECT MAX(m.step) FROM metrics m WHERE m.run_uuid = r.run_uuid AND m.key = ",
                    );
                    sql.arg(&q.key).push(") FROM runs r WHERE r.run_uuid IN ");
                    sql
                }
                XAxis::Time | XAxis::Relative => {
                    let mut sql = self.sql(
                        "SELECT run_uuid, MIN(timestamp), MAX(timestamp) FROM metrics WHERE key = ",
                    );
                    sql.arg(&q.key).push(" AND run_uuid IN ");
                    sql
                }
            };
            sql.arg_list(chunk);
            if q.x != XAxis::Step {
                sql.push(" GROUP BY run_uuid");
            }
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                let (Some(first), Some(last)) = (row.opt_int(1)?, row.opt_int(2)?) else {
                    return Ok(());
                };
                extents.insert(row.text(0)?, extent_of(q.x, first, last));
                Ok(())
            })?;
        }
        Ok(extents)
    }

    /// Time extents of the runs whose every point of the key the rollups count, from the top
    /// level of the pyramid (the finite points) and the row of NaN and infinite points beside
    /// it: when together they count all the run's points (`latest_metrics.value_count`), their
    /// timestamps are the run's. Answers the runs left, whose non-finite points were logged
    /// before that row was kept, so that only their rows know those points' timestamps.
    async fn time_extents_from_rollups<'a>(
        &self,
        q: &SeriesQuery,
        ids: &[&'a str],
        extents: &mut HashMap<String, Extent>,
    ) -> Result<Vec<&'a str>> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut sql = self.sql("SELECT l.run_uuid, l.value_count");
            for level in [i64::from(TOP_LEVEL), NON_FINITE_LEVEL] {
                for aggregate in [
                    "CAST(SUM(c.points) AS BIGINT)",
                    "MIN(c.min_timestamp)",
                    "MAX(c.max_timestamp)",
                ] {
                    sql.push(&format!(", (SELECT {aggregate} FROM metric_rollups c "))
                        .push("WHERE c.run_uuid = l.run_uuid AND c.key = l.key AND c.level = ")
                        .arg(level)
                        .push(")");
                }
            }
            sql.push(" FROM latest_metrics l WHERE l.key = ")
                .arg(&q.key)
                .push(" AND l.run_uuid IN ");
            sql.arg_list(chunk);
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                let counted = row.opt_int(2)?.unwrap_or(0) + row.opt_int(5)?.unwrap_or(0);
                if counted != row.int(1)? {
                    return Ok(());
                }
                let run_id = row.text(0)?;
                let first = [row.opt_int(3)?, row.opt_int(6)?]
                    .into_iter()
                    .flatten()
                    .min();
                let last = [row.opt_int(4)?, row.opt_int(7)?]
                    .into_iter()
                    .flatten()
                    .max();
                if let (Some(first), Some(last)) = (first, last) {
                    extents.insert(run_id.clone(), extent_of(q.x, first, last));
                }
                found.insert(run_id);
                Ok(())
            })?;
        }
        Ok(ids
            .iter()
            .copied()
            .filter(|id| !found.contains(*id))
            .collect())
    }

    async fn run_series(
        &self,
        run_id: &str,
        q: &SeriesQuery,
        layout: Layout,
        extent: &Extent,
    ) -> Result<SeriesData> {
        if q.x != XAxis::Step {
            return self.time_series(run_id, q, layout, extent.t0).await;
        }
        let limit = q.buckets as usize;
        if let Some(level) = layout.rollup_level() {
            let mut fold = Fold::of_cells(layout);
            for piece in cover(layout.lo, layout.hi, level) {
                self.fold_piece(run_id, &q.key, piece, &mut fold).await?;
            }
            if fold.total() > limit as u64 {
                return Ok(fold.finish());
            }
        }
        // Few enough points to send them all, or buckets too narrow for rollups: one pass over
        // the rows in range.
        let mut fold = Fold::new(layout, limit);
        let sql = self.rows_in_range(run_id, &q.key, layout);
        let mut rows = sql.stream(&self.bulk_reader, |r| point(r, XAxis::Step, 0));
        while let Some(p) = rows.try_next().await? {
            fold.add_point(p);
        }
        Ok(fold.finish())
    }

    /// A time axis (x = timestamp − `t0`) from the pyramid, for any order of timestamps: from
    /// the top level down, a cell whose points all fall in one bucket is folded whole, one that
    /// straddles a bucket's edge (or whose last by step is not its last in time) is read as its
    /// four children, and at the finest level as its rows. With timestamps that grow with the
    /// step only the cells across the buckets' edges are split, about four per edge and level;
    /// scrambled timestamps split every cell, down to one pass over the rows. When the range
    /// holds at most `buckets` points, the step ranges that held them are read again as points.
    async fn time_series(
        &self,
        run_id: &str,
        q: &SeriesQuery,
        layout: Layout,
        t0: i64,
    ) -> Result<SeriesData> {
        let mut fold = Fold::of_cells(layout);
        // Steps whose points are in range, to read them again as points when they are few.
        let mut charted = Vec::new();
        let mut raw = Vec::new();
        let mut level = TOP_LEVEL;
        let mut cells = self.cells(run_id, &q.key, level, None).await?;
        loop {
            let mut split = Vec::new();
            for (index, cell) in &cells {
                match cell.on_time_axis(&layout, t0) {
                    TimeFold::Outside => {}
                    TimeFold::Whole(cell) => {
                        fold.add_cell(&cell);
                        charted.push(cell_steps(level, *index));
                    }
                    TimeFold::Split if level > MIN_LEVEL => {
                        split.push((index * 4, index * 4 + 3));
                    }
                    TimeFold::Split => raw.push(cell_steps(level, *index)),
                }
            }
            if split.is_empty() {
                break;
            }
            level -= 1;
            cells = self
                .cells(run_id, &q.key, level, Some(&merged(split)))
                .await?;
        }
        let raw = merged(raw);
        self.grouped_rows_of_steps(run_id, q, &raw, layout, t0, &mut fold)
            .await?;
        let limit = q.buckets as usize;
        if fold.total() > limit as u64 {
            return Ok(fold.finish());
        }
        charted.extend(raw);
        let mut fold = Fold::new(layout, limit);
        self.rows_of_steps(run_id, &q.key, &merged(charted), q.x, t0, &mut fold)
            .await?;
        Ok(fold.finish())
    }

    /// The run's stored cells of `level`, all of them or those in the inclusive `ranges`.
    async fn cells(
        &self,
        run_id: &str,
        key: &str,
        level: u32,
        ranges: Option<&[(i64, i64)]>,
    ) -> Result<Vec<(i64, Cell)>> {
        let mut out = Vec::new();
        let all = [(i64::MIN, i64::MAX)];
        for chunk in ranges.unwrap_or(&all).chunks(MAX_ARGS / 2 - 8) {
            let mut sql = self.sql(&format!("SELECT cell, {CELL_COLUMNS} FROM "));
            values_of(&mut sql, chunk);
            sql.push(" JOIN metric_rollups c ON c.cell BETWEEN r.column1 AND r.column2")
                .push(" WHERE c.run_uuid = ")
                .arg(run_id)
                .push(" AND c.key = ")
                .arg(key)
                .push(" AND c.level = ")
                .arg(i64::from(level));
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                out.push((row.int(0)?, cell_from_row(row, 1)?));
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Folds the run's rows (not NaN) whose steps lie in the inclusive `ranges`.
    async fn rows_of_steps(
        &self,
        run_id: &str,
        key: &str,
        ranges: &[(i64, i64)],
        x: XAxis,
        t0: i64,
        fold: &mut Fold,
    ) -> Result<()> {
        for chunk in ranges.chunks(MAX_ARGS / 2 - 8) {
            let mut sql = self.sql("SELECT m.step, m.timestamp, m.value FROM ");
            values_of(&mut sql, chunk);
            sql.push(" JOIN metrics m ON m.step BETWEEN r.column1 AND r.column2")
                .push(" WHERE m.run_uuid = ")
                .arg(run_id)
                .push(" AND m.key = ")
                .arg(key)
                .push(" AND m.is_nan = 0");
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                fold.add_point(point(row, x, t0)?);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Folds the run's charted rows whose steps lie in the inclusive `ranges` into the layout's
    /// buckets on a time axis (x = timestamp − `t0`), grouped by the database: one row per
    /// bucket comes back (count, extremes, timestamps' extent and the last point) instead of
    /// every point. The finest cells of a zoom into buckets narrower than a cell all straddle
    /// an edge, so this is most of such a zoom's reading. Folded here, row by row, when the
    /// range's offsets would not fit the database's 64-bit integers.
    async fn grouped_rows_of_steps(
        &self,
        run_id: &str,
        q: &SeriesQuery,
        ranges: &[(i64, i64)],
        layout: Layout,
        t0: i64,
        fold: &mut Fold,
    ) -> Result<()> {
        let Some(grid) = layout.timestamp_grid(t0) else {
            return self
                .rows_of_steps(run_id, &q.key, ranges, q.x, t0, fold)
                .await;
        };
        for chunk in ranges.chunks(MAX_ARGS / 2 - 16) {
            // The last point of a bucket is its greatest by (timestamp, step, value), as the
            // time axis orders points; the primary key makes that row unique.
            let mut sql = self.sql(
                "SELECT points, min_value, max_value, step, timestamp, value, min_timestamp, \
                 max_timestamp FROM (SELECT step, timestamp, value, \
                 COUNT(*) OVER w AS points, MIN(value) OVER w AS min_value, \
                 MAX(value) OVER w AS max_value, MIN(timestamp) OVER w AS min_timestamp, \
                 MAX(timestamp) OVER w AS max_timestamp, ROW_NUMBER() OVER (PARTITION BY b \
                 ORDER BY timestamp DESC, step DESC, value DESC) AS nth FROM (SELECT (m.timestamp - ",
            );
            sql.arg(grid.origin)
                .push(") / ")
                .arg(grid.width)
                .push(" AS b, m.step, m.timestamp, m.value FROM ");
            values_of(&mut sql, chunk);
            sql.push(" JOIN metrics m ON m.step BETWEEN r.column1 AND r.column2")
                .push(" WHERE m.run_uuid = ")
                .arg(run_id)
                .push(" AND m.key = ")
                .arg(&q.key)
                .push(" AND m.is_nan = 0")
                .push(" AND m.value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308")
                .push(" AND m.timestamp BETWEEN ")
                .arg(grid.lo)
                .push(" AND ")
                .arg(grid.hi)
                .push(") AS p WINDOW w AS (PARTITION BY b)) AS ranked WHERE nth = 1");
            sql.read(&self.bulk_reader).await?.for_each(|row| {
                let (step, timestamp) = (row.int(3)?, row.int(4)?);
                fold.add_cell(&Cell {
                    count: u64::try_from(row.int(0)?).unwrap_or(0),
                    min: row.float(1)?,
                    max: row.float(2)?,
                    last: Point {
                        x: timestamp - t0,
                        step,
                        timestamp,
                        value: row.float(5)?,
                    },
                    min_timestamp: row.int(6)?,
                    max_timestamp: row.int(7)?,
                });
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Adds one piece of a cover: stored cells, or the raw rows at an edge of the range.
    async fn fold_piece(
        &self,
        run_id: &str,
        key: &str,
        piece: Piece,
        fold: &mut Fold,
    ) -> Result<()> {
        match piece {
            Piece::Cells { level, first, last } => {
                let mut sql = self.sql(&format!(
                    "SELECT {CELL_COLUMNS} FROM metric_rollups WHERE run_uuid = "
                ));
                sql.arg(run_id)
                    .push(" AND key = ")
                    .arg(key)
                    .push(" AND level = ")
                    .arg(i64::from(level))
                    .push(" AND cell BETWEEN ")
                    .arg(first)
                    .push(" AND ")
                    .arg(last);
                sql.read(&self.bulk_reader).await?.for_each(|row| {
                    fold.add_cell(&cell_from_row(row, 0)?);
                    Ok(())
                })
            }
            Piece::Raw { from, to } => {
                let mut sql =
                    self.sql("SELECT step, timestamp, value FROM metrics WHERE run_uuid = ");
                sql.arg(run_id)
                    .push(" AND key = ")
                    .arg(key)
                    .push(" AND step BETWEEN ")
                    .arg(from)
                    .push(" AND ")
                    .arg(to)
                    .push(" AND is_nan = 0");
                sql.read(&self.bulk_reader).await?.for_each(|row| {
                    fold.add_point(point(row, XAxis::Step, 0)?);
                    Ok(())
                })
            }
        }
    }

    /// The run's finite-or-infinite (not NaN) rows whose step lies in the layout's range.
    fn rows_in_range(&self, run_id: &str, key: &str, layout: Layout) -> Sql {
        let mut sql = self.sql("SELECT step, timestamp, value FROM metrics WHERE run_uuid = ");
        sql.arg(run_id)
            .push(" AND key = ")
            .arg(key)
            .push(" AND step BETWEEN ")
            .arg(layout.lo)
            .push(" AND ")
            .arg(layout.hi)
            .push(" AND is_nan = 0");
        sql
    }
}

/// A run's extent on `x` from its smallest and greatest step or timestamp.
fn extent_of(x: XAxis, first: i64, last: i64) -> Extent {
    match x {
        XAxis::Step | XAxis::Time => Extent {
            lo: first,
            hi: last,
            t0: 0,
        },
        XAxis::Relative => Extent {
            lo: 0,
            hi: last.saturating_sub(first),
            t0: first,
        },
    }
}

/// Appends `(VALUES (lo, hi), …) AS r`: inclusive ranges to join on, one index range each.
fn values_of(sql: &mut Sql, ranges: &[(i64, i64)]) {
    sql.push("(VALUES ");
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.tuple([lo.into(), hi.into()]);
    }
    sql.push(") AS r");
}

/// `ranges` sorted, with overlapping and adjacent ones joined.
fn merged(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// A row of `step, timestamp, value` placed on `x`.
fn point(row: &dyn RowExt, x: XAxis, t0: i64) -> Result<Point> {
    let step = row.int(0)?;
    let timestamp = row.int(1)?;
    Ok(Point {
        x: match x {
            XAxis::Step => step,
            XAxis::Time => timestamp,
            XAxis::Relative => timestamp.saturating_sub(t0),
        },
        step,
        timestamp,
        value: row.float(2)?,
    })
}

//! Reads metric series (`crate::series`): the runs' extents on the x axis, then per run either
//! the rollup cells and edge rows that cover the range exactly (step axis, buckets of 16 steps
//! or more) or one pass over the rows in range, folded as they arrive.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use twinloop_core::Result;
use twinloop_core::ids::is_run_id;

use super::SqlStore;
use super::query::{RowExt, Sql};
use super::rollups::cell_from_row;
use crate::series::{
    Fold, Layout, Piece, Point, RawPoints, RunSeries, Series, SeriesData, SeriesQuery, SeriesRange,
    XAxis, cover,
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
        for chunk in ids.chunks(IN_CHUNK) {
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
                let extent = match q.x {
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
                };
                extents.insert(row.text(0)?, extent);
                Ok(())
            })?;
        }
        Ok(extents)
    }

    async fn run_series(
        &self,
        run_id: &str,
        q: &SeriesQuery,
        layout: Layout,
        extent: &Extent,
    ) -> Result<SeriesData> {
        let limit = q.buckets as usize;
        if q.x == XAxis::Step
            && let Some(level) = layout.rollup_level()
        {
            let mut fold = Fold::of_cells(layout);
            for piece in cover(layout.lo, layout.hi, level) {
                self.fold_piece(run_id, &q.key, piece, &mut fold).await?;
            }
            if fold.total() > limit as u64 {
                return Ok(fold.finish());
            }
        }
        // Few enough points to send them all, or buckets too narrow for rollups, or a time axis:
        // one pass over the rows in range.
        let mut fold = Fold::new(layout, limit);
        let sql = self.rows_in_range(run_id, q, layout, extent.t0);
        let x = q.x;
        let t0 = extent.t0;
        let mut rows = sql.stream(&self.bulk_reader, move |r| point(r, x, t0));
        while let Some(p) = rows.try_next().await? {
            fold.add_point(p);
        }
        Ok(fold.finish())
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
                let mut sql = self.sql(
                    "SELECT points, min_value, max_value, last_step, last_timestamp, last_value \
                     FROM metric_rollups WHERE run_uuid = ",
                );
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
                    fold.add_cell(&cell_from_row(row)?);
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

    /// The run's finite-or-infinite (not NaN) rows whose x lies in the layout's range.
    fn rows_in_range(&self, run_id: &str, q: &SeriesQuery, layout: Layout, t0: i64) -> Sql {
        let mut sql = self.sql("SELECT step, timestamp, value FROM metrics WHERE run_uuid = ");
        sql.arg(run_id).push(" AND key = ").arg(&q.key);
        let (column, lo, hi) = match q.x {
            XAxis::Step => ("step", layout.lo, layout.hi),
            XAxis::Time => ("timestamp", layout.lo, layout.hi),
            XAxis::Relative => (
                "timestamp",
                layout.lo.saturating_add(t0),
                layout.hi.saturating_add(t0),
            ),
        };
        sql.push(&format!(" AND {column} BETWEEN "))
            .arg(lo)
            .push(" AND ")
            .arg(hi)
            .push(" AND is_nan = 0");
        sql
    }
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

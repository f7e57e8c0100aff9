//! Downsampled metric series for charts: the typed query and answer of
//! [`RunStore::metric_series`](crate::RunStore::metric_series), how a range is cut into buckets
//! ([`Layout`]), how points and stored rollup cells fold into them ([`Fold`]), and which rollup
//! cells and raw rows cover a range exactly ([`cover`]). Pure, so the guarantees — counts add up,
//! every point lies inside its bucket's band, the raw points come back below the bucket count —
//! are tested here without a database.
//!
//! Buckets are aligned, not cut at `(x - lo) * N / (hi - lo + 1)`: from 16 steps wide up, a
//! bucket's width is a multiple of a rollup level's cell width (a power of 4) and its edges fall
//! on that level's cell edges, so a bucket is the exact union of stored cells, with raw rows only
//! where the requested range itself starts or ends inside a cell. That keeps a 1,000,000-point
//! read to a few thousand rows while min, max, count and last stay exact.
//!
//! Only finite values are charted. The store keeps NaN as `value = 0, is_nan = 1` (and ±Infinity
//! as itself); none of these has a place on a y axis, so they are left out of raw points,
//! buckets, counts and rollups alike.

use std::cmp::Ordering;

use twinloop_core::{Error, Result};

use crate::validation::validate_key;

/// The most runs one series request may name.
pub const MAX_SERIES_RUNS: usize = 1000;

/// The most buckets one series request may ask for (a wide canvas at a high pixel ratio).
pub const MAX_SERIES_BUCKETS: u32 = 4000;

/// The finest rollup level kept: cells of 4^2 = 16 steps. Below that a range holds few enough
/// rows to read them.
pub(crate) const MIN_LEVEL: u32 = 2;

/// The coarsest rollup level kept: cells of 4^12 (about 16.8 million) steps. Wider buckets are
/// made of several of its cells.
pub(crate) const TOP_LEVEL: u32 = 12;

/// The width in steps of a cell of `level`.
pub(crate) fn cell_width(level: u32) -> i64 {
    1 << (2 * level)
}

/// The steps of cell `cell` of `level`, inclusive.
pub(crate) fn cell_steps(level: u32, cell: i64) -> (i64, i64) {
    let width = i128::from(cell_width(level));
    let first = i128::from(cell) * width;
    let clamp = |s: i128| s.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (clamp(first), clamp(first + width - 1))
}

/// The x axis of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// The step the point was logged at.
    Step,
    /// The point's timestamp, milliseconds since the epoch.
    Time,
    /// Milliseconds since the run's first point of the key (its smallest timestamp, NaN and
    /// infinite points included).
    Relative,
}

impl XAxis {
    pub fn parse(s: &str) -> Result<XAxis> {
        match s {
            "step" => Ok(XAxis::Step),
            "time" => Ok(XAxis::Time),
            "relative" => Ok(XAxis::Relative),
            other => Err(Error::invalid(format!(
                "Invalid x axis {other:?}: expected step, time or relative"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Time => "time",
            XAxis::Relative => "relative",
        }
    }
}

/// One metric of several runs over an x range, cut into at most `buckets` buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    pub run_ids: Vec<String>,
    pub key: String,
    pub x: XAxis,
    /// Inclusive bounds on x; an absent bound is the runs' smallest (largest) x.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub buckets: u32,
}

impl SeriesQuery {
    pub fn validate(&self) -> Result<()> {
        validate_key("metric", &self.key)?;
        if self.run_ids.is_empty() {
            return Err(Error::invalid("A series needs at least one run id"));
        }
        if self.run_ids.len() > MAX_SERIES_RUNS {
            return Err(Error::invalid(format!(
                "A series request may name at most {MAX_SERIES_RUNS} runs, got {}",
                self.run_ids.len()
            )));
        }
        if self.buckets == 0 || self.buckets > MAX_SERIES_BUCKETS {
            return Err(Error::invalid(format!(
                "Invalid value {} for 'buckets': it must be between 1 and {MAX_SERIES_BUCKETS}",
                self.buckets
            )));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(Error::invalid(format!(
                "Invalid range: 'from' ({from}) is after 'to' ({to})"
            )));
        }
        Ok(())
    }
}

/// The answer: one entry per distinct run id asked for, in the order asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The range answered and its buckets' width; `None` when no bound was given and no run
    /// has a point of the key.
    pub range: Option<SeriesRange>,
    pub runs: Vec<RunSeries>,
}

/// Bucket `i` spans `origin + i * bucket_width` for `bucket_width`, clipped to `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRange {
    pub from: i64,
    pub to: i64,
    pub bucket_width: i64,
    /// Where the first bucket would start unclipped: `from` aligned down to rollup cells.
    pub origin: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunSeries {
    pub run_id: String,
    pub data: SeriesData,
}

/// A run's points in the range: all of them when there are at most `buckets` (an empty run has
/// empty raw columns), otherwise one entry per non-empty bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesData {
    Raw(RawPoints),
    Buckets(Buckets),
}

/// Points in x order (ties by step, timestamp, value), one column per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPoints {
    pub x: Vec<i64>,
    pub value: Vec<f64>,
    pub step: Vec<i64>,
    pub timestamp: Vec<i64>,
}

/// Non-empty buckets in x order. `x_lo..=x_hi` is the bucket's share of the range; `last` is the
/// value of the bucket's point with the greatest x (ties by step, timestamp, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub x_lo: Vec<i64>,
    pub x_hi: Vec<i64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub last: Vec<f64>,
    pub count: Vec<u64>,
}

/// A point placed on the x axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub x: i64,
    pub step: i64,
    pub timestamp: i64,
    pub value: f64,
}

impl Point {
    /// The order of points in a bucket, which decides its `last`.
    fn order(&self, other: &Point) -> Ordering {
        (self.x, self.step, self.timestamp)
            .cmp(&(other.x, other.step, other.timestamp))
            .then(self.value.total_cmp(&other.value))
    }
}

/// The summary of some finite points: what a bucket and a stored rollup cell hold. The
/// timestamps' extent lets a time axis fold a cell whole when it lies inside one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cell {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub last: Point,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

impl Cell {
    pub fn of(p: Point) -> Cell {
        Cell {
            count: 1,
            min: p.value,
            max: p.value,
            last: p,
            min_timestamp: p.timestamp,
            max_timestamp: p.timestamp,
        }
    }

    pub fn merge(&mut self, other: &Cell) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.min_timestamp = self.min_timestamp.min(other.min_timestamp);
        self.max_timestamp = self.max_timestamp.max(other.max_timestamp);
        if other.last.order(&self.last) == Ordering::Greater {
            self.last = other.last;
        }
    }

    /// What a time axis (x = timestamp − `t0`) does with a stored cell, whose `last` is the last
    /// by step. Folded whole only when its timestamps lie in one bucket and its last point by
    /// step also holds the greatest timestamp: then it is the last by (timestamp, step, value)
    /// too, as the bucket's `last` is ordered on this axis. Otherwise its points must be read
    /// from finer cells, or from the rows.
    pub fn on_time_axis(&self, layout: &Layout, t0: i64) -> TimeFold {
        let first = self.min_timestamp.saturating_sub(t0);
        let last = self.max_timestamp.saturating_sub(t0);
        if last < layout.lo || first > layout.hi {
            return TimeFold::Outside;
        }
        if layout.lo <= first
            && last <= layout.hi
            && layout.index(first) == layout.index(last)
            && self.last.timestamp == self.max_timestamp
        {
            return TimeFold::Whole(Cell {
                last: Point {
                    x: last,
                    ..self.last
                },
                ..*self
            });
        }
        TimeFold::Split
    }
}

/// A stored cell's share of a time-axis series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TimeFold {
    /// No point of the cell lies in the range.
    Outside,
    /// The cell, its `last` placed on the axis, goes whole into one bucket.
    Whole(Cell),
    /// The cell straddles a bucket edge or the range's, or its `last` is not the last in time.
    Split,
}

/// How a range `[lo, hi]` is cut: buckets of `width` starting at `origin` (at or below `lo`),
/// the first and last clipped to the range. `granule` is the rollup cell width the buckets are
/// aligned to, 1 when the buckets are too narrow for rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub lo: i64,
    pub hi: i64,
    width: i128,
    origin: i128,
    granule: i128,
}

impl Layout {
    /// The narrowest layout of `[lo, hi]` with at most `buckets` buckets.
    pub fn new(lo: i64, hi: i64, buckets: u32) -> Layout {
        let span = i128::from(hi) - i128::from(lo) + 1;
        let buckets = i128::from(buckets.max(1));
        let mut width = ((span + buckets - 1) / buckets).max(1);
        loop {
            let step = granule_for(width);
            width = (width + step - 1) / step * step;
            // Rounding up may make the width a multiple of a coarser level: fewer rows to read.
            let granule = (MIN_LEVEL..=TOP_LEVEL)
                .rev()
                .map(|level| i128::from(cell_width(level)))
                .find(|&cell| width % cell == 0)
                .unwrap_or(1);
            let origin = i128::from(lo).div_euclid(granule) * granule;
            let layout = Layout {
                lo,
                hi,
                width,
                origin,
                granule,
            };
            // Aligning the origin below `lo` can add a bucket; a wider one removes it.
            if layout.count() as i128 <= buckets {
                return layout;
            }
            width += 1;
        }
    }

    /// The number of buckets, empty ones included.
    pub fn count(&self) -> usize {
        ((i128::from(self.hi) - self.origin).div_euclid(self.width) + 1) as usize
    }

    pub fn width(&self) -> i64 {
        i64::try_from(self.width).unwrap_or(i64::MAX)
    }

    pub fn origin(&self) -> i64 {
        i64::try_from(self.origin).unwrap_or(i64::MIN)
    }

    /// The bucket of `x`, which must lie in `[lo, hi]`.
    fn index(&self, x: i64) -> usize {
        (i128::from(x) - self.origin).div_euclid(self.width) as usize
    }

    /// The bucket's share of the range, inclusive.
    pub fn bounds(&self, index: usize) -> (i64, i64) {
        let start = self.origin + index as i128 * self.width;
        let end = start + self.width - 1;
        (
            start.max(i128::from(self.lo)) as i64,
            end.min(i128::from(self.hi)) as i64,
        )
    }

    pub fn contains(&self, x: i64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The buckets of a time axis (x = timestamp − `t0`) in timestamps, for a database to group
    /// points by `(timestamp - origin) / width`: `None` when a bound or an offset inside the
    /// range does not fit an i64, where that arithmetic would overflow.
    pub fn timestamp_grid(&self, t0: i64) -> Option<TimestampGrid> {
        let shift = |x: i128| i64::try_from(x + i128::from(t0)).ok();
        let grid = TimestampGrid {
            lo: shift(i128::from(self.lo))?,
            hi: shift(i128::from(self.hi))?,
            origin: shift(self.origin)?,
            width: i64::try_from(self.width).ok()?,
        };
        i64::try_from(i128::from(self.hi) - self.origin).ok()?;
        Some(grid)
    }

    /// The coarsest rollup level whose cells each lie inside one bucket, if the buckets are
    /// wide enough for rollups.
    pub fn rollup_level(&self) -> Option<u32> {
        (MIN_LEVEL..=TOP_LEVEL)
            .rev()
            .find(|&level| i128::from(cell_width(level)) == self.granule)
    }
}

/// A layout's range and buckets in timestamps: bucket `(timestamp - origin) / width` for a
/// timestamp in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimestampGrid {
    pub lo: i64,
    pub hi: i64,
    pub origin: i64,
    pub width: i64,
}

/// The cell width a bucket of about `width` is rounded up to a multiple of: at most a quarter of
/// it, so the rounding costs at most a quarter of the buckets asked for, yet at least the finest
/// level's, so any bucket of 16 steps or more is read from rollups; 1 below that.
fn granule_for(width: i128) -> i128 {
    let finest = i128::from(cell_width(MIN_LEVEL));
    if width < finest {
        return 1;
    }
    (MIN_LEVEL..=TOP_LEVEL)
        .rev()
        .map(|level| i128::from(cell_width(level)))
        .find(|&cell| cell <= (width / 4).max(finest))
        .unwrap_or(finest)
}

/// Points and cells folded into a layout's buckets. Keeps the points themselves too, until
/// there are more than `raw_limit` of them.
pub(crate) struct Fold {
    layout: Layout,
    buckets: Vec<Option<Cell>>,
    raw: Option<Vec<Point>>,
    raw_limit: usize,
    total: u64,
}

impl Fold {
    /// A fold that keeps up to `raw_limit` points to answer with raw points.
    pub fn new(layout: Layout, raw_limit: usize) -> Fold {
        Fold {
            layout,
            buckets: vec![None; layout.count()],
            raw: Some(Vec::new()),
            raw_limit,
            total: 0,
        }
    }

    /// A fold of rollup cells, which have no points to keep.
    pub fn of_cells(layout: Layout) -> Fold {
        Fold {
            raw: None,
            ..Fold::new(layout, 0)
        }
    }

    /// Adds a point; one outside the range or without a finite value is not charted.
    pub fn add_point(&mut self, p: Point) {
        if !p.value.is_finite() || !self.layout.contains(p.x) {
            return;
        }
        if let Some(raw) = &mut self.raw {
            if raw.len() < self.raw_limit {
                raw.push(p);
            } else {
                self.raw = None;
            }
        }
        self.add(&Cell::of(p));
    }

    /// Adds a stored cell, which must lie inside the range and inside one bucket.
    pub fn add_cell(&mut self, cell: &Cell) {
        self.raw = None;
        self.add(cell);
    }

    fn add(&mut self, cell: &Cell) {
        self.total += cell.count;
        let slot = &mut self.buckets[self.layout.index(cell.last.x)];
        match slot {
            Some(existing) => existing.merge(cell),
            None => *slot = Some(*cell),
        }
    }

    /// The number of points folded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The raw points when they were all kept, else the buckets.
    pub fn finish(self) -> SeriesData {
        match self.raw {
            Some(points) => SeriesData::Raw(raw_points(points)),
            None => SeriesData::Buckets(self.buckets()),
        }
    }

    fn buckets(self) -> Buckets {
        let mut out = Buckets::default();
        for (index, cell) in self.buckets.into_iter().enumerate() {
            let Some(cell) = cell else { continue };
            let (lo, hi) = self.layout.bounds(index);
            out.x_lo.push(lo);
            out.x_hi.push(hi);
            out.min.push(cell.min);
            out.max.push(cell.max);
            out.last.push(cell.last.value);
            out.count.push(cell.count);
        }
        out
    }
}

/// Columns of `points` in x order.
pub(crate) fn raw_points(mut points: Vec<Point>) -> RawPoints {
    points.sort_by(Point::order);
    let mut raw = RawPoints::default();
    for p in points {
        raw.x.push(p.x);
        raw.value.push(p.value);
        raw.step.push(p.step);
        raw.timestamp.push(p.timestamp);
    }
    raw
}

/// A part of a step range read from the store: whole rollup cells `first..=last` of `level`,
/// or raw rows with steps in `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Cells { level: u32, first: i64, last: i64 },
    Raw { from: i64, to: i64 },
}

/// Disjoint pieces that together cover the steps `lo..=hi` exactly: the whole cells of `level`
/// inside the range, and at either end the whole cells of the next finer level, and so on down
/// to raw rows for fewer than 16 steps.
pub(crate) fn cover(lo: i64, hi: i64, level: u32) -> Vec<Piece> {
    let mut pieces = Vec::new();
    cover_into(i128::from(lo), i128::from(hi), level, &mut pieces);
    pieces
}

fn cover_into(lo: i128, hi: i128, level: u32, pieces: &mut Vec<Piece>) {
    if lo > hi {
        return;
    }
    if level < MIN_LEVEL {
        pieces.push(Piece::Raw {
            from: lo as i64,
            to: hi as i64,
        });
        return;
    }
    let width = i128::from(cell_width(level));
    // Cells `first..end` lie wholly inside the range.
    let first = lo.div_euclid(width) + i128::from(lo.rem_euclid(width) != 0);
    let end = (hi + 1).div_euclid(width);
    if first >= end {
        return cover_into(lo, hi, level - 1, pieces);
    }
    cover_into(lo, first * width - 1, level - 1, pieces);
    pieces.push(Piece::Cells {
        level,
        first: first as i64,
        last: (end - 1) as i64,
    });
    cover_into(end * width, hi, level - 1, pieces);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: i64, value: f64) -> Point {
        Point {
            x: step,
            step,
            timestamp: 1000 + step,
            value,
        }
    }

    /// A deterministic wobble with some repeated values, so ties in `last` happen.
    fn values(n: i64) -> Vec<Point> {
        (0..n)
            .map(|s| point(s, ((s * 7919) % 1013) as f64 / 10.0 - 50.0))
            .collect()
    }

    fn buckets_of(data: SeriesData) -> Buckets {
        match data {
            SeriesData::Buckets(b) => b,
            SeriesData::Raw(r) => panic!("expected buckets, got {} raw points", r.x.len()),
        }
    }

    #[test]
    fn a_layout_never_has_more_buckets_than_asked() {
        for (lo, hi) in [
            (0, 999_999),
            (1, 1_000_000),
            (-17, 40),
            (3, 40),
            (650_000, 660_000),
            (i64::MIN, i64::MAX),
            (7, 7),
        ] {
            for n in [1, 2, 3, 7, 100, 1000, 4000] {
                let layout = Layout::new(lo, hi, n);
                assert!(
                    layout.count() <= n as usize,
                    "[{lo}, {hi}] in {n}: {layout:?}"
                );
                // Rounding widths to whole cells costs at most half the resolution asked for.
                let span = i128::from(hi) - i128::from(lo) + 1;
                if span >= i128::from(n) {
                    assert!(
                        2 * layout.count() >= n as usize,
                        "[{lo}, {hi}] in {n}: {layout:?}"
                    );
                }
                assert_eq!(layout.bounds(0).0, lo);
                assert_eq!(layout.bounds(layout.count() - 1).1, hi);
            }
        }
    }

    #[test]
    fn wide_buckets_are_whole_rollup_cells_and_narrow_ones_start_at_lo() {
        let layout = Layout::new(0, 999_999, 4000);
        assert_eq!(layout.width(), 256);
        assert_eq!(layout.rollup_level(), Some(4));
        assert!(layout.count() <= 4000 && layout.count() > 2000);

        let layout = Layout::new(0, 999_999, 1000);
        assert_eq!(layout.width(), 1024);
        assert_eq!(layout.rollup_level(), Some(5));

        let layout = Layout::new(0, 999_999, 700);
        assert_eq!(layout.width(), 1536);
        assert_eq!(layout.rollup_level(), Some(4));

        let narrow = Layout::new(5, 104, 10);
        assert_eq!((narrow.width(), narrow.rollup_level()), (10, None));
        assert_eq!(narrow.bounds(0), (5, 14));
        assert_eq!(narrow.bounds(9), (95, 104));
    }

    #[test]
    fn bucket_bounds_tile_the_range() {
        let layout = Layout::new(-1000, 123_456, 333);
        let mut next = -1000;
        for i in 0..layout.count() {
            let (lo, hi) = layout.bounds(i);
            assert_eq!(lo, next);
            assert!(hi >= lo);
            for x in [lo, hi] {
                assert_eq!(layout.index(x), i);
            }
            next = hi + 1;
        }
        assert_eq!(next, 123_457);
    }

    #[test]
    fn counts_add_up_and_every_point_lies_in_its_bucket_band() {
        let points = values(100_000);
        let layout = Layout::new(0, 99_999, 700);
        let mut fold = Fold::new(layout, 700);
        points.iter().for_each(|p| fold.add_point(*p));
        let b = buckets_of(fold.finish());
        assert_eq!(b.count.iter().sum::<u64>(), 100_000);
        for p in &points {
            let i = b.x_lo.partition_point(|&lo| lo <= p.x) - 1;
            assert!(b.x_lo[i] <= p.x && p.x <= b.x_hi[i]);
            assert!(b.min[i] <= p.value && p.value <= b.max[i], "{p:?}");
        }
        let global_max = points.iter().map(|p| p.value).fold(f64::MIN, f64::max);
        let global_min = points.iter().map(|p| p.value).fold(f64::MAX, f64::min);
        assert!(b.max.contains(&global_max));
        assert!(b.min.contains(&global_min));
    }

    #[test]
    fn a_single_spike_is_its_buckets_max() {
        let mut points: Vec<Point> = (0..1_000_000).map(|s| point(s, 1.0)).collect();
        points[654_321].value = 1e6;
        let layout = Layout::new(0, 999_999, 1200);
        let mut fold = Fold::new(layout, 1200);
        points.iter().for_each(|p| fold.add_point(*p));
        let b = buckets_of(fold.finish());
        let i = b.x_lo.partition_point(|&lo| lo <= 654_321) - 1;
        assert_eq!(b.max[i], 1e6);
        assert_eq!(b.max.iter().filter(|&&m| m == 1e6).count(), 1);
    }

    #[test]
    fn last_is_the_value_at_the_greatest_x_with_ties_by_step_then_time() {
        let layout = Layout::new(0, 99, 1);
        let mut fold = Fold::new(layout, 0);
        for (step, timestamp, value) in [(99, 5, 1.0), (99, 9, -3.0), (40, 100, 7.0), (99, 9, -4.0)]
        {
            fold.add_point(Point {
                x: step,
                step,
                timestamp,
                value,
            });
        }
        let b = buckets_of(fold.finish());
        assert_eq!(
            (b.last[0], b.min[0], b.max[0], b.count[0]),
            (-3.0, -4.0, 7.0, 4)
        );
    }

    #[test]
    fn up_to_the_bucket_count_the_points_come_back_raw_and_in_x_order() {
        let layout = Layout::new(0, 9, 10);
        let mut fold = Fold::new(layout, 10);
        for s in (0..10).rev() {
            fold.add_point(point(s, s as f64 * 0.5));
        }
        let SeriesData::Raw(raw) = fold.finish() else {
            panic!("expected raw points")
        };
        assert_eq!(raw.x, (0..10).collect::<Vec<_>>());
        assert_eq!(raw.value[3], 1.5);
        assert_eq!(raw.timestamp[3], 1003);

        let mut fold = Fold::new(layout, 10);
        (0..11).for_each(|s| fold.add_point(point(s % 10, 1.0)));
        assert!(matches!(fold.finish(), SeriesData::Buckets(_)));
    }

    #[test]
    fn points_outside_the_range_and_non_finite_values_are_not_charted() {
        let layout = Layout::new(10, 19, 5);
        let mut fold = Fold::new(layout, 5);
        for (s, v) in [
            (9, 1.0),
            (10, f64::NAN),
            (11, f64::INFINITY),
            (12, f64::NEG_INFINITY),
            (13, 2.0),
            (20, 3.0),
        ] {
            fold.add_point(point(s, v));
        }
        assert_eq!(fold.total(), 1);
        let SeriesData::Raw(raw) = fold.finish() else {
            panic!("expected raw points")
        };
        assert_eq!((raw.x, raw.value), (vec![13], vec![2.0]));
    }

    #[test]
    fn an_empty_range_folds_to_empty_raw_columns() {
        let fold = Fold::new(Layout::new(0, 100, 10), 10);
        assert_eq!(fold.finish(), SeriesData::Raw(RawPoints::default()));
    }

    /// Steps covered by `pieces`, each once.
    fn covered(pieces: &[Piece]) -> Vec<i64> {
        let mut steps = Vec::new();
        for piece in pieces {
            match *piece {
                Piece::Raw { from, to } => steps.extend(from..=to),
                Piece::Cells { level, first, last } => {
                    let w = cell_width(level);
                    steps.extend(first * w..(last + 1) * w);
                }
            }
        }
        steps.sort_unstable();
        steps
    }

    #[test]
    fn a_cover_is_exact_and_reads_few_pieces() {
        for (lo, hi, level) in [
            (0, 99_999, 4),
            (3, 40, 4),
            (-1000, 1000, 3),
            (17, 17, 2),
            (650_001, 659_998, 5),
            (16, 31, 2),
        ] {
            let pieces = cover(lo, hi, level);
            assert_eq!(
                covered(&pieces),
                (lo..=hi).collect::<Vec<_>>(),
                "{pieces:?}"
            );
            // At most one piece per level on each side of the widest cells, and one raw run.
            assert!(pieces.len() <= 2 * (level - MIN_LEVEL + 2) as usize + 1);
            for piece in &pieces {
                if let Piece::Raw { from, to } = piece {
                    assert!(to - from < cell_width(MIN_LEVEL));
                }
            }
        }
    }

    #[test]
    fn cells_folded_through_a_cover_give_the_same_buckets_as_points() {
        let points = values(50_000);
        let (lo, hi) = (123, 49_876);
        let layout = Layout::new(lo, hi, 300);
        let level = layout.rollup_level().expect("wide buckets");

        let mut by_points = Fold::new(layout, 300);
        points.iter().for_each(|p| by_points.add_point(*p));

        let mut by_cells = Fold::of_cells(layout);
        for piece in cover(lo, hi, level) {
            match piece {
                Piece::Raw { from, to } => points
                    .iter()
                    .filter(|p| from <= p.step && p.step <= to)
                    .for_each(|p| by_cells.add_point(*p)),
                Piece::Cells { level, first, last } => {
                    for c in first..=last {
                        let w = cell_width(level);
                        let mut cell: Option<Cell> = None;
                        for p in points.iter().filter(|p| p.step.div_euclid(w) == c) {
                            match &mut cell {
                                Some(cell) => cell.merge(&Cell::of(*p)),
                                None => cell = Some(Cell::of(*p)),
                            }
                        }
                        if let Some(cell) = cell {
                            by_cells.add_cell(&cell);
                        }
                    }
                }
            }
        }
        assert_eq!(by_cells.finish(), by_points.finish());
    }

    #[test]
    fn a_time_axis_folds_a_cell_whole_only_inside_one_bucket_with_its_last_last_in_time() {
        // Buckets of 16 ms from t0 = 1,000 on the relative axis: 0..=15, 16..=31, …
        let layout = Layout::new(0, 63, 4);
        let cell = |stamps: &[i64]| {
            let mut cell: Option<Cell> = None;
            for (step, &timestamp) in stamps.iter().enumerate() {
                let p = Cell::of(Point {
                    x: step as i64,
                    step: step as i64,
                    timestamp,
                    value: step as f64,
                });
                match &mut cell {
                    Some(c) => c.merge(&p),
                    None => cell = Some(p),
                }
            }
            cell.unwrap()
        };
        let TimeFold::Whole(whole) = cell(&[1_016, 1_020, 1_031]).on_time_axis(&layout, 1_000)
        else {
            panic!("inside one bucket")
        };
        assert_eq!((whole.last.x, whole.last.value, whole.count), (31, 2.0, 3));
        for (stamps, expected) in [
            (&[1_010, 1_020][..], TimeFold::Split),
            (&[1_020, 1_030, 1_025][..], TimeFold::Split),
            (&[900, 950][..], TimeFold::Outside),
            (&[1_064, 1_070][..], TimeFold::Outside),
            (&[990, 1_005][..], TimeFold::Split),
        ] {
            assert_eq!(
                cell(stamps).on_time_axis(&layout, 1_000),
                expected,
                "{stamps:?}"
            );
        }
    }

    #[test]
    fn queries_are_checked() {
        let ok = SeriesQuery {
            run_ids: vec!["a".into()],
            key: "loss".into(),
            x: XAxis::Step,
            from: Some(1),
            to: Some(1),
            buckets: 4000,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            SeriesQuery {
                run_ids: vec![],
                ..ok.clone()
            },
            SeriesQuery {
                run_ids: vec!["a".into(); 1001],
                ..ok.clone()
            },
            SeriesQuery {
                buckets: 4001,
                ..ok.clone()
            },
            SeriesQuery {
                buckets: 0,
                ..ok.clone()
            },
            SeriesQuery {
                from: Some(2),
                ..ok.clone()
            },
            SeriesQuery {
                key: "../x".into(),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(XAxis::parse("relative").unwrap(), XAxis::Relative);
        assert!(XAxis::parse("epoch").is_err());
    }
}

//! Comparing runs (`/experiments/{e}/compare?runs=a,b,c`): the params that differ (equal ones
//! can be hidden), each metric's last, min and max side by side, overlaid charts, a scatter of
//! two chosen columns, a box plot of one column per group of a param, and parallel coordinates
//! over the differing columns. The scatter, box plot and parallel coordinates are SVG drawn
//! here, so they need no script; categorical values get one position each on their axis,
//! labelled in full.
//!
//! Brushing: `brush=COLUMN:LO:HI` (repeated) keeps the runs whose position on that axis (0 at
//! the bottom, 1 at the top) lies in [LO, HI]; the others are dimmed in the plots and hidden in
//! the runs table. The page renders a brushed URL as such, and `compare.js` (with the same
//! rule in `ui-lib.js`) brushes by dragging along an axis and writes the brushes into the URL.

use std::collections::{BTreeMap, BTreeSet};

use maud::{Markup, html};
use twinloop_core::run_columns::{MetricSummary, RunSummaries};
use twinloop_core::tracking::{Experiment, Run};

use crate::charts::{self, ChartConfig, Line, XAxis};
use crate::diff::{self, ArtifactDiff};
use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::runs::{run_label, status};

/// Runs one comparison may hold; more are dropped. The series endpoint takes as many per call.
pub const MAX_RUNS: usize = 1000;
/// Overlaid chart cards shown.
const CHARTS_SHOWN: usize = 30;
/// Axes of the parallel coordinates by default (the differing params, then the metrics).
const MAX_AXES: usize = 12;
/// Axes a user may pick (`axis=…`, or `axis=*` for every column).
const MAX_PICKED_AXES: usize = 40;

/// Groups a box plot draws; the rest are left out, and the page says so.
const MAX_BOXES: usize = 24;
/// Decimals of a position written into the page or a brush's URL: finer than a pixel.
const POS_DECIMALS: usize = 4;

/// One axis's brush: runs whose position on `column`'s axis is in `[lo, hi]` are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Brush {
    pub column: String,
    pub lo: f64,
    pub hi: f64,
}

/// Slack on a brush's bounds, so a value drawn on its edge is inside (as `ui-lib.js`'s).
const EDGE: f64 = 5e-4;

impl Brush {
    /// `COLUMN:LO:HI`; the column may hold colons, the bounds never do. Bounds are ordered and
    /// clamped to [0, 1].
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, ':');
        let hi: f64 = parts.next()?.parse().ok()?;
        let lo: f64 = parts.next()?.parse().ok()?;
        let column = parts.next().filter(|c| !c.is_empty())?;
        if !lo.is_finite() || !hi.is_finite() {
            return None;
        }
        Some(Brush {
            column: column.to_string(),
            lo: lo.min(hi).clamp(0.0, 1.0),
            hi: lo.max(hi).clamp(0.0, 1.0),
        })
    }

    fn encode(&self) -> String {
        format!("{}:{:.3}:{:.3}", self.column, self.lo, self.hi)
    }

    fn keeps(&self, pos: Option<f64>) -> bool {
        pos.is_some_and(|p| p >= self.lo - EDGE && p <= self.hi + EDGE)
    }
}

/// What the compare page shows, from its URL:
/// `?runs=a,b,c&equal=hide&sx=params.lr&sy=metrics.loss&box=metrics.loss&by=params.opt`,
/// `brush=…` and the chart settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompareQuery {
    /// `runs=a,b` or repeated `run=a&run=b` (what the runs table's checkboxes submit).
    pub run_ids: Vec<String>,
    pub hide_equal: bool,
    pub scatter_x: Option<String>,
    pub scatter_y: Option<String>,
    /// The box plot's column, and the param whose values group it.
    pub box_column: Option<String>,
    pub box_by: Option<String>,
    /// The parallel coordinates' axes (`axis=` repeated, `*` for all); empty for the default.
    pub axes: Vec<String>,
    /// At most one per column.
    pub brushes: Vec<Brush>,
    pub chart: ChartConfig,
    /// An artifact path diffed between two of the runs (`diff=`, `da=`, `db=`; the first two
    /// runs by default).
    pub diff_path: Option<String>,
    pub diff_a: Option<String>,
    pub diff_b: Option<String>,
}

impl CompareQuery {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut run_ids: Vec<String> = Vec::new();
        for (name, value) in pairs {
            if name == "runs" || name == "run" {
                for id in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                    if !run_ids.iter().any(|r| r == id) && run_ids.len() < MAX_RUNS {
                        run_ids.push(id.to_string());
                    }
                }
            }
        }
        let mut brushes: Vec<Brush> = Vec::new();
        for b in pairs
            .iter()
            .filter(|(n, _)| n == "brush")
            .filter_map(|(_, v)| Brush::parse(v))
        {
            brushes.retain(|o| o.column != b.column);
            brushes.push(b);
        }
        CompareQuery {
            run_ids,
            hide_equal: get("equal") == Some("hide"),
            scatter_x: get("sx").map(String::from),
            scatter_y: get("sy").map(String::from),
            box_column: get("box").map(String::from),
            box_by: get("by").map(String::from),
            axes: pairs
                .iter()
                .filter(|(n, v)| n == "axis" && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
            brushes,
            chart: ChartConfig::from_pairs(pairs),
            diff_path: get("diff")
                .map(|p| p.trim().trim_matches('/').to_string())
                .filter(|p| !p.is_empty()),
            diff_a: get("da").map(String::from),
            diff_b: get("db").map(String::from),
        }
    }

    /// This view's link, with equal params hidden or not and with or without its brushes.
    fn href(&self, experiment_id: &str, hide_equal: bool, brushed: bool) -> String {
        let mut h = Href::new(compare_href(experiment_id))
            .q("runs", &self.run_ids.join(","))
            .q("equal", if hide_equal { "hide" } else { "" })
            .q("sx", self.scatter_x.as_deref().unwrap_or(""))
            .q("sy", self.scatter_y.as_deref().unwrap_or(""))
            .q("box", self.box_column.as_deref().unwrap_or(""))
            .q("by", self.box_by.as_deref().unwrap_or(""))
            .q("diff", self.diff_path.as_deref().unwrap_or(""))
            .q("da", self.diff_a.as_deref().unwrap_or(""))
            .q("db", self.diff_b.as_deref().unwrap_or(""));
        for a in &self.axes {
            h = h.q("axis", a);
        }
        if brushed {
            for b in &self.brushes {
                h = h.q("brush", &b.encode());
            }
        }
        self.chart.add_to(h).build()
    }

    /// The two runs the artifact diff compares: those named, else the first two.
    pub fn diff_runs(&self) -> Option<(&str, &str)> {
        let known = |id: &&str| self.run_ids.iter().any(|x| x == id);
        let a =
            (self.diff_a.as_deref().filter(known)).or(self.run_ids.first().map(String::as_str))?;
        let b = (self.diff_b.as_deref().filter(known))
            .or_else(|| self.run_ids.iter().map(String::as_str).find(|r| *r != a))?;
        Some((a, b))
    }
}

pub(crate) fn compare_href(experiment_id: &str) -> String {
    format!("{}/compare", href::experiment(experiment_id))
}

pub struct CompareView<'a> {
    pub experiment: &'a Experiment,
    pub query: &'a CompareQuery,
    /// The runs, in the order the URL names them.
    pub runs: &'a [Run],
    pub summaries: &'a [RunSummaries],
    /// The artifact diff `query.diff_path` asks for, when it names a path and two runs.
    pub diff: Option<&'a ArtifactDiff>,
}

/// A cell of a column: a number, or text (a param that is not one), or nothing.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Num(f64),
    Text(String),
}

/// `params.KEY` or `metrics.KEY` (the metric's last value).
fn column_value(run: &Run, summaries: Option<&RunSummaries>, column: &str) -> Option<Value> {
    if let Some(key) = column.strip_prefix("params.") {
        let v = &run.data.params.iter().find(|p| p.key == key)?.value;
        Some(match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Num(n),
            _ => Value::Text(v.clone()),
        })
    } else if let Some(key) = column.strip_prefix("metrics.") {
        let m = summaries?.metrics.iter().find(|m| m.key == key)?;
        m.last.is_finite().then_some(Value::Num(m.last))
    } else {
        None
    }
}

/// Maps a column's values onto 0..=1: linearly when all are numbers, else one evenly spaced
/// position per distinct value (sorted), so values sharing a long prefix stay apart.
struct Axis {
    numeric: Option<(f64, f64)>,
    categories: Vec<String>,
}

impl Axis {
    fn of<'v>(values: impl Iterator<Item = &'v Value> + Clone) -> Self {
        let all_numeric = values.clone().all(|v| matches!(v, Value::Num(_)));
        if all_numeric {
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                let Value::Num(n) = v else { return (lo, hi) };
                (lo.min(*n), hi.max(*n))
            });
            Axis {
                numeric: Some((lo, hi)),
                categories: Vec::new(),
            }
        } else {
            let set: BTreeSet<String> = values.map(label).collect();
            Axis {
                numeric: None,
                categories: set.into_iter().collect(),
            }
        }
    }

    fn pos(&self, v: &Value) -> f64 {
        match (self.numeric, v) {
            (Some((lo, hi)), Value::Num(n)) if hi > lo => (n - lo) / (hi - lo),
            (Some(_), _) => 0.5,
            (None, v) => {
                let l = label(v);
                let i = self.categories.iter().position(|c| *c == l).unwrap_or(0);
                if self.categories.len() < 2 {
                    0.5
                } else {
                    i as f64 / (self.categories.len() - 1) as f64
                }
            }
        }
    }

    /// Tick labels with their positions.
    fn ticks(&self) -> Vec<(f64, String)> {
        match self.numeric {
            Some((lo, hi)) if hi > lo => (0..=4)
                .map(|i| {
                    let f = f64::from(i) / 4.0;
                    (f, format::value(lo + f * (hi - lo)))
                })
                .collect(),
            Some((lo, _)) if lo.is_finite() => vec![(0.5, format::value(lo))],
            Some(_) => Vec::new(),
            None => self
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let f = if self.categories.len() < 2 {
                        0.5
                    } else {
                        i as f64 / (self.categories.len() - 1) as f64
                    };
                    (f, c.clone())
                })
                .collect(),
        }
    }
}

fn label(v: &Value) -> String {
    match v {
        Value::Num(n) => format::value(*n),
        Value::Text(t) => t.clone(),
    }
}

/// A run's mark in a plot: its colour, dimmed when a brush leaves it out.
fn series_class(kind: &str, i: usize, kept: bool) -> String {
    format!("{kind} c{}{}", i % 10, if kept { "" } else { " dim" })
}

/// SVG numbers with two decimals: enough for a pixel, short in the page.
fn px(v: f64) -> String {
    format!("{v:.2}")
}

const SCATTER_W: f64 = 560.0;
const SCATTER_H: f64 = 380.0;
const MARGIN: f64 = 56.0;

/// Summaries by run id.
type ByRun<'a> = BTreeMap<&'a str, &'a RunSummaries>;

fn summary_of<'a>(by_run: &ByRun<'a>, run: &Run) -> Option<&'a RunSummaries> {
    by_run.get(run.info.run_id.as_str()).copied()
}

fn scatter(runs: &[Run], by_run: &ByRun, x: &str, y: &str, kept: &[bool]) -> Markup {
    let points: Vec<(usize, &Run, Value, Value)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some((
                i,
                r,
                column_value(r, summary_of(by_run, r), x)?,
                column_value(r, summary_of(by_run, r), y)?,
            ))
        })
        .collect();
    if points.is_empty() {
        return html! { p.muted #scatter { "No run has both " span.mono { (x) } " and " span.mono { (y) } "." } };
    }
    let ax = Axis::of(points.iter().map(|p| &p.2));
    let ay = Axis::of(points.iter().map(|p| &p.3));
    let (w, h) = (SCATTER_W - 2.0 * MARGIN, SCATTER_H - 2.0 * MARGIN);
    let sx = |f: f64| MARGIN + f * w;
    let sy = |f: f64| SCATTER_H - MARGIN - f * h;
    html! {
        svg #scatter.plot-svg role="img" aria-label={ (y) " against " (x) }
            viewBox={ "0 0 " (SCATTER_W) " " (SCATTER_H) } width=(SCATTER_W) height=(SCATTER_H) {
            rect.frame x=(MARGIN) y=(MARGIN) width=(w) height=(h) {}
            @for (f, t) in ax.ticks() {
                text.tick x=(px(sx(f))) y=(px(SCATTER_H - MARGIN + 16.0)) text-anchor="middle" { (t) }
            }
            @for (f, t) in ay.ticks() {
                text.tick x=(px(MARGIN - 6.0)) y=(px(sy(f) + 4.0)) text-anchor="end" { (t) }
            }
            text.axis-label x=(px(MARGIN + w / 2.0)) y=(px(SCATTER_H - 12.0)) text-anchor="middle" { (x) }
            text.axis-label x="12" y=(px(MARGIN - 14.0)) { (y) }
            @for (i, run, vx, vy) in &points {
                circle class=(series_class("dot", *i, kept[*i])) cx=(px(sx(ax.pos(vx)))) cy=(px(sy(ay.pos(vy)))) r="5" data-run=(run.info.run_id) {
                    title { (run_label(run)) ": " (label(vx)) ", " (label(vy)) }
                }
            }
        }
    }
}

const PAR_W: f64 = 1000.0;
const PAR_H: f64 = 340.0;
const PAR_TOP: f64 = 40.0;
const PAR_BOTTOM: f64 = PAR_H - 30.0;
/// Category labels an axis writes at most; past that, every k-th (each line's tooltip names its
/// run, and the table its values).
const MAX_CATEGORY_LABELS: usize = 24;

/// Each run's position on each column's axis, `None` where it has no value.
struct Parallel {
    axes: Vec<Axis>,
    positions: Vec<Vec<Option<f64>>>,
}

impl Parallel {
    fn of(runs: &[Run], by_run: &ByRun, columns: &[String]) -> Self {
        let values: Vec<Vec<Option<Value>>> = runs
            .iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|c| column_value(r, summary_of(by_run, r), c))
                    .collect()
            })
            .collect();
        let axes: Vec<Axis> = (0..columns.len())
            .map(|j| Axis::of(values.iter().filter_map(|row| row[j].as_ref())))
            .collect();
        let positions = values
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&axes)
                    .map(|(v, axis)| v.as_ref().map(|v| axis.pos(v)))
                    .collect()
            })
            .collect();
        Parallel { axes, positions }
    }

    /// Whether run `i` passes every brush on these columns (brushes on other columns are
    /// ignored: the axis they named is not shown).
    fn kept(&self, i: usize, columns: &[String], brushes: &[Brush]) -> bool {
        brushes
            .iter()
            .all(|b| match columns.iter().position(|c| *c == b.column) {
                Some(j) => b.keeps(self.positions[i][j]),
                None => true,
            })
    }
}

fn pos_text(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.POS_DECIMALS$}")).unwrap_or_default()
}

fn parallel(
    runs: &[Run],
    par: &Parallel,
    columns: &[String],
    brushes: &[Brush],
    kept: &[bool],
) -> Markup {
    let step = if columns.len() > 1 {
        (PAR_W - 2.0 * 90.0) / (columns.len() - 1) as f64
    } else {
        0.0
    };
    let ax_x = |j: usize| 90.0 + step * j as f64;
    let y = |f: f64| PAR_BOTTOM - f * (PAR_BOTTOM - PAR_TOP);
    let last = columns.len().saturating_sub(1);
    html! {
        svg #parallel.plot-svg role="img" aria-label="Parallel coordinates"
            viewBox={ "0 0 " (PAR_W) " " (PAR_H) } width=(PAR_W) height=(PAR_H)
            data-top=(PAR_TOP) data-bottom=(PAR_BOTTOM) {
            @for (i, row) in par.positions.iter().enumerate() {
                @let pts: Vec<String> = row.iter().enumerate()
                    .filter_map(|(j, p)| p.map(|p| format!("{},{}", px(ax_x(j)), px(y(p)))))
                    .collect();
                @let pos: Vec<String> = row.iter().map(|p| pos_text(*p)).collect();
                polyline class=(series_class("line", i, kept[i]))
                    points=(pts.join(" ")) data-run=(runs[i].info.run_id) data-pos=(pos.join(",")) {
                    title { (run_label(&runs[i])) }
                }
            }
            @for (j, (column, axis)) in columns.iter().zip(&par.axes).enumerate() {
                @let brush = brushes.iter().find(|b| b.column == *column);
                g.pc-axis data-col=(column) {
                    line.axis x1=(px(ax_x(j))) x2=(px(ax_x(j))) y1=(px(PAR_TOP)) y2=(px(PAR_BOTTOM)) {}
                    text.axis-label x=(px(ax_x(j))) y="20" text-anchor="middle" { (column) }
                    @let ticks = axis.ticks();
                    @let every = ticks.len().div_ceil(MAX_CATEGORY_LABELS).max(1);
                    @for (f, t) in ticks.iter().step_by(every) {
                        @if j == last && j > 0 {
                            text.tick x=(px(ax_x(j) - 5.0)) y=(px(y(*f) + 4.0)) text-anchor="end" { (t) }
                        } @else {
                            text.tick x=(px(ax_x(j) + 5.0)) y=(px(y(*f) + 4.0)) { (t) }
                        }
                    }
                    @match brush {
                        Some(b) => {
                            rect.brush x=(px(ax_x(j) - 7.0)) width="14" y=(px(y(b.hi))) height=(px(y(b.lo) - y(b.hi))) {}
                        }
                        None => {
                            rect.brush.off x=(px(ax_x(j) - 7.0)) width="14" y=(px(PAR_TOP)) height="0" {}
                        }
                    }
                    rect.brush-area x=(px(ax_x(j) - 12.0)) width="24" y=(px(PAR_TOP - 4.0)) height=(px(PAR_BOTTOM - PAR_TOP + 8.0)) {
                        title { "Drag along " (column) " to brush; click to clear" }
                    }
                }
            }
        }
    }
}

/// A box's five numbers (whiskers at the furthest values within 1.5 IQR of the box) and the
/// values beyond them.
#[derive(Debug, Clone, PartialEq)]
struct BoxStats {
    n: usize,
    q1: f64,
    median: f64,
    q3: f64,
    low: f64,
    high: f64,
    outliers: Vec<(f64, usize)>,
}

/// The `q` quantile of sorted values, linearly interpolated (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// Stats of (value, run index) pairs; `None` for no values.
fn box_stats(mut values: Vec<(f64, usize)>) -> Option<BoxStats> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let sorted: Vec<f64> = values.iter().map(|v| v.0).collect();
    let (q1, median, q3) = (
        quantile(&sorted, 0.25),
        quantile(&sorted, 0.5),
        quantile(&sorted, 0.75),
    );
    let reach = 1.5 * (q3 - q1);
    let inside = |v: f64| v >= q1 - reach && v <= q3 + reach;
    let low = sorted.iter().copied().find(|v| inside(*v)).unwrap_or(q1);
    let high = sorted
        .iter()
        .rev()
        .copied()
        .find(|v| inside(*v))
        .unwrap_or(q3);
    Some(BoxStats {
        n: sorted.len(),
        q1,
        median,
        q3,
        low,
        high,
        outliers: values.into_iter().filter(|(v, _)| !inside(*v)).collect(),
    })
}

const BOX_H: f64 = 320.0;
const BOX_SLOT: f64 = 72.0;

/// A box per group of runs (by the values of `by`, or one for all runs) of `column`'s values.
fn box_plot(runs: &[Run], by_run: &ByRun, column: &str, by: Option<&str>) -> Markup {
    let mut groups: BTreeMap<String, Vec<(f64, usize)>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        let Some(Value::Num(v)) = column_value(r, summary_of(by_run, r), column) else {
            continue;
        };
        let group = match by {
            Some(by) => column_value(r, summary_of(by_run, r), by)
                .map_or_else(|| "(none)".to_string(), |g| label(&g)),
            None => "all runs".to_string(),
        };
        groups.entry(group).or_default().push((v, i));
    }
    let total = groups.len();
    let stats: Vec<(String, BoxStats)> = groups
        .into_iter()
        .take(MAX_BOXES)
        .filter_map(|(g, values)| Some((g, box_stats(values)?)))
        .collect();
    if stats.is_empty() {
        return html! { p.muted #box-plot { "No run has a number for " span.mono { (column) } "." } };
    }
    let (lo, hi) = stats
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, s)| {
            let extremes = s.outliers.iter().map(|o| o.0).chain([s.low, s.high]);
            extremes.fold((lo, hi), |(lo, hi), v| (lo.min(v), hi.max(v)))
        });
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    let (lo, hi) = (lo - pad, hi + pad);
    let width = (MARGIN * 2.0 + BOX_SLOT * stats.len() as f64).max(360.0);
    let (top, bottom) = (MARGIN * 0.6, BOX_H - MARGIN);
    let y = |v: f64| bottom - (v - lo) / (hi - lo) * (bottom - top);
    let cx = |k: usize| MARGIN + BOX_SLOT * (k as f64 + 0.5);
    let half = BOX_SLOT * 0.3;
    html! {
        @if total > MAX_BOXES {
            p.muted { "The first " (MAX_BOXES) " of " (total) " groups." }
        }
        svg #box-plot.plot-svg role="img"
            aria-label={ (column) @if let Some(by) = by { " by " (by) } }
            viewBox={ "0 0 " (px(width)) " " (BOX_H) } width=(px(width)) height=(BOX_H) {
            rect.frame x=(MARGIN) y=(px(top)) width=(px(width - 2.0 * MARGIN)) height=(px(bottom - top)) {}
            @for f in [0.0, 0.25, 0.5, 0.75, 1.0] {
                @let v = lo + f * (hi - lo);
                text.tick x=(px(MARGIN - 6.0)) y=(px(y(v) + 4.0)) text-anchor="end" { (format::value(v)) }
            }
            text.axis-label x="8" y="14" { (column) }
            @for (k, (group, s)) in stats.iter().enumerate() {
                g.box data-group=(group) {
                    title { (group) ": n=" (s.n) ", median " (format::value(s.median)) ", quartiles " (format::value(s.q1)) " … " (format::value(s.q3)) }
                    line.whisker x1=(px(cx(k))) x2=(px(cx(k))) y1=(px(y(s.high))) y2=(px(y(s.q3))) {}
                    line.whisker x1=(px(cx(k))) x2=(px(cx(k))) y1=(px(y(s.q1))) y2=(px(y(s.low))) {}
                    line.whisker x1=(px(cx(k) - half / 2.0)) x2=(px(cx(k) + half / 2.0)) y1=(px(y(s.high))) y2=(px(y(s.high))) {}
                    line.whisker x1=(px(cx(k) - half / 2.0)) x2=(px(cx(k) + half / 2.0)) y1=(px(y(s.low))) y2=(px(y(s.low))) {}
                    rect class={ "quartiles c" (k % 10) } x=(px(cx(k) - half)) width=(px(2.0 * half))
                        y=(px(y(s.q3))) height=(px((y(s.q1) - y(s.q3)).max(1.0))) {}
                    line.median x1=(px(cx(k) - half)) x2=(px(cx(k) + half)) y1=(px(y(s.median))) y2=(px(y(s.median))) {}
                    @for (v, i) in &s.outliers {
                        circle.outlier cx=(px(cx(k))) cy=(px(y(*v))) r="3" data-run=(runs[*i].info.run_id) {
                            title { (run_label(&runs[*i])) ": " (format::value(*v)) }
                        }
                    }
                    text.tick x=(px(cx(k))) y=(px(bottom + 16.0)) text-anchor="middle" { (group) }
                    text.tick x=(px(cx(k))) y=(px(bottom + 30.0)) text-anchor="middle" { "n=" (s.n) }
                }
            }
        }
    }
}

pub fn compare_page(v: &CompareView) -> Markup {
    let e = v.experiment;
    let q = v.query;
    let by_run: ByRun = v.summaries.iter().map(|s| (s.run_id.as_str(), s)).collect();
    let metric = |r: &Run, key: &str| -> Option<&MetricSummary> {
        summary_of(&by_run, r).and_then(|s| s.metrics.iter().find(|m| m.key == key))
    };
    let param_keys: BTreeSet<&str> = v
        .runs
        .iter()
        .flat_map(|r| r.data.params.iter().map(|p| p.key.as_str()))
        .collect();
    let param = |r: &Run, key: &str| -> Option<String> {
        r.data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
    };
    let differs = |key: &str| {
        let first = v.runs.first().map(|r| param(r, key));
        v.runs.iter().any(|r| Some(param(r, key)) != first)
    };
    let metric_keys: BTreeSet<&str> = v
        .summaries
        .iter()
        .flat_map(|s| s.metrics.iter().map(|m| m.key.as_str()))
        .collect();
    let differing_params: Vec<&str> = param_keys.iter().copied().filter(|k| differs(k)).collect();
    let shown_params: Vec<&str> = if q.hide_equal {
        differing_params.clone()
    } else {
        param_keys.iter().copied().collect()
    };
    let all_columns: Vec<String> = param_keys
        .iter()
        .map(|k| format!("params.{k}"))
        .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
        .collect();
    let mut columns: Vec<String> = if q.axes.iter().any(|a| a == "*") {
        all_columns.clone()
    } else if !q.axes.is_empty() {
        all_columns
            .iter()
            .filter(|c| q.axes.contains(c))
            .cloned()
            .collect()
    } else {
        let mut default: Vec<String> = differing_params
            .iter()
            .map(|k| format!("params.{k}"))
            .chain(metric_keys.iter().map(|k| format!("metrics.{k}")))
            .collect();
        default.truncate(MAX_AXES);
        default
    };
    columns.truncate(MAX_PICKED_AXES);
    let default_x = columns.first().cloned().unwrap_or_default();
    let default_y = columns
        .iter()
        .find(|c| c.starts_with("metrics."))
        .or(columns.get(1))
        .cloned()
        .unwrap_or_default();
    let sx = q.scatter_x.clone().unwrap_or(default_x);
    let sy = q.scatter_y.clone().unwrap_or(default_y);
    let lines: Vec<Line> = v
        .runs
        .iter()
        .map(|r| Line {
            run_id: &r.info.run_id,
            label: run_label(r),
        })
        .collect();
    let chart_keys: Vec<&str> = metric_keys.iter().copied().take(CHARTS_SHOWN).collect();
    let here = compare_href(&e.experiment_id);
    let runs_csv = q.run_ids.join(",");
    let par = Parallel::of(v.runs, &by_run, &columns);
    let kept: Vec<bool> = (0..v.runs.len())
        .map(|i| columns.len() < 2 || par.kept(i, &columns, &q.brushes))
        .collect();
    let kept_count = kept.iter().filter(|k| **k).count();
    let brushed = columns.len() > 1 && q.brushes.iter().any(|b| columns.contains(&b.column));
    let numeric_columns: Vec<&String> = all_columns
        .iter()
        .filter(|c| {
            v.runs.iter().any(|r| {
                matches!(
                    column_value(r, summary_of(&by_run, r), c),
                    Some(Value::Num(_))
                )
            })
        })
        .collect();
    let box_column = q
        .box_column
        .clone()
        .or_else(|| {
            numeric_columns
                .iter()
                .find(|c| c.starts_with("metrics."))
                .or(numeric_columns.first())
                .map(|c| (*c).clone())
        })
        .unwrap_or_default();
    let box_by = q.box_by.as_deref().filter(|b| b.starts_with("params."));
    // The other settings of this view, carried by each GET form that changes one of them.
    let keep_except = |names: &[&str]| -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = vec![("runs", runs_csv.clone())];
        if q.hide_equal {
            out.push(("equal", "hide".into()));
        }
        let chart = [
            (
                "x",
                (q.chart.x != XAxis::Step).then(|| q.chart.x.as_str().to_string()),
            ),
            ("log", q.chart.log.then(|| "1".to_string())),
            (
                "smooth",
                (q.chart.smooth > 0.0).then(|| q.chart.smooth.to_string()),
            ),
        ];
        let chosen = [
            ("sx", q.scatter_x.clone()),
            ("sy", q.scatter_y.clone()),
            ("box", q.box_column.clone()),
            ("by", q.box_by.clone()),
            ("diff", q.diff_path.clone()),
            ("da", q.diff_a.clone()),
            ("db", q.diff_b.clone()),
        ];
        for (name, value) in chosen.into_iter().chain(chart) {
            if let Some(value) = value.filter(|_| !names.contains(&name)) {
                out.push((name, value));
            }
        }
        if !names.contains(&"axis") {
            out.extend(q.axes.iter().map(|a| ("axis", a.clone())));
        }
        out.extend(q.brushes.iter().map(|b| ("brush", b.encode())));
        out
    };
    let keep_for_chart = keep_except(&["x", "log", "smooth"]);
    let keep_for_chart: Vec<(&str, &str)> = keep_for_chart
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    page(
        &format!("Compare {} runs", v.runs.len()),
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::link(e.name.clone(), href::experiment(&e.experiment_id)),
            Crumb::here("Compare"),
        ],
        html! {
            h1 { "Compare " (v.runs.len()) " runs" }
            @if v.runs.is_empty() {
                p.muted { "No runs selected: tick runs in " a href=(href::experiment(&e.experiment_id)) { "the runs table" } " and press Compare." }
            }
            @if !v.runs.is_empty() {
                table #compare-runs {
                    thead { tr { th { "Run" } th { "Status" } th { "Started" } th { "Duration" } } }
                    tbody {
                        @for (i, r) in v.runs.iter().enumerate() {
                            tr data-run-id=(r.info.run_id) hidden[!kept[i]] {
                                td.name { span class={ "swatch c" (i % 10) } {} a href=(href::run(&e.experiment_id, &r.info.run_id)) { (run_label(r)) } }
                                td { (status(r)) }
                                td { (format::opt_time(r.info.start_time)) }
                                td.num { (format::duration(r.info.start_time, r.info.end_time)) }
                            }
                        }
                    }
                }

                h2 { "Parameters" }
                p {
                    (differing_params.len()) " of " (param_keys.len()) " differ. "
                    @if q.hide_equal {
                        a #show-equal href=(q.href(&e.experiment_id, false, true)) { "Show equal parameters" }
                    } @else {
                        a #hide-equal href=(q.href(&e.experiment_id, true, true)) { "Hide equal parameters" }
                    }
                }
                @if !shown_params.is_empty() {
                    div.scroll {
                        table #params-diff {
                            thead { tr { th { "Param" } @for r in v.runs { th { (run_label(r)) } } } }
                            tbody {
                                @for key in &shown_params {
                                    tr.differs[differs(key)] {
                                        td.mono { (key) }
                                        @for r in v.runs { td.v { @if let Some(p) = param(r, key) { (p) } } }
                                    }
                                }
                            }
                        }
                    }
                }

                h2 { "Metrics" }
                @if metric_keys.is_empty() {
                    p.muted { "No metrics logged." }
                } @else {
                    div.scroll {
                        table #metrics-compare {
                            thead { tr { th { "Metric" } @for r in v.runs { th { (run_label(r)) } } } }
                            tbody {
                                @for key in &metric_keys {
                                    tr {
                                        td.mono { (key) }
                                        @for r in v.runs {
                                            td.num {
                                                @if let Some(s) = metric(r, key) {
                                                    span title=(s.last) { (format::value(s.last)) }
                                                    @if let (Some(min), Some(max)) = (s.min, s.max) {
                                                        span.range { (format::value(min)) " … " (format::value(max)) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }

                    h2 { "Charts" }
                    (q.chart.controls(&here, &keep_for_chart))
                    (charts::grid(&chart_keys, &lines, &q.chart, &|_| None))
                }

                @if !all_columns.is_empty() {
                    h2 { "Scatter" }
                    form.bar #scatter-form method="get" action=(here) {
                        @for (name, value) in keep_except(&["sx", "sy"]) {
                            input type="hidden" name=(name) value=(value);
                        }
                        @for (name, label, chosen) in [("sx", "X", &sx), ("sy", "Y", &sy)] {
                            label {
                                (label)
                                select name=(name) {
                                    @for c in &all_columns { option value=(c) selected[c == chosen] { (c) } }
                                }
                            }
                        }
                        button type="submit" { "Plot" }
                    }
                    (scatter(v.runs, &by_run, &sx, &sy, &kept))
                }

                @if all_columns.len() > 1 {
                    h2 { "Parallel coordinates" }
                    p.muted { "Differing parameters and metrics by default (a metric's last value); text values get one place each on their axis, labelled in full." }
                    details #axis-picker {
                        summary { "Axes: " (columns.len()) " of " (all_columns.len()) " columns" }
                        form.bar method="get" action=(here) {
                            @for (name, value) in keep_except(&["axis"]) {
                                input type="hidden" name=(name) value=(value);
                            }
                            fieldset.axes {
                                legend { "Columns on the axes" }
                                @for c in &all_columns {
                                    label.check { input type="checkbox" name="axis" value=(c) checked[columns.contains(c)]; span.mono { (c) } }
                                }
                            }
                            button type="submit" { "Show" }
                            " "
                            a #all-axes href=(CompareQuery { axes: vec!["*".into()], ..q.clone() }.href(&e.experiment_id, q.hide_equal, true)) { "All columns" }
                        }
                    }
                    @if columns.len() > 1 {
                        p #brush-status {
                            "Drag along an axis to keep only the runs in that range (click the axis to clear it): "
                            span #brush-kept { (kept_count) } " of " (v.runs.len()) " runs kept. "
                            @if brushed {
                                a #clear-brushes href=(q.href(&e.experiment_id, q.hide_equal, false)) { "Clear brushes" }
                            }
                        }
                        div.scroll { (parallel(v.runs, &par, &columns, &q.brushes, &kept)) }
                    } @else {
                        p.muted { "Pick two or more columns to draw." }
                    }
                }

                @if !numeric_columns.is_empty() {
                    h2 { "Box plot" }
                    form.bar #box-form method="get" action=(here) {
                        @for (name, value) in keep_except(&["box", "by"]) {
                            input type="hidden" name=(name) value=(value);
                        }
                        label {
                            "Values of"
                            select name="box" {
                                @for c in &numeric_columns { option value=(c) selected[**c == box_column] { (c) } }
                            }
                        }
                        label {
                            "Grouped by"
                            select name="by" {
                                option value="" selected[box_by.is_none()] { "(all runs)" }
                                @for k in &param_keys {
                                    @let c = format!("params.{k}");
                                    option value=(c) selected[box_by == Some(c.as_str())] { (c) }
                                }
                            }
                        }
                        button type="submit" { "Plot" }
                    }
                    div.scroll { (box_plot(v.runs, &by_run, &box_column, box_by)) }
                }

                @if let Some((da, db)) = q.diff_runs() {
                    h2 #artifact-diff-heading { "Artifact diff" }
                    form.bar #diff-form method="get" action={ (here) "#artifact-diff-heading" } {
                        @for (name, value) in keep_except(&["diff", "da", "db"]) {
                            input type="hidden" name=(name) value=(value);
                        }
                        @for (name, text, chosen) in [("da", "From run", da), ("db", "To run", db)] {
                            label {
                                (text)
                                select name=(name) {
                                    @for r in v.runs { option value=(r.info.run_id) selected[r.info.run_id == chosen] { (run_label(r)) } }
                                }
                            }
                        }
                        label { "Text file (same path in both runs)" input type="text" name="diff" value=[q.diff_path.as_deref()] placeholder="config.yaml" required; }
                        button type="submit" { "Diff" }
                    }
                    @if let (Some(path), Some(d)) = (q.diff_path.as_deref(), v.diff) {
                        (diff::render(path, &label_of(v.runs, da), &label_of(v.runs, db), d))
                    }
                }
            }
        },
    )
}

/// A run's label by id, among the compared runs.
fn label_of(runs: &[Run], id: &str) -> String {
    runs.iter()
        .find(|r| r.info.run_id == id)
        .map_or(id, run_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use twinloop_core::tracking::Param;

    use super::*;
    use crate::runs::tests::{experiment, loss, run};

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn with_params(id: &str, name: &str, params: &[(&str, &str)]) -> Run {
        let mut r = run(id, name, None);
        r.data.params = params
            .iter()
            .map(|(k, v)| Param {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect();
        r
    }

    fn summaries(id: &str, last: f64) -> RunSummaries {
        RunSummaries {
            run_id: id.into(),
            metrics: vec![loss(last, last / 2.0, last * 2.0)],
        }
    }

    #[test]
    fn the_url_takes_a_list_or_checkboxes() {
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a, b,,a"),
            ("run", "c"),
            ("equal", "hide"),
            ("sx", "params.lr"),
        ]));
        assert_eq!(q.run_ids, ["a", "b", "c"]);
        assert!(q.hide_equal);
        assert_eq!(q.scatter_x.as_deref(), Some("params.lr"));
        assert_eq!(
            q.href("1", false, true),
            "/experiments/1/compare?runs=a%2Cb%2Cc&sx=params.lr"
        );
        let many: Vec<String> = (0..1500).map(|i| format!("r{i}")).collect();
        let q = CompareQuery::from_pairs(&pairs(&[("runs", &many.join(","))]));
        assert_eq!(q.run_ids.len(), MAX_RUNS);
    }

    #[test]
    fn brushes_read_from_the_url_one_per_column() {
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a"),
            ("brush", "params.lr:0.9:0.1"),
            ("brush", "metrics.val:acc:-1:0.5"),
            ("brush", "params.lr:0.2:0.4"),
            ("brush", "nonsense"),
            ("brush", ":0:1"),
            ("brush", "p:NaN:1"),
            ("box", "metrics.loss"),
            ("by", "params.opt"),
        ]));
        let b = |column: &str, lo, hi| Brush {
            column: column.into(),
            lo,
            hi,
        };
        assert_eq!(
            q.brushes,
            [b("metrics.val:acc", 0.0, 0.5), b("params.lr", 0.2, 0.4)]
        );
        assert_eq!(
            q.href("1", false, true),
            "/experiments/1/compare?runs=a&box=metrics.loss&by=params.opt\
             &brush=metrics.val%3Aacc%3A0.000%3A0.500&brush=params.lr%3A0.200%3A0.400"
        );
        assert_eq!(
            q.href("1", false, false),
            "/experiments/1/compare?runs=a&box=metrics.loss&by=params.opt"
        );
    }

    #[test]
    fn a_brushed_url_hides_the_runs_outside_and_dims_their_lines() {
        let runs = [
            with_params("a", "ra", &[("lr", "0.1")]),
            with_params("b", "rb", &[("lr", "0.2")]),
            with_params("c", "rc", &[("lr", "0.3")]),
        ];
        // lr 0.1, 0.2, 0.3 sit at 0, 0.5 and 1 on their axis; loss 0.5, 0.25, 1 at 1/3, 0, 1.
        let q =
            CompareQuery::from_pairs(&pairs(&[("runs", "a,b,c"), ("brush", "params.lr:0.4:1")]));
        let html = render(&q, &runs);
        assert!(html.contains(r#"<tr data-run-id="a" hidden>"#), "{html}");
        assert!(html.contains(r#"<tr data-run-id="b">"#), "{html}");
        assert!(html.contains(r#"<span id="brush-kept">2</span> of 3 runs kept"#));
        assert!(html.contains(r#"class="line c0 dim""#) && !html.contains("line c1 dim"));
        assert!(
            html.contains(r#"data-run="b" data-pos="0.5000,0.0000""#),
            "{html}"
        );
        assert!(
            html.contains(r#"id="clear-brushes" href="/experiments/3/compare?runs=a%2Cb%2Cc""#)
        );
        assert!(html.contains(r#"class="dot c0 dim""#), "{html}");
        // The brush rides along in every form that changes something else.
        assert!(
            html.contains(r#"name="brush" value="params.lr:0.400:1.000""#),
            "{html}"
        );
        let both = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a,b,c"),
            ("brush", "params.lr:0.4:1"),
            ("brush", "metrics.loss:0.9:1"),
        ]));
        let html = render(&both, &runs);
        assert!(
            html.contains(r#"<span id="brush-kept">1</span> of 3"#),
            "{html}"
        );
        assert!(html.contains(r#"<tr data-run-id="c">"#), "{html}");
    }

    #[test]
    fn the_axes_can_be_picked_or_all_shown() {
        let runs = [
            with_params("a", "ra", &[("lr", "0.1"), ("seed", "1")]),
            with_params("b", "rb", &[("lr", "0.2"), ("seed", "1")]),
        ];
        let axes = |html: &str| -> Vec<String> {
            html.split(r#"<g class="pc-axis" data-col=""#)
                .skip(1)
                .map(|s| s.split('"').next().unwrap().to_string())
                .collect()
        };
        // By default the differing params and the metrics; seed is equal.
        let html = render(&CompareQuery::from_pairs(&pairs(&[("runs", "a,b")])), &runs);
        assert_eq!(axes(&html), ["params.lr", "metrics.loss"]);
        assert!(html.contains(r#"<input type="checkbox" name="axis" value="params.seed">"#));
        assert!(
            html.contains(r#"id="all-axes" href="/experiments/3/compare?runs=a%2Cb&amp;axis=%2A""#),
            "{html}"
        );
        let all = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("axis", "*")])),
            &runs,
        );
        assert_eq!(axes(&all), ["params.lr", "params.seed", "metrics.loss"]);
        let picked = render(
            &CompareQuery::from_pairs(&pairs(&[
                ("runs", "a,b"),
                ("axis", "metrics.loss"),
                ("axis", "params.seed"),
                ("axis", "params.nope"),
            ])),
            &runs,
        );
        assert_eq!(axes(&picked), ["params.seed", "metrics.loss"]);
        // The pick rides along in the other forms.
        assert!(picked.contains(r#"<input type="hidden" name="axis" value="params.seed">"#));
        let one = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("axis", "params.lr")])),
            &runs,
        );
        assert!(one.contains("Pick two or more columns") && !one.contains(r#"id="parallel""#));
    }

    #[test]
    fn box_stats_are_quartiles_with_whiskers_and_outliers() {
        let values: Vec<(f64, usize)> = [1.0, 2.0, 3.0, 4.0, 100.0]
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, i))
            .collect();
        let s = box_stats(values).unwrap();
        assert_eq!((s.q1, s.median, s.q3), (2.0, 3.0, 4.0));
        assert_eq!((s.low, s.high), (1.0, 4.0));
        assert_eq!(s.outliers, [(100.0, 4)]);
        let one = box_stats(vec![(5.0, 0)]).unwrap();
        assert_eq!(
            (one.q1, one.median, one.q3, one.low, one.high),
            (5.0, 5.0, 5.0, 5.0, 5.0)
        );
        assert!(box_stats(Vec::new()).is_none());
        assert_eq!(quantile(&[0.0, 10.0], 0.25), 2.5);
    }

    #[test]
    fn the_box_plot_groups_by_a_param() {
        let runs = [
            with_params("a", "ra", &[("opt", "adam")]),
            with_params("b", "rb", &[("opt", "adam")]),
            with_params("c", "rc", &[("opt", "<script>s</script>")]),
        ];
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a,b,c"),
            ("box", "metrics.loss"),
            ("by", "params.opt"),
        ]));
        let html = render(&q, &runs);
        assert!(html.contains(r#"id="box-plot""#), "{html}");
        assert_eq!(html.matches(r#"<g class="box""#).count(), 2, "{html}");
        assert!(html.contains(r#"data-group="adam""#) && html.contains("n=2"));
        assert!(html.contains("&lt;script&gt;s&lt;/script&gt;") && !html.contains("<script>s"));
        assert!(
            html.contains(r#"<option value="params.opt" selected>"#),
            "{html}"
        );
    }

    fn render(q: &CompareQuery, runs: &[Run]) -> String {
        let s = [
            summaries("a", 0.5),
            summaries("b", 0.25),
            summaries("c", 1.0),
        ];
        compare_page(&CompareView {
            experiment: &experiment(),
            query: q,
            runs,
            summaries: &s,
            diff: None,
        })
        .into_string()
    }

    #[test]
    fn the_artifact_diff_names_its_runs_and_keeps_the_view() {
        let runs = [
            with_params("a", "ra", &[("lr", "0.1")]),
            with_params("b", "<b>rb</b>", &[("lr", "0.2")]),
        ];
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a,b"),
            ("diff", "/conf/a.yaml"),
            ("db", "a"),
            ("da", "b"),
            ("equal", "hide"),
        ]));
        assert_eq!(q.diff_runs(), Some(("b", "a")));
        assert_eq!(q.diff_path.as_deref(), Some("conf/a.yaml"));
        let d = crate::diff::ArtifactDiff::Lines(crate::diff::line_diff("x\n", "y\n"));
        let s = [summaries("a", 0.5), summaries("b", 0.25)];
        let html = compare_page(&CompareView {
            experiment: &experiment(),
            query: &q,
            runs: &runs,
            summaries: &s,
            diff: Some(&d),
        })
        .into_string();
        assert!(
            html.contains(r#"<option value="b" selected>&lt;b&gt;rb&lt;/b&gt;</option>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"name="diff" value="conf/a.yaml""#),
            "{html}"
        );
        // The diff's form carries the other settings, but not its own twice; other forms
        // carry the diff.
        let form = &html[html.find(r#"id="diff-form""#).unwrap()..];
        let form = &form[..form.find("</form>").unwrap()];
        assert!(
            form.contains(r#"<input type="hidden" name="equal" value="hide">"#),
            "{form}"
        );
        assert!(!form.contains(r#"type="hidden" name="diff""#), "{form}");
        assert!(
            html.contains("−1</span> lines of &lt;b&gt;rb&lt;/b&gt;"),
            "{html}"
        );
        assert!(
            html.contains(r#"<input type="hidden" name="diff" value="conf/a.yaml">"#),
            "{html}"
        );
        // One run has nothing to diff against.
        let one = CompareQuery::from_pairs(&pairs(&[("runs", "a"), ("diff", "x")]));
        assert_eq!(one.diff_runs(), None);
    }

    #[test]
    fn the_diff_marks_and_can_hide_equal_params() {
        let runs = [
            with_params("a", "ra", &[("lr", "0.1"), ("opt", "adam"), ("seed", "1")]),
            with_params("b", "rb", &[("lr", "0.2"), ("opt", "adam"), ("seed", "1")]),
            with_params("c", "rc", &[("lr", "0.3"), ("opt", "sgd")]),
        ];
        let all = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b,c")])),
            &runs,
        );
        assert!(all.contains("3 of 3 differ"), "{all}");
        assert!(
            all.contains(r#"<tr class="differs"><td class="mono">lr</td>"#),
            "{all}"
        );
        // seed is missing in one run: that differs too; nothing is equal in all three.
        assert!(!all.contains("<tr><td class=\"mono\">seed"), "{all}");
        let hidden = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("equal", "hide")])),
            &runs[..2],
        );
        assert!(
            hidden.contains(">lr</td>") && !hidden.contains(">opt</td>"),
            "{hidden}"
        );
        assert!(hidden.contains(r#"data-runs="a,b""#), "{hidden}");
        // Without a brush every run is in the table.
        assert!(!hidden.contains(" hidden>"), "{hidden}");
        assert!(hidden.contains(r#"id="scatter""#) && hidden.contains("<circle"));
    }

    #[test]
    fn categorical_axes_keep_values_sharing_a_prefix_apart() {
        let runs = [
            with_params("a", "ra", &[("model", "resnet-50-variant-a"), ("lr", "1")]),
            with_params("b", "rb", &[("model", "resnet-50-variant-b"), ("lr", "2")]),
        ];
        let html = render(&CompareQuery::from_pairs(&pairs(&[("runs", "a,b")])), &runs);
        assert!(html.contains("resnet-50-variant-a</text>"), "{html}");
        assert!(html.contains("resnet-50-variant-b</text>"), "{html}");
        assert!(html.contains(r#"id="parallel""#));
        assert_eq!(html.matches("<polyline").count(), 2);
    }

    #[test]
    fn hostile_values_render_inert() {
        let runs = [
            with_params(
                "a",
                "<script>a</script>",
                &[("<script>k</script>", "<script>v</script>")],
            ),
            with_params("b", "b", &[("<script>k</script>", "x")]),
        ];
        let q =
            CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("sx", "\"><script>x</script>")]));
        let html = render(&q, &runs);
        assert!(
            !html.contains("<script>a") && !html.contains("<script>k"),
            "{html}"
        );
        assert!(
            !html.contains("<script>v") && !html.contains("<script>x"),
            "{html}"
        );
        assert!(!html.contains("style="));
    }
}

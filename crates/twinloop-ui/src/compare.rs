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
/// The page's one GET form: every section's fields belong to it (`form="view"`), so the ids of
/// the compared runs, up to 33 KB for 1,000, are written once, not once per section. It comes
/// last in the page, so a button that sets a value (`equal=show`) precedes the form's own copy
/// of it and wins: `CompareQuery` reads the first value of a name.
const VIEW_FORM: &str = "view";
/// Runs the params and metrics tables show as columns (a table 1,000 runs wide was a third of
/// the page and unreadable); the runs table, charts and plots show every run.
const TABLE_RUNS: usize = 100;
/// Runs up to which the diff's two runs are picked from lists; past that, by id.
const DIFF_LIST_RUNS: usize = 50;
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
    /// The column that colours the scatter's dots (`sc=`); none: each run its own colour.
    pub scatter_color: Option<String>,
    /// The box plot's column, and the param whose values group it.
    pub box_column: Option<String>,
    pub box_by: Option<String>,
    /// The parallel coordinates' axes (`axis=` repeated, `*` for all); empty for the default.
    pub axes: Vec<String>,
    /// At most one per column.
    pub brushes: Vec<Brush>,
    /// Parallel-coordinates axes drawn on a log scale (`plog=` repeated; numeric axes only).
    pub log_axes: Vec<String>,
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
            scatter_color: get("sc").map(String::from),
            box_column: get("box").map(String::from),
            box_by: get("by").map(String::from),
            axes: pairs
                .iter()
                .filter(|(n, v)| n == "axis" && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
            brushes,
            log_axes: pairs
                .iter()
                .filter(|(n, v)| n == "plog" && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect(),
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
            .q("sc", self.scatter_color.as_deref().unwrap_or(""))
            .q("box", self.box_column.as_deref().unwrap_or(""))
            .q("by", self.box_by.as_deref().unwrap_or(""))
            .q("diff", self.diff_path.as_deref().unwrap_or(""))
            .q("da", self.diff_a.as_deref().unwrap_or(""))
            .q("db", self.diff_b.as_deref().unwrap_or(""));
        for a in &self.axes {
            h = h.q("axis", a);
        }
        for a in &self.log_axes {
            h = h.q("plog", a);
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

/// Where the values of a log axis that are not positive sit: at its foot, below the positive
/// ones, which fill the rest of the axis.
const LOG_FOOT: f64 = 0.08;

/// How an axis places numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Linear {
        lo: f64,
        hi: f64,
    },
    /// Over the positive values' range; `nonpositive` values sit at the foot.
    Log {
        lo: f64,
        hi: f64,
        nonpositive: usize,
    },
}

/// Maps a column's values onto 0..=1: linearly (or logarithmically) when all are numbers, else
/// one evenly spaced position per distinct value (sorted), so values sharing a long prefix stay
/// apart.
#[derive(Debug)]
struct Axis {
    /// `None`: categorical.
    scale: Option<Scale>,
    categories: Vec<String>,
}

impl Axis {
    /// `log` asks for a log scale; a column of text, or without any positive number, stays as
    /// it is (`is_log` tells).
    fn of<'v>(values: impl Iterator<Item = &'v Value> + Clone, log: bool) -> Self {
        let all_numeric = values.clone().all(|v| matches!(v, Value::Num(_)));
        if !all_numeric {
            let set: BTreeSet<String> = values.map(label).collect();
            return Axis {
                scale: None,
                categories: set.into_iter().collect(),
            };
        }
        let numbers = values.filter_map(|v| match v {
            Value::Num(n) => Some(*n),
            Value::Text(_) => None,
        });
        let range = |it: &mut dyn Iterator<Item = f64>| {
            it.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), n| {
                (lo.min(n), hi.max(n))
            })
        };
        let (plo, phi) = range(&mut numbers.clone().filter(|n| *n > 0.0));
        let scale = if log && plo <= phi {
            Scale::Log {
                lo: plo,
                hi: phi,
                nonpositive: numbers.clone().filter(|n| *n <= 0.0).count(),
            }
        } else {
            let (lo, hi) = range(&mut numbers.clone());
            Scale::Linear { lo, hi }
        };
        Axis {
            scale: Some(scale),
            categories: Vec::new(),
        }
    }

    fn is_log(&self) -> bool {
        matches!(self.scale, Some(Scale::Log { .. }))
    }

    fn pos(&self, v: &Value) -> f64 {
        match (self.scale, v) {
            (Some(scale), Value::Num(n)) => scale_pos(scale, *n),
            (Some(_), Value::Text(_)) => 0.5,
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
        match self.scale {
            Some(Scale::Linear { lo, hi }) if hi > lo => (0..=4)
                .map(|i| {
                    let f = f64::from(i) / 4.0;
                    (f, format::value(lo + f * (hi - lo)))
                })
                .collect(),
            Some(Scale::Linear { lo, .. }) if lo.is_finite() => vec![(0.5, format::value(lo))],
            Some(Scale::Linear { .. }) => Vec::new(),
            Some(
                scale @ Scale::Log {
                    lo,
                    hi,
                    nonpositive,
                },
            ) => {
                let mut ticks: Vec<(f64, String)> = log_ticks(lo, hi)
                    .into_iter()
                    .map(|v| (scale_pos(scale, v), format::value(v)))
                    .collect();
                if nonpositive > 0 {
                    ticks.insert(0, (0.0, "≤ 0".to_string()));
                }
                ticks
            }
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

/// A number's position on a numeric axis.
fn scale_pos(scale: Scale, n: f64) -> f64 {
    match scale {
        Scale::Linear { lo, hi } if hi > lo => (n - lo) / (hi - lo),
        Scale::Linear { .. } => 0.5,
        Scale::Log {
            lo,
            hi,
            nonpositive,
        } => {
            let base = if nonpositive > 0 { LOG_FOOT } else { 0.0 };
            if n <= 0.0 {
                0.0
            } else if hi > lo {
                let f = (n.ln() - lo.ln()) / (hi.ln() - lo.ln());
                base + f.clamp(0.0, 1.0) * (1.0 - base)
            } else {
                base + (1.0 - base) / 2.0
            }
        }
    }
}

/// A log axis's ticks over positive `[lo, hi]`: the powers of ten inside (every k-th when there
/// are many), or the ends and their geometric middle when the range holds fewer than two.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Vec::new();
    }
    if hi == lo {
        return vec![lo];
    }
    let (first, last) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    if last - first < 1 {
        return vec![lo, (lo * hi).sqrt(), hi];
    }
    let every = usize::try_from((last - first) / 6 + 1).unwrap_or(1);
    (first..=last)
        .step_by(every)
        .map(|e| 10f64.powi(e))
        .collect()
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

/// Stops of the colour scale of a numeric column (viridis), low to high.
const RAMP: [(u8, u8, u8); 5] = [
    (0x44, 0x01, 0x54),
    (0x3b, 0x52, 0x8b),
    (0x21, 0x91, 0x8c),
    (0x5e, 0xc9, 0x62),
    (0xfd, 0xe7, 0x25),
];
/// A dot whose run has no value in the colour column.
const NO_COLOR: &str = "#ced4da";
/// Values of a text colour column that get colours of their own (`.c0` … `.c8`), the most
/// frequent first; the others share `.c9` (grey) as "other".
const PALETTE: usize = 9;
/// The scatter's room on the right for a colour legend.
const LEGEND_W: f64 = 150.0;

/// The colour of `t` in 0..=1 on the scale, as `#rrggbb`.
fn ramp(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let at = t * (RAMP.len() - 1) as f64;
    let i = (at.floor() as usize).min(RAMP.len() - 2);
    let f = at - i as f64;
    let (a, b) = (RAMP[i], RAMP[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// How the scatter colours its dots by a column: a scale over its numbers, or a palette over
/// its text values.
#[derive(Debug, PartialEq)]
enum Coloring {
    Scale {
        lo: f64,
        hi: f64,
    },
    /// The values with a colour of their own, by colour index; `other` whether some share the
    /// last one.
    Palette {
        values: Vec<String>,
        other: bool,
    },
}

/// A dot's paint: a `.cN` class, or a fill.
#[derive(Debug, PartialEq)]
enum Paint {
    Class(usize),
    Fill(String),
}

impl Coloring {
    /// `None` when no run has a value.
    fn of(values: &[&Value]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        if values.iter().all(|v| matches!(v, Value::Num(_))) {
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    let Value::Num(n) = v else { return (lo, hi) };
                    (lo.min(*n), hi.max(*n))
                });
            return Some(Coloring::Scale { lo, hi });
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for v in values {
            *counts.entry(label(v)).or_default() += 1;
        }
        let mut by_count: Vec<(String, usize)> = counts.into_iter().collect();
        // Most frequent first; ties in the values' order, so the page is the same each time.
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let other = by_count.len() > PALETTE + 1;
        let own = if other { PALETTE } else { by_count.len() };
        Some(Coloring::Palette {
            values: by_count.into_iter().take(own).map(|(v, _)| v).collect(),
            other,
        })
    }

    fn paint(&self, v: Option<&Value>) -> Paint {
        match (self, v) {
            (_, None) => Paint::Fill(NO_COLOR.into()),
            (Coloring::Scale { lo, hi }, Some(Value::Num(n))) => {
                Paint::Fill(ramp(if hi > lo { (n - lo) / (hi - lo) } else { 0.5 }))
            }
            (Coloring::Scale { .. }, Some(Value::Text(_))) => Paint::Fill(NO_COLOR.into()),
            (Coloring::Palette { values, .. }, Some(v)) => {
                let l = label(v);
                Paint::Class(values.iter().position(|c| *c == l).unwrap_or(PALETTE))
            }
        }
    }
}

/// The colour legend beside the plot, from `left`: a bar from the scale's low to high end, or a
/// swatch per value.
fn color_legend(column: &str, coloring: &Coloring, missing: bool, left: f64) -> Markup {
    let (top, bar_h) = (MARGIN, SCATTER_H - 2.0 * MARGIN);
    html! {
        g #scatter-legend data-col=(column) {
            text.axis-label x=(px(left)) y=(px(MARGIN - 14.0)) { (column) }
            @match coloring {
                Coloring::Scale { lo, hi } => {
                    defs {
                        linearGradient #scatter-ramp x1="0" y1="1" x2="0" y2="0" {
                            @for (i, _) in RAMP.iter().enumerate() {
                                @let t = i as f64 / (RAMP.len() - 1) as f64;
                                stop offset=(t) stop-color=(ramp(t)) {}
                            }
                        }
                    }
                    rect.ramp x=(px(left)) y=(px(top)) width="14" height=(px(bar_h)) fill="url(#scatter-ramp)" {}
                    text.tick x=(px(left + 20.0)) y=(px(top + 8.0)) { (format::value(*hi)) }
                    @if hi > lo {
                        text.tick x=(px(left + 20.0)) y=(px(top + bar_h / 2.0 + 4.0)) { (format::value((lo + hi) / 2.0)) }
                    }
                    text.tick x=(px(left + 20.0)) y=(px(top + bar_h)) { (format::value(*lo)) }
                }
                Coloring::Palette { values, other } => {
                    @for (k, v) in values.iter().enumerate() {
                        rect class={ "key c" (k) } x=(px(left)) y=(px(top + 18.0 * k as f64)) width="12" height="12" {}
                        text.tick x=(px(left + 18.0)) y=(px(top + 18.0 * k as f64 + 10.0)) { (v) }
                    }
                    @if *other {
                        rect class={ "key c" (PALETTE) } x=(px(left)) y=(px(top + 18.0 * values.len() as f64)) width="12" height="12" {}
                        text.tick x=(px(left + 18.0)) y=(px(top + 18.0 * values.len() as f64 + 10.0)) { "other values" }
                    }
                }
            }
            @if missing {
                rect x=(px(left)) y=(px(SCATTER_H - MARGIN + 8.0)) width="12" height="12" fill=(NO_COLOR) {}
                text.tick x=(px(left + 18.0)) y=(px(SCATTER_H - MARGIN + 18.0)) { "no value" }
            }
        }
    }
}

/// The scatter of `y` against `x`, each run's dot in its own colour, or coloured by `color`'s
/// value. Dots name their run by its place in the page's runs (`data-i`).
fn scatter(
    runs: &[Run],
    by_run: &ByRun,
    (x, y, color): (&str, &str, Option<&str>),
    kept: &[bool],
) -> Markup {
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
    let colors: Vec<Option<Value>> = match color {
        Some(c) => points
            .iter()
            .map(|(_, r, _, _)| column_value(r, summary_of(by_run, r), c))
            .collect(),
        None => Vec::new(),
    };
    let present: Vec<&Value> = colors.iter().flatten().collect();
    let coloring = color.and_then(|_| Coloring::of(&present));
    let ax = Axis::of(points.iter().map(|p| &p.2), false);
    let ay = Axis::of(points.iter().map(|p| &p.3), false);
    let (w, h) = (SCATTER_W - 2.0 * MARGIN, SCATTER_H - 2.0 * MARGIN);
    let width = SCATTER_W + if color.is_some() { LEGEND_W } else { 0.0 };
    let sx = |f: f64| MARGIN + f * w;
    let sy = |f: f64| SCATTER_H - MARGIN - f * h;
    html! {
        svg #scatter.plot-svg role="img"
            aria-label={ (y) " against " (x) @if let Some(c) = color { ", coloured by " (c) } }
            viewBox={ "0 0 " (width) " " (SCATTER_H) } width=(width) height=(SCATTER_H) {
            rect.frame x=(MARGIN) y=(MARGIN) width=(w) height=(h) {}
            @for (f, t) in ax.ticks() {
                text.tick x=(px(sx(f))) y=(px(SCATTER_H - MARGIN + 16.0)) text-anchor="middle" { (t) }
            }
            @for (f, t) in ay.ticks() {
                text.tick x=(px(MARGIN - 6.0)) y=(px(sy(f) + 4.0)) text-anchor="end" { (t) }
            }
            text.axis-label x=(px(MARGIN + w / 2.0)) y=(px(SCATTER_H - 12.0)) text-anchor="middle" { (x) }
            text.axis-label x="12" y=(px(MARGIN - 14.0)) { (y) }
            @for (k, (i, run, vx, vy)) in points.iter().enumerate() {
                @let paint = coloring.as_ref().map(|c| c.paint(colors[k].as_ref()));
                @let dim = if kept[*i] { "" } else { " dim" };
                @let (class, fill) = match &paint {
                    None => (series_class("dot", *i, kept[*i]), None),
                    Some(Paint::Class(c)) => (format!("dot c{c}{dim}"), None),
                    Some(Paint::Fill(f)) => (format!("dot{dim}"), Some(f.as_str())),
                };
                circle class=(class) fill=[fill] cx=(px(sx(ax.pos(vx)))) cy=(px(sy(ay.pos(vy)))) r="5" data-i=(i) {
                    title {
                        (run_label(run)) ": " (label(vx)) ", " (label(vy))
                        @if let Some(c) = color { "; " (c) " " (colors[k].as_ref().map_or_else(|| "none".to_string(), label)) }
                    }
                }
            }
            @if let (Some(column), Some(coloring)) = (color, &coloring) {
                (color_legend(column, coloring, present.len() < points.len(), SCATTER_W - MARGIN + 16.0))
            }
            @if let (Some(column), None) = (color, &coloring) {
                text.tick #scatter-legend x=(px(SCATTER_W - MARGIN + 16.0)) y=(px(MARGIN)) { "No run has " (column) "." }
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
    /// `log`: the columns asked for on a log scale.
    fn of(runs: &[Run], by_run: &ByRun, columns: &[String], log: &[String]) -> Self {
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
            .map(|j| {
                Axis::of(
                    values.iter().filter_map(|row| row[j].as_ref()),
                    log.contains(&columns[j]),
                )
            })
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
                    points=(pts.join(" ")) data-i=(i) data-pos=(pos.join(",")) {
                    title { (run_label(&runs[i])) }
                }
            }
            @for (j, (column, axis)) in columns.iter().zip(&par.axes).enumerate() {
                @let brush = brushes.iter().find(|b| b.column == *column);
                g.pc-axis data-col=(column) data-log=[axis.is_log().then_some("1")] {
                    line.axis x1=(px(ax_x(j))) x2=(px(ax_x(j))) y1=(px(PAR_TOP)) y2=(px(PAR_BOTTOM)) {}
                    text.axis-label x=(px(ax_x(j))) y="20" text-anchor="middle" { (column) @if axis.is_log() { " (log)" } }
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
    let par = Parallel::of(v.runs, &by_run, &columns, &q.log_axes);
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
    let numeric_axes: Vec<(&String, &Axis)> = columns
        .iter()
        .zip(&par.axes)
        .filter(|(_, a)| a.scale.is_some())
        .collect();
    let sections = Sections {
        charts: !metric_keys.is_empty(),
        scatter: !all_columns.is_empty(),
        axes: all_columns.len() > 1,
        boxes: !numeric_columns.is_empty(),
        diff: q.diff_runs().is_some(),
    };
    let table_runs = &v.runs[..v.runs.len().min(TABLE_RUNS)];
    let section_action = |anchor: &str| format!("{here}#{anchor}");
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
                @if table_runs.len() < v.runs.len() {
                    p.muted #tables-capped {
                        "The parameter and metric tables show the first " (TABLE_RUNS) " of " (v.runs.len())
                        " runs; the runs table, charts and plots show them all."
                    }
                }

                h2 #params-heading { "Parameters" }
                p {
                    (differing_params.len()) " of " (param_keys.len()) " differ. "
                    @if q.hide_equal {
                        button #show-equal type="submit" form=(VIEW_FORM) formaction=(section_action("params-heading")) name="equal" value="show" { "Show equal parameters" }
                    } @else {
                        button #hide-equal type="submit" form=(VIEW_FORM) formaction=(section_action("params-heading")) name="equal" value="hide" { "Hide equal parameters" }
                    }
                }
                @if !shown_params.is_empty() {
                    div.scroll {
                        table #params-diff {
                            thead { tr { th { "Param" } @for r in table_runs { th { (run_label(r)) } } } }
                            tbody {
                                @for key in &shown_params {
                                    tr.differs[differs(key)] {
                                        td.mono { (key) }
                                        @for r in table_runs { td.v { @if let Some(p) = param(r, key) { (p) } } }
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
                            thead { tr { th { "Metric" } @for r in table_runs { th { (run_label(r)) } } } }
                            tbody {
                                @for key in &metric_keys {
                                    tr {
                                        td.mono { (key) }
                                        @for r in table_runs {
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
                    (q.chart.controls_of(VIEW_FORM))
                    (charts::grid(&chart_keys, &lines, &q.chart, &|_| None))
                }

                @if sections.scatter {
                    h2 #scatter-heading { "Scatter" }
                    div.bar #scatter-form {
                        @for (name, label, chosen) in [("sx", "X", &sx), ("sy", "Y", &sy)] {
                            label {
                                (label)
                                select name=(name) form=(VIEW_FORM) {
                                    @for c in &all_columns { option value=(c) selected[c == chosen] { (c) } }
                                }
                            }
                        }
                        label {
                            "Colour"
                            select name="sc" form=(VIEW_FORM) {
                                option value="" selected[q.scatter_color.is_none()] { "(each run its own)" }
                                @for c in &all_columns { option value=(c) selected[q.scatter_color.as_ref() == Some(c)] { (c) } }
                            }
                        }
                        button type="submit" form=(VIEW_FORM) formaction=(section_action("scatter-heading")) { "Plot" }
                    }
                    (scatter(v.runs, &by_run, (&sx, &sy, q.scatter_color.as_deref()), &kept))
                }

                @if sections.axes {
                    h2 #parallel-heading { "Parallel coordinates" }
                    p.muted { "Differing parameters and metrics by default (a metric's last value); text values get one place each on their axis, labelled in full." }
                    details #axis-picker {
                        summary { "Axes: " (columns.len()) " of " (all_columns.len()) " columns" }
                        div.bar {
                            fieldset.axes {
                                legend { "Columns on the axes" }
                                @for c in &all_columns {
                                    label.check { input type="checkbox" name="axis" value=(c) form=(VIEW_FORM) checked[columns.contains(c)]; span.mono { (c) } }
                                }
                            }
                            button type="submit" form=(VIEW_FORM) formaction=(section_action("parallel-heading")) { "Show" }
                            " "
                            button #all-axes type="submit" form=(VIEW_FORM) formaction=(section_action("parallel-heading")) name="axis" value="*" { "All columns" }
                        }
                    }
                    @if columns.len() > 1 {
                        @if !numeric_axes.is_empty() {
                            div.bar #log-axes {
                                fieldset.axes {
                                    legend { "Log scale" }
                                    @for (c, _) in &numeric_axes {
                                        label.check { input type="checkbox" name="plog" value=(c) form=(VIEW_FORM) checked[q.log_axes.contains(c)]; span.mono { (c) } }
                                    }
                                }
                                button type="submit" form=(VIEW_FORM) formaction=(section_action("parallel-heading")) { "Apply" }
                            }
                        }
                        @for (c, axis) in &numeric_axes {
                            @if let Some(Scale::Log { nonpositive, .. }) = axis.scale.filter(|_| axis.is_log()) {
                                @if nonpositive > 0 {
                                    p.muted.log-note data-col=(c) {
                                        "Values ≤ 0 in " span.mono { (c) } " (" (nonpositive) " of " (v.runs.len()) " runs) cannot go on a log scale: they sit at the foot of its axis, marked ≤ 0."
                                    }
                                }
                            } @else if q.log_axes.contains(c) {
                                p.muted.log-note data-col=(c) {
                                    span.mono { (c) } " has no value above 0, so its axis stays linear."
                                }
                            }
                        }
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

                @if sections.boxes {
                    h2 #box-heading { "Box plot" }
                    div.bar #box-form {
                        label {
                            "Values of"
                            select name="box" form=(VIEW_FORM) {
                                @for c in &numeric_columns { option value=(c) selected[**c == box_column] { (c) } }
                            }
                        }
                        label {
                            "Grouped by"
                            select name="by" form=(VIEW_FORM) {
                                option value="" selected[box_by.is_none()] { "(all runs)" }
                                @for k in &param_keys {
                                    @let c = format!("params.{k}");
                                    option value=(c) selected[box_by == Some(c.as_str())] { (c) }
                                }
                            }
                        }
                        button type="submit" form=(VIEW_FORM) formaction=(section_action("box-heading")) { "Plot" }
                    }
                    div.scroll { (box_plot(v.runs, &by_run, &box_column, box_by)) }
                }

                @if let Some((da, db)) = q.diff_runs() {
                    h2 #artifact-diff-heading { "Artifact diff" }
                    div.bar #diff-form {
                        @for (name, text, chosen) in [("da", "From run", da), ("db", "To run", db)] {
                            label {
                                (text)
                                @if v.runs.len() <= DIFF_LIST_RUNS {
                                    select name=(name) form=(VIEW_FORM) {
                                        @for r in v.runs { option value=(r.info.run_id) selected[r.info.run_id == chosen] { (run_label(r)) } }
                                    }
                                } @else {
                                    input.mono type="text" name=(name) form=(VIEW_FORM) value=(chosen) size="34";
                                }
                            }
                        }
                        label { "Text file (same path in both runs)" input type="text" name="diff" form=(VIEW_FORM) value=[q.diff_path.as_deref()] placeholder="config.yaml"; }
                        button type="submit" form=(VIEW_FORM) formaction=(section_action("artifact-diff-heading")) { "Diff" }
                    }
                    @if let (Some(path), Some(d)) = (q.diff_path.as_deref(), v.diff) {
                        (diff::render(path, &label_of(v.runs, da), &label_of(v.runs, db), d))
                    }
                }

                form #view method="get" action=(here) {
                    @for (name, value) in view_state(q, &sections) {
                        input type="hidden" name=(name) value=(value);
                    }
                }
            }
        },
    )
}

/// Which of the page's sections show, each with the fields of its settings.
struct Sections {
    charts: bool,
    scatter: bool,
    axes: bool,
    boxes: bool,
    diff: bool,
}

/// What the page's form carries besides its sections' fields: the runs, the brushes, whether
/// equal params are hidden, and the settings of sections the page does not show.
fn view_state(q: &CompareQuery, shown: &Sections) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = vec![("runs", q.run_ids.join(","))];
    if q.hide_equal {
        out.push(("equal", "hide".into()));
    }
    let mut unshown = |section: bool, values: Vec<(&'static str, Option<String>)>| {
        if !section {
            out.extend(values.into_iter().filter_map(|(n, v)| Some((n, v?))));
        }
    };
    let c = &q.chart;
    unshown(
        shown.charts,
        vec![
            ("x", (c.x != XAxis::Step).then(|| c.x.as_str().to_string())),
            ("log", c.log.then(|| "1".to_string())),
            ("smooth", (c.smooth > 0.0).then(|| c.smooth.to_string())),
        ],
    );
    unshown(
        shown.scatter,
        vec![
            ("sx", q.scatter_x.clone()),
            ("sy", q.scatter_y.clone()),
            ("sc", q.scatter_color.clone()),
        ],
    );
    unshown(
        shown.axes,
        (q.axes.iter().map(|a| ("axis", Some(a.clone()))))
            .chain(q.log_axes.iter().map(|a| ("plog", Some(a.clone()))))
            .collect(),
    );
    unshown(
        shown.boxes,
        vec![("box", q.box_column.clone()), ("by", q.box_by.clone())],
    );
    unshown(
        shown.diff,
        vec![
            ("diff", q.diff_path.clone()),
            ("da", q.diff_a.clone()),
            ("db", q.diff_b.clone()),
        ],
    );
    out.extend(q.brushes.iter().map(|b| ("brush", b.encode())));
    out
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
            html.contains(r#"data-i="1" data-pos="0.5000,0.0000""#),
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
        assert!(
            html.contains(r#"<input type="checkbox" name="axis" value="params.seed" form="view">"#)
        );
        assert!(
            html.contains(r#"id="all-axes" type="submit" form="view" formaction="/experiments/3/compare#parallel-heading" name="axis" value="*""#),
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
        // The pick is the page form's, whichever section's button sends it.
        assert!(picked.contains(
            r#"<input type="checkbox" name="axis" value="params.seed" form="view" checked>"#
        ));
        let one = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b"), ("axis", "params.lr")])),
            &runs,
        );
        assert!(one.contains("Pick two or more columns") && !one.contains(r#"id="parallel""#));
    }

    #[test]
    fn the_runs_are_written_once_for_all_sections() {
        let runs: Vec<Run> = (0..300)
            .map(|i| {
                let lr = format!("{}", 1 + i % 4);
                with_params(
                    &format!("r{i:03}"),
                    &format!("n{i}"),
                    &[("lr", &lr), ("opt", "x")],
                )
            })
            .collect();
        let ids: Vec<String> = runs.iter().map(|r| r.info.run_id.clone()).collect();
        let q = CompareQuery::from_pairs(&pairs(&[("runs", &ids.join(",")), ("diff", "a.txt")]));
        let s: Vec<RunSummaries> = ids.iter().map(|id| summaries(id, 1.0)).collect();
        let html = compare_page(&CompareView {
            experiment: &experiment(),
            query: &q,
            runs: &runs,
            summaries: &s,
            diff: None,
        })
        .into_string();
        // Once in the page's form, once on the charts' grid: not per form, card or dot.
        assert_eq!(html.matches(&ids.join(",")).count(), 2, "{html}");
        assert_eq!(html.matches("<form").count(), 1, "{html}");
        // A run's id: its row, its link, the form and the grid.
        assert_eq!(html.matches("r123").count(), 4);
        // The wide tables stop at TABLE_RUNS columns, and say so.
        let params = &html[html.find(r#"id="params-diff""#).unwrap()..];
        let params = &params[..params.find("</thead>").unwrap()];
        assert_eq!(params.matches("<th>").count(), TABLE_RUNS + 1);
        assert!(html.contains(r#"id="tables-capped""#));
        // Past DIFF_LIST_RUNS the diff names its runs by id, without two lists of 300.
        assert!(!html.contains(r#"<select name="da""#), "{html}");
        assert!(
            html.contains(r#"name="da" form="view" value="r000""#),
            "{html}"
        );
        assert!(html.contains(r#"<circle class="dot c3" "#) && html.contains(r#"data-i="299""#));
    }

    #[test]
    fn the_form_carries_the_settings_of_sections_not_shown() {
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a"),
            ("equal", "hide"),
            ("sx", "params.lr"),
            ("sc", "metrics.loss"),
            ("x", "time"),
            ("plog", "metrics.loss"),
            ("brush", "params.lr:0:0.5"),
        ]));
        let none = Sections {
            charts: false,
            scatter: false,
            axes: false,
            boxes: false,
            diff: false,
        };
        let all = Sections {
            charts: true,
            scatter: true,
            axes: true,
            boxes: true,
            diff: true,
        };
        let names = |shown| -> Vec<&'static str> {
            view_state(&q, shown).into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(
            names(&none),
            ["runs", "equal", "x", "sx", "sc", "plog", "brush"]
        );
        assert_eq!(names(&all), ["runs", "equal", "brush"]);
        assert_eq!(
            q.href("1", true, true),
            "/experiments/1/compare?runs=a&equal=hide&sx=params.lr&sc=metrics.loss\
             &plog=metrics.loss&brush=params.lr%3A0.000%3A0.500&x=time"
        );
    }

    #[test]
    fn the_colour_scale_runs_from_its_low_to_its_high_stop() {
        assert_eq!(ramp(0.0), "#440154");
        assert_eq!(ramp(0.5), "#21918c");
        assert_eq!(ramp(1.0), "#fde725");
        assert_eq!(ramp(7.0), "#fde725");
        assert_eq!(ramp(f64::NAN), "#440154");
        // Between stops, each channel in between.
        assert_eq!(ramp(0.125), "#402a70");
    }

    #[test]
    fn text_colours_go_to_the_most_frequent_values_and_the_rest_is_other() {
        let values: Vec<Value> = (0..12)
            .flat_map(|k| std::iter::repeat_n(Value::Text(format!("v{k:02}")), 12 - k))
            .collect();
        let refs: Vec<&Value> = values.iter().collect();
        let Some(Coloring::Palette { values: own, other }) = Coloring::of(&refs) else {
            panic!("a palette");
        };
        assert!(other);
        assert_eq!(own.len(), PALETTE);
        assert_eq!(own[0], "v00");
        let c = Coloring::of(&refs).unwrap();
        assert_eq!(c.paint(Some(&Value::Text("v01".into()))), Paint::Class(1));
        assert_eq!(
            c.paint(Some(&Value::Text("v11".into()))),
            Paint::Class(PALETTE)
        );
        assert_eq!(c.paint(None), Paint::Fill(NO_COLOR.into()));
        // Ten values fit the palette: no "other".
        let ten: Vec<Value> = (0..10).map(|k| Value::Text(format!("{k}"))).collect();
        let refs: Vec<&Value> = ten.iter().collect();
        assert!(matches!(
            Coloring::of(&refs),
            Some(Coloring::Palette { other: false, .. })
        ));
        assert_eq!(Coloring::of(&[]), None);
    }

    #[test]
    fn the_scatter_is_coloured_by_a_number_or_by_text() {
        let runs = [
            with_params("a", "ra", &[("opt", "adam"), ("lr", "0.1")]),
            with_params("b", "rb", &[("opt", "<b>sgd</b>"), ("lr", "0.2")]),
            with_params("c", "rc", &[("lr", "0.3")]),
        ];
        let by_number = render(
            &CompareQuery::from_pairs(&pairs(&[
                ("runs", "a,b,c"),
                ("sx", "params.lr"),
                ("sy", "metrics.loss"),
                ("sc", "metrics.loss"),
            ])),
            &runs,
        );
        // loss 0.5, 0.25, 1: the scale's middle-ish, its low and its high end.
        assert!(
            by_number.contains(r##"<circle class="dot" fill="#440154""##),
            "{by_number}"
        );
        assert!(by_number.contains(r##"<circle class="dot" fill="#fde725""##));
        assert!(
            by_number.contains(r#"id="scatter-ramp""#)
                && by_number.contains("fill=\"url(#scatter-ramp)\"")
        );
        assert!(by_number.contains(r#"<option value="metrics.loss" selected>"#));
        let by_text = render(
            &CompareQuery::from_pairs(&pairs(&[
                ("runs", "a,b,c"),
                ("sx", "params.lr"),
                ("sy", "metrics.loss"),
                ("sc", "params.opt"),
            ])),
            &runs,
        );
        let legend = &by_text[by_text.find(r#"id="scatter-legend""#).unwrap()..];
        assert!(
            legend.contains(">&lt;b&gt;sgd&lt;/b&gt;</text>"),
            "{legend}"
        );
        assert!(legend.contains(">adam</text>") && legend.contains("no value"));
        // Run c has no opt: the grey of no value.
        assert!(by_text.contains(&format!(r#"<circle class="dot" fill="{NO_COLOR}""#)));
        assert!(
            by_text.contains(r#"<circle class="dot c0" "#)
                && by_text.contains(r#"<circle class="dot c1" "#)
        );
        assert!(!by_text.contains("<b>sgd"));
        // Without a colour column each run keeps its own colour, and there is no legend.
        let plain = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b,c")])),
            &runs,
        );
        assert!(!plain.contains("scatter-legend") && plain.contains(r#"<circle class="dot c2""#));
    }

    #[test]
    fn log_axes_place_positive_values_by_magnitude_and_say_where_the_rest_went() {
        let nums = |xs: &[f64]| -> Vec<Value> { xs.iter().map(|x| Value::Num(*x)).collect() };
        let v = nums(&[0.001, 0.01, 0.1, 1.0]);
        let log = Axis::of(v.iter(), true);
        assert!(log.is_log());
        let pos: Vec<f64> = v.iter().map(|x| log.pos(x)).collect();
        for (p, want) in pos.iter().zip([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]) {
            assert!((p - want).abs() < 1e-12, "{pos:?}");
        }
        let ticks: Vec<String> = log.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(ticks, ["0.001", "0.01", "0.1", "1"]);
        // Not positive: at the foot, below the smallest positive value, with a tick of its own.
        let v = nums(&[-1.0, 0.0, 1.0, 100.0]);
        let log = Axis::of(v.iter(), true);
        assert_eq!(log.pos(&v[0]), 0.0);
        assert_eq!(log.pos(&v[2]), LOG_FOOT);
        assert_eq!(log.pos(&v[3]), 1.0);
        assert_eq!(log.ticks()[0], (0.0, "≤ 0".to_string()));
        // Nothing positive, or text: no log scale.
        assert!(!Axis::of(nums(&[-1.0, 0.0]).iter(), true).is_log());
        let text = [Value::Text("a".into())];
        assert!(Axis::of(text.iter(), true).scale.is_none());
        // Within one decade: the ends and their geometric middle.
        assert_eq!(log_ticks(2.0, 8.0), [2.0, 4.0, 8.0]);
        assert_eq!(log_ticks(1e-20, 1e20).len(), 6);
        assert!(log_ticks(0.0, 1.0).is_empty());
    }

    #[test]
    fn the_parallel_coordinates_take_log_axes_from_the_url() {
        let runs = [
            with_params("a", "ra", &[("lr", "0.001"), ("opt", "x")]),
            with_params("b", "rb", &[("lr", "0.1"), ("opt", "y")]),
            with_params("c", "rc", &[("lr", "0"), ("opt", "z")]),
        ];
        let q = CompareQuery::from_pairs(&pairs(&[
            ("runs", "a,b,c"),
            ("plog", "params.lr"),
            ("plog", "params.opt"),
        ]));
        let html = render(&q, &runs);
        assert!(
            html.contains(r#"<g class="pc-axis" data-col="params.lr" data-log="1">"#),
            "{html}"
        );
        // A text axis has no log scale and is not offered one.
        assert!(html.contains(r#"<g class="pc-axis" data-col="params.opt">"#));
        assert!(!html.contains(r#"name="plog" value="params.opt""#));
        assert!(html.contains(
            r#"<input type="checkbox" name="plog" value="params.lr" form="view" checked>"#
        ));
        assert!(html.contains("params.lr (log)</text>"));
        // lr 0 sits at the foot, and the page says why; 0.001 and 0.1 span the rest.
        assert!(html.contains(r#"data-i="2" data-pos="0.0000,"#), "{html}");
        assert!(html.contains(r#"data-i="0" data-pos="0.0800,"#), "{html}");
        assert!(html.contains(r#"data-i="1" data-pos="1.0000,"#), "{html}");
        assert!(
            html.contains("</span> (1 of 3 runs) cannot go on a log scale"),
            "{html}"
        );
        let linear = render(
            &CompareQuery::from_pairs(&pairs(&[("runs", "a,b,c")])),
            &runs,
        );
        assert!(linear.contains(r#"data-i="1" data-pos="1.0000,"#) && !linear.contains("(log)"));
        assert!(
            linear.contains(r#"data-i="0" data-pos="0.0100,"#),
            "{linear}"
        );
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
        // The diff's fields belong to the page's one form, which carries the other settings
        // and not the diff's a second time.
        assert!(
            html.contains(r#"<input type="text" name="diff" form="view" value="conf/a.yaml""#),
            "{html}"
        );
        let form = &html[html.find(r#"<form id="view""#).unwrap()..];
        let form = &form[..form.find("</form>").unwrap()];
        assert!(
            form.contains(r#"<input type="hidden" name="equal" value="hide">"#),
            "{form}"
        );
        assert!(!form.contains(r#"name="diff""#), "{form}");
        assert!(
            html.contains("−1</span> lines of &lt;b&gt;rb&lt;/b&gt;"),
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

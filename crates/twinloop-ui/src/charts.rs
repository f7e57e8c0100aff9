//! Metric charts: the card markup `chart.js` draws into, the chart settings every chart view
//! keeps in its URL (`?x=step&log=1&smooth=0.6&from=…&to=…`), and the metric page
//! (`/experiments/{e}/runs/{r}/metrics/{key}`), one metric of one run with zoom.
//!
//! A card is a `<figure>` whose data attributes name the runs, key and settings; the script
//! reads them and fetches the downsampled series itself, so the page's HTML stays small however
//! many points a metric has, and without JavaScript the page still shows the metric table.

use maud::{Markup, html};
use twinloop_core::run_columns::MetricSummary;
use twinloop_core::tracking::{Experiment, Run};

use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::runs::run_label;

/// Legend colours `chart.js` and `ui.css` share (`.c0` … `.c9`).
const COLORS: usize = 10;
/// Runs a card's legend names; a chart of 1,000 runs would otherwise repeat 1,000 names per card.
const LEGEND_SHOWN: usize = 20;

/// The x axis a chart plots against, as the series endpoint names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XAxis {
    #[default]
    Step,
    Time,
    Relative,
}

impl XAxis {
    fn parse(s: &str) -> Self {
        match s {
            "time" => XAxis::Time,
            "relative" => XAxis::Relative,
            _ => XAxis::Step,
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

/// Smoothing weights offered; anything else in a URL is rounded to the nearest.
const SMOOTHING: [f64; 5] = [0.0, 0.6, 0.8, 0.9, 0.95];

/// How charts are drawn, from the URL.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChartConfig {
    pub x: XAxis,
    pub log: bool,
    /// The exponential moving average's weight, 0 for none.
    pub smooth: f64,
    /// The zoomed range on the x axis (metric page only).
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl ChartConfig {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let smooth = get("smooth")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite())
            .map_or(0.0, |s| {
                SMOOTHING
                    .into_iter()
                    .min_by(|a, b| (a - s).abs().total_cmp(&(b - s).abs()))
                    .unwrap_or(0.0)
            });
        let (from, to) = match (
            get("from").and_then(|v| v.parse::<i64>().ok()),
            get("to").and_then(|v| v.parse::<i64>().ok()),
        ) {
            (Some(f), Some(t)) if f <= t => (Some(f), Some(t)),
            _ => (None, None),
        };
        ChartConfig {
            x: XAxis::parse(get("x").unwrap_or("")),
            log: get("log") == Some("1"),
            smooth,
            from,
            to,
        }
    }

    /// Appends the settings that differ from the defaults (not the zoom) to a link.
    pub(crate) fn add_to(&self, h: Href) -> Href {
        let h = if self.x == XAxis::Step {
            h
        } else {
            h.q("x", self.x.as_str())
        };
        let h = if self.log { h.q("log", "1") } else { h };
        if self.smooth > 0.0 {
            h.q("smooth", &self.smooth.to_string())
        } else {
            h
        }
    }

    /// The settings as a GET form; `keep` are the page's other query values, carried along.
    pub(crate) fn controls(&self, action: &str, keep: &[(&str, &str)]) -> Markup {
        html! {
            form.bar.chart-controls method="get" action=(action) {
                @for (name, value) in keep {
                    input type="hidden" name=(name) value=(value);
                }
                (self.fields(None))
                button type="submit" { "Apply" }
            }
        }
    }

    /// The settings' fields and button belonging to the page's form `form` (a page of several
    /// sections submits one form, so what they share is written once).
    pub(crate) fn controls_of(&self, form: &str) -> Markup {
        html! {
            div.bar.chart-controls {
                (self.fields(Some(form)))
                button type="submit" form=(form) { "Apply" }
            }
        }
    }

    fn fields(&self, form: Option<&str>) -> Markup {
        html! {
                label {
                    "X axis"
                    select name="x" form=[form] {
                        @for (v, label) in [(XAxis::Step, "Step"), (XAxis::Time, "Time"), (XAxis::Relative, "Relative time")] {
                            option value=(v.as_str()) selected[self.x == v] { (label) }
                        }
                    }
                }
                label {
                    "Y scale"
                    select name="log" form=[form] {
                        option value="0" selected[!self.log] { "Linear" }
                        option value="1" selected[self.log] { "Log" }
                    }
                }
                label {
                    "Smoothing"
                    select name="smooth" form=[form] {
                        @for w in SMOOTHING {
                            option value=(w) selected[self.smooth == w] { @if w == 0.0 { "None" } @else { (w) } }
                        }
                    }
                }
        }
    }
}

/// A run on a chart: its id and the label its legend shows.
pub(crate) struct Line<'a> {
    pub run_id: &'a str,
    pub label: &'a str,
}

/// The runs of a chart as its `data-runs`.
fn run_ids(lines: &[Line]) -> String {
    let ids: Vec<&str> = lines.iter().map(|l| l.run_id).collect();
    ids.join(",")
}

/// A chart card. `title_href` links the title (to the metric page); `zoom` enables drag-zoom.
pub(crate) fn card(
    key: &str,
    lines: &[Line],
    cfg: &ChartConfig,
    title_href: Option<&str>,
    zoom: bool,
) -> Markup {
    card_of(key, lines, cfg, title_href, zoom, Some(&run_ids(lines)))
}

/// A card; `runs` is `None` in a grid, which names the runs once for all its cards (1,000 run
/// ids are 33 KB a card).
fn card_of(
    key: &str,
    lines: &[Line],
    cfg: &ChartConfig,
    title_href: Option<&str>,
    zoom: bool,
    runs: Option<&str>,
) -> Markup {
    html! {
        figure.chart.wide[zoom]
            data-key=(key)
            data-runs=[runs]
            data-x=(cfg.x.as_str())
            data-log=(if cfg.log { "1" } else { "0" })
            data-smooth=(cfg.smooth)
            data-zoom=(if zoom { "1" } else { "0" })
            data-from=[cfg.from.filter(|_| zoom)]
            data-to=[cfg.to.filter(|_| zoom)]
        {
            figcaption {
                @if let Some(h) = title_href { a.mono href=(h) { (key) } } @else { span.mono { (key) } }
            }
            @if lines.len() > 1 {
                ul.legend {
                    @for (i, l) in lines.iter().enumerate().take(LEGEND_SHOWN) {
                        li { span class={ "swatch c" (i % COLORS) } {} (l.label) }
                    }
                    @if lines.len() > LEGEND_SHOWN {
                        li.muted { "and " (lines.len() - LEGEND_SHOWN) " more runs" }
                    }
                }
            }
            div.plot {}
            p.chart-note.muted { "Charts need JavaScript; the table shows last, min and max." }
        }
    }
}

/// A grid of cards, one per key, each over the same runs.
pub(crate) fn grid(
    keys: &[&str],
    lines: &[Line],
    cfg: &ChartConfig,
    title_href: &dyn Fn(&str) -> Option<String>,
) -> Markup {
    html! {
        div.charts data-runs=(run_ids(lines)) {
            @for key in keys {
                (card_of(key, lines, cfg, title_href(key).as_deref(), false, None))
            }
        }
    }
}

pub(crate) fn metric_href(experiment_id: &str, run_id: &str, key: &str) -> String {
    format!(
        "{}/metrics/{}",
        href::run(experiment_id, run_id),
        href::encode(key)
    )
}

pub struct MetricView<'a> {
    pub experiment: &'a Experiment,
    pub run: &'a Run,
    pub key: &'a str,
    /// The run's summary of the key.
    pub summary: &'a MetricSummary,
    pub config: &'a ChartConfig,
}

/// One metric of one run, full width, with drag-zoom that re-queries the zoomed range.
pub fn metric_page(v: &MetricView) -> Markup {
    let e = v.experiment;
    let info = &v.run.info;
    let run_href = href::run(&e.experiment_id, &info.run_id);
    let here = metric_href(&e.experiment_id, &info.run_id, v.key);
    let s = v.summary;
    page(
        &format!("{} · {}", v.key, run_label(v.run)),
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::link(e.name.clone(), href::experiment(&e.experiment_id)),
            Crumb::link(run_label(v.run), run_href.clone()),
            Crumb::here(v.key),
        ],
        html! {
            h1 { span.mono { (v.key) } " " span.muted { "of " a href=(run_href) { (run_label(v.run)) } } }
            (v.config.controls(&here, &[]))
            p.muted {
                "Drag across the chart to zoom (the zoomed range is fetched again, raw once it is small enough); double-click to zoom out. "
                @if v.config.from.is_some() {
                    a href=(v.config.add_to(Href::new(here.clone())).build()) { "Reset zoom" }
                }
            }
            (card(v.key, &[Line { run_id: &info.run_id, label: run_label(v.run) }], v.config, None, true))
            table #metric-summary {
                thead { tr { th { "Last" } th { "Min" } th { "Max" } th { "Count" } th { "Last step" } th { "Last logged" } } }
                tbody {
                    tr {
                        td.num title=(s.last) { (format::value(s.last)) }
                        td.num { @if let Some(x) = s.min { (format::value(x)) } }
                        td.num { @if let Some(x) = s.max { (format::value(x)) } }
                        td.num { (s.count) }
                        td.num { (s.last_step) }
                        td { (format::time(s.last_timestamp)) }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::tests::{experiment, loss, run};

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn config_reads_the_url_and_ignores_nonsense() {
        let c = ChartConfig::from_pairs(&pairs(&[
            ("x", "time"),
            ("log", "1"),
            ("smooth", "0.83"),
            ("from", "10"),
            ("to", "20"),
        ]));
        assert_eq!(c.x, XAxis::Time);
        assert!(c.log);
        assert_eq!(c.smooth, 0.8);
        assert_eq!((c.from, c.to), (Some(10), Some(20)));
        let bad = ChartConfig::from_pairs(&pairs(&[
            ("x", "<script>"),
            ("smooth", "NaN"),
            ("from", "9"),
            ("to", "1"),
        ]));
        assert_eq!(bad, ChartConfig::default());
        let h = c.add_to(Href::new("/m")).build();
        assert_eq!(h, "/m?x=time&log=1&smooth=0.8");
    }

    #[test]
    fn a_card_carries_its_series_in_escaped_attributes() {
        let lines = [
            Line {
                run_id: "r1",
                label: "<script>a</script>",
            },
            Line {
                run_id: "r2",
                label: "b",
            },
        ];
        let html = card(
            "loss\"><script>x</script>",
            &lines,
            &ChartConfig::default(),
            Some("/m"),
            false,
        )
        .into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(r#"data-runs="r1,r2""#), "{html}");
        assert!(html.contains(r#"data-key="loss&quot;&gt;&lt;script&gt;x&lt;/script&gt;""#));
        assert!(html.contains(r#"<span class="swatch c1">"#), "{html}");
        assert!(!html.contains("data-from"), "{html}");
        assert!(!html.contains("style="));
    }

    #[test]
    fn the_metric_page_zooms_and_shows_the_summary() {
        let r = run("r1", "<b>trial</b>", None);
        let cfg = ChartConfig::from_pairs(&pairs(&[("from", "5"), ("to", "50"), ("log", "1")]));
        let summary = loss(0.25, 0.125, 2.5);
        let html = metric_page(&MetricView {
            experiment: &experiment(),
            run: &r,
            key: "loss",
            summary: &summary,
            config: &cfg,
        })
        .into_string();
        assert!(html.contains(r#"data-zoom="1""#), "{html}");
        assert!(html.contains(r#"data-from="5" data-to="50""#), "{html}");
        assert!(html.contains(r#"href="/experiments/3/runs/r1/metrics/loss?log=1">Reset zoom"#));
        assert!(html.contains("&lt;b&gt;trial&lt;/b&gt;"));
        for cell in ["0.25", "0.125", "2.5"] {
            assert!(html.contains(cell), "{cell}");
        }
    }
}

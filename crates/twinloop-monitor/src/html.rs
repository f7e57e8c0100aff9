//! A self-contained HTML report: the dataset verdict on top, then one card per tested column,
//! most drifted first, with reference and current proportions overlaid as inline SVG.
//! No script, no stylesheet or font from the network.

use std::fmt::Write;

use crate::report::{Chart, ColumnDrift, Report};

const W: f64 = 560.0;
const H: f64 = 150.0;
const REF_COLOR: &str = "#4a77b4";
const CUR_COLOR: &str = "#e07b39";

pub fn render(r: &Report) -> String {
    let mut s = String::with_capacity(64 * 1024);
    s.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>twinloop drift report</title><style>");
    s.push_str(
        "body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}\
         .verdict{padding:14px 18px;border-radius:6px;font-size:18px;margin-bottom:16px}\
         .yes{background:#fde2e1;border:1px solid #e5534b}.no{background:#e3f5e1;border:1px solid #46954a}\
         .card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:10px 0;display:inline-block;vertical-align:top;width:590px;margin-right:10px}\
         .drift{border-left:5px solid #e5534b}.ok{border-left:5px solid #46954a}\
         table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}\
         .muted{color:#777}.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}",
    );
    s.push_str("</style></head><body>");
    let _ = write!(
        s,
        "<div class=\"verdict {}\"><b>Dataset drift: {}</b> — {} of {} columns drifted (share {:.3}; dataset drift at ≥ {}). \
         Reference {} rows, current {} rows.</div>",
        if r.dataset_drift { "yes" } else { "no" },
        if r.dataset_drift {
            "detected"
        } else {
            "not detected"
        },
        r.drifted_columns,
        r.n_columns,
        r.share_of_drifted_columns,
        r.drift_share,
        r.reference_rows,
        r.current_rows
    );
    let _ = write!(
        s,
        "<p class=\"key\">Bars show the share of rows per bin or category:<span style=\"background:{REF_COLOR}\"></span>reference\
         <span style=\"background:{CUR_COLOR}\"></span>current</p>"
    );
    if !r.findings.is_empty() {
        s.push_str(
            "<h2>Data quality</h2><table><tr><th>column</th><th>finding</th><th>detail</th></tr>",
        );
        for f in &r.findings {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.column),
                f.kind,
                esc(&f.message)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Columns, most drifted first</h2>");
    for (name, c) in r.ranked() {
        card(&mut s, name, c, r.charts.get(name));
    }
    if !r.skipped.is_empty() {
        s.push_str(
            "<h2>Not tested</h2><table><tr><th>column</th><th>type</th><th>reason</th></tr>",
        );
        for (name, k) in &r.skipped {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                k.kind,
                esc(&k.reason)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    s
}

fn card(s: &mut String, name: &str, c: &ColumnDrift, chart: Option<&Chart>) {
    let test = crate::stats::Test::parse(c.test)
        .map(|t| t.display())
        .unwrap_or(c.test);
    let _ = write!(
        s,
        "<div class=\"card {}\"><b>{}</b> <span class=\"muted\">{}</span><br>{}: <b>{}</b> (threshold {}) — {}",
        if c.drifted { "drift" } else { "ok" },
        esc(name),
        c.kind,
        test,
        fmt_score(c.score),
        c.threshold,
        if c.drifted {
            "<b>drift</b>"
        } else {
            "no drift"
        }
    );
    if let Some(chart) = chart {
        svg(s, chart);
    }
    s.push_str("</div>");
}

fn fmt_score(x: f64) -> String {
    if x.is_nan() {
        "undefined".into()
    } else if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// Overlaid bars: reference as a filled bar, current as a narrower bar on top, so both stay
/// visible whichever is larger.
fn svg(s: &mut String, chart: &Chart) {
    let n = chart.labels.len().max(1);
    let max = chart
        .reference
        .iter()
        .chain(&chart.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let (left, bottom) = (4.0, 30.0);
    let plot_h = H - bottom;
    let bw = (W - left) / n as f64;
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" role=\"img\">"
    );
    for i in 0..n {
        let x = left + i as f64 * bw;
        let (rv, cv) = (
            chart.reference.get(i).copied().unwrap_or(0.0),
            chart.current.get(i).copied().unwrap_or(0.0),
        );
        let rh = rv / max * plot_h;
        let ch = cv / max * plot_h;
        let label = chart.labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            s,
            "<g><title>{}: reference {:.2}%, current {:.2}%</title>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{REF_COLOR}\" fill-opacity=\"0.75\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{CUR_COLOR}\" fill-opacity=\"0.8\"/></g>",
            esc(label),
            100.0 * rv,
            100.0 * cv,
            x + 0.5,
            plot_h - rh,
            (bw - 1.0).max(0.5),
            rh,
            x + bw * 0.25,
            plot_h - ch,
            (bw * 0.5).max(0.5),
            ch
        );
    }
    let _ = write!(
        s,
        "<line x1=\"0\" y1=\"{plot_h}\" x2=\"{W}\" y2=\"{plot_h}\" stroke=\"#999\"/>"
    );
    // Axis labels: the range for numerical charts, a few category names otherwise.
    if let Some(edges) = &chart.edges {
        let (lo, hi) = (edges[0], edges[edges.len() - 1]);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.0}\" font-size=\"11\">{}</text><text x=\"{W}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            plot_h + 14.0,
            fmt_score(lo),
            plot_h + 14.0,
            fmt_score(hi)
        );
    } else if n <= 12 {
        for (i, l) in chart.labels.iter().enumerate() {
            let short: String = l.chars().take(10).collect();
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                left + (i as f64 + 0.5) * bw,
                plot_h + 13.0,
                esc(&short)
            );
        }
    }
    s.push_str("</svg>");
}

fn esc(x: &str) -> String {
    x.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

//! The blessing's human lines. A point comparison shows the relation that holds (`≥` when it
//! passes, `<` when it fails); an interval comparison shows the requirement and whether the
//! interval's bad end met it.

use super::spec::OnNoBaseline;
use super::{Check, CheckKind};
use crate::bootstrap::Interval;

pub(super) fn no_baseline(on_no_baseline: OnNoBaseline) -> String {
    match on_no_baseline {
        OnNoBaseline::Bless => {
            "no baseline: change thresholds not checked (on_no_baseline: bless)".to_owned()
        }
        OnNoBaseline::Reject => "no baseline: not blessed (on_no_baseline: reject)".to_owned(),
    }
}

pub(super) fn line(c: &Check) -> String {
    let mark = if c.passed { '✓' } else { '✗' };
    let relation = relation(c);
    match c.kind {
        CheckKind::Threshold => format!(
            "{} {:.4} {relation} {} {mark}",
            c.metric, c.observed, c.bound
        ),
        CheckKind::MinAbsoluteChange => format!(
            "{} Δ {:+.4}{} {relation} {} {mark}",
            c.metric,
            c.observed,
            interval(c.interval, |x| format!("{x:+.4}")),
            signed(c.bound),
        ),
        CheckKind::MinRelativeChange if c.zero_baseline => format!(
            "{} Δ {:+.4}{} {relation} {:+e} {mark} (the baseline is 0: any improvement passes)",
            c.metric,
            c.observed,
            interval(c.interval, |x| format!("{x:+.4}")),
            c.bound,
        ),
        CheckKind::MinRelativeChange => format!(
            "{} Δ {:+.2}%{} {relation} {}% {mark}",
            c.metric,
            c.observed * 100.0,
            interval(c.interval, |x| format!("{:+.2}%", x * 100.0)),
            trim(c.bound * 100.0, true),
        ),
    }
}

fn relation(c: &Check) -> &'static str {
    match (c.greater_is_better, c.passed || c.interval.is_some()) {
        (true, true) => "≥",
        (true, false) => "<",
        (false, true) => "≤",
        (false, false) => ">",
    }
}

fn interval(i: Option<Interval>, show: impl Fn(f64) -> String) -> String {
    i.map_or_else(String::new, |i| {
        format!(
            " [{}% {}, {}]",
            trim(i.confidence * 100.0, false),
            show(i.low),
            show(i.high)
        )
    })
}

/// A required change with its direction's sign; 0 plain.
fn signed(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        format!("{x:+}")
    }
}

/// At most four decimals, without trailing zeros (5.000000000000001 → "5").
fn trim(x: f64, with_sign: bool) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "0" | "-0" => "0".to_owned(),
        _ if with_sign && x > 0.0 => format!("+{s}"),
        _ => s.to_owned(),
    }
}

//! The compare page's artifact diff: one text file at the same path in two runs, as a line diff
//! in hunks with a few lines of context. The server reads the files (under
//! [`DIFF_MAX_BYTES`] each, nothing larger is read); the diff is computed here, bounded in time
//! and in the lines it shows.

use std::time::Duration;

use maud::{Markup, html};
use similar::{Algorithm, ChangeTag, TextDiff};

/// The largest file the diff reads; a larger one is named with its size and not read.
pub const DIFF_MAX_BYTES: u64 = 512 * 1024;
/// Unchanged lines shown around each change.
const CONTEXT: usize = 3;
/// Diff lines rendered; the rest is counted.
const MAX_SHOWN: usize = 5_000;
/// Past this the diff stops refining and reports a coarser (still correct) answer.
const DIFF_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Same,
    Removed,
    Added,
}

/// One line of a hunk: its number in the first file, in the second, and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffLine {
    pub kind: LineKind,
    pub old: Option<usize>,
    pub new: Option<usize>,
    pub text: String,
}

/// A line diff: its hunks (changes with context), and how many lines each side changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineDiff {
    pub hunks: Vec<Vec<DiffLine>>,
    pub removed: usize,
    pub added: usize,
    /// Lines of hunks left out past [`MAX_SHOWN`].
    pub not_shown: usize,
}

/// The line diff of `old` and `new`.
pub fn line_diff(old: &str, new: &str) -> LineDiff {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(DIFF_TIMEOUT)
        .diff_lines(old, new);
    let mut out = LineDiff::default();
    let mut shown = 0;
    for group in diff.grouped_ops(CONTEXT) {
        let mut hunk = Vec::new();
        for op in &group {
            for change in diff.iter_changes(op) {
                let kind = match change.tag() {
                    ChangeTag::Equal => LineKind::Same,
                    ChangeTag::Delete => LineKind::Removed,
                    ChangeTag::Insert => LineKind::Added,
                };
                match kind {
                    LineKind::Removed => out.removed += 1,
                    LineKind::Added => out.added += 1,
                    LineKind::Same => {}
                }
                if shown >= MAX_SHOWN {
                    out.not_shown += 1;
                    continue;
                }
                shown += 1;
                let text = change.value();
                hunk.push(DiffLine {
                    kind,
                    old: change.old_index().map(|i| i + 1),
                    new: change.new_index().map(|i| i + 1),
                    text: text.strip_suffix('\n').unwrap_or(text).to_string(),
                });
            }
        }
        if !hunk.is_empty() {
            out.hunks.push(hunk);
        }
    }
    out
}

/// What the diff of one path in two runs came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactDiff {
    Lines(LineDiff),
    /// The run (its label) has no file at the path.
    Missing(String),
    /// The run's file is larger than [`DIFF_MAX_BYTES`] (its size): not read.
    TooBig(String, u64),
    /// The run's file is not UTF-8 text.
    NotText(String),
}

/// The diff's result: a table of hunks, or why there is none.
pub(crate) fn render(path: &str, old_label: &str, new_label: &str, d: &ArtifactDiff) -> Markup {
    html! {
        div #artifact-diff {
            @match d {
                ArtifactDiff::Missing(run) => { p.muted { (run) " has no file " span.mono { (path) } "." } }
                ArtifactDiff::TooBig(run, size) => {
                    p.muted { "The file in " (run) " is " (size) " bytes, over the diff's limit of " (DIFF_MAX_BYTES) " bytes; it was not read." }
                }
                ArtifactDiff::NotText(run) => { p.muted { "The file in " (run) " is not UTF-8 text." } }
                ArtifactDiff::Lines(lines) if lines.hunks.is_empty() => {
                    p #diff-summary { "The files are identical." }
                }
                ArtifactDiff::Lines(lines) => {
                    p #diff-summary {
                        span.mono { (path) } ": "
                        span.del-count { "−" (lines.removed) } " lines of " (old_label) ", "
                        span.add-count { "+" (lines.added) } " lines of " (new_label)
                        @if lines.not_shown > 0 { " (" (lines.not_shown) " more lines not shown)" }
                    }
                    div.scroll {
                        table.diff {
                            thead { tr { th { (old_label) } th { (new_label) } th { span.visually-hidden { "Change" } } th { "Line" } } }
                            @for (i, hunk) in lines.hunks.iter().enumerate() {
                                tbody.hunk {
                                    @if i > 0 { tr.gap { td colspan="4" { "…" } } }
                                    @for l in hunk {
                                        @let (class, sign) = match l.kind {
                                            LineKind::Same => ("same", " "),
                                            LineKind::Removed => ("del", "−"),
                                            LineKind::Added => ("add", "+"),
                                        };
                                        tr class=(class) {
                                            td.ln { @if let Some(n) = l.old { (n) } }
                                            td.ln { @if let Some(n) = l.new { (n) } }
                                            td.sign { (sign) }
                                            td.code { (l.text) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_hold_the_changes_and_their_context() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 5\n", "line five\n")
            .replace("line 18\n", "");
        let d = line_diff(&old, &new);
        assert_eq!((d.removed, d.added, d.not_shown), (2, 1, 0));
        assert_eq!(d.hunks.len(), 2, "{d:?}");
        let changed: Vec<&DiffLine> = d.hunks[0]
            .iter()
            .filter(|l| l.kind != LineKind::Same)
            .collect();
        assert_eq!(changed[0].text, "line 5");
        assert_eq!((changed[0].old, changed[0].new), (Some(5), None));
        assert_eq!(changed[1].text, "line five");
        assert_eq!((changed[1].old, changed[1].new), (None, Some(5)));
        // Three lines of context each side.
        assert_eq!(d.hunks[0].first().unwrap().text, "line 2");
        assert_eq!(d.hunks[0].last().unwrap().text, "line 8");
        assert!(line_diff(&old, &old).hunks.is_empty());
    }

    #[test]
    fn a_huge_diff_is_cut_and_counted() {
        let old: String = (0..6_000).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..6_000).map(|i| format!("b{i}\n")).collect();
        let d = line_diff(&old, &new);
        assert_eq!((d.removed, d.added), (6_000, 6_000));
        let shown: usize = d.hunks.iter().map(Vec::len).sum();
        assert_eq!(shown, MAX_SHOWN);
        assert_eq!(d.not_shown, 12_000 - MAX_SHOWN);
    }

    #[test]
    fn lines_render_escaped_with_numbers() {
        let d = ArtifactDiff::Lines(line_diff(
            "keep\n<script>old</script>\n",
            "keep\n<script>new</script>\n",
        ));
        let html = render("a.txt", "run <a>", "run b", &d).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("run <a>"),
            "{html}"
        );
        assert!(
            html.contains(r#"<tr class="del"><td class="ln">2</td><td class="ln"></td><td class="sign">−</td><td class="code">&lt;script&gt;old&lt;/script&gt;</td></tr>"#),
            "{html}"
        );
        assert!(html.contains(r#"<tr class="add"><td class="ln"></td><td class="ln">2</td>"#));
        let big = render(
            "a.bin",
            "x",
            "y",
            &ArtifactDiff::TooBig("y".into(), 9_999_999),
        )
        .into_string();
        assert!(
            big.contains("9999999 bytes") && big.contains("not read"),
            "{big}"
        );
    }
}

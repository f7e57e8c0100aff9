//! A run's artifacts: the tree of its files (on the run page and the artifact page) and the
//! preview of one file (`/experiments/{e}/runs/{r}/artifacts?path=…`). The server reads what a
//! preview needs (the first bytes of a text, the first rows of a table) and never more than a
//! size cap; images load from the download route, HTML in a sandboxed frame whose response
//! carries its own sandboxing CSP, so an artifact's script runs in an opaque origin.

use maud::{Markup, html};
use twinloop_core::tracking::{Experiment, Run};

use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::runs::run_label;

/// Files larger than this are never read for a preview; the page offers the download.
pub const PREVIEW_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Bytes of a text file shown.
pub const TEXT_PREVIEW_BYTES: usize = 64 * 1024;
/// A tree this small shows with every directory open.
const TREE_OPEN_ENTRIES: usize = 40;
/// Rows of a CSV or Parquet file shown.
pub const TABLE_PREVIEW_ROWS: usize = 100;

/// One entry of the tree, its path relative to the run's artifact root.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactNode {
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
    pub children: Vec<ArtifactNode>,
}

/// How a file is previewed, decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewKind {
    Text,
    Csv { delimiter: u8 },
    Parquet,
    Image,
    Html,
    None,
}

impl PreviewKind {
    pub fn of(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == "MLmodel" || name == "MLproject" || name.eq_ignore_ascii_case("LICENSE") {
            return PreviewKind::Text;
        }
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "txt" | "log" | "json" | "jsonl" | "yaml" | "yml" | "md" | "py" | "toml" | "cfg"
            | "ini" | "xml" | "sh" | "r" | "sql" | "js" | "ts" | "rs" | "err" | "out" => {
                PreviewKind::Text
            }
            "csv" => PreviewKind::Csv { delimiter: b',' },
            "tsv" => PreviewKind::Csv { delimiter: b'\t' },
            "parquet" => PreviewKind::Parquet,
            "png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp" | "svg" => PreviewKind::Image,
            "html" | "htm" => PreviewKind::Html,
            _ => PreviewKind::None,
        }
    }
}

/// The first rows of a table, every cell already formatted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TablePreview {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// What the server read for the selected file.
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    /// The first bytes as text; `truncated` when the file is longer.
    Text {
        text: String,
        truncated: bool,
    },
    Table(TablePreview),
    Image,
    Html,
    /// Over [`PREVIEW_MAX_BYTES`]: not read.
    TooBig,
    /// A kind with no preview.
    Unsupported,
    /// The file could not be read as its kind (a broken CSV, say).
    Failed(String),
}

pub(crate) fn page_href(experiment_id: &str, run_id: &str, path: &str) -> String {
    Href::new(format!("{}/artifacts", href::run(experiment_id, run_id)))
        .q("path", path)
        .build()
}

pub fn download_href(run_id: &str, path: &str) -> String {
    Href::new("/get-artifact")
        .q("run_id", run_id)
        .q("path", path)
        .build()
}

/// The sandboxed HTML a preview frame loads.
pub(crate) fn raw_href(experiment_id: &str, run_id: &str, path: &str) -> String {
    Href::new(format!(
        "{}/artifacts/raw",
        href::run(experiment_id, run_id)
    ))
    .q("path", path)
    .build()
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The tree as nested lists; `selected` is marked. `more` says the listing stopped at its cap.
pub(crate) fn tree(
    experiment_id: &str,
    run_id: &str,
    nodes: &[ArtifactNode],
    selected: Option<&str>,
    more: bool,
) -> Markup {
    fn count(nodes: &[ArtifactNode]) -> usize {
        nodes.iter().map(|n| 1 + count(&n.children)).sum()
    }
    fn level(
        e: &str,
        r: &str,
        nodes: &[ArtifactNode],
        selected: Option<&str>,
        open_all: bool,
    ) -> Markup {
        html! {
            ul {
                @for n in nodes {
                    li {
                        @if n.is_dir {
                            details open[open_all || selected.is_some_and(|s| s.starts_with(&format!("{}/", n.path)))] {
                                summary.dir { (name_of(&n.path)) "/" }
                                (level(e, r, &n.children, selected, open_all))
                            }
                        } @else {
                            a.on[selected == Some(n.path.as_str())] href=(page_href(e, r, &n.path)) { (name_of(&n.path)) }
                            @if let Some(b) = n.size { " " span.muted { (size(b)) } }
                        }
                    }
                }
            }
        }
    }
    html! {
        div.artifact-tree #artifact-tree {
            @if nodes.is_empty() {
                p.muted { "No artifacts." }
            } @else {
                (level(experiment_id, run_id, nodes, selected, count(nodes) <= TREE_OPEN_ENTRIES))
            }
            @if more { p.muted { "The listing stops here; more files exist." } }
        }
    }
}

pub struct ArtifactsView<'a> {
    pub experiment: &'a Experiment,
    pub run: &'a Run,
    pub tree: &'a [ArtifactNode],
    pub more: bool,
    /// The selected file, its size and what was read of it.
    pub selected: Option<(&'a str, u64, &'a Preview)>,
}

fn preview(v: &ArtifactsView, path: &str, bytes: u64, p: &Preview) -> Markup {
    let e = &v.experiment.experiment_id;
    let r = &v.run.info.run_id;
    let download = download_href(r, path);
    html! {
        section.preview #artifact-preview {
            h2 { span.mono { (path) } " " span.muted { (size(bytes)) } }
            p { a #download href=(download) download { "Download" } }
            @match p {
                Preview::Text { text, truncated } => {
                    pre.text { (text) }
                    @if *truncated { p.muted { "The first " (size(TEXT_PREVIEW_BYTES as u64)) " are shown." } }
                }
                Preview::Table(t) => {
                    p.muted { "The first " (t.rows.len()) " rows." }
                    div.scroll {
                        table #artifact-table {
                            thead { tr { @for c in &t.columns { th { (c) } } } }
                            tbody { @for row in &t.rows { tr { @for cell in row { td { (cell) } } } } }
                        }
                    }
                }
                Preview::Image => { img.artifact src=(download) alt=(path); }
                Preview::Html => {
                    // No allow-same-origin: the document's scripts run in an opaque origin and
                    // cannot reach this page; the response's own CSP sandboxes it again.
                    iframe.artifact sandbox="allow-scripts" src=(raw_href(e, r, path)) title=(path) {}
                }
                Preview::TooBig => {
                    p.muted #too-big { "Too large to preview (over " (size(PREVIEW_MAX_BYTES)) "); download it instead." }
                }
                Preview::Unsupported => { p.muted { "No preview for this kind of file." } }
                Preview::Failed(message) => { p.error role="alert" { "Could not preview: " (message) } }
            }
        }
    }
}

pub fn artifacts_page(v: &ArtifactsView) -> Markup {
    let e = v.experiment;
    let run = v.run;
    let run_href = href::run(&e.experiment_id, &run.info.run_id);
    page(
        &format!("Artifacts · {}", run_label(run)),
        &[
            Crumb::link("Experiments", "/experiments".into()),
            Crumb::link(e.name.clone(), href::experiment(&e.experiment_id)),
            Crumb::link(run_label(run), run_href),
            Crumb::here("Artifacts"),
        ],
        html! {
            h1 { "Artifacts of " (run_label(run)) }
            div.artifacts {
                (tree(&e.experiment_id, &run.info.run_id, v.tree, v.selected.map(|s| s.0), v.more))
                @if let Some((path, bytes, p)) = v.selected {
                    (preview(v, path, bytes, p))
                } @else {
                    p.muted { "Choose a file to preview it." }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::tests::{experiment, run};

    fn file(path: &str, size: u64) -> ArtifactNode {
        ArtifactNode {
            path: path.into(),
            is_dir: false,
            size: Some(size),
            children: Vec::new(),
        }
    }

    fn render(selected: Option<(&str, u64, &Preview)>) -> String {
        let tree = [
            ArtifactNode {
                path: "model".into(),
                is_dir: true,
                size: None,
                children: vec![file("model/MLmodel", 300)],
            },
            file("<script>x</script>.txt", 2048),
        ];
        artifacts_page(&ArtifactsView {
            experiment: &experiment(),
            run: &run("r1", "trial", None),
            tree: &tree,
            more: false,
            selected,
        })
        .into_string()
    }

    #[test]
    fn kinds_follow_the_name() {
        assert_eq!(PreviewKind::of("model/MLmodel"), PreviewKind::Text);
        assert_eq!(PreviewKind::of("a/b.YAML"), PreviewKind::Text);
        assert_eq!(
            PreviewKind::of("d.tsv"),
            PreviewKind::Csv { delimiter: b'\t' }
        );
        assert_eq!(PreviewKind::of("d.parquet"), PreviewKind::Parquet);
        assert_eq!(PreviewKind::of("p.PNG"), PreviewKind::Image);
        assert_eq!(PreviewKind::of("r.html"), PreviewKind::Html);
        assert_eq!(PreviewKind::of("w.bin"), PreviewKind::None);
        assert_eq!(size(2048), "2.0 KB");
        assert_eq!(size(5), "5 B");
    }

    #[test]
    fn the_tree_links_files_and_opens_the_selected_directory() {
        let text = Preview::Text {
            text: "flavors:\n  <script>alert(1)</script>".into(),
            truncated: true,
        };
        let html = render(Some(("model/MLmodel", 300, &text)));
        assert!(
            html.contains(r#"<details open><summary class="dir">model/</summary>"#),
            "{html}"
        );
        assert!(html.contains(
            r#"<a class="on" href="/experiments/3/runs/r1/artifacts?path=model%2FMLmodel">MLmodel</a>"#
        ));
        assert!(html.contains(r#"href="/get-artifact?run_id=r1&amp;path=model%2FMLmodel""#));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert") && !html.contains("<script>x"));
        assert!(html.contains("The first 64.0 KB are shown."));
    }

    #[test]
    fn tables_images_html_and_big_files() {
        let table = Preview::Table(TablePreview {
            columns: vec!["a".into(), "<b>".into()],
            rows: vec![vec!["1".into(), "<i>x</i>".into()]],
        });
        let html = render(Some(("d.csv", 10, &table)));
        assert!(
            html.contains("<th>&lt;b&gt;</th>") && html.contains("<td>&lt;i&gt;x&lt;/i&gt;</td>")
        );
        let html = render(Some(("p.png", 10, &Preview::Image)));
        assert!(
            html.contains(r#"<img class="artifact" src="/get-artifact?run_id=r1&amp;path=p.png""#)
        );
        let html = render(Some(("r.html", 10, &Preview::Html)));
        assert!(
            html.contains(r#"<iframe class="artifact" sandbox="allow-scripts" src="/experiments/3/runs/r1/artifacts/raw?path=r.html""#),
            "{html}"
        );
        assert!(!html.contains("allow-same-origin"));
        let html = render(Some(("big.csv", 300 << 20, &Preview::TooBig)));
        assert!(
            html.contains("id=\"too-big\"") && html.contains("300.0 MB"),
            "{html}"
        );
        assert!(!html.contains("<img") && !html.contains("<iframe"));
    }
}

//! A run's artifacts in the UI: the tree (listed level by level up to a cap) and what a preview
//! needs of one file, read from the artifact store and never beyond `twinloop-ui`'s limits: the
//! first bytes of a text, the first rows of a CSV (every column as text, so a late odd value
//! cannot fail the read) or a Parquet file (read only when under the size cap).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::tracking::Run;
use twinloop_core::{Error, ErrorKind, Result};
use twinloop_ui::{
    ArtifactDiff, ArtifactNode, ArtifactsView, DIFF_MAX_BYTES, PREVIEW_MAX_BYTES, Preview,
    PreviewKind, TABLE_PREVIEW_ROWS, TEXT_PREVIEW_BYTES, TablePreview,
};

use super::Timing;
use super::pages::{pairs, run_in};
use crate::AppState;

/// Entries the tree lists before it stops, and how deep it goes.
const TREE_MAX_ENTRIES: usize = 500;
const TREE_MAX_DEPTH: usize = 8;
/// Bytes of a CSV read to find its first rows.
const CSV_PREVIEW_BYTES: usize = 1024 * 1024;

/// The tree under `root` (a run's artifact location), and whether it stopped at the cap.
pub(super) async fn tree(store: &ArtifactStore, root: &str) -> Result<(Vec<ArtifactNode>, bool)> {
    let mut budget = TREE_MAX_ENTRIES;
    let mut more = false;
    let nodes = level(store, root, "", 0, &mut budget, &mut more).await?;
    Ok((nodes, more))
}

async fn level(
    store: &ArtifactStore,
    root: &str,
    dir: &str,
    depth: usize,
    budget: &mut usize,
    more: &mut bool,
) -> Result<Vec<ArtifactNode>> {
    let at = ArtifactPath::in_location(root, &ArtifactPath::parse(dir)?)?;
    let mut out = Vec::new();
    for entry in store.list(&at).await? {
        if *budget == 0 {
            *more = true;
            break;
        }
        *budget -= 1;
        let path = if dir.is_empty() {
            entry.path.clone()
        } else {
            format!("{dir}/{}", entry.path)
        };
        let children = if entry.is_dir && depth < TREE_MAX_DEPTH {
            Box::pin(level(store, root, &path, depth + 1, budget, more)).await?
        } else {
            Vec::new()
        };
        out.push(ArtifactNode {
            path,
            is_dir: entry.is_dir,
            size: entry.size,
            children,
        });
    }
    Ok(out)
}

/// Up to `limit` bytes of the file at `at`, and whether it holds more.
pub(super) async fn head(
    store: &ArtifactStore,
    at: &ArtifactPath,
    limit: usize,
) -> Result<(Vec<u8>, bool)> {
    let mut file = store.get(at).await?;
    let mut out = Vec::new();
    while let Some(chunk) = file.stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > limit {
            out.truncate(limit);
            return Ok((out, true));
        }
    }
    Ok((out, false))
}

/// The line diff of the text file at `path` in runs `a` and `b`. Each file is opened for its
/// size first; one over [`DIFF_MAX_BYTES`] is not read.
pub(super) async fn diff(
    store: &ArtifactStore,
    a: &Run,
    b: &Run,
    path: &str,
) -> Result<ArtifactDiff> {
    let rel = ArtifactPath::parse(path)?;
    let mut texts = Vec::with_capacity(2);
    for run in [a, b] {
        let label = if run.info.run_name.is_empty() {
            run.info.run_id.clone()
        } else {
            run.info.run_name.clone()
        };
        let at = ArtifactPath::in_location(&run.info.artifact_uri, &rel)?;
        let mut file = match store.get(&at).await {
            Ok(file) => file,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(ArtifactDiff::Missing(label)),
            Err(e) => return Err(e),
        };
        if file.size > DIFF_MAX_BYTES {
            return Ok(ArtifactDiff::TooBig(label, file.size));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = file.stream.next().await {
            bytes.extend_from_slice(&chunk?);
            // The size was read before the body: a file that grew since stops here.
            if bytes.len() as u64 > DIFF_MAX_BYTES {
                return Ok(ArtifactDiff::TooBig(label, bytes.len() as u64));
            }
        }
        match String::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => texts.push(text),
            _ => return Ok(ArtifactDiff::NotText(label)),
        }
    }
    Ok(ArtifactDiff::Lines(twinloop_ui::line_diff(
        &texts[0], &texts[1],
    )))
}

fn formatted(batch: &RecordBatch) -> std::result::Result<TablePreview, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = (0..batch.num_rows().min(TABLE_PREVIEW_ROWS))
        .map(|i| formatters.iter().map(|f| f.value(i).to_string()).collect())
        .collect();
    Ok(TablePreview {
        columns: batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        rows,
    })
}

fn csv_rows(
    bytes: &[u8],
    truncated: bool,
    delimiter: u8,
) -> std::result::Result<TablePreview, String> {
    // A cut file may end mid-row: keep whole lines only.
    let bytes = match (truncated, bytes.iter().rposition(|b| *b == b'\n')) {
        (true, Some(end)) => &bytes[..=end],
        _ => bytes,
    };
    let format = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    let (inferred, _) = format
        .infer_schema(bytes, Some(1))
        .map_err(|e| e.to_string())?;
    let schema = Arc::new(Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let mut reader = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(TABLE_PREVIEW_ROWS)
        .build(bytes)
        .map_err(|e| e.to_string())?;
    match reader.next() {
        Some(batch) => formatted(&batch.map_err(|e| e.to_string())?).map_err(|e| e.to_string()),
        None => Ok(TablePreview {
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            rows: Vec::new(),
        }),
    }
}

fn parquet_rows(bytes: Bytes) -> std::result::Result<TablePreview, String> {
    use twinloop_monitor::parquet_pages::{catching_panics, checked};
    catching_panics(
        || {
            let bytes = checked(bytes).map_err(|e| format!("invalid Parquet page: {e}"))?;
            let mut reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(|e| e.to_string())?
                .with_batch_size(TABLE_PREVIEW_ROWS)
                .with_limit(TABLE_PREVIEW_ROWS)
                .build()
                .map_err(|e| e.to_string())?;
            match reader.next() {
                Some(batch) => {
                    formatted(&batch.map_err(|e| e.to_string())?).map_err(|e| e.to_string())
                }
                None => Ok(TablePreview::default()),
            }
        },
        |what| format!("malformed Parquet file: {what}"),
    )
}

/// What the preview of the file at `at` (`size` bytes) shows.
async fn preview(
    store: &ArtifactStore,
    at: &ArtifactPath,
    path: &str,
    size: u64,
) -> Result<Preview> {
    let kind = PreviewKind::of(path);
    if matches!(kind, PreviewKind::None) {
        return Ok(Preview::Unsupported);
    }
    if size > PREVIEW_MAX_BYTES {
        return Ok(Preview::TooBig);
    }
    Ok(match kind {
        PreviewKind::Text => {
            let (bytes, truncated) = head(store, at, TEXT_PREVIEW_BYTES).await?;
            Preview::Text {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                truncated,
            }
        }
        PreviewKind::Csv { delimiter } => {
            let (bytes, truncated) = head(store, at, CSV_PREVIEW_BYTES).await?;
            match tokio::task::spawn_blocking(move || csv_rows(&bytes, truncated, delimiter)).await
            {
                Ok(Ok(t)) => Preview::Table(t),
                Ok(Err(message)) => Preview::Failed(message),
                Err(e) => return Err(Error::internal_from("CSV preview", e)),
            }
        }
        PreviewKind::Parquet => {
            let (bytes, _) = head(store, at, PREVIEW_MAX_BYTES as usize).await?;
            match tokio::task::spawn_blocking(move || parquet_rows(Bytes::from(bytes))).await {
                Ok(Ok(t)) => Preview::Table(t),
                Ok(Err(message)) => Preview::Failed(message),
                Err(e) => return Err(Error::internal_from("Parquet preview", e)),
            }
        }
        PreviewKind::Image => Preview::Image,
        PreviewKind::Html => Preview::Html,
        PreviewKind::None => Preview::Unsupported,
    })
}

fn path_param(raw: Option<String>) -> String {
    pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// `/experiments/{e}/runs/{r}/artifacts?path=…`: the tree and one file's preview.
pub(super) async fn page(
    State(s): State<Arc<AppState>>,
    Path((id, run_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    let path = path_param(raw);
    match artifacts_page(&s, &id, &run_id, &path, &mut t).await {
        Ok(response) => response,
        Err(e) => t.failed(&e),
    }
}

async fn artifacts_page(
    s: &AppState,
    id: &str,
    run_id: &str,
    path: &str,
    t: &mut Timing,
) -> Result<Response> {
    let (experiment, run) = run_in(s, id, run_id).await?;
    let root = &run.info.artifact_uri;
    let (nodes, more) = tree(&s.artifacts, root).await?;
    let selected = if path.is_empty() {
        None
    } else {
        let at = ArtifactPath::in_location(root, &ArtifactPath::parse(path)?)?;
        // Opening the file only gives its size; nothing is read beyond what the kind needs.
        let size = s.artifacts.get(&at).await?.size;
        Some((size, preview(&s.artifacts, &at, path, size).await?))
    };
    t.lap("store");
    let page = twinloop_ui::artifacts_page(&ArtifactsView {
        experiment: &experiment,
        run: &run,
        tree: &nodes,
        more,
        selected: selected.as_ref().map(|(size, p)| (path, *size, p)),
    });
    t.lap("render");
    Ok(t.page(StatusCode::OK, page))
}

/// Sandboxes a document even when opened on its own: scripts run in an opaque origin, nothing
/// is fetched from anywhere, so an artifact can neither read this origin nor send data out.
const RAW_CSP: &str = "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src data:; font-src data:";

/// `/experiments/{e}/runs/{r}/artifacts/raw?path=…`: an HTML artifact for the preview frame.
pub(super) async fn raw(
    State(s): State<Arc<AppState>>,
    Path((id, run_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut t = Timing::start();
    let path = path_param(raw);
    let read = async {
        let (_, run) = run_in(&s, &id, &run_id).await?;
        if PreviewKind::of(&path) != PreviewKind::Html {
            return Err(Error::not_found(format!(
                "'{path}' is not an HTML artifact."
            )));
        }
        let at = ArtifactPath::in_location(&run.info.artifact_uri, &ArtifactPath::parse(&path)?)?;
        let (bytes, truncated) = head(&s.artifacts, &at, PREVIEW_MAX_BYTES as usize).await?;
        if truncated {
            return Err(Error::invalid("Too large to preview."));
        }
        Ok(bytes)
    };
    let bytes = match read.await {
        Ok(bytes) => bytes,
        Err(e) => return t.failed(&e),
    };
    t.lap("store");
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(RAW_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    t.set_header(h);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_previews_read_every_column_as_text_and_stop_at_whole_lines() {
        let t = csv_rows(b"a,b\n1,x\n2.5,<b>\n3,cut-her", true, b',').unwrap();
        assert_eq!(t.columns, ["a", "b"]);
        assert_eq!(t.rows, [["1", "x"], ["2.5", "<b>"]]);
        let many: String = std::iter::once("n\n".to_string())
            .chain((0..250).map(|i| format!("{i}\n")))
            .collect();
        let t = csv_rows(many.as_bytes(), false, b',').unwrap();
        assert_eq!(t.rows.len(), TABLE_PREVIEW_ROWS);
        assert!(csv_rows(b"a,b\n1,2,3\n", false, b',').is_err());
        let tsv = csv_rows(b"a\tb\n1\t2\n", false, b'\t').unwrap();
        assert_eq!(tsv.rows, [["1", "2"]]);
    }

    #[test]
    fn parquet_previews_the_first_rows() {
        use arrow::array::{Int64Array, StringArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let ids: Vec<i64> = (0..300).collect();
        let names: Vec<Option<String>> = (0..300)
            .map(|i| (i % 2 == 0).then(|| format!("v{i}")))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let t = parquet_rows(Bytes::from(buf)).unwrap();
        assert_eq!(t.columns, ["id", "s"]);
        assert_eq!(t.rows.len(), TABLE_PREVIEW_ROWS);
        assert_eq!(t.rows[0], ["0", "v0"]);
        assert_eq!(t.rows[1], ["1", ""]);
        assert!(parquet_rows(Bytes::from_static(b"not parquet")).is_err());
    }

    /// A well-formed file carrying the Arrow schema (`ARROW:schema`) the drift_parquet fuzz
    /// run found: it declares a type arrow-ipc has no name for, and arrow-ipc panics.
    fn with_hostile_arrow_schema() -> Bytes {
        use arrow::array::Int64Array;
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_writer::ArrowWriterOptions;
        use parquet::file::metadata::KeyValue;
        use parquet::file::properties::WriterProperties;
        const FOUND: &str = "/////+gAAAAQAAAAAAAKAAwABgAFAAgACgAAAAABBAAMAAAACAAIAAAABAAIAAAABAAAAAMAAAB8AAAAPAAAAAQAAACg////AAABAhAAAAAcAAAABAAAAAAAAAABAAAAZAAAAAgADAAIAAcACAAAAAAAAAEIAAAA0P///wAAAQYQAAAAHAAAAAQAAAAAAAAABAAAAGZsYWcAAAAABAAEAAQAAAAQABQCAAAGAAcADAAAABAAEAAAAAAAAQoQAAAAHAAAAAQAAAAAAAAAAQAAAHQAAAAIAAwABgAIAAgAAAAAAAIABAAAAAMAAABVVEMA";
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let properties = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "ARROW:schema".into(),
                FOUND.to_string(),
            )]))
            .build();
        let options = ArrowWriterOptions::new()
            .with_properties(properties)
            .with_skip_arrow_metadata(true);
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new_with_options(&mut buf, schema, options).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(buf)
    }

    #[test]
    fn a_parquet_file_the_parquet_crate_panics_on_is_a_failed_preview() {
        let negative_offset = Bytes::from_static(include_bytes!(
            "../../../../fuzz/regressions/drift_parquet/negative-column-offset.parquet"
        ));
        for hostile in [negative_offset, with_hostile_arrow_schema()] {
            let message = parquet_rows(hostile).unwrap_err();
            assert!(message.starts_with("malformed Parquet file: "), "{message}");
        }
    }
}

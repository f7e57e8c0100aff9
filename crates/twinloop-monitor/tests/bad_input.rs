//! Bad input gives a clear error or a documented finding, never a panic.

use std::path::PathBuf;

use twinloop_monitor::{Options, io::read_table, run_drift};

fn csv(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn rows(header: &str, f: impl Fn(usize) -> String, n: usize) -> String {
    let mut s = format!("{header}\n");
    for i in 0..n {
        s.push_str(&f(i));
        s.push('\n');
    }
    s
}

fn kinds(r: &twinloop_monitor::Report, col: &str) -> Vec<&'static str> {
    r.findings
        .iter()
        .filter(|f| f.column == col)
        .map(|f| f.kind)
        .collect()
}

#[test]
fn mismatched_columns_are_findings_and_no_shared_column_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let r = csv(&d, "r.csv", &rows("a,b", |i| format!("{i},{}", i % 3), 50));
    let c = csv(&d, "c.csv", &rows("a,z", |i| format!("{i},{}", i % 3), 50));
    let report = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&c).unwrap(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(kinds(&report, "b"), ["missing_column"]);
    assert_eq!(kinds(&report, "z"), ["missing_column"]);
    assert!(report.columns.contains_key("a"));
    let c2 = csv(&d, "c2.csv", &rows("x,y", |i| format!("{i},{i}"), 5));
    let err = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&c2).unwrap(),
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("share no column"), "{err}");
}

#[test]
fn a_missing_file_names_it_and_keeps_the_io_error_as_the_source() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("gone.csv");
    let err = read_table(&missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: ", missing.display())),
        "{err}"
    );
    let io = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
}

#[test]
fn a_parquet_file_the_reader_asserts_on_is_a_read_error() {
    // fuzz/regressions/drift_parquet: a column chunk whose offset is negative.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/drift_parquet/negative-column-offset.parquet");
    let err = read_table(&path).unwrap_err();
    assert!(
        err.to_string().contains("negative-column-offset.parquet"),
        "{err}"
    );
}

#[test]
fn a_page_declaring_more_bytes_than_its_column_chunk_is_refused_before_it_is_decoded() {
    // fuzz/regressions/drift_parquet, found by libFuzzer: 1 KB whose dictionary page header
    // declares about 900 MB uncompressed (as an overlong integer, its compressed size as a
    // bool), which the parquet crate reserved before decompressing. The walk refuses the bool.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/drift_parquet/page-declares-900mb.parquet");
    let err = read_table(&path).unwrap_err().to_string();
    assert!(err.contains("invalid Parquet page: column \"c\""), "{err}");
}

#[test]
fn empty_files_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let empty = csv(&d, "e.csv", "");
    assert!(
        read_table(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty file")
    );
    let header_only = csv(&d, "h.csv", "a,b\n");
    let r = csv(&d, "r.csv", &rows("a,b", |i| format!("{i},{i}"), 10));
    let err = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&header_only).unwrap(),
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no rows"), "{err}");
    let unknown = csv(&d, "x.txt", "a\n1\n");
    assert!(
        read_table(&unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown file type")
    );
}

#[test]
fn all_null_and_infinite_only_columns_are_findings() {
    let d = tempfile::tempdir().unwrap();
    let r = csv(
        &d,
        "r.csv",
        &rows("a,n,inf", |i| format!("{}.5,{}.5,{}.5", i, i, i), 40),
    );
    let c = csv(
        &d,
        "c.csv",
        &rows(
            "a,n,inf",
            |i| format!("{}.5,,{}", i, if i % 2 == 0 { "inf" } else { "-inf" }),
            40,
        ),
    );
    let report = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&c).unwrap(),
        &Options::default(),
    )
    .unwrap();
    assert!(kinds(&report, "n").contains(&"empty_column"));
    assert!(report.skipped.contains_key("n"));
    assert!(kinds(&report, "inf").contains(&"infinite_values"));
    assert!(kinds(&report, "inf").contains(&"empty_column"));
    assert!(report.columns.contains_key("a"));
}

#[test]
fn mixed_types_are_a_type_mismatch() {
    let d = tempfile::tempdir().unwrap();
    let r = csv(&d, "r.csv", &rows("a,b", |i| format!("{i}.5,{i}"), 30));
    let c = csv(&d, "c.csv", &rows("a,b", |i| format!("x{i},{i}"), 30));
    let report = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&c).unwrap(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(kinds(&report, "a"), ["type_mismatch"]);
    assert!(report.skipped.contains_key("a"));
}

#[test]
fn huge_cardinality_and_text_columns() {
    let d = tempfile::tempdir().unwrap();
    // Every value distinct: Evidently calls this text and tests it with a classifier; we skip.
    let r = csv(
        &d,
        "r.csv",
        &rows("id,cat", |i| format!("id{i},k{}", i % 12_000), 30_000),
    );
    let c = csv(
        &d,
        "c.csv",
        &rows(
            "id,cat",
            |i| format!("id{},k{}", i + 7, (i + 3) % 12_001),
            30_000,
        ),
    );
    let report = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&c).unwrap(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(report.skipped["id"].kind, "text");
    assert!(kinds(&report, "cat").contains(&"high_cardinality"));
    assert!(kinds(&report, "cat").contains(&"unseen_categories"));
    assert_eq!(report.columns["cat"].test, "jensenshannon");
}

#[test]
fn html_is_self_contained() {
    let d = tempfile::tempdir().unwrap();
    let r = csv(
        &d,
        "r.csv",
        &rows(
            "a,b",
            |i| format!("{}.25,{}", i, ["x", "y", "z"][i % 3]),
            200,
        ),
    );
    let c = csv(
        &d,
        "c.csv",
        &rows(
            "a,b",
            |i| format!("{}.25,{}", i + 50, ["x", "y", "w"][i % 3]),
            200,
        ),
    );
    let report = run_drift(
        &read_table(&r).unwrap(),
        &read_table(&c).unwrap(),
        &Options::default(),
    )
    .unwrap();
    let html = twinloop_monitor::html::render(&report);
    assert!(html.contains("<svg"));
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(!html.contains("<script"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    for key in [
        "dataset_drift",
        "drift_share",
        "drifted_columns",
        "n_columns",
        "columns",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(json["columns"]["a"]["type"], "num");
    assert_eq!(json["columns"]["b"]["type"], "cat");
}

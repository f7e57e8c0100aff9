//! Files a user hands over: feature repository and pipeline YAML, and the datasets the drift
//! engine reads.

use std::io::Write;
use std::path::Path;

use twinloop_features::repo::FeatureRepo;
use twinloop_monitor::io::read_table;
use twinloop_monitor::{Options, run_drift};

/// A feature repository: the text before the first NUL byte is `twinloop.yaml`, the rest
/// `features.yaml`. Nothing is read from the directory named.
pub fn feature_repo(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (config, definitions) = text.split_once('\0').unwrap_or((text, ""));
    let _ = FeatureRepo::from_texts(
        Path::new("/nonexistent/repo"),
        &[
            ("twinloop.yaml".to_string(), config.to_string()),
            ("features.yaml".to_string(), definitions.to_string()),
        ],
    );
}

/// A pipeline file.
pub fn pipeline_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twinloop_pipelines::spec::parse("pipeline.yaml", text);
    }
}

/// Reads `data` as a dataset file of type `suffix`, and compares it with itself: the engine
/// must type, test and report any table the reader accepts.
fn drift(data: &[u8], suffix: &str) {
    let mut file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("a temporary file");
    file.write_all(data).expect("the input written");
    let Ok(table) = read_table(file.path()) else {
        return;
    };
    for (name, column) in &table.columns {
        assert_eq!(column.len(), table.rows, "column {name:?}");
    }
    let options = Options {
        threads: 1,
        ..Options::default()
    };
    let _ = run_drift(&table, &table, &options);
}

/// A reference or current dataset as CSV.
pub fn drift_csv(data: &[u8]) {
    drift(data, ".csv");
}

/// A reference or current dataset as Parquet.
pub fn drift_parquet(data: &[u8]) {
    drift(data, ".parquet");
}

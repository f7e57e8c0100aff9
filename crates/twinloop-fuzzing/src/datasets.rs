//! The datasets the drift engine reads: a reference or current file a user hands over.

use std::io::Write;

use twinloop_monitor::io::{ReadLimits, read_table_within};
use twinloop_monitor::{Options, run_drift};

/// A tighter budget than the default 4 GiB, so that a file expanding to the limit is refused
/// inside libFuzzer's `-rss_limit_mb=512` (the drift run holds a few copies of the table).
const FUZZ_LIMITS: ReadLimits = ReadLimits {
    max_bytes: 32 << 20,
};

/// Reads `data` as a dataset file of type `suffix`, and compares it with itself: the engine
/// must type, test and report any table the reader accepts.
fn drift(data: &[u8], suffix: &str) {
    let mut file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("a temporary file");
    file.write_all(data).expect("the input written");
    let Ok(table) = read_table_within(file.path(), FUZZ_LIMITS) else {
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

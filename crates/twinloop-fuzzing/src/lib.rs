//! Fuzz targets: one `pub fn(&[u8])` per parser that takes untrusted bytes. Each returns
//! normally on any input and panics only when its oracle finds a bug, so the same functions
//! serve libFuzzer (`fuzz/`, nightly) and the stable replay of the committed corpora and
//! regressions with a bounded property run (`tests/fuzz_replay.rs`, in CI). The oracles are
//! security.md §3.2's: a re-parse of what was printed, paths that stay under their root, tensor
//! sizes that match the bytes received and never exceed them, typed values that read back.

#[cfg(feature = "datasets")]
mod datasets;
#[cfg(feature = "heavy")]
mod files;
#[cfg(feature = "protocols")]
mod paths;
#[cfg(feature = "protocols")]
mod search;
#[cfg(feature = "heavy")]
mod server;
#[cfg(feature = "protocols")]
mod v2;

#[cfg(feature = "datasets")]
pub use datasets::{drift_csv, drift_parquet};
#[cfg(feature = "heavy")]
pub use files::{feature_repo, pipeline_yaml};
#[cfg(feature = "protocols")]
pub use paths::{artifact_path, location};
#[cfg(feature = "protocols")]
pub use search::{filter, order_by, page_token};
#[cfg(feature = "heavy")]
pub use server::{feast_online, feast_push, mlflow_json};
#[cfg(feature = "protocols")]
pub use v2::{grpc_infer, native_json, rest_binary, rest_json};

/// The first byte chooses among variants of a target (which request type, which mode); the
/// rest is the input. Empty input has nothing to choose with.
#[cfg(feature = "protocols")]
fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

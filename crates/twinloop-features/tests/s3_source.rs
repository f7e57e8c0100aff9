//! A source on S3 (a directory of Parquet files), against the local S3-compatible server named
//! by `TWINLOOP_TEST_S3_ENDPOINT` (the test scripts start moto). Skipped without it, unless
//! `TWINLOOP_REQUIRE_ALL_BACKENDS=1`.

#[path = "../../twinloop-artifacts/tests/support/moto.rs"]
mod moto;
mod support;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use support::*;
use twinloop_features::offline::{HistoricalRequest, get_historical};
use twinloop_features::progress::Progress;

const SECOND: i64 = 1_000_000;
const T0: i64 = 1_704_067_200 * SECOND;

#[tokio::test]
async fn training_sets_read_sources_from_s3() {
    let Some(bucket) = moto::test_bucket("tl-features").await else {
        return;
    };
    // Files are put where the source reads them, through the client the source uses.
    let s3 = twinloop_artifacts::s3_bucket(&bucket).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let row = |key, ts, value| FeatureRow {
        key,
        ts,
        created: ts,
        value,
    };
    for (name, rows) in [
        ("a.parquet", vec![row(1, T0, 1.0), row(2, T0, 5.0)]),
        ("b.parquet", vec![row(1, T0 + 10 * SECOND, 2.0)]),
    ] {
        let local = dir.path().join(name);
        write_features(&local, &rows);
        let bytes = std::fs::read(&local).unwrap();
        s3.put(&ObjectPath::from(format!("stats/{name}")), bytes.into())
            .await
            .unwrap();
    }
    let repo = repo(
        dir.path(),
        "",
        &format!(
            "entities:
  - {{name: driver, join_keys: [driver_id]}}
sources:
  - {{name: stats, path: \"s3://{bucket}/stats/\", timestamp_field: event_timestamp, created_timestamp_field: created}}
feature_views:
  - name: stats_view
    entities: [driver]
    source: stats
    features:
      - {{name: value, dtype: float64}}
"
        ),
    );
    let entities = dir.path().join("e.parquet");
    write_entities(
        &entities,
        &[
            (Some(1), T0 + 5 * SECOND),
            (Some(1), T0 + 20 * SECOND),
            (Some(2), T0),
            (Some(3), T0),
        ],
    );
    let request = HistoricalRequest {
        entities: entities.clone(),
        features: repo.resolve_refs(&["stats_view:value".into()]).unwrap(),
        full_feature_names: false,
        timestamp_column: None,
        output: dir.path().join("out.parquet"),
        memory_limit: 1 << 30,
        progress: Progress::none(),
    };
    get_historical(&repo, &request).await.unwrap();
    let batch = read_parquet(&request.output);
    assert_eq!(
        f64_column(&batch, "value"),
        [Some(1.0), Some(2.0), Some(5.0), None]
    );
}

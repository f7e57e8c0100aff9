//! Point-in-time join rules (issue: every input row once, in input order; the latest feature
//! row at or before the entity time and within the TTL, both bounds inclusive; ties to the
//! greatest created time; nulls when nothing qualifies), checked on small hand-made cases and
//! against a brute-force oracle on random data, in memory and spilling to disk.

use std::path::Path;

use rand::{Rng, SeedableRng};
use twinloop_features::offline::{HistoricalRequest, get_historical};
use twinloop_features::progress::Progress;
use twinloop_features::repo::FeatureRepo;

use crate::support::*;

const SECOND: i64 = 1_000_000;
const T0: i64 = 1_704_067_200 * SECOND; // 2024-01-01T00:00:00Z

fn defs(ttl: &str, source_path: &str) -> String {
    format!(
        "entities:
  - {{name: driver, join_keys: [driver_id]}}
sources:
  - name: stats
    path: {source_path}
    timestamp_field: event_timestamp
    created_timestamp_field: created
feature_views:
  - name: stats_view
    entities: [driver]
    source: stats
    ttl: {ttl}
    features:
      - {{name: value, dtype: float64}}
"
    )
}

fn request(repo: &FeatureRepo, entities: &Path, refs: &[&str]) -> HistoricalRequest {
    let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
    HistoricalRequest {
        entities: entities.to_path_buf(),
        features: repo.resolve_refs(&refs).unwrap(),
        full_feature_names: false,
        timestamp_column: None,
        output: entities.with_file_name("out.parquet"),
        memory_limit: 1 << 30,
        progress: Progress::none(),
    }
}

async fn join(repo: &FeatureRepo, entities: &Path, memory_limit: usize) -> Vec<Option<f64>> {
    let request = HistoricalRequest {
        memory_limit,
        ..request(repo, entities, &["stats_view:value"])
    };
    let output = request.output.clone();
    let summary = get_historical(repo, &request).await.unwrap();
    let batch = read_parquet(&output);
    assert_eq!(summary.rows, batch.num_rows());
    // Input columns pass through unchanged and in order.
    assert_eq!(
        i64_column(&batch, "row_id"),
        (0..batch.num_rows() as i64).map(Some).collect::<Vec<_>>()
    );
    f64_column(&batch, "value")
}

fn row(key: i64, ts: i64, created: i64, value: f64) -> FeatureRow {
    FeatureRow {
        key,
        ts,
        created,
        value,
    }
}

#[tokio::test]
async fn ttl_bounds_are_inclusive_to_the_microsecond() {
    let dir = tempfile::tempdir().unwrap();
    write_features(&dir.path().join("data/f.parquet"), &[row(1, T0, T0, 1.0)]);
    let repo = repo(dir.path(), "", &defs("90s", "data/f.parquet"));
    let ttl = 90 * SECOND;
    let entities = dir.path().join("e.parquet");
    write_entities(
        &entities,
        &[
            (Some(1), T0 - 1),       // before the only row
            (Some(1), T0),           // exactly at it: upper bound inclusive
            (Some(1), T0 + ttl),     // exactly at the TTL: lower bound inclusive
            (Some(1), T0 + ttl + 1), // one microsecond past
        ],
    );
    assert_eq!(
        join(&repo, &entities, 1 << 30).await,
        [None, Some(1.0), Some(1.0), None]
    );
}

#[tokio::test]
async fn ties_on_event_time_go_to_the_greatest_created_time() {
    let dir = tempfile::tempdir().unwrap();
    // The newest correction is written first and last in different files.
    write_features(
        &dir.path().join("data/a.parquet"),
        &[row(1, T0, T0 + 30, 3.0), row(1, T0, T0 + 10, 1.0)],
    );
    write_features(
        &dir.path().join("data/b.parquet"),
        &[
            row(1, T0, T0 + 20, 2.0),
            row(2, T0, T0 + 5, 5.0),
            row(2, T0, T0 + 50, 6.0),
        ],
    );
    let repo = repo(dir.path(), "", &defs("0", "data"));
    let entities = dir.path().join("e.parquet");
    write_entities(&entities, &[(Some(1), T0), (Some(2), T0 + SECOND)]);
    assert_eq!(
        join(&repo, &entities, 1 << 30).await,
        [Some(3.0), Some(6.0)]
    );
}

#[tokio::test]
async fn unknown_keys_null_keys_and_duplicates_keep_their_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write_features(
        &dir.path().join("data/f.parquet"),
        &[
            row(1, T0, T0, 1.0),
            row(1, T0 + 10 * SECOND, T0, 2.0),
            row(2, T0, T0, 7.0),
        ],
    );
    let repo = repo(dir.path(), "", &defs("1d", "data/f.parquet"));
    let entities = dir.path().join("e.parquet");
    write_entities(
        &entities,
        &[
            (Some(1), T0 + 20 * SECOND),
            (Some(99), T0 + 20 * SECOND),
            (None, T0 + 20 * SECOND),
            (Some(1), T0 + 5 * SECOND),
            (Some(1), T0 + 20 * SECOND),
            (Some(2), T0),
            (Some(1), T0 + 5 * SECOND),
        ],
    );
    assert_eq!(
        join(&repo, &entities, 1 << 30).await,
        [
            Some(2.0),
            None,
            None,
            Some(1.0),
            Some(2.0),
            Some(7.0),
            Some(1.0)
        ]
    );
}

/// The winning row for one entity row, by scanning every feature row.
fn oracle(features: &[FeatureRow], key: Option<i64>, ts: i64, ttl: Option<i64>) -> Option<f64> {
    let key = key?;
    features
        .iter()
        .filter(|f| f.key == key && f.ts <= ts && ttl.is_none_or(|t| f.ts >= ts - t))
        .max_by_key(|f| (f.ts, f.created))
        .map(|f| f.value)
}

fn random_case(seed: u64) -> (Vec<FeatureRow>, Vec<(Option<i64>, i64)>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut features = Vec::new();
    let mut created = 0;
    for _ in 0..3_000 {
        created += 1;
        // Coarse times make equal event times (ties) common; created times stay unique.
        let ts = T0 + rng.random_range(0..400) * SECOND;
        features.push(row(
            rng.random_range(0..40),
            ts,
            T0 + created * 7 % 5_003,
            rng.random(),
        ));
    }
    let mut entities = Vec::new();
    for _ in 0..2_000 {
        let key = match rng.random_range(0..20) {
            0 => None,
            1 => Some(1_000 + rng.random_range(0..5)),
            _ => Some(rng.random_range(0..40)),
        };
        // Entity times on feature times or 60 s (the TTL) after them hit both bounds exactly.
        let ts = T0 + rng.random_range(-10..460) * SECOND + [0, 1, -1][rng.random_range(0..3)];
        entities.push((key, ts));
        if rng.random_range(0..10) == 0 {
            entities.push((key, ts));
        }
    }
    (features, entities)
}

async fn agrees_with_the_oracle(memory_limit: usize, files: usize) {
    for seed in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let (features, entities) = random_case(seed);
        for (i, chunk) in features.chunks(features.len().div_ceil(files)).enumerate() {
            write_features(&dir.path().join(format!("data/part-{i}.parquet")), chunk);
        }
        let repo = repo(dir.path(), "", &defs("60s", "data"));
        let path = dir.path().join("e.parquet");
        write_entities(&path, &entities);
        let got = join(&repo, &path, memory_limit).await;
        let want: Vec<Option<f64>> = entities
            .iter()
            .map(|&(k, ts)| oracle(&features, k, ts, Some(60 * SECOND)))
            .collect();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "seed {seed}, entity row {i}: {:?}", entities[i]);
        }
    }
}

#[tokio::test]
async fn agrees_with_a_brute_force_oracle_in_memory() {
    agrees_with_the_oracle(1 << 30, 3).await;
}

#[tokio::test]
async fn agrees_with_a_brute_force_oracle_when_spilling_to_disk() {
    // A limit far below the data forces every partition through spill files.
    agrees_with_the_oracle(1, 5).await;
}

#[tokio::test]
async fn feature_name_clashes_need_full_names() {
    let dir = tempfile::tempdir().unwrap();
    write_features(&dir.path().join("data/f.parquet"), &[row(1, T0, T0, 1.0)]);
    let mut text = defs("0", "data/f.parquet");
    text.push_str(
        "  - name: other_view
    entities: [driver]
    source: stats
    features:
      - {name: value, dtype: float64}
",
    );
    let repo = repo(dir.path(), "", &text);
    let entities = dir.path().join("e.parquet");
    write_entities(&entities, &[(Some(1), T0)]);
    let mut request = request(&repo, &entities, &["stats_view:value", "other_view:value"]);
    let err = get_historical(&repo, &request).await.unwrap_err();
    assert!(
        err.message.contains("--full-feature-names"),
        "{}",
        err.message
    );
    request.full_feature_names = true;
    get_historical(&repo, &request).await.unwrap();
    let batch = read_parquet(&request.output);
    assert_eq!(f64_column(&batch, "stats_view__value"), [Some(1.0)]);
    assert_eq!(f64_column(&batch, "other_view__value"), [Some(1.0)]);
}

#[tokio::test]
async fn csv_entities_with_zoneless_times_are_utc() {
    let dir = tempfile::tempdir().unwrap();
    write_features(
        &dir.path().join("data/f.parquet"),
        &[row(1, T0, T0, 1.0), row(1, T0 + 3_600 * SECOND, T0, 2.0)],
    );
    let repo = repo(dir.path(), "", &defs("0", "data/f.parquet"));
    let entities = dir.path().join("e.csv");
    std::fs::write(
        &entities,
        "driver_id,event_timestamp,row_id\n1,2024-01-01T00:59:59,0\n1,2024-01-01T01:00:00,1\n1,2024-01-01T01:00:00+01:00,2\n",
    )
    .unwrap();
    assert_eq!(
        join(&repo, &entities, 1 << 30).await,
        [Some(1.0), Some(2.0), Some(1.0)]
    );
}

#[tokio::test]
async fn missing_join_key_column_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_features(&dir.path().join("data/f.parquet"), &[row(1, T0, T0, 1.0)]);
    let repo = repo(dir.path(), "", &defs("0", "data/f.parquet"));
    let entities = dir.path().join("e.csv");
    std::fs::write(&entities, "rider,event_timestamp\n1,2024-01-01T00:00:00Z\n").unwrap();
    let request = request(&repo, &entities, &["stats_view:value"]);
    let err = get_historical(&repo, &request).await.unwrap_err();
    assert!(
        err.message.contains("no column \"driver_id\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_missing_source_column_names_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    write_features(&dir.path().join("data/f.parquet"), &[row(1, T0, T0, 1.0)]);
    let repo = repo(
        dir.path(),
        "",
        &defs("0", "data/f.parquet").replace("{name: value,", "{name: valu,"),
    );
    let err = twinloop_features::source::layout(&repo, &repo.views[0])
        .await
        .unwrap_err();
    assert!(err.message.starts_with("defs.yaml:14: feature_views[stats_view].features: source \"stats\" has no column \"valu\""), "{}", err.message);
    let repo2 = crate::support::repo(
        dir.path(),
        "",
        &defs("0", "data/f.parquet").replace("dtype: float64", "dtype: string"),
    );
    let err = twinloop_features::source::layout(&repo2, &repo2.views[0])
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("declared string but source \"stats\" holds Float64"),
        "{}",
        err.message
    );
}

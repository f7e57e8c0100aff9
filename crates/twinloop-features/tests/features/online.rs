//! The online store suite, run against the embedded store, a real Redis and a three-node Redis
//! Cluster: newer-wins writes, materialization windows in any order, incremental
//! materialization, and online reads with TTL, null values and unknown keys.

use std::collections::HashSet;
use std::sync::Arc;

use twinloop_features::online::{OnlineRow, OnlineStore, OnlineWrite, row_key, table_name};
use twinloop_features::progress::Progress;
use twinloop_features::serving::{
    FeatureSelection, FeatureStatus, OnlineQuery, OnlineService, PushRequest, PushTarget, PushTo,
};
use twinloop_features::store::FeatureStore;
use twinloop_features::value::Value as FeatureValue;

use crate::support::redis_cluster::RedisCluster;
use crate::support::*;

const SECOND: i64 = 1_000_000;
const DAY: i64 = 86_400 * SECOND;
const T0: i64 = 1_704_067_200 * SECOND; // 2024-01-01T00:00:00Z

const DEFS: &str = "entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - name: stats
    path: data
    timestamp_field: event_timestamp
    created_timestamp_field: created
feature_views:
  - name: recent
    entities: [driver]
    source: stats
    ttl: 2d
    features:
      - {name: value, dtype: float64}
  - name: forever
    entities: [driver]
    source: stats
    features:
      - {name: value, dtype: float64}
";

fn row(key: i64, ts: i64, created: i64, value: f64) -> FeatureRow {
    FeatureRow {
        key,
        ts,
        created,
        value,
    }
}

async fn each_store(test: impl AsyncFn(&str)) {
    test("").await;
    if let Some(redis) = Redis::start() {
        test(&format!(
            "online_store: {{type: redis, url: \"{}\"}}\n",
            redis.url
        ))
        .await;
    }
    if let Some(cluster) = RedisCluster::start() {
        test(&cluster_config(&cluster)).await;
    }
}

fn cluster_config(cluster: &RedisCluster) -> String {
    format!(
        "online_store: {{type: redis, redis_type: redis_cluster, connection_string: \"{}\"}}\n",
        cluster.connection_string
    )
}

fn online_row(ts: i64, created: i64, value: f64) -> Vec<u8> {
    OnlineRow {
        event_ts: ts,
        created_ts: created,
        values: vec![FeatureValue::Float64(value)],
    }
    .encode()
}

async fn stored_value(store: &dyn OnlineStore, key: &[u8]) -> Option<OnlineRow> {
    store.read("t", &[key.to_vec()]).await.unwrap().remove(0)
}

#[tokio::test]
async fn an_older_row_never_overwrites_a_newer_one() {
    each_store(async |config| {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path(), config, DEFS);
        let store = twinloop_features::online::open(&repo).await.unwrap();
        let write = |ts, created, value| {
            vec![OnlineWrite {
                key: b"k".to_vec(),
                row: online_row(ts, created, value),
            }]
        };
        assert_eq!(store.read("t", &[b"k".to_vec()]).await.unwrap(), [None]);
        assert_eq!(store.write("t", write(10, 0, 1.0)).await.unwrap(), 1);
        assert_eq!(
            store.write("t", write(5, 99, 2.0)).await.unwrap(),
            0,
            "older event time"
        );
        assert_eq!(
            store.write("t", write(10, -1, 3.0)).await.unwrap(),
            0,
            "same time, older created"
        );
        assert_eq!(
            stored_value(store.as_ref(), b"k").await.unwrap().values,
            [FeatureValue::Float64(1.0)]
        );
        assert_eq!(
            store.write("t", write(10, 1, 4.0)).await.unwrap(),
            1,
            "same time, newer created"
        );
        assert_eq!(
            store.write("t", write(10, 1, 4.0)).await.unwrap(),
            1,
            "the same row again"
        );
        assert_eq!(
            store.write("t", write(-3, 0, 5.0)).await.unwrap(),
            0,
            "before the epoch"
        );
        let stored = stored_value(store.as_ref(), b"k").await.unwrap();
        assert_eq!(
            (stored.event_ts, stored.created_ts, stored.values),
            (10, 1, vec![FeatureValue::Float64(4.0)])
        );
        assert_eq!(store.count("t").await.unwrap(), 1);
        assert_eq!(store.count("other").await.unwrap(), 0);
    })
    .await;
}

async fn value_of(
    store: &FeatureStore,
    online: &Arc<dyn OnlineStore>,
    view: &str,
    key: i64,
) -> Option<(i64, f64)> {
    let view = store.repo.view(view).unwrap();
    let table = twinloop_features::online::table_name(&store.repo.config.project, view);
    let mut k = b"i".to_vec();
    k.extend_from_slice(&key.to_be_bytes());
    online
        .read(&table, &[k])
        .await
        .unwrap()
        .remove(0)
        .map(|r| match r.values[0] {
            FeatureValue::Float64(v) => (r.event_ts, v),
            ref other => panic!("unexpected {other:?}"),
        })
}

#[tokio::test]
async fn materialization_windows_in_any_order_end_with_the_newest_rows() {
    each_store(async |config| {
        let dir = tempfile::tempdir().unwrap();
        write_features(
            &dir.path().join("data/f.parquet"),
            &[
                row(1, T0, T0, 1.0),
                row(1, T0 + DAY, T0, 2.0),
                row(1, T0 + 2 * DAY, T0, 3.0),
                row(1, T0 + 2 * DAY, T0 + 1, 4.0), // a correction of the row above
                row(2, T0, T0, 5.0),
            ],
        );
        repo(dir.path(), config, DEFS);
        let store = FeatureStore::open(dir.path()).await.unwrap();
        store.apply().await.unwrap();
        let online = store.online_store().await.unwrap();
        let views = ["forever".to_string()];
        // The newer window first, then the older one: nothing may go back in time.
        let done = store
            .materialize(
                online.as_ref(),
                T0 + DAY,
                T0 + 3 * DAY,
                &views,
                &Progress::none(),
            )
            .await
            .unwrap();
        assert_eq!(
            (done[0].window_rows, done[0].entities, done[0].written),
            (3, 1, 1)
        );
        store
            .materialize(online.as_ref(), T0, T0 + DAY, &views, &Progress::none())
            .await
            .unwrap();
        assert_eq!(
            value_of(&store, &online, "forever", 1).await,
            Some((T0 + 2 * DAY, 4.0))
        );
        assert_eq!(
            value_of(&store, &online, "forever", 2).await,
            Some((T0, 5.0))
        );
        // Re-running a window changes nothing.
        store
            .materialize(online.as_ref(), T0, T0 + 3 * DAY, &views, &Progress::none())
            .await
            .unwrap();
        assert_eq!(
            value_of(&store, &online, "forever", 1).await,
            Some((T0 + 2 * DAY, 4.0))
        );
        // Both window ends are inclusive.
        store
            .materialize(
                online.as_ref(),
                T0 + DAY,
                T0 + DAY,
                &["recent".to_string()],
                &Progress::none(),
            )
            .await
            .unwrap();
        assert_eq!(
            value_of(&store, &online, "recent", 1).await,
            Some((T0 + DAY, 2.0))
        );
        assert_eq!(value_of(&store, &online, "recent", 2).await, None);
        assert_eq!(
            store.last_materialized_end("forever").await.unwrap(),
            Some(T0 + 3 * DAY)
        );
    })
    .await;
}

#[tokio::test]
async fn incremental_materialization_continues_from_the_last_end() {
    each_store(async |config| {
        let dir = tempfile::tempdir().unwrap();
        write_features(&dir.path().join("data/a.parquet"), &[row(1, T0, T0, 1.0)]);
        repo(dir.path(), config, DEFS);
        let store = FeatureStore::open(dir.path()).await.unwrap();
        store.apply().await.unwrap();
        let online = store.online_store().await.unwrap();
        let views = ["forever".to_string()];
        let first = store
            .materialize_incremental(online.as_ref(), T0 + DAY, &views, &Progress::none())
            .await
            .unwrap();
        assert_eq!((first[0].start, first[0].end), (0, T0 + DAY));
        write_features(
            &dir.path().join("data/b.parquet"),
            &[row(1, T0 + 2 * DAY, T0, 2.0), row(1, T0 + DAY / 2, T0, 9.0)],
        );
        let second = store
            .materialize_incremental(online.as_ref(), T0 + 3 * DAY, &views, &Progress::none())
            .await
            .unwrap();
        assert_eq!((second[0].start, second[0].window_rows), (T0 + DAY, 1));
        assert_eq!(
            value_of(&store, &online, "forever", 1).await,
            Some((T0 + 2 * DAY, 2.0))
        );
        // Without a previous run, a view with a TTL starts at end − TTL.
        let recent = store
            .materialize_incremental(
                online.as_ref(),
                T0 + 3 * DAY,
                &["recent".into()],
                &Progress::none(),
            )
            .await
            .unwrap();
        assert_eq!(recent[0].start, T0 + DAY);
    })
    .await;
}

fn query(
    features: &[&str],
    entities: Vec<(&str, Vec<FeatureValue>)>,
) -> OnlineQuery<Vec<FeatureValue>> {
    OnlineQuery {
        features: FeatureSelection::Refs(features.iter().map(|f| f.to_string()).collect()),
        entities: entities
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        full_feature_names: false,
    }
}

fn ids(ids: &[i64]) -> Vec<FeatureValue> {
    ids.iter().map(|&i| FeatureValue::Int64(i)).collect()
}

/// Values as text, so that NaN compares equal to itself.
fn shown(values: &[FeatureValue]) -> String {
    format!("{values:?}")
}

#[tokio::test]
async fn online_reads_enforce_ttl_and_report_every_status() {
    use FeatureStatus::*;
    use FeatureValue::{Float64, Null};
    each_store(async |config| {
        let dir = tempfile::tempdir().unwrap();
        let now = twinloop_features::time::now_micros();
        write_features(
            &dir.path().join("data/f.parquet"),
            &[
                row(1, now - DAY, now, 1.5),
                row(2, now - 3 * DAY, now, 2.5),
                row(3, now - DAY, now, f64::NAN),
            ],
        );
        repo(dir.path(), config, DEFS);
        let store = FeatureStore::open(dir.path()).await.unwrap();
        store.apply().await.unwrap();
        let online = store.online_store().await.unwrap();
        store
            .materialize(online.as_ref(), 0, now, &[], &Progress::none())
            .await
            .unwrap();
        let service = OnlineService::new(store.repo.clone(), online.clone())
            .await
            .unwrap();
        let reply = service
            .get_online_features(&OnlineQuery {
                full_feature_names: true,
                ..query(
                    &["forever:value", "recent:value"],
                    vec![("driver_id", ids(&[1, 2, 3, 4]))],
                )
            })
            .await
            .unwrap();
        let names: Vec<&str> = reply.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["forever__value", "recent__value"]);
        assert_eq!(reply.keys, [("driver_id".to_string(), ids(&[1, 2, 3, 4]))]);
        assert_eq!(
            shown(&reply.features[0].values),
            shown(&[Float64(1.5), Float64(2.5), Float64(f64::NAN), Null])
        );
        assert_eq!(
            reply.features[0].statuses,
            [Present, Present, Present, NotFound]
        );
        assert_eq!(
            shown(&reply.features[1].values),
            shown(&[Float64(1.5), Null, Float64(f64::NAN), Null])
        );
        assert_eq!(
            reply.features[1].statuses,
            [Present, OutsideMaxAge, Present, NotFound]
        );
        assert_eq!(reply.features[1].event_ts[3], 0);

        // A pushed row with a null feature is NULL_VALUE; an older push does not win.
        let service = &service;
        let push = |target: PushTarget, id: i64, ts: i64, value: FeatureValue| {
            let request = PushRequest {
                target,
                to: PushTo::Online,
                df: vec![
                    ("driver_id".to_string(), ids(&[id])),
                    (
                        "event_timestamp".to_string(),
                        vec![FeatureValue::Timestamp(ts)],
                    ),
                    ("value".to_string(), vec![value]),
                ],
            };
            async move { service.push(&request).await }
        };
        push(PushTarget::Source("stats".into()), 5, now, Null)
            .await
            .unwrap();
        let old = twinloop_features::time::parse_timestamp("2020-01-01T00:00:00Z").unwrap();
        push(PushTarget::View("recent".into()), 1, old, Float64(7.0))
            .await
            .unwrap();
        let reply = service
            .get_online_features(&query(&["recent:value"], vec![("driver_id", ids(&[5, 1]))]))
            .await
            .unwrap();
        assert_eq!(reply.features[0].statuses, [NullValue, Present]);
        assert_eq!(reply.features[0].values, [Null, Float64(1.5)]);

        // Bad requests are errors that name the problem.
        let service_query = OnlineQuery {
            features: FeatureSelection::Service("nope".into()),
            ..query(&[], vec![("driver_id", ids(&[1]))])
        };
        for (query, needle) in [
            (
                query(&["recent:nope"], vec![("driver_id", ids(&[1]))]),
                "has no feature \"nope\"",
            ),
            (
                query(&["recent:value"], vec![("rider", ids(&[1]))]),
                "needs join key \"driver_id\"",
            ),
            (
                query(
                    &["recent:value"],
                    vec![("driver_id", vec![FeatureValue::String("x".into())])],
                ),
                "\"driver_id\" row 0",
            ),
            (
                query(
                    &["recent:value", "forever:value"],
                    vec![("driver_id", ids(&[1]))],
                ),
                "full_feature_names",
            ),
            (service_query, "unknown feature service"),
            (query(&["recent:value"], vec![]), "at least one join key"),
        ] {
            let err = service.get_online_features(&query).await.unwrap_err();
            assert!(
                err.message.contains(needle),
                "{} lacks {needle}",
                err.message
            );
        }
    })
    .await;
}

/// On a cluster, entities spread over every node while one entity's rows of all views share a
/// slot (the hash tag), and one read gathers many entities from every node.
#[tokio::test]
async fn a_cluster_spreads_entities_over_its_nodes_and_keeps_an_entity_in_one_slot() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let now = twinloop_features::time::now_micros();
    let rows: Vec<FeatureRow> = (1..=200)
        .map(|k| row(k, now - SECOND, now, k as f64))
        .collect();
    write_features(&dir.path().join("data/f.parquet"), &rows);
    repo(dir.path(), &cluster_config(&cluster), DEFS);
    let store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    let online = store.online_store().await.unwrap();
    store
        .materialize(online.as_ref(), 0, now, &[], &Progress::none())
        .await
        .unwrap();

    let tables = ["recent", "forever"]
        .map(|v| table_name(&store.repo.config.project, store.repo.view(v).unwrap()));
    for table in &tables {
        assert_eq!(online.count(table).await.unwrap(), 200, "{table}");
    }
    let node = redis::Client::open(format!("redis://127.0.0.1:{}", cluster.ports[0])).unwrap();
    let mut node = node.get_connection().unwrap();
    let mut slots = HashSet::new();
    for k in 1..=200i64 {
        let key = [b"i".as_slice(), &k.to_be_bytes()].concat();
        let entity_slots: HashSet<u16> = tables
            .iter()
            .map(|table| {
                redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(row_key(table, &key))
                    .query::<u16>(&mut node)
                    .unwrap()
            })
            .collect();
        assert_eq!(entity_slots.len(), 1, "entity {k}: {entity_slots:?}");
        slots.extend(entity_slots);
    }
    assert!(slots.len() > 100, "{} slots", slots.len());
    for &port in &cluster.ports {
        let keys: u64 = cluster.cli(port, &["dbsize"]).trim().parse().unwrap();
        assert!(keys > 100, "node {port} holds {keys} keys");
    }

    let service = OnlineService::new(store.repo.clone(), online.clone())
        .await
        .unwrap();
    let all: Vec<i64> = (0..=201).collect();
    let reply = service
        .get_online_features(&query(&["forever:value"], vec![("driver_id", ids(&all))]))
        .await
        .unwrap();
    let mut want: Vec<FeatureValue> = (1..=200).map(|k| FeatureValue::Float64(k as f64)).collect();
    want.insert(0, FeatureValue::Null);
    want.push(FeatureValue::Null);
    assert_eq!(reply.features[0].values, want);
}

/// Rows written before keys carried a hash tag (`twinloop:TABLE:KEY`) are moved into the
/// tagged layout the first time a process touches their table, and still win over older rows.
#[tokio::test]
async fn rows_of_the_untagged_layout_are_adopted() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    for key in [b"k1", b"k2"] {
        let legacy = [b"twinloop:t:".as_slice(), key.as_slice()].concat();
        redis::cmd("SET")
            .arg(&legacy)
            .arg(online_row(10, 0, 1.0))
            .query::<()>(&mut connection)
            .unwrap();
        redis::cmd("SADD")
            .arg("twinloop:t")
            .arg(&legacy)
            .query::<()>(&mut connection)
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!("online_store: {{type: redis, url: \"{}\"}}\n", redis.url);
    let store = twinloop_features::online::open(&repo(dir.path(), &config, DEFS))
        .await
        .unwrap();
    let older = OnlineWrite {
        key: b"k1".to_vec(),
        row: online_row(5, 0, 2.0),
    };
    assert_eq!(store.write("t", vec![older]).await.unwrap(), 0);
    for key in [b"k1", b"k2"] {
        let row = stored_value(store.as_ref(), key).await.unwrap();
        assert_eq!(
            (row.event_ts, row.values),
            (10, vec![FeatureValue::Float64(1.0)])
        );
    }
    assert_eq!(store.count("t").await.unwrap(), 2);
    let left: u64 = redis::cmd("EXISTS")
        .arg("twinloop:t")
        .arg(b"twinloop:t:k1")
        .arg(b"twinloop:t:k2")
        .query(&mut connection)
        .unwrap();
    assert_eq!(left, 0);
}

use super::*;

const CONFIG: &str = "project: rides\n";

const DEFS: &str = "entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - name: driver_stats
    path: data/driver.parquet
    timestamp_field: event_timestamp
    created_timestamp_field: created
feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    source: driver_stats
    ttl: 1d
    features:
      - {name: conv_rate, dtype: float32}
      - {name: avg_daily_trips, dtype: int64}
feature_services:
  - {name: ride_model_v1, features: [\"driver_hourly_stats:conv_rate\"]}
";

fn load(defs: &str) -> Result<FeatureRepo> {
    FeatureRepo::from_texts(
        Path::new("/repo"),
        &[
            ("defs.yaml".into(), defs.into()),
            (CONFIG_FILE.into(), CONFIG.into()),
        ],
    )
}

fn error_of(defs: &str) -> String {
    load(defs).unwrap_err().message
}

#[test]
fn loads_the_documented_shape() {
    let repo = load(DEFS).unwrap();
    assert_eq!(repo.config.project, "rides");
    assert_eq!(
        repo.config.online_store,
        OnlineStoreConfig::Embedded { path: None }
    );
    assert_eq!(
        repo.config.registry,
        "sqlite:////repo/.twinloop/registry.db"
    );
    let view = repo.view("driver_hourly_stats").unwrap();
    assert_eq!(view.ttl_micros, Some(86_400_000_000));
    assert_eq!(view.origin.to_string(), "defs.yaml:9");
    assert_eq!(repo.join_keys(view), ["driver_id"]);
    assert_eq!(
        repo.service_refs("ride_model_v1").unwrap(),
        [FeatureRef {
            view: "driver_hourly_stats".into(),
            feature: "conv_rate".into()
        }]
    );
}

#[test]
fn unknown_entity_names_file_line_and_field() {
    let msg = error_of(&DEFS.replace("entities: [driver]", "entities: [drivr]"));
    assert!(
        msg.starts_with(
            "defs.yaml:10: feature_views[driver_hourly_stats].entities: unknown entity \"drivr\""
        ),
        "{msg}"
    );
}

#[test]
fn unknown_source_and_bad_ttl_are_located() {
    let msg = error_of(&DEFS.replace("source: driver_stats", "source: nope"));
    assert!(
        msg.starts_with("defs.yaml:11: feature_views[driver_hourly_stats].source"),
        "{msg}"
    );
    let msg = error_of(&DEFS.replace("ttl: 1d", "ttl: 1y"));
    assert!(
        msg.starts_with("defs.yaml:12: feature_views[driver_hourly_stats].ttl"),
        "{msg}"
    );
}

#[test]
fn duplicates_are_refused() {
    let msg = error_of(&DEFS.replace(
        "      - {name: avg_daily_trips, dtype: int64}",
        "      - {name: conv_rate, dtype: int64}",
    ));
    assert!(msg.contains("duplicate feature \"conv_rate\""), "{msg}");
    let doubled = DEFS.replace(
        "  - {name: driver, join_keys: [driver_id]}",
        "  - {name: driver, join_keys: [driver_id]}\n  - {name: driver, join_keys: [x]}",
    );
    let msg = error_of(&doubled);
    assert!(
        msg.starts_with("defs.yaml:3: duplicate entity \"driver\" (first defined at defs.yaml:2)"),
        "{msg}"
    );
}

#[test]
fn type_errors_carry_serde_positions() {
    let msg = error_of(&DEFS.replace("dtype: float32", "dtype: float16"));
    assert!(
        msg.starts_with("defs.yaml: feature_views[0].features[0].dtype: unknown variant"),
        "{msg}"
    );
    let msg = error_of(&DEFS.replace("timestamp_field:", "timestamp_feld:"));
    assert!(msg.contains("unknown field `timestamp_feld`"), "{msg}");
}

#[test]
fn bad_service_references_are_refused() {
    let msg = error_of(&DEFS.replace(
        "driver_hourly_stats:conv_rate\"",
        "driver_hourly_stats:nope\"",
    ));
    assert!(msg.contains("feature_services[ride_model_v1].features: feature view \"driver_hourly_stats\" has no feature \"nope\""), "{msg}");
}

#[test]
fn config_keys_stay_in_the_config_file() {
    let msg = error_of(&format!("project: other\n{DEFS}"));
    assert!(msg.contains("belong in twinloop.yaml"), "{msg}");
}

#[test]
fn feature_named_like_a_join_key_is_refused() {
    let msg = error_of(&DEFS.replace(
        "{name: conv_rate, dtype: float32}",
        "{name: driver_id, dtype: int64}",
    ));
    assert!(msg.contains("\"driver_id\" is a join key"), "{msg}");
}

#[test]
fn causes_stay_reachable_behind_the_located_message() {
    use std::error::Error as _;
    let err = load("feature_views: [").unwrap_err();
    assert!(err.message.starts_with("defs.yaml: "), "{}", err.message);
    let cause = err.source().expect("the parser's error");
    assert!(cause.downcast_ref::<serde_norway::Error>().is_some());
    let err = load(&DEFS.replace("name: driver,", "name: \"dri ver\",")).unwrap_err();
    let cause = err.source().expect("the naming rule");
    assert!(
        cause
            .downcast_ref::<super::super::names::NameError>()
            .is_some()
    );
}

#[test]
fn the_pipelines_executors_may_share_the_config_file() {
    let repo = FeatureRepo::from_texts(
        Path::new("/repo"),
        &[
            ("defs.yaml".into(), DEFS.into()),
            (
                CONFIG_FILE.into(),
                "project: rides\nexecutors:\n  cluster: {kind: ray, address: 'http://head:8265'}\n"
                    .into(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(repo.config.project, "rides");
}

#[test]
fn a_redis_cluster_is_configured_as_feast_writes_it() {
    let load_config = |config: &str| {
        FeatureRepo::from_texts(
            Path::new("/repo"),
            &[
                ("defs.yaml".into(), DEFS.into()),
                (CONFIG_FILE.into(), format!("project: rides\n{config}")),
            ],
        )
    };
    let repo = load_config(
        "online_store:\n  type: redis\n  redis_type: redis_cluster\n  \
         connection_string: \"a:7000,b:7001\"\n",
    )
    .unwrap();
    assert_eq!(
        repo.config.online_store,
        OnlineStoreConfig::RedisCluster {
            nodes: vec!["redis://a:7000/0".into(), "redis://b:7001/0".into()]
        }
    );
    let msg = load_config("online_store: {type: redis, redis_type: redis_cluster}\n")
        .unwrap_err()
        .message;
    assert!(
        msg.starts_with(
            "twinloop.yaml:2: online_store: redis_type: redis_cluster needs connection_string"
        ),
        "{msg}"
    );
}

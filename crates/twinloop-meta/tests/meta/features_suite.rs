//! The FeatureRegistry behaviour (versioned definitions, materialization runs), run against
//! every backend.

use twinloop_core::features::{FeatureChange, MaterializationRun};
use twinloop_meta::{FeatureRegistry, SqlStore};

fn put(kind: &str, name: &str, spec: &str) -> FeatureChange {
    FeatureChange::Put {
        kind: kind.into(),
        name: name.into(),
        spec: spec.into(),
    }
}

fn current(
    objects: &[twinloop_core::features::FeatureObject],
) -> Vec<(String, String, i64, String)> {
    objects
        .iter()
        .map(|o| (o.kind.clone(), o.name.clone(), o.version, o.spec.clone()))
        .collect()
}

on_every_backend!(
    definitions_are_versioned_and_runs_recorded,
    |s: &SqlStore| {
        let applied = s
            .apply_feature_changes(
                "rides",
                &[
                    put("entity", "driver", "{}"),
                    put("feature_view", "stats", "{\"a\":1}"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(applied.len(), 2);
        // Re-applying the same specs writes nothing; a changed spec is the next version.
        let applied = s
            .apply_feature_changes(
                "rides",
                &[
                    put("entity", "driver", "{}"),
                    put("feature_view", "stats", "{\"a\":2}"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            current(&applied),
            [("feature_view".into(), "stats".into(), 2, "{\"a\":2}".into())]
        );
        // Removal hides it; adding it back continues the numbering; other projects are apart.
        s.apply_feature_changes(
            "rides",
            &[FeatureChange::Remove {
                kind: "feature_view".into(),
                name: "stats".into(),
            }],
        )
        .await
        .unwrap();
        assert_eq!(
            current(&s.feature_objects("rides").await.unwrap()),
            [("entity".into(), "driver".into(), 1, "{}".into())]
        );
        s.apply_feature_changes("rides", &[put("feature_view", "stats", "{\"a\":3}")])
            .await
            .unwrap();
        s.apply_feature_changes("other", &[put("feature_view", "stats", "{}")])
            .await
            .unwrap();
        assert_eq!(
            current(&s.feature_objects("rides").await.unwrap()),
            [
                ("entity".into(), "driver".into(), 1, "{}".into()),
                ("feature_view".into(), "stats".into(), 4, "{\"a\":3}".into())
            ]
        );

        let run = |start, end| MaterializationRun {
            project: "rides".into(),
            view: "stats".into(),
            start_time: start,
            end_time: end,
            source_rows: 10,
            entities: 2,
            written: 2,
            finish_time: 1,
        };
        s.record_materialization(&run(5, 10)).await.unwrap();
        s.record_materialization(&run(0, 5)).await.unwrap();
        let runs = s.materializations("rides", "stats").await.unwrap();
        assert_eq!(runs, [run(5, 10), run(0, 5)]);
        assert!(
            s.materializations("rides", "nope")
                .await
                .unwrap()
                .is_empty()
        );
    }
);

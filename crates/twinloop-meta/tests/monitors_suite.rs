//! The MonitorStore behaviour, run against every backend.

mod support;

use twinloop_core::monitoring::{Label, MetricPoint, MonitorRecord};
use twinloop_meta::{MonitorStore, SqlStore};

fn point(start: i64, metric: &str, value: f64) -> MetricPoint {
    MetricPoint {
        monitor: "m".into(),
        window_start: start,
        window_end: start + 10,
        metric: metric.into(),
        value,
    }
}

#[tokio::test]
async fn monitors_points_labels_and_events() {
    for backend in support::all_backends().await {
        eprintln!("backend: {}", backend.name);
        let s: &SqlStore = &backend.store;
        s.put_monitor(&MonitorRecord {
            name: "m".into(),
            spec: "{}".into(),
            state: "{}".into(),
            update_time: 0,
        })
        .await
        .unwrap();
        s.put_monitor(&MonitorRecord {
            name: "m".into(),
            spec: "{\"v\":2}".into(),
            state: "{}".into(),
            update_time: 0,
        })
        .await
        .unwrap();
        assert_eq!(s.monitors().await.unwrap()[0].spec, "{\"v\":2}");

        s.put_points(&[point(0, "accuracy", 0.9), point(0, "drift", 0.1)])
            .await
            .unwrap();
        s.put_points(&[point(10, "accuracy", 0.5), point(0, "accuracy", 0.8)])
            .await
            .unwrap();
        let got: Vec<(i64, String, f64)> = s
            .points("m", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.window_start, p.metric, p.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "accuracy".into(), 0.8),
                (0, "drift".into(), 0.1),
                (10, "accuracy".into(), 0.5)
            ]
        );

        let label = |id: &str, l: &str| Label {
            request_id: id.into(),
            label: l.into(),
            time: 1,
        };
        s.put_labels(&[label("r1", "1"), label("r2", "0")])
            .await
            .unwrap();
        s.put_labels(&[label("r1", "2")]).await.unwrap();
        let mut labels = s
            .labels(&["r1".into(), "r2".into(), "r3".into()])
            .await
            .unwrap();
        labels.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        assert_eq!(labels, vec![label("r1", "2"), label("r2", "0")]);

        let first = s
            .add_monitor_event("m", "alert_firing", "{}")
            .await
            .unwrap();
        let second = s
            .add_monitor_event("other", "retrain_requested", "{}")
            .await
            .unwrap();
        assert!(second > first);
        assert_eq!(s.monitor_events(Some("m"), 0, 10).await.unwrap().len(), 1);
        assert_eq!(
            s.monitor_events(None, first, 10).await.unwrap()[0].kind,
            "retrain_requested"
        );
        assert!(s.delete_monitor("m").await.unwrap());
    }
}

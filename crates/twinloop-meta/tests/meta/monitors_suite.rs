//! The MonitorStore behaviour, run against every backend.

use twinloop_core::monitoring::{Label, MetricPoint, MonitorRecord};
use twinloop_core::registry::{NewWebhook, WebhookDelivery};
use twinloop_meta::{MonitorStore, SqlStore, WebhookStore};

fn point(start: i64, metric: &str, value: f64) -> MetricPoint {
    MetricPoint {
        monitor: "m".into(),
        window_start: start,
        window_end: start + 10,
        metric: metric.into(),
        value,
    }
}

on_every_backend!(monitors_points_labels_and_events, |s: &SqlStore| {
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
});

on_every_backend!(
    a_deleted_monitor_takes_its_history_and_its_event_ids_are_not_reused,
    |s: &SqlStore| {
        let monitor = |name: &str| MonitorRecord {
            name: name.into(),
            spec: "{}".into(),
            state: "{}".into(),
            update_time: 0,
        };
        s.put_monitor(&monitor("m")).await.unwrap();
        s.put_monitor(&monitor("kept")).await.unwrap();
        s.put_points(&[point(0, "rows", 10.0)]).await.unwrap();
        let kept = s
            .add_monitor_event("kept", "alert_firing", "{}")
            .await
            .unwrap();
        let newest = s
            .add_monitor_event("m", "alert_firing", "{}")
            .await
            .unwrap();

        assert!(s.delete_monitor("m").await.unwrap());
        assert!(!s.delete_monitor("m").await.unwrap());
        assert!(s.points("m", 10).await.unwrap().is_empty());
        assert!(s.monitor_events(Some("m"), 0, 10).await.unwrap().is_empty());
        let names: Vec<String> = s
            .monitors()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["kept"]);
        assert_eq!(s.monitor_events(None, 0, 10).await.unwrap()[0].id, kept);

        // A reader that has seen every id up to `newest` must see what comes next.
        s.put_monitor(&monitor("m")).await.unwrap();
        let next = s
            .add_monitor_event("m", "alert_pending", "{}")
            .await
            .unwrap();
        assert!(next > newest, "event id {next} handed out again");
        assert_eq!(s.monitor_events(None, newest, 10).await.unwrap().len(), 1);
    }
);

on_every_backend!(
    a_removed_webhook_takes_its_delivery_log_and_its_id_is_not_reused,
    |s: &SqlStore| {
        let hook = || NewWebhook {
            url: "http://127.0.0.1:9/hook".into(),
            secret: "a-long-secret".into(),
            events: Vec::new(),
            model_name: None,
        };
        let first = s.create_webhook(hook()).await.unwrap();
        s.record_delivery(&WebhookDelivery {
            id: 0,
            webhook_id: first.id,
            event_id: 1,
            attempt: 1,
            status_code: None,
            error: Some("refused".into()),
            delivered: false,
            time: 1,
        })
        .await
        .unwrap();
        assert_eq!(s.list_deliveries(first.id, 10).await.unwrap().len(), 1);

        s.delete_webhook(first.id).await.unwrap();
        assert!(s.list_webhooks().await.unwrap().is_empty());
        assert!(s.list_deliveries(first.id, 10).await.unwrap().is_empty());
        let err = s.delete_webhook(first.id).await.unwrap_err();
        assert_eq!(err.kind, twinloop_core::ErrorKind::NotFound);
        let second = s.create_webhook(hook()).await.unwrap();
        assert!(
            second.id > first.id,
            "webhook id {} handed out again",
            second.id
        );
    }
);

//! Webhooks made through MLflow's API, beside twinloop's own, and the registry event details
//! their payloads repeat; run against every backend.

use twinloop_core::ErrorKind;
use twinloop_core::registry::{
    EventDetail, MlflowEvent, MlflowWebhookUpdate, NewMlflowWebhook, NewModelVersion, NewWebhook,
    RegistryEventKind, WebhookDelivery,
};
use twinloop_core::tracking::Tag;
use twinloop_meta::{
    ModelVersionStore, RegisteredModelStore, RegistryEventLog, SqlStore, WebhookStore,
};

fn event(name: &str) -> MlflowEvent {
    MlflowEvent::parse(name).unwrap()
}

fn new_hook(name: &str) -> NewMlflowWebhook {
    NewMlflowWebhook {
        name: name.into(),
        url: "https://hooks.example.com/in".into(),
        events: vec![event("model_version.created")],
        description: Some("first".into()),
        secret: Some("s3cret".into()),
        active: true,
    }
}

on_every_backend!(
    mlflow_webhooks_are_created_listed_updated_and_deleted,
    |s: &SqlStore| {
        let native = s
            .create_webhook(NewWebhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: "a-long-secret".into(),
                events: Vec::new(),
                model_name: None,
            })
            .await
            .unwrap();
        let a = s.create_mlflow_webhook(new_hook("a")).await.unwrap();
        assert_eq!(a.webhook_id.len(), 36, "a UUID: {}", a.webhook_id);
        assert_eq!(
            (a.name.as_str(), a.description.as_deref(), a.active),
            ("a", Some("first"), true)
        );
        assert_eq!(a.secret.as_deref(), Some("s3cret"));
        assert_eq!(a.creation_timestamp, a.last_updated_timestamp);
        assert_ne!(a.id, native.id, "one id space with the native webhooks");
        let b = s
            .create_mlflow_webhook(NewMlflowWebhook {
                secret: None,
                description: None,
                ..new_hook("b.2_x-y")
            })
            .await
            .unwrap();
        assert_eq!((b.secret, b.description), (None, None));

        // Neither kind shows in the other's list; MLflow's lists newest first, in pages.
        assert_eq!(s.list_webhooks().await.unwrap(), vec![native.clone()]);
        let first = s.list_mlflow_webhooks(1, None).await.unwrap();
        assert_eq!(first.items[0].webhook_id, b.webhook_id);
        let second = s
            .list_mlflow_webhooks(1, first.next_page_token.as_deref())
            .await
            .unwrap();
        assert_eq!(second.items[0].webhook_id, a.webhook_id);
        assert_eq!(second.next_page_token, None);
        for bad in [0, 1001] {
            let err = s.list_mlflow_webhooks(bad, None).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
        }

        let updated = s
            .update_mlflow_webhook(
                &a.webhook_id,
                MlflowWebhookUpdate {
                    description: Some(String::new()),
                    events: Some(vec![
                        event("model_version_tag.set"),
                        event("prompt.created"),
                    ]),
                    active: Some(false),
                    ..MlflowWebhookUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.name, "a");
        assert_eq!(updated.url, a.url);
        assert_eq!(updated.secret.as_deref(), Some("s3cret"));
        assert_eq!(updated.description.as_deref(), Some(""));
        assert!(!updated.active);
        assert_eq!(
            updated.events,
            [event("model_version_tag.set"), event("prompt.created")]
        );
        assert!(updated.last_updated_timestamp >= a.last_updated_timestamp);
        assert_eq!(s.get_mlflow_webhook(&a.webhook_id).await.unwrap(), updated);

        // Refused before anything is written.
        for bad in [
            NewMlflowWebhook {
                name: "-dash-first".into(),
                ..new_hook("x")
            },
            NewMlflowWebhook {
                name: "x".repeat(64),
                ..new_hook("x")
            },
            NewMlflowWebhook {
                url: "ftp://hooks.example.com".into(),
                ..new_hook("x")
            },
            NewMlflowWebhook {
                events: Vec::new(),
                ..new_hook("x")
            },
        ] {
            let err = s.create_mlflow_webhook(bad).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
        }
        let err = s
            .update_mlflow_webhook(
                &b.webhook_id,
                MlflowWebhookUpdate {
                    name: Some("bad name".into()),
                    ..MlflowWebhookUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert_eq!(
            s.list_mlflow_webhooks(100, None).await.unwrap().items.len(),
            2
        );

        // Deleting takes the delivery log; a native id does not name an MLflow webhook.
        s.record_delivery(&WebhookDelivery {
            id: 0,
            webhook_id: a.id,
            event_id: 1,
            attempt: 1,
            status_code: Some(200),
            error: None,
            delivered: true,
            time: 1,
        })
        .await
        .unwrap();
        s.delete_mlflow_webhook(&a.webhook_id).await.unwrap();
        assert!(s.list_deliveries(a.id, 10).await.unwrap().is_empty());
        for missing in [a.webhook_id.as_str(), &native.id.to_string(), "nope"] {
            let err = s.get_mlflow_webhook(missing).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
            assert_eq!(err.message, format!("Webhook with ID {missing} not found."));
            let err = s.delete_mlflow_webhook(missing).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
            let err = s
                .update_mlflow_webhook(missing, MlflowWebhookUpdate::default())
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
        }
        let err = s.delete_webhook(b.id).await.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::NotFound,
            "the native API cannot remove it"
        );
        assert_eq!(s.list_webhooks().await.unwrap(), vec![native]);
    }
);

on_every_backend!(
    registry_events_keep_what_webhook_payloads_repeat,
    |s: &SqlStore| {
        let mut events = s.subscribe_registry_events();
        let tags = vec![Tag::new("team", "risk")];
        s.create_registered_model("m", Some("about m"), &tags, "alice")
            .await
            .unwrap();
        s.create_model_version(
            NewModelVersion {
                name: "m".into(),
                source: "s3://bucket/model".into(),
                description: Some("v1".into()),
                tags: vec![Tag::new("stage", "new")],
                ..Default::default()
            },
            "alice",
        )
        .await
        .unwrap();
        s.set_model_version_tag("m", "1", &Tag::new("k", "v"), "bob")
            .await
            .unwrap();
        s.delete_model_version_tag("m", "1", "k", "bob")
            .await
            .unwrap();

        let expected = [
            (
                RegistryEventKind::ModelCreated,
                None,
                EventDetail {
                    tags,
                    description: Some("about m".into()),
                    ..EventDetail::default()
                },
            ),
            (
                RegistryEventKind::VersionCreated,
                Some(1),
                EventDetail {
                    tags: vec![Tag::new("stage", "new")],
                    description: Some("v1".into()),
                    source: Some("s3://bucket/model".into()),
                    ..EventDetail::default()
                },
            ),
            (
                RegistryEventKind::VersionTagSet,
                Some(1),
                EventDetail {
                    tag: Some(Tag::new("k", "v")),
                    ..EventDetail::default()
                },
            ),
            (
                RegistryEventKind::VersionTagDeleted,
                Some(1),
                EventDetail {
                    tag: Some(Tag::new("k", "")),
                    ..EventDetail::default()
                },
            ),
        ];
        let logged = s.registry_events(0, 100).await.unwrap();
        assert_eq!(logged.len(), expected.len());
        for (event, (kind, version, detail)) in logged.iter().zip(&expected) {
            let heard = events.recv().await.unwrap();
            assert_eq!(&heard, event, "the broadcast and the log agree");
            assert_eq!((event.kind, event.version), (*kind, *version));
            assert_eq!(&event.detail, detail);
        }
        assert_eq!(logged[2].actor, "bob");

        // A tag on a version that does not exist is refused and records nothing.
        let err = s
            .set_model_version_tag("m", "9", &Tag::new("k", "v"), "bob")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            s.registry_events(0, 100).await.unwrap().len(),
            expected.len()
        );
    }
);

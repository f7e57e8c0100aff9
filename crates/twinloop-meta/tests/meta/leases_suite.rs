//! Leases and the event tail as replicas see them: two stores opened on the same database stand
//! for two processes.

use std::sync::Arc;
use std::time::Duration;

use twinloop_core::registry::{NewModelVersion, RegistryEventKind};
use twinloop_meta::{
    LeaseStore, ModelAliasStore, ModelVersionStore, RegisteredModelStore, RegistryEventLog,
    SqlStore, StoreUri,
};

use crate::support;

on_every_backend!(one_holder_at_a_time_and_tokens_fence, |s: &SqlStore| {
    assert_eq!(s.acquire_lease("l", "a", 60_000).await.unwrap(), Some(1));
    assert_eq!(
        s.acquire_lease("l", "b", 60_000).await.unwrap(),
        None,
        "held by a"
    );
    assert_eq!(
        s.acquire_lease("l", "a", 60_000).await.unwrap(),
        Some(1),
        "a renewal keeps the token"
    );
    assert_eq!(s.lease_cursor("l").await.unwrap(), None);
    assert!(s.advance_lease("l", 1, 7).await.unwrap());
    assert_eq!(s.lease_cursor("l").await.unwrap(), Some(7));

    s.release_lease("l", "b").await.unwrap();
    assert_eq!(
        s.acquire_lease("l", "b", 60_000).await.unwrap(),
        None,
        "only the holder releases"
    );
    s.release_lease("l", "a").await.unwrap();
    assert!(
        !s.advance_lease("l", 1, 8).await.unwrap(),
        "a released lease fences its holder"
    );
    assert_eq!(s.acquire_lease("l", "b", 60_000).await.unwrap(), Some(2));
    assert!(
        !s.advance_lease("l", 1, 9).await.unwrap(),
        "a's token is old"
    );
    assert!(s.advance_lease("l", 2, 9).await.unwrap());
    assert_eq!(
        s.lease_cursor("l").await.unwrap(),
        Some(9),
        "the cursor is handed on"
    );

    // An expired lease is anyone's.
    assert_eq!(s.acquire_lease("short", "a", 1).await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!s.advance_lease("short", 1, 1).await.unwrap(), "expired");
    assert_eq!(
        s.acquire_lease("short", "b", 60_000).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        s.acquire_lease("other", "b", 60_000).await.unwrap(),
        Some(1)
    );
});

on_every_backend!(racing_holders_get_one_lease, |s| {
    let tries = (0..16).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.acquire_lease("race", &format!("h{i}"), 60_000).await })
    });
    let mut won = 0;
    for t in tries {
        if t.await.unwrap().unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
});

/// Two processes on one database: what one commits, the other's subscribers hear, once each.
async fn events_cross_stores(a: Arc<SqlStore>, b: Arc<SqlStore>) {
    let mut heard_a = a.subscribe_registry_events();
    let mut heard_b = b.subscribe_registry_events();
    a.create_registered_model("m", None, &[], "alice")
        .await
        .unwrap();
    b.create_model_version(
        NewModelVersion {
            name: "m".into(),
            source: "s3://b/m".into(),
            ..Default::default()
        },
        "bob",
    )
    .await
    .unwrap();
    a.set_alias("m", "champion", "1", "alice").await.unwrap();
    for heard in [&mut heard_a, &mut heard_b] {
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            let e = tokio::time::timeout(Duration::from_secs(5), heard.recv())
                .await
                .expect("every committed event reaches every store")
                .unwrap();
            kinds.push(e.kind);
        }
        kinds.sort_by_key(|k| k.as_str());
        assert_eq!(
            kinds,
            vec![
                RegistryEventKind::AliasSet,
                RegistryEventKind::ModelCreated,
                RegistryEventKind::VersionCreated
            ]
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(heard.try_recv().is_err(), "each event once");
    }
}

#[tokio::test]
async fn events_committed_by_one_process_reach_the_other_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = StoreUri::Sqlite(dir.path().join("t.db"));
    let a = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
    let b = Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap());
    events_cross_stores(a, b).await;
}

#[tokio::test]
async fn events_committed_by_one_process_reach_the_other_postgres() {
    let Some(admin) = support::postgres_admin_url("events_cross_stores::postgres") else {
        return;
    };
    let uri: StoreUri = support::fresh_postgres_database(&admin)
        .await
        .parse()
        .unwrap();
    // Opened together, as replicas started at once: the migrations must not race.
    let (a, b) = tokio::join!(
        SqlStore::open(&uri, "mlflow-artifacts:"),
        SqlStore::open(&uri, "mlflow-artifacts:")
    );
    events_cross_stores(Arc::new(a.unwrap()), Arc::new(b.unwrap())).await;
}

on_every_backend!(a_released_lease_is_taken_over_at_once, |s| {
    use twinloop_meta::lease::LeaseKeeper;
    let first = LeaseKeeper::start(s.clone(), "handed");
    let token = first.acquired().await;
    let second = LeaseKeeper::start(s.clone(), "handed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(second.token(), None, "held by the first");
    first.release().await;
    assert_eq!(first.token(), None, "released: it acts no more");
    // Its next attempt is at most RENEW away, well before the lease would have expired.
    let next = tokio::time::timeout(Duration::from_secs(3), second.acquired())
        .await
        .expect("taken over without waiting for the expiry");
    assert_eq!(next, token + 1);
});

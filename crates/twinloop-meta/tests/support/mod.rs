//! Opens a fresh store on every backend the environment offers: SQLite always, PostgreSQL when
//! `TWINLOOP_TEST_POSTGRES_URL` names a server (the test scripts start a throwaway one). With
//! `TWINLOOP_REQUIRE_ALL_BACKENDS=1` a missing PostgreSQL fails the test instead of skipping it.

use sqlx::Executor;
use twinloop_meta::{SqlStore, StoreUri};

pub struct TestStore {
    pub name: &'static str,
    pub store: SqlStore,
    _dir: Option<tempfile::TempDir>,
}

pub async fn all_backends() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let uri = StoreUri::Sqlite(dir.path().join("t.db"));
    let mut stores = vec![TestStore {
        name: "sqlite",
        store: SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap(),
        _dir: Some(dir),
    }];
    match std::env::var("TWINLOOP_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let url = fresh_postgres_database(&admin).await;
            let uri: StoreUri = url.parse().unwrap();
            stores.push(TestStore {
                name: "postgres",
                store: SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap(),
                _dir: None,
            });
        }
        Err(_) if std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref() == Ok("1") => {
            panic!("TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_POSTGRES_URL is not set")
        }
        Err(_) => eprintln!("TWINLOOP_TEST_POSTGRES_URL not set: PostgreSQL backend skipped"),
    }
    stores
}

/// Creates an empty database on the server at `admin_url` and returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin_url = admin_url.replacen("postgresql://", "postgres://", 1);
    let name = format!("tl_{}", uuid_like());
    let pool = sqlx::AnyPool::connect(&admin_url)
        .await
        .expect("connect to test PostgreSQL");
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    pool.close().await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

//! Fresh stores for the behavioural suites, and [`on_every_backend!`], which makes each case one
//! test per backend (`case::sqlite`, `case::postgres`) so that a failure names both. SQLite
//! always runs; PostgreSQL runs when `TWINLOOP_TEST_POSTGRES_URL` names a server (the test
//! scripts start a throwaway one) and otherwise skips with a message, or fails when
//! `TWINLOOP_REQUIRE_ALL_BACKENDS=1`.

use std::sync::Arc;

use sqlx::Executor;
use twinloop_meta::{SqlStore, StoreUri};

/// A store with whatever must outlive it (SQLite's directory).
pub struct TestStore {
    pub store: Arc<SqlStore>,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let uri = StoreUri::Sqlite(dir.path().join("t.db"));
    TestStore {
        store: Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap()),
        _dir: Some(dir),
    }
}

/// A store in a new database on the test PostgreSQL server, or `None` when there is none.
pub async fn postgres(case: &str) -> Option<TestStore> {
    let admin = postgres_admin_url(case)?;
    let uri: StoreUri = fresh_postgres_database(&admin).await.parse().unwrap();
    Some(TestStore {
        store: Arc::new(SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap()),
        _dir: None,
    })
}

/// The test server's URL; without one, a message (or a failure where every backend is required).
pub fn postgres_admin_url(case: &str) -> Option<String> {
    match std::env::var("TWINLOOP_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref() == Ok("1") => {
            panic!("TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_POSTGRES_URL is not set")
        }
        Err(_) => {
            eprintln!("{case}: skipped on PostgreSQL (TWINLOOP_TEST_POSTGRES_URL is not set)");
            None
        }
    }
}

/// Defines `mod $name` with the tests `sqlite` and `postgres`, each running `$body` on a fresh
/// store of that backend. `|s: &T|` binds `s` to the store as `&T` (`&SqlStore` or a trait
/// object); `|s|` binds the shared `Arc<SqlStore>`, for cases that spawn tasks.
macro_rules! on_every_backend {
    ($(#[$meta:meta])* $name:ident, |$s:ident: $ty:ty| $body:block) => {
        on_every_backend!(@define $(#[$meta])* $name, |store| {
            let $s: $ty = &*store;
            $body
        });
    };
    ($(#[$meta:meta])* $name:ident, |$s:ident| $body:block) => {
        on_every_backend!(@define $(#[$meta])* $name, |store| {
            let $s = store;
            $body
        });
    };
    (@define $(#[$meta:meta])* $name:ident, |$store:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($store: ::std::sync::Arc<::twinloop_meta::SqlStore>) $body

            #[tokio::test]
            async fn sqlite() {
                let store = $crate::support::sqlite().await;
                case(store.store.clone()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let case_name = concat!(stringify!($name), "::postgres");
                if let Some(store) = $crate::support::postgres(case_name).await {
                    case(store.store.clone()).await;
                }
            }
        }
    };
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
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    // Cases now run in parallel threads of one process: the counter keeps names apart.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}_{}",
        nanos,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

//! D4: PostgreSQL crashes (`pg_ctl stop -m immediate`) under load and comes back a few seconds
//! later. While it is down every request is answered, soon, and a refusal is a 5xx in MLflow's
//! shape (the stock client retries those); once the server's breaker has seen the outage, reads
//! and writes are answered 503 within a second; once it is back the same server process writes
//! again within 5 s, and the ledger finds every acknowledged write.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::harness::{OwnPostgres, start_timed};
use crate::ledger::{Ledger, LedgerClient, Mix, Rng, Workload};

/// How long PostgreSQL stays down: longer than a request waits for a connection (5 s), so some
/// requests must be answered while it is still down.
const OUTAGE: Duration = Duration::from_secs(8);

/// Longest a request may take while PostgreSQL is down: it must be answered, not left waiting
/// for the database to come back.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The bound on a 503 once the breaker has seen the outage (a design bound: without the
/// breaker each request waits for a connection up to the store's 5 s budget).
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// The bound on the first acknowledged write after PostgreSQL is back.
const RECOVERED_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_crash_mid_load_is_answered_with_5xx_and_the_server_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    // The cluster runs as the `postgres` user, who must reach its directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(pg) = OwnPostgres::start(&dir.path().join("pg")) else {
        return;
    };
    let root = dir.path().join("server");
    std::fs::create_dir_all(&root).unwrap();
    let (server, _) = start_timed(&root, &pg.url).await;
    let ledger = Ledger::new();
    let client = LedgerClient::new(ledger.clone(), &server.url, Duration::from_secs(60));
    let experiment = client.experiment("outage").await;
    client.registered_model("faults").await;
    let mut rng = Rng::new(Rng::seed());
    let mix = Mix {
        writers: 4,
        timeout: Duration::from_secs(60),
        ..Mix::default()
    };
    let load = Workload::start(&ledger, &server.url, &experiment, "faults", &mix, &mut rng);
    tokio::time::sleep(Duration::from_secs(1)).await;

    pg.crash();
    let down = Instant::now();
    let read_url = format!(
        "{}/api/2.0/mlflow/experiments/get?experiment_id={experiment}",
        server.url
    );
    let (http, read_url) = (&client.http, read_url.as_str());
    let read = move || async move {
        let began = Instant::now();
        let status = http
            .get(read_url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        (status, began.elapsed())
    };
    // The breaker has seen the outage once a read is refused at once.
    let opened = loop {
        let (status, took) = read().await;
        if status == Some(503) && took <= REFUSED_WITHIN {
            break down.elapsed();
        }
        assert!(
            down.elapsed() < OUTAGE - Duration::from_secs(2),
            "no read was refused within {} ms while PostgreSQL was down (last: {status:?} after \
             {} ms)",
            REFUSED_WITHIN.as_millis(),
            took.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // From then on, every read and write for the rest of the outage.
    let mut refused_after_open = Vec::new();
    while down.elapsed() < OUTAGE {
        let (status, took) = read().await;
        assert_eq!(status, Some(503), "a read once the breaker was open");
        refused_after_open.push(took);
        let began = Instant::now();
        let status = client.create_run(&experiment).await.status();
        let took = began.elapsed();
        assert_eq!(status, Some(503), "a write once the breaker was open");
        refused_after_open.push(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refused_after_open.sort();
    pg.resume();
    let up = Instant::now();
    let recovered = loop {
        if client.create_run(&experiment).await.acked().is_some() {
            break up.elapsed();
        }
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no write succeeded within 30 s of PostgreSQL coming back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.stop().await;

    // Every request in flight at some moment of the outage.
    let during: Vec<_> = seen
        .iter()
        .filter(|o| o.sent < up && o.sent + o.took > down)
        .collect();
    let refused: Vec<_> = during
        .iter()
        .filter(|o| o.status.is_some_and(|s| s >= 300))
        .collect();
    let slowest = during.iter().map(|o| o.took).max().unwrap_or_default();
    let statuses: BTreeSet<_> = during.iter().map(|o| o.status).collect();
    let refused_ops: BTreeSet<_> = refused.iter().map(|o| o.op).collect();
    let slowest_refusal = refused_after_open.last().copied().unwrap_or_default();
    eprintln!(
        "PostgreSQL down {} ms: {} requests in flight meanwhile, {} refused ({refused_ops:?}; \
         statuses {statuses:?}), slowest answer {} ms; breaker open {} ms after the crash, then \
         {} reads and writes refused, median {} ms, slowest {} ms; first write acknowledged {} ms \
         after it was back",
        OUTAGE.as_millis(),
        during.len(),
        refused.len(),
        slowest.as_millis(),
        opened.as_millis(),
        refused_after_open.len(),
        refused_after_open
            .get(refused_after_open.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_millis(),
        slowest_refusal.as_millis(),
        recovered.as_millis()
    );
    assert!(
        !refused_after_open.is_empty(),
        "no request was sent while the breaker was open"
    );
    assert!(
        slowest_refusal <= REFUSED_WITHIN,
        "a request waited {} ms for its 503 once the breaker had seen the outage",
        slowest_refusal.as_millis()
    );
    assert!(
        recovered <= RECOVERED_WITHIN,
        "the first write was acknowledged {} ms after PostgreSQL was back",
        recovered.as_millis()
    );
    assert!(
        during.iter().all(|o| o.status.is_some()),
        "a request got no answer while PostgreSQL was down"
    );
    assert!(
        !refused.is_empty(),
        "no request was refused: the outage was not seen"
    );
    for o in &refused {
        assert!(
            o.status.is_some_and(|s| s >= 500) && o.mlflow_shaped,
            "{o:?}: a refusal during the outage must be a 5xx in MLflow's shape"
        );
    }
    assert!(
        slowest <= ANSWER_WITHIN,
        "a request waited {} ms while PostgreSQL was down",
        slowest.as_millis()
    );
    ledger
        .verify(&server.url)
        .await
        .assert_clean("after PostgreSQL came back");
}

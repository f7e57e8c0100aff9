//! D1: `kill -9` at random moments under F1's load, restart on the same store, and the ledger
//! must find every acknowledged write whole and no batch torn; the time from restart to the
//! first answered API read is printed (the targets, ≤ 2 s on SQLite and ≤ 5 s on PostgreSQL, are
//! wall-clock figures for docs/reliability.md, not assertions). 25 cycles per backend in CI;
//! `TWINLOOP_FAULTS_CYCLES=1000` for the long run.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{self, spread, start_timed};
use crate::ledger::{Ledger, LedgerClient, Mix, Rng, Workload};
use crate::support;

/// Runs the kill cycles on `backend_uri`, with artifacts under `root`.
async fn kill_cycles(root: &Path, backend_uri: &str, label: &str) {
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let cycles = harness::cycles(25);
    let ledger = Ledger::new();
    let (mut server, _) = start_timed(root, backend_uri).await;
    let setup = LedgerClient::new(ledger.clone(), &server.url, Duration::from_secs(30));
    let experiment = setup.experiment("faults").await;
    setup.registered_model("faults").await;

    let began = Instant::now();
    let mut ready = Vec::new();
    let mut mark = 0;
    for cycle in 0..cycles {
        let load = Workload::start(
            &ledger,
            &server.url,
            &experiment,
            "faults",
            &Mix::default(),
            &mut rng,
        );
        tokio::time::sleep(Duration::from_millis(rng.between(100, 800))).await;
        server.kill9();
        load.stop().await;

        let (restarted, took) = start_timed(root, backend_uri).await;
        server = restarted;
        ready.push(took);
        ledger
            .verify_since(mark, &server.url)
            .await
            .assert_clean(&format!("{label}, cycle {cycle}, seed {seed}"));
        mark = ledger.mark();
    }
    let verdict = ledger.verify(&server.url).await;
    verdict.assert_clean(&format!("{label}, after all cycles, seed {seed}"));
    assert!(
        ledger.acked() > cycles,
        "too few acknowledged writes to judge: {}",
        ledger.acked()
    );
    eprintln!(
        "{label}: {cycles} kill -9 cycles in {:.1} s: {} writes sent, {} acknowledged, 0 lost, \
         0 torn; ready after restart: {}",
        began.elapsed().as_secs_f64(),
        verdict.checked,
        verdict.acked,
        spread(&ready)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_cycles_under_load_lose_no_acknowledged_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", dir.path().join("twinloop.db").display());
    kill_cycles(dir.path(), &uri, "SQLite").await;
    assert_eq!(
        harness::sqlite_integrity(&dir.path().join("twinloop.db")),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_cycles_under_load_lose_no_acknowledged_write_on_postgres() {
    let Some(uri) = support::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    kill_cycles(dir.path(), &uri, "PostgreSQL").await;
    assert_eq!(harness::pg_amcheck(&uri), "ok");
}

//! D2: the SQLite database and the artifacts on a small tmpfs that fills up. Writes are answered
//! with MLflow's error shape and a 5xx (never a dropped connection or a dead server), nothing
//! half-written becomes visible, reads keep working, writes resume once space is freed without a
//! restart, and the database passes `PRAGMA integrity_check`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{self, Tmpfs, start_timed};
use crate::ledger::{Ledger, LedgerClient, Outcome, Rng, is_mlflow_error};

/// Writes zeros to `path` until the file system refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 512] {
        let zeros = vec![0u8; chunk];
        while file.write_all(&zeros).is_ok() {}
    }
    let _ = file.sync_all();
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Judges one write made while the disk is full: acknowledged, or refused with a 5xx in MLflow's
/// shape that names no server path; never unanswered. Returns whether it was refused.
fn judge<T>(op: &str, outcome: Outcome<T>, root: &Path) -> bool {
    match outcome {
        Outcome::Acked(_) => false,
        Outcome::Refused { status, body } => {
            assert!(
                (500..600).contains(&status) && is_mlflow_error(&body),
                "{op} on a full disk: {status} {body}"
            );
            assert!(
                !body.to_string().contains(root.to_str().unwrap()),
                "{op} on a full disk names the server's path: {body}"
            );
            true
        }
        Outcome::NoAnswer(e) => panic!("{op} on a full disk got no answer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_writes_cleanly_keeps_reads_and_resumes_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = match Tmpfs::mount(&dir.path().join("disk"), "32m") {
        Ok(disk) => disk,
        Err(why) => return harness::skip(&why),
    };
    let root = disk.path.clone();
    let db = root.join("twinloop.db");
    let uri = format!("sqlite:///{}", db.display());
    let (mut server, _) = start_timed(&root, &uri).await;
    let ledger = Ledger::new();
    let client = LedgerClient::new(ledger.clone(), &server.url, Duration::from_secs(30));
    let experiment = client.experiment("disk").await;
    client.registered_model("disk").await;
    let run = client.create_run(&experiment).await.acked().unwrap();
    let mut rng = Rng::new(Rng::seed());
    for _ in 0..10 {
        client.log_batch(&run, 100).await.acked().unwrap();
        client
            .upload("before", rng.bytes(64 * 1024))
            .await
            .acked()
            .unwrap();
    }
    client.create_model_version("disk").await.acked().unwrap();

    let filler = root.join("filler");
    fill(&filler);
    let mut refused = 0;
    for _ in 0..20 {
        refused += usize::from(judge("log-batch", client.log_batch(&run, 300).await, &root));
        let bytes = rng.bytes(256 * 1024);
        refused += usize::from(judge("upload", client.upload("full", bytes).await, &root));
        refused += usize::from(judge(
            "runs/create",
            client.create_run(&experiment).await,
            &root,
        ));
        let version = client.create_model_version("disk").await;
        refused += usize::from(judge("model-versions/create", version, &root));
    }
    assert!(refused > 0, "no write was refused: the disk never filled");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited when its disk filled"
    );
    ledger
        .verify(&server.url)
        .await
        .assert_clean("reads while the disk is full");

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        let batch = client.log_batch(&run, 300).await.acked().is_some();
        let upload = client.upload("after", rng.bytes(256 * 1024)).await;
        if batch && upload.acked().is_some() {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "writes did not resume within 30 s of space being freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "disk full: {refused} writes refused cleanly; writes resumed {} ms after space was freed",
        freed.elapsed().as_millis()
    );
    ledger
        .verify(&server.url)
        .await
        .assert_clean("after space was freed");
    let staged: Vec<_> = files_under(&root.join("artifacts"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains('#'))
        .collect();
    assert!(staged.is_empty(), "half-written uploads left: {staged:?}");

    server.kill9();
    assert_eq!(harness::sqlite_integrity(&db), "ok");
    let (server, _) = start_timed(&root, &uri).await;
    ledger
        .verify(&server.url)
        .await
        .assert_clean("after a restart");
}

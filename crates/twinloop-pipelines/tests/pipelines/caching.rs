//! A3–A6: the cache hits on content, invalidates exactly, cuts off early and checks its blobs.

use std::time::{Duration, SystemTime};

use crate::support::{Repo, state, states};
use twinloop_pipelines::state::StepState::{Cached, Succeeded};

/// prep reads an external file, train runs a repo script with a param and a lock file, eval
/// reads train's model. Each appends its name to `counter.txt` when it executes.
const PIPELINE: &str = r#"pipeline: ct
params:
  lr: 0.1
steps:
  prep:
    run: echo prep >> counter.txt && sort data/raw.csv > "$TWINLOOP_OUTPUT_CLEAN"
    inputs:
      raw: data/raw.csv
    outputs:
      clean: {kind: file}
  train:
    run: sh src/train.sh ${{ params.lr }}
    inputs:
      clean: ${{ steps.prep.outputs.clean }}
    env:
      lock: requirements.txt
    outputs:
      model: {kind: file}
  eval:
    run: echo eval >> counter.txt && wc -c < "$TWINLOOP_INPUT_MODEL" > "$TWINLOOP_OUTPUT_SCORE"
    inputs:
      model: ${{ steps.train.outputs.model }}
    outputs:
      score: {kind: file}
"#;

const TRAIN: &str = "echo train >> counter.txt\n(cat \"$TWINLOOP_INPUT_CLEAN\"; echo \"lr=$1\") > \"$TWINLOOP_OUTPUT_MODEL\"\n";

fn repo() -> Repo {
    let repo = Repo::new();
    repo.write("data/raw.csv", "b\na\n");
    repo.write("src/train.sh", TRAIN);
    repo.write("requirements.txt", "numpy==2.0\n");
    repo
}

fn touch(repo: &Repo, relative: &str) {
    let file = std::fs::File::options()
        .append(true)
        .open(repo.path().join(relative))
        .unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

#[tokio::test]
async fn a3_a_second_run_is_all_cached() {
    let repo = repo();
    let pipeline = repo.pipeline(PIPELINE);
    let first = repo.run(&pipeline).await;
    assert_eq!(
        states(&first).iter().map(|s| s.1).collect::<Vec<_>>(),
        [Succeeded; 3]
    );
    let second = repo.run(&pipeline).await;
    assert_eq!(
        states(&second).iter().map(|s| s.1).collect::<Vec<_>>(),
        [Cached; 3]
    );
    assert_eq!(
        second.step("train").unwrap().cached_from.as_deref(),
        Some(first.run_id.as_str())
    );
    assert_eq!(repo.read("counter.txt"), "prep\ntrain\neval\n");
}

#[tokio::test]
async fn a4_invalidation_is_exact() {
    let repo = repo();
    let pipeline = repo.pipeline(PIPELINE);
    repo.run(&pipeline).await;

    // A param only train reads: train and what reads its (changed) model re-run.
    let report = repo
        .run_with(&pipeline, |o| o.params = vec![("lr".into(), "0.2".into())])
        .await;
    assert_eq!(
        states(&report),
        [
            ("prep".into(), Cached),
            ("train".into(), Succeeded),
            ("eval".into(), Succeeded)
        ]
    );

    // Touching code without changing it changes nothing.
    touch(&repo, "src/train.sh");
    let report = repo.run(&pipeline).await;
    assert!(
        states(&report).iter().all(|s| s.1 == Cached),
        "{:?}",
        states(&report)
    );

    // Editing the code re-runs train and, since its model changes, eval.
    repo.write(
        "src/train.sh",
        &format!("{TRAIN}echo v2 >> \"$TWINLOOP_OUTPUT_MODEL\"\n"),
    );
    let report = repo.run(&pipeline).await;
    assert_eq!(
        states(&report),
        [
            ("prep".into(), Cached),
            ("train".into(), Succeeded),
            ("eval".into(), Succeeded)
        ]
    );

    // Editing the lock file re-runs the step with that environment; its bytes are the same,
    // so eval stays cached.
    repo.write("requirements.txt", "numpy==2.1\n");
    let report = repo.run(&pipeline).await;
    assert_eq!(
        states(&report),
        [
            ("prep".into(), Cached),
            ("train".into(), Succeeded),
            ("eval".into(), Cached)
        ]
    );

    // New bytes in an external input re-run its consumers; a new mtime alone does not.
    touch(&repo, "data/raw.csv");
    let report = repo.run(&pipeline).await;
    assert!(
        states(&report).iter().all(|s| s.1 == Cached),
        "{:?}",
        states(&report)
    );
    repo.write("data/raw.csv", "c\nb\na\n");
    let report = repo.run(&pipeline).await;
    assert!(
        states(&report).iter().all(|s| s.1 == Succeeded),
        "{:?}",
        states(&report)
    );
}

#[tokio::test]
async fn a5_identical_bytes_cut_off_downstream() {
    let repo = repo();
    let pipeline = repo.pipeline(PIPELINE);
    repo.run(&pipeline).await;
    repo.write("src/train.sh", &format!("# same output, new code\n{TRAIN}"));
    let report = repo.run(&pipeline).await;
    assert_eq!(
        states(&report),
        [
            ("prep".into(), Cached),
            ("train".into(), Succeeded),
            ("eval".into(), Cached)
        ]
    );
}

#[tokio::test]
async fn a6_a_hit_needs_its_blobs() {
    let repo = repo();
    let pipeline = repo.pipeline(PIPELINE);
    let first = repo.run(&pipeline).await;
    let blob = |step: &str, output: &str| {
        let digest = &first.step(step).unwrap().outputs[output].digest;
        repo.home()
            .join("cas/sha256")
            .join(&digest[..2])
            .join(digest)
    };

    std::fs::remove_file(blob("train", "model")).unwrap();
    let report = repo.run(&pipeline).await;
    assert_eq!(
        states(&report),
        [
            ("prep".into(), Cached),
            ("train".into(), Succeeded),
            ("eval".into(), Cached)
        ]
    );
    assert!(
        blob("train", "model").is_file(),
        "the re-run stored the blob again"
    );

    let path = blob("prep", "clean");
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&path, permissions).unwrap();
    std::fs::write(&path, "corrupt").unwrap();
    let report = repo.run(&pipeline).await;
    assert_eq!(
        state(&report, "prep"),
        Cached,
        "without --verify only existence is checked"
    );
    let report = repo.run_with(&pipeline, |o| o.verify = true).await;
    assert_eq!(
        state(&report, "prep"),
        Succeeded,
        "--verify rehashes and catches the corruption"
    );
    assert_eq!(state(&report, "train"), Cached);
}

#[tokio::test]
async fn no_cache_and_refresh() {
    let repo = repo();
    let pipeline = repo.pipeline(PIPELINE);
    repo.run(&pipeline).await;
    let report = repo
        .run_with(&pipeline, |o| o.refresh = vec!["train".into()])
        .await;
    assert_eq!(
        states(&report),
        [
            ("prep".into(), Cached),
            ("train".into(), Succeeded),
            ("eval".into(), Succeeded)
        ]
    );
    let report = repo.run_with(&pipeline, |o| o.no_cache = true).await;
    assert!(states(&report).iter().all(|s| s.1 == Succeeded));
}

//! A16 through the real binary: the gate's paired bootstrap. On one holdout, a candidate that
//! is the champion plus a little jitter scores a higher ROC AUC by noise only and is not blessed
//! with `confidence: 0.95` (the run ends REJECTED, exit 3); a candidate with a real gap is
//! blessed (exit 0); and the bootstrap is seeded by the run id, so two gates of one run give the
//! same blessing while another run draws other resamples and reaches the same verdict.
//!
//! The models are logistic models written here with twinloop-learn's exporter; the champion is
//! registered through the server's MLflow API, and `run:` steps hand the candidates to the gate.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use twinloop_learn::bootstrap::SplitMix64;
use twinloop_learn::linear::{LogisticModel, Standardizer};
use twinloop_learn::metrics::{Metric, Scores, compute};
use twinloop_learn::onnx::{Provenance, export_logistic};

use crate::support::{TestServer, post_ok, register_model};

const ROWS: usize = 2_000;
/// The jitter's weight: small beside the signal's 1, so it reorders only near-ties.
const JITTER: f64 = 0.1;

/// The holdout: `y` depends on `s1` and `s2` equally; `jitter` is independent of everything.
/// Values are rounded as the CSV writes them, so that what is computed here is what the gate
/// reads.
struct Holdout {
    s1: Vec<f64>,
    s2: Vec<f64>,
    jitter: Vec<f64>,
    y: Vec<f64>,
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

impl Holdout {
    fn new(seed: u64) -> Holdout {
        let mut rng = SplitMix64::new(seed);
        let mut h = Holdout {
            s1: Vec::new(),
            s2: Vec::new(),
            jitter: Vec::new(),
            y: Vec::new(),
        };
        for _ in 0..ROWS {
            let s1 = round4(rng.unit() * 4.0 - 2.0);
            let s2 = round4(rng.unit() * 4.0 - 2.0);
            let jitter = round4(rng.unit() * 4.0 - 2.0);
            let y = f64::from(u8::from(rng.unit() < sigmoid(s1 + s2)));
            h.s1.push(s1);
            h.s2.push(s2);
            h.jitter.push(jitter);
            h.y.push(y);
        }
        h
    }

    fn auc(&self, margin: impl Fn(usize) -> f64) -> f64 {
        let p = (0..ROWS).map(|i| sigmoid(margin(i))).collect();
        compute(Metric::RocAuc, &self.y, &Scores::Probabilities(p)).unwrap()
    }

    fn csv(&self) -> String {
        let mut out = String::from("s1,s2,jitter,y\n");
        for i in 0..ROWS {
            out.push_str(&format!(
                "{:.4},{:.4},{:.4},{}\n",
                self.s1[i], self.s2[i], self.jitter[i], self.y[i]
            ));
        }
        out
    }
}

/// The first holdout on which the jittered champion's point ROC AUC beats the champion's: the
/// case a point comparison gets wrong.
fn holdout_where_noise_looks_better() -> Holdout {
    (1..200)
        .map(Holdout::new)
        .find(|h| {
            let champion = h.auc(|i| h.s1[i]);
            let jittered = h.auc(|i| h.s1[i] + JITTER * h.jitter[i]);
            jittered - champion > 1e-4
        })
        .expect("some holdout where the jitter helps by chance")
}

/// `sigmoid(Σ weight · feature)` as ONNX, the features named so the gate reads those columns.
fn model(features: &[(&str, f64)]) -> Vec<u8> {
    let n = features.len();
    let fitted = LogisticModel {
        standardizer: Standardizer {
            mean: vec![0.0; n],
            scale: vec![1.0; n],
        },
        weights: features.iter().map(|(_, w)| *w).collect(),
        intercept: 0.0,
        iterations: 0,
        converged: true,
    };
    let provenance = Provenance {
        trainer: "logistic_regression".into(),
        features: features.iter().map(|(f, _)| (*f).to_owned()).collect(),
        params: json!({}),
        train_metrics: Default::default(),
    };
    export_logistic(&fitted, &provenance).unwrap()
}

/// A pipeline whose `train` step hands `models/<candidate>.onnx` to each gate of `gates`, all
/// alike, and whose `finally:` step keeps each blessing as `blessings/<run>-<gate>.json`.
fn pipeline(name: &str, candidate: &str, gates: &[&str]) -> String {
    let mut yaml = format!(
        "pipeline: {name}\nsteps:\n  train:\n    run: cp models/{candidate}.onnx \"$TWINLOOP_OUTPUT_MODEL\"\n    inputs: {{model: models/{candidate}.onnx}}\n    outputs: {{model: {{kind: file}}}}\n"
    );
    for gate in gates {
        yaml.push_str(&format!(
            "  {gate}:\n    uses: model.evaluate@1\n    with:\n      candidate: ${{{{ steps.train.outputs.model }}}}\n      baseline: models:/a16@champion\n      data: holdout.csv\n      label: y\n      metrics:\n        roc_auc: {{min_absolute_change: 0}}\n      confidence: 0.95\n"
        ));
    }
    yaml.push_str("finally:\n  keep:\n    inputs:\n");
    for gate in gates {
        yaml.push_str(&format!(
            "      {gate}: ${{{{ steps.{gate}.outputs.blessing }}}}\n"
        ));
    }
    let copies: Vec<String> = gates
        .iter()
        .map(|g| {
            format!(
                "cp \"$TWINLOOP_INPUT_{}\" \"blessings/${{{{ run.id }}}}-{g}.json\"",
                g.to_uppercase()
            )
        })
        .collect();
    yaml.push_str(&format!(
        "    run: mkdir -p blessings && {}\n",
        copies.join(" && ")
    ));
    yaml
}

/// A standalone `pipeline run --json` on the store the server left.
fn run(root: &Path, repo: &Path, file: &str) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .current_dir(repo)
        .args(["pipeline", "--repo"])
        .arg(repo)
        .args(["run", file, "--json", "--backend-store-uri"])
        .arg(format!("sqlite:///{}", root.join("twinloop.db").display()))
        .arg("--artifacts-destination")
        .arg(root.join("artifacts"))
        .output()
        .expect("run twinloop");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

fn blessing(repo: &Path, report: &Value, gate: &str) -> Value {
    let run = report["run_id"].as_str().unwrap();
    let path = repo.join(format!("blessings/{run}-{gate}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn roc_auc(blessing: &Value, side: &str) -> f64 {
    blessing[side]["roc_auc"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a16_noise_is_not_blessed_a_real_gap_is_and_the_run_id_seeds_the_bootstrap() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    let models = repo.join("models");
    std::fs::create_dir_all(models.join("champion")).unwrap();
    let holdout = holdout_where_noise_looks_better();
    std::fs::write(repo.join("holdout.csv"), holdout.csv()).unwrap();
    std::fs::write(models.join("champion/model.onnx"), model(&[("s1", 1.0)])).unwrap();
    std::fs::write(
        models.join("champion/MLmodel"),
        "flavors:\n  onnx:\n    data: model.onnx\n",
    )
    .unwrap();
    std::fs::write(
        models.join("jittered.onnx"),
        model(&[("s1", 1.0), ("jitter", JITTER)]),
    )
    .unwrap();
    std::fs::write(
        models.join("better.onnx"),
        model(&[("s1", 1.0), ("s2", 1.0)]),
    )
    .unwrap();
    for (name, candidate, gates) in [
        ("noise", "jittered", &["evaluate"][..]),
        ("gap", "better", &["evaluate", "evaluate_again"][..]),
    ] {
        std::fs::write(
            repo.join(format!("{name}.yaml")),
            pipeline(name, candidate, gates),
        )
        .unwrap();
    }

    let mut server = TestServer::start_sqlite(root.path());
    let http = reqwest::Client::new();
    let version = register_model(
        &http,
        &server.url,
        "a16",
        &models.join("champion"),
        "a16/champion",
        None,
    )
    .await;
    post_ok(
        &http,
        &server.api("registered-models/alias"),
        &json!({"name": "a16", "alias": "champion", "version": version}),
    )
    .await;
    server.stop();

    // Better than the champion by noise only: a point comparison would bless it.
    let (out, report) = run(root.path(), &repo, "noise.yaml");
    assert_eq!(out.status.code(), Some(3), "{report:#}");
    assert_eq!(report["status"], "REJECTED");
    let noise = blessing(&repo, &report, "evaluate");
    assert_eq!(noise["blessed"], false, "{noise:#}");
    assert_eq!(noise["baseline_version"], version.as_str());
    assert!(
        roc_auc(&noise, "candidate") > roc_auc(&noise, "baseline"),
        "the jitter raised the point value: {noise:#}"
    );
    let interval = &noise["intervals"]["roc_auc"];
    assert!(
        interval["low"].as_f64().unwrap() < 0.0 && interval["high"].as_f64().unwrap() > 0.0,
        "the 95% interval of the delta holds 0: {interval}"
    );

    // A real gap: blessed, and the run goes on (exit 0). Both gates of the run share its seed,
    // so they write the same blessing.
    let (out, first) = run(root.path(), &repo, "gap.yaml");
    assert_eq!(out.status.code(), Some(0), "{first:#}");
    assert_eq!(first["status"], "SUCCEEDED");
    let gap = blessing(&repo, &first, "evaluate");
    assert_eq!(gap["blessed"], true, "{gap:#}");
    assert!(gap["intervals"]["roc_auc"]["low"].as_f64().unwrap() > 0.0);
    assert_eq!(blessing(&repo, &first, "evaluate_again"), gap);
    assert_ne!(gap["seed"], noise["seed"]);

    // Another run: other resamples, the same verdict.
    let (out, second) = run(root.path(), &repo, "gap.yaml");
    assert_eq!(out.status.code(), Some(0), "{second:#}");
    let again = blessing(&repo, &second, "evaluate");
    assert_eq!(again["blessed"], true);
    assert_ne!(again["seed"], gap["seed"]);
    assert_ne!(again["intervals"], gap["intervals"]);
    assert_eq!(again["candidate"], gap["candidate"]);
    assert_eq!(again["baseline"], gap["baseline"]);
}

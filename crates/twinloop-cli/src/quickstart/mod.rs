//! `twinloop quickstart`: the whole dual loop on generated data, embedded defaults, one command
//! (design: pipelines.md §12). Features are applied and materialized; the training pipeline runs
//! (validate → training set → built-in trainer → gate → register v1 → deploy); a monitor watches
//! the deployment while traffic with labels flows; the data shifts, the monitor's rule fires
//! `retrain_requested`, the pipeline runs by itself, the gate blesses v2 against champion v1 on
//! the new holdout, the canary promotes it, and the alert resolves. Exit 0 only if the loop
//! really closed (or, with `--scenario bad-model`, if the gate really rejected).

mod data;
mod loop_state;
mod repo;
mod summary;
mod traffic;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::client::{Api, ServerConnection};
use crate::output::outln;
use crate::server::{Running, ServerArgs};
use data::{DAYS, SHIFT_DAY, Transaction};
use loop_state::Loop;
use summary::{Stage, Summary};
use traffic::{Sent, Traffic};

/// Marks a directory the quickstart wrote, so that a rerun may replace it and nothing else.
const MARKER: &str = ".twinloop-quickstart";
const SEED: u64 = 20_261_202;

#[derive(Args)]
pub struct QuickstartArgs {
    /// Where the quickstart writes its repository, data and store (an earlier quickstart's
    /// directory is replaced; any other non-empty directory is refused).
    #[arg(long, default_value = "twinloop-quickstart")]
    dir: PathBuf,
    /// Keep the server running at the end, to explore it (Ctrl-C stops it).
    #[arg(long)]
    keep: bool,
    /// Train with scikit-learn (`src/train.py`, exported with skl2onnx) instead of the built-in
    /// Rust trainer; needs `python3` with scikit-learn, skl2onnx, pandas and mlflow.
    #[arg(long)]
    python: bool,
    /// `bad-model`: the retrain is broken on purpose; the gate must reject it, the champion
    /// must stay and no canary may start.
    #[arg(long, value_enum, default_value_t = Scenario::Good)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Good,
    BadModel,
}

pub fn run(args: QuickstartArgs) -> ExitCode {
    let Some(runtime) = crate::output::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(quickstart(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--python` needs an interpreter with the trainer's libraries: say which are missing now
/// rather than fail in the middle of the loop.
fn python_ready() -> Result<()> {
    let check = std::process::Command::new("python3")
        .args(["-c", "import mlflow, pandas, sklearn, skl2onnx"])
        .output()
        .context("--python needs python3 on PATH")?;
    if !check.status.success() {
        bail!(
            "--python needs scikit-learn, skl2onnx, pandas and mlflow in python3: {} (hint: pip install scikit-learn skl2onnx pandas mlflow, or leave out --python for the built-in trainer)",
            String::from_utf8_lossy(&check.stderr)
                .lines()
                .last()
                .unwrap_or("import failed")
        );
    }
    Ok(())
}

/// The directory, empty and marked as the quickstart's.
fn prepare(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and not an earlier quickstart's (hint: pass --dir with a new directory)",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "written by twinloop quickstart\n")?;
    Ok(std::path::absolute(dir)?)
}

fn days(rows: &[Transaction], from: i64, to: i64) -> Vec<Transaction> {
    rows.iter()
        .filter(|t| (from..to).contains(&t.day))
        .cloned()
        .collect()
}

async fn quickstart(args: QuickstartArgs) -> Result<()> {
    let bad_model = args.scenario == Scenario::BadModel;
    if args.python {
        python_ready()?;
    }
    let started = Instant::now();
    let mut summary = Summary::default();
    let dir = prepare(&args.dir)?;
    let history = data::generate(SEED);

    let stage = Stage::begin("generate data and write the repository");
    let past = days(&history, 0, SHIFT_DAY);
    data::write_transactions(&dir.join("data/transactions.parquet"), &past)?;
    data::write_labels(&dir.join("data/labels.parquet"), &past)?;
    let store_uri = format!(
        "sqlite:///{}",
        dir.join("twinloop-data/twinloop.db").display()
    );
    let artifacts = dir.join("twinloop-data/artifacts").display().to_string();
    repo::write(&dir, &store_uri, false, args.python)?;
    summary.done(
        stage,
        format!("{} transactions over {SHIFT_DAY} days", past.len()),
    );

    let stage = Stage::begin("start an embedded server");
    let server = Running::start(&ServerArgs::embedded(store_uri.clone(), artifacts, &dir)).await?;
    let api = Arc::new(Api::new(&ServerConnection::to(&server.url))?);
    summary.done(stage, server.url.clone());

    let outcome = close_the_loop(
        &dir,
        &history,
        &server,
        api.clone(),
        (bad_model, args.python),
        &mut summary,
    )
    .await;
    let outcome = match outcome {
        Ok(()) => {
            summary
                .print(&dir, &server.url, &api, bad_model, started.elapsed())
                .await
        }
        Err(e) => Err(e),
    };
    if args.keep && outcome.is_ok() {
        outln!(
            "\nthe server keeps running at {} (Ctrl-C stops it)",
            server.url
        );
        crate::server::shutdown_signal().await;
    }
    server.stop().await?;
    outcome
}

async fn close_the_loop(
    dir: &Path,
    history: &[Transaction],
    server: &Running,
    api: Arc<Api>,
    (bad_model, python): (bool, bool),
    summary: &mut Summary,
) -> Result<()> {
    let lp = Loop { api: api.clone() };

    let stage = Stage::begin("features: apply and materialize");
    let features = lp.features(dir, server.store.clone()).await?;
    summary.done(stage, features);

    let stage = Stage::begin(
        "pipeline fraud-train: validate → training set → train → gate → register → deploy",
    );
    lp.apply(dir).await?;
    let first = lp.run_manually().await?;
    let first = lp.wait_for_run(&first, Duration::from_secs(120)).await?;
    if first.state != "SUCCEEDED" {
        bail!(
            "the first run of fraud-train ended {}: {}",
            first.state,
            first.reason.unwrap_or_default()
        );
    }
    let v1 = lp
        .champion()
        .await?
        .context("the first run registered no champion")?;
    lp.wait_until_serving(&v1, Duration::from_secs(60)).await?;
    summary.runs.push(first.id.clone());
    summary.done(
        stage,
        format!(
            "run {} SUCCEEDED; fraud v{v1} is champion and serves",
            &first.id[..8]
        ),
    );

    let stage = Stage::begin("monitor the deployment (performance with labels, drift vs training)");
    lp.create_monitor().await?;
    summary.done(
        stage,
        "monitor fraud-watch: retrain when roc_auc < 0.75".into(),
    );

    let sent = Arc::new(Sent::default());
    let traffic = Arc::new(Traffic {
        url: server.url.clone(),
        http: reqwest::Client::new(),
        api: api.clone(),
        sent: sent.clone(),
    });
    let stage = Stage::begin("traffic from normal days, with labels");
    let normal = days(history, SHIFT_DAY - 3, SHIFT_DAY);
    traffic.replay(&normal, "normal").await?;
    let windows = lp.wait_for_windows(2, Duration::from_secs(30)).await?;
    if lp.firing().await? {
        bail!("the monitor fired on normal traffic: {windows:?}");
    }
    summary.done(
        stage,
        format!(
            "{} requests; roc_auc per window {windows:?}; no alert",
            normal.len() / 10
        ),
    );

    let stage = Stage::begin("the data shifts: new transactions and labels arrive");
    data::write_transactions(&dir.join("data/transactions.parquet"), history)?;
    data::write_labels(&dir.join("data/labels.parquet"), history)?;
    if bad_model {
        std::fs::write(
            dir.join("pipelines/fraud-train.yaml"),
            repo::pipeline_yaml(true, python),
        )?;
        lp.apply(dir).await?;
    }
    summary.done(
        stage,
        if bad_model {
            "days 16-23 arrive; and the pipeline loses all features but `hour` (the bad edit)"
                .into()
        } else {
            format!(
                "days {SHIFT_DAY}-{} arrive: far-away frauds, longer distances",
                DAYS - 1
            )
        },
    );

    let stage = Stage::begin("traffic from shifted days → alert → retrain_requested");
    let shifted = Arc::new(days(history, SHIFT_DAY, DAYS));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(traffic.clone().keep_sending(shifted.clone(), stop.clone()));
    let closed = async {
        let event = lp.wait_for_retrain_event(Duration::from_secs(60)).await?;
        summary.done(stage, format!("monitor event {event}: retrain_requested"));

        let stage =
            Stage::begin("fraud-train runs by itself: training set → train → gate vs champion");
        let run = lp
            .wait_for_triggered_run(&first.id, Duration::from_secs(30))
            .await?;
        summary.runs.push(run.id.clone());
        let run = lp.wait_for_run(&run, Duration::from_secs(120)).await?;
        summary.retrain = Some(run.clone());
        if bad_model {
            return lp.rejected(&run, &v1, summary, stage).await;
        }
        if run.state != "SUCCEEDED" {
            bail!(
                "the retrain ended {}: {}",
                run.state,
                run.reason.clone().unwrap_or_default()
            );
        }
        let v2 = lp
            .champion()
            .await?
            .context("no champion after the retrain")?;
        if v2 == v1 {
            bail!("the retrain succeeded but champion is still v{v1}");
        }
        lp.wait_until_serving(&v2, Duration::from_secs(30)).await?;
        summary.done(
            stage,
            format!(
                "run {} ({}) blessed v{v2}; canary 10 → 50 → 100 promoted; champion → v{v2}",
                &run.id[..8],
                run.trigger
            ),
        );
        summary.champion = Some(v2);

        let stage = Stage::begin("the monitor sees v2: the alert resolves");
        lp.wait_until_resolved(Duration::from_secs(60)).await?;
        summary.done(stage, "roc_auc back above 0.75".into());
        Ok(())
    };
    let result = closed.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sender.await;
    summary.requests = sent.requests.load(std::sync::atomic::Ordering::Relaxed);
    summary.sample = sent
        .sample
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    result
}

//! `twinloop monitor …`: data drift and data quality between a reference and a current
//! dataset. The work is in `twinloop_monitor`; this parses flags, reads the files and writes
//! the reports.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use twinloop_monitor::stats::Test;

use crate::client::{Api, ServerConnection, block_on};
use twinloop_monitor::{Options, Schema};

#[derive(Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(Subcommand)]
enum MonitorCommand {
    /// Compare CURRENT with REFERENCE column by column (Evidently 0.7 DataDriftPreset rules).
    Drift(DriftArgs),
    /// Watch a deployment on a running server: windows over its prediction log, drift, data
    /// quality, performance from labels, alert rules.
    Create(CreateArgs),
    /// The monitors on the server.
    List,
    /// A monitor's state, last window and metric series.
    Status {
        name: String,
        /// Print the full JSON.
        #[arg(long)]
        json: bool,
    },
    /// A monitor's alert rules and their history (transitions, webhook deliveries, rollbacks,
    /// retraining requests).
    Alerts { name: String },
}

#[derive(Args)]
struct CreateArgs {
    /// A whole monitor spec as JSON (docs/monitoring.md); the flags below build one instead.
    #[arg(long, conflicts_with_all = ["name", "deployment", "reference"])]
    spec: Option<PathBuf>,
    #[arg(required_unless_present = "spec")]
    name: Option<String>,
    #[arg(long, required_unless_present = "spec")]
    deployment: Option<String>,
    /// The reference dataset (Parquet or CSV on the server's disk).
    #[arg(long, required_unless_present = "spec")]
    reference: Option<String>,
    /// A window every N predictions.
    #[arg(long, conflicts_with = "window_seconds")]
    window_rows: Option<usize>,
    /// A window every S seconds.
    #[arg(long)]
    window_seconds: Option<f64>,
    /// The output that is the prediction (drift against the reference's column, labels).
    #[arg(long)]
    prediction: Option<String>,
    /// An output of class probabilities (log loss, ROC AUC).
    #[arg(long)]
    probabilities: Option<String>,
    /// classification or regression.
    #[arg(long, default_value = "classification")]
    task: String,
    /// Alert rules as a JSON list (docs/monitoring.md).
    #[arg(long)]
    rules: Option<PathBuf>,
}

#[derive(Args)]
struct DriftArgs {
    /// The reference dataset (.parquet or .csv).
    #[arg(long)]
    reference: PathBuf,
    /// The current dataset (.parquet or .csv).
    #[arg(long)]
    current: PathBuf,
    /// Per-column types (and methods, thresholds, ranges, categories): a JSON schema file, a
    /// model's MLmodel file or directory (its signature), or feature-view:REPO_DIR:VIEW.
    #[arg(long)]
    schema: Option<String>,
    /// Test for every column it fits; auto picks per column as Evidently does.
    #[arg(long, default_value = "auto")]
    method: String,
    /// Threshold for every column (default: the test's own).
    #[arg(long)]
    threshold: Option<f64>,
    /// Dataset drift when at least this share of tested columns drifted.
    #[arg(long, default_value_t = 0.5)]
    drift_share: f64,
    /// Write the JSON report here ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(conn: &ServerConnection, args: MonitorArgs) -> Result<()> {
    match args.command {
        MonitorCommand::Drift(a) => drift(a),
        MonitorCommand::Create(a) => block_on(async move {
            let body = create_body(a)?;
            let api = Api::new(conn)?;
            let created = api
                .post("/api/twinloop/v1/monitors", &body, "create monitor")
                .await?;
            println!(
                "monitor {} watching deployment {}",
                created["name"].as_str().unwrap_or("?"),
                created["spec"]["deployment"].as_str().unwrap_or("?")
            );
            Ok(())
        }),
        MonitorCommand::List => block_on(async move {
            let all = Api::new(conn)?
                .get("/api/twinloop/v1/monitors", &[], "list monitors")
                .await?;
            let monitors = all["monitors"].as_array().cloned().unwrap_or_default();
            if monitors.is_empty() {
                println!("no monitors");
            }
            for m in monitors {
                println!(
                    "{}  deployment {}  windows {}  firing {}",
                    m["name"].as_str().unwrap_or("?"),
                    m["deployment"].as_str().unwrap_or("?"),
                    m["windows"],
                    m["firing"]
                );
            }
            Ok(())
        }),
        MonitorCommand::Status { name, json } => block_on(async move {
            let s = Api::new(conn)?
                .get(
                    &format!("/api/twinloop/v1/monitors/{name}"),
                    &[],
                    "monitor status",
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            let state = &s["state"];
            println!(
                "{}  deployment {}  windows {}",
                name,
                s["spec"]["deployment"].as_str().unwrap_or("?"),
                state["windows"]
            );
            if let Some(e) = state["error"].as_str() {
                println!("  error  {e}");
            }
            for (metric, value) in state["last"].as_object().into_iter().flatten() {
                if !metric.contains(':') {
                    println!("  {metric:<28} {value}");
                }
            }
            for (rule, r) in state["rules"].as_object().into_iter().flatten() {
                println!("  rule {rule}: {}", r["state"].as_str().unwrap_or("?"));
            }
            Ok(())
        }),
        MonitorCommand::Alerts { name } => block_on(async move {
            let a = Api::new(conn)?
                .get(
                    &format!("/api/twinloop/v1/monitors/{name}/alerts"),
                    &[],
                    "monitor alerts",
                )
                .await?;
            for (rule, r) in a["rules"].as_object().into_iter().flatten() {
                println!(
                    "rule {rule}: {} (last value {})",
                    r["state"].as_str().unwrap_or("?"),
                    r["last_value"]
                );
            }
            for e in a["events"].as_array().into_iter().flatten() {
                println!(
                    "  #{} {} {}",
                    e["id"],
                    e["kind"].as_str().unwrap_or("?"),
                    e["payload"]
                );
            }
            Ok(())
        }),
    }
}

fn create_body(a: CreateArgs) -> Result<serde_json::Value> {
    if let Some(path) = a.spec {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()));
    }
    let window = match (a.window_rows, a.window_seconds) {
        (Some(n), None) => serde_json::json!({"rows": n}),
        (None, Some(s)) => serde_json::json!({"seconds": s}),
        _ => bail!("give --window-rows N or --window-seconds S"),
    };
    let mut body = serde_json::json!({
        "name": a.name, "deployment": a.deployment, "reference": a.reference, "window": window, "task": a.task,
    });
    if let Some(p) = a.prediction {
        body["prediction"] = p.into();
    }
    if let Some(p) = a.probabilities {
        body["probabilities"] = p.into();
    }
    if let Some(path) = a.rules {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        body["rules"] = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
    }
    Ok(body)
}

fn drift(a: DriftArgs) -> Result<()> {
    let method = match a.method.as_str() {
        "auto" => None,
        m => match Test::parse(m) {
            Some(t) => Some(t),
            None => bail!(
                "--method {m:?} is not one of auto, ks, chisquare, z, wasserstein, jensenshannon, psi"
            ),
        },
    };
    if !(0.0..=1.0).contains(&a.drift_share) {
        bail!("--drift-share must be within [0, 1]");
    }
    let schema = match &a.schema {
        Some(source) => crate::drift_schema::load(source)?,
        None => Schema::default(),
    };
    let options = Options {
        method,
        threshold: a.threshold,
        drift_share: a.drift_share,
        schema,
        threads: a.threads,
    };
    // The two files are independent: read them side by side.
    let (reference, current) = std::thread::scope(|s| {
        let r = s.spawn(|| twinloop_monitor::io::read_table(&a.reference));
        let c = twinloop_monitor::io::read_table(&a.current);
        (r.join().expect("reader thread"), c)
    });
    let (reference, current) = (reference?, current?);
    let report = twinloop_monitor::run_drift(&reference, &current, &options)?;
    if let Some(path) = &a.json {
        let text = report.to_json();
        if path.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &a.html {
        std::fs::write(path, twinloop_monitor::html::render(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json.as_deref().is_none_or(|p| p.as_os_str() != "-") {
        print_summary(&report);
    }
    Ok(())
}

fn print_summary(r: &twinloop_monitor::Report) {
    println!(
        "dataset drift: {} ({} of {} columns drifted, share {:.3}, threshold {})",
        if r.dataset_drift { "YES" } else { "no" },
        r.drifted_columns,
        r.n_columns,
        r.share_of_drifted_columns,
        r.drift_share
    );
    for (name, c) in r.ranked().into_iter().take(10) {
        println!(
            "  {:<3} {:<32} {:<13} {:>12.6} (threshold {})",
            if c.drifted { "!" } else { "" },
            name,
            c.test,
            c.score,
            c.threshold
        );
    }
    if !r.skipped.is_empty() {
        println!("  {} columns skipped (see the report)", r.skipped.len());
    }
    if !r.findings.is_empty() {
        println!("data quality: {} findings", r.findings.len());
        for f in r.findings.iter().take(10) {
            println!("  {:<18} {}: {}", f.kind, f.column, f.message);
        }
    }
}

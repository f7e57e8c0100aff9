//! `twinloop monitor …`: data drift and data quality between a reference and a current
//! dataset. The work is in `twinloop_monitor`; this parses flags, reads the files and writes
//! the reports.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use twinloop_monitor::stats::Test;
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
}

#[derive(Args)]
struct DriftArgs {
    /// The reference dataset (.parquet or .csv).
    #[arg(long)]
    reference: PathBuf,
    /// The current dataset (.parquet or .csv).
    #[arg(long)]
    current: PathBuf,
    /// JSON file with per-column types, methods, thresholds, ranges and categories.
    #[arg(long)]
    schema: Option<PathBuf>,
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

pub fn run(args: MonitorArgs) -> Result<()> {
    match args.command {
        MonitorCommand::Drift(a) => drift(a),
    }
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
        Some(p) => Schema::load(p)?,
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

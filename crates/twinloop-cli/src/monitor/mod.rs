//! `twinloop monitor …`: data drift and data quality between a reference and a current
//! dataset (`drift`; the work is in `twinloop_monitor`), and, with serving, the production
//! monitors of a running server (`remote`).

#[cfg(feature = "serving")]
mod remote;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use twinloop_monitor::stats::Test;
use twinloop_monitor::{Options, Schema};

use crate::output::outln;

#[derive(Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(Subcommand)]
enum MonitorCommand {
    /// Compare CURRENT with REFERENCE column by column (Evidently 0.7 DataDriftPreset rules).
    Drift(DriftArgs),
    #[cfg(feature = "serving")]
    #[command(flatten)]
    Server(remote::MonitorsCommand),
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
    /// Refuse a dataset that takes more than this many MiB of memory once decoded (a small
    /// Parquet file can expand to far more).
    #[arg(long, default_value_t = twinloop_monitor::io::ReadLimits::default().max_bytes >> 20)]
    max_table_mb: u64,
}

/// `before_command`: a `--tracking-uri` given before `monitor` (only the subcommands that talk to
/// a server take one; `drift` reads files).
pub fn run(
    #[cfg_attr(
        not(feature = "serving"),
        expect(
            unused_variables,
            reason = "only the server's monitor commands talk to one"
        )
    )]
    before_command: Option<&str>,
    args: MonitorArgs,
) -> Result<()> {
    match args.command {
        MonitorCommand::Drift(a) => drift(a),
        #[cfg(feature = "serving")]
        MonitorCommand::Server(c) => remote::run(before_command, c),
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
    let limits = twinloop_monitor::io::ReadLimits {
        max_bytes: a.max_table_mb.saturating_mul(1 << 20),
    };
    // The two files are independent: read them side by side.
    let (reference, current) = std::thread::scope(|s| {
        let r = s.spawn(|| twinloop_monitor::io::read_table_within(&a.reference, limits));
        let c = twinloop_monitor::io::read_table_within(&a.current, limits);
        (r.join().expect("reader thread"), c)
    });
    let (reference, current) = (reference?, current?);
    let report = twinloop_monitor::run_drift(&reference, &current, &options)?;
    if let Some(path) = &a.json {
        let text = report.to_json();
        if path.as_os_str() == "-" {
            outln!("{text}");
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
    outln!(
        "dataset drift: {} ({} of {} columns drifted, share {:.3}, threshold {})",
        if r.dataset_drift { "YES" } else { "no" },
        r.drifted_columns,
        r.n_columns,
        r.share_of_drifted_columns,
        r.drift_share
    );
    for (name, c) in r.ranked().into_iter().take(10) {
        outln!(
            "  {:<3} {:<32} {:<13} {:>12.6} (threshold {})",
            if c.drifted { "!" } else { "" },
            name,
            c.test,
            c.score,
            c.threshold
        );
    }
    if !r.skipped.is_empty() {
        outln!("  {} columns skipped (see the report)", r.skipped.len());
    }
    if !r.findings.is_empty() {
        outln!("data quality: {} findings", r.findings.len());
        for f in r.findings.iter().take(10) {
            outln!("  {:<18} {}: {}", f.kind, f.column, f.message);
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_monitor_command_and_argument_is_described() {
        let command = MonitorArgs::augment_args(clap::Command::new("monitor"));
        assert_eq!(crate::undescribed(&command), Vec::<String>::new());
    }

    #[test]
    fn utc_formats_epoch_milliseconds() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_764_300_000_123), "2025-11-28 03:20:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59");
    }
}

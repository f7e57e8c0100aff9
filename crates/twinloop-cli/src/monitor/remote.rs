//! The production monitors of a running server (`create`, `list`, `status`, `alerts`,
//! `delete`), through its native API. Monitors watch deployments, so these come with serving.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use twinloop_api::Empty;
use twinloop_api::monitors as api;
use twinloop_watch::TRAINING_REFERENCE;
use twinloop_watch::reference::in_artifact_store;

use super::utc;
use crate::client::{Api, ServerConnection, TrackingUriArg, block_on};
use crate::output::outln;

#[derive(Subcommand)]
pub(super) enum MonitorsCommand {
    /// Watch a deployment on a running server: windows over its prediction log, drift, data
    /// quality, performance from labels, alert rules.
    Create(CreateArgs),
    /// The monitors on the server.
    List {
        #[command(flatten)]
        server: TrackingUriArg,
    },
    /// A monitor's recent windows (rows, drift, accuracy, rules that held) and rule states.
    Status {
        #[command(flatten)]
        server: TrackingUriArg,
        /// The monitor.
        name: String,
        /// How many of the latest closed windows to show.
        #[arg(long, default_value_t = 10)]
        windows: usize,
        /// Print the full JSON (state, recent windows, metric series).
        #[arg(long)]
        json: bool,
    },
    /// A monitor's alert rules and their history (transitions, webhook deliveries, rollbacks,
    /// retraining requests).
    Alerts {
        #[command(flatten)]
        server: TrackingUriArg,
        /// The monitor.
        name: String,
    },
    /// Stop a monitor and delete it with its history (metric series and events).
    Delete {
        #[command(flatten)]
        server: TrackingUriArg,
        /// The monitor.
        name: String,
    },
}

#[derive(Args)]
pub(super) struct CreateArgs {
    #[command(flatten)]
    server: TrackingUriArg,
    /// A JSON file holding a whole monitor spec (docs/monitoring.md); the flags below build one
    /// instead.
    #[arg(long, conflicts_with_all = ["name", "deployment", "reference"])]
    spec: Option<PathBuf>,
    /// The monitor's name (letters, digits, '-', '_', '.').
    #[arg(required_unless_present = "spec")]
    name: Option<String>,
    /// The deployment to watch (see `twinloop deploy status`).
    #[arg(long, required_unless_present = "spec")]
    deployment: Option<String>,
    /// The reference dataset, a Parquet or CSV file the server reads (a relative path is made
    /// absolute against your current directory), or "training" for the serving version's
    /// training set.
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
    /// A JSON file holding a list of alert rules: [{"name", "metric", "op", "threshold",
    /// "for", "actions"}] (docs/monitoring.md).
    #[arg(long)]
    rules: Option<PathBuf>,
}

/// `before_command`: a `--tracking-uri` given before `monitor`.
pub(super) fn run(before_command: Option<&str>, command: MonitorsCommand) -> Result<()> {
    let connect = |server: &TrackingUriArg| ServerConnection::resolve(server, before_command);
    match command {
        MonitorsCommand::Create(a) => block_on(async move {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let api = Api::new(&connect(&a.server))?;
            let body = create_body(a, &cwd)?;
            let created: api::MonitorStatus = api
                .post_as("/api/twinloop/v1/monitors", &body, "create monitor")
                .await?;
            outln!(
                "monitor {} watching deployment {}",
                created.name,
                created.spec.deployment
            );
            Ok(())
        }),
        MonitorsCommand::List { server } => block_on(async move {
            let all: api::MonitorList = Api::new(&connect(&server))?
                .get_as("/api/twinloop/v1/monitors", &[], "list monitors")
                .await?;
            if all.monitors.is_empty() {
                outln!("no monitors");
            }
            for m in all.monitors {
                outln!(
                    "{}  deployment {}  windows {}  firing {}",
                    m.name,
                    m.deployment,
                    m.windows,
                    serde_json::to_string(&m.firing)?
                );
            }
            Ok(())
        }),
        MonitorsCommand::Status {
            server,
            name,
            windows,
            json,
        } => block_on(async move {
            let s: api::MonitorStatus = Api::new(&connect(&server))?
                .get_as(
                    &format!("/api/twinloop/v1/monitors/{name}"),
                    &[("windows", &windows.to_string())],
                    "monitor status",
                )
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s);
            }
            Ok(())
        }),
        MonitorsCommand::Delete { server, name } => block_on(async move {
            let _: Empty = Api::new(&connect(&server))?
                .delete_as(
                    &format!("/api/twinloop/v1/monitors/{name}"),
                    &Empty {},
                    "delete monitor",
                )
                .await?;
            outln!("deleted monitor {name} and its history");
            Ok(())
        }),
        MonitorsCommand::Alerts { server, name } => block_on(async move {
            let a: api::AlertHistory = Api::new(&connect(&server))?
                .get_as(
                    &format!("/api/twinloop/v1/monitors/{name}/alerts"),
                    &[],
                    "monitor alerts",
                )
                .await?;
            for (rule, r) in &a.rules {
                outln!(
                    "rule {rule}: {} (last value {})",
                    r.state,
                    serde_json::to_string(&r.last_value)?
                );
            }
            for e in &a.events {
                outln!("  #{} {} {}", e.id, e.kind, e.payload);
            }
            Ok(())
        }),
    }
}

/// The reference as the server should read it: the server resolves a relative path against
/// its own directory, so one given here is made absolute against `cwd`, where the caller meant
/// it. URIs (`mlflow-artifacts:/…` and `runs:/…` among them) and "training" are the server's to
/// resolve.
fn server_reference(reference: &str, cwd: &Path) -> String {
    if reference == TRAINING_REFERENCE || reference.contains("://") || in_artifact_store(reference)
    {
        return reference.to_string();
    }
    cwd.join(reference).display().to_string()
}

fn create_body(a: CreateArgs, cwd: &Path) -> Result<api::MonitorSpec> {
    if let Some(path) = a.spec {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let spec: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        let mut spec: api::MonitorSpec = serde_json::from_value(spec).with_context(|| {
            format!(
                "{}: not a monitor spec (docs/monitoring.md)",
                path.display()
            )
        })?;
        spec.reference = server_reference(&spec.reference, cwd);
        return Ok(spec);
    }
    let window = match (a.window_rows, a.window_seconds) {
        (Some(n), None) => api::Window::Rows(n),
        (None, Some(s)) => api::Window::Seconds(s),
        _ => bail!("give --window-rows N or --window-seconds S"),
    };
    let task = match a.task.as_str() {
        "classification" => api::Task::Classification,
        "regression" => api::Task::Regression,
        t => bail!("--task {t:?} is not one of classification, regression"),
    };
    // Without --spec, clap requires these three.
    let (Some(name), Some(deployment), Some(reference)) = (a.name, a.deployment, a.reference)
    else {
        bail!("give NAME, --deployment and --reference, or --spec FILE");
    };
    let rules = match a.rules {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not valid JSON", path.display()))?
        }
        None => Vec::new(),
    };
    Ok(api::MonitorSpec {
        name,
        deployment,
        reference: server_reference(&reference, cwd),
        window,
        features: std::collections::BTreeMap::new(),
        prediction: a.prediction,
        probabilities: a.probabilities,
        task,
        label_delay_s: 0.0,
        rules,
        training_metrics: std::collections::BTreeMap::new(),
    })
}

/// `monitor status` as text: the recent windows as a table, then the rules' states.
fn print_status(s: &api::MonitorStatus) {
    outln!(
        "{}  deployment {}  windows {}",
        s.name,
        s.spec.deployment,
        s.state.windows
    );
    if let Some(e) = &s.state.error {
        outln!("  error  {e}");
    }
    if s.windows.is_empty() {
        outln!("  no closed window yet");
    } else {
        for line in window_table(&s.windows) {
            outln!("  {line}");
        }
    }
    for (rule, r) in &s.state.rules {
        outln!("  rule {rule}: {}", r.state);
    }
}

/// One line per window, oldest first, under a header: window end, rows, drift share and
/// verdict, accuracy (when a window has labels), the rules whose condition held.
fn window_table(windows: &[api::ClosedWindow]) -> Vec<String> {
    let metric = |w: &api::ClosedWindow, m: &str| w.metrics.get(m).copied();
    let accuracy = windows.iter().any(|w| metric(w, "accuracy").is_some());
    let mut lines = vec![format!(
        "{:<19}  {:>6}  {:<11}{}  rules held",
        "window end (UTC)",
        "rows",
        "drift",
        if accuracy { "  accuracy" } else { "" }
    )];
    for w in windows {
        let drift = match (
            metric(w, "share_of_drifted_columns"),
            metric(w, "dataset_drift"),
        ) {
            (Some(share), Some(d)) => {
                format!("{share:.2} {}", if d > 0.0 { "YES" } else { "no" })
            }
            _ => "-".into(),
        };
        let accuracy = match (accuracy, metric(w, "accuracy")) {
            (false, _) => String::new(),
            (true, Some(a)) => format!("  {a:>8.3}"),
            (true, None) => format!("  {:>8}", "-"),
        };
        lines.push(format!(
            "{:<19}  {:>6}  {drift:<11}{accuracy}  {}",
            utc(w.end_us / 1000),
            metric(w, "rows").map_or("-".into(), |r| format!("{r:.0}")),
            if w.rules_holding.is_empty() {
                "-".to_string()
            } else {
                w.rules_holding.join(", ")
            }
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_references_become_absolute_against_the_callers_directory() {
        let cwd = Path::new("/home/me/project");
        assert_eq!(
            server_reference("data/train.parquet", cwd),
            "/home/me/project/data/train.parquet"
        );
        assert_eq!(server_reference("/data/t.csv", cwd), "/data/t.csv");
        assert_eq!(server_reference("training", cwd), "training");
        assert_eq!(
            server_reference("s3://b/t.parquet", cwd),
            "s3://b/t.parquet"
        );
    }

    #[test]
    fn the_window_table_shows_drift_accuracy_and_rules() {
        let window = |end_us: i64, metrics: &[(&str, f64)], held: &[&str]| api::ClosedWindow {
            end_us,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            rules_holding: held.iter().map(ToString::to_string).collect(),
            start_us: end_us - 60_000_000,
        };
        let windows = [
            window(
                1_764_300_000_000_000,
                &[
                    ("rows", 150.0),
                    ("dataset_drift", 0.0),
                    ("share_of_drifted_columns", 0.0),
                    ("accuracy", 1.0),
                ],
                &[],
            ),
            window(1_764_300_060_000_000, &[("rows", 0.0)], &[]),
            window(
                1_764_300_120_000_000,
                &[
                    ("rows", 150.0),
                    ("dataset_drift", 1.0),
                    ("share_of_drifted_columns", 0.8),
                    ("accuracy", 0.0),
                ],
                &["drift", "accuracy"],
            ),
        ];
        assert_eq!(
            window_table(&windows),
            [
                "window end (UTC)       rows  drift        accuracy  rules held",
                "2025-11-28 03:20:00     150  0.00 no         1.000  -",
                "2025-11-28 03:21:00       0  -                   -  -",
                "2025-11-28 03:22:00     150  0.80 YES        0.000  drift, accuracy",
            ]
        );
    }
}

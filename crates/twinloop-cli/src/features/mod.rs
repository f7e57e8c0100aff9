//! `twinloop features …`: the feature store's commands. Each parses its flags and calls
//! `twinloop_features`; output is a few readable lines (or JSON with --json where noted).

mod progress;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use twinloop_features::describe::view_statistics;
use twinloop_features::offline::HistoricalRequest;
use twinloop_features::progress::Progress;
use twinloop_features::repo::{OfflineStoreConfig, SparkConfig, format_ttl};
use twinloop_features::serving::OnlineService;
use twinloop_features::store::FeatureStore;
use twinloop_features::time::{format_micros, parse_timestamp};
use twinloop_server::features::FeatureServerState;

use crate::output::outln;
use crate::server::{bracket_v6, shutdown_signal};
use progress::terminal_progress;

#[derive(Args)]
pub struct FeaturesArgs {
    /// The feature repository: a directory holding twinloop.yaml.
    #[arg(long, default_value = ".", global = true)]
    repo: PathBuf,
    #[command(subcommand)]
    command: FeaturesCommand,
}

#[derive(Subcommand)]
enum FeaturesCommand {
    /// Show what `apply` would add, change or remove (checks every view against its source).
    Plan,
    /// Record the repository's definitions (versioned) in the registry and the lineage graph.
    Apply,
    /// List feature views with their freshness.
    List,
    /// Show one feature view (or entity, source, service): definition, freshness, statistics.
    Describe {
        /// A feature view, entity, source or feature service of the repository.
        name: String,
    },
    /// Build a point-in-time-correct training set.
    GetHistorical(HistoricalArgs),
    /// Write the latest row per entity within [START, END] to the online store.
    Materialize {
        /// RFC 3339, e.g. 2024-01-01T00:00:00Z (no zone = UTC).
        start: String,
        /// RFC 3339, inclusive.
        end: String,
        /// Only these views (comma-separated; default: every online view).
        #[arg(long, short = 'v', value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Materialize from each view's last materialized end up to END.
    MaterializeIncremental {
        /// RFC 3339, e.g. "$(date -u +%Y-%m-%dT%H:%M:%SZ)" for now.
        end: String,
        /// Only these views (comma-separated; default: every online view).
        #[arg(long, short = 'v', value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Serve online features over HTTP (Feast's /get-online-features and /push).
    Serve {
        /// Address to listen on (0.0.0.0 for every interface).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on (Feast's feature server uses 6566 too).
        #[arg(long, short, default_value_t = 6566)]
        port: u16,
        /// Check credentials as `twinloop server --auth` does, against the users and tokens of
        /// the store at --backend-store-uri (the tracking server's): reads need a caller who may
        /// read (a `read` token will do), /push and materialization one who may write.
        #[arg(long)]
        auth: bool,
        /// The metadata store whose users and tokens --auth checks.
        #[arg(long, env = "TWINLOOP_BACKEND_STORE_URI")]
        backend_store_uri: Option<String>,
        /// With --auth, a user's level where nobody granted them anything.
        #[arg(long, default_value = "READ", value_name = "PERMISSION")]
        default_permission: String,
        /// Seconds a client may take to send a request's headers, or go silent while sending
        /// its body, and a kept-alive connection may sit idle, before the server closes it
        /// (slowloris).
        #[arg(long, default_value_t = twinloop_server::listen::DEFAULT_HEADER_READ_TIMEOUT_SECS, value_name = "SECONDS")]
        header_read_timeout: u64,
        /// Requests running at once (health and metrics aside); more are answered 429 with
        /// Retry-After at once, never queued.
        #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_concurrent_requests: u32,
    },
}

#[derive(Args)]
struct HistoricalArgs {
    /// Parquet or CSV with the join-key columns and an event-timestamp column.
    #[arg(long)]
    entities: PathBuf,
    /// Feature references, view:feature (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "service",
        required_unless_present = "service"
    )]
    features: Vec<String>,
    /// A feature service instead of --features.
    #[arg(long)]
    service: Option<String>,
    /// Name feature columns view__feature.
    #[arg(long)]
    full_feature_names: bool,
    /// The entity file's event-timestamp column (default: event_timestamp, or its only
    /// timestamp column).
    #[arg(long)]
    timestamp_column: Option<String>,
    /// Where to write the training set (.parquet, or .csv).
    #[arg(long)]
    output: PathBuf,
    /// Log the training set as a dataset input of this MLflow run (the registry must be the
    /// tracking server's store).
    #[arg(long)]
    run_id: Option<String>,
    /// Memory for join partitions before they spill to disk: bytes, or with K, M, G.
    #[arg(long, default_value = "2G")]
    memory_limit: String,
    /// Where the join runs: in this process, or as a Spark job through spark-submit (with
    /// twinloop.yaml's offline_store settings when it names spark, else local[*]). Default:
    /// twinloop.yaml's offline_store.
    #[arg(long, value_enum)]
    engine: Option<Engine>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    Embedded,
    Spark,
}

impl Engine {
    fn config(self, configured: &OfflineStoreConfig) -> OfflineStoreConfig {
        match (self, configured) {
            (Engine::Embedded, _) => OfflineStoreConfig::Embedded {},
            (Engine::Spark, OfflineStoreConfig::Spark(spark)) => {
                OfflineStoreConfig::Spark(spark.clone())
            }
            (Engine::Spark, OfflineStoreConfig::Embedded {}) => {
                OfflineStoreConfig::Spark(SparkConfig::default())
            }
        }
    }
}

pub fn run(args: FeaturesArgs) -> Result<()> {
    // Multi-threaded: DataFusion decodes sources, and the join routes rows, on every core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let FeaturesCommand::Serve {
        host,
        port,
        auth,
        backend_store_uri,
        default_permission,
        header_read_timeout,
        max_concurrent_requests,
    } = &args.command
    {
        let (host, port) = (host.clone(), *port);
        let bounds = twinloop_server::features::Bounds {
            header_read_timeout: std::time::Duration::from_secs((*header_read_timeout).max(1)),
            max_concurrent_requests: *max_concurrent_requests as usize,
        };
        let auth = match auth {
            true => Some(runtime.block_on(crate::auth::standalone(
                backend_store_uri.as_deref(),
                default_permission,
            ))?),
            false => None,
        };
        return runtime.block_on(serve(args.repo, host, port, auth, bounds));
    }
    runtime.block_on(async move {
        let mut store = FeatureStore::open(&args.repo).await.map_err(user_error)?;
        let progress = if std::io::stderr().is_terminal() {
            terminal_progress()
        } else {
            Progress::none()
        };
        match args.command {
            FeaturesCommand::Plan => {
                let plan = store.plan().await.map_err(user_error)?;
                outln!("{plan}");
            }
            FeaturesCommand::Apply => {
                let plan = store.apply().await.map_err(user_error)?;
                outln!("{plan}");
                outln!("applied to project {:?}", store.repo.config.project);
            }
            FeaturesCommand::List => list(&store).await?,
            FeaturesCommand::Describe { name } => describe(&store, &name).await?,
            FeaturesCommand::GetHistorical(h) => {
                if let Some(engine) = h.engine {
                    store.repo.config.offline_store =
                        engine.config(&store.repo.config.offline_store);
                }
                historical(&store, h, progress).await?
            }
            FeaturesCommand::Materialize { start, end, views } => {
                let (start, end) = (time_arg(&start)?, time_arg(&end)?);
                let online = store.online_store().await.map_err(user_error)?;
                let done = store
                    .materialize(online.as_ref(), start, end, &views, &progress)
                    .await
                    .map_err(user_error)?;
                report_materialized(&done);
            }
            FeaturesCommand::MaterializeIncremental { end, views } => {
                let end = time_arg(&end)?;
                let online = store.online_store().await.map_err(user_error)?;
                let done = store
                    .materialize_incremental(online.as_ref(), end, &views, &progress)
                    .await
                    .map_err(user_error)?;
                report_materialized(&done);
            }
            FeaturesCommand::Serve { .. } => unreachable!("handled above"),
        }
        Ok(())
    })
}

fn user_error(e: twinloop_core::Error) -> anyhow::Error {
    anyhow!("{}", e.message)
}

fn time_arg(text: &str) -> Result<i64> {
    parse_timestamp(text).map_err(user_error)
}

fn parse_bytes(text: &str) -> Result<usize> {
    let text = text.trim();
    let (number, scale) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 1usize << 10),
        Some((i, 'M' | 'm')) => (&text[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    let number: usize = number.trim().parse().map_err(|_| {
        anyhow!("--memory-limit {text:?}: expected bytes, or a number with K, M or G")
    })?;
    Ok(number.saturating_mul(scale).max(1 << 20))
}

async fn historical(store: &FeatureStore, args: HistoricalArgs, progress: Progress) -> Result<()> {
    let features = match &args.service {
        Some(service) => store.repo.service_refs(service),
        None => store.repo.resolve_refs(&args.features),
    }
    .map_err(user_error)?;
    let request = HistoricalRequest {
        entities: args.entities,
        features,
        full_feature_names: args.full_feature_names,
        timestamp_column: args.timestamp_column,
        output: args.output.clone(),
        memory_limit: parse_bytes(&args.memory_limit)?,
        progress,
    };
    let started = std::time::Instant::now();
    let summary = store
        .get_historical(&request, args.run_id.as_deref())
        .await
        .map_err(user_error)?;
    let engine = match store.repo.config.offline_store {
        OfflineStoreConfig::Embedded {} => "",
        OfflineStoreConfig::Spark(_) => " on Spark",
    };
    outln!(
        "wrote {} rows with {} feature columns to {} in {:.2} s{engine}",
        summary.rows,
        summary.feature_columns.len(),
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    for ((view, matched), (_, read)) in summary.matched.iter().zip(&summary.source_rows) {
        outln!(
            "  {view}: {matched} of {} rows found a value ({read} source rows read)",
            summary.rows
        );
    }
    if summary.spilled_bytes > 0 {
        outln!(
            "  spilled {} MiB to disk (--memory-limit)",
            summary.spilled_bytes >> 20
        );
    }
    if let Some(run) = &args.run_id {
        outln!("  logged as a training dataset of run {run}");
    }
    Ok(())
}

fn report_materialized(done: &[twinloop_features::materialize::Materialized]) {
    if done.is_empty() {
        outln!("nothing to materialize");
    }
    for m in done {
        outln!(
            "{}: {} source rows ({} in window) → {} entities, {} written, in {:.2} s [{} .. {}]",
            m.view,
            m.source_rows,
            m.window_rows,
            m.entities,
            m.written,
            m.seconds,
            format_micros(m.start),
            format_micros(m.end)
        );
    }
}

async fn list(store: &FeatureStore) -> Result<()> {
    let repo = &store.repo;
    outln!(
        "project {} ({} entities, {} sources, {} feature views, {} feature services)",
        repo.config.project,
        repo.entities.len(),
        repo.sources.len(),
        repo.views.len(),
        repo.services.len()
    );
    outln!(
        "{:<28} {:<20} {:>8} {:>6}  {:<24}",
        "FEATURE VIEW",
        "ENTITIES",
        "FEATURES",
        "TTL",
        "MATERIALIZED UNTIL"
    );
    for view in &repo.views {
        let last = store
            .last_materialized_end(&view.name)
            .await
            .map_err(user_error)?;
        outln!(
            "{:<28} {:<20} {:>8} {:>6}  {:<24}",
            view.name,
            view.entities.join(","),
            view.features.len(),
            format_ttl(view.ttl_micros),
            last.map_or_else(|| "never".into(), format_micros)
        );
    }
    for service in &repo.services {
        outln!(
            "feature service {}: {}",
            service.name,
            service.features.join(", ")
        );
    }
    Ok(())
}

async fn describe(store: &FeatureStore, name: &str) -> Result<()> {
    let repo = &store.repo;
    let Some(view) = repo.view(name) else {
        if let Some(e) = repo.entity(name) {
            outln!(
                "entity {} ({}): join keys {}",
                e.name,
                e.origin,
                e.join_keys.join(", ")
            );
        } else if let Some(s) = repo.source(name) {
            outln!(
                "source {} ({}): {} (timestamp {}{})",
                s.name,
                s.origin,
                s.path,
                s.timestamp_field,
                s.created_timestamp_field
                    .as_ref()
                    .map(|c| format!(", created {c}"))
                    .unwrap_or_default()
            );
        } else if let Some(s) = repo.service(name) {
            outln!(
                "feature service {} ({}): {}",
                s.name,
                s.origin,
                s.features.join(", ")
            );
        } else {
            bail!("nothing named {name:?} in the repository (hint: twinloop features list)");
        }
        return Ok(());
    };
    let applied = store
        .applied_view(view)
        .await
        .map(|o| format!("v{}", o.version))
        .unwrap_or_else(|e| e.message);
    outln!("feature view {} ({})", view.name, view.origin);
    outln!("  applied:   {applied}");
    outln!(
        "  entities:  {} (join keys {})",
        view.entities.join(", "),
        repo.join_keys(view).join(", ")
    );
    outln!(
        "  source:    {}{}",
        view.source,
        if view.sql.is_some() {
            " (through sql)"
        } else {
            ""
        }
    );
    outln!("  ttl:       {}", format_ttl(view.ttl_micros));
    let stats = view_statistics(repo, view).await.map_err(user_error)?;
    outln!(
        "  source rows: {} (events {} .. {})",
        stats.rows,
        stats.oldest_event.map_or_else(|| "-".into(), format_micros),
        stats.newest_event.map_or_else(|| "-".into(), format_micros)
    );
    let runs = store
        .materializations(&view.name)
        .await
        .map_err(user_error)?;
    match runs.last() {
        Some(run) => outln!(
            "  materialized: {} runs, last [{} .. {}], {} entities",
            runs.len(),
            format_micros(run.start_time),
            format_micros(run.end_time),
            run.entities
        ),
        None => outln!("  materialized: never"),
    }
    outln!(
        "  {:<24} {:<10} {:>10} {:>8} {:>14} {:>14} {:>14}",
        "FEATURE",
        "DTYPE",
        "NON-NULL",
        "NULL %",
        "MIN",
        "MAX",
        "MEAN"
    );
    for (f, s) in view.features.iter().zip(&stats.features) {
        let null_share = if stats.rows > 0 {
            100.0 * (stats.rows - s.non_null) as f64 / stats.rows as f64
        } else {
            0.0
        };
        outln!(
            "  {:<24} {:<10} {:>10} {:>7.2}% {:>14} {:>14} {:>14}",
            f.name,
            f.dtype.to_string(),
            s.non_null,
            null_share,
            s.min.clone().unwrap_or_else(|| "-".into()),
            s.max.clone().unwrap_or_else(|| "-".into()),
            s.mean.map_or_else(|| "-".into(), |m| format!("{m:.4}"))
        );
    }
    Ok(())
}

async fn serve(
    repo: PathBuf,
    host: String,
    port: u16,
    auth: Option<Arc<twinloop_server::auth::Auth>>,
    bounds: twinloop_server::features::Bounds,
) -> Result<()> {
    let features = FeatureStore::open(&repo).await.map_err(user_error)?;
    let online = features.online_store().await.map_err(user_error)?;
    let service = OnlineService::new(features.repo.clone(), online)
        .await
        .map_err(user_error)?;
    let addr: SocketAddr = format!("{}:{}", bracket_v6(&host), port)
        .parse()
        .with_context(|| format!("invalid --host {host:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (hint: is another server using the port? try --port)")
    })?;
    tracing::info!(address = %listener.local_addr()?, project = %features.repo.config.project, "feature server listening");
    let state = Arc::new(FeatureServerState { service, features });
    twinloop_server::features::serve(listener, state, auth, bounds, shutdown_signal())
        .await
        .context("feature server error")?;
    tracing::info!("feature server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_take_suffixes() {
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert!(parse_bytes("lots").is_err());
    }
}

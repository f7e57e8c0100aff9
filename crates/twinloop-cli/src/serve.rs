//! `twinloop serve`: a stateless inference-only server. Each `--model` is loaded from the
//! registry (or a directory) and answers the Open Inference Protocol under its registered name.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use twinloop_serving::engine::{Endpoint, Engine};
use twinloop_serving::predlog::{PredictionLog, SegmentPolicy};
use twinloop_serving::served::ServedModel;
use twinloop_serving::source::{ModelRegistry, ModelUri};
use twinloop_serving::spec::{BatchingSpec, DeploymentSpec, RouteSpec};

use crate::client::ServerConnection;
use crate::server::{bracket_v6, shutdown_signal, spawn_grpc};
use crate::tracking_client::TrackingClient;

#[derive(Args)]
pub struct ServeArgs {
    /// A model to serve: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/RUN_ID/PATH` or a
    /// local MLflow model directory, optionally as `NAME=URI` to serve it under another name.
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Address to listen on (0.0.0.0 for every interface, :: for IPv6).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The REST port (/v2/…, /metrics).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The gRPC port (GRPCInferenceService); 0 turns gRPC off.
    #[arg(long, default_value_t = 8081)]
    grpc_port: u16,
    /// Most rows in one request, and in one merged run when batching.
    #[arg(long, default_value_t = 1024)]
    max_batch_size: usize,
    /// Dynamic batching: how long a request may wait for others to share its run; 0 = off.
    #[arg(long, default_value_t = 0)]
    max_queue_delay_us: u64,
    /// ONNX Runtime sessions per model (concurrent runs); default: one per core.
    #[arg(long)]
    sessions: Option<usize>,
    /// Where the prediction log's Parquet segments go (a directory or s3://bucket/prefix);
    /// without it nothing is logged.
    #[arg(long)]
    prediction_log: Option<String>,
    /// Check credentials as `twinloop server --auth` does, against the users and tokens of the
    /// store at --backend-store-uri (the tracking server's), over REST and gRPC alike:
    /// predictions need an `infer` token or a caller who may read, metadata a caller who may
    /// read; health stays open.
    #[arg(long)]
    auth: bool,
    /// The metadata store whose users and tokens --auth checks.
    #[arg(long, env = "TWINLOOP_BACKEND_STORE_URI")]
    backend_store_uri: Option<String>,
    /// With --auth, a user's level where nobody granted them anything (as the tracking server's
    /// --default-permission).
    #[arg(long, default_value = "READ", value_name = "PERMISSION")]
    default_permission: String,
    /// Seconds a client may take to send a request's headers, or go silent while sending its
    /// body, and a kept-alive connection may sit idle, before the REST port closes it
    /// (slowloris); and a gRPC connection to send HTTP/2's preface.
    #[arg(long, default_value_t = twinloop_server::listen::DEFAULT_HEADER_READ_TIMEOUT_SECS, value_name = "SECONDS")]
    header_read_timeout: u64,
    /// Requests running at once on each port (health and /metrics aside): past it REST answers
    /// 429 with Retry-After and gRPC RESOURCE_EXHAUSTED, at once, never queued.
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_requests: u32,
}

/// The credential checks of `--auth`.
async fn auth_of(args: &ServeArgs) -> Result<Option<Arc<twinloop_server::auth::Auth>>> {
    if !args.auth {
        return Ok(None);
    }
    let auth = crate::auth::standalone(args.backend_store_uri.as_deref(), &args.default_permission)
        .await?;
    Ok(Some(auth))
}

fn split_name(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once('=') {
        Some((name, uri)) if !name.contains(':') && !name.contains('/') => (Some(name), uri),
        _ => (None, arg),
    }
}

pub fn run(conn: &ServerConnection, args: ServeArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(conn, args))
}

async fn serve(conn: &ServerConnection, args: ServeArgs) -> Result<()> {
    let mut wanted = Vec::new();
    for arg in &args.models {
        let (name, uri) = split_name(arg);
        let uri = ModelUri::parse(uri).map_err(|e| anyhow::anyhow!("--model {arg}: {e}"))?;
        wanted.push((name.map(str::to_string), uri));
    }
    let (log, log_writer) = match &args.prediction_log {
        Some(dest) => {
            let store = twinloop_artifacts::ArtifactStore::open(dest)
                .map_err(|e| anyhow::anyhow!("--prediction-log {dest}: {}", e.message))?;
            let (log, writer) = PredictionLog::start(store, SegmentPolicy::default());
            (log, Some(writer))
        }
        None => (PredictionLog::disabled(), None),
    };
    let auth = auth_of(&args).await?;
    let engine = Arc::new(Engine::new(log));
    let addr: SocketAddr = format!("{}:{}", bracket_v6(&args.host), args.port)
        .parse()
        .with_context(|| format!("invalid --host {:?}", args.host))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (hint: is the port in use? try --port)")
    })?;
    let app = twinloop_v2::http::router(engine.clone());
    let gate = auth.clone().map(|a| a as Arc<dyn twinloop_v2::grpc::Gate>);
    // A route layer, so the guard sees the matched route and applies the server's rules table.
    let app = match auth {
        Some(auth) => app.route_layer(axum::middleware::from_fn_with_state(
            auth,
            twinloop_server::auth::guard,
        )),
        None => app,
    };
    let app = app.layer(tower_http::trace::TraceLayer::new_for_http());
    let limits = twinloop_server::limits::Limits::shared(
        args.max_concurrent_requests as usize,
        twinloop_server::limits::Shape::OpenInference,
    );
    let app = twinloop_server::limits::bounded(app, Arc::new(limits));
    let header_read_timeout = std::time::Duration::from_secs(args.header_read_timeout.max(1));
    let (stop, stopped) = tokio::sync::watch::channel(());
    let http = tokio::spawn(async move {
        let mut stopped = stopped;
        let stopping = async move {
            let _ = stopped.changed().await;
        };
        twinloop_server::listen::serve(
            listener,
            app,
            header_read_timeout,
            twinloop_server::limits::Shape::OpenInference,
            stopping,
        )
        .await
    });
    // The same bounds as the REST port, each port with a semaphore of its own.
    let bounds = twinloop_v2::grpc::Bounds {
        max_concurrent_calls: args.max_concurrent_requests as usize,
        preface_timeout: header_read_timeout,
    };
    let grpc_server = spawn_grpc(
        &args.host,
        args.grpc_port,
        &engine,
        gate,
        bounds,
        stop.subscribe(),
    )
    .await?;
    let tracking = TrackingClient::new(conn.tracking_uri());
    let registry: &dyn ModelRegistry = &tracking;
    let batching = BatchingSpec {
        max_batch_size: args.max_batch_size.max(1),
        max_queue_delay_us: args.max_queue_delay_us,
    };
    let sessions = args.sessions.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    for (name, uri) in wanted {
        let model = ServedModel::load(Some(registry), &uri, name.as_deref(), batching, sessions)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve {uri}: {e}"))?;
        let served_as = name.clone().unwrap_or_else(|| match &uri {
            ModelUri::Local(dir) => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into()),
            other => other
                .registered_name()
                .map(str::to_string)
                .unwrap_or_else(|| model.name.clone()),
        });
        if engine.get(&served_as).is_some() {
            bail!("two --model flags serve the name {served_as:?} (hint: use NAME=URI)");
        }
        tracing::info!(model = %served_as, version = %model.version, source = %uri, "model loaded");
        engine.put(Endpoint {
            spec: DeploymentSpec {
                name: served_as,
                routes: vec![RouteSpec {
                    model: model.name.clone(),
                    version: Some(model.version.clone()),
                    alias: None,
                    weight: 100,
                }],
                shadow: None,
                sticky_key: None,
                feature_service: None,
                batching,
            },
            routes: vec![model],
            shadow: None,
        });
    }
    engine.set_ready(true);
    tracing::info!(http = %addr, grpc_port = args.grpc_port, models = ?engine.names(), "twinloop serve ready");
    shutdown_signal().await;
    // In-flight HTTP and gRPC requests finish (and are logged) before the log closes.
    drop(stop);
    if let Ok(Err(e)) = http.await {
        tracing::error!(error = %e, "the HTTP server stopped with an error");
    }
    if let Some(grpc) = grpc_server {
        let _ = grpc.await;
    }
    // Whatever the prediction log still holds is written before the process ends.
    engine.log.write().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(writer) = log_writer {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), writer).await;
    }
    Ok(())
}

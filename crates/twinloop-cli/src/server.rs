use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use twinloop_artifacts::ArtifactStore;
use twinloop_core::location::LocationPolicy;
#[cfg(all(feature = "serving", feature = "feature-store"))]
use twinloop_features::{serving::OnlineService, store::FeatureStore};
use twinloop_meta::{SqlStore, StoreUri};
use twinloop_server::AppState;
#[cfg(all(feature = "serving", feature = "feature-store"))]
use twinloop_server::enrich::OnlineEnrichment;
use twinloop_server::webhooks::{HttpTransport, Outbound};
#[cfg(feature = "serving")]
use {
    twinloop_meta::StoreHandle,
    twinloop_server::{MonitoredDeployments, Serving},
    twinloop_serving::deploy::{DeploymentManager, StoreRegistry},
    twinloop_serving::engine::Engine,
    twinloop_serving::predlog::{PredictionLog, SegmentPolicy},
    twinloop_watch::Monitors,
};

/// Flags follow `mlflow server` so that existing scripts keep working (`-h` is the host, as there).
#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct ServerArgs {
    /// Address to listen on (0.0.0.0 for every interface, :: for IPv6).
    #[arg(long, short = 'h', default_value = "127.0.0.1", env = "TWINLOOP_HOST")]
    host: String,

    /// Port to listen on.
    #[arg(long, short, default_value_t = 5000, env = "TWINLOOP_PORT")]
    port: u16,

    /// Where runs, metrics and models are recorded, as `mlflow server` takes it:
    /// sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host:port/db.
    #[arg(
        long,
        default_value = "sqlite:///twinloop-data/twinloop.db",
        env = "TWINLOOP_BACKEND_STORE_URI"
    )]
    backend_store_uri: String,

    /// Where the server stores artifacts (those clients send through its mlflow-artifacts proxy,
    /// and its own): a local directory or s3://bucket/prefix (credentials and endpoint from AWS_*
    /// variables or MLFLOW_S3_ENDPOINT_URL) [default: twinloop-data/artifacts].
    #[arg(long, env = "TWINLOOP_ARTIFACTS_DESTINATION")]
    artifacts_destination: Option<String>,

    /// Where new experiments' artifacts go, as in `mlflow server`: a directory (made absolute),
    /// file://, s3://… or mlflow-artifacts:/ (through this server's proxy) [default:
    /// mlflow-artifacts:/; with --no-serve-artifacts, the artifacts destination].
    #[arg(long, value_name = "URI")]
    default_artifact_root: Option<String>,

    /// Proxy artifact uploads, downloads and listings to --artifacts-destination (the default).
    #[arg(long, overrides_with = "no_serve_artifacts")]
    serve_artifacts: bool,

    /// Do not proxy artifacts: clients read and write experiments' locations themselves, and the
    /// mlflow-artifacts routes answer 503 as mlflow's do.
    #[arg(long, overrides_with = "serve_artifacts")]
    no_serve_artifacts: bool,

    /// Refused: twinloop serves tracking and artifacts from one server.
    #[arg(long)]
    artifacts_only: bool,

    /// The web UI only shows: no form that changes anything, and its POSTs are refused (the API
    /// is unaffected).
    #[arg(long)]
    ui_read_only: bool,

    /// Host header values this server answers, as `mlflow server --allowed-hosts` (`*` matches
    /// any characters; `*` alone: any host). Default: localhost, 127.0.0.1, [::1] and
    /// private-network addresses on any port, and the bound address. Other hosts get 403 (DNS
    /// rebinding), except /health and /version.
    #[arg(
        long,
        value_delimiter = ',',
        env = "MLFLOW_SERVER_ALLOWED_HOSTS",
        value_name = "HOSTS"
    )]
    allowed_hosts: Vec<String>,

    /// Origins that get CORS headers and may change state from a browser, as `mlflow server
    /// --cors-allowed-origins` (`*`: any, without credentials). Default: none; only same-origin
    /// pages may POST, PUT, PATCH or DELETE.
    #[arg(
        long,
        value_delimiter = ',',
        env = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS",
        value_name = "ORIGINS"
    )]
    cors_allowed_origins: Vec<String>,

    /// Seconds a client may take to send a request's headers, or go silent while sending its
    /// body, and a kept-alive connection may sit idle, before the server closes it (slowloris);
    /// also how long a --grpc-port connection may take to send HTTP/2's preface.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    header_read_timeout: u64,

    /// Searches (`…/search`, GraphQL) running at once; more are answered 429 with Retry-After
    /// [default: 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_search: Option<u32>,

    /// Artifact downloads, uploads and listings running at once; more are answered 429
    /// [default: 128].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_artifacts: Option<u32>,

    /// `/v2` inference requests running at once; more are answered 429 [default: 512]. The
    /// --grpc-port has a bound of its own of this size (health calls aside), past which calls
    /// are answered RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_infer: Option<u32>,

    /// Any other requests running at once; more are answered 429 [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_requests: Option<u32>,

    /// How long a request may wait for a database connection (SQLite's one writer, a
    /// PostgreSQL connection) before it is answered 503 with Retry-After, unwritten: bounds the
    /// queue behind the database by time when more is offered than it can write [default: 5].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    max_database_wait: Option<u64>,

    /// A directory (or remote prefix such as s3://bucket/prefix) clients may name as an
    /// experiment's artifact location, a model version's source or a monitor's reference;
    /// repeatable. The artifacts destination, the default artifact root and the SQLite
    /// database's directory are always allowed; nothing else is.
    #[arg(long = "allowed-root", value_name = "PATH|URI")]
    allowed_roots: Vec<String>,

    /// A remote scheme (s3, gs, …) clients may name anywhere, not only under an allowed root;
    /// repeatable.
    #[arg(long = "allowed-scheme", value_name = "SCHEME")]
    allowed_schemes: Vec<String>,

    /// An internal target webhooks and monitor alerts may reach although it is not a public
    /// address: a CIDR (10.0.0.0/8), an address or a host name; repeatable. Loopback, private,
    /// link-local and reserved addresses are refused otherwise.
    #[arg(
        long = "outbound-allow",
        value_name = "CIDR|HOST",
        env = "TWINLOOP_OUTBOUND_ALLOW",
        value_delimiter = ','
    )]
    outbound_allow: Vec<String>,

    /// Worker threads serving requests (default: one per CPU core).
    #[arg(long, short)]
    workers: Option<usize>,

    /// Require credentials, as `mlflow server --app-name basic-auth` does: users and passwords
    /// (MLFLOW_TRACKING_USERNAME/PASSWORD), API tokens (MLFLOW_TRACKING_TOKEN, `twinloop auth
    /// token create`) and per-experiment and per-model permissions. The first start makes the
    /// admin from TWINLOOP_ADMIN_PASSWORD (user TWINLOOP_ADMIN_USERNAME, default admin).
    #[arg(long, env = "TWINLOOP_AUTH")]
    auth: bool,

    /// With --auth, the level every user has on experiments and models nobody granted them
    /// anything on: READ (as mlflow), USE, EDIT, MANAGE or NO_PERMISSIONS.
    #[arg(long, default_value = "READ", value_name = "PERMISSION")]
    default_permission: String,

    #[cfg(feature = "serving")]
    /// Also answer the deployments' Open Inference Protocol over gRPC on this port (0: off; the
    /// REST form is always at /v2 on --port).
    #[arg(long, default_value_t = 0, env = "TWINLOOP_GRPC_PORT")]
    grpc_port: u16,

    #[cfg(feature = "serving")]
    /// ONNX Runtime sessions per deployed model version (default: one per CPU core).
    #[arg(long)]
    sessions: Option<usize>,

    #[cfg(feature = "serving")]
    /// How often the prediction log writes a segment at the latest (milliseconds); monitors see
    /// predictions once they are in a segment.
    #[arg(long, default_value_t = 10_000)]
    prediction_log_flush_ms: u64,

    #[cfg(all(feature = "serving", feature = "feature-store"))]
    /// A feature repository whose online store deployments with a `feature_service` read
    /// (an embedded online store is then held by this server).
    #[arg(long, env = "TWINLOOP_FEATURE_REPO")]
    feature_repo: Option<std::path::PathBuf>,

    /// Print help (`-h` is --host, as in `mlflow server`).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

impl ServerArgs {
    fn artifacts_destination(&self) -> &str {
        self.artifacts_destination
            .as_deref()
            .unwrap_or("twinloop-data/artifacts")
    }

    /// The artifact root of new experiments as `mlflow server` chooses it
    /// (`resolve_default_artifact_root`), except that without serving the default is this
    /// server's artifacts destination rather than `./mlruns`. Checked and made absolute as every
    /// artifact location is (meta's `experiment_root`).
    fn default_artifact_root(&self) -> Result<String> {
        if self.artifacts_only {
            bail!(
                "--artifacts-only is not supported: twinloop serves tracking and artifacts from one \
                 server (hint: drop the flag; `twinloop server` proxies artifacts to --artifacts-destination)"
            );
        }
        let root = match &self.default_artifact_root {
            Some(root) => root.as_str(),
            None if self.no_serve_artifacts => self.artifacts_destination(),
            None => "mlflow-artifacts:/",
        };
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        twinloop_meta::experiment_root(root, &cwd).map_err(|e| {
            anyhow::anyhow!(
                "invalid --default-artifact-root {root:?}: {} (hint: a directory, file://, s3://bucket/prefix \
                 or mlflow-artifacts:/)",
                e.message
            )
        })
    }
}

impl ServerArgs {
    /// `--max-concurrent-*`, each unset one at its default.
    fn limit_config(&self) -> twinloop_server::limits::LimitConfig {
        let defaults = twinloop_server::limits::LimitConfig::default();
        let or = |flag: Option<u32>, default: usize| flag.map_or(default, |n| n as usize);
        twinloop_server::limits::LimitConfig {
            search: or(self.max_concurrent_search, defaults.search),
            artifacts: or(self.max_concurrent_artifacts, defaults.artifacts),
            infer: or(self.max_concurrent_infer, defaults.infer),
            other: or(self.max_concurrent_requests, defaults.other),
        }
    }

    /// `--max-database-wait`, or the store's default.
    fn open_options(&self) -> twinloop_meta::OpenOptions {
        match self.max_database_wait {
            Some(seconds) => twinloop_meta::OpenOptions {
                max_wait: std::time::Duration::from_secs(seconds),
            },
            None => twinloop_meta::OpenOptions::default(),
        }
    }

    /// The locations clients may name: the allowed roots and schemes, the artifacts destination,
    /// the default artifact root (unless it is the proxy) and the SQLite database's directory.
    /// Local artifact roots are where runs' artifacts live; the database's directory is never
    /// served.
    fn location_policy(&self, uri: &StoreUri, artifact_root: &str) -> Result<LocationPolicy> {
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        let err = |e: twinloop_core::Error| anyhow::anyhow!("{}", e.message);
        let mut roots = self.allowed_roots.clone();
        let mut local_artifact_roots = Vec::new();
        let proxied = artifact_root.starts_with("mlflow-artifacts:");
        for root in [
            Some(self.artifacts_destination()),
            (!proxied).then_some(artifact_root),
        ]
        .into_iter()
        .flatten()
        {
            if root.starts_with("file:") || !root.contains("://") {
                local_artifact_roots.push(root);
            } else {
                roots.push(root.to_string());
            }
        }
        let mut policy = LocationPolicy::new(&roots, &self.allowed_schemes, &cwd).map_err(err)?;
        for root in local_artifact_roots {
            policy = policy.with_artifact_root(root).map_err(err)?;
        }
        if let StoreUri::Sqlite(db) = uri
            && let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty())
        {
            policy = policy
                .with_private_root(&dir.display().to_string())
                .map_err(err)?;
        }
        Ok(policy)
    }
}

impl ServerArgs {
    /// A server for this process only: loopback, a free port, no gRPC, the given store and
    /// artifacts (quickstart and standalone pipeline runs, whose steps' `mlflow` clients need
    /// an address). The repository is an allowed root: its files (a training set a monitor
    /// finds through lineage) are the user's own.
    pub(crate) fn embedded(
        backend_store_uri: String,
        artifacts_destination: String,
        repo: &std::path::Path,
    ) -> ServerArgs {
        ServerArgs {
            host: "127.0.0.1".into(),
            port: 0,
            backend_store_uri,
            artifacts_destination: Some(artifacts_destination),
            default_artifact_root: None,
            serve_artifacts: false,
            no_serve_artifacts: false,
            artifacts_only: false,
            ui_read_only: false,
            allowed_roots: vec![repo.display().to_string()],
            allowed_schemes: Vec::new(),
            outbound_allow: Vec::new(),
            workers: None,
            auth: false,
            default_permission: "READ".into(),
            allowed_hosts: Vec::new(),
            cors_allowed_origins: Vec::new(),
            header_read_timeout: 30,
            max_concurrent_search: None,
            max_concurrent_artifacts: None,
            max_concurrent_infer: None,
            max_concurrent_requests: None,
            max_database_wait: None,
            #[cfg(feature = "serving")]
            grpc_port: 0,
            #[cfg(feature = "serving")]
            sessions: None,
            #[cfg(feature = "serving")]
            prediction_log_flush_ms: 1_000,
            #[cfg(all(feature = "serving", feature = "feature-store"))]
            feature_repo: None,
            help: None,
        }
    }
}

pub fn run(args: ServerArgs) -> Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = args.workers {
        if workers == 0 {
            bail!("--workers must be at least 1");
        }
        runtime.worker_threads(workers);
    }
    runtime
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(args))
}

async fn serve(args: ServerArgs) -> Result<()> {
    let running = Running::start(&args).await?;
    tracing::info!(
        backend = %args.backend_store_uri,
        artifacts = running.artifacts.location(),
        "twinloop server listening on {}",
        running.url
    );
    shutdown_signal().await;
    running.stop().await?;
    tracing::info!("twinloop server stopped");
    Ok(())
}

/// A server answering in this process: its address, its store and artifacts and (with serving)
/// its deployments, until [`Running::stop`].
pub(crate) struct Running {
    pub url: String,
    pub store: Arc<SqlStore>,
    pub artifacts: ArtifactStore,
    #[cfg(feature = "serving")]
    pub serving: Serving,
    outbound: Outbound,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// What pipeline runs in a server's process reach: its store, artifacts and deployments, and the
/// server itself as their steps' tracking server.
fn services(
    store: &Arc<SqlStore>,
    artifacts: &ArtifactStore,
    #[cfg(feature = "serving")] serving: &Serving,
    url: &str,
    outbound: &Outbound,
) -> twinloop_pipelines::services::Services {
    twinloop_pipelines::services::Services {
        store: store.clone(),
        artifacts: artifacts.clone(),
        #[cfg(feature = "serving")]
        deployments: Some(serving.deployments.clone()),
        #[cfg(not(feature = "serving"))]
        deployments: None,
        tracking_uri: Some(url.to_owned()),
        webhooks: Some(Arc::new(HttpTransport::new(outbound.clone()))),
    }
}

impl Running {
    pub(crate) async fn start(args: &ServerArgs) -> Result<Running> {
        let uri: StoreUri = args
            .backend_store_uri
            .parse()
            .map_err(|e: twinloop_core::Error| anyhow::anyhow!("{}", e.message))?;
        let artifact_root = args.default_artifact_root()?;
        // Bound before anything is created on disk, so a server that cannot listen leaves no trace.
        let addr: SocketAddr = format!("{}:{}", bracket_v6(&args.host), args.port)
            .parse()
            .with_context(|| format!("invalid --host {:?}", args.host))?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (hint: is another server using the port? try --port)")
        })?;
        let artifacts = ArtifactStore::open(args.artifacts_destination())
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let store = SqlStore::open_with(&uri, &artifact_root, args.open_options())
            .await
            .map_err(|e| anyhow::anyhow!("{} (hint: check --backend-store-uri)", e.message))?;
        let store = Arc::new(store);
        let auth = auth(args, &addr, &store).await?;
        let locations = args.location_policy(&uri, &artifact_root)?;
        let outbound =
            Outbound::parse(&args.outbound_allow).map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let url = browsable_url(listener.local_addr()?);
        // gRPC stops on the same signal as HTTP, so its requests in flight are logged too.
        #[cfg(feature = "serving")]
        let (grpc_stop, grpc_stopped) = tokio::sync::watch::channel(());
        #[cfg(feature = "serving")]
        let serving = RunningServing::start(
            args,
            store.clone(),
            &artifacts,
            &locations,
            &outbound,
            auth.clone(),
            grpc_stopped,
        )
        .await?;
        let services = services(
            &store,
            &artifacts,
            #[cfg(feature = "serving")]
            &serving.parts,
            &url,
            &outbound,
        );
        let config = twinloop_pipelines::schedule::Config {
            services: Some(services),
            // Each run's executors come from its repository's twinloop.yaml.
            executors: Some(Arc::new(twinloop_executors::config::build_all)),
            // One replica among those on this database polls triggers and settles runs.
            lease: Some(twinloop_meta::lease::LeaseKeeper::start(
                store.clone(),
                twinloop_pipelines::schedule::LEASE,
            )),
            ..twinloop_pipelines::schedule::Config::default()
        };
        let pipelines = twinloop_pipelines::schedule::Scheduler::start(store.clone(), config)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the pipeline scheduler: {e}"))?;
        let state = Arc::new(AppState {
            store: store.clone(),
            artifacts: artifacts.clone(),
            serve_artifacts: !args.no_serve_artifacts,
            ui_read_only: args.ui_read_only,
            locations,
            outbound: outbound.clone(),
            auth,
            browser: Arc::new(twinloop_server::browser::BrowserPolicy::new(
                &args.allowed_hosts,
                &args.cors_allowed_origins,
                addr,
            )),
            header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout.max(1)),
            limits: Arc::new(twinloop_server::limits::Limits::new(args.limit_config())),
            pipelines: pipelines.clone(),
            #[cfg(feature = "serving")]
            serving: serving.parts.clone(),
        });
        #[cfg(feature = "serving")]
        let parts = serving.parts.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let closing = store.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
                #[cfg(feature = "serving")]
                drop(grpc_stop);
            };
            twinloop_server::serve(listener, state, shutdown)
                .await
                .context("server error")?;
            // Runs under way end their steps' process trees; they stay RUNNING, for the next
            // start to resume or fail as their policy.on_restart says.
            pipelines.shutdown(std::time::Duration::from_secs(15)).await;
            #[cfg(feature = "serving")]
            serving.finish().await;
            closing.close().await;
            Ok(())
        });
        Ok(Running {
            url,
            store,
            artifacts,
            #[cfg(feature = "serving")]
            serving: parts,
            outbound,
            stop,
            task,
        })
    }

    /// What pipeline runs in this process reach (see [`services`]).
    pub(crate) fn services(&self) -> twinloop_pipelines::services::Services {
        services(
            &self.store,
            &self.artifacts,
            #[cfg(feature = "serving")]
            &self.serving,
            &self.url,
            &self.outbound,
        )
    }

    /// Stops answering once requests in flight are done, then closes the store.
    pub(crate) async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the server task failed")?
    }
}

/// `--auth`: the first admin on a store that has none, and the server's authenticator. Without
/// it, a warning when the server is reachable from other hosts.
async fn auth(
    args: &ServerArgs,
    addr: &SocketAddr,
    store: &Arc<SqlStore>,
) -> Result<Option<Arc<twinloop_server::auth::Auth>>> {
    use twinloop_meta::AuthStore;
    if !args.auth {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "AUTHENTICATION IS OFF on {addr}: anyone who can reach this address can read, change and delete every experiment, model and deployment (hint: --auth)"
            );
        }
        return Ok(None);
    }
    let default_permission =
        args.default_permission
            .parse()
            .map_err(|e: twinloop_core::Error| {
                anyhow::anyhow!("--default-permission: {}", e.message)
            })?;
    let failed = |e: twinloop_core::Error| anyhow::anyhow!("{}", e.message);
    if !store.has_admin().await.map_err(failed)? {
        let password = ["TWINLOOP_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()));
        let Some(password) = password else {
            bail!(
                "--auth needs a first admin and there is none yet (hint: set \
                 TWINLOOP_ADMIN_PASSWORD for this first start; the user is TWINLOOP_ADMIN_USERNAME, \
                 default admin)"
            );
        };
        let username = std::env::var("TWINLOOP_ADMIN_USERNAME")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "admin".into());
        let hash = twinloop_core::auth::hash_password(&password).map_err(failed)?;
        store
            .create_user(&username, &hash, true)
            .await
            .map_err(failed)?;
        tracing::info!(user = %username, "first admin created");
    }
    Ok(Some(Arc::new(twinloop_server::auth::Auth::new(
        store.clone(),
        default_permission,
    ))))
}

/// The serving side of a server: the engine and its prediction log, deployments, monitors and
/// the gRPC front. Started before the API answers, finished after it has stopped.
#[cfg(feature = "serving")]
struct RunningServing {
    parts: Serving,
    grpc: Option<tokio::task::JoinHandle<()>>,
    log_writer: tokio::task::JoinHandle<()>,
    ticking: twinloop_watch::Ticking,
    monitor_lease: Arc<twinloop_meta::lease::LeaseKeeper>,
}

#[cfg(feature = "serving")]
impl RunningServing {
    /// gRPC runs until `stopped` changes or its sender is dropped, behind `auth`'s checks when
    /// there are any.
    async fn start(
        args: &ServerArgs,
        store: StoreHandle,
        artifacts: &ArtifactStore,
        locations: &LocationPolicy,
        outbound: &Outbound,
        auth: Option<Arc<twinloop_server::auth::Auth>>,
        stopped: tokio::sync::watch::Receiver<()>,
    ) -> Result<RunningServing> {
        let flush = std::time::Duration::from_millis(args.prediction_log_flush_ms.max(1));
        let policy = SegmentPolicy {
            max_age: flush,
            ..SegmentPolicy::default()
        };
        let (log, log_writer) = PredictionLog::start(artifacts.clone(), policy);
        let engine = Arc::new(Engine::new(log));
        let registry = StoreRegistry {
            store: store.clone(),
            artifacts: artifacts.clone(),
            locations: Some(locations.clone()),
        };
        let sessions = args.sessions.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        #[cfg(feature = "feature-store")]
        if let Some(repo) = &args.feature_repo {
            engine.set_features(Arc::new(online_enrichment(repo).await?));
        }
        let deployments =
            DeploymentManager::new(engine.clone(), store.clone(), Arc::new(registry), sessions);
        deployments.follow_aliases();
        // One replica among those on this database steps canaries; every one serves what the
        // store says.
        deployments.control(Some(twinloop_meta::lease::LeaseKeeper::start(
            store.clone(),
            twinloop_serving::deploy::LEASE,
        )));
        let gate = auth.map(|a| a as Arc<dyn twinloop_v2::grpc::Gate>);
        // The gRPC service is inference's other transport, so its port is bounded as /v2
        // inference is, with a bound of its own.
        let bounds = twinloop_v2::grpc::Bounds {
            max_concurrent_calls: args.limit_config().infer,
            preface_timeout: std::time::Duration::from_secs(args.header_read_timeout.max(1)),
        };
        let grpc = spawn_grpc(&args.host, args.grpc_port, &engine, gate, bounds, stopped).await?;
        let monitored = MonitoredDeployments {
            manager: deployments.clone(),
            engine: engine.clone(),
        };
        // One replica among those on this database evaluates monitors and fires their actions.
        let monitor_lease = twinloop_meta::lease::LeaseKeeper::start(store.clone(), "monitors");
        let monitors = Monitors::new(
            store,
            artifacts.clone(),
            Arc::new(monitored),
            Arc::new(HttpTransport::new(outbound.clone())),
            locations.clone(),
            flush + std::time::Duration::from_secs(1),
        );
        monitors
            .restore()
            .await
            .map_err(|e| anyhow::anyhow!("cannot restore the monitors: {e}"))?;
        let restored_monitors: Vec<String> =
            monitors.list().await.into_iter().map(|m| m.name).collect();
        if !restored_monitors.is_empty() {
            tracing::info!(
                "restored {} monitor(s): {}",
                restored_monitors.len(),
                restored_monitors.join(", ")
            );
        }
        let ticking = monitors.start(
            std::time::Duration::from_secs(1),
            Some(monitor_lease.clone()),
        );
        // Models load in the background: the API answers at once, /v2/health/ready once they are in.
        let restoring = deployments.clone();
        tokio::spawn(async move {
            match restoring.restore().await {
                Ok(()) => {
                    let restored: Vec<String> =
                        restoring.list().await.into_iter().map(|d| d.name).collect();
                    if !restored.is_empty() {
                        tracing::info!(
                            "restored {} deployment(s): {}",
                            restored.len(),
                            restored.join(", ")
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot restore the deployments"),
            }
        });
        Ok(RunningServing {
            parts: Serving {
                engine,
                deployments,
                monitors,
            },
            grpc,
            log_writer,
            ticking,
            monitor_lease,
        })
    }

    /// Stops the monitors, waits for gRPC's requests in flight, then writes whatever the
    /// prediction log still holds.
    async fn finish(self) {
        // Monitors write to the store, which closes after this.
        self.ticking.stop().await;
        // Given up rather than left to expire, so another replica takes the work over at once.
        self.monitor_lease.release().await;
        self.parts.deployments.release().await;
        if let Some(grpc) = self.grpc {
            let _ = grpc.await;
        }
        let engine = self.parts.engine;
        engine.log.write().unwrap_or_else(|p| p.into_inner()).take();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.log_writer).await;
    }
}

#[cfg(all(feature = "serving", feature = "feature-store"))]
async fn online_enrichment(repo: &std::path::Path) -> Result<OnlineEnrichment> {
    let hint = |e: twinloop_core::Error| {
        anyhow::anyhow!("--feature-repo {}: {}", repo.display(), e.message)
    };
    let features = FeatureStore::open(repo).await.map_err(hint)?;
    let online = features.online_store().await.map_err(hint)?;
    let service = OnlineService::new(features.repo.clone(), online)
        .await
        .map_err(hint)?;
    Ok(OnlineEnrichment { service })
}

#[cfg(feature = "serving")]
/// Starts the Open Inference Protocol over gRPC on `port` (0: off), every call through `gate`
/// when there is one and within `bounds`, until `stopped` changes or its sender is dropped; the
/// handle resolves once its requests in flight are answered.
pub(crate) async fn spawn_grpc(
    host: &str,
    port: u16,
    engine: &Arc<Engine>,
    gate: Option<Arc<dyn twinloop_v2::grpc::Gate>>,
    bounds: twinloop_v2::grpc::Bounds,
    mut stopped: tokio::sync::watch::Receiver<()>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if port == 0 {
        return Ok(None);
    }
    let addr: SocketAddr = format!("{}:{port}", bracket_v6(host))
        .parse()
        .with_context(|| format!("invalid --host {host:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} (hint: is the port in use? try --grpc-port, 0 turns gRPC off)"
        )
    })?;
    let shutdown = async move {
        let _ = stopped.changed().await;
    };
    Ok(Some(tokio::spawn(twinloop_v2::grpc::serve(
        listener,
        engine.clone(),
        gate,
        bounds,
        shutdown,
    ))))
}

/// The address as a URL a terminal makes clickable; a wildcard address is shown as loopback,
/// which is where a browser on the same machine finds it.
fn browsable_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

pub(crate) fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before the process exits.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

//! `twinloop pipeline …`: validate, plan and run pipeline files with the engine of
//! `twinloop_pipelines`, and manage its cache. A step's `executor:` names one of the repository's
//! `twinloop.yaml` executors, built here with `twinloop_executors` and handed to the engine.
//! Exit codes follow the design: 0 succeeded, 1 failed or canceled, 2 invalid spec or usage.

mod apply;
mod bless;
mod cache;
mod logs;
mod remote;
mod render;
mod runs;
mod triggers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use twinloop_pipelines::config::RepoConfig;
use twinloop_pipelines::exec::executor::Executors;
use twinloop_pipelines::exec::{Event, Events, RunOptions, RunReport};
use twinloop_pipelines::plan::{Decision, PlanOptions};
use twinloop_pipelines::spec::{Pipeline, parse_param_override};
use twinloop_pipelines::state::{RunStatus, StepState};
use twinloop_pipelines::{Error, Invalid, spec};

use crate::output::outln;

const INVALID: u8 = 2;

#[derive(Args)]
pub struct PipelineArgs {
    /// The repository: the working directory of every step; relative paths are under it.
    #[arg(long, default_value = ".", global = true)]
    repo: PathBuf,
    /// Where the output store, the cache index and the logs live (default: REPO/.twinloop).
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// Parse and check pipeline files without running anything; print each DAG.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show what a run would do with each step (RUN and why, CACHED from which run, SKIPPED,
    /// UNKNOWN); runs nothing.
    Plan {
        file: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Run a pipeline with the local executor.
    Run {
        file: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
        /// Steps running at once (default: the number of cores).
        #[arg(long)]
        max_parallel: Option<usize>,
        /// Print the run's report as JSON at the end instead of progress lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
        /// Run on this twinloop server instead (its steps run in --repo on the server's
        /// machine): the file is applied, a run started with the -p overrides and followed.
        #[arg(long, value_name = "URL", conflicts_with_all = ["json", "max_parallel"])]
        server: Option<String>,
    },
    /// List and remove cache entries and the stored outputs nothing references any more.
    Cache {
        #[command(subcommand)]
        command: cache::CacheCommand,
    },
    /// Register pipeline files with a running server, which runs their triggers; prints what
    /// changed (triggers and steps added, changed, removed).
    Apply(apply::ApplyArgs),
    /// The pipelines a server holds, with their newest version.
    List(apply::ListArgs),
    /// A server's pipeline runs, newest first.
    Runs(runs::RunsArgs),
    /// One run on a server: state, trigger and cause, times, why it failed.
    Status(runs::RunArgs),
    /// Cancel a run on a server (a queued one at once, a running one once its steps end).
    Cancel(runs::RunArgs),
    /// A server's triggers: next ticks and their newest events (fired, suppressed, missed).
    Triggers(triggers::TriggersArgs),
    /// Override a gate that did not bless: recorded with who, when and why; `run FILE --resume
    /// RUN_ID` then treats the gate as blessed.
    Bless(bless::BlessArgs),
    /// Print the Kubernetes Jobs a run would create (one YAML document per `run:` step);
    /// runs nothing.
    Render(render::RenderArgs),
    /// A run's step logs (stdout and stderr of each attempt), from the pipeline home.
    Logs(logs::LogsArgs),
    /// Pause or resume a server's triggers: pipeline trigger pause|resume NAME[/INDEX].
    Trigger {
        #[command(subcommand)]
        command: triggers::TriggerCommand,
    },
}

/// Where a standalone run records itself: the same store and artifacts `twinloop server` uses
/// by default, opened in this process with a tracking server on a loopback port for the steps.
#[derive(Args)]
struct StoreArgs {
    /// The metadata store, as `twinloop server` takes it.
    #[arg(
        long,
        default_value = "sqlite:///twinloop-data/twinloop.db",
        env = "TWINLOOP_BACKEND_STORE_URI"
    )]
    backend_store_uri: String,
    /// Where artifacts (registered models) are stored.
    #[arg(
        long,
        default_value = "twinloop-data/artifacts",
        env = "TWINLOOP_ARTIFACTS_DESTINATION"
    )]
    artifacts_destination: String,
    /// Run without the store: no MLflow runs, no lineage, and built-ins that need the registry
    /// or deployments fail.
    #[arg(long)]
    no_store: bool,
}

#[derive(Args)]
struct CacheArgs {
    /// Override a param: -p lr=0.2 (the value reads as YAML: a number stays a number).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Execute every step, whatever the cache holds.
    #[arg(long)]
    no_cache: bool,
    /// Execute this step and everything downstream of it, whatever the cache holds.
    #[arg(long, value_name = "STEP")]
    refresh: Vec<String>,
    /// Rehash cached outputs before reusing them.
    #[arg(long)]
    verify: bool,
    /// Reuse the SUCCEEDED and CACHED steps of this earlier run of the pipeline, whatever the
    /// cache settings; the rest run again, under a new run id.
    #[arg(long, value_name = "RUN_ID")]
    resume: Option<String>,
}

impl CacheArgs {
    fn params(&self) -> Result<Vec<(String, String)>, Error> {
        self.params
            .iter()
            .map(|p| parse_param_override(p))
            .collect()
    }
}

pub fn run(mut args: PipelineArgs) -> ExitCode {
    // Steps run with the repo as their working directory, so every path handed to them (inputs,
    // outputs, the context file) must not be relative to ours.
    match std::path::absolute(&args.repo) {
        Ok(repo) => args.repo = repo,
        Err(e) => {
            eprintln!("error: --repo {}: {e}", args.repo.display());
            return ExitCode::from(INVALID);
        }
    }
    let home = args
        .home
        .clone()
        .map_or_else(|| Ok(args.repo.join(".twinloop")), std::path::absolute);
    let home = match home {
        Ok(home) => home,
        Err(e) => {
            eprintln!("error: --home: {e}");
            return ExitCode::from(INVALID);
        }
    };
    match args.command {
        PipelineCommand::Validate { files } => validate(&files, &args.repo),
        PipelineCommand::Plan { file, cache } => load(&file, &args.repo).map_or_else(
            |code| code,
            |(pipeline, _)| plan(&pipeline, &cache, args.repo, home),
        ),
        PipelineCommand::Run {
            file,
            cache,
            max_parallel,
            json,
            store,
            server,
        } => load(&file, &args.repo).map_or_else(
            |code| code,
            |(pipeline, config)| {
                if let Some(server) = server {
                    return on_server(&file, &args.repo, &cache, &server);
                }
                let executors = match twinloop_executors::config::build_all(&config) {
                    Ok(executors) => executors,
                    Err(problems) => return fail(&Error::Invalid(Invalid(problems))),
                };
                let target = Target {
                    repo: args.repo,
                    home,
                    max_parallel,
                    json,
                    executors,
                };
                execute(&pipeline, &cache, &store, target)
            },
        ),
        PipelineCommand::Cache { command } => cache::run(command, &home),
        PipelineCommand::Apply(a) => apply::apply(&a, &args.repo),
        PipelineCommand::List(a) => apply::list(&a),
        PipelineCommand::Runs(a) => runs::runs(&a),
        PipelineCommand::Status(a) => runs::status(&a),
        PipelineCommand::Cancel(a) => runs::cancel(&a),
        PipelineCommand::Triggers(a) => triggers::triggers(&a),
        PipelineCommand::Bless(a) => bless::bless_run(&a, &home),
        PipelineCommand::Render(a) => render::render(&a),
        PipelineCommand::Logs(a) => logs::logs(&a, &home),
        PipelineCommand::Trigger { command } => triggers::trigger(&command),
    }
}

/// The pipeline of `file`, its executors checked against the repository's `twinloop.yaml`, and
/// that configuration.
fn load(file: &Path, repo: &Path) -> Result<(Pipeline, RepoConfig), ExitCode> {
    load_checked(file, repo).map_err(|e| fail(&e))
}

fn load_checked(file: &Path, repo: &Path) -> Result<(Pipeline, RepoConfig), Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
        path: file.to_owned(),
        source,
    })?;
    let pipeline = spec::parse(&file.display().to_string(), &text)?;
    let config = RepoConfig::load(repo)?;
    spec::check_executors(&pipeline, &text, &config.names())?;
    Ok((pipeline, config))
}

/// Prints the error; invalid files and bad arguments exit 2, anything else 1.
fn fail(error: &Error) -> ExitCode {
    match error {
        Error::Invalid(invalid) => {
            for problem in &invalid.0 {
                eprintln!("error: {problem}");
            }
            eprintln!(
                "hint: fix the lines above; `twinloop pipeline validate FILE` checks a file without running it"
            );
            ExitCode::from(INVALID)
        }
        Error::Param(_) => {
            eprintln!("error: {error}");
            eprintln!("hint: -p takes NAME=VALUE for a param declared under params:");
            ExitCode::from(INVALID)
        }
        Error::UnknownStep(_) => {
            eprintln!("error: {error}");
            eprintln!("hint: `twinloop pipeline validate FILE` lists the pipeline's steps");
            ExitCode::from(INVALID)
        }
        Error::UnknownRun(_) | Error::ResumeOtherPipeline { .. } => {
            eprintln!("error: {error}");
            eprintln!(
                "hint: `twinloop pipeline cache ls` lists the runs of each pipeline; resume one with the same --home"
            );
            ExitCode::from(INVALID)
        }
        Error::Executors(_) => {
            eprintln!("error: {error}");
            ExitCode::from(INVALID)
        }
        Error::UnknownExecutor { .. } => {
            eprintln!("error: {error}");
            eprintln!("hint: declare it under executors: in the repository's twinloop.yaml");
            ExitCode::from(INVALID)
        }
        Error::UnknownKey(_) => {
            eprintln!("error: {error}");
            eprintln!("hint: `twinloop pipeline cache ls` lists the keys");
            ExitCode::from(INVALID)
        }
        // A pipeline file that cannot be read is the caller's to fix, like an invalid one.
        Error::Read { .. } => {
            eprintln!("error: {error}");
            eprintln!(
                "hint: give the path of a pipeline YAML file, relative to the current directory"
            );
            ExitCode::from(INVALID)
        }
        Error::Io { .. } => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn validate(files: &[PathBuf], repo: &Path) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for file in files {
        let pipeline = match load_checked(file, repo) {
            Ok((p, _)) => p,
            Err(e) => {
                code = fail(&e);
                continue;
            }
        };
        outln!(
            "{}: pipeline {} is valid ({} steps)",
            file.display(),
            pipeline.name,
            pipeline.steps.len()
        );
        if let Some(description) = &pipeline.description {
            outln!("  {description}");
        }
        for step in twinloop_pipelines::validate::order(&pipeline).unwrap_or_default() {
            let upstream: Vec<String> = step.upstream().into_iter().collect();
            let kind = if step.finally { " (finally)" } else { "" };
            if upstream.is_empty() {
                outln!("  {}{kind}", step.id);
            } else {
                outln!("  {}{kind} ← {}", step.id, upstream.join(", "));
            }
        }
    }
    code
}

fn plan(pipeline: &Pipeline, cache: &CacheArgs, repo: PathBuf, home: PathBuf) -> ExitCode {
    let options = match cache.params() {
        Ok(params) => PlanOptions {
            repo,
            home,
            params,
            no_cache: cache.no_cache,
            refresh: cache.refresh.clone(),
            verify: cache.verify,
            resume: cache.resume.clone(),
        },
        Err(e) => return fail(&e),
    };
    let planned = match twinloop_pipelines::plan::plan(pipeline, &options) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let width = planned.iter().map(|p| p.step.len()).max().unwrap_or(0);
    for step in planned {
        let (word, detail) = match step.decision {
            Decision::Run { reasons } => ("RUN", reasons.join("; ")),
            Decision::Cached { from_run } => ("CACHED", format!("from run {from_run}")),
            Decision::Skipped { reason } => ("SKIPPED", reason),
            Decision::Unknown { reason } => ("UNKNOWN", reason),
        };
        outln!("{word:<8} {:<width$}  {detail}", step.step);
    }
    ExitCode::SUCCESS
}

/// `run --server`: what the server decides (its cache, its slots) is not chosen from here.
fn on_server(file: &Path, repo: &Path, cache: &CacheArgs, server: &str) -> ExitCode {
    if cache.no_cache || cache.verify || !cache.refresh.is_empty() || cache.resume.is_some() {
        eprintln!(
            "error: --no-cache, --refresh, --verify and --resume run locally only (hint: drop them, or --server)"
        );
        return ExitCode::from(INVALID);
    }
    match cache.params() {
        Ok(params) => remote::run(file, repo, &params, server),
        Err(e) => fail(&e),
    }
}

/// Where and how a run goes.
struct Target {
    repo: PathBuf,
    home: PathBuf,
    max_parallel: Option<usize>,
    json: bool,
    executors: Executors,
}

fn execute(pipeline: &Pipeline, cache: &CacheArgs, store: &StoreArgs, target: Target) -> ExitCode {
    let Target {
        repo,
        home,
        max_parallel,
        json,
        executors,
    } = target;
    let repo_root = repo.clone();
    let mut options = RunOptions::new(repo, home);
    options.executors = executors;
    match cache.params() {
        Ok(params) => options.params = params,
        Err(e) => return fail(&e),
    }
    options.no_cache = cache.no_cache;
    options.refresh.clone_from(&cache.refresh);
    options.verify = cache.verify;
    options.resume.clone_from(&cache.resume);
    if let Some(n) = max_parallel {
        options.max_parallel = n;
    }
    if !json {
        options.events = Events::new(print_event);
    }
    let cancel = options.cancel.clone();
    let Some(runtime) = crate::output::runtime() else {
        return ExitCode::FAILURE;
    };
    let report = runtime.block_on(async move {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
        let server = if store.no_store {
            None
        } else {
            let args = crate::server::ServerArgs::embedded(
                store.backend_store_uri.clone(),
                store.artifacts_destination.clone(),
                &repo_root,
            );
            Some(crate::server::Running::start(&args).await?)
        };
        options.services = server.as_ref().map(crate::server::Running::services);
        let report = twinloop_pipelines::exec::run(pipeline, options).await;
        if let Some(server) = server {
            server.stop().await?;
        }
        anyhow::Ok(report)
    });
    let report = match report {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return fail(&e),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => outln!("{text}"),
            Err(e) => eprintln!("error: cannot encode the report: {e}"),
        }
    } else {
        summarize(&report);
    }
    match report.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Rejected => ExitCode::from(3),
        _ => ExitCode::FAILURE,
    }
}

fn print_event(event: Event) {
    match event {
        Event::RunStarted { run_id, pipeline } => outln!("run {run_id} of {pipeline}"),
        Event::StepStarted { step, attempt } => outln!("  {step}: started (attempt {attempt})"),
        Event::StepRetrying {
            step,
            attempt,
            delay,
            reason,
        } => {
            outln!("  {step}: attempt {attempt} {reason}; retrying in {delay:?}");
        }
        Event::StepFinished {
            step,
            state,
            reason,
        } => match reason {
            Some(reason) => outln!("  {step}: {state} ({reason})"),
            None => outln!("  {step}: {state}"),
        },
        Event::RunFinished { .. } => {}
    }
}

fn summarize(report: &RunReport) {
    let seconds = (report.ended_ms - report.started_ms) as f64 / 1000.0;
    outln!("run {} {} in {seconds:.1}s", report.run_id, report.status);
    if let Some(why) = &report.rejected {
        outln!("  {why}");
    }
    for step in &report.steps {
        if let Some(from) = &step.cached_from {
            outln!(
                "  {:<10} {} from run {from}",
                step.state.as_str(),
                step.step
            );
        } else if matches!(step.state, StepState::Failed | StepState::TimedOut) {
            let log = step
                .attempts
                .last()
                .map(|a| format!("; log: {}", a.stderr.display()));
            outln!(
                "  {:<10} {}{}",
                step.state.as_str(),
                step.step,
                log.unwrap_or_default()
            );
        } else {
            outln!("  {:<10} {}", step.state.as_str(), step.step);
        }
    }
}

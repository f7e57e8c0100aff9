//! `twinloop`: one binary for the whole platform. This file only parses arguments and hands
//! off to the library crates.

// Output goes through `outln!`: `println!` panics when a pipe's reader has gone.
#![deny(clippy::print_stdout)]

// Cargo features (see Cargo.toml): `serving` brings `serve`, `deploy` and the monitor commands
// that talk to a server; `feature-store` brings `features`.
mod admin;
mod auth;
mod client;
#[cfg(feature = "serving")]
mod deploy;
mod drift_schema;
#[cfg(feature = "feature-store")]
mod features;
mod lineage;
mod models;
mod monitor;
mod output;
mod pipeline;
#[cfg(all(feature = "serving", feature = "feature-store"))]
mod quickstart;
#[cfg(feature = "serving")]
mod serve;
mod server;
mod step_exec;
#[cfg(feature = "serving")]
mod tracking_client;
mod webhooks;

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand};

use client::{ServerConnection, TrackingUriArg};

#[derive(Parser)]
#[command(
    name = "twinloop",
    version,
    about = "twinloop: the MLOps dual loop in one binary",
    long_about = "twinloop runs the MLOps dual loop: tracking and lineage, model registry, feature store, \
                  serving and monitoring.\n\nStart with `twinloop server`, then point the stock mlflow client \
                  at it:\n\n    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python train.py"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Kept for scripts that put it before the command; `twinloop COMMAND --help` documents it.
    #[arg(long, hide = true)]
    tracking_uri: Option<String>,
}

// A command that talks to a running server, with its own `--tracking-uri`.
#[derive(Args)]
struct Remote<A: Args> {
    #[command(flatten)]
    server: TrackingUriArg,
    #[command(flatten)]
    args: A,
}

// A command group that talks to a running server; `--tracking-uri` applies to every subcommand.
#[derive(Args)]
struct RemoteGroup<C: Subcommand> {
    #[command(flatten)]
    server: TrackingUriArg,
    #[command(subcommand)]
    command: C,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server (MLflow-compatible REST API and artifact proxy).
    Server(server::ServerArgs),
    /// Users and API tokens of a server run with --auth (written to its metadata store).
    Auth(auth::AuthArgs),
    /// Operations on a server's stores: online backup, restore into a fresh store, verify that
    /// every model's files are present.
    Admin(admin::AdminArgs),
    #[cfg(feature = "serving")]
    /// Serve models over KServe V2 (REST and gRPC) in a stateless process, without a server.
    ///
    /// Needs ONNX Runtime's library: scripts/install-onnxruntime.sh puts it where twinloop looks.
    Serve(Remote<serve::ServeArgs>),
    #[cfg(feature = "serving")]
    /// Deployments on a running server: create with weighted routes, canary, promote, roll back.
    Deploy(RemoteGroup<deploy::DeployCommand>),
    /// The model registry of a running server: models, versions, aliases.
    Models(RemoteGroup<models::ModelsCommand>),
    /// Walk the lineage graph of a running server from one node.
    Lineage(Remote<lineage::LineageArgs>),
    #[cfg(feature = "feature-store")]
    /// The feature store: definitions, training sets, materialization, online serving.
    Features(features::FeaturesArgs),
    /// Monitoring: drift checks between two datasets (drift) and the production monitors of a
    /// running server (create, list, status, alerts, delete).
    Monitor(monitor::MonitorArgs),
    /// Registry webhooks of a running server: list, add (signed POSTs of registry events), remove.
    Webhooks(RemoteGroup<webhooks::WebhooksCommand>),
    /// Pipelines: validate, plan and run a YAML DAG of steps with the local engine and its cache.
    Pipeline(pipeline::PipelineArgs),
    #[cfg(all(feature = "serving", feature = "feature-store"))]
    /// The whole dual loop in one command, on generated data and embedded defaults: features,
    /// training pipeline, gate, deployment, monitor, drift, retrain by itself, canary, promotion.
    Quickstart(quickstart::QuickstartArgs),
    /// Internal: runs one pipeline step's command so that its process tree dies with the
    /// twinloop that started it.
    #[command(hide = true)]
    StepExec(step_exec::StepExecArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWINLOOP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    step_exec::register();
    let connect =
        |server: &TrackingUriArg| ServerConnection::resolve(server, cli.tracking_uri.as_deref());
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Auth(args) => auth::run(args),
        Command::Admin(args) => admin::run(args),
        #[cfg(feature = "serving")]
        Command::Serve(c) => serve::run(&connect(&c.server), c.args),
        #[cfg(feature = "serving")]
        Command::Deploy(c) => deploy::run(&connect(&c.server), c.command),
        Command::Models(c) => models::run(&connect(&c.server), c.command),
        Command::Lineage(c) => lineage::run(&connect(&c.server), c.args),
        #[cfg(feature = "feature-store")]
        Command::Features(args) => features::run(args),
        Command::Monitor(args) => monitor::run(cli.tracking_uri.as_deref(), args),
        Command::Webhooks(c) => webhooks::run(&connect(&c.server), c.command),
        // It chooses its own exit codes: 2 for an invalid pipeline, 1 for a failed run.
        Command::Pipeline(args) => return pipeline::run(args),
        #[cfg(all(feature = "serving", feature = "feature-store"))]
        Command::Quickstart(args) => return quickstart::run(args),
        Command::StepExec(args) => return step_exec::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as anyhow's `{:#}` writes them, less a cause whose text
/// the line already ends with: a `twinloop_core::Error`'s message carries its cause's text, and
/// so do some library errors (sqlx's).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// The subcommands and arguments under `command` that have no help text, as `path arg`.
#[cfg(test)]
pub(crate) fn undescribed(command: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    for sub in command.get_subcommands() {
        let path = format!("{} {}", command.get_name(), sub.get_name());
        if sub.get_about().is_none() {
            missing.push(path.clone());
        }
        for arg in sub.get_arguments() {
            if arg.get_help().is_none() && arg.get_id() != "help" {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        missing.extend(undescribed(sub));
    }
    missing
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::other("disk full");
        let core = twinloop_core::Error::internal_from("cannot write artifact", io);
        let e = anyhow::Error::new(core).context("cannot log the model");
        assert_eq!(
            super::one_line(&e),
            "cannot log the model: cannot write artifact: disk full"
        );
        let plain = anyhow::anyhow!("bad").context("ctx");
        assert_eq!(super::one_line(&plain), "ctx: bad");
    }
}

//! `twinloop`: one binary for the whole platform. This file only parses arguments and hands
//! off to the library crates.

mod client;
mod deploy;
mod drift_schema;
mod features;
mod lineage;
mod models;
mod monitor;
mod serve;
mod server;

use clap::{Parser, Subcommand};

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
    #[command(flatten)]
    connection: client::ServerConnection,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server (MLflow-compatible REST API and artifact proxy).
    Server(server::ServerArgs),
    Serve(serve::ServeArgs),
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// The model registry of a running server: models, versions, aliases.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Walk the lineage graph of a running server from one node.
    Lineage(lineage::LineageArgs),
    /// The feature store: definitions, training sets, materialization, online serving.
    Features(features::FeaturesArgs),
    /// Monitoring: data drift and data quality between a reference and a current dataset.
    Monitor(monitor::MonitorArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWINLOOP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Serve(args) => serve::run(&cli.connection, args),
        Command::Deploy(command) => deploy::run(&cli.connection, command),
        Command::Models(command) => models::run(&cli.connection, command),
        Command::Lineage(args) => lineage::run(&cli.connection, args),
        Command::Features(args) => features::run(args),
        Command::Monitor(args) => monitor::run(&cli.connection, args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

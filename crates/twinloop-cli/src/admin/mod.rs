//! `twinloop admin`: online backup of a server's metadata store and artifacts, restore into a
//! fresh store, and a check that every model version's files are where the store says.

mod backup;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use twinloop_meta::{SqlStore, StoreUri};

#[derive(Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

/// The stores a server was started with, named as `twinloop server` takes them.
#[derive(Args)]
struct Stores {
    /// The server's metadata store.
    #[arg(
        long,
        env = "TWINLOOP_BACKEND_STORE_URI",
        default_value = "sqlite:///twinloop-data/twinloop.db"
    )]
    backend_store_uri: String,
    /// The server's artifact store: a directory or s3://bucket/prefix.
    #[arg(
        long,
        env = "TWINLOOP_ARTIFACTS_DESTINATION",
        default_value = "twinloop-data/artifacts"
    )]
    artifacts_destination: String,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Copies the metadata store (a consistent snapshot, taken while the server keeps
    /// writing: SQLite's VACUUM INTO, or pg_dump) and then every artifact into a new directory.
    Backup {
        #[command(flatten)]
        stores: Stores,
        /// The backup directory to create; it must not exist yet.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restores a backup into an empty metadata store and artifact store (a new server's).
    Restore {
        #[command(flatten)]
        stores: Stores,
        /// A directory `twinloop admin backup` wrote.
        #[arg(long)]
        from: PathBuf,
    },
    /// Checks that the files of every model version (its source) and logged model are in the
    /// artifact store; lists what is missing and fails when anything is.
    Verify {
        #[command(flatten)]
        stores: Stores,
    },
}

pub fn run(args: AdminArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async {
            match args.command {
                AdminCommand::Backup { stores, to } => backup::backup(&stores, &to).await,
                AdminCommand::Restore { stores, from } => backup::restore(&stores, &from).await,
                AdminCommand::Verify { stores } => verify::verify(&stores).await,
            }
        })
}

fn store_uri(stores: &Stores) -> Result<StoreUri> {
    stores
        .backend_store_uri
        .parse()
        .map_err(|e: twinloop_core::Error| {
            anyhow::anyhow!("{} (hint: check --backend-store-uri)", e.message)
        })
}

async fn open_store(uri: &StoreUri) -> Result<SqlStore> {
    SqlStore::open(uri, "mlflow-artifacts:/")
        .await
        .map_err(|e| anyhow::anyhow!("{} (hint: check --backend-store-uri)", e.message))
}

fn artifact_store(stores: &Stores) -> Result<twinloop_artifacts::ArtifactStore> {
    twinloop_artifacts::ArtifactStore::open(&stores.artifacts_destination)
        .map_err(|e| anyhow::anyhow!("{} (hint: check --artifacts-destination)", e.message))
}

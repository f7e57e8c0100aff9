//! `twinloop auth`: users and API tokens of a server started with `--auth`, written straight to
//! its metadata store (so the first tokens can be made before anyone can sign in). Users can
//! also be managed over HTTP through MLflow's own API (`mlflow.server.get_app_client`).

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use twinloop_core::auth::{TokenScope, hash_password, new_token, token_digest};
use twinloop_meta::{AuthStore, SqlStore, StoreUri};

use crate::output::outln;

#[derive(Args)]
pub struct AuthArgs {
    /// The server's metadata store, as `twinloop server` takes it.
    #[arg(
        long,
        default_value = "sqlite:///twinloop-data/twinloop.db",
        env = "TWINLOOP_BACKEND_STORE_URI"
    )]
    backend_store_uri: String,

    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// API tokens: for services and scripts (`MLFLOW_TRACKING_TOKEN`, or as the password).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Users (MLflow's basic-auth users).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Makes a token and prints it; it is shown this once and only its digest is kept.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// What it may do, at most what its user may: read, write, deploy, admin or infer.
        #[arg(long)]
        scope: String,
        /// A note to recognise it by in `token list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists tokens (never the tokens themselves).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revokes a token by id: requests with it are refused from now on.
    Revoke {
        /// The id `token list` shows.
        id: i64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a user; the password is read from the first line of standard input.
    Create {
        /// The new user's name.
        username: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
}

/// `--auth` on the standalone servers (`serve`, `features serve`): the credential checks and
/// rules of `twinloop server --auth`, over the store that keeps the users and tokens (the
/// tracking server's). They make no first admin: users come from the tracking server.
#[cfg(any(feature = "serving", feature = "feature-store"))]
pub async fn standalone(
    backend_store_uri: Option<&str>,
    default_permission: &str,
) -> Result<std::sync::Arc<twinloop_server::auth::Auth>> {
    let Some(uri) = backend_store_uri else {
        bail!("--auth needs the store that holds the users and tokens (hint: --backend-store-uri)");
    };
    let failed = |e: twinloop_core::Error| anyhow::anyhow!("{}", e.message);
    let default_permission = default_permission
        .parse()
        .map_err(|e: twinloop_core::Error| {
            anyhow::anyhow!("--default-permission: {}", e.message)
        })?;
    let uri: StoreUri = uri.parse().map_err(failed)?;
    let store = SqlStore::open(&uri, "mlflow-artifacts:/")
        .await
        .map_err(|e| anyhow::anyhow!("{} (hint: check --backend-store-uri)", e.message))?;
    Ok(std::sync::Arc::new(twinloop_server::auth::Auth::new(
        std::sync::Arc::new(store),
        default_permission,
    )))
}

pub fn run(args: AuthArgs) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run_async(args))
}

async fn run_async(args: AuthArgs) -> Result<()> {
    let uri: StoreUri = args
        .backend_store_uri
        .parse()
        .map_err(|e: twinloop_core::Error| anyhow::anyhow!("{}", e.message))?;
    let store = SqlStore::open(&uri, "mlflow-artifacts:/")
        .await
        .map_err(|e| anyhow::anyhow!("{} (hint: check --backend-store-uri)", e.message))?;
    let done = command(&store, args.command).await;
    store.close().await;
    done
}

async fn command(store: &SqlStore, command: AuthCommand) -> Result<()> {
    let failed = |e: twinloop_core::Error| anyhow::anyhow!("{}", e.message);
    match command {
        AuthCommand::Token(TokenCommand::Create {
            user,
            scope,
            description,
        }) => {
            let scope: TokenScope = scope.parse().map_err(failed)?;
            let token = new_token();
            let made = store
                .create_token(&user, &token_digest(&token), scope, &description)
                .await
                .map_err(failed)?;
            eprintln!(
                "token {} for {user} ({scope}); it is not shown again:",
                made.id
            );
            outln!("{token}");
        }
        AuthCommand::Token(TokenCommand::List { user }) => {
            outln!("ID\tUSER\tSCOPE\tCREATED\tDESCRIPTION");
            for t in store.list_tokens(user.as_deref()).await.map_err(failed)? {
                let created = chrono::DateTime::from_timestamp_millis(t.created_ms)
                    .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                outln!(
                    "{}\t{}\t{}\t{created}\t{}",
                    t.id,
                    t.username,
                    t.scope,
                    t.description
                );
            }
        }
        AuthCommand::Token(TokenCommand::Revoke { id }) => {
            store.revoke_token(id).await.map_err(failed)?;
            outln!("token {id} revoked");
        }
        AuthCommand::User(UserCommand::Create { username, admin }) => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!(
                    "no password on standard input (hint: echo \"$PASSWORD\" | twinloop auth user create NAME)"
                );
            }
            let hash = hash_password(password).map_err(failed)?;
            let user = store
                .create_user(&username, &hash, admin)
                .await
                .map_err(failed)?;
            outln!(
                "user {} created (id {}{})",
                user.username,
                user.id,
                if user.is_admin { ", admin" } else { "" }
            );
        }
    }
    Ok(())
}

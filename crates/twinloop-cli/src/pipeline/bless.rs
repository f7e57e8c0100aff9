//! `twinloop pipeline bless RUN_ID --step STEP --reason TEXT`: a person overrides a gate that
//! did not bless, over `twinloop_pipelines::bless`; `pipeline run FILE --resume RUN_ID` then
//! goes on past the gate.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use twinloop_meta::{SqlStore, StoreHandle, StoreUri};
use twinloop_pipelines::bless::{BlessError, Request, bless};

use super::INVALID;
use crate::output::outln;

#[derive(Args)]
pub(super) struct BlessArgs {
    /// The run whose gate did not bless.
    run: String,
    /// The gate step (a `model.evaluate@1` step).
    #[arg(long)]
    step: String,
    /// Why the candidate goes on anyway; recorded with who and when.
    #[arg(long)]
    reason: String,
    /// The metadata store the run was recorded in (`pipeline run`'s default), where the
    /// override joins the run's lineage; a SQLite file that does not exist is skipped.
    #[arg(
        long,
        default_value = "sqlite:///twinloop-data/twinloop.db",
        env = "TWINLOOP_BACKEND_STORE_URI"
    )]
    backend_store_uri: String,
    /// Record the override in the run's record only, not in lineage.
    #[arg(long)]
    no_store: bool,
}

/// Who is blessing: `$USER`, else what `whoami` says.
fn who() -> String {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    std::process::Command::new("whoami")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The store the run may be recorded in: `None` with `--no-store`, or when the default SQLite
/// file does not exist (blessing must not create an empty store).
async fn open_store(args: &BlessArgs) -> Result<Option<StoreHandle>, String> {
    if args.no_store {
        return Ok(None);
    }
    let uri: StoreUri = args
        .backend_store_uri
        .parse()
        .map_err(|e: twinloop_core::Error| e.message)?;
    if let StoreUri::Sqlite(path) = &uri
        && !path.exists()
    {
        return Ok(None);
    }
    let store = SqlStore::open(&uri, "mlflow-artifacts:")
        .await
        .map_err(|e| format!("{} (hint: check --backend-store-uri)", e.message))?;
    Ok(Some(Arc::new(store)))
}

pub(super) fn bless_run(args: &BlessArgs, home: &Path) -> ExitCode {
    let Some(runtime) = crate::output::runtime() else {
        return ExitCode::FAILURE;
    };
    let who = who();
    let request = Request {
        run_id: &args.run,
        step: &args.step,
        reason: &args.reason,
        who: &who,
    };
    let done = runtime.block_on(async {
        let store = open_store(args)
            .await
            .map_err(|message| (message, None, ExitCode::FAILURE))?;
        bless(home, &request, store.as_ref()).await.map_err(printed)
    });
    match done {
        Ok(done) => {
            outln!(
                "run {} step {}: {}",
                done.record.run_id,
                done.record.step,
                done.record.note()
            );
            match (&done.lineage, &done.note) {
                (Some(node), _) => outln!("  lineage: gate_override {node}"),
                (None, Some(note)) => outln!("  note: {note}"),
                (None, None) => {}
            }
            outln!(
                "  next: twinloop pipeline run FILE --resume {} (the gate counts as blessed)",
                done.record.run_id
            );
            ExitCode::SUCCESS
        }
        Err((message, hint, code)) => {
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            code
        }
    }
}

/// An error as printed: its line, a hint, and the exit code (2 for what the caller must fix).
type Printed = (String, Option<&'static str>, ExitCode);

fn printed(error: BlessError) -> Printed {
    let hint = match &error {
        BlessError::UnknownRun(_) => {
            Some("`twinloop pipeline cache ls` lists the runs; bless with the --home the run used")
        }
        BlessError::UnknownStep { .. } | BlessError::NotAGate { .. } => {
            Some("give --step the id of the run's model.evaluate@1 step")
        }
        BlessError::NotJudged { .. } => {
            Some("fix the gate step and run again; bless overrides a judgement, not a failure")
        }
        BlessError::AlreadyBlessed { .. } | BlessError::AlreadyOverridden { .. } => {
            Some("resume the run: twinloop pipeline run FILE --resume RUN_ID")
        }
        BlessError::Io { .. } => None,
    };
    let code = match error {
        BlessError::Io { .. } => ExitCode::FAILURE,
        _ => ExitCode::from(INVALID),
    };
    (error.to_string(), hint, code)
}

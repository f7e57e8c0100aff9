//! The contract between the pipeline engine and an engine that runs one attempt elsewhere (a
//! Kubernetes Job, a Ray job). It lives here, beside the engine that calls it, so that the
//! implementations (`twinloop-executors`) depend on the engine and never the reverse: the
//! binary builds them from `twinloop.yaml` and hands them to a run as [`Executors`].

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod error;
mod quantity;
mod spec;

pub use error::ExecutorError;
pub use quantity::{Cpu, Memory};
pub use spec::{AttemptSpec, Resources};

/// How a finished attempt ended. A failure of the attempt is an outcome, not an error: the
/// engine decides on retries from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed {
        /// The step's exit code when the engine reports one.
        exit_code: Option<i32>,
        reason: String,
    },
    /// The engine's own deadline stopped it (a Job's `activeDeadlineSeconds`).
    TimedOut {
        reason: String,
    },
    /// Stopped by [`Executor::cancel`] or by someone else (a `ray job stop`, a deleted Job).
    Canceled {
        reason: String,
    },
}

/// A started attempt as the remote engine names it: a Job name, a Ray submission id. The engine
/// records `id` with the attempt so that after a restart [`Executor::reattach`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// Which executor started it (`k8s`, `ray`).
    pub executor: String,
    pub id: String,
}

/// Runs one attempt of one step on an engine other than this process.
#[async_trait]
pub trait Executor: Send + Sync {
    /// `k8s`, `ray`: what [`Handle::executor`] says.
    fn name(&self) -> &'static str;

    /// How often [`Executor::wait`] asks for the state.
    fn poll_interval(&self) -> Duration;

    /// Submits the attempt. Idempotent: starting an attempt the engine already has (same run,
    /// step and attempt) returns its handle instead of a second copy.
    async fn start(&self, spec: &AttemptSpec) -> Result<Handle, ExecutorError>;

    /// The outcome once it has ended, `None` while it is pending or running.
    async fn poll(&self, handle: &Handle) -> Result<Option<Outcome>, ExecutorError>;

    /// Stops it; stopping one that already ended is not an error.
    async fn cancel(&self, handle: &Handle) -> Result<(), ExecutorError>;

    /// What it printed (stdout and stderr together), as far as the engine keeps it.
    async fn logs(&self, handle: &Handle) -> Result<String, ExecutorError>;

    /// The handle of an attempt started before a restart, by the id recorded from
    /// [`Handle::id`]; [`ExecutorError::NotFound`] when the engine no longer has it.
    async fn reattach(&self, id: &str) -> Result<Handle, ExecutorError>;

    /// Polls until the attempt ends. A few failed polls in a row are tolerated (an API server
    /// restarting must not fail a step that is running fine); more end the wait with the error.
    async fn wait(&self, handle: &Handle) -> Result<Outcome, ExecutorError> {
        let mut failures = 0;
        loop {
            match self.poll(handle).await {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => failures = 0,
                Err(e @ ExecutorError::Transport { .. }) => {
                    failures += 1;
                    if failures >= MAX_FAILED_POLLS {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }
}

/// The named executors a run may use (`executor: NAME` on a step), as `twinloop.yaml` declares
/// them. `local` is not among them: it is the engine's own launcher.
pub type Executors = std::collections::BTreeMap<String, std::sync::Arc<dyn Executor>>;

/// Builds the executors a repository's `twinloop.yaml` declares: what the binary (which links
/// their implementations) hands a server's scheduler, which reads each run's repository.
pub type BuildExecutors = std::sync::Arc<
    dyn Fn(&crate::config::RepoConfig) -> Result<Executors, Vec<crate::Problem>> + Send + Sync,
>;

/// Consecutive unanswered polls before [`Executor::wait`] gives up.
pub const MAX_FAILED_POLLS: u32 = 5;

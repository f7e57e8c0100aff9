//! Errors: [`Invalid`] lists what is wrong with a pipeline file, each [`Problem`] naming
//! `file:line: steps[x].field`; [`Error`] is everything else that stops a run or a plan.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a pipeline file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    /// Where in the document: `steps[train].inputs`, `params`, `pipeline`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

/// Every problem found in a pipeline file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid(pub Vec<Problem>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A `-p name=value` the pipeline does not declare, or a malformed one.
    #[error("{0}")]
    Param(String),
    /// `--refresh STEP` names no step.
    #[error("no step named {0:?} in the pipeline")]
    UnknownStep(String),
    /// `--resume RUN_ID` names a run with no execution in the cache index.
    #[error("no run {0:?} in the cache index: nothing to resume")]
    UnknownRun(String),
    #[error("run {run_id} is a run of pipeline {theirs:?}, not {ours:?}: nothing to resume")]
    ResumeOtherPipeline {
        run_id: String,
        theirs: String,
        ours: String,
    },
    /// A step's `executor:` names none of the executors the run was given.
    #[error("step {step}: executor {executor:?} is not one of twinloop.yaml's executors")]
    UnknownExecutor { step: String, executor: String },
    /// The repository's executors could not be built (a server's run; the CLI reports each
    /// problem of `twinloop.yaml` itself).
    #[error("the repository's executors: {0}")]
    Executors(String),
    /// `cache rm KEY` names no entry.
    #[error("no cache entry with key {0:?}")]
    UnknownKey(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

//! `twinloop step-exec` (hidden, internal): the launcher the pipeline engine starts each step's
//! shell through, so that the step's process tree dies with the engine
//! (`twinloop_pipelines::exec::launch` says how).

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use twinloop_pipelines::exec::launch::{self, StepExec};

/// The launcher's exit code when it fails itself, as `env` and `timeout` do.
const LAUNCH_FAILED: u8 = 125;

#[derive(Args, Debug)]
pub(crate) struct StepExecArgs {
    /// The engine's process id: once it is not our parent any more, the step's group is ended.
    /// Left out where nothing is to be watched (a Kubernetes Job's container).
    #[arg(long)]
    parent: Option<u32>,
    /// Milliseconds between SIGTERM and SIGKILL when the engine is gone.
    #[arg(long)]
    grace_ms: u64,
    /// The step's program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// Linux's link to the running image: it still execs after an upgrade replaced or removed the
/// file (the path `current_exe` gives then ends in " (deleted)").
const RUNNING_IMAGE: &str = "/proc/self/exe";

/// Makes this binary the launcher of the steps its pipelines run.
pub(crate) fn register() {
    if std::path::Path::new(RUNNING_IMAGE).exists() {
        launch::set_launcher(RUNNING_IMAGE.into());
        return;
    }
    match std::env::current_exe() {
        Ok(exe) => launch::set_launcher(exe),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot find the twinloop binary: steps start without step-exec and can outlive a killed twinloop"
        ),
    }
}

pub(crate) fn run(args: StepExecArgs) -> ExitCode {
    let exec = StepExec {
        parent: args.parent,
        grace: Duration::from_millis(args.grace_ms),
        command: args.command,
    };
    // One thread: nothing here is busy, and the step should not pay for a worker per core.
    let ended = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime
                .block_on(launch::step_exec(exec))
                .map_err(|e| crate::one_line(&anyhow::Error::new(e)))
        });
    match ended {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(LAUNCH_FAILED)),
        Err(message) => {
            eprintln!("twinloop step-exec: {message}");
            ExitCode::from(LAUNCH_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    #[test]
    fn parses_what_the_engine_passes() {
        let exec = StepExec {
            parent: Some(4242),
            grace: Duration::from_millis(1500),
            command: vec!["sh".into(), "-c".into(), "echo --parent 1".into()],
        };
        let command = StepExecArgs::augment_args(clap::Command::new(launch::SUBCOMMAND));
        let matches = command
            .try_get_matches_from(std::iter::once(OsString::from("step-exec")).chain(exec.args()))
            .unwrap();
        let args = StepExecArgs::from_arg_matches(&matches).unwrap();
        assert_eq!(args.parent, Some(4242));
        assert_eq!(args.grace_ms, 1500);
        assert_eq!(args.command, exec.command);
    }

    #[test]
    fn a_command_is_required_and_bad_input_is_an_error() {
        let command = || StepExecArgs::augment_args(clap::Command::new(launch::SUBCOMMAND));
        assert!(
            command()
                .try_get_matches_from(["step-exec", "--parent", "1", "--grace-ms", "0"])
                .is_err()
        );
        assert!(
            command()
                .try_get_matches_from([
                    "step-exec",
                    "--parent",
                    "x",
                    "--grace-ms",
                    "0",
                    "--",
                    "true"
                ])
                .is_err()
        );
    }
}

//! Ray: one Ray job per attempt through the dashboard's Jobs REST API. The step's code files
//! travel as a `working_dir` package (uploaded only when the cluster lacks it), the step
//! protocol's variables as `runtime_env.env_vars`, `resources.cpu`/`memory` as the entrypoint's
//! reservation; cancel is Ray's stop. When the engine names a launcher and a working directory
//! (shared-path staging: the Ray node sees the repository and the pipeline home at the engine's
//! paths), the entrypoint changes into it and runs the step under `twinloop step-exec`, as a
//! local step runs.

mod api;
pub mod package;

use std::time::Duration;

use async_trait::async_trait;

use crate::{AttemptSpec, Executor, ExecutorError, Handle, Outcome};

/// Where the dashboard is and what a job may ship.
#[derive(Debug, Clone)]
pub struct RayConfig {
    /// The dashboard, `http://head:8265`.
    pub address: String,
    /// A bearer token for a dashboard behind an authenticating proxy.
    pub token: Option<String>,
    pub poll: Duration,
    /// Most bytes of code files one package may hold. Ray refuses large `working_dir`
    /// packages itself; the check here fails before anything is uploaded.
    pub max_package_bytes: u64,
}

impl RayConfig {
    pub fn new(address: impl Into<String>) -> RayConfig {
        RayConfig {
            address: address.into(),
            token: None,
            poll: Duration::from_secs(2),
            max_package_bytes: 100 << 20,
        }
    }
}

pub struct RayExecutor {
    api: api::Api,
    poll: Duration,
    max_package_bytes: u64,
}

/// `twinloop-<run>-<step>-<attempt>`: the same attempt is the same Ray job, so a restarted
/// engine finds it again instead of submitting a copy.
pub fn submission_id(run_id: &str, step: &str, attempt: u32) -> String {
    format!("twinloop-{run_id}-{step}-{attempt}")
}

impl RayExecutor {
    pub fn new(config: RayConfig) -> Result<RayExecutor, ExecutorError> {
        Ok(RayExecutor {
            api: api::Api::new(&config.address, config.token)?,
            poll: config.poll,
            max_package_bytes: config.max_package_bytes,
        })
    }

    fn handle(id: String) -> Handle {
        Handle {
            executor: "ray".into(),
            id,
        }
    }
}

/// The shell line Ray runs: the launcher's argv when there is a launcher, else the command;
/// after a `cd` into the attempt's working directory when it names one.
pub fn entrypoint(spec: &AttemptSpec) -> String {
    let command = match &spec.launcher {
        Some(program) => {
            let argv: Vec<String> = spec
                .launched(&program.to_string_lossy())
                .iter()
                .map(|a| sh_quote(a))
                .collect();
            format!("exec {}", argv.join(" "))
        }
        None => spec.command.clone(),
    };
    match &spec.workdir {
        Some(dir) => format!("cd {} && {command}", sh_quote(&dir.to_string_lossy())),
        None => command,
    }
}

/// `text` as one word of a POSIX shell line.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[async_trait]
impl Executor for RayExecutor {
    fn name(&self) -> &'static str {
        "ray"
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }

    async fn start(&self, spec: &AttemptSpec) -> Result<Handle, ExecutorError> {
        let id = submission_id(&spec.run_id, &spec.name(), spec.attempt);
        let package = package::package(&spec.repo, &spec.code, self.max_package_bytes)?;
        let working_dir = package.as_ref().map(package::Package::uri);
        if let Some(package) = package
            && !self.api.has_package(&package.name).await?
        {
            self.api
                .upload_package(&package.name, package.bytes)
                .await?;
        }
        let body = api::Submit {
            entrypoint: entrypoint(spec),
            submission_id: id.clone(),
            runtime_env: api::RuntimeEnv {
                working_dir,
                env_vars: spec.environment(),
            },
            metadata: spec.labels(),
            entrypoint_num_cpus: spec.resources.cpu.as_ref().map(crate::Cpu::cores),
            entrypoint_memory: spec.resources.memory.as_ref().map(crate::Memory::bytes),
        };
        match self.api.submit(&body).await {
            Ok(()) => Ok(RayExecutor::handle(id)),
            // Ray refuses a submission id it already has: this attempt was submitted before
            // (a restart between submit and record), so it is the one to follow.
            Err(refused @ ExecutorError::Api { .. }) => match self.api.job(&id).await {
                Ok(_) => Ok(RayExecutor::handle(id)),
                Err(_) => Err(refused),
            },
            Err(e) => Err(e),
        }
    }

    async fn poll(&self, handle: &Handle) -> Result<Option<Outcome>, ExecutorError> {
        let job = self.api.job(&handle.id).await?;
        let message = job.message.unwrap_or_default();
        Ok(match job.status.as_str() {
            "PENDING" | "RUNNING" => None,
            "SUCCEEDED" => Some(Outcome::Succeeded),
            "FAILED" => Some(Outcome::Failed {
                exit_code: job.driver_exit_code,
                reason: match job.driver_exit_code {
                    Some(code) => format!("exited with {code}: {message}"),
                    None => message,
                },
            }),
            "STOPPED" => Some(Outcome::Canceled { reason: message }),
            other => {
                return Err(ExecutorError::Decode {
                    engine: "ray",
                    action: format!("read job {}", handle.id),
                    detail: format!("unknown job status {other:?}"),
                });
            }
        })
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), ExecutorError> {
        self.api.stop(&handle.id).await
    }

    async fn logs(&self, handle: &Handle) -> Result<String, ExecutorError> {
        self.api.logs(&handle.id).await
    }

    async fn reattach(&self, id: &str) -> Result<Handle, ExecutorError> {
        self.api.job(id).await?;
        Ok(RayExecutor::handle(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::Resources;

    fn spec(command: &str) -> AttemptSpec {
        AttemptSpec {
            run_id: "r".into(),
            pipeline: "p".into(),
            step: "s".into(),
            item: None,
            attempt: 1,
            command: command.into(),
            env: BTreeMap::new(),
            image: None,
            resources: Resources::default(),
            timeout: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            repo: PathBuf::from("/repo"),
            code: Vec::new(),
            labels: BTreeMap::new(),
            workdir: None,
            launcher: None,
            grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_entrypoint_is_the_command_or_the_launcher_in_the_working_directory() {
        assert_eq!(entrypoint(&spec("python train.py")), "python train.py");
        let mut launched = spec("echo hi > \"$TWINLOOP_OUTPUT_X\"");
        launched.workdir = Some(PathBuf::from("/data/my repo"));
        launched.launcher = Some(PathBuf::from("/usr/bin/twinloop"));
        assert_eq!(
            entrypoint(&launched),
            "cd '/data/my repo' && exec '/usr/bin/twinloop' 'step-exec' '--grace-ms' '10000' '--' 'sh' '-c' 'echo hi > \"$TWINLOOP_OUTPUT_X\"'"
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s' {}", sh_quote("a'b \"c\" $X"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a'b \"c\" $X");
    }
}

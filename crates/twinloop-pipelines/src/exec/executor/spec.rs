//! What the engine hands an executor for one attempt of one step: a plain value, so every
//! executor (and `pipeline render`) sees the same thing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::quantity::{Cpu, Memory};
use crate::exec::env_name;

/// One attempt of one `run:` step, with every expression already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSpec {
    pub run_id: String,
    pub pipeline: String,
    pub step: String,
    /// A `foreach:` item's index: items of one step are different remote jobs.
    pub item: Option<usize>,
    /// 1-based; a retry is a new attempt, so a new Job or Ray job.
    pub attempt: u32,
    /// The shell command (`sh -c` runs it), expressions substituted.
    pub command: String,
    /// The step protocol's variables the engine computed (`TWINLOOP_PARAM_*`,
    /// `TWINLOOP_CONTEXT`, `TWINLOOP_MESSAGES`, `TWINLOOP_OUTPUTS`, `MLFLOW_*`) and `env.vars`.
    /// The identity (`TWINLOOP_RUN_ID`, `_STEP`, `_ATTEMPT`) and the input and output variables
    /// are added from the fields below.
    pub env: BTreeMap<String, String>,
    /// The step's image; `None` takes the executor's.
    pub image: Option<String>,
    pub resources: Resources,
    /// Enforced by the engine too; a Kubernetes Job also gets it as `activeDeadlineSeconds`.
    pub timeout: Option<Duration>,
    /// Input name → where the attempt reads it, as the remote side sees it (a path in the
    /// container, a shared volume, an object store URI): `TWINLOOP_INPUT_<NAME>`.
    pub inputs: BTreeMap<String, String>,
    /// Output name → where the attempt writes it: `TWINLOOP_OUTPUT_<NAME>`.
    pub outputs: BTreeMap<String, String>,
    /// The repository on this machine, and the code files (relative to it) the step's cache
    /// key covers: Ray ships exactly these as the job's `working_dir`.
    pub repo: PathBuf,
    pub code: Vec<String>,
    /// Extra labels (Kubernetes labels, Ray job metadata) beside run, step and attempt.
    pub labels: BTreeMap<String, String>,
    /// Where the command runs on the remote side; `None` leaves it to the executor. The engine
    /// sets the repository: remote attempts see it at the same path (shared-volume staging).
    pub workdir: Option<PathBuf>,
    /// The `twinloop` binary as the remote side sees it, to run the command under
    /// `twinloop step-exec` as local steps are; `None` where the executor brings its own (a
    /// Kubernetes Job copies it in) or runs the shell bare.
    pub launcher: Option<PathBuf>,
    /// Between SIGTERM and SIGKILL when the attempt is stopped.
    pub grace: Duration,
}

/// `resources:` of a step; both optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
}

impl Resources {
    /// Reads a step's `resources:` mapping (`{cpu: 1, memory: 2Gi}`); unknown keys are refused
    /// so that `gpu: 1` never silently means nothing.
    pub fn from_yaml(value: &serde_norway::Value) -> Result<Resources, String> {
        let map = value
            .as_mapping()
            .ok_or("`resources:` is a mapping: {cpu: 1, memory: 2Gi}")?;
        let mut resources = Resources::default();
        for (key, value) in map {
            let text = scalar_text(value)
                .ok_or_else(|| format!("resources {key:?}: a number or a quantity like 2Gi"))?;
            match key.as_str() {
                Some("cpu") => resources.cpu = Some(text.parse()?),
                Some("memory") => resources.memory = Some(text.parse()?),
                _ => {
                    return Err(format!(
                        "unknown resource {key:?}: cpu and memory are known"
                    ));
                }
            }
        }
        Ok(resources)
    }
}

fn scalar_text(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl AttemptSpec {
    /// Every variable the attempt runs with: the engine's, then identity, inputs and outputs
    /// (which win: they are what this attempt is).
    pub fn environment(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.insert("TWINLOOP_RUN_ID".into(), self.run_id.clone());
        env.insert("TWINLOOP_STEP".into(), self.step.clone());
        env.insert("TWINLOOP_ATTEMPT".into(), self.attempt.to_string());
        for (name, location) in &self.inputs {
            env.insert(
                format!("TWINLOOP_INPUT_{}", env_name(name)),
                location.clone(),
            );
        }
        for (name, location) in &self.outputs {
            env.insert(
                format!("TWINLOOP_OUTPUT_{}", env_name(name)),
                location.clone(),
            );
        }
        env
    }

    /// What remote names (a Job name, a submission id) call the attempt's step: the step, or
    /// `<step>-<index>` for a `foreach:` item.
    pub fn name(&self) -> String {
        match self.item {
            Some(index) => format!("{}-{index}", self.step),
            None => self.step.clone(),
        }
    }

    /// The launcher's argv for this attempt with `program` as the `twinloop` binary: the same
    /// `step-exec` arguments the local engine uses, less `--parent` (there is no engine process
    /// beside a remote attempt to watch; the remote engine's stop reaches the launcher).
    pub fn launched(&self, program: &str) -> Vec<String> {
        let exec = crate::exec::launch::StepExec {
            parent: None,
            grace: self.grace,
            command: vec!["sh".into(), "-c".into(), self.command.clone().into()],
        };
        std::iter::once(program.to_owned())
            .chain(std::iter::once(crate::exec::launch::SUBCOMMAND.to_owned()))
            .chain(
                exec.args()
                    .into_iter()
                    .map(|a| a.to_string_lossy().into_owned()),
            )
            .collect()
    }

    /// The labels every engine gets: the caller's, then pipeline, run, step and attempt.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("twinloop.dev/pipeline".into(), self.pipeline.clone());
        labels.insert("twinloop.dev/run".into(), self.run_id.clone());
        labels.insert("twinloop.dev/step".into(), self.step.clone());
        labels.insert("twinloop.dev/attempt".into(), self.attempt.to_string());
        if let Some(index) = self.item {
            labels.insert("twinloop.dev/item".into(), index.to_string());
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_norway::Value {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn resources_read_numbers_and_quantities() {
        let r = Resources::from_yaml(&yaml("{cpu: 0.5, memory: 2Gi}")).unwrap();
        assert_eq!(r.cpu.as_ref().unwrap().millis(), 500);
        assert_eq!(r.memory.as_ref().unwrap().bytes(), 2 << 30);
        let r = Resources::from_yaml(&yaml("{cpu: 250m}")).unwrap();
        assert_eq!(r.cpu.unwrap().as_str(), "250m");
        assert_eq!(r.memory, None);
    }

    #[test]
    fn resources_refuse_unknown_keys_and_bad_values() {
        let e = Resources::from_yaml(&yaml("{gpu: 1}")).unwrap_err();
        assert!(e.contains("unknown resource"), "{e}");
        let e = Resources::from_yaml(&yaml("{cpu: [1]}")).unwrap_err();
        assert!(e.contains("a number or a quantity"), "{e}");
        assert!(Resources::from_yaml(&yaml("{memory: lots}")).is_err());
        assert!(Resources::from_yaml(&yaml("2")).is_err());
    }

    #[test]
    fn environment_adds_identity_inputs_and_outputs() {
        let spec = AttemptSpec {
            run_id: "r1".into(),
            pipeline: "p".into(),
            step: "train".into(),
            item: None,
            attempt: 2,
            command: "true".into(),
            env: BTreeMap::from([
                ("TWINLOOP_STEP".into(), "spoofed".into()),
                ("LR".into(), "0.1".into()),
            ]),
            image: None,
            resources: Resources::default(),
            timeout: None,
            inputs: BTreeMap::from([("train-set".into(), "/in/train-set".into())]),
            outputs: BTreeMap::from([("model".into(), "/out/model".into())]),
            repo: PathBuf::from("."),
            code: Vec::new(),
            labels: BTreeMap::new(),
            workdir: None,
            launcher: None,
            grace: Duration::from_millis(1500),
        };
        let env = spec.environment();
        assert_eq!(env["TWINLOOP_STEP"], "train");
        assert_eq!(env["TWINLOOP_ATTEMPT"], "2");
        assert_eq!(env["TWINLOOP_INPUT_TRAIN_SET"], "/in/train-set");
        assert_eq!(env["TWINLOOP_OUTPUT_MODEL"], "/out/model");
        assert_eq!(env["LR"], "0.1");
        assert_eq!(spec.labels()["twinloop.dev/attempt"], "2");
        assert_eq!(
            spec.launched("/bin/twinloop"),
            [
                "/bin/twinloop",
                "step-exec",
                "--grace-ms",
                "1500",
                "--",
                "sh",
                "-c",
                "true"
            ]
        );
    }
}

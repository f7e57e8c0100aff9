//! The pipeline YAML format (section 3 of the design), the part this phase runs: `run:` steps
//! and `uses:` built-ins, with inputs, outputs, code, env, retries, timeouts, cache policy,
//! `when`, `finally`, `foreach:` fan-out, and the `triggers:` and `policy:` the server's
//! scheduler acts on (`triggers.rs`), `executor:` (a step run by one of `twinloop.yaml`'s
//! executors, checked against them by [`check_executors`]) and the `resources:` it asks of one.
//! What comes later (`env.secrets`, …) is refused with "not supported yet" rather than ignored, so
//! a file never means less than it says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::error::{Error, Invalid, Problem};
use crate::expr::{Ref, Template};
use crate::locate::locate;

mod raw;
mod triggers;

pub use triggers::{
    DataTrigger, MonitorTrigger, OnConflict, OnRestart, PipelineTrigger, Policy, RegistryTrigger,
    Schedule, Trigger, When,
};

/// The executor that needs no configuration: the engine's own process.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The file as errors name it.
    pub file: String,
    pub params: BTreeMap<String, Value>,
    pub fail_fast: bool,
    /// `steps:` in file order, then `finally:` (each with [`Step::finally`] set).
    pub steps: Vec<Step>,
    /// What starts the pipeline inside `twinloop server`; a standalone run ignores them.
    pub triggers: Vec<Trigger>,
    pub policy: Policy,
    /// `defaults.executor`, when it names one other than `local`.
    pub default_executor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// The command; for a built-in, `uses:<name>@<version>` (what the cache key names).
    pub run: Template,
    /// Set for a `uses:` step, which runs in process instead of `run:`.
    pub uses: Option<Uses>,
    /// Explicit `needs:`; references add implicit ones (see [`Step::upstream`]).
    pub needs: Vec<String>,
    pub when: Option<Template>,
    /// Set for a step that runs once per element of a list.
    pub foreach: Option<Foreach>,
    pub inputs: BTreeMap<String, Input>,
    pub outputs: BTreeMap<String, OutputKind>,
    /// Globs of code files, the step's then `defaults.code`.
    pub code: Vec<String>,
    /// Lock files of the environment (step's `env.lock`, else `defaults.env.lock`).
    pub env_lock: Vec<String>,
    pub env_vars: BTreeMap<String, Template>,
    pub retries: Retries,
    pub timeout: Option<Duration>,
    pub cache: Cache,
    pub continue_on_error: bool,
    pub finally: bool,
    /// The named executor (`twinloop.yaml`'s `executors:`) that runs the step's attempts;
    /// `None` runs them locally. The step's own `executor:`, else `defaults.executor`; never
    /// set for a built-in. Not part of the cache key: where a step ran does not change it.
    pub executor: Option<String>,
    /// `resources:` (`{cpu, memory}`), what the step asks of a remote executor (a Job's requests
    /// and limits, a Ray job's CPUs). The local executor does not limit a step: `max_parallel`
    /// slots bound how many run at once. Not part of the cache key.
    pub resources: crate::exec::executor::Resources,
}

/// `foreach: ${{ … }}` and its `max_parallel:`: the step runs once per element of the list, each
/// an execution of its own (its own attempts, cache key and logs) reading the element as `item`.
#[derive(Debug, Clone, PartialEq)]
pub struct Foreach {
    /// One expression whose value is the list: a param, or an upstream `value` output, so the
    /// fan-out may be decided by an earlier step.
    pub list: Template,
    /// Items executing at once; `None` leaves it to the run's slots.
    pub max_parallel: Option<usize>,
}

/// A built-in and its `with:` as written. Strings that are exactly one upstream output reference
/// are also in [`Step::inputs`], named by their key path; `refs` are the other references.
#[derive(Debug, Clone, PartialEq)]
pub struct Uses {
    pub builtin: crate::builtins::Builtin,
    pub with: Value,
    pub refs: Vec<Ref>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `${{ steps.<step>.outputs.<output> }}`.
    Output { step: String, output: String },
    /// A file or directory, relative to the repo; digested by content.
    Path(String),
    /// A path of the repo known only when the run starts: `${{ trigger.payload.snapshot }}`
    /// (the data a trigger fired on), `${{ params.data }}`, `${{ item }}`; digested like a path.
    Expr(Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    File,
    Dir,
    /// A JSON object of numbers, sent through `TWINLOOP_MESSAGES`.
    Metrics,
    /// Any JSON up to 64 KiB, sent through `TWINLOOP_MESSAGES`; usable in expressions.
    Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    pub max: u32,
    pub backoff: Duration,
    pub factor: f64,
    pub max_backoff: Option<Duration>,
}

impl Default for Retries {
    fn default() -> Retries {
        Retries {
            max: 0,
            backoff: Duration::from_secs(10),
            factor: 2.0,
            max_backoff: None,
        }
    }
}

impl Retries {
    /// The wait before attempt `attempt + 1`, after `attempt` (1-based) failed.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let delay = self.backoff.mul_f64(self.factor.powi(exponent));
        self.max_backoff.map_or(delay, |cap| delay.min(cap))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub mode: CacheMode,
    pub max_age: Option<Duration>,
    /// `cache.version`: a salt the user bumps to invalidate.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// On for steps with at least one input; off for source steps, which may read the world.
    Auto,
    On,
    Off,
}

impl Cache {
    /// `cache: auto`, the default.
    pub fn auto() -> Cache {
        Cache {
            mode: CacheMode::Auto,
            max_age: None,
            version: None,
        }
    }
}

impl Step {
    /// Whether this step's results may be reused at all (before `--no-cache` and `--refresh`).
    pub fn cacheable(&self) -> bool {
        if self.uses.as_ref().is_some_and(|u| !u.builtin.cacheable()) {
            return false;
        }
        match self.cache.mode {
            CacheMode::On => true,
            CacheMode::Off => false,
            CacheMode::Auto => !self.inputs.is_empty(),
        }
    }

    /// Every expression reference of the step: command, `when`, env vars, `with:`, inputs.
    pub fn refs(&self) -> Vec<Ref> {
        let mut refs = self.run.refs();
        if let Some(when) = &self.when {
            refs.extend(when.refs());
        }
        for var in self.env_vars.values() {
            refs.extend(var.refs());
        }
        if let Some(uses) = &self.uses {
            refs.extend(uses.refs.iter().cloned());
        }
        for input in self.inputs.values() {
            if let Input::Expr(template) = input {
                refs.extend(template.refs());
            }
        }
        refs
    }

    /// The params the step reads: the only ones it is given, so the cache key covers them all.
    pub fn params_used(&self) -> BTreeSet<String> {
        self.refs()
            .into_iter()
            .filter_map(|r| match r {
                Ref::Param(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// What the `foreach:` list reads. Not among [`Step::refs`]: each item's cache key covers its
    /// own element, not the whole list, so that changing one element re-runs only its item.
    pub fn foreach_refs(&self) -> Vec<Ref> {
        self.foreach
            .as_ref()
            .map_or_else(Vec::new, |f| f.list.refs())
    }

    /// Steps this one waits for: `needs:`, input references and expression references.
    pub fn upstream(&self) -> BTreeSet<String> {
        let mut up: BTreeSet<String> = self.needs.iter().cloned().collect();
        for input in self.inputs.values() {
            if let Input::Output { step, .. } = input {
                up.insert(step.clone());
            }
        }
        for r in self.refs().into_iter().chain(self.foreach_refs()) {
            if let Ref::Output { step, .. } | Ref::Status(step) = r {
                up.insert(step);
            }
        }
        up
    }
}

impl Pipeline {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Reads, parses and validates a pipeline file.
pub fn load(path: &Path) -> Result<Pipeline, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse(&path.display().to_string(), &text)?)
}

/// Parses and validates pipeline text; `file` is how errors name it.
pub fn parse(file: &str, text: &str) -> Result<Pipeline, Invalid> {
    let mut problems = Problems {
        file,
        text,
        list: Vec::new(),
    };
    crate::validate::duplicate_ids(&mut problems);
    if !problems.list.is_empty() {
        return Err(Invalid(problems.list));
    }
    let raw: raw::RawPipeline = match serde_norway::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            problems.list.push(Problem {
                file: file.to_owned(),
                line,
                field: "pipeline".into(),
                message: e.to_string(),
            });
            return Err(Invalid(problems.list));
        }
    };
    let pipeline = raw::convert(raw, &mut problems);
    if problems.list.is_empty() {
        crate::validate::check(&pipeline, &mut problems);
    }
    if problems.list.is_empty() {
        Ok(pipeline)
    } else {
        Err(Invalid(problems.list))
    }
}

/// Checks that every executor `pipeline` (read from `text`) names is one of `known` (the
/// repository's `twinloop.yaml` `executors:`), each unknown name a located problem.
pub fn check_executors(
    pipeline: &Pipeline,
    text: &str,
    known: &BTreeSet<String>,
) -> Result<(), Invalid> {
    let mut problems = Problems {
        file: &pipeline.file,
        text,
        list: Vec::new(),
    };
    let declared = || {
        if known.is_empty() {
            "twinloop.yaml declares no executors".to_owned()
        } else {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            format!("twinloop.yaml declares: {}", names.join(", "))
        }
    };
    let default = pipeline.default_executor.as_ref();
    if let Some(name) = default.filter(|n| !known.contains(*n)) {
        let line = locate(text, "defaults", Some("executor"), None);
        problems.push(
            line,
            "defaults.executor".into(),
            format!(
                "unknown executor {name:?} ({}; `local` runs in this process)",
                declared()
            ),
        );
    }
    for step in &pipeline.steps {
        let Some(name) = step.executor.as_ref() else {
            continue;
        };
        // A step that only inherits an unknown default was reported once, at the default.
        if known.contains(name) || (default == Some(name) && !names_executor(text, step)) {
            continue;
        }
        let section = if step.finally { "finally" } else { "steps" };
        problems.step(
            section,
            &step.id,
            Some("executor"),
            format!(
                "unknown executor {name:?} ({}; `local` runs in this process)",
                declared()
            ),
        );
    }
    if problems.list.is_empty() {
        Ok(())
    } else {
        Err(Invalid(problems.list))
    }
}

/// Whether the step's own mapping has an `executor:` key (rather than inheriting the default).
fn names_executor(text: &str, step: &Step) -> bool {
    let section = if step.finally { "finally" } else { "steps" };
    let step_line = locate(text, section, Some(&step.id), None);
    locate(text, section, Some(&step.id), Some("executor")) != step_line
}

/// Problems found so far, with what locating them needs.
pub(crate) struct Problems<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub list: Vec<Problem>,
}

impl Problems<'_> {
    /// A problem in `field` of the step (`section` is `steps` or `finally`).
    pub fn step(&mut self, section: &str, id: &str, field: Option<&str>, message: String) {
        let line = locate(self.text, section, Some(id), field);
        let field = match field {
            Some(f) => format!("{section}[{id}].{f}"),
            None => format!("{section}[{id}]"),
        };
        self.push(line, field, message);
    }

    /// A problem in a top-level key.
    pub fn top(&mut self, key: &str, message: String) {
        let line = locate(self.text, key, None, None);
        self.push(line, key.to_owned(), message);
    }

    pub fn push(&mut self, line: usize, field: String, message: String) {
        self.list.push(Problem {
            file: self.file.to_owned(),
            line,
            field,
            message,
        });
    }
}

impl Pipeline {
    /// The params with `-p name=value` overrides applied. A value reads as YAML (`0.2` is a
    /// number, `true` a bool), so an override compares like the default it replaces.
    pub fn resolve_params(
        &self,
        overrides: &[(String, String)],
    ) -> Result<BTreeMap<String, Value>, Error> {
        let mut params = self.params.clone();
        for (name, text) in overrides {
            let Some(slot) = params.get_mut(name) else {
                let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                return Err(Error::Param(format!(
                    "unknown param {name:?}; the pipeline declares: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let yaml: Yaml = serde_norway::from_str(text).unwrap_or(Yaml::String(text.clone()));
            *slot = serde_json::to_value(&yaml).unwrap_or(Value::String(text.clone()));
        }
        Ok(params)
    }
}

/// Splits `name=value` as `-p` takes it.
pub fn parse_param_override(text: &str) -> Result<(String, String), Error> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .ok_or_else(|| Error::Param(format!("-p takes name=value, not {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_factor_up_to_its_cap() {
        let retries = Retries {
            max: 5,
            backoff: Duration::from_millis(200),
            factor: 2.0,
            max_backoff: Some(Duration::from_millis(500)),
        };
        let delays: Vec<u128> = (1..=4)
            .map(|a| retries.delay_after(a).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 500, 500]);
    }

    #[test]
    fn a_gates_plain_candidate_path_is_a_repo_input_like_its_data() {
        let pipeline = parse(
            "p.yaml",
            "pipeline: p\nsteps:\n  gate:\n    uses: model.evaluate@1\n    with:\n      candidate: models/c.onnx\n      baseline: models:/m@champion\n      data: holdout.parquet\n      label: y\n      metrics: {roc_auc: {threshold: 0.5}}\n",
        )
        .unwrap();
        let gate = pipeline.step("gate").unwrap();
        assert_eq!(
            gate.inputs["candidate"],
            Input::Path("models/c.onnx".into()),
            "resolved against the repo, not the process's working directory"
        );
        assert_eq!(gate.inputs["data"], Input::Path("holdout.parquet".into()));
    }

    #[test]
    fn defaults_apply_unless_the_step_says_otherwise() {
        let pipeline = parse(
            "p.yaml",
            "pipeline: p\nparams: {lr: 0.1}\ndefaults:\n  timeout: 1h\n  retries: 2\n  code: [src/*.py]\n  env: {lock: req.txt}\nsteps:\n  a:\n    run: echo ${{ params.lr }}\n    code: a.py\n    timeout: 90s\n    env: {lock: [a.lock], vars: {X: '${{ params.lr }}'}}\n    cache: {max_age: 7d, version: '2'}\n  b:\n    run: 'true'\n    inputs: {data: data.csv}\n",
        )
        .unwrap();
        let a = pipeline.step("a").unwrap();
        assert_eq!(a.timeout, Some(Duration::from_secs(90)));
        assert_eq!(a.retries.max, 2);
        assert_eq!(a.code, ["a.py", "src/*.py"]);
        assert_eq!(a.env_lock, ["a.lock"]);
        assert_eq!(a.cache.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert!(
            a.cacheable(),
            "cache: {{max_age}} turns the cache on for a source step"
        );
        assert_eq!(a.params_used(), BTreeSet::from(["lr".to_owned()]));
        let b = pipeline.step("b").unwrap();
        assert_eq!(
            (b.timeout, b.env_lock.clone()),
            (Some(Duration::from_secs(3600)), vec!["req.txt".to_owned()])
        );
        assert!(b.cacheable(), "auto caches a step with inputs");
        assert_eq!(b.inputs["data"], Input::Path("data.csv".into()));
        let params = pipeline
            .resolve_params(&[("lr".into(), "0.2".into())])
            .unwrap();
        assert_eq!(params["lr"], serde_json::json!(0.2));
        assert!(matches!(
            pipeline.resolve_params(&[("x".into(), "1".into())]),
            Err(Error::Param(_))
        ));
        assert!(parse_param_override("novalue").is_err());
    }

    #[test]
    fn an_input_may_be_chosen_when_the_run_starts_but_reads_an_output_only_whole() {
        let pipeline = parse(
            "p.yaml",
            "pipeline: p\nparams: {day: '2026-01-01'}\nsteps:\n  a:\n    run: 'true'\n    inputs:\n      batch: ${{ trigger.payload.snapshot }}\n      day: data/${{ params.day }}.csv\n",
        )
        .unwrap();
        let a = pipeline.step("a").unwrap();
        assert!(
            matches!(&a.inputs["batch"], Input::Expr(t) if t.source == "${{ trigger.payload.snapshot }}")
        );
        assert!(matches!(&a.inputs["day"], Input::Expr(_)));
        assert_eq!(
            a.params_used(),
            BTreeSet::from(["day".to_owned()]),
            "a param an input reads is in the step's key"
        );
        let unknown = parse(
            "p.yaml",
            "pipeline: p\nsteps:\n  a:\n    run: 'true'\n    inputs: {d: 'data/${{ params.nope }}.csv'}\n",
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("nope"), "{unknown}");
        let partial = parse(
            "p.yaml",
            "pipeline: p\nsteps:\n  a:\n    run: 'true'\n    outputs: {o: {kind: dir}}\n  b:\n    run: 'true'\n    inputs: {d: '${{ steps.a.outputs.o }}/x.csv'}\n",
        )
        .unwrap_err();
        assert!(
            partial.to_string().contains("only as the whole"),
            "{partial}"
        );
    }
}

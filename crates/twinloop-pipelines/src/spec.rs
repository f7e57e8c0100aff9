//! The pipeline YAML format (section 3 of the design), the part this phase runs: `run:` steps
//! with inputs, outputs, code, env, retries, timeouts, cache policy, `when`, `finally`.
//! What comes later (`uses:`, `foreach:`, `triggers:`, other executors, …) is refused with
//! "not supported yet" rather than ignored, so a file never means less than it says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::duration::parse_duration;
use crate::error::{Error, Invalid, Problem};
use crate::expr::{Ref, Template};
use crate::locate::locate;

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
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub run: Template,
    /// Explicit `needs:`; references add implicit ones (see [`Step::upstream`]).
    pub needs: Vec<String>,
    pub when: Option<Template>,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `${{ steps.<step>.outputs.<output> }}`.
    Output { step: String, output: String },
    /// A file or directory, relative to the repo; digested by content.
    Path(String),
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

impl Step {
    /// Whether this step's results may be reused at all (before `--no-cache` and `--refresh`).
    pub fn cacheable(&self) -> bool {
        match self.cache.mode {
            CacheMode::On => true,
            CacheMode::Off => false,
            CacheMode::Auto => !self.inputs.is_empty(),
        }
    }

    /// Every expression reference of the step: command, `when`, env vars.
    pub fn refs(&self) -> Vec<Ref> {
        let mut refs = self.run.refs();
        if let Some(when) = &self.when {
            refs.extend(when.refs());
        }
        for var in self.env_vars.values() {
            refs.extend(var.refs());
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

    /// Steps this one waits for: `needs:`, input references and expression references.
    pub fn upstream(&self) -> BTreeSet<String> {
        let mut up: BTreeSet<String> = self.needs.iter().cloned().collect();
        for input in self.inputs.values() {
            if let Input::Output { step, .. } = input {
                up.insert(step.clone());
            }
        }
        for r in self.refs() {
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
    let raw: RawPipeline = match serde_norway::from_str(text) {
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
    let pipeline = convert(raw, &mut problems);
    if problems.list.is_empty() {
        crate::validate::check(&pipeline, &mut problems);
    }
    if problems.list.is_empty() {
        Ok(pipeline)
    } else {
        Err(Invalid(problems.list))
    }
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

fn not_supported(what: &str) -> String {
    format!("{what} is not supported yet")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    pipeline: String,
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Yaml>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    policy: RawPolicy,
    triggers: Option<Yaml>,
    steps: serde_norway::Mapping,
    #[serde(default)]
    finally: serde_norway::Mapping,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout: Option<RawDuration>,
    retries: Option<RawRetries>,
    code: Option<OneOrMany>,
    env: Option<RawEnv>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    fail_fast: Option<bool>,
    concurrency: Option<Yaml>,
    cooldown: Option<Yaml>,
    max_runs_per_day: Option<Yaml>,
    on_restart: Option<Yaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    run: Option<String>,
    uses: Option<Yaml>,
    with: Option<Yaml>,
    foreach: Option<Yaml>,
    max_parallel: Option<Yaml>,
    resources: Option<Yaml>,
    executor: Option<String>,
    #[serde(default)]
    needs: Vec<String>,
    when: Option<Yaml>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    outputs: BTreeMap<String, RawOutput>,
    code: Option<OneOrMany>,
    env: Option<RawEnv>,
    retries: Option<RawRetries>,
    timeout: Option<RawDuration>,
    cache: Option<RawCache>,
    #[serde(default)]
    continue_on_error: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    lock: Option<OneOrMany>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    secrets: Option<Yaml>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A duration as written; a bare number is accepted here so that the error can say it needs a
/// unit rather than that it is not a string.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawDuration {
    Text(String),
    Number(f64),
}

impl RawDuration {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            RawDuration::Text(t) => parse_duration(t),
            RawDuration::Number(n) => parse_duration(&n.to_string()),
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawRetries {
    Count(u32),
    Full {
        max: u32,
        backoff: Option<RawDuration>,
        factor: Option<f64>,
        max_backoff: Option<RawDuration>,
        on_exit_codes: Option<Yaml>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCache {
    Switch(bool),
    Word(String),
    Policy {
        max_age: Option<RawDuration>,
        version: Option<String>,
    },
}

fn convert(raw: RawPipeline, problems: &mut Problems<'_>) -> Pipeline {
    if raw.triggers.is_some() {
        problems.top("triggers", not_supported("`triggers:`"));
    }
    let policy = &raw.policy;
    for (key, set) in [
        ("concurrency", policy.concurrency.is_some()),
        ("cooldown", policy.cooldown.is_some()),
        ("max_runs_per_day", policy.max_runs_per_day.is_some()),
        ("on_restart", policy.on_restart.is_some()),
    ] {
        if set {
            problems.top("policy", not_supported(&format!("`policy.{key}`")));
        }
    }
    let mut params = BTreeMap::new();
    for (name, value) in raw.params {
        match serde_json::to_value(&value) {
            Ok(v) => {
                params.insert(name, v);
            }
            Err(e) => problems.top("params", format!("param {name}: {e}")),
        }
    }
    let defaults = Defaults::convert(raw.defaults, problems);
    let mut steps = Vec::new();
    for (section, mapping) in [("steps", raw.steps), ("finally", raw.finally)] {
        for (key, value) in mapping {
            let Some(id) = key.as_str().map(str::to_owned) else {
                problems.top(section, format!("step ids are strings, not {key:?}"));
                continue;
            };
            match serde_norway::from_value::<RawStep>(value) {
                Ok(raw_step) => {
                    if let Some(step) = convert_step(section, id, raw_step, &defaults, problems) {
                        steps.push(step);
                    }
                }
                Err(e) => problems.step(section, &id, None, e.to_string()),
            }
        }
    }
    Pipeline {
        name: raw.pipeline,
        description: raw.description,
        file: problems.file.to_owned(),
        params,
        fail_fast: raw.policy.fail_fast.unwrap_or(true),
        steps,
    }
}

struct Defaults {
    timeout: Option<Duration>,
    retries: Retries,
    code: Vec<String>,
    env_lock: Vec<String>,
}

impl Defaults {
    fn convert(raw: RawDefaults, problems: &mut Problems<'_>) -> Defaults {
        let mut report = |message: String| problems.top("defaults", message);
        let timeout = raw
            .timeout
            .and_then(|t| t.parse().map_err(&mut report).ok());
        let retries = raw
            .retries
            .map(|r| convert_retries(r).map_err(&mut report).unwrap_or_default())
            .unwrap_or_default();
        let mut env_lock = Vec::new();
        if let Some(env) = raw.env {
            if !env.vars.is_empty() || env.secrets.is_some() {
                report("defaults.env holds only `lock:`; declare vars on each step".into());
            }
            env_lock = env.lock.map(OneOrMany::into_vec).unwrap_or_default();
        }
        Defaults {
            timeout,
            retries,
            code: raw.code.map(OneOrMany::into_vec).unwrap_or_default(),
            env_lock,
        }
    }
}

fn convert_retries(raw: RawRetries) -> Result<Retries, String> {
    let defaults = Retries::default();
    match raw {
        RawRetries::Count(max) => Ok(Retries { max, ..defaults }),
        RawRetries::Full {
            max,
            backoff,
            factor,
            max_backoff,
            on_exit_codes,
        } => {
            if on_exit_codes.is_some() {
                return Err(not_supported("`retries.on_exit_codes`"));
            }
            let factor = factor.unwrap_or(defaults.factor);
            if !(factor >= 1.0 && factor.is_finite()) {
                return Err(format!("retries.factor must be at least 1, not {factor}"));
            }
            Ok(Retries {
                max,
                backoff: backoff.map_or(Ok(defaults.backoff), |b| b.parse())?,
                factor,
                max_backoff: max_backoff.map(|b| b.parse()).transpose()?,
            })
        }
    }
}

fn convert_step(
    section: &str,
    id: String,
    raw: RawStep,
    defaults: &Defaults,
    problems: &mut Problems<'_>,
) -> Option<Step> {
    let before = problems.list.len();
    let mut report =
        |field: &str, message: String| problems.step(section, &id, Some(field), message);
    for (field, set) in [
        ("uses", raw.uses.is_some() || raw.with.is_some()),
        (
            "foreach",
            raw.foreach.is_some() || raw.max_parallel.is_some(),
        ),
        ("resources", raw.resources.is_some()),
    ] {
        if set {
            report(field, not_supported(&format!("`{field}:`")));
        }
    }
    if let Some(executor) = raw.executor.as_deref().filter(|e| *e != "local") {
        report(
            "executor",
            format!("executor {executor:?} is not supported yet: only `local` runs steps"),
        );
    }
    let run = match raw.run.as_deref().map(Template::parse) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            report("run", e);
            None
        }
        None => {
            if raw.uses.is_none() {
                report("run", "a step needs `run:` (a command)".into());
            }
            None
        }
    };
    let when = raw.when.and_then(|w| {
        let text = match w {
            Yaml::String(s) => s,
            Yaml::Bool(b) => format!("${{{{ {b} }}}}"),
            other => {
                report("when", format!("`when:` is an expression, not {other:?}"));
                return None;
            }
        };
        let text = if text.contains("${{") {
            text
        } else {
            format!("${{{{ {text} }}}}")
        };
        Template::parse(&text).map_err(|e| report("when", e)).ok()
    });
    let mut inputs = BTreeMap::new();
    for (name, text) in raw.inputs {
        match parse_input(&text) {
            Ok(input) => {
                inputs.insert(name, input);
            }
            Err(e) => report("inputs", format!("input {name}: {e}")),
        }
    }
    let mut outputs = BTreeMap::new();
    for (name, output) in raw.outputs {
        match output.kind.as_str() {
            "file" => outputs.insert(name, OutputKind::File),
            "dir" => outputs.insert(name, OutputKind::Dir),
            "metrics" => outputs.insert(name, OutputKind::Metrics),
            "value" => outputs.insert(name, OutputKind::Value),
            "dataset" | "model" => {
                report(
                    "outputs",
                    format!("output {name}: kind {:?} is not supported yet", output.kind),
                );
                None
            }
            other => {
                report(
                    "outputs",
                    format!(
                        "output {name}: unknown kind {other:?}: use file, dir, metrics or value"
                    ),
                );
                None
            }
        };
    }
    let mut code = raw.code.map(OneOrMany::into_vec).unwrap_or_default();
    code.extend(defaults.code.iter().cloned());
    let mut env_lock = defaults.env_lock.clone();
    let mut env_vars = BTreeMap::new();
    if let Some(env) = raw.env {
        if env.secrets.is_some() {
            report("env", not_supported("`env.secrets`"));
        }
        if let Some(lock) = env.lock {
            env_lock = lock.into_vec();
        }
        for (name, value) in env.vars {
            match Template::parse(&value) {
                Ok(t) => {
                    env_vars.insert(name, t);
                }
                Err(e) => report("env", format!("var {name}: {e}")),
            }
        }
    }
    let retries = match raw.retries {
        Some(r) => convert_retries(r)
            .map_err(|e| report("retries", e))
            .unwrap_or_default(),
        None => defaults.retries.clone(),
    };
    let timeout = match raw.timeout {
        Some(t) => t.parse().map_err(|e| report("timeout", e)).ok(),
        None => defaults.timeout,
    };
    let cache = match raw.cache {
        None => Ok(Cache {
            mode: CacheMode::Auto,
            max_age: None,
            version: None,
        }),
        Some(RawCache::Switch(on)) => Ok(Cache {
            mode: if on { CacheMode::On } else { CacheMode::Off },
            max_age: None,
            version: None,
        }),
        Some(RawCache::Word(w)) if w == "auto" => Ok(Cache {
            mode: CacheMode::Auto,
            max_age: None,
            version: None,
        }),
        Some(RawCache::Word(w)) => Err(format!(
            "cache is auto, false, true or {{max_age, version}}, not {w:?}"
        )),
        Some(RawCache::Policy { max_age, version }) => {
            max_age.map(|a| a.parse()).transpose().map(|max_age| Cache {
                mode: CacheMode::On,
                max_age,
                version,
            })
        }
    };
    let cache = cache.map_err(|e| report("cache", e)).ok();
    if problems.list.len() > before {
        return None;
    }
    Some(Step {
        id,
        run: run?,
        needs: raw.needs,
        when,
        inputs,
        outputs,
        code,
        env_lock,
        env_vars,
        retries,
        timeout,
        cache: cache?,
        continue_on_error: raw.continue_on_error,
        finally: section == "finally",
    })
}

fn parse_input(text: &str) -> Result<Input, String> {
    let text = text.trim();
    if text.contains("${{") {
        let template = Template::parse(text)?;
        return match (template.as_expr(), template.refs().as_slice()) {
            (Some(_), [Ref::Output { step, output }]) => Ok(Input::Output {
                step: step.clone(),
                output: output.clone(),
            }),
            _ => Err("an input is `${{ steps.<id>.outputs.<name> }}` or a path".into()),
        };
    }
    for prefix in ["models:/", "features:", "s3://"] {
        if text.starts_with(prefix) {
            return Err(not_supported(&format!("a {prefix} input")));
        }
    }
    if text.contains(['*', '?', '[']) {
        return Err(not_supported("a glob input"));
    }
    if text.is_empty() {
        return Err("empty path".into());
    }
    Ok(Input::Path(text.to_owned()))
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
}

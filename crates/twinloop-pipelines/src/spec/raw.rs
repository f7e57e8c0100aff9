//! The pipeline file as serde reads it, and its conversion to [`Pipeline`]: defaults applied,
//! durations and expressions parsed, and what this phase does not run refused.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_norway::Value as Yaml;

use serde_json::Value;

use super::{
    Cache, CacheMode, Foreach, Input, LOCAL, OutputKind, Pipeline, Problems, Retries, Step, Uses,
};
use crate::builtins::{Builtin, with};
use crate::duration::parse_duration;
use crate::exec::executor::Resources;
use crate::expr::{Ref, Template};

fn not_supported(what: &str) -> String {
    format!("{what} is not supported yet")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
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
    executor: Option<String>,
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
    allow_self_trigger: Option<Yaml>,
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

pub(super) fn convert(raw: RawPipeline, problems: &mut Problems<'_>) -> Pipeline {
    let triggers = super::triggers::convert_triggers(raw.triggers.as_ref(), problems);
    let keys = super::triggers::RawPolicyKeys {
        concurrency: raw.policy.concurrency.as_ref(),
        cooldown: raw.policy.cooldown.as_ref(),
        max_runs_per_day: raw.policy.max_runs_per_day.as_ref(),
        on_restart: raw.policy.on_restart.as_ref(),
        allow_self_trigger: raw.policy.allow_self_trigger.as_ref(),
    };
    let policy = super::triggers::convert_policy(&keys, problems);
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
    let default_executor = defaults.executor.clone();
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
        triggers,
        policy,
        default_executor,
    }
}

struct Defaults {
    executor: Option<String>,
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
            executor: raw.executor.filter(|e| e != LOCAL),
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
    let resources = match &raw.resources {
        Some(_) if raw.uses.is_some() => {
            report(
                "resources",
                "a built-in runs inside the twinloop process; `resources:` belongs to `run:` steps"
                    .into(),
            );
            Resources::default()
        }
        Some(yaml) => Resources::from_yaml(yaml).unwrap_or_else(|e| {
            report("resources", e);
            Resources::default()
        }),
        None => Resources::default(),
    };
    let foreach = match (raw.foreach, raw.max_parallel) {
        (None, None) => None,
        (None, Some(_)) => {
            report(
                "max_parallel",
                "`max_parallel:` bounds the items of a `foreach:` step; this step has no `foreach:`"
                    .into(),
            );
            None
        }
        (Some(list), max_parallel) => parse_foreach(list, max_parallel)
            .map_err(|(field, e)| report(field, e))
            .ok(),
    };
    // `local` is the engine's own launcher; any other name is one of `twinloop.yaml`'s
    // executors, checked against the repository's configuration (`spec::check_executors`).
    let own = raw.executor;
    if own.as_deref().is_some_and(|name| name != LOCAL) && raw.uses.is_some() {
        report(
            "executor",
            "a built-in runs inside the twinloop process; `executor:` belongs to `run:` steps"
                .into(),
        );
    }
    let mut inputs = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    let (run, uses) = match (raw.run.as_deref(), raw.uses) {
        (Some(_), Some(_)) => {
            report("uses", "a step has `run:` or `uses:`, not both".into());
            (None, None)
        }
        (Some(command), None) => {
            if raw.with.is_some() {
                report("with", "`with:` belongs to `uses:` steps".into());
            }
            (
                Template::parse(command).map_err(|e| report("run", e)).ok(),
                None,
            )
        }
        (None, Some(uses)) => {
            if !raw.outputs.is_empty() || !raw.inputs.is_empty() {
                report(
                    "uses",
                    "a built-in declares its own inputs and outputs: give them in `with:`".into(),
                );
            }
            match convert_uses(uses, raw.with, &mut inputs) {
                Ok(uses) => {
                    for (name, kind) in uses.builtin.outputs() {
                        outputs.insert((*name).to_owned(), *kind);
                    }
                    let run = Template::parse(&format!("uses:{}", uses.builtin)).ok();
                    (run, Some(uses))
                }
                Err((field, e)) => {
                    report(field, e);
                    (None, None)
                }
            }
        }
        (None, None) => {
            report(
                "run",
                "a step needs `run:` (a command) or `uses:` (a built-in)".into(),
            );
            (None, None)
        }
    };
    let when = raw
        .when
        .and_then(|w| parse_when(w).map_err(|e| report("when", e)).ok());
    for (name, text) in raw.inputs {
        match parse_input(&text) {
            Ok(input) => {
                inputs.insert(name, input);
            }
            Err(e) => report("inputs", format!("input {name}: {e}")),
        }
    }
    for (name, output) in raw.outputs {
        match parse_output_kind(&output.kind) {
            Ok(kind) => {
                outputs.insert(name, kind);
            }
            Err(e) => report("outputs", format!("output {name}: {e}")),
        }
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
    let cache = raw
        .cache
        .map_or(Ok(Cache::auto()), parse_cache)
        .map_err(|e| report("cache", e))
        .ok();
    if problems.list.len() > before {
        return None;
    }
    // A built-in runs in process whatever `defaults.executor` says.
    let executor = match (&uses, own) {
        (Some(_), _) => None,
        (None, Some(name)) => (name != LOCAL).then_some(name),
        (None, None) => defaults.executor.clone(),
    };
    Some(Step {
        id,
        run: run?,
        uses,
        needs: raw.needs,
        when,
        foreach,
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
        executor,
        resources,
    })
}

/// A `uses:` with its `with:`: the built-in named, its arguments checked, and the references
/// that are inputs (exact upstream outputs, path arguments) added to `inputs`.
fn convert_uses(
    uses: Yaml,
    with: Option<Yaml>,
    inputs: &mut BTreeMap<String, Input>,
) -> Result<Uses, (&'static str, String)> {
    let Yaml::String(name) = uses else {
        return Err((
            "uses",
            format!("`uses:` names a built-in such as model.evaluate@1, not {uses:?}"),
        ));
    };
    let builtin = Builtin::parse(&name).map_err(|e| ("uses", e))?;
    let with = match with {
        None => Value::Object(serde_json::Map::new()),
        Some(yaml) => serde_json::to_value(&yaml).map_err(|e| ("with", e.to_string()))?,
    };
    if !with.is_object() {
        return Err(("with", "`with:` is a mapping of arguments".into()));
    }
    let problems = crate::builtins::check(builtin, &with);
    if !problems.is_empty() {
        return Err(("with", problems.join("; ")));
    }
    let mut refs = Vec::new();
    for (path, template) in with::templates(&with).map_err(|e| ("with", e))? {
        if let Some((step, output)) = with::exact_output(&template) {
            inputs.insert(with::input_name(&path), Input::Output { step, output });
        } else if template.refs().is_empty()
            && builtin.path_args().contains(&path.as_str())
            && !with::is_uri(&template.source)
        {
            let input =
                parse_input(&template.source).map_err(|e| ("with", format!("with.{path}: {e}")))?;
            inputs.insert(with::input_name(&path), input);
        } else {
            refs.extend(template.refs());
        }
    }
    Ok(Uses {
        builtin,
        with,
        refs,
    })
}

/// `foreach:` is one `${{ }}` expression (a literal list belongs in `params:`, where `-p` can
/// change it); `max_parallel:` a positive count.
fn parse_foreach(
    list: Yaml,
    max_parallel: Option<Yaml>,
) -> Result<Foreach, (&'static str, String)> {
    let expression = || "`foreach:` is one expression such as ${{ params.items }}".to_owned();
    let Yaml::String(text) = list else {
        return Err((
            "foreach",
            format!(
                "{}, not {list:?}; declare a literal list under params:",
                expression()
            ),
        ));
    };
    let list = Template::parse(&text).map_err(|e| ("foreach", e))?;
    if list.as_expr().is_none() {
        return Err(("foreach", format!("{}, not {text:?}", expression())));
    }
    let max_parallel = match max_parallel {
        None => None,
        Some(Yaml::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            n.as_u64().and_then(|n| usize::try_from(n).ok())
        }
        Some(other) => {
            return Err((
                "max_parallel",
                format!("`max_parallel:` is a positive whole number, not {other:?}"),
            ));
        }
    };
    Ok(Foreach { list, max_parallel })
}

/// `when:` is an expression with or without its `${{ }}`; a bare `true`/`false` too.
fn parse_when(when: Yaml) -> Result<Template, String> {
    let text = match when {
        Yaml::String(s) if s.contains("${{") => s,
        Yaml::String(s) => format!("${{{{ {s} }}}}"),
        Yaml::Bool(b) => format!("${{{{ {b} }}}}"),
        other => return Err(format!("`when:` is an expression, not {other:?}")),
    };
    Template::parse(&text)
}

fn parse_output_kind(kind: &str) -> Result<OutputKind, String> {
    match kind {
        "file" => Ok(OutputKind::File),
        "dir" => Ok(OutputKind::Dir),
        "metrics" => Ok(OutputKind::Metrics),
        "value" => Ok(OutputKind::Value),
        "dataset" | "model" => Err(format!("kind {kind:?} is not supported yet")),
        other => Err(format!(
            "unknown kind {other:?}: use file, dir, metrics or value"
        )),
    }
}

fn parse_cache(raw: RawCache) -> Result<Cache, String> {
    match raw {
        RawCache::Switch(on) => Ok(Cache {
            mode: if on { CacheMode::On } else { CacheMode::Off },
            ..Cache::auto()
        }),
        RawCache::Word(w) if w == "auto" => Ok(Cache::auto()),
        RawCache::Word(w) => Err(format!(
            "cache is auto, false, true or {{max_age, version}}, not {w:?}"
        )),
        RawCache::Policy { max_age, version } => Ok(Cache {
            mode: CacheMode::On,
            max_age: max_age.map(|a| a.parse()).transpose()?,
            version,
        }),
    }
}

fn parse_input(text: &str) -> Result<Input, String> {
    let text = text.trim();
    if text.contains("${{") {
        let template = Template::parse(text)?;
        let refs = template.refs();
        return match (template.as_expr(), refs.as_slice()) {
            (Some(_), [Ref::Output { step, output }]) => Ok(Input::Output {
                step: step.clone(),
                output: output.clone(),
            }),
            _ if refs
                .iter()
                .any(|r| matches!(r, Ref::Output { .. } | Ref::Status(_))) =>
            {
                Err("a step's output is an input only as the whole `${{ steps.<id>.outputs.<name> }}`".into())
            }
            _ => Ok(Input::Expr(template)),
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

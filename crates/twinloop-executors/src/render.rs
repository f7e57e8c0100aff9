//! `twinloop pipeline render FILE --executor k8s`: the Jobs a run would create, one YAML
//! document per `run:` step, without running or contacting anything. Values known only while
//! running (upstream `value` outputs, step states) stay as their `${{ … }}` source.
//!
//! The pipeline loader refuses `resources:` (not honoured by any executor yet), and checks an
//! `executor:` name against the repository's `twinloop.yaml`, which a render needs no access to:
//! render reads both keys itself and loads the pipeline without them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use serde_norway::Value as Yaml;
use twinloop_pipelines::Invalid;
use twinloop_pipelines::exec::env_name;
use twinloop_pipelines::expr::{Ref, Scope, to_text};
use twinloop_pipelines::spec::{self, Pipeline, Step};

use crate::k8s::manifest::{JobTemplate, WORK_DIR, job};
use crate::{AttemptSpec, Resources};

/// What a render needs beside the file.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The run id the manifests name (a real run's is random).
    pub run_id: String,
    /// `-p name=value` overrides.
    pub params: Vec<(String, String)>,
    pub template: JobTemplate,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Pipeline(#[from] twinloop_pipelines::Error),
    /// `resources:` or `executor:` of a step is malformed.
    #[error("{file}: {section}[{step}].{field}: {message}")]
    Placement {
        file: String,
        section: String,
        step: String,
        field: &'static str,
        message: String,
    },
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
}

/// Where a step runs and with what, as the file says.
#[derive(Debug, Clone, Default, PartialEq)]
struct Placement {
    executor: Option<String>,
    resources: Resources,
}

/// The Job manifests of `text` (the pipeline file `file`), as a YAML stream.
pub fn render_k8s(file: &str, text: &str, options: &RenderOptions) -> Result<String, RenderError> {
    let placements = placements(file, text)?;
    let pipeline = load(file, text, &placements)?;
    let params = pipeline.resolve_params(&options.params)?;
    let mut notes = format!(
        "# Kubernetes Jobs of pipeline {} (run {}), one per `run:` step, as `pipeline run \
         --executor k8s` would create them for attempt 1.\n",
        pipeline.name, options.run_id
    );
    let mut out = String::new();
    for step in &pipeline.steps {
        let placement = placements.get(&step.id).cloned().unwrap_or_default();
        if step.uses.is_some() {
            notes.push_str(&format!(
                "# {}: uses {}, runs inside the twinloop process\n",
                step.id,
                step.run.source.trim_start_matches("uses:")
            ));
            continue;
        }
        if let Some(other) = placement.executor.as_deref().filter(|e| *e != "k8s") {
            notes.push_str(&format!("# {}: runs on executor {other}\n", step.id));
            continue;
        }
        let spec = attempt(
            &pipeline,
            step,
            &params,
            &options.run_id,
            placement.resources,
        );
        let manifest = job(&spec, &options.template);
        let yaml = serde_norway::to_string(&manifest).map_err(|e| RenderError::Yaml {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(notes + &out)
}

/// Attempt 1 of `step` as the engine would hand it to the Kubernetes executor, with inputs and
/// outputs under the Job's work directory.
fn attempt(
    pipeline: &Pipeline,
    step: &Step,
    params: &BTreeMap<String, Value>,
    run_id: &str,
    resources: Resources,
) -> AttemptSpec {
    let scope = RenderScope { params, run_id };
    let mut env = BTreeMap::new();
    for name in step.params_used() {
        let value = params.get(&name).map_or_else(String::new, to_text);
        env.insert(format!("TWINLOOP_PARAM_{}", env_name(&name)), value);
    }
    for (name, value) in &step.env_vars {
        env.insert(name.clone(), value.render(&scope));
    }
    env.insert(
        "TWINLOOP_CONTEXT".into(),
        format!("{WORK_DIR}/context.json"),
    );
    env.insert(
        "TWINLOOP_MESSAGES".into(),
        format!("{WORK_DIR}/messages.jsonl"),
    );
    env.insert("TWINLOOP_OUTPUTS".into(), format!("{WORK_DIR}/outputs"));
    let located = |dir: &str, names: Vec<&String>| {
        names
            .into_iter()
            .map(|n| (n.clone(), format!("{WORK_DIR}/{dir}/{n}")))
            .collect()
    };
    AttemptSpec {
        run_id: run_id.to_owned(),
        pipeline: pipeline.name.clone(),
        step: step.id.clone(),
        item: None,
        attempt: 1,
        command: step.run.render(&scope),
        env,
        image: None,
        resources,
        timeout: step.timeout,
        inputs: located("inputs", step.inputs.keys().collect()),
        outputs: located("outputs", step.outputs.keys().collect()),
        repo: ".".into(),
        code: Vec::new(),
        labels: BTreeMap::new(),
        workdir: None,
        launcher: None,
        grace: Duration::from_secs(10),
    }
}

/// Params and the run id resolve; what only a running pipeline knows stays as written.
struct RenderScope<'a> {
    params: &'a BTreeMap<String, Value>,
    run_id: &'a str,
}

impl Scope for RenderScope<'_> {
    fn get(&self, reference: &Ref) -> Value {
        match reference {
            Ref::Param(p) => self.params.get(p).cloned().unwrap_or(Value::Null),
            Ref::RunId => Value::String(self.run_id.to_owned()),
            Ref::TriggerKind => Value::String("manual".into()),
            other => Value::String(format!("${{{{ {} }}}}", pending(other))),
        }
    }
}

/// The source of a reference only a running pipeline resolves. Written with `if let` rather
/// than a `match`: `Ref` gains variants with the language (a `foreach:` item), and render
/// leaves those pending too instead of failing to build.
fn pending(reference: &Ref) -> String {
    if let Ref::Output { step, output } = reference {
        return format!("steps.{step}.outputs.{output}");
    }
    if let Ref::Status(step) = reference {
        return format!("steps.{step}.status");
    }
    if let Ref::TriggerPayload(path) = reference {
        return dotted("trigger.payload", path);
    }
    if *reference == Ref::RunStatus {
        return "run.status".into();
    }
    "…".into()
}

fn dotted(head: &str, path: &[String]) -> String {
    std::iter::once(head)
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(".")
}

/// Each step's `executor:` and `resources:` (steps and `finally:` together: ids are unique).
fn placements(file: &str, text: &str) -> Result<BTreeMap<String, Placement>, RenderError> {
    let Ok(root) = serde_norway::from_str::<Yaml>(text) else {
        // Not YAML: the loader says where.
        return Ok(BTreeMap::new());
    };
    let mut placements = BTreeMap::new();
    for section in ["steps", "finally"] {
        let Some(steps) = root.get(section).and_then(Yaml::as_mapping) else {
            continue;
        };
        for (id, step) in steps {
            let (Some(id), Some(step)) = (id.as_str(), step.as_mapping()) else {
                continue;
            };
            let error = |field: &'static str, message: String| RenderError::Placement {
                file: file.to_owned(),
                section: section.to_owned(),
                step: id.to_owned(),
                field,
                message,
            };
            let mut placement = Placement::default();
            if let Some(value) = step.get("executor") {
                let name = value.as_str().ok_or_else(|| {
                    error("executor", "an executor name: local, k8s or ray".into())
                })?;
                placement.executor = Some(name.to_owned());
            }
            if let Some(value) = step.get("resources") {
                placement.resources =
                    Resources::from_yaml(value).map_err(|m| error("resources", m))?;
            }
            if placement != Placement::default() {
                placements.insert(id.to_owned(), placement);
            }
        }
    }
    Ok(placements)
}

/// The pipeline, loaded without the placement keys when it has any. The keys' lines are
/// blanked rather than the document re-serialized, so problems keep the file's line numbers;
/// only when that does not remove exactly those keys (flow style: `a: {run: x, executor: k8s}`)
/// is the document re-serialized.
fn load(
    file: &str,
    text: &str,
    placements: &BTreeMap<String, Placement>,
) -> Result<Pipeline, RenderError> {
    if placements.is_empty() {
        return Ok(spec::parse(file, text)?);
    }
    let yaml_error = |e: serde_norway::Error| RenderError::Yaml {
        file: file.to_owned(),
        message: e.to_string(),
    };
    let mut expected: Yaml = serde_norway::from_str(text).map_err(yaml_error)?;
    for section in ["steps", "finally"] {
        if let Some(steps) = expected.get_mut(section).and_then(Yaml::as_mapping_mut) {
            for (_, step) in steps.iter_mut() {
                if let Some(step) = step.as_mapping_mut() {
                    step.remove("resources");
                    step.remove("executor");
                }
            }
        }
    }
    let blanked = blank_placement_lines(text);
    let stripped = match serde_norway::from_str::<Yaml>(&blanked) {
        Ok(value) if value == expected => blanked,
        _ => serde_norway::to_string(&expected).map_err(yaml_error)?,
    };
    Ok(spec::parse(file, &stripped)?)
}

/// `text` with the lines of every step's `resources:` and `executor:` (and their nested
/// lines) emptied, in block style under `steps:` and `finally:`.
fn blank_placement_lines(text: &str) -> String {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let content = |line: &str| {
        let t = line.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let mut out = Vec::new();
    let mut in_section = false;
    let mut step_indent = None;
    let mut field_indent = None;
    let mut blanking_deeper_than = None;
    for line in text.lines() {
        if !content(line) {
            out.push(line);
            continue;
        }
        let at = indent(line);
        if let Some(limit) = blanking_deeper_than {
            if at > limit {
                out.push("");
                continue;
            }
            blanking_deeper_than = None;
        }
        if at == 0 {
            let key = line.split(':').next().unwrap_or_default().trim();
            in_section = key == "steps" || key == "finally";
            step_indent = None;
            field_indent = None;
            out.push(line);
            continue;
        }
        if !in_section {
            out.push(line);
            continue;
        }
        let steps_at = *step_indent.get_or_insert(at);
        if at <= steps_at {
            field_indent = None;
            out.push(line);
            continue;
        }
        let fields_at = *field_indent.get_or_insert(at);
        let key = line.trim_start().split(':').next().unwrap_or_default();
        if at == fields_at && (key == "resources" || key == "executor") {
            blanking_deeper_than = Some(at);
            out.push("");
            continue;
        }
        out.push(line);
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_lines_are_blanked_in_place() {
        let text = "pipeline: p\nsteps:\n  a:\n    run: x\n    resources:\n      cpu: 1\n\n      memory: 1Gi\n    executor: k8s\n    timeout: 1m\n  b:\n    with: {resources: 1}\nfinally:\n  c:\n    executor: k8s\n";
        let blanked = blank_placement_lines(text);
        assert_eq!(blanked.lines().count(), text.lines().count());
        assert_eq!(
            blanked,
            "pipeline: p\nsteps:\n  a:\n    run: x\n\n\n\n\n\n    timeout: 1m\n  b:\n    with: {resources: 1}\nfinally:\n  c:\n\n"
        );
    }
}

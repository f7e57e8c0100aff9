//! Checks across steps, after each step parsed on its own: ids, references, the DAG. Every
//! problem names `file:line: steps[x].field`.

use std::collections::{BTreeMap, BTreeSet};

use crate::expr::Ref;
use crate::spec::{Input, OutputKind, Pipeline, Problems, Step};

/// Step ids used twice, within `steps:` or across `steps:` and `finally:`. Found in the text,
/// because a YAML mapping keeps only one of two equal keys.
pub(crate) fn duplicate_ids(problems: &mut Problems<'_>) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for section in ["steps", "finally"] {
        for (id, line) in crate::locate::step_keys(problems.text, section) {
            if let Some(first) = seen.get(&id) {
                let message = format!("duplicate step id {id:?} (first in {first}:)");
                problems.push(line, format!("{section}[{id}]"), message);
            } else {
                seen.insert(id, section);
            }
        }
    }
}

pub(crate) fn check(pipeline: &Pipeline, problems: &mut Problems<'_>) {
    if pipeline.steps.iter().all(|s| s.finally) {
        problems.top("steps", "a pipeline needs at least one step".into());
    }
    for step in &pipeline.steps {
        check_step(pipeline, step, problems);
    }
    if problems.list.is_empty() {
        check_cycles(pipeline, problems);
    }
}

fn section(step: &Step) -> &'static str {
    if step.finally { "finally" } else { "steps" }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_step(pipeline: &Pipeline, step: &Step, problems: &mut Problems<'_>) {
    let at = section(step);
    let mut report =
        |field: &str, message: String| problems.step(at, &step.id, Some(field), message);
    let upstream_ok = |id: &str| -> Result<&Step, String> {
        match pipeline.step(id) {
            None => Err(format!("unknown step {id:?}")),
            Some(s) if s.id == step.id => Err("a step cannot depend on itself".into()),
            Some(s) if s.finally && !step.finally => Err(format!(
                "{id:?} is a finally step; steps cannot depend on it"
            )),
            Some(s) => Ok(s),
        }
    };
    for need in &step.needs {
        if let Err(e) = upstream_ok(need) {
            report("needs", e);
        }
    }
    for (name, input) in &step.inputs {
        if !valid_name(name) {
            report(
                "inputs",
                format!("input name {name:?} must be letters, digits and _"),
            );
        }
        if let Input::Output { step: up, output } = input {
            match upstream_ok(up) {
                Err(e) => report("inputs", format!("input {name}: {e}")),
                Ok(s) if !s.outputs.contains_key(output) => report(
                    "inputs",
                    format!("input {name}: step {up:?} has no output {output:?}"),
                ),
                Ok(_) => {}
            }
        }
    }
    for name in step.outputs.keys() {
        if !valid_name(name) {
            report(
                "outputs",
                format!("output name {name:?} must be letters, digits and _"),
            );
        }
    }
    let mut fields = vec![("run", step.run.refs())];
    if let Some(when) = &step.when {
        fields.push(("when", when.refs()));
    }
    fields.push((
        "env",
        step.env_vars.values().flat_map(|t| t.refs()).collect(),
    ));
    if let Some(uses) = &step.uses {
        fields.push(("with", uses.refs.clone()));
    }
    fields.push((
        "inputs",
        step.inputs
            .values()
            .filter_map(|i| match i {
                Input::Expr(t) => Some(t.refs()),
                _ => None,
            })
            .flatten()
            .collect(),
    ));
    if step.foreach.is_some() {
        fields.push(("foreach", step.foreach_refs()));
    }
    for (field, refs) in fields {
        for r in refs {
            let problem = match &r {
                Ref::Item(_) => item_problem(step, field),
                Ref::Param(p) if !pipeline.params.contains_key(p) => {
                    Some(format!("unknown param {p:?}: declare it under params:"))
                }
                Ref::Output { step: up, output } => match upstream_ok(up) {
                    Err(e) => Some(e),
                    Ok(s) => match s.outputs.get(output) {
                        None => Some(format!("step {up:?} has no output {output:?}")),
                        Some(OutputKind::File | OutputKind::Dir) => Some(format!(
                            "steps.{up}.outputs.{output} is a file or dir: read it through inputs:"
                        )),
                        Some(_) => None,
                    },
                },
                Ref::Status(up) => upstream_ok(up).err(),
                Ref::RunStatus if !step.finally => {
                    Some("run.status is known only in finally: steps".into())
                }
                _ => None,
            };
            if let Some(message) = problem {
                report(field, message);
            }
        }
    }
}

/// Why `item` cannot be read in `field` of the step, if it cannot.
fn item_problem(step: &Step, field: &str) -> Option<String> {
    if step.foreach.is_none() {
        return Some("`item` is known only in a step with `foreach:`".into());
    }
    match field {
        "foreach" => Some("the `foreach:` list cannot read `item`, its own element".into()),
        "when" => Some(
            "`when:` is decided once for the whole step, before its items: it cannot read `item`"
                .into(),
        ),
        _ => None,
    }
}

/// Reports the steps left on a cycle after removing everything that can be ordered.
fn check_cycles(pipeline: &Pipeline, problems: &mut Problems<'_>) {
    if order(pipeline).is_some() {
        return;
    }
    let mut remaining: BTreeSet<&str> = pipeline.steps.iter().map(|s| s.id.as_str()).collect();
    loop {
        let free: Vec<&str> = remaining
            .iter()
            .copied()
            .filter(|id| {
                pipeline
                    .step(id)
                    .is_some_and(|s| s.upstream().iter().all(|u| !remaining.contains(u.as_str())))
            })
            .collect();
        if free.is_empty() {
            break;
        }
        for id in free {
            remaining.remove(id);
        }
    }
    let cycle: Vec<&str> = remaining.iter().copied().collect();
    for id in &cycle {
        if let Some(step) = pipeline.step(id) {
            let message = format!("dependency cycle among steps {}", cycle.join(", "));
            problems.step(section(step), id, Some("needs"), message);
        }
    }
}

/// The steps in an order where each comes after its upstream steps (file order among equals),
/// or `None` when there is a cycle.
pub fn order(pipeline: &Pipeline) -> Option<Vec<&Step>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < pipeline.steps.len() {
        let next = pipeline.steps.iter().find(|s| {
            !done.contains(s.id.as_str()) && s.upstream().iter().all(|u| done.contains(u.as_str()))
        })?;
        done.insert(&next.id);
        out.push(next);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::spec::parse;

    fn problems(text: &str) -> Vec<String> {
        parse("p.yaml", text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_cycle_names_its_steps() {
        let text = "pipeline: p\nsteps:\n  a:\n    run: x\n    needs: [b]\n  b:\n    run: y\n    needs: [a]\n";
        assert_eq!(
            problems(text),
            vec![
                "p.yaml:5: steps[a].needs: dependency cycle among steps a, b",
                "p.yaml:8: steps[b].needs: dependency cycle among steps a, b",
            ]
        );
    }

    #[test]
    fn duplicates_and_unknown_references() {
        let text = "pipeline: p\nsteps:\n  a:\n    run: x\n  a:\n    run: y\n";
        assert_eq!(
            problems(text),
            vec!["p.yaml:5: steps[a]: duplicate step id \"a\" (first in steps:)"]
        );
        let text = "pipeline: p\nparams: {lr: 1}\nsteps:\n  a:\n    run: x ${{ params.nope }}\n    outputs: {m: {kind: value}}\n  b:\n    inputs: {m: '${{ steps.a.outputs.z }}'}\n    run: y\n    when: ${{ steps.c.status == 'x' }}\n";
        assert_eq!(
            problems(text),
            vec![
                "p.yaml:5: steps[a].run: unknown param \"nope\": declare it under params:",
                "p.yaml:8: steps[b].inputs: input m: step \"a\" has no output \"z\"",
                "p.yaml:10: steps[b].when: unknown step \"c\"",
            ]
        );
    }

    #[test]
    fn item_is_read_only_inside_foreach_and_max_parallel_needs_it() {
        let text = "pipeline: p\nparams: {xs: [1, 2]}\nsteps:\n  a:\n    run: echo ${{ item }}\n  b:\n    run: echo ${{ item.name }}\n    foreach: ${{ params.xs }}\n    when: ${{ item }}\n  c:\n    run: 'true'\n    max_parallel: 2\n  d:\n    run: 'true'\n    foreach: ${{ params.nope }}\n    max_parallel: 0\n  e:\n    run: 'true'\n    foreach: [1, 2]\n";
        assert_eq!(
            problems(text),
            vec![
                "p.yaml:12: steps[c].max_parallel: `max_parallel:` bounds the items of a `foreach:` step; this step has no `foreach:`",
                "p.yaml:16: steps[d].max_parallel: `max_parallel:` is a positive whole number, not Number(0)",
                "p.yaml:19: steps[e].foreach: `foreach:` is one expression such as ${{ params.items }}, not Sequence [Number(1), Number(2)]; declare a literal list under params:",
            ]
        );
        let text = "pipeline: p\nparams: {xs: [1, 2]}\nsteps:\n  a:\n    run: echo ${{ item }}\n  b:\n    run: echo ${{ item.name }}\n    foreach: ${{ params.xs }}\n    when: ${{ item }}\n  d:\n    run: 'true'\n    foreach: ${{ params.nope }}\n";
        assert_eq!(
            problems(text),
            vec![
                "p.yaml:5: steps[a].run: `item` is known only in a step with `foreach:`",
                "p.yaml:9: steps[b].when: `when:` is decided once for the whole step, before its items: it cannot read `item`",
                "p.yaml:12: steps[d].foreach: unknown param \"nope\": declare it under params:",
            ]
        );
        let ok = parse(
            "p.yaml",
            "pipeline: p\nsteps:\n  list:\n    run: x\n    outputs: {xs: {kind: value}}\n  fan:\n    run: echo ${{ item }}\n    foreach: ${{ steps.list.outputs.xs }}\n    max_parallel: 2\n",
        )
        .unwrap();
        let fan = ok.step("fan").unwrap();
        assert_eq!(fan.foreach.as_ref().and_then(|f| f.max_parallel), Some(2));
        assert!(
            fan.upstream().contains("list"),
            "the list's step is upstream"
        );
        assert!(fan.params_used().is_empty());
    }

    #[test]
    fn finally_sees_run_status_and_steps_do_not() {
        let text = "pipeline: p\nsteps:\n  a:\n    run: echo ${{ run.status }}\nfinally:\n  f:\n    run: echo ${{ run.status }}\n";
        assert_eq!(
            problems(text),
            vec!["p.yaml:4: steps[a].run: run.status is known only in finally: steps"]
        );
    }
}

//! `foreach:` fan-out: the list a step runs over, the names its items go by, the state the step
//! ends in, and the outputs downstream steps see — each output collected in item order: value
//! and metrics outputs as one JSON array, file and dir outputs as one directory whose entries are
//! the items' outputs, named by index (zero-padded, so a sorted listing is item order).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cache::digest::{bytes_digest, entries_digest};
use crate::cache::{Cas, Execution};
use crate::expr::to_text;
use crate::spec::{Foreach, OutputKind, Step};
use crate::state::{OutputRecord, RunScope, StepOutputs, StepState};

/// The variable an item's element is given in (as text, JSON unless a string); being one of
/// the step's vars, it is also part of each item's cache key.
pub(crate) const ITEM_VAR: &str = "TWINLOOP_ITEM";

/// How an item is named in events, the cache index and lineage: `fan[2]`.
pub(crate) fn item_name(step: &str, index: usize) -> String {
    format!("{step}[{index}]")
}

/// The elements the step runs over, from its `foreach:` expression.
pub(crate) fn list(foreach: &Foreach, scope: &RunScope<'_>) -> Result<Vec<Value>, String> {
    match foreach.list.eval(scope) {
        Value::Array(items) => Ok(items),
        other => Err(format!(
            "foreach: {} is not a list but {other}",
            foreach.list.source
        )),
    }
}

/// Whether an earlier execution of an item ran with this element: a resumed run reuses an item
/// by index only if its list still holds the same element there.
pub(crate) fn same_item(execution: &Execution, item: &Value) -> bool {
    execution.doc.env.vars.get(ITEM_VAR) == Some(&to_text(item))
}

/// Ranks states from best to worst: a step is as bad as its worst item.
fn severity(state: StepState) -> u8 {
    match state {
        StepState::Cached => 0,
        StepState::Succeeded => 1,
        StepState::Pending | StepState::Running | StepState::Retrying => 2,
        StepState::Skipped => 3,
        StepState::Failed => 4,
        StepState::TimedOut => 5,
        StepState::Canceled => 6,
    }
}

/// The step's state from its items': the worst of them; all `CACHED` is `CACHED`, and no item
/// at all is a success.
pub(crate) fn worst(states: impl IntoIterator<Item = StepState>) -> StepState {
    states
        .into_iter()
        .max_by_key(|s| severity(*s))
        .unwrap_or(StepState::Succeeded)
}

/// The outputs downstream steps see, with what must be written to the store for them.
pub(crate) struct Collected {
    pub outputs: StepOutputs,
    /// Values' JSON and directories' manifests not yet in the store.
    pending: Vec<Pending>,
}

enum Pending {
    Bytes(Vec<u8>),
    Manifest(Vec<(String, String)>),
}

/// The index's name in the collected directory: zero-padded to the width of the largest.
fn entry_name(index: usize, count: usize) -> String {
    let width = count.saturating_sub(1).to_string().len();
    format!("{index:0width$}")
}

/// Collects each declared output over the items' outputs (in item order). Reading a directory
/// item's manifest is the only store access; nothing is written until [`Collected::store`].
pub(crate) fn collect(step: &Step, items: &[&StepOutputs], cas: &Cas) -> Result<Collected, String> {
    let mut outputs = BTreeMap::new();
    let mut pending = Vec::new();
    for (name, kind) in &step.outputs {
        let records = items
            .iter()
            .enumerate()
            .map(|(i, outputs)| {
                outputs
                    .get(name)
                    .ok_or_else(|| format!("item {i} produced no output {name:?}"))
            })
            .collect::<Result<Vec<&OutputRecord>, String>>()?;
        let record = match kind {
            OutputKind::Metrics | OutputKind::Value => {
                let list = Value::Array(
                    records
                        .iter()
                        .map(|r| r.value.clone().unwrap_or(Value::Null))
                        .collect(),
                );
                let bytes = serde_json::to_vec(&list).map_err(|e| e.to_string())?;
                let digest = bytes_digest(&bytes);
                pending.push(Pending::Bytes(bytes));
                OutputRecord {
                    kind: OutputKind::Value,
                    digest,
                    value: Some(list),
                }
            }
            OutputKind::File | OutputKind::Dir => {
                let mut entries = Vec::new();
                for (i, record) in records.iter().enumerate() {
                    let entry = entry_name(i, records.len());
                    if record.kind == OutputKind::Dir {
                        let manifest = cas
                            .manifest(&record.digest)
                            .map_err(|e| format!("output {name} of item {i}: {e}"))?;
                        entries.extend(
                            manifest
                                .into_iter()
                                .map(|(path, digest)| (format!("{entry}/{path}"), digest)),
                        );
                    } else {
                        entries.push((entry, record.digest.clone()));
                    }
                }
                entries.sort();
                let digest = entries_digest(&entries);
                pending.push(Pending::Manifest(entries));
                OutputRecord {
                    kind: OutputKind::Dir,
                    digest,
                    value: None,
                }
            }
        };
        outputs.insert(name.clone(), record);
    }
    Ok(Collected { outputs, pending })
}

impl Collected {
    /// Writes the collected values and directory manifests to the store.
    pub(crate) fn store(self, cas: &Cas) -> std::io::Result<StepOutputs> {
        for pending in &self.pending {
            match pending {
                Pending::Bytes(bytes) => cas.put_bytes(bytes)?,
                Pending::Manifest(entries) => cas.put_manifest(entries)?,
            };
        }
        Ok(self.outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(outputs: &[(&str, OutputKind)]) -> Step {
        let mut text = String::from("pipeline: p\nsteps:\n  fan:\n    run: x\n    outputs:\n");
        for (name, kind) in outputs {
            let kind = serde_json::to_value(kind).unwrap();
            text.push_str(&format!(
                "      {name}: {{kind: {}}}\n",
                kind.as_str().unwrap()
            ));
        }
        crate::spec::parse("p.yaml", &text)
            .unwrap()
            .step("fan")
            .unwrap()
            .clone()
    }

    #[test]
    fn the_worst_item_decides_and_no_item_succeeds() {
        use StepState::{Cached, Canceled, Failed, Skipped, Succeeded};
        assert_eq!(worst([Cached, Cached]), Cached);
        assert_eq!(worst([Cached, Succeeded]), Succeeded);
        assert_eq!(worst([Succeeded, Failed, Skipped]), Failed);
        assert_eq!(worst([Failed, Canceled]), Canceled);
        assert_eq!(worst([]), Succeeded);
        assert_eq!(entry_name(3, 4), "3");
        assert_eq!(entry_name(3, 12), "03");
    }

    #[test]
    fn outputs_are_collected_in_item_order() {
        let home = tempfile::tempdir().unwrap();
        let cas = Cas::new(home.path());
        let work = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for (i, text) in ["b", "a"].iter().enumerate() {
            std::fs::write(work.path().join("f"), text).unwrap();
            let file = cas.put_file(&work.path().join("f")).unwrap();
            let dir = work.path().join(format!("d{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("x"), text).unwrap();
            let dir = cas.put_dir(&dir).unwrap();
            let record = |kind, digest: &str, value| OutputRecord {
                kind,
                digest: digest.to_owned(),
                value,
            };
            items.push(BTreeMap::from([
                ("f".to_owned(), record(OutputKind::File, &file, None)),
                ("d".to_owned(), record(OutputKind::Dir, &dir, None)),
                (
                    "v".to_owned(),
                    record(OutputKind::Value, "unused", Some(json!(text))),
                ),
            ]));
        }
        let step = step(&[
            ("f", OutputKind::File),
            ("d", OutputKind::Dir),
            ("v", OutputKind::Value),
        ]);
        let refs: Vec<&StepOutputs> = items.iter().collect();
        let outputs = collect(&step, &refs, &cas).unwrap().store(&cas).unwrap();
        assert_eq!(outputs["v"].value, Some(json!(["b", "a"])));
        assert!(cas.present(OutputKind::Value, &outputs["v"].digest, true));
        let out = work.path().join("out");
        for name in ["f", "d"] {
            assert_eq!(outputs[name].kind, OutputKind::Dir);
            cas.materialize(OutputKind::Dir, &outputs[name].digest, &out.join(name))
                .unwrap();
        }
        let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
        assert_eq!((read("f/0"), read("f/1")), ("b".into(), "a".into()));
        assert_eq!((read("d/0/x"), read("d/1/x")), ("b".into(), "a".into()));

        let empty = collect(&step, &[], &cas).unwrap().store(&cas).unwrap();
        assert_eq!(empty["v"].value, Some(json!([])));
        assert!(cas.present(OutputKind::Dir, &empty["f"].digest, true));
        let missing = BTreeMap::new();
        assert!(
            collect(&step, &[&missing], &cas)
                .err()
                .is_some_and(|e| e.contains("item 0 produced no output"))
        );
    }
}

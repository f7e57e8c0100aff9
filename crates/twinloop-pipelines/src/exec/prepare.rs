//! Everything about a step that can be known before it runs: its params, command, env vars,
//! input digests and so its cache key. Shared by the executor and `plan`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cache::KeyDoc;
use crate::cache::digest::path_digest;
use crate::expr::to_text;
use crate::spec::{Input, OutputKind, Step};
use crate::state::RunScope;

pub(crate) struct Prepared {
    pub doc: KeyDoc,
    pub key: String,
    pub command: String,
    /// A built-in's `with:`, rendered up to its inputs (see `builtins::with::render`).
    pub with: Option<Value>,
    pub params: BTreeMap<String, Value>,
    pub vars: BTreeMap<String, String>,
    pub inputs: BTreeMap<String, ResolvedInput>,
    /// A `foreach:` item's element (also in `vars` as `TWINLOOP_ITEM`, so the key covers it).
    pub item: Option<Value>,
}

impl Prepared {
    /// Each input's kind and content digest, as lineage records what a step read.
    pub fn digests(&self) -> BTreeMap<String, (OutputKind, String)> {
        self.inputs
            .iter()
            .map(|(name, input)| {
                let kind = match input {
                    ResolvedInput::Stored { kind, .. } => *kind,
                    ResolvedInput::External { path, .. } if path.is_dir() => OutputKind::Dir,
                    ResolvedInput::External { .. } => OutputKind::File,
                };
                (name.clone(), (kind, input.digest().to_owned()))
            })
            .collect()
    }
}

pub(crate) enum ResolvedInput {
    /// An upstream output in the store.
    Stored { kind: OutputKind, digest: String },
    /// A file or directory of the repo, read in place.
    External { path: PathBuf, digest: String },
}

impl ResolvedInput {
    fn digest(&self) -> &str {
        match self {
            ResolvedInput::Stored { digest, .. } | ResolvedInput::External { digest, .. } => digest,
        }
    }
}

pub(crate) fn prepare(step: &Step, repo: &Path, scope: &RunScope<'_>) -> Result<Prepared, String> {
    let params: BTreeMap<String, Value> = step
        .params_used()
        .into_iter()
        .map(|p| {
            let value = scope.params.get(&p).cloned().unwrap_or(Value::Null);
            (p, value)
        })
        .collect();
    let with = step.uses.as_ref().map(|uses| {
        crate::builtins::with::render(&uses.with, scope, uses.builtin.path_args(), repo)
    });
    let command = match &with {
        Some(with) => format!("{} {with}", step.run.source),
        None => step.run.render(scope),
    };
    let mut vars: BTreeMap<String, String> = step
        .env_vars
        .iter()
        .map(|(name, t)| (name.clone(), to_text(&t.eval(scope))))
        .collect();
    if let Some(item) = scope.item {
        vars.insert(super::foreach::ITEM_VAR.to_owned(), to_text(item));
    }
    let mut inputs = BTreeMap::new();
    for (name, input) in &step.inputs {
        let resolved = match input {
            Input::Output { step: up, output } => {
                let record = scope
                    .outputs
                    .get(up)
                    .and_then(|o| o.get(output))
                    .ok_or_else(|| {
                        format!("input {name}: step {up:?} produced no output {output:?}")
                    })?;
                ResolvedInput::Stored {
                    kind: record.kind,
                    digest: record.digest.clone(),
                }
            }
            Input::Path(relative) => external(name, repo, relative)?,
            Input::Expr(template) => {
                let text = template.render(scope);
                if text.is_empty() {
                    return Err(format!(
                        "input {name}: `{}` is empty in this run (a trigger's payload is there only in runs that trigger started)",
                        template.source
                    ));
                }
                let path = inside_repo(repo, Path::new(&text))
                    .map_err(|e| format!("input {name}: {e}"))?;
                external(name, repo, &path.display().to_string())?
            }
        };
        inputs.insert(name.clone(), resolved);
    }
    let mut digests: BTreeMap<String, String> = inputs
        .iter()
        .map(|(name, input)| (name.clone(), input.digest().to_owned()))
        .collect();
    if let (Some(uses), Some(with)) = (&step.uses, &with) {
        digests.extend(crate::builtins::extra_digests(uses.builtin, with, repo)?);
    }
    let doc = KeyDoc::build(step, repo, params.clone(), &command, vars.clone(), digests)?;
    Ok(Prepared {
        key: doc.key(),
        doc,
        command,
        with,
        params,
        vars,
        inputs,
        item: scope.item.cloned(),
    })
}

fn external(name: &str, repo: &Path, relative: &str) -> Result<ResolvedInput, String> {
    let path = repo.join(relative);
    let digest =
        path_digest(&path).map_err(|e| format!("input {name}: cannot read {relative}: {e}"))?;
    Ok(ResolvedInput::External { path, digest })
}

/// `path` (relative to the repo, or absolute) as a path inside the repo, or why it is not: an
/// input chosen at run time — by an event's payload or a run's params — reads nothing outside
/// the repository, whatever links or `..` it holds.
fn inside_repo(repo: &Path, path: &Path) -> Result<PathBuf, String> {
    let root = repo
        .canonicalize()
        .map_err(|e| format!("cannot resolve the repo {}: {e}", repo.display()))?;
    let real = root
        .join(path)
        .canonicalize()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    real.strip_prefix(&root)
        .map(Path::to_path_buf)
        .map_err(|_| format!("{} is outside the repository", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_time_path_stays_inside_the_repo() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("data")).unwrap();
        std::fs::write(repo.path().join("data/a.csv"), "x\n").unwrap();
        let inside = |p: &str| inside_repo(repo.path(), Path::new(p));
        assert_eq!(inside("data/a.csv").unwrap(), PathBuf::from("data/a.csv"));
        let absolute = repo.path().join("data").display().to_string();
        assert_eq!(inside(&absolute).unwrap(), PathBuf::from("data"));
        assert!(
            inside("../")
                .unwrap_err()
                .contains("outside the repository")
        );
        assert!(inside("/etc/hostname").unwrap_err().contains("outside"));
        assert!(inside("data/../../x").is_err());
        std::os::unix::fs::symlink("/etc", repo.path().join("escape")).unwrap();
        assert!(inside("escape/hostname").unwrap_err().contains("outside"));
        assert!(inside("missing.csv").unwrap_err().contains("cannot read"));
    }
}

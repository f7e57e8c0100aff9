//! The cache key of a step and, for `plan`, what changed between two keys.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest::{bytes_digest, file_digest};
use crate::expr::to_text;
use crate::spec::{OutputKind, Step};

const KEY_VERSION: u32 = 1;

/// Everything a step's result depends on. Field order and sorted maps make its JSON canonical;
/// run ids, attempts, timestamps and output locations are left out on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyDoc {
    pub v: u32,
    pub kind: String,
    pub command: String,
    pub params: BTreeMap<String, Value>,
    pub code: BTreeMap<String, String>,
    pub env: EnvDoc,
    pub inputs: BTreeMap<String, String>,
    pub outputs: Vec<(String, OutputKind)>,
    pub salt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvDoc {
    pub lock: BTreeMap<String, String>,
    pub vars: BTreeMap<String, String>,
}

impl KeyDoc {
    /// The key of a step whose params, env vars and input digests are resolved.
    /// Code is the `code:` globs plus every command word that names a script of the repo
    /// (by extension: a data file the command names is an input, or it is not keyed).
    pub fn build(
        step: &Step,
        repo: &Path,
        params: BTreeMap<String, Value>,
        command: &str,
        vars: BTreeMap<String, String>,
        inputs: BTreeMap<String, String>,
    ) -> Result<KeyDoc, String> {
        let mut code = BTreeMap::new();
        for pattern in &step.code {
            let files = crate::glob::expand(repo, pattern)
                .map_err(|e| format!("cannot list code files {pattern:?}: {e}"))?;
            for file in files {
                let digest = digest_of(repo, &file, "code file")?;
                code.insert(file, digest);
            }
        }
        for word in command.split_whitespace() {
            let word = word.trim_matches(|c| c == '"' || c == '\'');
            let relative = Path::new(word);
            if relative.is_relative()
                && is_script(relative)
                && !word.contains("..")
                && !word.is_empty()
                && repo.join(relative).is_file()
            {
                let digest = digest_of(repo, word, "code file")?;
                code.insert(word.trim_start_matches("./").to_owned(), digest);
            }
        }
        let mut lock = BTreeMap::new();
        for file in &step.env_lock {
            lock.insert(
                file.clone(),
                digest_of(repo, file, "environment lock file")?,
            );
        }
        Ok(KeyDoc {
            v: KEY_VERSION,
            kind: "run".into(),
            // A built-in's `run` only names it: its `with:` as written is what it was asked to
            // do (the params it reads are keyed apart, like a command's).
            command: match &step.uses {
                Some(uses) => format!("{} {}", step.run.source, uses.with),
                None => step.run.source.clone(),
            },
            params,
            code,
            env: EnvDoc { lock, vars },
            inputs,
            outputs: step.outputs.iter().map(|(n, k)| (n.clone(), *k)).collect(),
            salt: step.cache.version.clone(),
        })
    }

    pub fn key(&self) -> String {
        // Serializing plain structs and BTreeMaps cannot fail.
        bytes_digest(&serde_json::to_vec(self).unwrap_or_default())
    }

    /// What differs from `older`, as `plan` names it: `param lr: 0.1 → 0.2`,
    /// `code: src/train.py changed`, `input train: new digest`, `env: requirements.txt changed`.
    pub fn changes(&self, older: &KeyDoc) -> Vec<String> {
        let mut out = Vec::new();
        if self.v != older.v || self.kind != older.kind {
            out.push("cache key format changed".into());
        }
        if self.command != older.command {
            out.push("command changed".into());
        }
        for (name, change) in diff(&self.params, &older.params) {
            let text = |v: Option<&Value>| v.map_or_else(|| "unset".into(), to_text);
            let (new, old) = (self.params.get(name), older.params.get(name));
            out.push(match change {
                Change::Changed | Change::Added | Change::Removed => {
                    format!("param {name}: {} → {}", text(old), text(new))
                }
            });
        }
        for (file, change) in diff(&self.code, &older.code) {
            out.push(format!("code: {file} {}", change.word()));
        }
        for (file, change) in diff(&self.env.lock, &older.env.lock) {
            out.push(format!("env: {file} {}", change.word()));
        }
        for (var, change) in diff(&self.env.vars, &older.env.vars) {
            out.push(format!("env var {var} {}", change.word()));
        }
        for (input, change) in diff(&self.inputs, &older.inputs) {
            out.push(match change {
                Change::Changed => format!("input {input}: new digest"),
                other => format!("input {input} {}", other.word()),
            });
        }
        if self.outputs != older.outputs {
            out.push("outputs changed".into());
        }
        if self.salt != older.salt {
            out.push("cache version changed".into());
        }
        out
    }
}

/// Extensions of the scripts a command runs, whose words count as code.
const SCRIPT_EXTENSIONS: [&str; 12] = [
    "py", "sh", "bash", "R", "r", "jl", "js", "ts", "rb", "pl", "sql", "ipynb",
];

fn is_script(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SCRIPT_EXTENSIONS.contains(&e))
}

fn digest_of(repo: &Path, file: &str, what: &str) -> Result<String, String> {
    file_digest(&repo.join(file)).map_err(|e| format!("cannot read {what} {file}: {e}"))
}

enum Change {
    Changed,
    Added,
    Removed,
}

impl Change {
    fn word(&self) -> &'static str {
        match self {
            Change::Changed => "changed",
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

fn diff<'a, V: PartialEq>(
    new: &'a BTreeMap<String, V>,
    old: &'a BTreeMap<String, V>,
) -> Vec<(&'a str, Change)> {
    let mut out = Vec::new();
    for (name, value) in new {
        match old.get(name) {
            None => out.push((name.as_str(), Change::Added)),
            Some(o) if o != value => out.push((name.as_str(), Change::Changed)),
            Some(_) => {}
        }
    }
    for name in old.keys() {
        if !new.contains_key(name) {
            out.push((name.as_str(), Change::Removed));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> KeyDoc {
        KeyDoc {
            v: 1,
            kind: "run".into(),
            command: "python src/train.py".into(),
            params: BTreeMap::from([("lr".into(), json!(0.1))]),
            code: BTreeMap::from([("src/train.py".into(), "aa".into())]),
            env: EnvDoc {
                lock: BTreeMap::from([("requirements.txt".into(), "bb".into())]),
                vars: BTreeMap::new(),
            },
            inputs: BTreeMap::from([("train".into(), "cc".into())]),
            outputs: vec![("model".into(), OutputKind::File)],
            salt: None,
        }
    }

    #[test]
    fn changes_name_the_component() {
        let old = doc();
        let mut new = doc();
        assert!(new.changes(&old).is_empty());
        assert_eq!(new.key(), old.key());
        new.params.insert("lr".into(), json!(0.2));
        new.code.insert("src/train.py".into(), "ab".into());
        new.env.lock.insert("requirements.txt".into(), "bc".into());
        new.inputs.insert("train".into(), "cd".into());
        assert_eq!(
            new.changes(&old),
            vec![
                "param lr: 0.1 → 0.2",
                "code: src/train.py changed",
                "env: requirements.txt changed",
                "input train: new digest",
            ]
        );
        assert_ne!(new.key(), old.key());
    }
}

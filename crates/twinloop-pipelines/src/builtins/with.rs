//! A built-in's `with:` block: JSON as written, whose strings may hold `${{ … }}`. A string that
//! is exactly one upstream output reference becomes an input of the step (digested into its key,
//! materialized for the built-in); path arguments name repo files, digested the same way.

use std::path::Path;

use serde_json::Value;

use crate::expr::{Ref, Scope, Template};

/// Every string of the tree with its key path (`metrics.roc_auc.threshold`), depth first.
fn strings<'a>(value: &'a Value, path: &mut Vec<String>, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((path.join("."), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                strings(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.push(key.clone());
                strings(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The templates of every string, each with its key path; the first bad expression is an error.
pub fn templates(with: &Value) -> Result<Vec<(String, Template)>, String> {
    let mut found = Vec::new();
    strings(with, &mut Vec::new(), &mut found);
    found
        .into_iter()
        .map(|(path, text)| {
            Template::parse(text)
                .map(|t| (path.clone(), t))
                .map_err(|e| format!("with.{path}: {e}"))
        })
        .collect()
}

/// The name an input gets from its key path: `candidate`, `body_model`.
pub fn input_name(path: &str) -> String {
    path.replace(['.', '-'], "_")
}

/// A string that is exactly `${{ steps.<id>.outputs.<name> }}`.
pub fn exact_output(template: &Template) -> Option<(String, String)> {
    template.as_expr()?;
    match template.refs().as_slice() {
        [Ref::Output { step, output }] if template.source.trim().starts_with("${{") => {
            Some((step.clone(), output.clone()))
        }
        _ => None,
    }
}

/// The key marking where an input goes until the attempt knows its path or value.
const INPUT_MARK: &str = "$input";

/// The `with:` as far as it is known before the step runs: expressions evaluated (one alone
/// keeps its JSON type), path arguments made absolute, and each input left as a
/// `{"$input": name}` mark for [`fill`]. This is what the cache key covers, beside the inputs'
/// digests.
pub fn render(with: &Value, scope: &dyn Scope, path_args: &[&str], repo: &Path) -> Value {
    render_at(with, scope, path_args, repo, &mut Vec::new())
}

fn render_at(
    value: &Value,
    scope: &dyn Scope,
    path_args: &[&str],
    repo: &Path,
    path: &mut Vec<String>,
) -> Value {
    match value {
        Value::String(text) => {
            let key = path.join(".");
            let Ok(template) = Template::parse(text) else {
                return value.clone();
            };
            if exact_output(&template).is_some() {
                return serde_json::json!({ INPUT_MARK: input_name(&key) });
            }
            if template.refs().is_empty() && path_args.contains(&key.as_str()) && !is_uri(text) {
                return Value::String(repo.join(text).display().to_string());
            }
            template.eval(scope)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(i.to_string());
                    let out = render_at(item, scope, path_args, repo, path);
                    path.pop();
                    out
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, item)| {
                    path.push(k.clone());
                    let out = render_at(item, scope, path_args, repo, path);
                    path.pop();
                    (k.clone(), out)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces each input mark by what `resolve` gives for its name (a path, or a value output's
/// JSON); an input it cannot resolve is an error naming it.
pub fn fill(value: &mut Value, resolve: &dyn Fn(&str) -> Option<Value>) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(Value::String(name)) = map.get(INPUT_MARK)
            {
                *value = resolve(name).ok_or_else(|| format!("input {name} is not available"))?;
                return Ok(());
            }
            map.values_mut().try_for_each(|v| fill(v, resolve))
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| fill(v, resolve)),
        _ => Ok(()),
    }
}

/// `models:/…`, `s3://…` and the like are locations, not repo paths.
pub fn is_uri(text: &str) -> bool {
    text.contains(":/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed;
    impl Scope for Fixed {
        fn get(&self, reference: &Ref) -> Value {
            match reference {
                Ref::Param(p) if p == "lr" => json!(0.1),
                _ => Value::Null,
            }
        }
    }

    #[test]
    fn renders_values_inputs_and_paths() {
        let with = json!({
            "candidate": "${{ steps.train.outputs.model }}",
            "lr": "${{ params.lr }}",
            "note": "lr is ${{ params.lr }}",
            "data": "data/holdout.parquet",
            "baseline": "models:/fraud@champion",
            "metrics": {"auc": {"threshold": 0.8}},
        });
        let found = templates(&with).unwrap();
        let exact: Vec<_> = found
            .iter()
            .filter_map(|(path, t)| exact_output(t).map(|o| (path.clone(), o)))
            .collect();
        assert_eq!(
            exact,
            [(
                "candidate".to_owned(),
                ("train".to_owned(), "model".to_owned())
            )]
        );
        let mut out = render(&with, &Fixed, &["data", "baseline"], Path::new("/repo"));
        assert_eq!(out["candidate"], json!({"$input": "candidate"}));
        assert_eq!(out["lr"], json!(0.1), "one expression keeps its JSON type");
        assert_eq!(out["note"], json!("lr is 0.1"));
        assert_eq!(out["data"], json!("/repo/data/holdout.parquet"));
        assert_eq!(out["baseline"], json!("models:/fraud@champion"));
        assert_eq!(out["metrics"]["auc"]["threshold"], json!(0.8));
        let mut missing = out.clone();
        assert_eq!(
            fill(&mut missing, &|_| None).unwrap_err(),
            "input candidate is not available"
        );
        fill(&mut out, &|name| {
            (name == "candidate").then(|| json!("/in/candidate"))
        })
        .unwrap();
        assert_eq!(out["candidate"], json!("/in/candidate"));
        assert!(
            templates(&json!({"x": "${{ params. }}"}))
                .unwrap_err()
                .starts_with("with.x:")
        );
    }
}

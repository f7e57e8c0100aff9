//! The rule for names that become part of URLs and storage paths (deployments, monitors):
//! ASCII letters, digits, '-', '_' and '.', so that a name needs no escaping in
//! `/v2/models/{name}` or `/monitors/{name}`. Feature repository definitions have their own,
//! wider rule (`twinloop-features`, `repo/load.rs`): it is a contract with existing repositories.

/// A name that breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name {name:?}: use letters, digits, '-', '_' or '.'")]
pub struct InvalidName {
    /// The kind of thing named (`"deployment"`, `"monitor"`).
    pub kind: &'static str,
    pub name: String,
}

/// Checks `name` of a `kind` of thing (`"deployment"`, `"monitor"`).
pub fn check_name(kind: &'static str, name: &str) -> Result<(), InvalidName> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || !name.chars().all(allowed) {
        return Err(InvalidName {
            kind,
            name: name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_dash_underscore_and_dot_only() {
        for good in ["fraud", "fraud-v2", "fraud_watch.prod", "A1"] {
            assert_eq!(check_name("deployment", good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a/b", "a:b", "é", "a?b", "a%2F"] {
            assert!(check_name("deployment", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_name("monitor", "a b").map_err(|e| e.to_string()),
            Err("monitor name \"a b\": use letters, digits, '-', '_' or '.'".into())
        );
    }
}

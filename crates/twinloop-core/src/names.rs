//! The rule for names that become part of URLs and storage paths (deployments, monitors):
//! ASCII letters, digits, '-', '_' and '.', so that a name needs no escaping in
//! `/v2/models/{name}` or `/monitors/{name}`. Feature repository definitions have their own,
//! wider rule (`twinloop-features`, `repo/load.rs`): it is a contract with existing repositories.

/// Checks `name`; the error names the `kind` of thing (`"deployment"`, `"monitor"`).
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || !name.chars().all(allowed) {
        return Err(format!(
            "{kind} name {name:?}: use letters, digits, '-', '_' or '.'"
        ));
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
            check_name("monitor", "a b"),
            Err("monitor name \"a b\": use letters, digits, '-', '_' or '.'".into())
        );
    }
}

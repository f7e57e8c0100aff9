//! The naming rules of definitions and projects: names become parts of feature references
//! (`view:feature`), online table names (`project/view/…`) and lineage ids.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("name {0:?} may not hold ':', '/' or spaces")]
    Separator(String),
    #[error("{0:?} must be letters, digits and '_', not starting with '_'")]
    Project(String),
}

/// Entity, source, view, feature and service names: anything but separators and spaces.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains(':') || name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(NameError::Separator(name.to_string()));
    }
    Ok(())
}

/// Project names: an identifier, as Feast requires.
pub fn check_project_name(name: &str) -> Result<(), NameError> {
    if name.is_empty()
        || name.starts_with('_')
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(NameError::Project(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_separators_and_projects_anything_but_identifiers() {
        assert_eq!(check_name("driver_stats-v2"), Ok(()));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(
            check_name("a:b").unwrap_err().to_string(),
            "name \"a:b\" may not hold ':', '/' or spaces"
        );
        assert!(check_name("a b").is_err() && check_name("a/b").is_err());
        assert_eq!(check_project_name("feast_demo1"), Ok(()));
        for bad in ["", "_x", "a-b"] {
            assert_eq!(check_project_name(bad), Err(NameError::Project(bad.into())));
        }
    }
}

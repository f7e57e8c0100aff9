use std::fmt;
use std::path::PathBuf;

use super::SourceError;

/// A model reference as MLflow writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    Alias { name: String, alias: String },
    Version { name: String, version: String },
    Run { run_id: String, path: String },
    Local(PathBuf),
}

impl ModelUri {
    pub fn parse(text: &str) -> Result<ModelUri, SourceError> {
        let bad = |why: &str| SourceError(format!("model URI {text:?}: {why}"));
        if let Some(rest) = text.strip_prefix("models:/") {
            if let Some((name, alias)) = rest.split_once('@') {
                if name.is_empty() || alias.is_empty() || alias.contains('/') {
                    return Err(bad("expected models:/NAME@ALIAS"));
                }
                return Ok(ModelUri::Alias {
                    name: name.into(),
                    alias: alias.into(),
                });
            }
            let (name, version) = rest
                .rsplit_once('/')
                .ok_or_else(|| bad("expected models:/NAME/VERSION or models:/NAME@ALIAS"))?;
            if name.is_empty() || version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad("expected models:/NAME/VERSION with a numeric version"));
            }
            return Ok(ModelUri::Version {
                name: name.into(),
                version: version.into(),
            });
        }
        if let Some(rest) = text.strip_prefix("runs:/") {
            let (run_id, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected runs:/RUN_ID/PATH"))?;
            if run_id.is_empty() || path.trim_matches('/').is_empty() {
                return Err(bad("expected runs:/RUN_ID/PATH"));
            }
            return Ok(ModelUri::Run {
                run_id: run_id.into(),
                path: path.trim_matches('/').into(),
            });
        }
        if text.contains(":/") && !text.starts_with("file://") {
            return Err(bad(
                "unsupported scheme; use models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH or a directory",
            ));
        }
        Ok(ModelUri::Local(PathBuf::from(
            text.strip_prefix("file://").unwrap_or(text),
        )))
    }

    /// The registered model's name, when the URI names one.
    pub fn registered_name(&self) -> Option<&str> {
        match self {
            ModelUri::Alias { name, .. } | ModelUri::Version { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelUri::Alias { name, alias } => write!(f, "models:/{name}@{alias}"),
            ModelUri::Version { name, version } => write!(f, "models:/{name}/{version}"),
            ModelUri::Run { run_id, path } => write!(f, "runs:/{run_id}/{path}"),
            ModelUri::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            ModelUri::parse("models:/fraud@champion").unwrap(),
            ModelUri::Alias {
                name: "fraud".into(),
                alias: "champion".into()
            }
        );
        assert_eq!(
            ModelUri::parse("models:/a/b/3").unwrap(),
            ModelUri::Version {
                name: "a/b".into(),
                version: "3".into()
            }
        );
        assert_eq!(
            ModelUri::parse("runs:/abc/model/").unwrap(),
            ModelUri::Run {
                run_id: "abc".into(),
                path: "model".into()
            }
        );
        assert_eq!(
            ModelUri::parse("file:///tmp/m").unwrap(),
            ModelUri::Local("/tmp/m".into())
        );
        assert_eq!(
            ModelUri::parse("./m").unwrap(),
            ModelUri::Local("./m".into())
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "models:/x",
            "models:/x/latest",
            "models:/@a",
            "runs:/abc",
            "s3://b/k",
            "models:/x@",
        ] {
            let err = ModelUri::parse(bad).unwrap_err();
            assert!(err.0.contains(bad), "{bad}: {err}");
        }
    }
}

//! Per-column overrides: the column type, the test, its threshold, and the expected range or
//! categories the quality checks use instead of the reference. A schema file is JSON:
//!
//! ```json
//! {"drift_share": 0.5,
//!  "columns": {"age": {"type": "num", "method": "psi", "threshold": 0.2, "min": 0, "max": 120},
//!              "country": {"type": "cat", "categories": ["DE", "FR"]},
//!              "comment": {"type": "skip"}}}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Error;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    #[serde(default)]
    pub drift_share: Option<f64>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSchema>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    /// "num", "cat", "text" or "skip".
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
}

impl Schema {
    pub fn load(path: &Path) -> Result<Schema, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
        let schema: Schema = serde_json::from_str(&text).map_err(|e| Error::NotASchema {
            path: path.display().to_string(),
            source: e,
        })?;
        schema.validate()?;
        Ok(schema)
    }

    pub fn validate(&self) -> Result<(), Error> {
        for (name, c) in &self.columns {
            if let Some(k) = &c.kind
                && !matches!(k.as_str(), "num" | "cat" | "text" | "skip")
            {
                return Err(Error::input(format!(
                    "schema column {name}: type {k:?} is not one of num, cat, text, skip"
                )));
            }
            if let Some(m) = &c.method
                && crate::stats::Test::parse(m).is_none()
            {
                return Err(Error::input(format!(
                    "schema column {name}: method {m:?} is not one of ks, chisquare, z, wasserstein, jensenshannon, psi"
                )));
            }
        }
        if let Some(s) = self.drift_share
            && !(0.0..=1.0).contains(&s)
        {
            return Err(Error::input("schema drift_share must be within [0, 1]"));
        }
        Ok(())
    }
}

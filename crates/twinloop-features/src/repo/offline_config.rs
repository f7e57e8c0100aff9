//! `twinloop.yaml`'s `offline_store`: where training sets are computed.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where `get-historical` runs the point-in-time join.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OfflineStoreConfig {
    /// In this process: the partitioned as-of join of `offline/`. (A struct variant, so that
    /// serde refuses fields it does not take.)
    Embedded {},
    /// As Spark SQL, in a job handed to `spark-submit`.
    Spark(SparkConfig),
}

impl Default for OfflineStoreConfig {
    fn default() -> Self {
        OfflineStoreConfig::Embedded {}
    }
}

/// How the Spark job is submitted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkConfig {
    /// spark-submit's `--master`: `local[*]`, `spark://host:7077`, `yarn`, `k8s://…`.
    #[serde(default = "local_master")]
    pub master: String,
    /// The `spark-submit` to run; `TWINLOOP_SPARK_SUBMIT` overrides it, and without either it
    /// is looked for on `PATH`.
    #[serde(default)]
    pub spark_submit: Option<String>,
    /// Spark properties, each passed as `--conf key=value`.
    #[serde(default)]
    pub conf: BTreeMap<String, ConfValue>,
}

impl Default for SparkConfig {
    fn default() -> Self {
        SparkConfig {
            master: local_master(),
            spark_submit: None,
            conf: BTreeMap::new(),
        }
    }
}

fn local_master() -> String {
    "local[*]".into()
}

/// A Spark property's value as YAML writes it: `spark.sql.shuffle.partitions: 8` is a number
/// there, and a string to Spark.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ConfValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ConfValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfValue::Bool(b) => write!(f, "{b}"),
            ConfValue::Int(n) => write!(f, "{n}"),
            ConfValue::Float(x) => write!(f, "{x}"),
            ConfValue::Text(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<OfflineStoreConfig, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn spark_takes_a_master_a_spark_submit_and_properties() {
        assert_eq!(
            parse("{type: embedded}"),
            Ok(OfflineStoreConfig::Embedded {})
        );
        assert_eq!(
            parse("{type: spark}"),
            Ok(OfflineStoreConfig::Spark(SparkConfig::default()))
        );
        let OfflineStoreConfig::Spark(spark) = parse(
            "type: spark\nmaster: spark://h:7077\nspark_submit: /opt/spark/bin/spark-submit\n\
             conf: {spark.sql.shuffle.partitions: 8, spark.driver.memory: 2g, spark.x: true}\n",
        )
        .unwrap() else {
            panic!("not spark");
        };
        assert_eq!(spark.master, "spark://h:7077");
        assert_eq!(
            spark.spark_submit.as_deref(),
            Some("/opt/spark/bin/spark-submit")
        );
        let conf: Vec<(String, String)> = spark
            .conf
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        assert_eq!(
            conf,
            [
                ("spark.driver.memory".to_string(), "2g".to_string()),
                ("spark.sql.shuffle.partitions".into(), "8".into()),
                ("spark.x".into(), "true".into()),
            ]
        );
    }

    #[test]
    fn unknown_types_and_fields_are_refused() {
        assert!(parse("{type: ballista}").is_err());
        assert!(parse("{type: spark, masterr: local}").is_err());
        assert!(parse("{type: embedded, master: local}").is_err());
    }
}

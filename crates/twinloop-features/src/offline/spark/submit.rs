//! Running the job: which `spark-submit`, with which arguments, and what a failure says.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use twinloop_core::{Error, Result};

use crate::repo::SparkConfig;

/// The environment variable that names the `spark-submit` to run, over the repository's.
const SPARK_SUBMIT_ENV: &str = "TWINLOOP_SPARK_SUBMIT";

/// Properties set before the repository's: no web UI (its port, its start-up time) and no
/// progress bars in the captured log.
const DEFAULTS: &[(&str, &str)] = &[
    ("spark.ui.enabled", "false"),
    ("spark.ui.showConsoleProgress", "false"),
];

/// Properties set after the repository's, because the join's meaning depends on them: times
/// without a zone are UTC as everywhere in twinloop, column names are case-sensitive as in
/// DataFusion, and times are written as Parquet's INT64 microseconds (not INT96).
const REQUIRED: &[(&str, &str)] = &[
    ("spark.sql.session.timeZone", "UTC"),
    ("spark.sql.caseSensitive", "true"),
    ("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"),
];

/// Where `s3://` sources live when it is not AWS itself, as the embedded engine sees it.
struct S3Settings {
    /// [`twinloop_artifacts::s3_endpoint`].
    endpoint: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    region: Option<String>,
}

impl S3Settings {
    fn from_env() -> S3Settings {
        S3Settings {
            endpoint: twinloop_artifacts::s3_endpoint(),
            region: std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
                .filter(|r| !r.is_empty()),
        }
    }

    /// Hadoop's S3A settings that point Spark at the same store, set before the repository's so
    /// that it can say otherwise. Credentials are not among them: S3A's default chain reads the
    /// same `AWS_*` variables from the job's environment, and a `--conf` would show a secret in
    /// the process list.
    fn hadoop_properties(&self) -> Vec<(String, String)> {
        let mut properties = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            let key = |k: &str| format!("spark.hadoop.fs.s3a.{k}");
            properties.push((key("endpoint"), endpoint.clone()));
            // A server of one's own (MinIO, moto) answers at one host, not at bucket.host.
            properties.push((key("path.style.access"), "true".into()));
            if endpoint.starts_with("http://") {
                properties.push((key("connection.ssl.enabled"), "false".into()));
            }
            if let Some(region) = &self.region {
                properties.push((key("endpoint.region"), region.clone()));
            }
        }
        properties
    }
}

/// spark-submit's arguments for the job.
fn arguments(config: &SparkConfig, s3: &S3Settings, job: &Path, plan: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--master".into(),
        config.master.clone().into(),
        "--name".into(),
        "twinloop-get-historical".into(),
    ];
    let user = config.conf.iter().map(|(k, v)| (k.clone(), v.to_string()));
    let conf = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(s3.hadoop_properties())
        .chain(user)
        .chain(REQUIRED.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    for (key, value) in conf {
        args.push("--conf".into());
        args.push(format!("{key}={value}").into());
    }
    args.push(job.into());
    args.push(plan.into());
    args
}

/// The `spark-submit` to run: `TWINLOOP_SPARK_SUBMIT`, else the repository's `spark_submit`,
/// else the first on `PATH`.
fn program(config: &SparkConfig, env: Option<OsString>) -> Result<PathBuf> {
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = &config.spark_submit {
        return Ok(PathBuf::from(path));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("spark-submit"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::invalid(
                "the Spark engine needs spark-submit: `pip install pyspark` brings one; name it \
                 with offline_store's spark_submit in twinloop.yaml or TWINLOOP_SPARK_SUBMIT, or \
                 put it on PATH",
            )
        })
}

/// The interpreter for the job when `PYSPARK_PYTHON` is not set: the Python beside
/// `spark-submit`, which is the one that has pyspark when both come from one virtual
/// environment (spark-submit would otherwise run whichever `python3` is first on PATH).
fn python_beside(program: &Path) -> Option<PathBuf> {
    let dir = program.parent()?;
    ["python3", "python"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// The `spark-submit` this process runs.
pub(super) fn configured_program(config: &SparkConfig) -> Result<PathBuf> {
    program(config, std::env::var_os(SPARK_SUBMIT_ENV))
}

/// Runs the job, its output captured in `log`. `Ok(Some(why))` when it ran and failed: the
/// lines of its log that say why.
pub(super) async fn run(
    program: &Path,
    config: &SparkConfig,
    job: &Path,
    plan: &Path,
    workdir: &Path,
    log: &Path,
) -> Result<Option<String>> {
    let log_file = std::fs::File::create(log)
        .map_err(|e| Error::internal("the Spark job's log").with_source(e))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| Error::internal("the Spark job's log").with_source(e))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments(config, &S3Settings::from_env(), job, plan))
        .current_dir(workdir)
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true);
    if std::env::var_os("PYSPARK_PYTHON").is_none()
        && let Some(python) = python_beside(program)
    {
        command.env("PYSPARK_PYTHON", python);
    }
    let status = command
        .status()
        .await
        .map_err(|e| Error::invalid(format!("cannot run {}", program.display())).with_source(e))?;
    if status.success() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    Ok(Some(format!("{status}: {}", why(&text))))
}

/// The lines of a failed job's log that say why: the last few naming an error or exception
/// (Python's traceback ends with the one raised), else the log's end.
fn why(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut causes: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("Exception:") || l.contains("Error:"))
        .collect();
    causes.dedup();
    let picked = if causes.is_empty() {
        &lines[lines.len().saturating_sub(10)..]
    } else {
        &causes[causes.len().saturating_sub(3)..]
    };
    picked.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::ConfValue;

    const AWS: S3Settings = S3Settings {
        endpoint: None,
        region: None,
    };

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn the_join_settings_come_after_the_repository_s() {
        let mut config = SparkConfig::default();
        config
            .conf
            .insert("spark.ui.enabled".into(), ConfValue::Bool(true));
        config.conf.insert(
            "spark.sql.session.timeZone".into(),
            ConfValue::Text("Europe/Paris".into()),
        );
        assert_eq!(
            strings(arguments(
                &config,
                &AWS,
                Path::new("/s/job.py"),
                Path::new("/s/p.json")
            )),
            [
                "--master",
                "local[*]",
                "--name",
                "twinloop-get-historical",
                "--conf",
                "spark.ui.enabled=false",
                "--conf",
                "spark.ui.showConsoleProgress=false",
                "--conf",
                "spark.sql.session.timeZone=Europe/Paris",
                "--conf",
                "spark.ui.enabled=true",
                "--conf",
                "spark.sql.session.timeZone=UTC",
                "--conf",
                "spark.sql.caseSensitive=true",
                "--conf",
                "spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS",
                "/s/job.py",
                "/s/p.json",
            ]
        );
    }

    #[test]
    fn a_local_s3_endpoint_reaches_hadoop_and_the_repository_can_override_it() {
        let mut config = SparkConfig::default();
        config.conf.insert(
            "spark.hadoop.fs.s3a.path.style.access".into(),
            ConfValue::Bool(false),
        );
        let s3 = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
        };
        let args = strings(arguments(&config, &s3, Path::new("j"), Path::new("p")));
        let conf: Vec<&str> = args
            .iter()
            .filter(|a| a.starts_with("spark.hadoop."))
            .map(String::as_str)
            .collect();
        assert_eq!(
            conf,
            [
                "spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:9000",
                "spark.hadoop.fs.s3a.path.style.access=true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled=false",
                "spark.hadoop.fs.s3a.endpoint.region=eu-west-1",
                // spark-submit keeps the last of a repeated property: the repository's.
                "spark.hadoop.fs.s3a.path.style.access=false",
            ]
        );
        assert!(
            !args
                .iter()
                .any(|a| a.contains("secret") || a.contains("access.key")),
            "credentials stay in the environment: {args:?}"
        );
    }

    #[test]
    fn the_environment_names_spark_submit_first() {
        let config = SparkConfig {
            spark_submit: Some("/opt/spark/bin/spark-submit".into()),
            ..SparkConfig::default()
        };
        assert_eq!(
            program(&config, Some("/venv/bin/spark-submit".into())).unwrap(),
            Path::new("/venv/bin/spark-submit")
        );
        assert_eq!(
            program(&config, Some("".into())).unwrap(),
            Path::new("/opt/spark/bin/spark-submit")
        );
    }

    #[test]
    fn a_failure_is_told_by_its_exception() {
        let log = "INFO SparkContext: Running Spark\nTraceback (most recent call last):\n  File \"job.py\"\n\
                   pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist\n";
        assert_eq!(
            why(log),
            "pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist"
        );
        assert_eq!(why("a\nb\n"), "a | b");
    }
}

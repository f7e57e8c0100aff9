//! `features.training-set@1`: a point-in-time-correct training set from the feature repository,
//! built by the same join as `twinloop features get-historical`, then split by time so that the
//! evaluation never sees a training row.

mod entities;
mod sources;
mod split;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;
use twinloop_features::offline::{HistoricalRequest, get_historical};
use twinloop_features::progress::Progress;
use twinloop_features::repo::{FeatureRef, FeatureRepo};
use twinloop_features::store::FeatureStore;

use super::{Ctx, Values};
pub(crate) use sources::source_digests;

/// Join partitions kept in memory before they spill to disk (the CLI's default is 2 GiB; a
/// pipeline step shares the machine with its neighbours).
const MEMORY_LIMIT: usize = 1 << 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "here")]
    repo: String,
    entities: PathBuf,
    features: Features,
    #[serde(default)]
    split: Option<Split>,
}

fn here() -> String {
    ".".into()
}

/// `service:<name>`, one reference or a comma-separated list, or a list of references
/// (`view:feature`, or a whole `view`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Features {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Split {
    holdout: String,
    #[serde(default = "event_timestamp")]
    by: String,
}

fn event_timestamp() -> String {
    "event_timestamp".into()
}

impl Features {
    pub(crate) fn resolve(&self, repo: &FeatureRepo) -> Result<Vec<FeatureRef>, String> {
        let resolved = match self {
            Features::One(text) => match text.trim().strip_prefix("service:") {
                Some(service) => repo.service_refs(service.trim()),
                None => repo.resolve_refs(&text.split(',').map(str::to_owned).collect::<Vec<_>>()),
            },
            Features::Many(refs) => repo.resolve_refs(refs),
        };
        resolved.map_err(|e| format!("with.features: {}", e.message))
    }
}

/// The feature repository named by `with.repo`, relative to the pipeline's repo.
pub(crate) fn feature_repo_dir(pipeline_repo: &Path, repo: &str) -> PathBuf {
    pipeline_repo.join(repo)
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: Args = ctx.args()?;
    let holdout = args
        .split
        .as_ref()
        .map(|s| parse_holdout(&s.holdout).map(|d| (d, s.by.clone())))
        .transpose()?;
    let job = Job {
        repo_dir: feature_repo_dir(ctx.repo, &args.repo),
        entities: args.entities,
        features: args.features,
        joined: ctx
            .outputs_dir
            .parent()
            .unwrap_or(&ctx.outputs_dir)
            .join("training_set.parquet"),
        train: ctx.output_path("train"),
        holdout_path: ctx.output_path("holdout"),
        holdout,
        store: ctx.services.map(|s| s.store.clone()),
        run_id: ctx.mlflow_run_id.map(str::to_owned),
    };
    // The join and the split read and write files synchronously between their awaits: they run
    // on the blocking pool, not on the scheduler's workers.
    let handle = tokio::runtime::Handle::current();
    let done = tokio::task::spawn_blocking(move || handle.block_on(job.run()))
        .await
        .map_err(|e| format!("the training set's worker stopped: {e}"))??;
    for line in &done.log {
        ctx.log.line(line);
    }
    Ok(Values::from([(
        "rows".to_owned(),
        json!({"train": done.train, "holdout": done.holdout}),
    )]))
}

/// `split.holdout` in microseconds; zero would leave the evaluation nothing.
fn parse_holdout(text: &str) -> Result<i64, String> {
    let duration =
        crate::duration::parse_duration(text).map_err(|e| format!("with.split.holdout: {e}"))?;
    let micros = i64::try_from(duration.as_micros())
        .map_err(|_| format!("with.split.holdout: {text:?} is too long"))?;
    if micros == 0 {
        return Err("with.split.holdout must be longer than zero".into());
    }
    Ok(micros)
}

struct Job {
    repo_dir: PathBuf,
    entities: PathBuf,
    features: Features,
    /// The whole joined set, before the split.
    joined: PathBuf,
    train: PathBuf,
    holdout_path: PathBuf,
    holdout: Option<(i64, String)>,
    /// The store the feature store records the retrieval in (registry and lineage): the run's.
    store: Option<twinloop_meta::StoreHandle>,
    /// The step's tracking run, which logs the training set as its dataset input.
    run_id: Option<String>,
}

struct Done {
    train: usize,
    holdout: usize,
    log: Vec<String>,
}

impl Job {
    async fn run(self) -> Result<Done, String> {
        let mut log = Vec::new();
        let entities = entities::entity_file(
            &self.entities,
            &self.joined.with_file_name("entities.parquet"),
        )?;
        let request = |repo: &FeatureRepo| -> Result<HistoricalRequest, String> {
            Ok(HistoricalRequest {
                entities: entities.clone(),
                features: self.features.resolve(repo)?,
                full_feature_names: false,
                timestamp_column: None,
                output: self.joined.clone(),
                memory_limit: MEMORY_LIMIT,
                progress: Progress::none(),
            })
        };
        let feature_error = |e: twinloop_core::Error| format!("training set: {}", e.message);
        let summary = if let Some(meta) = self.store.clone() {
            let store = FeatureStore::with_store(&self.repo_dir, meta).map_err(feature_error)?;
            let request = request(&store.repo)?;
            let summary = store
                .get_historical(&request, self.run_id.as_deref())
                .await
                .map_err(feature_error)?;
            log.push(format!(
                "recorded the training set in project {:?}'s lineage",
                store.repo.config.project
            ));
            summary
        } else {
            let repo = FeatureRepo::load(&self.repo_dir).map_err(feature_error)?;
            get_historical(&repo, &request(&repo)?)
                .await
                .map_err(feature_error)?
        };
        log.push(format!(
            "joined {} entity rows with {} features ({})",
            summary.rows,
            summary.feature_columns.len(),
            summary.feature_columns.join(", ")
        ));
        for ((view, matched), (_, read)) in summary.matched.iter().zip(&summary.source_rows) {
            log.push(format!(
                "  {view}: {matched} of {} rows found a value ({read} source rows read)",
                summary.rows
            ));
        }
        let counts = split::split(
            &self.joined,
            self.holdout.as_ref().map(|(d, by)| (*d, by.as_str())),
            &self.train,
            &self.holdout_path,
        )?;
        log.push(counts.describe());
        // Without lineage nothing names the joined file, so only the split copies are kept.
        if self.store.is_none() {
            std::fs::remove_file(&self.joined)
                .map_err(|e| format!("cannot remove {}: {e}", self.joined.display()))?;
        }
        Ok(Done {
            train: counts.train,
            holdout: counts.holdout,
            log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_a_positive_duration() {
        assert_eq!(parse_holdout("7d"), Ok(7 * 86_400 * 1_000_000));
        assert!(
            parse_holdout("0d")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            parse_holdout("seven days")
                .unwrap_err()
                .starts_with("with.split.holdout:")
        );
    }

    #[test]
    fn features_take_a_service_a_list_or_references() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("twinloop.yaml"), "project: t\n").unwrap();
        std::fs::write(
            dir.path().join("defs.yaml"),
            "entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: s, path: s.parquet, timestamp_field: ts}
feature_views:
  - name: v
    entities: [driver]
    source: s
    features:
      - {name: a, dtype: float64}
      - {name: b, dtype: int64}
feature_services:
  - {name: svc, features: ['v:b']}
",
        )
        .unwrap();
        let repo = FeatureRepo::load(dir.path()).unwrap();
        let names = |f: Features| -> Vec<String> {
            f.resolve(&repo)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(names(Features::One("service:svc".into())), ["v:b"]);
        assert_eq!(names(Features::One("v:a, v:b".into())), ["v:a", "v:b"]);
        assert_eq!(names(Features::Many(vec!["v".into()])), ["v:a", "v:b"]);
        let unknown = Features::One("service:nope".into())
            .resolve(&repo)
            .unwrap_err();
        assert!(unknown.contains("nope"), "{unknown}");
    }
}

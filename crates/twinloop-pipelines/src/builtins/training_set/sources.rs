//! What a training set depends on beyond its `with:` and entity file: the definitions of the
//! views it reads and the bytes of their sources. The engine adds these to the step's cache key,
//! so an edited view or a new source file re-runs the join and nothing else does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use twinloop_features::repo::FeatureRepo;

use super::{Features, feature_repo_dir};
use crate::cache::digest::{bytes_digest, entries_digest, file_digest, path_digest};

/// `definition:<view>` (the view, its source and entities as the registry would record them) and
/// `source:<path>` (the content of the source's files and of rows pushed to it) for every view
/// the step reads: all of the repository's when `features` is only known at run time. A remote
/// source (`s3://`) is keyed by its URL alone: its objects are not read to plan a step.
pub(crate) fn source_digests(
    with: &Value,
    pipeline_repo: &Path,
) -> Result<BTreeMap<String, String>, String> {
    let relative = with.get("repo").and_then(Value::as_str).unwrap_or(".");
    let dir = feature_repo_dir(pipeline_repo, relative);
    let repo = FeatureRepo::load(&dir).map_err(|e| format!("with.repo: {}", e.message))?;
    let views: BTreeSet<String> = match with
        .get("features")
        .and_then(|f| serde_json::from_value::<Features>(f.clone()).ok())
    {
        Some(features) => features
            .resolve(&repo)?
            .into_iter()
            .map(|r| r.view)
            .collect(),
        None => repo.views.iter().map(|v| v.name.clone()).collect(),
    };
    let shown = |path: &Path| {
        path.strip_prefix(pipeline_repo)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut out = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for name in &views {
        let Some(view) = repo.view(name) else {
            continue;
        };
        let source = repo.source(&view.source);
        let entities: Vec<_> = view
            .entities
            .iter()
            .filter_map(|e| repo.entity(e))
            .collect();
        let definition = serde_json::to_vec(&(view, source, entities))
            .map_err(|e| format!("cannot digest feature view {name}: {e}"))?;
        out.insert(format!("definition:{name}"), bytes_digest(&definition));
        if let Some(source) = source {
            sources.insert(source.name.clone());
        }
    }
    for source in sources.iter().filter_map(|name| repo.source(name)) {
        let (key, digest) = if source.path.contains("://") {
            (source.path.clone(), bytes_digest(source.path.as_bytes()))
        } else {
            let location = dir.join(&source.path);
            (shown(&location), location_digest(&dir, &source.path)?)
        };
        out.insert(format!("source:{key}"), digest);
        let pushed = twinloop_features::source::push_log_dir(&repo, &source.name);
        if pushed.is_dir() {
            let digest = path_digest(&pushed)
                .map_err(|e| format!("cannot read rows pushed to {}: {e}", source.name))?;
            out.insert(format!("source:{}", shown(&pushed)), digest);
        }
    }
    Ok(out)
}

/// A file, a directory or a glob, relative to the feature repository (or absolute).
fn location_digest(dir: &Path, path: &str) -> Result<String, String> {
    let read = |e: std::io::Error| format!("cannot read feature source {path}: {e}");
    if !path.contains(['*', '?']) {
        return path_digest(&dir.join(path)).map_err(read);
    }
    let (root, pattern) = match path.strip_prefix('/') {
        Some(rest) => (Path::new("/"), rest),
        None => (dir, path),
    };
    let files = crate::glob::expand(root, pattern).map_err(read)?;
    if files.is_empty() {
        return Err(format!("feature source {path} matches no file"));
    }
    let entries = files
        .into_iter()
        .map(|file| file_digest(&root.join(&file)).map(|d| (file, d)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(read)?;
    Ok(entries_digest(&entries))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DEFS: &str = "entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: trips, path: data/trips/*.parquet, timestamp_field: ts}
  - {name: ratings, path: data/ratings.parquet, timestamp_field: ts}
feature_views:
  - name: trip_stats
    entities: [driver]
    source: trips
    features: [{name: trips, dtype: int64}]
  - name: rating
    entities: [driver]
    source: ratings
    features: [{name: stars, dtype: float64}]
";

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let feat = dir.path().join("feat");
        std::fs::create_dir_all(feat.join("data/trips")).unwrap();
        std::fs::write(feat.join("twinloop.yaml"), "project: t\n").unwrap();
        std::fs::write(feat.join("defs.yaml"), DEFS).unwrap();
        std::fs::write(feat.join("data/trips/a.parquet"), "a").unwrap();
        std::fs::write(feat.join("data/ratings.parquet"), "r").unwrap();
        dir
    }

    #[test]
    fn only_the_views_read_and_their_sources_count() {
        let dir = repo();
        let with = json!({"repo": "feat", "features": ["trip_stats:trips"]});
        let before = source_digests(&with, dir.path()).unwrap();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            ["definition:trip_stats", "source:feat/data/trips/*.parquet"]
        );
        // Another view's source is not read: its change keeps the key.
        std::fs::write(dir.path().join("feat/data/ratings.parquet"), "r2").unwrap();
        assert_eq!(source_digests(&with, dir.path()).unwrap(), before);
        // A new file matching the glob is.
        std::fs::write(dir.path().join("feat/data/trips/b.parquet"), "b").unwrap();
        let after = source_digests(&with, dir.path()).unwrap();
        assert_ne!(
            after["source:feat/data/trips/*.parquet"],
            before["source:feat/data/trips/*.parquet"]
        );
        assert_eq!(
            after["definition:trip_stats"],
            before["definition:trip_stats"]
        );
    }

    #[test]
    fn a_view_definition_change_counts_and_unknown_features_are_named() {
        let dir = repo();
        let with = json!({"repo": "feat", "features": "rating:stars"});
        let before = source_digests(&with, dir.path()).unwrap();
        std::fs::write(
            dir.path().join("feat/defs.yaml"),
            DEFS.replace("dtype: float64", "dtype: float32"),
        )
        .unwrap();
        let after = source_digests(&with, dir.path()).unwrap();
        assert_ne!(after["definition:rating"], before["definition:rating"]);
        assert_eq!(
            after["source:feat/data/ratings.parquet"],
            before["source:feat/data/ratings.parquet"]
        );
        // Features only known when the step runs: every view counts.
        let upstream = json!({"repo": "feat", "features": {"$input": "features"}});
        assert_eq!(source_digests(&upstream, dir.path()).unwrap().len(), 4);
        let bad = json!({"repo": "feat", "features": "rating:nope"});
        assert!(
            source_digests(&bad, dir.path())
                .unwrap_err()
                .contains("nope")
        );
        let missing = json!({"repo": "nowhere", "features": "rating:stars"});
        assert!(
            source_digests(&missing, dir.path())
                .unwrap_err()
                .starts_with("with.repo:")
        );
    }
}

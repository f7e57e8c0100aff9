//! MLflow's validation rules for names, values and batch sizes, applied before anything is
//! written so that a rejected request leaves no partial record.

use twinloop_core::tracking::{Metric, Param, Tag};
use twinloop_core::{Error, Result};

pub const MAX_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_VALUE_LENGTH: usize = 20_000;
pub const MAX_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
/// MLflow's default for `MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH`, which its message tells users to
/// set, so it is read here too.
pub const MAX_ARTIFACT_LOCATION_LENGTH: usize = 2048;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_PER_BATCH: usize = 100;
pub const MAX_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_RESULTS_THRESHOLD: i64 = 50_000;

/// A key names a file-like path in MLflow's file store, so it must be a normalised relative path
/// of word characters, `.`, `-`, `/`, `:` and spaces.
pub fn validate_key(kind: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(format!(
            "Missing value for required parameter '{kind} key'"
        )));
    }
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(Error::invalid(format!(
            "{kind} name '{}...' exceeds the maximum length of {MAX_KEY_LENGTH} characters",
            key.chars().take(32).collect::<String>()
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ' ' | '/' | ':');
    if !key.chars().all(allowed) {
        return Err(Error::invalid(format!(
            "Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)."
        )));
    }
    if !is_normalised_relative_path(key) {
        return Err(Error::invalid(format!(
            "Invalid {kind} name: '{key}'. Names must be normalised relative paths: no leading '/', no '.' or '..' segments, no '//'."
        )));
    }
    Ok(())
}

fn is_normalised_relative_path(key: &str) -> bool {
    !key.starts_with('/')
        && !key.ends_with('/')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

pub fn validate_param(param: &Param) -> Result<()> {
    validate_key("param", &param.key)?;
    if param.value.chars().count() > MAX_PARAM_VALUE_LENGTH {
        return Err(Error::invalid(format!(
            "Param value for key '{}' had length {}, which exceeded length limit of {MAX_PARAM_VALUE_LENGTH}",
            param.key,
            param.value.chars().count()
        )));
    }
    Ok(())
}

pub fn validate_tag(tag: &Tag) -> Result<()> {
    validate_key("tag", &tag.key)?;
    if tag.value.chars().count() > MAX_TAG_VALUE_LENGTH {
        return Err(Error::invalid(format!(
            "Tag value for key '{}' had length {}, which exceeded length limit of {MAX_TAG_VALUE_LENGTH}",
            tag.key,
            tag.value.chars().count()
        )));
    }
    Ok(())
}

/// MLflow's message for a value past its limit (`exceeds_maximum_length`).
fn exceeds(what: &str, value: &str, limit: usize) -> Result<()> {
    if value.chars().count() > limit {
        return Err(Error::invalid(format!(
            "'{what}' exceeds the maximum length of {limit} characters"
        )));
    }
    Ok(())
}

/// An experiment's tag: a run tag's key, a longer value (MLflow's `_validate_experiment_tag`).
pub fn validate_experiment_tag(tag: &Tag) -> Result<()> {
    validate_key("tag", &tag.key)?;
    exceeds("value", &tag.value, MAX_EXPERIMENT_TAG_VALUE_LENGTH)
}

/// A registered model's or model version's tag (MLflow's `_validate_registered_model_tag`).
pub fn validate_registry_tag(tag: &Tag) -> Result<()> {
    validate_key("tag", &tag.key)?;
    exceeds("value", &tag.value, MAX_REGISTRY_TAG_VALUE_LENGTH)
}

/// An experiment's `artifact_location` (MLflow's `_validate_experiment_artifact_location_length`).
pub fn validate_artifact_location_length(location: &str) -> Result<()> {
    let max = std::env::var("MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(MAX_ARTIFACT_LOCATION_LENGTH);
    if location.chars().count() > max {
        return Err(Error::invalid(format!(
            "Invalid artifact path length. The length of the artifact path cannot be greater than {max} characters. To configure this limit, please set the MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH environment variable."
        )));
    }
    Ok(())
}

pub fn validate_metric(metric: &Metric) -> Result<()> {
    validate_key("metric", &metric.key)
}

pub fn validate_batch(metrics: &[Metric], params: &[Param], tags: &[Tag]) -> Result<()> {
    let limit = |what: &str, n: usize, max: usize| {
        if n > max {
            Err(Error::invalid(format!(
                "A batch logging request can contain at most {max} {what}. Got {n} {what}. Please split up {what} across multiple requests and try again."
            )))
        } else {
            Ok(())
        }
    };
    limit("metrics", metrics.len(), MAX_METRICS_PER_BATCH)?;
    limit("params", params.len(), MAX_PARAMS_PER_BATCH)?;
    limit("tags", tags.len(), MAX_TAGS_PER_BATCH)?;
    limit(
        "metrics, params, and tags",
        metrics.len() + params.len() + tags.len(),
        MAX_ENTITIES_PER_BATCH,
    )?;
    metrics.iter().try_for_each(validate_metric)?;
    params.iter().try_for_each(validate_param)?;
    tags.iter().try_for_each(validate_tag)?;
    for (i, p) in params.iter().enumerate() {
        if let Some(other) = params[..i].iter().find(|q| q.key == p.key) {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted: '{}' appears twice (values '{}' and '{}'). Please ensure the request contains only one param value per param key.",
                p.key, other.value, p.value
            )));
        }
    }
    Ok(())
}

pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(
            "Invalid experiment name: ''. Experiment names must be non-empty strings",
        ));
    }
    exceeds("name", name, MAX_EXPERIMENT_NAME_LENGTH)
}

/// Validates `max_results` of a search and returns it as a row count.
pub fn validate_max_results(max_results: i64) -> Result<u64> {
    if max_results <= 0 || max_results > MAX_RESULTS_THRESHOLD {
        return Err(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be a positive integer at most {MAX_RESULTS_THRESHOLD}"
        )));
    }
    Ok(max_results as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for ok in ["acc", "a/b", "loss: val", "m-1.x", "été"] {
            validate_key("metric", ok).unwrap();
        }
        for bad in ["", "../x", "/abs", "a//b", "a/./b", "x$", "a\\b", "a/"] {
            assert!(validate_key("metric", bad).is_err(), "{bad}");
        }
        assert!(validate_key("metric", &"k".repeat(251)).is_err());
    }

    #[test]
    fn value_lengths() {
        assert!(validate_param(&Tag::new("p", "v".repeat(6000))).is_ok());
        assert!(validate_param(&Tag::new("p", "v".repeat(6001))).is_err());
        assert!(validate_tag(&Tag::new("t", "v".repeat(8001))).is_err());
    }

    #[test]
    fn batch_limits_and_duplicates() {
        let metrics: Vec<_> = (0..1001).map(|i| Metric::new("m", 1.0, 0, i)).collect();
        assert!(validate_batch(&metrics, &[], &[]).is_err());
        assert!(validate_batch(&metrics[..1000], &[], &[]).is_ok());
        let dup = [Tag::new("p", "1"), Tag::new("p", "2")];
        assert!(validate_batch(&[], &dup, &[]).is_err());
    }

    #[test]
    fn max_results_bounds() {
        assert!(validate_max_results(0).is_err());
        assert!(validate_max_results(50_001).is_err());
        assert_eq!(validate_max_results(1000).unwrap(), 1000);
    }
}

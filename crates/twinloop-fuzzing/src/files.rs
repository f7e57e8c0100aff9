//! Files a user hands over: feature repository and pipeline YAML.

use std::path::Path;

use twinloop_features::repo::FeatureRepo;

/// A feature repository: the text before the first NUL byte is `twinloop.yaml`, the rest
/// `features.yaml`. Nothing is read from the directory named.
pub fn feature_repo(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (config, definitions) = text.split_once('\0').unwrap_or((text, ""));
    let _ = FeatureRepo::from_texts(
        Path::new("/nonexistent/repo"),
        &[
            ("twinloop.yaml".to_string(), config.to_string()),
            ("features.yaml".to_string(), definitions.to_string()),
        ],
    );
}

/// A pipeline file.
pub fn pipeline_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twinloop_pipelines::spec::parse("pipeline.yaml", text);
    }
}

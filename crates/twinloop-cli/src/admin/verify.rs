//! `twinloop admin verify`: every model version's files (its source) and its logged model's
//! files are in the artifact store. A restore, a bucket policy or a hand clean-up that lost
//! one shows here instead of at the next deployment.

use anyhow::{Result, bail};
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::registry::ModelVersion;
use twinloop_meta::{LoggedModelStore, ModelVersionStore, RegistryQuery, RunStore, SqlStore};

use super::{Stores, artifact_store, open_store, store_uri};
use crate::output::outln;

/// What one location turned out to be.
enum Found {
    Present,
    Missing,
    /// Outside the artifact store (a local path, another bucket, `models:/`): not checked.
    Elsewhere,
}

pub(super) async fn verify(stores: &Stores) -> Result<()> {
    let store = open_store(&store_uri(stores)?).await?;
    let artifacts = artifact_store(stores)?;
    let result = walk(&store, &artifacts).await;
    store.close().await;
    let (checked, elsewhere, missing) = result?;
    for line in &missing {
        outln!("missing: {line}");
    }
    outln!(
        "checked {checked} locations: {} missing, {elsewhere} outside the artifact store (not checked)",
        missing.len()
    );
    if !missing.is_empty() {
        bail!(
            "{} model files are missing from {}",
            missing.len(),
            artifacts.location()
        );
    }
    Ok(())
}

async fn walk(store: &SqlStore, artifacts: &ArtifactStore) -> Result<(u64, u64, Vec<String>)> {
    let failed = |e: twinloop_core::Error| anyhow::anyhow!("{}", e.message);
    let (mut checked, mut elsewhere, mut missing) = (0, 0, Vec::new());
    let mut page_token = None;
    loop {
        let page = store
            .search_model_versions(&RegistryQuery {
                filter: None,
                order_by: vec![],
                max_results: 1000,
                page_token: page_token.take(),
            })
            .await
            .map_err(failed)?;
        for version in &page.items {
            let mut locations = vec![(source_location(store, version).await, "source")];
            if let Some(id) = &version.model_id {
                let logged = store.get_logged_model(id, true).await.map_err(failed)?;
                locations.push((Some(logged.artifact_uri), "logged model"));
            }
            for (location, what) in locations {
                match check(artifacts, location.as_deref()).await? {
                    Found::Present => checked += 1,
                    Found::Elsewhere => elsewhere += 1,
                    Found::Missing => {
                        checked += 1;
                        missing.push(format!(
                            "{} version {} {what} {}",
                            version.name,
                            version.version,
                            location.unwrap_or_default()
                        ));
                    }
                }
            }
        }
        match page.next_page_token {
            Some(token) => page_token = Some(token),
            None => return Ok((checked, elsewhere, missing)),
        }
    }
}

/// The version's source as a stored location: `runs:/RUN/path` through the run's artifact URI.
async fn source_location(store: &SqlStore, version: &ModelVersion) -> Option<String> {
    let Some(rest) = version.source.strip_prefix("runs:/") else {
        return Some(version.source.clone());
    };
    let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let run = store.get_run(run_id).await.ok()?;
    Some(format!(
        "{}/{path}",
        run.info.artifact_uri.trim_end_matches('/')
    ))
}

async fn check(artifacts: &ArtifactStore, location: Option<&str>) -> Result<Found> {
    let Some(location) = location else {
        return Ok(Found::Missing);
    };
    let root = ArtifactPath::parse("").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let Ok(path) = ArtifactPath::in_location(location, &root) else {
        return Ok(Found::Elsewhere);
    };
    // A model is a directory (MLmodel and its files) or, for some flavours, one file.
    let present = !artifacts.list(&path).await.unwrap_or_default().is_empty()
        || artifacts.get(&path).await.is_ok();
    Ok(if present {
        Found::Present
    } else {
        Found::Missing
    })
}

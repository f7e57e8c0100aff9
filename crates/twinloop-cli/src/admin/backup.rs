//! Backup and restore. A backup is a directory: `backup.json` (what it holds), the metadata
//! snapshot (`metadata.sqlite` or `metadata.pgdump`) and `artifacts/`. It is written under a
//! temporary name and renamed when complete, so a directory with the backup's name is whole.
//! The metadata is copied first and the artifacts after it: every file the snapshot names was
//! written before the snapshot, so it is in the copy (MLflow's servers never rewrite one).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::error::ErrorKind;
use twinloop_meta::StoreUri;

use super::{Stores, artifact_store, open_store, store_uri};
use crate::output::outln;

const MANIFEST: &str = "backup.json";
const SQLITE_FILE: &str = "metadata.sqlite";
const PG_FILE: &str = "metadata.pgdump";

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    twinloop: String,
    created_ms: i64,
    /// `sqlite` or `postgresql`: which store the snapshot restores into.
    backend: String,
    metadata: String,
    artifact_files: u64,
    artifact_bytes: u64,
}

pub(super) async fn backup(stores: &Stores, to: &Path) -> Result<()> {
    if to.exists() {
        bail!(
            "{} already exists (hint: name a new directory)",
            to.display()
        );
    }
    let uri = store_uri(stores)?;
    let source = artifact_store(stores)?;
    let partial = partial_name(to);
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove an unfinished backup {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let manifest = match write_backup(&uri, &source, &partial).await {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), to.display()))?;
    outln!(
        "backup {}: {} metadata, {} artifact files ({} bytes)",
        to.display(),
        manifest.backend,
        manifest.artifact_files,
        manifest.artifact_bytes
    );
    Ok(())
}

async fn write_backup(uri: &StoreUri, source: &ArtifactStore, partial: &Path) -> Result<Manifest> {
    let created_ms = chrono::Utc::now().timestamp_millis();
    let (backend, metadata) = match uri {
        StoreUri::Sqlite(path) => {
            snapshot_sqlite(path.clone(), partial.join(SQLITE_FILE)).await?;
            ("sqlite", SQLITE_FILE)
        }
        StoreUri::Postgres(url) => {
            pg_tool(
                Command::new("pg_dump")
                    .args(["--format=custom", "--no-owner", "--file"])
                    .arg(partial.join(PG_FILE))
                    .arg(format!("--dbname={url}")),
                "pg_dump",
            )?;
            ("postgresql", PG_FILE)
        }
    };
    let copy = ArtifactStore::open(&partial.join("artifacts").display().to_string())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let (artifact_files, artifact_bytes) = copy_tree(source, &copy).await?;
    let manifest = Manifest {
        format: 1,
        twinloop: env!("CARGO_PKG_VERSION").to_string(),
        created_ms,
        backend: backend.to_string(),
        metadata: metadata.to_string(),
        artifact_files,
        artifact_bytes,
    };
    std::fs::write(
        partial.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    std::fs::File::open(partial)?.sync_all()?;
    Ok(manifest)
}

pub(super) async fn restore(stores: &Stores, from: &Path) -> Result<()> {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(from.join(MANIFEST)).with_context(|| {
            format!(
                "{} is not a twinloop backup (no {MANIFEST})",
                from.display()
            )
        })?)
        .with_context(|| format!("{}: unreadable {MANIFEST}", from.display()))?;
    let uri = store_uri(stores)?;
    let target = artifact_store(stores)?;
    let root = ArtifactPath::parse("").map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if !target
        .list(&root)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
        .is_empty()
    {
        bail!(
            "the artifact store {} is not empty (hint: restore into a new --artifacts-destination)",
            target.location()
        );
    }
    let snapshot = from.join(&manifest.metadata);
    match (&uri, manifest.backend.as_str()) {
        (StoreUri::Sqlite(path), "sqlite") => {
            if path.exists() {
                bail!(
                    "{} already exists (hint: restore into a new --backend-store-uri)",
                    path.display()
                );
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let partial = partial_name(path);
            std::fs::copy(&snapshot, &partial)
                .with_context(|| format!("cannot copy {}", snapshot.display()))?;
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, path)?;
        }
        (StoreUri::Postgres(url), "postgresql") => pg_tool(
            Command::new("pg_restore")
                .args(["--no-owner", "--single-transaction", "--exit-on-error"])
                .arg(format!("--dbname={url}"))
                .arg(&snapshot),
            "pg_restore (hint: restore into an empty database)",
        )?,
        (_, backend) => bail!(
            "this backup holds a {backend} store; restore it into a {backend} --backend-store-uri"
        ),
    }
    // Opening applies the migrations a newer twinloop has beyond the backup's.
    open_store(&uri).await?.close().await;
    let source = ArtifactStore::open(&from.join("artifacts").display().to_string())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let (files, bytes) = copy_tree(&source, &target).await?;
    outln!(
        "restored {}: {} metadata, {files} artifact files ({bytes} bytes)",
        from.display(),
        manifest.backend
    );
    Ok(())
}

/// A consistent copy of a live SQLite database: VACUUM INTO reads one snapshot (WAL
/// included) while the server goes on writing, and writes a compacted file.
async fn snapshot_sqlite(db: PathBuf, target: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || -> Result<()> {
        if !db.exists() {
            bail!(
                "{} does not exist (hint: check --backend-store-uri)",
                db.display()
            );
        }
        let conn = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open {}", db.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute("VACUUM INTO ?1", [target.display().to_string()])
            .with_context(|| format!("cannot snapshot {}", db.display()))?;
        std::fs::File::open(&target)?.sync_all()?;
        Ok(())
    })
    .await?
}

/// Copies every file of `from` into `to`, one directory listing at a time; returns the count
/// and bytes copied.
async fn copy_tree(from: &ArtifactStore, to: &ArtifactStore) -> Result<(u64, u64)> {
    let failed = |e: twinloop_core::Error| anyhow::anyhow!("{}", e.message);
    let mut dirs = vec![ArtifactPath::parse("").map_err(failed)?];
    let (mut files, mut bytes) = (0, 0);
    while let Some(dir) = dirs.pop() {
        for entry in from.list(&dir).await.map_err(failed)? {
            let path = dir.join(&ArtifactPath::parse(&entry.path).map_err(failed)?);
            if entry.is_dir {
                dirs.push(path);
                continue;
            }
            // A file listed but gone (an upload's staging name, renamed when it completed) is
            // not one the metadata snapshot can name.
            let file = match from.get(&path).await {
                Ok(file) => file,
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(failed(e)),
            };
            bytes += to.put(&path, file.stream).await.map_err(failed)?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

fn pg_tool(command: &mut Command, what: &str) -> Result<()> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {what} (hint: install PostgreSQL's client tools)"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

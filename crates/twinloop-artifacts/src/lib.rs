//! Artifact storage: files under one root, on a local directory or an S3-compatible bucket,
//! through `object_store`. Every path a caller passes is an [`ArtifactPath`], which cannot name
//! anything outside the root.

mod path;

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use twinloop_core::{Error, Result};

pub use path::{ArtifactPath, INTERNAL};

/// One entry of a directory listing, with its path relative to the listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// One page of a directory listing; `next_page_token` is set when entries remain after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPage {
    pub entries: Vec<ArtifactEntry>,
    pub next_page_token: Option<String>,
}

impl ArtifactPage {
    /// The page of sorted `entries` that follows `page_token`, at most `max` (at least one) long.
    /// The token is the last path of the previous page, so a page stays right when entries are
    /// added or removed between requests, and any string is a valid token.
    fn of(entries: Vec<ArtifactEntry>, page_token: Option<&str>, max: usize) -> ArtifactPage {
        let start = page_token.map_or(0, |after| {
            entries.partition_point(|e| e.path.as_str() <= after)
        });
        let mut entries = entries;
        let mut rest = entries.split_off(start);
        let more = rest.len() > max.max(1);
        rest.truncate(max.max(1));
        let next_page_token = more.then(|| rest.last().map(|e| e.path.clone())).flatten();
        ArtifactPage {
            entries: rest,
            next_page_token,
        }
    }
}

pub struct ArtifactFile {
    pub size: u64,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    location: String,
    /// Set for a local directory, where deleting must also remove emptied directories.
    local_root: Option<std::path::PathBuf>,
    /// The same local directory as `store`, for where a path lies on disk: object_store
    /// percent-encodes characters such as `%` or `?` in file names, so the file of
    /// `a%3F/b` is not `root/a%3F/b`.
    local_fs: Option<Arc<LocalFileSystem>>,
}

fn store_err(e: object_store::Error) -> Error {
    match e {
        // A local store reports the file's absolute path on the server: a client learns nothing
        // from it but where the server keeps its data.
        object_store::Error::NotFound { path, .. } if path.starts_with('/') => {
            Error::not_found("Artifact not found")
        }
        object_store::Error::NotFound { path, .. } => {
            Error::not_found(format!("Artifact not found: {path}"))
        }
        other => Error::internal_from("artifact store error", other),
    }
}

/// How the S3 client retries 5xx, 429, 408 and dropped connections. object_store's default
/// (10 retries within 3 minutes, back-off up to 15 s, each attempt up to 30 s) keeps a client's
/// request open for minutes when the bucket is unreachable or hangs: the MLflow client gives up
/// after 120 s and sends it again, while the first still holds an artifact-transfer slot. Ten
/// retries within 30 s, back-off capped at 5 s, still carry a request through a burst of faults
/// (at a 25 % fault rate, eleven in a row fail one request in four million) and answer an error
/// within a minute when the bucket is gone.
const RETRY: object_store::RetryConfig = object_store::RetryConfig {
    backoff: object_store::BackoffConfig {
        init_backoff: std::time::Duration::from_millis(100),
        max_backoff: std::time::Duration::from_secs(5),
        base: 2.0,
    },
    max_retries: 10,
    retry_timeout: std::time::Duration::from_secs(30),
};

/// The S3 endpoint named by the environment: `MLFLOW_S3_ENDPOINT_URL` (as in MLflow), else
/// `AWS_ENDPOINT_URL`; `None` for AWS itself. Everything that reaches `s3://` (this crate's
/// client, the Spark job's Hadoop settings) takes it from here.
pub fn s3_endpoint() -> Option<String> {
    std::env::var("MLFLOW_S3_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty())
}

/// A client of S3 bucket `bucket`, for artifacts and for anything else read from `s3://`
/// (feature sources): credentials and region from the usual `AWS_*` variables, the endpoint from
/// [`s3_endpoint`]; plain HTTP only when the endpoint says `http://` (a local S3-compatible
/// server).
pub fn s3_bucket(bucket: &str) -> object_store::Result<AmazonS3> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RETRY);
    if let Some(endpoint) = s3_endpoint() {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    builder.build()
}

impl ArtifactStore {
    /// Opens `destination`: a local directory (created if missing; `file://` accepted) or
    /// `s3://bucket[/prefix]` (set up by [`s3_bucket`]).
    pub fn open(destination: &str) -> Result<ArtifactStore> {
        if let Some(rest) = destination.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::invalid(format!(
                    "invalid artifact destination {destination:?}: expected s3://bucket/prefix"
                )));
            }
            let s3 = s3_bucket(bucket)
                .map_err(|e| Error::invalid(format!("cannot use {destination}")).with_source(e))?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            };
            return Ok(ArtifactStore {
                store,
                location: destination.to_string(),
                local_root: None,
                local_fs: None,
            });
        }
        let dir = destination.strip_prefix("file://").unwrap_or(destination);
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::invalid(format!("cannot create artifact directory {dir:?}")).with_source(e)
        })?;
        let local = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
            Error::invalid(format!("cannot use artifact directory {dir:?}")).with_source(e)
        })?;
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.into());
        let local = Arc::new(local);
        Ok(ArtifactStore {
            store: local.clone(),
            location: root.display().to_string(),
            local_root: Some(root),
            local_fs: Some(local),
        })
    }

    /// Whether `path`, in a local root, passes through or is a symbolic link. Links are never
    /// followed: one planted in the root (by a client with file-system access, or a restored
    /// backup) would otherwise serve, list, overwrite or delete files outside it.
    async fn through_link(&self, path: &ArtifactPath) -> bool {
        let Some(root) = &self.local_root else {
            return false;
        };
        let mut at = root.clone();
        for segment in path.as_str().split('/').filter(|s| !s.is_empty()) {
            at.push(segment);
            match tokio::fs::symlink_metadata(&at).await {
                Ok(meta) if meta.file_type().is_symlink() => return true,
                Ok(_) => {}
                // Nothing further exists, so nothing further is a link.
                Err(_) => return false,
            }
        }
        false
    }

    fn refuse_links(path: &ArtifactPath) -> Error {
        Error::not_found(format!("Artifact not found: {}", path.as_str()))
    }

    /// Where the artifacts live, for logs and `--help` output.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Streams `body` into `path`. The object appears only when the whole body has arrived:
    /// a failed or cut-off upload leaves nothing behind.
    pub async fn put<S, E>(&self, path: &ArtifactPath, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: Into<twinloop_core::error::BoxError>,
    {
        let file = path.require_file()?;
        if self.through_link(path).await {
            return Err(Error::invalid(format!(
                "Invalid path {:?}: it passes through a symbolic link",
                path.as_str()
            )));
        }
        let on_disk = match &self.local_fs {
            Some(fs) => Some(fs.path_to_filesystem(&file).map_err(store_err)?),
            None => None,
        };
        let mut writer = BufWriter::new(self.store.clone(), file);
        let mut body = std::pin::pin!(body);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::invalid("upload interrupted").with_source(e));
                }
            };
            written += chunk.len() as u64;
            if let Err(e) = writer.write_all(&chunk).await {
                let _ = writer.abort().await;
                return Err(Error::internal_from("cannot write artifact", e));
            }
        }
        writer
            .shutdown()
            .await
            .map_err(|e| Error::internal_from("cannot write artifact", e))?;
        if let (Some(root), Some(file)) = (&self.local_root, on_disk) {
            let (root, synced) = (root.clone(), file.clone());
            let durable = tokio::task::spawn_blocking(move || sync_to_disk(&root, &synced))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(e) = durable {
                // What the disk holds of it is unknown: an upload that was not acknowledged must
                // not stay readable as if it were whole.
                let _ = tokio::fs::remove_file(&file).await;
                return Err(Error::internal_from("cannot write artifact", e));
            }
        }
        Ok(written)
    }

    /// Opens the file at `path`. A directory is refused as an invalid argument, not reported
    /// missing, as MLflow's server does.
    pub async fn get(&self, path: &ArtifactPath) -> Result<ArtifactFile> {
        if self.through_link(path).await {
            return Err(Self::refuse_links(path));
        }
        let result = match self.store.get(&path.require_file()?).await {
            Ok(result) => result,
            Err(e @ object_store::Error::NotFound { .. }) => {
                if self.is_dir(path).await? {
                    return Err(Error::invalid(format!(
                        "Artifact path refers to a directory, not a file: '{}'",
                        path.as_str()
                    )));
                }
                return Err(store_err(e));
            }
            Err(e) => return Err(store_err(e)),
        };
        let size = result.meta.size;
        let stream = result.into_stream().map_err(store_err).boxed();
        Ok(ArtifactFile { size, stream })
    }

    /// Copies the file at `path` to the local file `to`, for readers that need to seek (a
    /// Parquet footer is at the end); returns its size. Refused as [`get`](Self::get) refuses.
    pub async fn copy_to_file(&self, path: &ArtifactPath, to: &std::path::Path) -> Result<u64> {
        let mut stream = self.get(path).await?.stream;
        let local_err = |e: std::io::Error| Error::internal_from("cannot write a local copy", e);
        let mut out = tokio::fs::File::create(to).await.map_err(local_err)?;
        let mut written = 0;
        while let Some(chunk) = stream.try_next().await? {
            out.write_all(&chunk).await.map_err(local_err)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(local_err)?;
        Ok(written)
    }

    /// Lists the direct children of directory `dir`. A missing directory, or a path naming a
    /// file, lists as empty, as MLflow's artifact API does.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<ArtifactEntry>> {
        if self.through_link(dir).await {
            return Ok(Vec::new());
        }
        let prefix = dir.object_path();
        let listing = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(store_err)?;
        let relative = |p: &object_store::path::Path| -> String {
            let full = p.as_ref();
            match dir.as_str() {
                "" => full.to_string(),
                d => full
                    .strip_prefix(d)
                    .map(|s| s.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| full.to_string()),
            }
        };
        let mut entries: Vec<ArtifactEntry> = listing
            .common_prefixes
            .iter()
            .map(|p| ArtifactEntry {
                path: relative(p),
                is_dir: true,
                size: None,
            })
            .chain(listing.objects.iter().map(|o| ArtifactEntry {
                path: relative(&o.location),
                is_dir: false,
                size: Some(o.size),
            }))
            .filter(|e| !e.path.is_empty())
            .collect();
        if let Some(root) = &self.local_root {
            let mut kept = Vec::with_capacity(entries.len());
            for entry in entries {
                let full = root.join(dir.as_str()).join(&entry.path);
                let link = tokio::fs::symlink_metadata(&full)
                    .await
                    .is_ok_and(|m| m.file_type().is_symlink());
                if !link {
                    kept.push(entry);
                }
            }
            entries = kept;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// One page of [`list`](Self::list): at most `max` entries after `page_token` (a previous
    /// page's `next_page_token`).
    pub async fn list_page(
        &self,
        dir: &ArtifactPath,
        page_token: Option<&str>,
        max: usize,
    ) -> Result<ArtifactPage> {
        Ok(ArtifactPage::of(self.list(dir).await?, page_token, max))
    }

    async fn is_dir(&self, path: &ArtifactPath) -> Result<bool> {
        let listing = self
            .store
            .list_with_delimiter(path.object_path().as_ref())
            .await
            .map_err(store_err)?;
        Ok(!listing.objects.is_empty() || !listing.common_prefixes.is_empty())
    }

    /// Deletes a file, or a directory with everything under it.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        let target = path.require_file()?;
        if self.through_link(path).await {
            return Err(Self::refuse_links(path));
        }
        if let Some(root) = &self.local_root {
            let full = root.join(path.as_str());
            let removed = match tokio::fs::metadata(&full).await {
                Ok(meta) if meta.is_dir() => tokio::fs::remove_dir_all(&full).await,
                Ok(_) => tokio::fs::remove_file(&full).await,
                Err(_) => Ok(()),
            };
            return removed.map_err(|e| Error::internal_from("cannot delete artifact", e));
        }
        let under: Vec<_> = self
            .store
            .list(Some(&target))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(store_err)?;
        if under.is_empty() {
            return match self.store.delete(&target).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(store_err(e)),
            };
        }
        for location in under {
            self.store.delete(&location).await.map_err(store_err)?;
        }
        Ok(())
    }
}

/// fsyncs `file` and every directory from its own up to `root`: object_store renames a finished
/// upload into place and syncs nothing, so without this an acknowledged artifact (or a directory
/// created for it) could be lost with the page cache. An error is never retried: after a failed
/// fsync the kernel may have dropped the unwritten pages and a second fsync would succeed
/// without them (PostgreSQL's fsyncgate).
fn sync_to_disk(root: &std::path::Path, file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    let mut dir = file.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root)) {
        std::fs::File::open(d)?.sync_all()?;
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = std::result::Result<Bytes, String>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    async fn read(store: &ArtifactStore, path: &str) -> Vec<u8> {
        let file = store
            .get(&ArtifactPath::parse(path).unwrap())
            .await
            .unwrap();
        let parts: Vec<Bytes> = file.stream.try_collect().await.unwrap();
        parts.concat()
    }

    #[tokio::test]
    async fn put_list_get_delete_on_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let p = |s: &str| ArtifactPath::parse(s).unwrap();
        store
            .put(&p("1/run/artifacts/a.txt"), chunks(&["hel", "lo"]))
            .await
            .unwrap();
        store
            .put(&p("1/run/artifacts/sub/b c.txt"), chunks(&["x"]))
            .await
            .unwrap();
        assert_eq!(read(&store, "1/run/artifacts/a.txt").await, b"hello");
        let listing = store.list(&p("1/run/artifacts")).await.unwrap();
        assert_eq!(
            listing,
            vec![
                ArtifactEntry {
                    path: "a.txt".into(),
                    is_dir: false,
                    size: Some(5)
                },
                ArtifactEntry {
                    path: "sub".into(),
                    is_dir: true,
                    size: None
                },
            ]
        );
        assert!(
            store
                .list(&p("1/run/artifacts/a.txt"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.list(&p("nope")).await.unwrap().is_empty());
        store.delete(&p("1/run/artifacts/sub")).await.unwrap();
        assert_eq!(store.list(&p("1/run/artifacts")).await.unwrap().len(), 1);
        let missing = store
            .get(&p("1/run/artifacts/sub/b c.txt"))
            .await
            .err()
            .unwrap();
        assert_eq!(missing.kind, twinloop_core::ErrorKind::NotFound);
    }

    fn entries(names: &[&str]) -> Vec<ArtifactEntry> {
        names
            .iter()
            .map(|n| ArtifactEntry {
                path: n.to_string(),
                is_dir: false,
                size: Some(1),
            })
            .collect()
    }

    fn paths(page: &ArtifactPage) -> Vec<&str> {
        page.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn pages_follow_the_last_path_of_the_previous_page() {
        let all = entries(&["a", "b", "c", "d", "e"]);
        let first = ArtifactPage::of(all.clone(), None, 2);
        assert_eq!(paths(&first), ["a", "b"]);
        assert_eq!(first.next_page_token.as_deref(), Some("b"));
        let second = ArtifactPage::of(all.clone(), Some("b"), 2);
        assert_eq!(paths(&second), ["c", "d"]);
        let last = ArtifactPage::of(all.clone(), Some("d"), 2);
        assert_eq!(paths(&last), ["e"]);
        assert_eq!(last.next_page_token, None);
        // exactly full: no token pointing at an empty page
        let whole = ArtifactPage::of(all.clone(), None, 5);
        assert_eq!((whole.entries.len(), whole.next_page_token), (5, None));
        // a token between names (an entry deleted meanwhile) and one past the end
        assert_eq!(
            paths(&ArtifactPage::of(all.clone(), Some("bb"), 9)),
            ["c", "d", "e"]
        );
        assert!(
            ArtifactPage::of(all.clone(), Some("z"), 9)
                .entries
                .is_empty()
        );
        // a page size of 0 still makes progress
        assert_eq!(paths(&ArtifactPage::of(all, None, 0)), ["a"]);
    }

    #[tokio::test]
    async fn a_directory_is_not_a_file_and_lists_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let p = |s: &str| ArtifactPath::parse(s).unwrap();
        for name in ["r/d/x.txt", "r/a.txt", "r/b.txt"] {
            store.put(&p(name), chunks(&["x"])).await.unwrap();
        }
        let err = store.get(&p("r/d")).await.err().unwrap();
        assert_eq!(err.kind, twinloop_core::ErrorKind::InvalidArgument);
        assert_eq!(
            err.message,
            "Artifact path refers to a directory, not a file: 'r/d'"
        );
        let missing = store.get(&p("r/none")).await.err().unwrap();
        assert_eq!(missing.kind, twinloop_core::ErrorKind::NotFound);

        let first = store.list_page(&p("r"), None, 2).await.unwrap();
        assert_eq!(paths(&first), ["a.txt", "b.txt"]);
        let rest = store
            .list_page(&p("r"), first.next_page_token.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!(paths(&rest), ["d"]);
        assert!(rest.entries[0].is_dir && rest.next_page_token.is_none());
    }

    #[tokio::test]
    async fn a_broken_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let body = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err("connection reset".to_string()),
        ]);
        let path = ArtifactPath::parse("x/y.bin").unwrap();
        let err = store.put(&path, body).await.unwrap_err();
        assert_eq!(err.message, "upload interrupted: connection reset");
        assert!(std::error::Error::source(&err).is_some());
        assert!(store.get(&path).await.is_err());
    }

    #[tokio::test]
    async fn links_in_the_root_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "SECRET").unwrap();
        let root = dir.path().join("root");
        let store = ArtifactStore::open(root.to_str().unwrap()).unwrap();
        let p = |s: &str| ArtifactPath::parse(s).unwrap();
        store.put(&p("1/a.txt"), chunks(&["a"])).await.unwrap();
        std::os::unix::fs::symlink(&outside, root.join("1/dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("1/file")).unwrap();
        for path in ["1/dir/secret", "1/file"] {
            assert!(store.get(&p(path)).await.is_err(), "{path}");
            assert!(store.delete(&p(path)).await.is_err(), "{path}");
            assert!(store.put(&p(path), chunks(&["x"])).await.is_err(), "{path}");
        }
        assert!(store.list(&p("1/dir")).await.unwrap().is_empty());
        let names: Vec<String> = store
            .list(&p("1"))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, ["a.txt"]);
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "SECRET"
        );
    }
}

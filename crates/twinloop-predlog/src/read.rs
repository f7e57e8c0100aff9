//! Reading a deployment's log back from the artifact store.

use bytes::Bytes;
use futures::TryStreamExt;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};
use twinloop_core::ErrorKind;

use crate::PredlogError;
use crate::schema::Row;
use crate::segment::{self, ROOT};

/// Segment files of `deployment` with their first row's time, oldest first.
pub async fn segments(
    store: &ArtifactStore,
    deployment: &str,
) -> Result<Vec<(i64, String)>, PredlogError> {
    let root = format!("{ROOT}/{deployment}");
    let days = match store.list(&ArtifactPath::parse(&root)?).await {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for day in days.into_iter().filter(|d| d.is_dir) {
        let dir = format!("{root}/{}", day.path);
        for f in store.list(&ArtifactPath::parse(&dir)?).await? {
            if let (false, Some(first)) = (f.is_dir, segment::first_time(&f.path)) {
                out.push((first, format!("{dir}/{}", f.path)));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every row of `deployment` with `time > after_us`, in time order. A segment is skipped when
/// the next one starts at or before `after_us` (a deployment's segments are written in time
/// order).
pub async fn read_after(
    store: &ArtifactStore,
    deployment: &str,
    after_us: i64,
) -> Result<Vec<Row>, PredlogError> {
    let files = segments(store, deployment).await?;
    let mut rows = Vec::new();
    for (i, (_, path)) in files.iter().enumerate() {
        if files.get(i + 1).is_some_and(|(next, _)| *next <= after_us) {
            continue;
        }
        let file = store.get(&ArtifactPath::parse(path)?).await?;
        let chunks: Vec<Bytes> = file.stream.try_collect().await?;
        let decoded = segment::decode(Bytes::from(chunks.concat()), path)?;
        rows.extend(decoded.into_iter().filter(|r| r.time_us > after_us));
    }
    rows.sort_by_key(|r| r.time_us);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Role, Status};
    use crate::segment::tests::row;

    #[tokio::test]
    async fn rows_after_a_time_come_back_in_time_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap()).unwrap();
        let day = 1_700_000_000_000_000;
        let first = [
            row("fraud", day + 1, Role::Primary, Status::Ok),
            row("fraud", day + 3, Role::Shadow, Status::Ok),
        ];
        let second = [row("fraud", day + 2, Role::Primary, Status::Error)];
        let other = [row("other", day + 5, Role::Primary, Status::Ok)];
        for (rows, seq) in [(&first[..], 1), (&second[..], 2), (&other[..], 3)] {
            let path = segment::path(&rows[0].deployment, rows[0].time_us, seq);
            segment::write(&store, &path, rows).await.unwrap();
        }
        let times = |rows: Vec<Row>| rows.iter().map(|r| r.time_us - day).collect::<Vec<_>>();
        assert_eq!(
            times(read_after(&store, "fraud", 0).await.unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            times(read_after(&store, "fraud", day + 1).await.unwrap()),
            [2, 3]
        );
        assert!(read_after(&store, "absent", 0).await.unwrap().is_empty());
    }
}

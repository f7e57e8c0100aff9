//! The artifact store on S3, against the local S3-compatible server named by
//! `TWINLOOP_TEST_S3_ENDPOINT` (the test scripts start moto). Skipped without it, unless
//! `TWINLOOP_REQUIRE_ALL_BACKENDS=1`.

#[path = "support/moto.rs"]
mod moto;

use futures::TryStreamExt;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};

#[tokio::test]
async fn s3_put_list_get_delete() {
    let Some(bucket) = moto::test_bucket("tl-artifacts").await else {
        return;
    };
    let store = ArtifactStore::open(&format!("s3://{bucket}/prefix")).unwrap();
    let p = |s: &str| ArtifactPath::parse(s).unwrap();
    let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"hello s3",
    ))]);
    store
        .put(&p("1/r/artifacts/dir/a.txt"), body)
        .await
        .unwrap();
    let listing = store.list(&p("1/r/artifacts")).await.unwrap();
    assert_eq!(listing.len(), 1);
    assert!(listing[0].is_dir && listing[0].path == "dir");
    let file = store.get(&p("1/r/artifacts/dir/a.txt")).await.unwrap();
    let data: Vec<bytes::Bytes> = file.stream.try_collect().await.unwrap();
    assert_eq!(data.concat(), b"hello s3");
    store.delete(&p("1/r/artifacts/dir")).await.unwrap();
    assert!(store.list(&p("1/r/artifacts")).await.unwrap().is_empty());
}

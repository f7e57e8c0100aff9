//! The artifact store on S3, against the local S3-compatible server named by
//! `TWINLOOP_TEST_S3_ENDPOINT` (the test scripts start moto). Skipped without it, unless
//! `TWINLOOP_REQUIRE_ALL_BACKENDS=1`.

use futures::TryStreamExt;
use twinloop_artifacts::{ArtifactPath, ArtifactStore};

#[tokio::test]
async fn s3_put_list_get_delete() {
    let Ok(endpoint) = std::env::var("TWINLOOP_TEST_S3_ENDPOINT") else {
        assert_ne!(
            std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
            Ok("1"),
            "TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_S3_ENDPOINT is not set"
        );
        eprintln!("TWINLOOP_TEST_S3_ENDPOINT not set: S3 test skipped");
        return;
    };
    let bucket = format!("tl-artifacts-{}", std::process::id());
    // moto creates buckets on an unsigned PUT; real S3 would need credentials.
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    // SAFETY: set before any store reads the environment; this test binary has one test.
    #[expect(unsafe_code, reason = "set_var is unsafe in edition 2024")]
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    }
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

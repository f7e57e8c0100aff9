//! A bucket for the S3 tests on the local S3-compatible server named by
//! `TWINLOOP_TEST_S3_ENDPOINT` (the test scripts start moto). The feature store's S3 source test
//! includes this file too (`#[path]`): both crates' tests need the same bucket set-up, and
//! neither should depend on the other's test code.

/// Creates bucket `{prefix}-{pid}` and points the `AWS_*` variables at the server; `None` when
/// `TWINLOOP_TEST_S3_ENDPOINT` is not set (the test is skipped), unless
/// `TWINLOOP_REQUIRE_ALL_BACKENDS=1`. It sets the process environment: call it only from a test
/// binary with one test, before anything reads the environment.
pub async fn test_bucket(prefix: &str) -> Option<String> {
    let Ok(endpoint) = std::env::var("TWINLOOP_TEST_S3_ENDPOINT") else {
        assert_ne!(
            std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
            Ok("1"),
            "TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_S3_ENDPOINT is not set"
        );
        eprintln!("TWINLOOP_TEST_S3_ENDPOINT not set: S3 test skipped");
        return None;
    };
    let bucket = format!("{prefix}-{}", std::process::id());
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
    // SAFETY: the caller's test binary has one test, and nothing has read the environment yet.
    #[expect(unsafe_code, reason = "set_var is unsafe in edition 2024")]
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    }
    Some(bucket)
}

//! The URI/path class: every place a client hands the server a location.

use serde_json::json;

use super::Jail;

const API: &str = "/api/2.0/mlflow";

async fn model(jail: &Jail, name: &str) {
    jail.call(
        "POST",
        &format!("{API}/registered-models/create"),
        Some(json!({"name": name})),
    )
    .await;
}

/// A model version whose source is `source` is refused at create, and no version exists after.
async fn source_refused(jail: &Jail, source: &str) {
    let body = jail
        .refused(
            "POST",
            &format!("{API}/model-versions/create"),
            Some(json!({"name": "m", "source": source})),
        )
        .await;
    assert_eq!(
        body["error_code"], "INVALID_PARAMETER_VALUE",
        "{source}: {body}"
    );
}

async fn location_refused(jail: &Jail, location: &str) {
    let body = jail
        .refused(
            "POST",
            &format!("{API}/experiments/create"),
            Some(json!({"name": format!("e-{}", location.len()), "artifact_location": location})),
        )
        .await;
    assert_eq!(
        body["error_code"], "INVALID_PARAMETER_VALUE",
        "{location}: {body}"
    );
}

pub async fn cve_2023_1177_a_local_source_outside_the_roots_is_refused() {
    let jail = Jail::new();
    model(&jail, "m").await;
    let secret = jail.secret_dir.display().to_string();
    for source in [
        "file:///etc/".to_string(),
        format!("file://{secret}"),
        secret.clone(),
        "/etc".into(),
    ] {
        source_refused(&jail, &source).await;
    }
    // Nothing was registered, so nothing can be read back.
    jail.refused(
        "GET",
        "/model-versions/get-artifact?path=secret.csv&name=m&version=1",
        None,
    )
    .await;
    jail.check();
}

pub async fn cve_2023_2780_and_2356_file_uri_spellings_are_refused() {
    let jail = Jail::new();
    model(&jail, "m").await;
    let secret = jail.secret_dir.display().to_string();
    for source in [
        "file://./etc".to_string(),
        "file://localhost/../../etc".into(),
        format!("file://evil.example{secret}"),
        format!("file://{}/../outside", jail.data().display()),
        format!("file://{}/%2e%2e/outside", jail.data().display()),
        format!("file://{}/%252e%252e/outside", jail.data().display()),
    ] {
        source_refused(&jail, &source).await;
    }
    jail.check();
}

pub async fn cve_2023_6977_proc_self_root_is_refused() {
    let jail = Jail::new();
    model(&jail, "m").await;
    let secret = jail.secret_dir.display().to_string();
    for source in [
        format!("//proc/self/root{secret}"),
        format!("/proc/self/root{secret}"),
        "//etc".into(),
    ] {
        source_refused(&jail, &source).await;
    }
    jail.check();
}

pub async fn cve_2026_116690_a_schemeless_relative_source_is_refused() {
    let jail = Jail::new();
    model(&jail, "m").await;
    for source in [
        "../../../etc",
        "../outside",
        "artifacts/../../outside",
        "..\\outside",
    ] {
        source_refused(&jail, source).await;
    }
    jail.check();
}

pub async fn cve_2023_6018_and_6974_http_sources_are_never_fetched() {
    let jail = Jail::new();
    model(&jail, "m").await;
    let canary = jail.canary;
    for source in [
        format!("http://127.0.0.1:{canary}/api/2.0/mlflow-artifacts/artifacts/"),
        format!("https://127.0.0.1:{canary}/model"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "mlflow-artifacts://host:5000/../../../../".into(),
        "mlflow-artifacts://host/..%2f..%2f..%2fetc".into(),
        "runs:/abc/../../../etc".into(),
    ] {
        source_refused(&jail, &source).await;
    }
    jail.check();
}

pub async fn cve_2023_6909_cve_2024_1483_2928_8859_artifact_locations_are_refused() {
    let jail = Jail::new();
    let canary = jail.canary;
    let secret = jail.secret_dir.display().to_string();
    for location in [
        "http:///?/../../../../etc/".to_string(),
        "http:///#/../../../../etc/".into(),
        format!("http://127.0.0.1:{canary}/"),
        "file:///etc".into(),
        format!("file://{secret}"),
        secret.clone(),
        "../outside".into(),
        format!("//proc/self/root{secret}"),
    ] {
        location_refused(&jail, &location).await;
    }
    // A remote location whose scheme names no host to connect to is only recorded, for the
    // client to write there itself (as MLflow); the server never reads or writes it.
    for (name, location) in [
        ("bucket", "s3://someone-elses-bucket/x"),
        ("dbfs", "dbfs:/"),
    ] {
        let id = jail
            .experiment(json!({"name": name, "artifact_location": location}))
            .await;
        let run = jail.run(&id).await;
        jail.refused("GET", &format!("{API}/artifacts/list?run_id={run}"), None)
            .await;
        jail.refused("GET", &format!("/get-artifact?run_uuid={run}&path=x"), None)
            .await;
    }
    jail.check();
}

pub async fn locations_inside_the_roots_and_references_stay_valid() {
    let jail = Jail::new();
    let inside = jail.data().join("artifacts/custom");
    let (status, text) = jail
        .call(
            "POST",
            &format!("{API}/experiments/create"),
            Some(json!({"name": "inside", "artifact_location": inside.display().to_string()})),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    model(&jail, "m").await;
    for source in [
        "mlflow-artifacts:/1/models/m",
        "models:/m-abc",
        "runs:/abc/model",
    ] {
        let mut body = json!({"name": "m", "source": source});
        if source.starts_with("models:/m-") {
            body["model_id"] = "m-abc".into();
        }
        if source.starts_with("runs:/") {
            body["run_id"] = "abc".into();
        }
        let (status, text) = jail
            .call("POST", &format!("{API}/model-versions/create"), Some(body))
            .await;
        assert!(
            !text.contains("Invalid location"),
            "{source}: {status} {text}"
        );
    }
    jail.check();
}

pub async fn an_allowed_root_and_scheme_widen_the_policy() {
    let extra = tempfile::tempdir().unwrap();
    let root = extra.path().display().to_string();
    let jail = Jail::with(&["--allowed-root", &root, "--allowed-scheme", "s3"]);
    model(&jail, "m").await;
    for source in [root.clone(), "s3://any-bucket/model".into()] {
        let (status, text) = jail
            .call(
                "POST",
                &format!("{API}/model-versions/create"),
                Some(json!({"name": "m", "source": source})),
            )
            .await;
        assert_eq!(status, 200, "{source}: {text}");
    }
    source_refused(&jail, &jail.secret_dir.display().to_string()).await;
    jail.check();
}

pub async fn symlinks_in_the_artifact_root_are_not_followed() {
    let jail = Jail::new();
    let artifacts = jail.data().join("artifacts");
    std::fs::create_dir_all(artifacts.join("1")).unwrap();
    std::os::unix::fs::symlink(&jail.secret_dir, artifacts.join("1/out")).unwrap();
    std::os::unix::fs::symlink(&jail.secret_file, artifacts.join("1/file.csv")).unwrap();
    let proxy = "/api/2.0/mlflow-artifacts/artifacts";
    for path in ["1/out/secret.csv", "1/file.csv"] {
        let (status, _) = jail.call("GET", &format!("{proxy}/{path}"), None).await;
        assert!((400..500).contains(&status), "{path}: {status}");
        let (status, _) = jail.call("DELETE", &format!("{proxy}/{path}"), None).await;
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    let (_, listing) = jail.call("GET", &format!("{proxy}?path=1"), None).await;
    assert!(
        !listing.contains("out") && !listing.contains("file.csv"),
        "{listing}"
    );
    let (_, listing) = jail.call("GET", &format!("{proxy}?path=1/out"), None).await;
    assert!(!listing.contains("secret.csv"), "{listing}");
    // An upload through the link would write outside the root.
    let r = jail
        .http
        .put(format!("{}{proxy}/1/out/planted.txt", jail.server.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // A source that is such a link resolves outside the roots.
    model(&jail, "m").await;
    source_refused(&jail, &artifacts.join("1/out").display().to_string()).await;
    jail.check();
}

pub async fn cve_2026_27489_a_model_whose_file_links_out_of_its_directory_is_not_deployed() {
    let jail = Jail::new();
    // A model directory inside the roots whose external-data file is a link to the secret.
    let dir = jail.data().join("models/linked");
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = crate::support::serving_fixture("logreg");
    for file in ["MLmodel", "model.onnx"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(&jail.secret_file, dir.join("weights.bin")).unwrap();
    model(&jail, "linked").await;
    let (status, text) = jail
        .call(
            "POST",
            &format!("{API}/model-versions/create"),
            Some(json!({"name": "linked", "source": dir.display().to_string()})),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    // The answer may repeat the source the client registered, nothing beyond it.
    let (status, body) = jail
        .call(
            "POST",
            "/api/twinloop/v1/deployments",
            Some(json!({"name": "linked", "routes": [{"model": "linked", "version": "1"}]})),
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        !body.contains(&jail.secret_dir.display().to_string()),
        "{body}"
    );
    assert!(body.contains("symbolic link"), "{body}");
    jail.check();
}

pub async fn a_monitor_reference_outside_the_roots_is_not_read() {
    let jail = Jail::new();
    let base = jail.server.url.clone();
    let secret = jail.secret_file.display().to_string();
    // A training run whose logged dataset is the secret: `reference: training` finds it.
    let run = crate::support::post_ok(
        &jail.http,
        &format!("{base}{API}/runs/create"),
        &json!({"experiment_id": "0"}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    crate::support::post_ok(
        &jail.http,
        &format!("{base}{API}/runs/log-inputs"),
        &json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "train", "digest": "d1", "source_type": "local",
                        "source": json!({"uri": format!("file://{secret}")}).to_string()}}]}),
    )
    .await;
    crate::support::register_model(
        &jail.http,
        &base,
        "fraud",
        &crate::support::serving_fixture("logreg"),
        "src/v1",
        Some(&run_id),
    )
    .await;
    crate::support::post_ok(
        &jail.http,
        &format!("{base}/api/twinloop/v1/deployments"),
        &json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    for reference in [
        "training".to_string(),
        secret.clone(),
        format!("file://{secret}"),
        format!("//proc/self/root{secret}"),
        "/etc/passwd".into(),
        // Artifact-store references that would leave the store, or read the server's own files.
        "mlflow-artifacts:/../../etc/passwd".into(),
        "mlflow-artifacts:/%2e%2e/%2e%2e/etc/passwd".into(),
        "mlflow-artifacts:/predictions/fraud/x.parquet".into(),
        format!("runs:/{run_id}/../../x.csv"),
        format!("runs:/{run_id}/../../../../{secret}"),
        format!("runs:/{run_id}"),
        "runs:/0123456789abcdef0123456789abcdef/x.csv".into(),
    ] {
        jail.refused(
            "POST",
            "/api/twinloop/v1/monitors",
            Some(
                json!({"name": "m", "deployment": "fraud", "reference": reference,
                        "window": {"rows": 5}}),
            ),
        )
        .await;
    }
    jail.check();
}

/// References in the artifact store are read through it, whatever its destination (a local
/// directory here, S3 on the other backend): a file uploaded through the proxy, one in a run's
/// artifacts, and a training set logged with an artifact-store URI.
pub async fn monitor_references_are_read_through_the_artifact_store() {
    let jail = Jail::new();
    let base = jail.server.url.clone();
    let mut csv = String::from("f0,f1,f2,f3\n");
    for i in 0..40 {
        let x = f64::from(i) / 10.0;
        csv.push_str(&format!("{x},{},{},{}\n", x * 2.0, 1.0 - x, x * x));
    }
    let put = |path: String| {
        let http = jail.http.clone();
        let url = format!("{base}/api/2.0/mlflow-artifacts/artifacts/{path}");
        let body = csv.clone();
        async move {
            let reply = http.put(url).body(body).send().await.unwrap();
            assert!(reply.status().is_success(), "{}", reply.status());
        }
    };
    put("refs/ref.csv".into()).await;
    let run = crate::support::post_ok(
        &jail.http,
        &format!("{base}{API}/runs/create"),
        &json!({"experiment_id": "0"}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let artifact_uri = run["run"]["info"]["artifact_uri"].as_str().unwrap();
    let run_root = artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .unwrap_or_else(|| panic!("runs' artifacts are proxied: {artifact_uri}"));
    put(format!("{}/data/ref.csv", run_root.trim_start_matches('/'))).await;
    crate::support::post_ok(
        &jail.http,
        &format!("{base}{API}/runs/log-inputs"),
        &json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "train", "digest": "d1", "source_type": "local",
                        "source": json!({"uri": "mlflow-artifacts:/refs/ref.csv"}).to_string()}}]}),
    )
    .await;
    crate::support::register_model(
        &jail.http,
        &base,
        "fraud",
        &crate::support::serving_fixture("logreg"),
        "src/v1",
        Some(&run_id),
    )
    .await;
    crate::support::post_ok(
        &jail.http,
        &format!("{base}/api/twinloop/v1/deployments"),
        &json!({"name": "fraud", "routes": [{"model": "fraud", "version": "1"}]}),
    )
    .await;
    for (name, reference) in [
        ("proxied", "mlflow-artifacts:/refs/ref.csv".to_string()),
        ("in-run", format!("runs:/{run_id}/data/ref.csv")),
        ("training", "training".to_string()),
    ] {
        let (status, text) = jail
            .call(
                "POST",
                "/api/twinloop/v1/monitors",
                Some(
                    json!({"name": name, "deployment": "fraud", "reference": reference,
                            "window": {"rows": 5}}),
                ),
            )
            .await;
        assert!((200..300).contains(&status), "{reference}: {status} {text}");
    }
    // A missing file is the client's mistake, named by its reference only.
    let refused = jail
        .refused(
            "POST",
            "/api/twinloop/v1/monitors",
            Some(json!({"name": "missing", "deployment": "fraud",
                        "reference": "mlflow-artifacts:/refs/nope.csv", "window": {"rows": 5}})),
        )
        .await;
    assert!(
        refused
            .to_string()
            .contains("mlflow-artifacts:/refs/nope.csv"),
        "{refused}"
    );
    jail.check();
}

pub async fn pipeline_repositories_outside_the_roots_are_refused() {
    let jail = Jail::new();
    let secret = jail.secret_dir.display().to_string();
    for repo in [
        secret.clone(),
        format!("file://{secret}"),
        format!("{}/../outside", jail.data().display()),
        "/".into(),
        "s3://bucket/repo".into(),
        "runs:/abc/repo".into(),
    ] {
        jail.refused(
            "POST",
            "/api/twinloop/v1/pipelines",
            Some(json!({"repo": repo, "spec": "pipeline: evil\nsteps:\n  a:\n    run: touch planted\n"})),
        )
        .await;
    }
    // Inside the server's directory it is accepted.
    let inside = jail.data().join("repo");
    std::fs::create_dir_all(&inside).unwrap();
    let (status, text) = jail
        .call(
            "POST",
            "/api/twinloop/v1/pipelines",
            Some(json!({"repo": inside.display().to_string(),
                        "spec": "pipeline: fine\nsteps:\n  a:\n    run: 'true'\n"})),
        )
        .await;
    assert!((200..300).contains(&status), "{text}");
    jail.check();
}

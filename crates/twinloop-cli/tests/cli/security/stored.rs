//! Internal data is not public data: the server's own files behind the artifact proxy, and ids.

use serde_json::json;

use super::Jail;

const PROXY: &str = "/api/2.0/mlflow-artifacts/artifacts";

pub async fn the_prediction_log_is_not_served_listed_or_written_through_the_proxy() {
    let jail = Jail::new();
    // A segment as the serving side writes one.
    let segment = jail
        .data()
        .join("artifacts/predictions/fraud/2026-01-01/x.parquet");
    std::fs::create_dir_all(segment.parent().unwrap()).unwrap();
    std::fs::write(&segment, &jail.sentinel).unwrap();
    for path in [
        "predictions/fraud/2026-01-01/x.parquet",
        "predictions",
        "predictions/",
    ] {
        let (status, text) = jail.call("GET", &format!("{PROXY}/{path}"), None).await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    for query in ["?path=predictions", "?path=predictions/fraud"] {
        let (status, _) = jail.call("GET", &format!("{PROXY}{query}"), None).await;
        assert!((400..500).contains(&status), "{query}: {status}");
    }
    for query in ["", "?path="] {
        let (_, text) = jail.call("GET", &format!("{PROXY}{query}"), None).await;
        assert!(!text.contains("predictions"), "{query}: {text}");
    }
    // Neither forged nor deleted.
    let r = jail
        .http
        .put(format!(
            "{}{PROXY}/predictions/fraud/forged.parquet",
            jail.server.url
        ))
        .body("forged")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let (status, _) = jail
        .call(
            "DELETE",
            &format!("{PROXY}/predictions/fraud/2026-01-01/x.parquet"),
            None,
        )
        .await;
    assert!((400..500).contains(&status));
    assert!(segment.exists());
    assert!(
        !jail
            .data()
            .join("artifacts/predictions/fraud/forged.parquet")
            .exists()
    );
    // Nor through an experiment whose location is the log's directory.
    let (status, text) = jail
        .call(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "peek", "artifact_location": "mlflow-artifacts:/predictions"})),
        )
        .await;
    if status == 200 {
        let id: serde_json::Value = serde_json::from_str(&text).unwrap();
        let run = crate::support::post_ok(
            &jail.http,
            &format!("{}/api/2.0/mlflow/runs/create", jail.server.url),
            &json!({"experiment_id": id["experiment_id"]}),
        )
        .await;
        let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
        let (_, text) = jail
            .call(
                "GET",
                &format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}"),
                None,
            )
            .await;
        assert!(!text.contains("x.parquet"), "{text}");
    }
    jail.check();
}

pub async fn cve_2023_30172_get_artifact_traversal_is_refused() {
    let jail = Jail::new();
    let run = crate::support::post_ok(
        &jail.http,
        &format!("{}/api/2.0/mlflow/runs/create", jail.server.url),
        &json!({"experiment_id": "0"}),
    )
    .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    for path in [
        "../../../../../../etc/passwd".to_string(),
        "../../outside/secret.csv".into(),
        "%2e%2e/%2e%2e/outside/secret.csv".into(),
        jail.secret_file.display().to_string(),
    ] {
        let (status, _) = jail
            .call(
                "GET",
                &format!("/get-artifact?path={path}&run_uuid={run_id}"),
                None,
            )
            .await;
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    for path in ["/etc", "//etc", "C:/", "..%2f..%2foutside"] {
        let (status, _) = jail
            .call(
                "GET",
                &format!("/ajax-api/2.0/mlflow-artifacts/artifacts?path={path}"),
                None,
            )
            .await;
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    jail.check();
}

pub async fn webhook_ids_are_never_reused_after_a_delete() {
    let jail = Jail::with(&["--outbound-allow", "hooks.example"]);
    let create = || async {
        let (status, text) = jail
            .call(
                "POST",
                "/api/twinloop/v1/registry/webhooks",
                Some(
                    json!({"url": "https://hooks.example/x", "secret": "secret-long",
                            "events": ["MODEL_CREATED"]}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        body["webhook"]["id"].as_i64().unwrap()
    };
    let first = create().await;
    let (status, _) = jail
        .call(
            "DELETE",
            &format!("/api/twinloop/v1/registry/webhooks/{first}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let second = create().await;
    assert!(second > first, "{second} reuses {first}");
    jail.check();
}

//! The SSRF class: every URL the server later sends a request to.

use serde_json::json;

use super::Jail;

/// Every spelling of loopback, private, link-local and metadata addresses, aimed at the canary.
fn internal_urls(scheme: &str, port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "0177.0.0.1",
        "0.0.0.0",
        "0",
        "localhost",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[2002:7f00:1::]",
        "[64:ff9b::7f00:1]",
        "169.254.169.254",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
    ]
    .iter()
    .map(|host| format!("{scheme}://{host}:{port}/hook"))
    .collect()
}

pub async fn cve_2026_2393_native_webhooks_to_internal_addresses_are_refused_at_create() {
    let jail = Jail::new();
    for url in internal_urls("http", jail.canary) {
        jail.refused(
            "POST",
            "/api/twinloop/v1/registry/webhooks",
            Some(json!({"url": url, "secret": "secret-long", "events": ["ALIAS_SET"]})),
        )
        .await;
    }
    jail.check();
}

pub async fn cve_2026_2393_mlflow_webhooks_to_internal_addresses_are_refused_at_create() {
    // MLflow's scheme list allows http here, so only the address is judged.
    let jail = Jail::with_env(&[("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")]);
    for url in internal_urls("http", jail.canary) {
        jail.refused(
            "POST",
            "/api/2.0/mlflow/webhooks",
            Some(json!({"name": "w", "url": url, "events": [
                {"entity": "model_version", "action": "created"}]})),
        )
        .await;
    }
    jail.check();
}

pub async fn monitor_alert_webhooks_to_internal_addresses_are_refused_at_create() {
    let jail = Jail::new();
    for url in internal_urls("http", jail.canary) {
        jail.refused(
            "POST",
            "/api/twinloop/v1/monitors",
            Some(json!({"name": "m", "deployment": "d", "reference": "r.csv",
                "window": {"rows": 5},
                "rules": [{"name": "r", "metric": "rows", "op": ">", "threshold": 1,
                           "actions": [{"type": "webhook", "url": url, "secret": "secret-long"}]}]})),
        )
        .await;
    }
    jail.check();
}

pub async fn cve_2026_64849_a_webhook_saved_while_allowed_is_not_delivered_once_disallowed() {
    // Saved on a server that allowed the canary; a restart without the allow-list must not
    // deliver to it (the check at connect time, which also covers DNS rebinding).
    let mut jail = Jail::with(&["--outbound-allow", "127.0.0.1/32"]);
    let url = format!("http://127.0.0.1:{}/hook", jail.canary);
    let (status, text) = jail
        .call(
            "POST",
            "/api/twinloop/v1/registry/webhooks",
            Some(json!({"url": url, "secret": "secret-long", "events": ["MODEL_CREATED"]})),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    jail.restart(&[]);
    let (status, _) = jail
        .call(
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "fraud"})),
        )
        .await;
    assert_eq!(status, 200);
    // Each attempt is recorded with one generic reason, whatever the port's state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let deliveries = loop {
        let (_, text) = jail
            .call(
                "GET",
                "/api/twinloop/v1/registry/webhooks/1/deliveries",
                None,
            )
            .await;
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let found = body["deliveries"].as_array().cloned().unwrap_or_default();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!deliveries.is_empty(), "no attempt recorded");
    for d in &deliveries {
        assert_eq!(d["delivered"], false, "{d}");
    }
    jail.check();
}

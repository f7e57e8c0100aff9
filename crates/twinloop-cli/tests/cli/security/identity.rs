//! Who the registry's events name: the signed-in user, never what a client claims.

use serde_json::json;

use super::Jail;

const ADMIN_PASSWORD: &str = "jail-admin-pw-1";

pub async fn the_event_actor_is_the_signed_in_user() {
    use base64::Engine;
    let jail = Jail::with_full(&["--auth"], &[("TWINLOOP_ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    let admin = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"))
    );
    let created = jail
        .http
        .post(format!(
            "{}/api/2.0/mlflow/registered-models/create",
            jail.server.url
        ))
        .header("Authorization", &admin)
        .header("X-Twinloop-User", "mallory")
        .json(&json!({"name": "claimed"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let events: serde_json::Value = jail
        .http
        .get(format!(
            "{}/api/twinloop/v1/registry/events?after=0",
            jail.server.url
        ))
        .header("Authorization", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actors: Vec<&str> = events["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{events}"))
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(!actors.is_empty(), "{events}");
    assert!(actors.iter().all(|a| *a == "admin"), "{actors:?}");
    jail.check();
}

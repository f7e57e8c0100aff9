//! One case per advisory of security.md §2 not covered by the location, outbound and stored-data
//! files: each replays the advisory's attack input (or twinloop's nearest surface) and checks
//! the jail's oracles.

use serde_json::json;

use super::Jail;

const API: &str = "/api/2.0/mlflow";
const PROXY: &str = "/api/2.0/mlflow-artifacts/artifacts";
const ADMIN_PASSWORD: &str = "jail-admin-pw-1";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A server with `--auth` and its first admin.
fn auth_jail() -> Jail {
    Jail::with_full(&["--auth"], &[("TWINLOOP_ADMIN_PASSWORD", ADMIN_PASSWORD)])
}

async fn run_id(jail: &Jail) -> String {
    jail.run("0").await
}

fn status_of(reply: &str) -> u16 {
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"))
}

/// Sends raw bytes (paths an HTTP client would normalise), checks the reply leaks nothing.
fn raw(jail: &Jail, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", jail.server.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    // Read until the server closes, or until a refusal's answer has come and the server waits
    // for a body it will never read.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    let reply = String::from_utf8_lossy(&bytes).into_owned();
    jail.no_leak(&reply);
    if reply.is_empty() {
        // Closed without an answer: what a server does with bytes that are not HTTP.
        return (0, reply);
    }
    (status_of(&reply), reply)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.0\r\n\r\n")
}

#[track_caller]
fn not_served(what: &str, status: u16, reply: &str) {
    assert!(
        (400..500).contains(&status),
        "{what}: expected a refusal, got {reply}"
    );
}

pub async fn cve_2023_1176_absolute_paths_are_refused() {
    let jail = Jail::new();
    let run = run_id(&jail).await;
    let secret = jail.secret_file.display().to_string();
    for path in [secret.as_str(), "/etc/passwd", "//etc/passwd"] {
        let (status, reply) = raw(
            &jail,
            &get(&format!("/get-artifact?path={path}&run_uuid={run}")),
        );
        not_served(path, status, &reply);
        let (status, reply) = raw(
            &jail,
            &get(&format!("{API}/artifacts/list?run_id={run}&path={path}")),
        );
        not_served(path, status, &reply);
    }
    jail.check();
}

pub async fn cve_2023_3765_absolute_listing_paths_are_refused() {
    let jail = Jail::new();
    for path in ["/etc", "//etc", "C:/", "/", "%2Fetc"] {
        let (status, reply) = raw(
            &jail,
            &get(&format!(
                "/ajax-api/2.0/mlflow-artifacts/artifacts?path={path}"
            )),
        );
        not_served(path, status, &reply);
        assert!(!reply.contains("passwd"), "{path}: {reply}");
    }
    jail.check();
}

pub async fn cve_2023_6014_users_are_not_created_anonymously() {
    let jail = auth_jail();
    let (status, _) = jail
        .call(
            "POST",
            &format!("{API}/users/create"),
            Some(json!({"username": "eve", "password": "eve-password-1"})),
        )
        .await;
    assert_eq!(status, 401);
    // A GET carrying the credentials in its query changes nothing either.
    let (status, reply) = raw(
        &jail,
        &get(&format!(
            "{API}/users/create?username=eve&password=eve-password-1"
        )),
    );
    assert!(!(200..300).contains(&status), "{reply}");
    let signed_in = jail
        .http
        .get(format!("{}{API}/users/current", jail.server.url))
        .header("Authorization", basic("eve", "eve-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 401, "eve must not exist");
    jail.check();
}

pub async fn cve_2023_6015_and_6976_artifact_puts_cannot_leave_the_root() {
    let jail = Jail::new();
    for path in [
        "../../outside/secret.csv",
        "..%2F..%2Foutside%2Fsecret.csv",
        "%2e%2e/%2e%2e/outside/secret.csv",
        "x/../../../outside/planted",
        "%252e%252e%252f%252e%252e%252foutside%252fplanted",
    ] {
        let (status, reply) = raw(
            &jail,
            &format!("PUT {PROXY}/{path} HTTP/1.0\r\nContent-Length: 7\r\n\r\nplanted"),
        );
        assert!(status < 500, "{path}: {reply}");
    }
    // Whatever was accepted stayed inside the server's directory: the jail's snapshot says.
    jail.check();
}

pub async fn cve_2023_6568_errors_are_json_and_echo_no_header() {
    let jail = Jail::new();
    let script = "<script>alert(1)</script>";
    for path in [
        format!("{API}/users/create"),
        format!("{API}/experiments/create"),
    ] {
        let reply = jail
            .http
            .post(format!("{}{path}", jail.server.url))
            .header("Content-Type", format!("text/html; {script}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        let kind = reply
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = reply.text().await.unwrap();
        assert!(!kind.contains("html"), "{path}: {kind}");
        assert!(!text.contains(script), "{path}: {text}");
    }
    jail.check();
}

pub async fn cve_2023_6709_no_server_side_templating_of_names() {
    let jail = Jail::new();
    for name in ["{{7*7}}", "${7*7}", "<%= 7*7 %>", "#{7*7}"] {
        let id = jail.experiment(json!({"name": name})).await;
        let got = jail
            .ok(
                "GET",
                &format!("{API}/experiments/get?experiment_id={id}"),
                None,
            )
            .await;
        assert_eq!(got["experiment"]["name"], name);
    }
    jail.check();
}

pub async fn cve_2023_6753_and_6975_encoded_traversal_in_artifact_paths() {
    let jail = Jail::new();
    let run = run_id(&jail).await;
    for path in [
        "..%2F..%2F..%2Foutside%2Fsecret.csv",
        "%2e%2e%2f%2e%2e%2f%2e%2e%2foutside%2fsecret.csv",
        "%252e%252e%252foutside%252fsecret.csv",
        "..\\..\\outside\\secret.csv",
        "a/%00/../secret.csv",
    ] {
        for request in [
            get(&format!("{PROXY}/{path}")),
            get(&format!("/get-artifact?path={path}&run_uuid={run}")),
        ] {
            let (status, reply) = raw(&jail, &request);
            assert!(status < 500, "{request}: {reply}");
            assert!(status != 200 || !reply.contains('x'), "{request}: {reply}");
        }
    }
    jail.check();
}

pub async fn cve_2023_6831_double_encoded_delete_is_a_file_name() {
    let jail = Jail::new();
    let (status, reply) = raw(
        &jail,
        &format!("PUT {PROXY}/x HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"),
    );
    assert_eq!(status, 200, "{reply}");
    let depth = "%252E%252E%252F".repeat(12);
    let target = jail
        .secret_file
        .display()
        .to_string()
        .trim_start_matches('/')
        .replace('/', "%252F");
    let (status, reply) = raw(
        &jail,
        &format!("DELETE {PROXY}/{depth}{target} HTTP/1.0\r\n\r\n"),
    );
    assert!(status < 500, "{reply}");
    assert!(jail.secret_file.exists());
    jail.check();
}

pub async fn cve_2023_43472_the_preview_api_is_not_served_cross_origin() {
    let jail = Jail::new();
    let evil = "Origin: http://evil.example\r\n";
    // DNS rebinding: the attacker's name pointed at the server.
    let (status, reply) = raw(
        &jail,
        &format!(
            "GET /api/2.0/preview/mlflow/experiments/list HTTP/1.1\r\nHost: evil.example\r\n{evil}Connection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 403, "{reply}");
    let (_, reply) = raw(
        &jail,
        &format!(
            "GET {API}/experiments/search HTTP/1.1\r\nHost: 127.0.0.1\r\n{evil}Connection: close\r\n\r\n"
        ),
    );
    assert!(
        !reply
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{reply}"
    );
    jail.check();
}

pub async fn cve_2024_1558_validated_and_stored_locations_are_the_same_string() {
    let jail = Jail::new();
    let data = jail.data().display().to_string();
    for location in [
        format!("{data}/sub%2F..%2F..%2Foutside"),
        format!("file://{data}/sub%2f%2e%2e%2f%2e%2e%2foutside"),
        format!("{data}/sub/%2E%2E/%2E%2E/outside"),
    ] {
        jail.refused(
            "POST",
            &format!("{API}/experiments/create"),
            Some(json!({"name": format!("e{}", location.len()), "artifact_location": location})),
        )
        .await;
    }
    // An accepted location is stored as sent, so what was checked is what is used.
    let inside = format!("{data}/artifacts/with space");
    let id = jail
        .experiment(json!({"name": "kept", "artifact_location": inside}))
        .await;
    let got = jail
        .ok(
            "GET",
            &format!("{API}/experiments/get?experiment_id={id}"),
            None,
        )
        .await;
    let stored = got["experiment"]["artifact_location"].as_str().unwrap();
    assert!(stored.ends_with("with space"), "{stored}");
    jail.check();
}

pub async fn cve_2024_1594_and_3848_fragments_in_locations_are_refused() {
    let jail = Jail::new();
    let data = jail.data().display().to_string();
    for location in [
        format!("file://{data}/x#/../../outside"),
        format!("{data}/x#frag"),
        "http:///#/../../../../etc/".to_string(),
        format!("file://{data}/x%23/../../outside"),
    ] {
        jail.refused(
            "POST",
            &format!("{API}/experiments/create"),
            Some(json!({"name": format!("f{}", location.len()), "artifact_location": location})),
        )
        .await;
    }
    jail.check();
}

pub async fn cve_2024_3099_encoded_names_are_other_names() {
    let jail = Jail::new();
    let (status, text) = jail
        .call(
            "POST",
            &format!("{API}/registered-models/create"),
            Some(json!({"name": "model%41"})),
        )
        .await;
    assert!(status < 500, "{text}");
    let (status, text) = jail
        .call(
            "GET",
            &format!("{API}/registered-models/get?name=modelA"),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "the encoded name is not a second spelling: {text}"
    );
    // And a duplicate is refused, not merged.
    let (status, _) = jail
        .call(
            "POST",
            &format!("{API}/registered-models/create"),
            Some(json!({"name": "m"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = jail
        .call(
            "POST",
            &format!("{API}/registered-models/create"),
            Some(json!({"name": "m"})),
        )
        .await;
    assert_eq!(status, 400);
    jail.check();
}

pub async fn cve_2024_3573_empty_and_file_schemes_are_local() {
    let jail = Jail::new();
    jail.call(
        "POST",
        &format!("{API}/registered-models/create"),
        Some(json!({"name": "m"})),
    )
    .await;
    let secret = jail.secret_dir.display().to_string();
    for source in [
        format!("file:{secret}"),
        format!("FILE://{secret}"),
        format!("File:///{}", secret.trim_start_matches('/')),
        format!(":{secret}"),
        format!("file://localhost{secret}"),
    ] {
        jail.refused(
            "POST",
            &format!("{API}/model-versions/create"),
            Some(json!({"name": "m", "source": source})),
        )
        .await;
    }
    jail.check();
}

pub async fn cve_2024_4263_deleting_artifacts_needs_manage() {
    let jail = auth_jail();
    let admin = basic("admin", ADMIN_PASSWORD);
    let url = |path: &str| format!("{}{path}", jail.server.url);
    let created = jail
        .http
        .post(url(&format!("{API}/users/create")))
        .header("Authorization", &admin)
        .json(&json!({"username": "bob", "password": "bob-password-1"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let experiment: serde_json::Value = jail
        .http
        .post(url(&format!("{API}/experiments/create")))
        .header("Authorization", &admin)
        .json(&json!({"name": "owned"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = experiment["experiment_id"].as_str().unwrap().to_string();
    let granted = jail
        .http
        .post(url(&format!("{API}/experiments/permissions/create")))
        .header("Authorization", &admin)
        .json(&json!({"experiment_id": id, "username": "bob", "permission": "EDIT"}))
        .send()
        .await
        .unwrap();
    assert!(granted.status().is_success(), "{}", granted.status());
    let put = jail
        .http
        .put(url(&format!("{PROXY}/{id}/kept.txt")))
        .header("Authorization", &admin)
        .body("kept")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let deleted = jail
        .http
        .delete(url(&format!("{PROXY}/{id}/kept.txt")))
        .header("Authorization", basic("bob", "bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 403, "EDIT is not enough to delete");
    let still = jail
        .http
        .get(url(&format!("{PROXY}/{id}/kept.txt")))
        .header("Authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
    jail.check();
}

pub async fn cve_2024_8859_upload_paths_stay_inside_the_root() {
    let jail = Jail::new();
    let run = run_id(&jail).await;
    // A `?` is a character of a file name here, never a query: whatever is stored stays inside.
    for path in ["a%3F/a", "a?/a"] {
        let (status, reply) = raw(
            &jail,
            &format!(
                "POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid={run}&path={path} HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"
            ),
        );
        assert!(status < 500, "{path}: {reply}");
    }
    for path in [
        "%3F/../../outside/x",
        "../outside/x",
        "a/%2e%2e/%2e%2e/outside/x",
    ] {
        let (status, reply) = raw(
            &jail,
            &format!(
                "POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid={run}&path={path} HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"
            ),
        );
        not_served(path, status, &reply);
    }
    jail.check();
}

pub async fn cve_2024_6838_oversized_bodies_are_refused() {
    let jail = Jail::new();
    // Bodies past the JSON limit are refused from the Content-Length alone.
    let (status, reply) = raw(
        &jail,
        &format!(
            "POST {API}/experiments/create HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{{}}"
        ),
    );
    assert_eq!(status, 413, "{reply}");
    jail.check();
}

pub async fn cve_2025_1473_cross_site_signup_is_refused() {
    let jail = auth_jail();
    let reply = jail
        .http
        .post(format!("{}{API}/users/create", jail.server.url))
        .header("Origin", "http://evil.example")
        .header("Authorization", basic("admin", ADMIN_PASSWORD))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("username=eve&password=eve-password-1")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 403);
    let eve = jail
        .http
        .get(format!("{}{API}/users/current", jail.server.url))
        .header("Authorization", basic("eve", "eve-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(eve.status(), 401);
    jail.check();
}

pub async fn cve_2025_11200_empty_passwords_are_refused() {
    let jail = auth_jail();
    let reply = jail
        .http
        .post(format!("{}{API}/users/create", jail.server.url))
        .header("Authorization", basic("admin", ADMIN_PASSWORD))
        .json(&json!({"username": "weak", "password": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    jail.check();
}

pub async fn cve_2026_2635_no_default_admin_password() {
    let jail = auth_jail();
    for password in ["password1234", "password", "admin", ""] {
        let reply = jail
            .http
            .get(format!("{}{API}/users/current", jail.server.url))
            .header("Authorization", basic("admin", password))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 401, "{password}");
    }
    // With no admin yet and no password given, the server does not start at all.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["server", "--auth", "--port", "0", "--backend-store-uri"])
        .arg(format!(
            "sqlite:///{}",
            dir.path().join("twinloop.db").display()
        ))
        .arg("--artifacts-destination")
        .arg(dir.path().join("artifacts"))
        .env_remove("TWINLOOP_ADMIN_PASSWORD")
        .env_remove("MLFLOW_AUTH_ADMIN_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        exited.is_some_and(|s| !s.success()),
        "an --auth server without an admin password must refuse to start"
    );
    jail.check();
}

pub async fn cve_2026_0545_and_2652_every_route_is_gated() {
    let jail = auth_jail();
    for (method, path, body) in [
        (
            "POST",
            "/ajax-api/3.0/jobs/",
            json!({"job_name": "run_task", "params": {"command": "id"}}),
        ),
        ("POST", "/v1/traces", json!({})),
        ("POST", "/api/twinloop/v1/deployments", json!({"name": "x"})),
        ("POST", "/api/twinloop/v1/pipelines", json!({"repo": "/"})),
        (
            "POST",
            &format!("{API}/experiments/create"),
            json!({"name": "x"}),
        ),
    ] {
        let (status, text) = jail.call(method, path, Some(body)).await;
        assert!(
            status == 401 || status == 404,
            "{method} {path}: anonymous got {status} {text}"
        );
    }
    jail.check();
}

pub async fn cve_2026_115886_no_scorer_invoke_route() {
    let jail = Jail::new();
    let base = format!("http://127.0.0.1:{}/v1", jail.canary);
    for path in [
        "/ajax-api/3.0/mlflow/scorer/invoke",
        "/api/3.0/mlflow/scorer/invoke",
    ] {
        let (status, text) = jail
            .call(
                "POST",
                path,
                Some(json!({"scorer": "x", "api_base": base, "kwargs": {"api_base": base}})),
            )
            .await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    jail.check();
}

pub async fn cve_2026_118628_http_artifact_locations_are_not_fetched() {
    let jail = Jail::new();
    let canary = format!("http://127.0.0.1:{}/artifacts", jail.canary);
    jail.refused(
        "POST",
        &format!("{API}/experiments/create"),
        Some(json!({"name": "remote", "artifact_location": canary})),
    )
    .await;
    let run = run_id(&jail).await;
    // A run's artifact listing and download read the server's own store only.
    for request in [
        get(&format!("{API}/artifacts/list?run_id={run}&path={canary}")),
        get(&format!("/get-artifact?path={canary}&run_uuid={run}")),
    ] {
        let (status, reply) = raw(&jail, &request);
        assert!(status < 500, "{request}: {reply}");
    }
    jail.check();
}

pub async fn huntr_ssrf_artifact_location_is_not_fetched() {
    let jail = Jail::new();
    for location in [
        format!("mlflow-artifacts://127.0.0.1:{}/x", jail.canary),
        format!("https://127.0.0.1:{}/x", jail.canary),
        format!("s3://127.0.0.1:{}/x", jail.canary),
        format!("gs://bucket/x?endpoint=http://127.0.0.1:{}", jail.canary),
    ] {
        let (status, text) = jail
            .call(
                "POST",
                &format!("{API}/experiments/create"),
                Some(
                    json!({"name": format!("h{}", location.len()), "artifact_location": location}),
                ),
            )
            .await;
        if status == 200 {
            // Accepted only as a reference the server reads through its own store.
            let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["experiment_id"]
                .as_str()
                .unwrap()
                .to_string();
            let (_, run) = jail
                .call(
                    "POST",
                    &format!("{API}/runs/create"),
                    Some(json!({"experiment_id": id})),
                )
                .await;
            if let Some(run) =
                serde_json::from_str::<serde_json::Value>(&run).unwrap()["run"]["info"]["run_id"]
                    .as_str()
            {
                raw(&jail, &get(&format!("{API}/artifacts/list?run_id={run}")));
            }
        }
    }
    jail.check();
}

pub async fn triton_cve_2023_31036_and_2025_23316_model_names_are_identifiers() {
    let jail = Jail::new();
    for path in [
        "/v2/repository/models/x/load",
        "/v2/repository/models/..%2F..%2Fx/load",
        "/v2/repository/index",
    ] {
        let (status, text) = jail.call("POST", path, Some(json!({}))).await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    for name in ["../x", "a/b", "..", "x\u{0}y"] {
        jail.refused(
            "POST",
            "/api/twinloop/v1/deployments",
            Some(json!({"name": name, "routes": [{"model": "m", "version": "1"}]})),
        )
        .await;
    }
    jail.check();
}

pub async fn triton_cve_2024_0087_no_client_settable_log_or_trace_files() {
    let jail = Jail::new();
    let planted = jail.secret_dir.join("planted.log").display().to_string();
    for (path, body) in [
        ("/v2/logging", json!({"log_file": planted})),
        ("/v2/trace/setting", json!({"trace_file": planted})),
        ("/v2/models/x/trace/setting", json!({"trace_file": planted})),
    ] {
        let (status, text) = jail.call("POST", path, Some(body)).await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    jail.check();
}

pub async fn triton_cve_2025_23310_oversized_bodies_are_refused() {
    let jail = Jail::new();
    for path in [
        "/api/2.0/mlflow/runs/log-batch",
        "/api/twinloop/v1/deployments",
        "/v2/models/x/infer",
        "/v2/models/x/versions/1/infer",
    ] {
        let (status, reply) = raw(
            &jail,
            &format!(
                "POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{{}}"
            ),
        );
        assert_eq!(status, 413, "{path}: {reply}");
    }
    // A chunk size past any limit: refused, or the connection closed.
    let (status, reply) = raw(
        &jail,
        "POST /v2/models/x/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffff\r\n{}",
    );
    assert!(status == 0 || (400..500).contains(&status), "{reply}");
    jail.check();
}

pub async fn feast_cve_2026_23536_no_file_path_parameter() {
    let jail = Jail::new();
    let secret = jail.secret_file.display().to_string();
    for path in [
        "/read-document",
        "/api/twinloop/v1/read-document",
        "/get-online-features",
    ] {
        let (status, text) = jail
            .call("POST", path, Some(json!({"file_path": secret})))
            .await;
        assert!((400..500).contains(&status), "{path}: {status} {text}");
    }
    jail.check();
}

pub async fn feast_cve_2024_11602_no_cors_by_default() {
    let jail = Jail::new();
    let (_, reply) = raw(
        &jail,
        &format!(
            "OPTIONS {API}/experiments/search HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        !reply
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{reply}"
    );
    jail.check();
}

pub async fn onnx_cve_2022_25882_and_2024_27318_external_data_outside_the_model() {
    let jail = Jail::new();
    let secret = jail.secret_file.display().to_string();
    for (i, location) in [
        "../../outside/secret.csv".to_string(),
        "sub/../../../outside/secret.csv".to_string(),
        secret.clone(),
    ]
    .iter()
    .enumerate()
    {
        let dir = jail.data().join(format!("models/external-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.onnx"),
            twinloop_serving_fixture::model_with_external_data(location),
        )
        .unwrap();
        std::fs::write(
            dir.join("MLmodel"),
            "flavors:\n  onnx:\n    data: model.onnx\n",
        )
        .unwrap();
        let name = format!("ext{i}");
        jail.call(
            "POST",
            &format!("{API}/registered-models/create"),
            Some(json!({"name": name})),
        )
        .await;
        let (status, text) = jail
            .call(
                "POST",
                &format!("{API}/model-versions/create"),
                Some(json!({"name": name, "source": dir.display().to_string()})),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let body = jail
            .refused(
                "POST",
                "/api/twinloop/v1/deployments",
                Some(json!({"name": name, "routes": [{"model": name, "version": "1"}]})),
            )
            .await;
        assert!(
            body.to_string().contains("external data"),
            "{location}: {body}"
        );
    }
    jail.check();
}

/// A hand-encoded ONNX model (protobuf) whose one initializer keeps its bytes in an external
/// file at `location`: what a hostile model archive would carry.
mod twinloop_serving_fixture {
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(field << 3 | 2), out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn field_varint(field: u32, n: u64, out: &mut Vec<u8>) {
        varint(u64::from(field << 3), out);
        varint(n, out);
    }

    pub fn model_with_external_data(location: &str) -> Vec<u8> {
        let mut entry = Vec::new();
        field_bytes(1, b"location", &mut entry);
        field_bytes(2, location.as_bytes(), &mut entry);
        let mut tensor = Vec::new();
        field_varint(1, 4, &mut tensor); // dims: [4]
        field_varint(2, 1, &mut tensor); // data_type: FLOAT
        field_bytes(8, b"w", &mut tensor); // name
        field_bytes(13, &entry, &mut tensor); // external_data
        field_varint(14, 1, &mut tensor); // data_location: EXTERNAL
        let mut graph = Vec::new();
        field_bytes(2, b"g", &mut graph); // name
        field_bytes(5, &tensor, &mut graph); // initializer
        let mut opset = Vec::new();
        field_varint(2, 17, &mut opset);
        let mut model = Vec::new();
        field_varint(1, 8, &mut model); // ir_version
        field_bytes(7, &graph, &mut model); // graph
        field_bytes(8, &opset, &mut model); // opset_import
        model
    }
}

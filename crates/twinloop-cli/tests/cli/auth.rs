//! `twinloop server --auth` on the real binary: the first admin, tokens made by `twinloop auth`,
//! and the CLI's own client signing in with MLFLOW_TRACKING_* like the stock client.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::TestServer;

const ADMIN_PASSWORD: &str = "first-admin-pw";

fn twinloop(
    server: &TestServer,
    args: &[&str],
    vars: &[(&str, &str)],
    stdin: &str,
) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(args)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TWINLOOP_BACKEND_STORE_URI", &server.backend_uri)
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The status of a request with this `Authorization` header (none if empty).
fn status(server: &TestServer, method: &str, path: &str, authorization: &str, body: &str) -> u16 {
    let header = if authorization.is_empty() {
        String::new()
    } else {
        format!("Authorization: {authorization}\r\n")
    };
    let reply = server.raw(&format!(
        "{method} {path} HTTP/1.0\r\n{header}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"))
}

#[test]
fn auth_without_a_first_admin_refuses_to_start_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["server", "--auth", "--port", "0", "--backend-store-uri"])
        .arg(format!("sqlite:///{}", dir.path().join("db").display()))
        .env_remove("TWINLOOP_ADMIN_PASSWORD")
        .env_remove("MLFLOW_AUTH_ADMIN_PASSWORD")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TWINLOOP_ADMIN_PASSWORD"), "{stderr}");
}

/// gRPC inference on `twinloop server --auth --grpc-port N` checks what REST checks: no model
/// is deployed, so a call that gets through is answered NOT_FOUND (5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_on_the_server_checks_the_same_credentials() {
    use crate::support::grpc;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let server = TestServer::start_sqlite_auth_with(
        dir.path(),
        ADMIN_PASSWORD,
        &["--grpc-port", &port.to_string()],
    );
    let token = |scope: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_twinloop"))
            .args(["auth", "--backend-store-uri", &server.backend_uri])
            .args(["token", "create", "--user", "admin", "--scope", scope])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim())
    };
    let infer = token("infer");
    let admin = basic("admin", ADMIN_PASSWORD);
    let wrong = basic("admin", "wrong");
    let rpc = grpc::client(std::time::Duration::from_secs(30));
    let url =
        |method: &str| format!("http://127.0.0.1:{port}/inference.GRPCInferenceService/{method}");
    let cases = [
        ("ModelInfer", None, 16),
        ("ModelInfer", Some(wrong.as_str()), 16),
        ("ModelInfer", Some("Bearer tlp_forged"), 16),
        ("ModelInfer", Some(infer.as_str()), 5),
        ("ModelInfer", Some(admin.as_str()), 5),
        ("ModelMetadata", Some(infer.as_str()), 7),
        ("ModelMetadata", Some(admin.as_str()), 5),
        ("ServerMetadata", None, 16),
        ("ServerLive", None, 0),
    ];
    for (method, authorization, want) in cases {
        let (code, message, _) =
            grpc::call(&rpc, &url(method), &grpc::named("nothing"), authorization).await;
        assert_eq!(code, want, "{method} with {authorization:?}: {message}");
    }
}

#[test]
fn tokens_from_the_cli_sign_in_within_their_scope_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_auth(dir.path(), ADMIN_PASSWORD);
    let search = "/api/2.0/mlflow/experiments/search?max_results=1";
    assert_eq!(status(&server, "GET", search, "", ""), 401);
    assert_eq!(status(&server, "GET", "/health", "", ""), 200);

    let (ok, _, err) = twinloop(
        &server,
        &["auth", "user", "create", "carol"],
        &[],
        "carol-pw\n",
    );
    assert!(ok, "{err}");
    let (ok, read, err) = twinloop(
        &server,
        &[
            "auth", "token", "create", "--user", "carol", "--scope", "read",
        ],
        &[],
        "",
    );
    assert!(ok, "{err}");
    let read = read.trim();
    assert!(read.starts_with("tlp_"), "{read}");
    let bearer = format!("Bearer {read}");
    assert_eq!(status(&server, "GET", search, &bearer, ""), 200);
    let create = r#"{"name": "by-token"}"#;
    assert_eq!(
        status(
            &server,
            "POST",
            "/api/2.0/mlflow/experiments/create",
            &bearer,
            create
        ),
        403,
        "a read token cannot create"
    );
    assert_eq!(status(&server, "GET", search, "Bearer tlp_forged", ""), 401);

    // The CLI's client signs in from the same variables as the stock client.
    let (ok, _, err) = twinloop(&server, &["models", "list"], &[], "");
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = twinloop(
        &server,
        &["models", "list"],
        &[("MLFLOW_TRACKING_TOKEN", read)],
        "",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = twinloop(
        &server,
        &["models", "list"],
        &[
            ("MLFLOW_TRACKING_USERNAME", "carol"),
            ("MLFLOW_TRACKING_PASSWORD", "carol-pw"),
        ],
        "",
    );
    assert!(ok, "{err}");

    let (ok, list, _) = twinloop(&server, &["auth", "token", "list"], &[], "");
    assert!(ok && list.contains("carol\tread"), "{list}");
    assert!(!list.contains(read), "a listing never shows a token");
    let id = list.lines().nth(1).unwrap().split('\t').next().unwrap();
    let (ok, _, err) = twinloop(&server, &["auth", "token", "revoke", id], &[], "");
    assert!(ok, "{err}");
    assert_eq!(status(&server, "GET", search, &bearer, ""), 401);
}

/// The status and JSON body of a request with this `Authorization` header.
fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    authorization: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let reply = server.raw(&format!(
        "{method} {path} HTTP/1.0\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let status = reply.split(' ').nth(1).unwrap().parse().unwrap();
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[test]
fn tokens_over_http_for_oneself_or_by_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_auth(dir.path(), ADMIN_PASSWORD);
    let admin = basic("admin", ADMIN_PASSWORD);
    let carol = basic("carol", "carol-pw");
    let tokens = "/api/twinloop/v1/auth/tokens";
    let (s, _) = call(
        &server,
        "POST",
        "/api/2.0/mlflow/users/create",
        &admin,
        r#"{"username": "carol", "password": "carol-pw"}"#,
    );
    assert_eq!(s, 200);

    let (s, made) = call(&server, "POST", tokens, &carol, r#"{"scope": "read"}"#);
    assert_eq!(s, 200, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("tlp_"), "{made}");
    assert_eq!(made["token_info"]["username"], "carol");
    assert_eq!(made["token_info"]["scope"], "read");
    let bearer = format!("Bearer {token}");
    let search = "/api/2.0/mlflow/experiments/search?max_results=1";
    assert_eq!(status(&server, "GET", search, &bearer, ""), 200);
    // A narrower token mints nothing, a user no deploy token, nor anyone's but their own.
    assert_eq!(
        call(&server, "POST", tokens, &bearer, r#"{"scope": "read"}"#).0,
        403
    );
    assert_eq!(
        call(&server, "POST", tokens, &carol, r#"{"scope": "deploy"}"#).0,
        403
    );
    assert_eq!(
        call(
            &server,
            "POST",
            tokens,
            &carol,
            r#"{"scope": "read", "username": "admin"}"#
        )
        .0,
        403
    );
    assert_eq!(
        call(&server, "POST", tokens, &carol, r#"{"scope": "root"}"#).0,
        400
    );
    let (s, theirs) = call(
        &server,
        "POST",
        tokens,
        &admin,
        r#"{"scope": "deploy", "username": "carol", "description": "ci"}"#,
    );
    assert_eq!(s, 200, "{theirs}");
    let (s, admins) = call(&server, "POST", tokens, &admin, r#"{"scope": "admin"}"#);
    assert_eq!(s, 200, "{admins}");

    let (s, listed) = call(&server, "GET", tokens, &carol, "");
    assert_eq!(s, 200, "{listed}");
    let listed = listed["tokens"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|t| t["username"] == "carol" && t.get("token").is_none())
    );
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("{tokens}?username=admin"),
            &carol,
            ""
        )
        .0,
        403
    );
    let (_, everyone) = call(&server, "GET", tokens, &admin, "");
    assert_eq!(
        everyone["tokens"].as_array().unwrap().len(),
        3,
        "{everyone}"
    );

    let admins_id = admins["token_info"]["id"].as_i64().unwrap();
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("{tokens}/{admins_id}"),
            &carol,
            ""
        )
        .0,
        404,
        "another user's token is not there for carol"
    );
    let id = made["token_info"]["id"].as_i64().unwrap();
    assert_eq!(
        call(&server, "DELETE", &format!("{tokens}/{id}"), &carol, "").0,
        200
    );
    assert_eq!(status(&server, "GET", search, &bearer, ""), 401);
}

#[test]
fn the_ui_lists_only_what_the_caller_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_auth(dir.path(), ADMIN_PASSWORD);
    let admin = basic("admin", ADMIN_PASSWORD);
    let carol = basic("carol", "carol-pw");
    let api = |method: &str, path: &str, body: &str| {
        let (s, answer) = call(
            &server,
            method,
            &format!("/api/2.0/mlflow/{path}"),
            &admin,
            body,
        );
        assert_eq!(s, 200, "{path}: {answer}");
        answer
    };
    api(
        "POST",
        "users/create",
        r#"{"username": "carol", "password": "carol-pw"}"#,
    );
    for name in ["shown-exp", "hidden-exp"] {
        api(
            "POST",
            "experiments/create",
            &format!(r#"{{"name": "{name}"}}"#),
        );
    }
    for name in ["shown-model", "hidden-model"] {
        api(
            "POST",
            "registered-models/create",
            &format!(r#"{{"name": "{name}"}}"#),
        );
    }
    let hidden = api(
        "GET",
        "experiments/get-by-name?experiment_name=hidden-exp",
        "",
    );
    let hidden_id = hidden["experiment"]["experiment_id"].as_str().unwrap();
    api(
        "POST",
        "experiments/permissions/create",
        &format!(
            r#"{{"experiment_id": "{hidden_id}", "username": "carol", "permission": "NO_PERMISSIONS"}}"#
        ),
    );
    api(
        "POST",
        "registered-models/permissions/create",
        r#"{"name": "hidden-model", "username": "carol", "permission": "NO_PERMISSIONS"}"#,
    );
    let page = |path: &str, who: &str| {
        let reply = server.raw(&format!(
            "GET {path} HTTP/1.0\r\nAuthorization: {who}\r\n\r\n"
        ));
        assert_eq!(reply.split(' ').nth(1), Some("200"), "{reply:.300}");
        reply
    };
    let experiments = page("/experiments", &carol);
    assert!(experiments.contains("shown-exp"), "{experiments}");
    assert!(!experiments.contains("hidden-exp"), "{experiments}");
    let models = page("/models", &carol);
    assert!(models.contains("shown-model"), "{models}");
    assert!(!models.contains("hidden-model"), "{models}");
    let everything = page("/experiments", &admin);
    assert!(everything.contains("hidden-exp"));
    assert!(page("/models", &admin).contains("hidden-model"));
}

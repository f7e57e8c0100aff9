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

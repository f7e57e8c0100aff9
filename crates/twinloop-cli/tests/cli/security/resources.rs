//! Resource limits and what errors say: a full route class sheds load at once while the others
//! answer, and no client error names a server path or database internals.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::Jail;

pub async fn a_full_route_class_answers_429_while_others_answer() {
    let jail = Jail::with(&["--max-concurrent-artifacts", "1"]);
    // An upload that never finishes holds the one artifact permit.
    let mut held = std::net::TcpStream::connect(("127.0.0.1", jail.server.port)).unwrap();
    held.write_all(
        b"PUT /api/2.0/mlflow-artifacts/artifacts/slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\npartial",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = jail
        .http
        .get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts?path=",
            jail.server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    let body: serde_json::Value = busy.json().await.unwrap();
    assert_eq!(body["error_code"], "RESOURCE_EXHAUSTED", "{body}");
    let (status, text) = jail
        .call(
            "GET",
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            None,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = jail
        .call(
            "POST",
            "/api/2.0/mlflow/experiments/search",
            Some(json!({"max_results": 1})),
        )
        .await;
    assert_eq!(status, 200);
    // The permit comes back with the connection.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, text) = jail
        .call("GET", "/api/2.0/mlflow-artifacts/artifacts?path=", None)
        .await;
    assert_eq!(status, 200, "{text}");
    jail.check();
}

/// SQL words and driver names no client error may carry.
const DATABASE_WORDS: [&str; 8] = [
    "sqlx",
    "rusqlite",
    "SQLITE_",
    "constraint failed",
    "violates",
    "syntax error at",
    "SELECT ",
    "duplicate key",
];

pub async fn client_errors_name_no_server_path_and_no_sql() {
    let jail = Jail::new();
    let data = jail.data().display().to_string();
    let run: serde_json::Value = serde_json::from_str(
        &jail
            .call(
                "POST",
                "/api/2.0/mlflow/runs/create",
                Some(json!({"experiment_id": "0"})),
            )
            .await
            .1,
    )
    .unwrap();
    let run = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let mut answers = Vec::new();
    for (method, path, body) in [
        // Bad artifact paths.
        (
            "GET",
            format!("/get-artifact?path=missing.txt&run_uuid={run}"),
            None,
        ),
        (
            "GET",
            format!("/get-artifact?path=../x&run_uuid={run}"),
            None,
        ),
        (
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts/missing/file.txt".to_string(),
            None,
        ),
        (
            "GET",
            format!("/api/2.0/mlflow/artifacts/list?run_id={run}&path=nope"),
            None,
        ),
        // Constraint violations.
        (
            "POST",
            "/api/2.0/mlflow/experiments/create".to_string(),
            Some(json!({"name": "Default"})),
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-batch".to_string(),
            Some(
                json!({"run_id": run, "params": [{"key": "p", "value": "1"}, {"key": "p", "value": "2"}]}),
            ),
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-parameter".to_string(),
            Some(json!({"run_id": run, "key": "q", "value": "1"})),
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/log-parameter".to_string(),
            Some(json!({"run_id": run, "key": "q", "value": "2"})),
        ),
        // A value PostgreSQL cannot hold (SQLite stores it): the database's own refusal.
        (
            "POST",
            "/api/2.0/mlflow/experiments/create".to_string(),
            Some(json!({"name": "nul\u{0}name"})),
        ),
        // Bad filters and orderings.
        (
            "POST",
            "/api/2.0/mlflow/runs/search".to_string(),
            Some(json!({"experiment_ids": ["0"], "filter": "metrics.m >< 'x' OR 1=1; --"})),
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search".to_string(),
            Some(json!({"experiment_ids": ["0"], "order_by": ["metrics.`x` DESCX"]})),
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search".to_string(),
            Some(json!({"experiment_ids": ["0"], "filter": "params.p = 'it''s'"})),
        ),
        (
            "GET",
            "/api/2.0/mlflow/registered-models/search?filter=name%20ILIKE%20%27%25%27%27"
                .to_string(),
            None,
        ),
        (
            "POST",
            "/api/2.0/mlflow/runs/search".to_string(),
            Some(json!({"experiment_ids": ["0"], "page_token": "bm90IGEgdG9rZW4="})),
        ),
    ] {
        let (status, text) = jail.call(method, &path, body.clone()).await;
        answers.push((method, path, status, text));
    }
    for (method, path, status, text) in &answers {
        if *status < 400 {
            continue;
        }
        assert!(*status < 500, "{method} {path}: {status} {text}");
        assert!(
            !text.contains(&data),
            "{method} {path} names the data directory: {text}"
        );
        for word in DATABASE_WORDS {
            assert!(
                !text.to_lowercase().contains(&word.to_lowercase()),
                "{method} {path} names the database ({word}): {text}"
            );
        }
    }
    assert!(
        answers.iter().filter(|(_, _, s, _)| *s >= 400).count() >= 8,
        "{answers:?}"
    );
    if super::Backend::current() == super::Backend::PostgresS3 {
        let (_, _, status, text) = answers
            .iter()
            .find(|(_, _, _, text)| text.contains("error id"))
            .expect("the NUL character is the database's refusal, answered with an error id");
        assert_eq!(*status, 400, "{text}");
    }
    jail.check();
}

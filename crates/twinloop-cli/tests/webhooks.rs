//! Registry webhooks on the real binary: a local receiver fails the first delivery, the server
//! retries, the body is signed with the secret, and the delivery log shows both attempts.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::TestServer;

struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

/// A one-route HTTP receiver that answers 500 to the first request and 200 after.
fn receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let first = {
                let mut log = log.lock().unwrap();
                log.push(Received {
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                log.len() == 1
            };
            let status = if first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let mut stream = reader.into_inner();
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (port, got)
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> (u16, Value) {
    let resp = c.request(method, url).json(&body).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn alias_moves_reach_a_webhook_signed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let hooks = format!("{}/api/twinloop/v1/registry/webhooks", server.url);
    let (port, received) = receiver();
    let secret = "a-long-shared-secret";

    for bad in [
        json!({"url": "ftp://127.0.0.1/x", "secret": secret}),
        json!({"url": "http://127.0.0.1/x", "secret": "short"}),
        json!({"url": "http://127.0.0.1/x", "secret": secret, "events": ["NOT_A_KIND"]}),
        json!({"secret": secret}),
    ] {
        let (status, body) = call(&c, reqwest::Method::POST, hooks.clone(), bad.clone()).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (400, Some("INVALID_PARAMETER_VALUE")),
            "{bad}"
        );
    }
    let (status, created) = call(
        &c,
        reqwest::Method::POST,
        hooks.clone(),
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": secret, "events": ["ALIAS_SET"], "model_name": "fraud"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert!(
        created["webhook"].get("secret").is_none(),
        "the secret is never echoed"
    );
    let id = created["webhook"]["id"].as_i64().unwrap();

    call(
        &c,
        reqwest::Method::POST,
        server.api("registered-models/create"),
        json!({"name": "fraud"}),
    )
    .await;
    call(
        &c,
        reqwest::Method::POST,
        server.api("model-versions/create"),
        json!({"name": "fraud", "source": "s3://b/m"}),
    )
    .await;
    let (status, _) = call(
        &c,
        reqwest::Method::POST,
        server.api("registered-models/alias"),
        json!({"name": "fraud", "alias": "champion", "version": "1"}),
    )
    .await;
    assert_eq!(status, 200);

    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = std::mem::take(&mut *received.lock().unwrap());
    assert_eq!(
        got.len(),
        2,
        "one failed attempt, one retry; nothing for other event kinds"
    );
    for r in got.iter() {
        let event: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (
                event["kind"].as_str(),
                event["alias"].as_str(),
                event["after"].as_str()
            ),
            (Some("ALIAS_SET"), Some("champion"), Some("1"))
        );
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(r.body.as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            header("x-twinloop-signature-256"),
            format!("sha256={expected}")
        );
        assert_eq!(header("x-twinloop-event"), "ALIAS_SET");
    }

    // The second attempt is logged just after its reply arrives: wait for it.
    let mut attempts: Vec<(i64, bool, Option<i64>)> = Vec::new();
    while attempts.len() < 2 && Instant::now() < deadline {
        let log: Value = c
            .get(format!("{hooks}/{id}/deliveries"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        attempts = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["attempt"].as_i64().unwrap(),
                    d["delivered"].as_bool().unwrap(),
                    d["status_code"].as_i64(),
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts, [(2, true, Some(200)), (1, false, Some(500))]);

    let (status, _) = call(
        &c,
        reqwest::Method::DELETE,
        format!("{hooks}/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &c,
        reqwest::Method::DELETE,
        format!("{hooks}/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
}

//! The web UI on the real binary: pages for runs logged through MLflow's REST API, their
//! security headers (CSP, no inline script), content-hashed immutable assets with gzip,
//! hostile names rendered inert, an invalid filter answered with the form and the store's
//! message, and 404 pages for unknown ids while API clients keep MLflow's JSON 404.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::TestServer;

async fn post(c: &reqwest::Client, url: &str, body: Value) -> Value {
    let resp = c.post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.json().await.unwrap()
}

/// GETs a page as a browser does: status, headers, body.
async fn page(c: &reqwest::Client, url: &str) -> (u16, HeaderMap, String) {
    let resp = c
        .get(url)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// What every HTML answer carries, whatever its status.
fn assert_html_headers(url: &str, h: &HeaderMap) {
    assert!(
        h["content-type"].to_str().unwrap().starts_with("text/html"),
        "{url}"
    );
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    assert!(
        h["server-timing"].to_str().unwrap().contains("total;dur="),
        "{url}"
    );
}

fn assert_inert(url: &str, body: &str) {
    assert!(!body.contains("<script>alert"), "{url}: {body}");
    assert!(!body.contains("href=\"javascript:"), "{url}: {body}");
    // Scripts only by src, from this server.
    for part in body.split("<script").skip(1) {
        assert!(
            part.trim_start().starts_with("src=\"/static/"),
            "{url}: <script{part}"
        );
    }
}

fn static_urls(body: &str) -> Vec<String> {
    body.split("\"/static/")
        .skip(1)
        .map(|rest| format!("/static/{}", rest.split('"').next().unwrap()))
        .collect()
}

#[tokio::test]
async fn pages_assets_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let ui = |path: &str| format!("{}{path}", server.url);

    let exp = post(
        &c,
        &server.api("experiments/create"),
        json!({"name": "ui <script>alert(1)</script>"}),
    )
    .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let create = |name: &str, tags: Value| {
        let body = json!({"experiment_id": exp, "run_name": name, "start_time": 1, "tags": tags});
        let c = c.clone();
        let url = server.api("runs/create");
        async move {
            post(&c, &url, body).await["run"]["info"]["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let parent = create(
        "<script>alert(1)</script>",
        json!([{"key": "mlflow.source.git.repoURL", "value": "javascript:alert(1)"}]),
    )
    .await;
    let child = create(
        "child-run",
        json!([{"key": "mlflow.parentRunId", "value": parent}]),
    )
    .await;
    let metrics: Vec<Value> = [3.0, 0.5, 2.0]
        .iter()
        .enumerate()
        .map(|(step, v)| json!({"key": "loss", "value": v, "timestamp": step, "step": step}))
        .collect();
    post(
        &c,
        &server.api("runs/log-batch"),
        json!({"run_id": parent, "metrics": metrics, "params": [
            {"key": "lr", "value": "0.1"},
            {"key": "note", "value": "<script>alert(1)</script>"},
        ]}),
    )
    .await;

    // The experiments list, at / and /experiments.
    for path in ["/", "/experiments"] {
        let (status, h, body) = page(&c, &ui(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_html_headers(path, &h);
        assert_inert(path, &body);
        assert!(
            body.contains("ui &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{body}"
        );
        assert!(
            body.contains(&format!("href=\"/experiments/{exp}\"")),
            "{body}"
        );
        assert!(body.contains(&format!("MLFLOW_TRACKING_URI={}", server.url)));
    }

    // Assets: content-hashed, immutable, gzipped when asked, within budget.
    let (_, _, root) = page(&c, &ui("/")).await;
    let assets = static_urls(&root);
    assert!(
        assets.iter().any(|a| a.starts_with("/static/hash-routes.")),
        "{assets:?}"
    );
    assert!(
        assets.iter().any(|a| a.starts_with("/static/htmx.min.")),
        "{assets:?}"
    );
    let mut total = 0;
    for asset in &assets {
        let plain = c.get(ui(asset)).send().await.unwrap();
        assert_eq!(plain.status().as_u16(), 200, "{asset}");
        let h = plain.headers().clone();
        assert!(
            h["cache-control"].to_str().unwrap().contains("immutable"),
            "{asset}"
        );
        assert!(h.get("content-encoding").is_none());
        let ct = h["content-type"].to_str().unwrap();
        assert!(
            ct.starts_with("text/javascript") || ct.starts_with("text/css"),
            "{ct}"
        );
        total += plain.bytes().await.unwrap().len();
        let gz = c
            .get(ui(asset))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.headers()["content-encoding"], "gzip", "{asset}");
        assert_eq!(&gz.bytes().await.unwrap()[..2], [0x1f, 0x8b]);
    }
    assert!(total <= 250_000, "{total} bytes");
    let stale = c.get(ui("/static/htmx.min.js")).send().await.unwrap();
    assert_eq!(stale.status().as_u16(), 404);

    // The runs table: escaped, nested, with loss's last and min–max.
    let runs_url = format!("/experiments/{exp}");
    let (status, h, body) = page(&c, &ui(&runs_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers(&runs_url, &h);
    assert_inert(&runs_url, &body);
    assert!(
        body.contains(&format!("data-run-id=\"{parent}\"")),
        "{body}"
    );
    let parent_row = body.find(&format!("data-run-id=\"{parent}\"")).unwrap();
    let child_row = body.find(&format!("data-run-id=\"{child}\"")).unwrap();
    assert!(parent_row < child_row, "the child follows its parent");
    assert!(body.contains("<td class=\"name depth-1\">"), "{body}");
    assert!(body.contains("0.5 … 3"), "{body}");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // A filter in the MLflow language, and an ordering by a metric summary.
    let filtered =
        format!("{runs_url}?filter=params.lr%20%3D%20%270.1%27&order=metrics.%60loss%60.min%20ASC");
    let (status, _, body) = page(&c, &ui(&filtered)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("data-run-id=\"{parent}\"")));
    assert!(
        !body.contains(&format!("data-run-id=\"{child}\"")),
        "{body}"
    );

    // An invalid filter: the store's message, the form with what was typed, a 400.
    let bad = format!("{runs_url}?filter=metrics.loss%20%3E%3E%201");
    let (status, h, body) = page(&c, &ui(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_html_headers(&bad, &h);
    assert!(body.contains("id=\"search-error\""), "{body}");
    assert!(body.contains("value=\"metrics.loss &gt;&gt; 1\""), "{body}");
    let (status, _, _) = page(&c, &ui(&runs_url)).await;
    assert_eq!(status, 200, "the page keeps working");

    // The run page: metrics with count, the child, the hostile repo URL as text.
    let run_url = format!("/experiments/{exp}/runs/{parent}");
    let (status, h, body) = page(&c, &ui(&run_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers(&run_url, &h);
    assert_inert(&run_url, &body);
    assert!(
        body.contains(&format!("href=\"/experiments/{exp}/runs/{child}\"")),
        "{body}"
    );
    assert!(
        body.contains("<td class=\"num\">3</td>"),
        "count of loss: {body}"
    );
    assert!(body.contains("javascript:alert(1)"));
    let (status, _, body) = page(&c, &ui(&format!("/experiments/{exp}/runs/{child}"))).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("href=\"/experiments/{exp}/runs/{parent}\"")),
        "{body}"
    );

    // Unknown ids: a 404 page, never a 500.
    for path in [
        "/experiments/987654".to_string(),
        "/experiments/not-a-number".to_string(),
        format!("/experiments/{exp}/runs/0123456789abcdef0123456789abcdef"),
        format!("/experiments/{exp}/runs/%3Cscript%3E"),
        format!("/experiments/0/runs/{parent}"),
        "/no/such/page".to_string(),
    ] {
        let (status, h, body) = page(&c, &ui(&path)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_html_headers(&path, &h);
        assert_inert(&path, &body);
        assert!(body.contains("Not found"), "{path}");
    }

    // API clients asking for an unknown path still get MLflow's JSON.
    for path in ["/no/such/page", "/api/2.0/mlflow/no-such-endpoint"] {
        let resp = c.get(ui(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error_code"], "ENDPOINT_NOT_FOUND", "{path}");
    }
}

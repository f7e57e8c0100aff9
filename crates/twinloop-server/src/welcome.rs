//! The page a browser gets until the web UI lands: the stock mlflow client prints a
//! `/#/experiments/…` link after every run, and a bare JSON 404 there reads as a broken server.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use crate::MLFLOW_COMPAT_VERSION;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>twinloop</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; color: #1f2933; line-height: 1.5; }
code { background: #eef2f6; padding: 0.1rem 0.3rem; border-radius: 3px; }
h1 { margin-bottom: 0.2rem; }
.muted { color: #616e7c; }
</style>
</head>
<body>
<h1>twinloop</h1>
<p class="muted">MLOps dual loop in one binary &middot; MLflow protocol VERSION</p>
<p>This is a <strong>twinloop server</strong>: an MLflow-compatible tracking server and model registry,
with deployments (KServe V2 inference), monitors and lineage.</p>
<p><strong>The web UI is not built yet</strong>; it is coming in a later release. Meanwhile everything
is reachable through the APIs:</p>
<ul>
<li>MLflow REST API: <code>/api/2.0/mlflow/…</code> &mdash; point the stock client here with
<code>MLFLOW_TRACKING_URI=ORIGIN</code></li>
<li>Artifacts: <code>/api/2.0/mlflow-artifacts/…</code></li>
<li>twinloop's own API (lineage, registry events, webhooks, deployments, monitors):
<a href="/api/twinloop/v1/openapi.json"><code>/api/twinloop/v1/openapi.json</code></a></li>
<li>Inference (Open Inference Protocol / KServe V2): <code>/v2/models/&lt;deployment&gt;/infer</code></li>
<li>Prometheus metrics: <a href="/metrics"><code>/metrics</code></a> &middot; health: <a href="/health"><code>/health</code></a></li>
</ul>
<p>From a shell: <code>twinloop models list</code>, <code>twinloop deploy status NAME</code>,
<code>twinloop monitor list</code>, <code>twinloop lineage model_version:NAME/1 --upstream</code>.</p>
</body>
</html>
"#;

/// The page, with the address the browser used, so the `MLFLOW_TRACKING_URI` it shows is right.
fn page(headers: &HeaderMap) -> Html<String> {
    let origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .map_or_else(
            || "http://127.0.0.1:5000".to_string(),
            |h| format!("http://{h}"),
        );
    Html(
        PAGE.replace("VERSION", MLFLOW_COMPAT_VERSION)
            .replace("ORIGIN", &origin),
    )
}

pub(crate) async fn index(headers: HeaderMap) -> Html<String> {
    page(&headers)
}

/// Browsers (which ask for HTML) get the page with a 404; API clients get MLflow's JSON error.
pub(crate) async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return (StatusCode::NOT_FOUND, page(&headers)).into_response();
    }
    crate::ApiError::no_endpoint(uri.path()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_address_the_browser_used() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "10.1.2.3:5001".parse().unwrap());
        let Html(body) = page(&headers);
        assert!(body.contains("MLFLOW_TRACKING_URI=http://10.1.2.3:5001"));
        assert!(body.contains(MLFLOW_COMPAT_VERSION));
    }

    #[test]
    fn a_hostile_host_header_is_not_echoed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "x<script>".parse().unwrap());
        let Html(body) = page(&headers);
        assert!(!body.contains("<script>"));
        assert!(body.contains("MLFLOW_TRACKING_URI=http://127.0.0.1:5000"));
    }
}

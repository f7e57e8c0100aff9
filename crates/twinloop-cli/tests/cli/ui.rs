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

/// Creates an experiment named `name` and returns its id.
async fn create_experiment(c: &reqwest::Client, server: &TestServer, name: &str) -> String {
    post(c, &server.api("experiments/create"), json!({"name": name})).await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn pages_assets_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let ui = |path: &str| format!("{}{path}", server.url);

    let exp = create_experiment(&c, &server, "ui <script>alert(1)</script>").await;
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
    // The child shows under its parent once the parent is expanded (top-level runs otherwise).
    let (status, h, body) = page(&c, &ui(&format!("{runs_url}?expand={parent}"))).await;
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
    // loss: last 2, min 0.5, max 3, each its own column.
    assert!(
        body.contains(
            "<td class=\"num\"><span title=\"2\">2</span></td><td class=\"num\"><span title=\"0.5\">0.5</span></td><td class=\"num\"><span title=\"3\">3</span></td>"
        ),
        "{body}"
    );
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(body.contains("data-total=\"2\""), "{body}");

    // A window of rows by position, as the table's script fetches it; a window too large is
    // refused with a message, not a page.
    let window = format!("{runs_url}/rows?offset=0&limit=1");
    let (status, h, rows) = page(&c, &ui(&window)).await;
    assert_eq!(status, 200, "{rows}");
    assert!(h.contains_key("server-timing"), "{h:?}");
    assert_eq!(rows.matches("<tr ").count(), 1, "{rows}");
    assert_inert(&window, &rows);
    let (status, _, message) = page(&c, &ui(&format!("{runs_url}/rows?limit=500"))).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("expected 1 to 200"), "{message}");
    let (status, _, _) = page(&c, &ui("/experiments/987654/rows")).await;
    assert_eq!(status, 404);

    // Grouped by a param: one group per value, with its run count.
    let (status, _, body) = page(&c, &ui(&format!("{runs_url}?group=lr"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<tbody class=\"group collapsed\" data-value=\"0.1\">"),
        "{body}"
    );

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

/// The value of `name="{field}"`'s `value` attribute in a page.
fn form_value(body: &str, field: &str) -> String {
    let at = body
        .find(&format!("name=\"{field}\" value=\""))
        .unwrap_or_else(|| panic!("no {field} in {body}"));
    let rest = &body[at + format!("name=\"{field}\" value=\"").len()..];
    rest.split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn charts_compare_artifacts_and_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ui = |path: &str| format!("{}{path}", server.url);
    let exp = create_experiment(&c, &server, "charts").await;
    let other = create_experiment(&c, &server, "other").await;
    let mut runs = Vec::new();
    for (name, lr) in [("a", "0.1"), ("b", "0.2")] {
        let run = post(
            &c,
            &server.api("runs/create"),
            json!({"experiment_id": exp, "run_name": name, "start_time": 1}),
        )
        .await["run"]["info"]
            .clone();
        let id = run["run_id"].as_str().unwrap().to_string();
        let metrics: Vec<Value> = (0..50)
            .flat_map(|step| {
                [
                    json!({"key": "loss", "value": 1.0 / f64::from(step + 1), "timestamp": step, "step": step}),
                    json!({"key": "train/acc", "value": f64::from(step) / 50.0, "timestamp": step, "step": step}),
                ]
            })
            .collect();
        post(
            &c,
            &server.api("runs/log-batch"),
            json!({"run_id": id, "metrics": metrics, "params": [
                {"key": "lr", "value": lr}, {"key": "opt", "value": "adam"},
            ]}),
        )
        .await;
        runs.push((id, run["artifact_uri"].as_str().unwrap().to_string()));
    }
    let (a, a_root) = &runs[0];
    let b = &runs[1].0;
    let elsewhere = post(
        &c,
        &server.api("runs/create"),
        json!({"experiment_id": other, "run_name": "x", "start_time": 1}),
    )
    .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Charts: a card per metric on the run page, each key's own page, scripts only from here.
    let run_url = format!("/experiments/{exp}/runs/{a}");
    let (status, h, body) = page(&c, &ui(&run_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers(&run_url, &h);
    assert_inert(&run_url, &body);
    assert!(
        body.contains(&format!(
            "<div class=\"charts\" data-runs=\"{a}\"><figure class=\"chart\" data-key=\"loss\""
        )),
        "{body}"
    );
    assert!(body.contains("/static/chart."), "{body}");
    let metric_url = format!("{run_url}/metrics/train%2Facc?log=1&from=10&to=20");
    let (status, h, body) = page(&c, &ui(&metric_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers(&metric_url, &h);
    assert!(body.contains("data-key=\"train/acc\""), "{body}");
    assert!(
        body.contains("data-zoom=\"1\" data-from=\"10\" data-to=\"20\""),
        "{body}"
    );
    // What the chart script asks for answers, and a zoomed range comes back raw.
    let series: Value = c
        .get(
            server.url.clone()
                + &format!(
                    "/api/twinloop/v1/metrics/series?run_ids={a}&key=loss&from=10&to=20&buckets=400"
                ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series["runs"][0]["raw"], true, "{series}");

    // Compare: the checkboxes' form, the diff, overlays, scatter, parallel coordinates.
    let (_, _, table) = page(&c, &ui(&format!("/experiments/{exp}"))).await;
    assert!(
        table.contains(&format!("action=\"/experiments/{exp}/compare\"")),
        "{table}"
    );
    assert!(
        table.contains(&format!("name=\"run\" value=\"{a}\"")),
        "{table}"
    );
    let compare = format!("/experiments/{exp}/compare?run={a}&run={b}&equal=hide");
    let (status, h, body) = page(&c, &ui(&compare)).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers(&compare, &h);
    assert!(
        body.contains("<tr class=\"differs\"><td class=\"mono\">lr</td>"),
        "{body}"
    );
    assert!(!body.contains(">opt</td>"), "{body}");
    assert!(body.contains(&format!("data-runs=\"{a},{b}\"")), "{body}");
    assert!(body.contains("id=\"scatter\"") && body.contains("id=\"parallel\""));

    // Artifacts: the tree, escaped text, a CSV table, sandboxed HTML, a download link.
    let base = a_root.strip_prefix("mlflow-artifacts:/").unwrap();
    for (path, content) in [
        ("notes.txt", "<script>alert(1)</script>".to_string()),
        ("data/table.csv", "x,y\n1,<b>\n2,3\n".to_string()),
        (
            "report.html",
            "<script>parent.document.title='pwned'</script><p>report</p>".to_string(),
        ),
    ] {
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{base}/{path}",
            server.url
        );
        let r = c.put(url).body(content).send().await.unwrap();
        assert!(r.status().is_success(), "{path}");
    }
    let (_, _, body) = page(&c, &ui(&run_url)).await;
    assert!(
        body.contains("id=\"artifact-tree\"") && body.contains(">table.csv</a>"),
        "{body}"
    );
    let art = |path: &str| format!("/experiments/{exp}/runs/{a}/artifacts?path={path}");
    let (status, h, body) = page(&c, &ui(&art("notes.txt"))).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers("artifacts", &h);
    assert_inert("artifacts", &body);
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(body.contains(&format!(
        "href=\"/get-artifact?run_id={a}&amp;path=notes.txt\""
    )));
    let (_, _, body) = page(&c, &ui(&art("data%2Ftable.csv"))).await;
    assert!(
        body.contains("<th>y</th>") && body.contains("<td>&lt;b&gt;</td>"),
        "{body}"
    );
    let (_, _, body) = page(&c, &ui(&art("report.html"))).await;
    assert!(body.contains("sandbox=\"allow-scripts\""), "{body}");
    let raw = c
        .get(ui(&format!(
            "/experiments/{exp}/runs/{a}/artifacts/raw?path=report.html"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 200);
    let csp = raw.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.starts_with("sandbox allow-scripts") && !csp.contains("same-origin"),
        "{csp}"
    );
    for bad in [
        format!("/experiments/{exp}/runs/{a}/artifacts/raw?path=notes.txt"),
        art("missing.txt"),
        art("..%2F..%2Fetc%2Fpasswd"),
        format!("/experiments/{exp}/runs/{a}/metrics/nope"),
        format!("/experiments/{exp}/compare?runs={a},{elsewhere}"),
        format!("/experiments/{exp}/compare?runs=0123456789abcdef0123456789abcdef"),
    ] {
        let (status, h, body) = page(&c, &ui(&bad)).await;
        assert_eq!(status, 404, "{bad}: {body}");
        assert_html_headers(&bad, &h);
    }

    // The registry: list, model, version, then an alias set through the confirmation.
    post(
        &c,
        &server.api("registered-models/create"),
        json!({"name": "ui model"}),
    )
    .await;
    let v = post(
        &c,
        &server.api("model-versions/create"),
        json!({"name": "ui model", "source": a_root, "run_id": a}),
    )
    .await["model_version"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = page(&c, &ui("/models")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("href=\"/models/ui%20model\""), "{body}");
    let (status, _, body) = page(&c, &ui("/models/ui%20model")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("href=\"/models/ui%20model/versions/{v}\"")),
        "{body}"
    );
    assert!(body.contains("id=\"metric-over-versions\""), "{body}");
    let version_url = format!("/models/ui%20model/versions/{v}");
    let (status, h, body) = page(&c, &ui(&version_url)).await;
    assert_eq!(status, 200, "{body}");
    assert_html_headers(&version_url, &h);
    assert!(body.contains(&format!("href=\"/runs/{a}\"")), "{body}");
    assert!(body.contains("id=\"alias-form\""), "{body}");
    let r = c.get(ui(&format!("/runs/{a}"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], run_url.as_str());
    let (status, _, body) = page(&c, &ui(&format!("{version_url}/alias?alias=champion"))).await;
    assert_eq!(status, 200, "{body}");
    let token = form_value(&body, "token");
    let set = |token: String, origin: Option<&str>| {
        let mut req = c.post(ui("/models/ui%20model/aliases")).form(&[
            ("alias", "champion"),
            ("version", v.as_str()),
            ("token", &token),
        ]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_eq!(
        set("1.00".into(), None).await.unwrap().status().as_u16(),
        403
    );
    let evil = set(token.clone(), Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(evil.status().as_u16(), 403);
    let ok = set(token, Some(&server.url)).await.unwrap();
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers()["location"], version_url.as_str());
    let by_alias: Value = c
        .get(server.api("registered-models/alias?name=ui%20model&alias=champion"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        by_alias["model_version"]["version"],
        v.as_str(),
        "{by_alias}"
    );
    // Deleting it: a confirmation naming the version it leaves, whose token only deletes.
    let (status, _, body) = page(&c, &ui("/models/ui%20model/aliases/delete?alias=champion")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("It names version"), "{body}");
    let delete_token = form_value(&body, "token");
    let delete = |token: String| {
        c.post(ui("/models/ui%20model/aliases/delete"))
            .header("origin", server.url.as_str())
            .form(&[
                ("alias", "champion"),
                ("version", v.as_str()),
                ("token", &token),
            ])
            .send()
    };
    let (_, _, body) = page(&c, &ui(&format!("{version_url}/alias?alias=champion"))).await;
    let set_token = form_value(&body, "token");
    assert_eq!(delete(set_token).await.unwrap().status().as_u16(), 403);
    let ok = delete(delete_token).await.unwrap();
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers()["location"], version_url.as_str());
    let gone = c
        .get(server.api("registered-models/alias?name=ui%20model&alias=champion"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 400);
    let (status, _, body) = page(&c, &ui("/models/ui%20model/aliases/delete?alias=champion")).await;
    assert_eq!(status, 404, "{body}");
    // The model's timeline lists the changes, newest first.
    let (status, _, body) = page(&c, &ui("/models/ui%20model")).await;
    assert_eq!(status, 200, "{body}");
    let deleted = body.find(r#"data-kind="ALIAS_DELETED""#).expect(&body);
    let set = body.find(r#"data-kind="ALIAS_SET""#).expect(&body);
    let created = body.find(r#"data-kind="VERSION_CREATED""#).expect(&body);
    assert!(deleted < set && set < created, "{body}");
    let (status, _, _) = page(&c, &ui("/models/ui%20model?events_before=x")).await;
    assert_eq!(status, 400);
    for bad in [
        "/models/no-such-model".to_string(),
        "/models/ui%20model/versions/99".to_string(),
        "/models/ui%20model/versions/abc".to_string(),
        "/runs/0123456789abcdef0123456789abcdef".to_string(),
    ] {
        let (status, h, body) = page(&c, &ui(&bad)).await;
        assert_eq!(status, 404, "{bad}: {body}");
        assert_html_headers(&bad, &h);
    }
}

#[tokio::test]
async fn read_only_ui_shows_no_forms_and_refuses_posts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite_with(dir.path(), &["--ui-read-only"]);
    let c = reqwest::Client::new();
    post(
        &c,
        &server.api("registered-models/create"),
        json!({"name": "m"}),
    )
    .await;
    post(
        &c,
        &server.api("model-versions/create"),
        json!({"name": "m", "source": "mlflow-artifacts:/x"}),
    )
    .await;
    let (status, _, body) = page(&c, &format!("{}/models/m/versions/1", server.url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("alias-form") && !body.contains("<form"),
        "{body}"
    );
    let (status, _, _) = page(
        &c,
        &format!("{}/models/m/versions/1/alias?alias=x", server.url),
    )
    .await;
    assert_eq!(status, 403);
    let r = c
        .post(format!("{}/models/m/aliases", server.url))
        .form(&[("alias", "x"), ("version", "1"), ("token", "t")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (status, _, _) = page(
        &c,
        &format!("{}/models/m/aliases/delete?alias=x", server.url),
    )
    .await;
    assert_eq!(status, 403);
    let r = c
        .post(format!("{}/models/m/aliases/delete", server.url))
        .form(&[("alias", "x"), ("version", "1"), ("token", "t")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (status, _, body) = page(&c, &format!("{}/models/m", server.url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("remove-alias"), "{body}");
}

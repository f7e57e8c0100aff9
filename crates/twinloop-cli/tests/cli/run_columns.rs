//! The runs table's column reads on the real binary: `GET /api/twinloop/v1/metrics/summaries`
//! and `GET /api/twinloop/v1/experiments/{id}/keys`, fed through MLflow's REST API, and the
//! summary keys of the search language over HTTP.

use serde_json::{Value, json};
use twinloop_api::run_columns::{ExperimentKeys, MetricSummaries, MetricValue};

use crate::support::TestServer;

async fn post(c: &reqwest::Client, url: &str, body: Value) -> Value {
    let resp = c.post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.json().await.unwrap()
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let resp = c.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn summaries_and_keys_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let c = reqwest::Client::new();
    let native = |path: &str| format!("{}/api/twinloop/v1/{path}", server.url);

    let exp = post(
        &c,
        &server.api("experiments/create"),
        json!({"name": "columns"}),
    )
    .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut runs = Vec::new();
    for (i, values) in [[3.0, 0.5, 2.0], [1.0, 4.0, 1.5]].iter().enumerate() {
        let run = post(
            &c,
            &server.api("runs/create"),
            json!({"experiment_id": exp, "start_time": i}),
        )
        .await["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        let metrics: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(step, v)| json!({"key": "loss", "value": v, "timestamp": step, "step": step}))
            .collect();
        post(
            &c,
            &server.api("runs/log-batch"),
            json!({"run_id": run, "metrics": metrics, "params": [{"key": "lr", "value": "0.1"}]}),
        )
        .await;
        runs.push(run);
    }
    // A NaN point counts but is no minimum; the stock client sends it as the string "NaN".
    post(
        &c,
        &server.api("runs/log-metric"),
        json!({"run_id": runs[1], "key": "grad", "value": "NaN", "timestamp": 9, "step": 0}),
    )
    .await;

    let (status, body) = get(
        &c,
        &native(&format!(
            "metrics/summaries?run_ids={},{}&keys=loss,grad",
            runs[1], runs[0]
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let summaries: MetricSummaries = serde_json::from_value(body).unwrap();
    let ids: Vec<&str> = summaries.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [runs[1].as_str(), runs[0].as_str()]);
    let second = &summaries.runs[0].metrics;
    assert_eq!(second.len(), 2);
    let (grad, loss) = (&second[0], &second[1]);
    assert_eq!((grad.key.as_str(), grad.count, grad.min), ("grad", 1, None));
    assert!(grad.last.0.is_nan());
    assert_eq!(
        (loss.min, loss.max, loss.count, loss.last, loss.last_step),
        (
            Some(MetricValue(1.0)),
            Some(MetricValue(4.0)),
            3,
            MetricValue(1.5),
            2
        )
    );
    let first = &summaries.runs[1].metrics;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].min, Some(MetricValue(0.5)));

    // The same summaries order and filter search_runs.
    let found = post(
        &c,
        &server.api("runs/search"),
        json!({"experiment_ids": [exp], "filter": "metrics.loss.max > 3.5", "order_by": ["metrics.loss.min ASC"]}),
    )
    .await;
    assert_eq!(found["runs"].as_array().unwrap().len(), 1);
    assert_eq!(found["runs"][0]["info"]["run_id"], json!(runs[1]));
    let resp = c
        .post(server.api("runs/search"))
        .json(&json!({"experiment_ids": [exp], "filter": "metrics.`loss`.avg > 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(
        e["message"].as_str().unwrap().contains("position 15"),
        "{e}"
    );

    let (status, body) = get(&c, &native(&format!("experiments/{exp}/keys?kind=metric"))).await;
    assert_eq!(status, 200, "{body}");
    let keys: ExperimentKeys = serde_json::from_value(body).unwrap();
    let listed: Vec<(&str, i64)> = keys.keys.iter().map(|k| (k.key.as_str(), k.runs)).collect();
    assert_eq!((listed, keys.total), (vec![("loss", 2), ("grad", 1)], 2));
    let (_, body) = get(
        &c,
        &native(&format!("experiments/{exp}/keys?kind=param&q=L")),
    )
    .await;
    assert_eq!(
        body,
        json!({"keys": [{"key": "lr", "runs": 2}], "total": 1})
    );
    let (_, body) = get(
        &c,
        &native(&format!(
            "experiments/{exp}/keys?kind=tag&q=runname&limit=5"
        )),
    )
    .await;
    assert_eq!(
        body,
        json!({"keys": [{"key": "mlflow.runName", "runs": 2}], "total": 1})
    );

    // Bad requests are 400s (404 for an unknown experiment) with a message that says why.
    let too_many: Vec<String> = (0..1001).map(|i| format!("{i:032x}")).collect();
    for (path, code, says) in [
        ("metrics/summaries".to_string(), 400, "run_ids"),
        (
            format!("metrics/summaries?run_ids={}", too_many.join(",")),
            400,
            "At most 1000 runs",
        ),
        (
            format!("experiments/{exp}/keys?kind=metrics"),
            400,
            "metric, param or tag",
        ),
        (format!("experiments/{exp}/keys?limit=0"), 400, "limit"),
        (format!("experiments/{exp}/keys?limit=-1"), 400, "limit"),
        ("experiments/424242/keys".to_string(), 404, "424242"),
    ] {
        let (status, body) = get(&c, &native(&path)).await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(says),
            "{path}: {body}"
        );
    }
}

//! A small client for the commands that talk to a running server (`models`, `lineage`).

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args, Clone)]
pub struct ServerConnection {
    /// The twinloop (or MLflow) server to talk to.
    #[arg(
        long,
        env = "MLFLOW_TRACKING_URI",
        default_value = "http://127.0.0.1:5000",
        global = true
    )]
    tracking_uri: String,
}

impl ServerConnection {
    pub fn tracking_uri(&self) -> &str {
        &self.tracking_uri
    }
}

pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(conn: &ServerConnection) -> Result<Api> {
        let base = conn.tracking_uri.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            bail!(
                "tracking URI {base:?} is not an http:// URL (hint: pass --tracking-uri http://host:5000)"
            );
        }
        Ok(Api {
            base,
            http: reqwest::Client::new(),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let response = request.send().await.map_err(|e| {
            anyhow!(
                "cannot reach {} ({e}) (hint: start `twinloop server`, or set --tracking-uri / MLFLOW_TRACKING_URI)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("no message");
            bail!("{what} failed: {message} ({status})");
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)], what: &str) -> Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base)).query(query);
        self.send(request, what).await
    }

    pub async fn post(&self, path: &str, body: &Value, what: &str) -> Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(request, what).await
    }

    pub async fn delete(&self, path: &str, body: &Value, what: &str) -> Result<Value> {
        let request = self.http.delete(format!("{}{path}", self.base)).json(body);
        self.send(request, what).await
    }
}

/// Runs an async command on a small runtime of its own.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

//! A small client for the commands that talk to a running server (`models`, `lineage`, `deploy`,
//! `monitor`, `webhooks`, `serve`).

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use twinloop_api::error::ErrorBody;

/// `--tracking-uri` on the commands that talk to a running server (and their subcommands).
#[derive(Args, Clone)]
pub struct TrackingUriArg {
    /// The twinloop (or MLflow) server to talk to [default: $MLFLOW_TRACKING_URI, then
    /// http://127.0.0.1:5000].
    #[arg(long, global = true, value_name = "URL")]
    tracking_uri: Option<String>,
}

/// The server a command talks to, resolved from the flag (after the subcommand or, as before,
/// before it), then `MLFLOW_TRACKING_URI`, then the default address.
#[derive(Clone)]
pub struct ServerConnection {
    tracking_uri: String,
}

impl ServerConnection {
    pub fn resolve(after_command: &TrackingUriArg, before_command: Option<&str>) -> Self {
        let tracking_uri = after_command
            .tracking_uri
            .clone()
            .or_else(|| before_command.map(str::to_string))
            .or_else(|| {
                std::env::var("MLFLOW_TRACKING_URI")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .unwrap_or_else(|| "http://127.0.0.1:5000".to_string());
        ServerConnection { tracking_uri }
    }

    /// A server named by URL (the quickstart's own, or `pipeline run --server`).
    pub fn to(url: &str) -> Self {
        ServerConnection {
            tracking_uri: url.to_owned(),
        }
    }

    /// For `twinloop serve`, which reads models through the server's MLflow API.
    #[cfg(feature = "serving")]
    pub fn tracking_uri(&self) -> &str {
        &self.tracking_uri
    }
}

/// The credentials the stock mlflow client sends, from the same variables: Basic from
/// MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD when both are set, else Bearer
/// MLFLOW_TRACKING_TOKEN (for a server run with `--auth`).
pub(crate) fn credentials() -> reqwest::header::HeaderMap {
    use base64::Engine as _;
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let value = match (
        var("MLFLOW_TRACKING_USERNAME"),
        var("MLFLOW_TRACKING_PASSWORD"),
        var("MLFLOW_TRACKING_TOKEN"),
    ) {
        (Some(user), Some(password), _) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )),
        (_, _, Some(token)) => Some(format!("Bearer {token}")),
        _ => None,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(mut value) = value.and_then(|v| reqwest::header::HeaderValue::from_str(&v).ok()) {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    headers
}

pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(conn: &ServerConnection) -> Result<Api> {
        let base = conn.tracking_uri.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!(
                "tracking URI {base:?} is not an http:// or https:// URL (hint: pass --tracking-uri http://host:5000)"
            );
        }
        let http = reqwest::Client::builder()
            .default_headers(credentials())
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api { base, http })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let response = request.send().await.map_err(|e| {
            anyhow!(
                "cannot reach {} ({e}) (hint: start `twinloop server`, or set --tracking-uri / MLFLOW_TRACKING_URI)",
                self.base
            )
        })?;
        let status = response.status();
        // A body that is not JSON (a proxy's HTML page) reads as no answer rather than an error.
        let bytes = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{what} failed: {} ({status})", error_message(&bytes));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// GET whose answer is one of `twinloop_api`'s types.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T> {
        let request = self.http.get(format!("{}{path}", self.base)).query(query);
        decode(self.send(request, what).await?, what)
    }

    /// POST of a typed body whose answer is one of `twinloop_api`'s types.
    pub async fn post_as<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        what: &str,
    ) -> Result<T> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        decode(self.send(request, what).await?, what)
    }

    /// DELETE of a typed body whose answer is one of `twinloop_api`'s types.
    pub async fn delete_as<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        what: &str,
    ) -> Result<T> {
        let request = self.http.delete(format!("{}{path}", self.base)).json(body);
        decode(self.send(request, what).await?, what)
    }
}

/// The message of an error answer, which is an [`ErrorBody`] unless something other than the
/// server (a proxy) answered.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).map_or_else(|_| "no message".into(), |e| e.message)
}

fn decode<T: DeserializeOwned>(body: Value, what: &str) -> Result<T> {
    serde_json::from_value(body).with_context(|| {
        format!("{what}: the server's answer has an unexpected shape (hint: is the server the same twinloop version as this CLI?)")
    })
}

/// Runs an async command on a small runtime of its own.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn an_error_answer_gives_its_message_and_anything_else_none() {
        let body = br#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no deployment \"x\""}"#;
        assert_eq!(error_message(body), "no deployment \"x\"");
        assert_eq!(error_message(b"<html>502 Bad Gateway</html>"), "no message");
        assert_eq!(error_message(br#"{"error":"v2 shape"}"#), "no message");
    }
}

//! `notify.webhook@1`: POSTs a JSON body under the project's one webhook contract (signature,
//! retries with backoff) through the transport the server gives, and outputs the HTTP status.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use twinloop_core::webhook::{self, Attempt, DeliveryLog, Outcome};

use super::{Ctx, Values};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    url: String,
    body: Option<Value>,
    secret: Option<String>,
}

/// The same rules as the registry's and the monitors' webhooks: an http(s) URL with a host,
/// and a secret long enough to sign with.
fn check(args: &Args) -> Result<(), String> {
    let rest = args
        .url
        .strip_prefix("https://")
        .or_else(|| args.url.strip_prefix("http://"))
        .ok_or_else(|| format!("with.url {:?} is not http(s)", where_to(&args.url)))?;
    if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty) {
        return Err(format!("with.url {:?} has no host", where_to(&args.url)));
    }
    if args.secret.as_ref().is_some_and(|s| s.len() < 8) {
        return Err("with.secret needs at least 8 characters: it signs the body".into());
    }
    Ok(())
}

/// The scheme and host of `url`: webhook URLs often carry a token in their path, which the log
/// must not keep.
fn where_to(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// Each attempt goes to the step's log; the last answer's status is the step's output.
struct StepLog<'a> {
    ctx: &'a Ctx<'a>,
    last_status: Mutex<Option<i64>>,
}

#[async_trait]
impl DeliveryLog for StepLog<'_> {
    async fn record(&self, attempt: &Attempt) {
        *self.last_status.lock().unwrap_or_else(|p| p.into_inner()) = attempt.status_code;
        self.ctx.log.line(format!(
            "attempt {}: {}",
            attempt.attempt,
            attempt.error.as_deref().unwrap_or("delivered")
        ));
    }
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: Args = ctx.args()?;
    check(&args)?;
    let transport = ctx.services()?.webhooks.as_ref().ok_or(
        "notify.webhook needs the server's HTTP transport: run the pipeline on `twinloop server`",
    )?;
    let body = args.body.clone().unwrap_or_else(
        || serde_json::json!({"pipeline": ctx.pipeline, "run_id": ctx.run_id, "step": ctx.step}),
    );
    let bytes = serde_json::to_vec(&body).map_err(|e| format!("with.body: {e}"))?;
    let target = where_to(&args.url);
    ctx.log
        .line(format!("POST {target} ({} bytes)", bytes.len()));
    let log = StepLog {
        ctx,
        last_status: Mutex::new(None),
    };
    let secret = args.secret.as_deref().unwrap_or_default();
    match webhook::deliver(transport.as_ref(), &log, &args.url, secret, &[], &bytes).await {
        Outcome::Delivered => {
            let status = log
                .last_status
                .into_inner()
                .unwrap_or_else(|p| p.into_inner());
            Ok(Values::from([(
                "status".to_owned(),
                status.map_or(Value::Null, Value::from),
            )]))
        }
        Outcome::Failed { last_error } => Err(format!(
            "webhook to {target} not delivered after {} attempts: {last_error}",
            webhook::ATTEMPTS
        )),
        Outcome::Withdrawn => Err(format!("webhook to {target} withdrawn")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, secret: Option<&str>) -> Args {
        Args {
            url: url.into(),
            body: None,
            secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_secrets_long_enough() {
        assert!(check(&args("https://hooks.example/ml?token=x", Some("12345678"))).is_ok());
        assert!(check(&args("http://127.0.0.1:9/x", None)).is_ok());
        let e = check(&args("file:///etc/passwd", None)).unwrap_err();
        assert!(e.contains("is not http(s)"), "{e}");
        assert!(
            check(&args("https:///path", None))
                .unwrap_err()
                .contains("no host")
        );
        assert!(
            check(&args("https://h/", Some("short")))
                .unwrap_err()
                .contains("8")
        );
    }

    #[test]
    fn the_log_keeps_the_host_not_the_token() {
        assert_eq!(
            where_to("https://user:pw@hooks.example/services/T0/B0/secret?x=1"),
            "https://hooks.example"
        );
    }
}

//! Delivers registry events to webhooks through the signed-webhook contract of
//! `twinloop_core::webhook` (signature, bounded retries with backoff, one warning per event no
//! attempt delivered), writing every attempt to the store's delivery log; a webhook removed
//! during the retries gets no further attempt. Also the HTTP transport of that contract, which
//! the monitors' alert webhooks are given too.
//!
//! Events reach this process through the store's in-process broadcast, so each replica delivers
//! the events it committed. An event committed just before a crash may miss its webhooks; the
//! event log (`/api/twinloop/v1/registry/events?after=`) is the durable record.
//!
//! Webhooks made through MLflow's API hear the same events, turned into MLflow's events and
//! payloads (`mlflow_event`), signed by MLflow's scheme, and sent only where [`Reach`] allows:
//! MLflow's scheme list and its refusal of non-public addresses, checked when the webhook is
//! saved, again before each delivery, and on the address actually connected to (the resolver
//! of a guarded [`HttpTransport`], which also follows no redirect and no proxy).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use twinloop_core::registry::{
    MlflowEvent, MlflowWebhook, RegistryEvent, RegistryEventKind, Webhook, WebhookDelivery,
};
use twinloop_core::time::now_ms;
use twinloop_core::tracking::Tag;
use twinloop_core::webhook::{
    self, Attempt, DeliveryLog, NoAnswer, Outcome, WebhookTransport, is_public_ip,
};
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::pyjson::{self, Separators};
use twinloop_meta::{RegistryStore, WebhookStore};

use crate::native::event_json;

/// Webhook POSTs over reqwest, each within `webhook::TIMEOUT`.
#[derive(Clone)]
pub struct HttpTransport {
    http: reqwest::Client,
    /// Refuse URLs whose host is a non-public address literal (a literal is never resolved, so
    /// the guarded resolver would not see it).
    public_only: bool,
}

impl Default for HttpTransport {
    fn default() -> HttpTransport {
        HttpTransport {
            http: reqwest::Client::builder()
                .timeout(webhook::TIMEOUT)
                .build()
                .unwrap_or_default(),
            public_only: false,
        }
    }
}

impl HttpTransport {
    /// A transport for MLflow-style webhooks: no redirects and no proxy (either would move the
    /// request past the checks), and, unless `allow_private`, connections only to public
    /// addresses, judged on the addresses the connection uses.
    pub fn guarded(allow_private: bool) -> HttpTransport {
        let mut builder = reqwest::Client::builder()
            .timeout(webhook::TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        HttpTransport {
            http: builder.build().unwrap_or_default(),
            public_only: !allow_private,
        }
    }
}

/// Resolves a host name to its public addresses only; a name with none is an error, so a
/// rebinding DNS answer cannot lead a delivery to a private address after the URL was checked.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| is_public_ip(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "Webhook connection blocked: {host} resolves to no public IP address"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Where MLflow-style webhooks may be sent, read from MLflow's own variables as MLflow reads
/// them: `MLFLOW_WEBHOOK_ALLOWED_SCHEMES` (default `https`) and
/// `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS` (default false).
#[derive(Debug, Clone)]
pub struct Reach {
    schemes: Vec<String>,
    allow_private: bool,
}

impl Reach {
    pub fn from_env() -> Reach {
        let schemes = std::env::var("MLFLOW_WEBHOOK_ALLOWED_SCHEMES")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_else(|_| vec!["https".to_string()]);
        let allow_private = std::env::var("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS")
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"));
        Reach {
            schemes,
            allow_private,
        }
    }

    /// MLflow's checks of a webhook URL: an allowed scheme, a host, and, unless private
    /// addresses are allowed, every address the host resolves to public.
    pub async fn check(&self, url: &str) -> Result<(), Error> {
        if url.trim().is_empty() {
            return Err(Error::invalid(format!(
                "Webhook URL cannot be empty or just whitespace: '{url}'"
            )));
        }
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid(format!("Invalid webhook URL '{url}': {e}")))?;
        if !self.schemes.iter().any(|s| s == parsed.scheme()) {
            return Err(Error::invalid(format!(
                "Invalid webhook URL scheme: '{}'. Allowed schemes are: {}.",
                parsed.scheme(),
                self.schemes.join(", ")
            )));
        }
        let host = match parsed.host() {
            Some(host) if !host.to_string().is_empty() => host,
            _ => {
                return Err(Error::invalid(format!(
                    "Webhook URL must include a hostname: '{url}'"
                )));
            }
        };
        if self.allow_private {
            return Ok(());
        }
        let addresses: Vec<IpAddr> = match host {
            url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
            url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
            url::Host::Domain(name) => tokio::net::lookup_host((name, 0))
                .await
                .map_err(|e| {
                    Error::invalid(format!("Cannot resolve Webhook URL hostname '{name}': {e}"))
                })?
                .map(|a| a.ip())
                .collect(),
        };
        match addresses.into_iter().find(|ip| !is_public_ip(*ip)) {
            Some(ip) => Err(Error::invalid(format!(
                "Webhook URL must not resolve to a non-public IP address. '{host}' resolves to {ip}."
            ))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, NoAnswer> {
        Ok(self.send(url, headers, body).await?.status().as_u16())
    }

    async fn post_with_reply(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, String), NoAnswer> {
        let response = self.send(url, headers, body).await?;
        let status = response.status().as_u16();
        let mut text = response.text().await.unwrap_or_default();
        if text.len() > MAX_REPLY {
            let mut end = MAX_REPLY;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Ok((status, text))
    }
}

/// How much of a receiver's answer a webhook test reports.
const MAX_REPLY: usize = 64 * 1024;

impl HttpTransport {
    async fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<reqwest::Response, NoAnswer> {
        if self.public_only {
            let literal = match url::Url::parse(url)
                .ok()
                .and_then(|u| u.host().map(|h| h.to_owned()))
            {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal.filter(|ip| !is_public_ip(*ip)) {
                return Err(NoAnswer(
                    format!("Webhook connection blocked: {ip} is not a public IP address").into(),
                ));
            }
        }
        let mut request = self.http.post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.map_err(|e| NoAnswer(Box::new(e)))
    }
}

/// Follows committed registry events and hands each to the webhooks that want it.
pub fn spawn(registry: Arc<dyn RegistryStore>, webhooks: Arc<dyn WebhookStore>) {
    let mut events = registry.subscribe_registry_events();
    let transport = Arc::new(HttpTransport::default());
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "webhook delivery fell behind; events skipped");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let hooks = match webhooks.list_webhooks().await {
                Ok(hooks) => hooks,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read webhooks");
                    continue;
                }
            };
            for hook in hooks.into_iter().filter(|h| h.wants(&event)) {
                tokio::spawn(deliver(
                    webhooks.clone(),
                    transport.clone(),
                    hook,
                    event.clone(),
                ));
            }
            deliver_to_mlflow_hooks(registry.as_ref(), &webhooks, &event).await;
        }
    });
}

/// Hands `event`, as MLflow names it, to the active MLflow-style webhooks subscribed to it.
async fn deliver_to_mlflow_hooks(
    registry: &dyn RegistryStore,
    webhooks: &Arc<dyn WebhookStore>,
    event: &RegistryEvent,
) {
    let mut hooks = Vec::new();
    let mut token = None;
    loop {
        match webhooks.list_mlflow_webhooks(1000, token.as_deref()).await {
            Ok(page) => {
                hooks.extend(page.items.into_iter().filter(|h| h.active));
                token = page.next_page_token;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read MLflow webhooks");
                return;
            }
        }
        if token.is_none() {
            break;
        }
    }
    if hooks.is_empty() {
        return;
    }
    let prompt = match event.kind {
        RegistryEventKind::ModelCreated | RegistryEventKind::VersionCreated => {
            is_prompt(&event.detail.tags)
        }
        // As MLflow asks: is the model, as it is now, a prompt?
        _ => registry
            .get_registered_model(&event.model_name)
            .await
            .is_ok_and(|m| is_prompt(&m.tags)),
    };
    let Some((topic, data)) = mlflow_event(event, prompt) else {
        return;
    };
    let reach = Reach::from_env();
    for hook in hooks.into_iter().filter(|h| h.events.contains(&topic)) {
        tokio::spawn(deliver_mlflow(
            webhooks.clone(),
            reach.clone(),
            hook,
            event.id,
            topic,
            data.clone(),
        ));
    }
}

const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
const PROMPT_TYPE_TAG: &str = "_mlflow_prompt_type";
const PROMPT_TEXT_TAG: &str = "mlflow.prompt.text";

/// MLflow's rule: the last `mlflow.prompt.is_prompt` tag says so, in any case.
fn is_prompt(tags: &[Tag]) -> bool {
    tags.iter()
        .rev()
        .find(|t| t.key == IS_PROMPT_TAG)
        .is_some_and(|t| t.value.eq_ignore_ascii_case("true"))
}

fn tag_map<'a>(tags: &'a [Tag], without: &[&str]) -> Map<String, Value> {
    tags.iter()
        .filter(|t: &&'a Tag| !without.contains(&t.key.as_str()))
        .map(|t| (t.key.clone(), Value::from(t.value.clone())))
        .collect()
}

fn or_null(value: &Option<String>) -> Value {
    value
        .as_ref()
        .filter(|v| !v.is_empty())
        .map_or(Value::Null, |v| Value::from(v.clone()))
}

fn topic(name: &str) -> MlflowEvent {
    // Every name passed here is one of MLFLOW_EVENTS (the tests walk them all).
    MlflowEvent::parse(name).unwrap_or_else(|| unreachable!("{name} is an MLflow event"))
}

/// The MLflow event a registry event fires, with MLflow's payload for it (the request's
/// values, as MLflow's handlers build them), or `None` for changes MLflow sends no webhook for
/// (renames, deletions, stage transitions).
fn mlflow_event(e: &RegistryEvent, prompt: bool) -> Option<(MlflowEvent, Value)> {
    let d = &e.detail;
    let name = Value::from(e.model_name.clone());
    let version = Value::from(e.version.map(|v| v.to_string()));
    let (key, value) = d.tag.as_ref().map_or((Value::Null, Value::Null), |t| {
        (Value::from(t.key.clone()), Value::from(t.value.clone()))
    });
    let alias = Value::from(e.alias.clone());
    Some(match (e.kind, prompt) {
        (RegistryEventKind::ModelCreated, false) => (
            topic("registered_model.created"),
            json!({"name": name, "tags": tag_map(&d.tags, &[]),
                   "description": d.description.clone().unwrap_or_default()}),
        ),
        (RegistryEventKind::ModelCreated, true) => (
            topic("prompt.created"),
            json!({"name": name, "tags": tag_map(&d.tags, &[IS_PROMPT_TAG, PROMPT_TYPE_TAG]),
                   "description": d.description.clone().unwrap_or_default()}),
        ),
        (RegistryEventKind::VersionCreated, false) => (
            topic("model_version.created"),
            json!({"name": name, "version": version, "source": d.source.clone().unwrap_or_default(),
                   "run_id": or_null(&d.run_id), "tags": tag_map(&d.tags, &[]),
                   "description": or_null(&d.description)}),
        ),
        (RegistryEventKind::VersionCreated, true) => (
            topic("prompt_version.created"),
            json!({"name": name, "version": version,
                   "template": d.tags.iter().rev().find(|t| t.key == PROMPT_TEXT_TAG).map(|t| t.value.clone()),
                   "tags": tag_map(&d.tags, &[PROMPT_TEXT_TAG, IS_PROMPT_TAG, PROMPT_TYPE_TAG]),
                   "description": or_null(&d.description)}),
        ),
        (RegistryEventKind::VersionTagSet, p) => (
            topic(if p {
                "prompt_version_tag.set"
            } else {
                "model_version_tag.set"
            }),
            json!({"name": name, "version": version, "key": key, "value": value}),
        ),
        (RegistryEventKind::VersionTagDeleted, p) => (
            topic(if p {
                "prompt_version_tag.deleted"
            } else {
                "model_version_tag.deleted"
            }),
            json!({"name": name, "version": version, "key": key}),
        ),
        (RegistryEventKind::AliasSet, p) => (
            topic(if p {
                "prompt_alias.created"
            } else {
                "model_version_alias.created"
            }),
            json!({"name": name, "alias": alias, "version": e.after.clone()}),
        ),
        (RegistryEventKind::AliasDeleted, p) => (
            topic(if p {
                "prompt_alias.deleted"
            } else {
                "model_version_alias.deleted"
            }),
            json!({"name": name, "alias": alias}),
        ),
        _ => return None,
    })
}

/// MLflow's example payload of each event (`get_example_payload_for_event`), which a webhook
/// test sends.
fn example_payload(event: MlflowEvent) -> Value {
    let tags = json!({"example_key": "example_value"});
    match event.as_str() {
        "registered_model.created" => json!({"name": "example_model", "tags": tags,
            "description": "An example registered model"}),
        "model_version.created" => json!({"name": "example_model", "version": "1",
            "source": "models:/123", "run_id": "abcd1234abcd5678", "tags": tags,
            "description": "An example model version"}),
        "model_version_tag.set" => json!({"name": "example_model", "version": "1",
            "key": "example_key", "value": "example_value"}),
        "model_version_tag.deleted" => json!({"name": "example_model", "version": "1",
            "key": "example_key"}),
        "model_version_alias.created" => json!({"name": "example_model",
            "alias": "example_alias", "version": "1"}),
        "model_version_alias.deleted" => json!({"name": "example_model", "alias": "example_alias"}),
        "prompt.created" => json!({"name": "example_prompt", "tags": tags,
            "description": "An example prompt"}),
        "prompt_version.created" => json!({"name": "example_prompt", "version": "1",
            "template": "Hello {{name}}!", "tags": tags, "description": "An example prompt version"}),
        "prompt_tag.set" => json!({"name": "example_prompt", "key": "example_key",
            "value": "example_value"}),
        "prompt_tag.deleted" => json!({"name": "example_prompt", "key": "example_key"}),
        "prompt_version_tag.set" => json!({"name": "example_prompt", "version": "1",
            "key": "example_key", "value": "example_value"}),
        "prompt_version_tag.deleted" => json!({"name": "example_prompt", "version": "1",
            "key": "example_key"}),
        "prompt_alias.created" => json!({"name": "example_prompt", "alias": "example_alias",
            "version": "1"}),
        "prompt_alias.deleted" => json!({"name": "example_prompt", "alias": "example_alias"}),
        _ => json!({"budget_policy_id": "bp-abc123", "budget_unit": "USD",
            "budget_amount": 100.0, "current_spend": 105.50, "duration_unit": "MONTHS",
            "duration_value": 1, "target_scope": "ENDPOINT", "workspace": "default",
            "target_value": "ep-abc123", "window_start": 1_704_067_200_000_i64}),
    }
}

/// The body MLflow POSTs: the event, when, and its payload, written as Python's `json.dumps`.
fn mlflow_body(event: MlflowEvent, data: Value) -> String {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    pyjson::dumps(
        &json!({
            "entity": event.entity(),
            "action": event.action(),
            "timestamp": timestamp,
            "data": data,
        }),
        Separators::Default,
    )
}

/// One signed MLflow-style delivery: its body and every header.
fn mlflow_request(
    hook: &MlflowWebhook,
    event: MlflowEvent,
    data: Value,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let body = mlflow_body(event, data).into_bytes();
    let delivery_id = twinloop_core::ids::new_uuid();
    let headers =
        webhook::mlflow_headers(hook.secret.as_deref(), &delivery_id, now_ms() / 1000, &body);
    (body, headers)
}

async fn deliver_mlflow(
    store: Arc<dyn WebhookStore>,
    reach: Reach,
    hook: MlflowWebhook,
    event_id: i64,
    event: MlflowEvent,
    data: Value,
) {
    let log = Deliveries {
        store,
        webhook_id: hook.id,
        event_id,
        mlflow_id: Some(hook.webhook_id.clone()),
    };
    // MLflow checks the URL again before each delivery: the policy may have changed.
    if let Err(e) = reach.check(&hook.url).await {
        log.record(&Attempt {
            attempt: 1,
            status_code: None,
            error: Some(e.message.clone()),
            delivered: false,
        })
        .await;
        tracing::warn!(webhook = %hook.webhook_id, url = %hook.url, error = %e.message, "webhook not sent");
        return;
    }
    let transport = HttpTransport::guarded(reach.allow_private);
    let (body, headers) = mlflow_request(&hook, event, data);
    let outcome = webhook::deliver_signed(&transport, &log, &hook.url, &headers, &body).await;
    if let Outcome::Failed { last_error } = outcome {
        tracing::warn!(
            webhook = %hook.webhook_id,
            url = %hook.url,
            event = event.as_str(),
            attempts = webhook::ATTEMPTS,
            last_error,
            "webhook delivery failed after every attempt; this event is dropped"
        );
    }
}

/// What a webhook test reports, as MLflow's `WebhookTestResult` holds it.
pub struct TestResult {
    pub success: bool,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
}

/// Sends `event`'s example payload (else the webhook's first event's) to `hook` once, through
/// the same checks, signature and guarded transport as a delivery.
pub async fn test_delivery(hook: &MlflowWebhook, event: Option<MlflowEvent>) -> TestResult {
    let failed = |why: String| TestResult {
        success: false,
        response_status: None,
        response_body: None,
        error_message: Some(format!("Failed to test webhook: {why}")),
    };
    let Some(event) = event.or_else(|| hook.events.first().copied()) else {
        return failed("the webhook has no events".into());
    };
    let reach = Reach::from_env();
    if let Err(e) = reach.check(&hook.url).await {
        return failed(e.message);
    }
    let transport = HttpTransport::guarded(reach.allow_private);
    let (body, headers) = mlflow_request(hook, event, example_payload(event));
    match transport.post_with_reply(&hook.url, &headers, &body).await {
        Ok((status, text)) => TestResult {
            success: status < 400,
            response_status: Some(status),
            response_body: Some(text),
            error_message: None,
        },
        Err(e) => failed(e.to_string()),
    }
}

/// The delivery log of one event to one webhook.
struct Deliveries {
    store: Arc<dyn WebhookStore>,
    webhook_id: i64,
    event_id: i64,
    /// Set for a webhook made through MLflow's API, which is looked up by it.
    mlflow_id: Option<String>,
}

#[async_trait]
impl DeliveryLog for Deliveries {
    async fn record(&self, attempt: &Attempt) {
        let record = WebhookDelivery {
            id: 0,
            webhook_id: self.webhook_id,
            event_id: self.event_id,
            attempt: attempt.attempt,
            status_code: attempt.status_code,
            error: attempt.error.clone(),
            delivered: attempt.delivered,
            time: now_ms(),
        };
        if let Err(e) = self.store.record_delivery(&record).await {
            tracing::error!(error = %e, "cannot record a webhook delivery");
        }
    }

    /// Whether the webhook still exists; on a store error, assume it does (a retry too many is
    /// better than a delivery lost).
    async fn still_wanted(&self) -> bool {
        if let Some(id) = &self.mlflow_id {
            return match self.store.get_mlflow_webhook(id).await {
                Ok(hook) => hook.active,
                Err(e) => e.kind != ErrorKind::NotFound,
            };
        }
        match self.store.list_webhooks().await {
            Ok(hooks) => hooks.iter().any(|h| h.id == self.webhook_id),
            Err(_) => true,
        }
    }
}

async fn deliver(
    store: Arc<dyn WebhookStore>,
    transport: Arc<HttpTransport>,
    hook: Webhook,
    event: RegistryEvent,
) {
    let body = event_json(&event);
    let headers = [
        ("x-twinloop-event", event.kind.as_str().to_string()),
        ("x-twinloop-delivery", format!("{}-{}", hook.id, event.id)),
    ];
    let log = Deliveries {
        store,
        webhook_id: hook.id,
        event_id: event.id,
        mlflow_id: None,
    };
    let outcome = webhook::deliver(
        transport.as_ref(),
        &log,
        &hook.url,
        &hook.secret,
        &headers,
        body.as_bytes(),
    )
    .await;
    if let Outcome::Failed { last_error } = outcome {
        tracing::warn!(
            webhook = hook.id,
            url = %hook.url,
            event = event.id,
            attempts = webhook::ATTEMPTS,
            last_error,
            "webhook delivery failed after every attempt; this event is dropped (`twinloop webhooks rm ID` removes a webhook)"
        );
    }
}

#[cfg(test)]
mod tests {
    use twinloop_core::registry::{EventDetail, MLFLOW_EVENTS};

    use super::*;

    fn event(kind: RegistryEventKind, detail: EventDetail) -> RegistryEvent {
        RegistryEvent {
            id: 7,
            timestamp: 1,
            actor: "a".into(),
            kind,
            model_name: "m".into(),
            version: Some(2),
            alias: Some("champion".into()),
            before: None,
            after: Some("2".into()),
            detail,
        }
    }

    #[test]
    fn registry_events_become_mlflows_events_and_payloads() {
        let created = EventDetail {
            tags: vec![Tag::new("k", "v")],
            source: Some("runs:/r/model".into()),
            run_id: Some(String::new()),
            ..EventDetail::default()
        };
        let (t, data) =
            mlflow_event(&event(RegistryEventKind::VersionCreated, created), false).unwrap();
        assert_eq!(t.as_str(), "model_version.created");
        assert_eq!(
            data,
            json!({"name": "m", "version": "2", "source": "runs:/r/model", "run_id": null,
                   "tags": {"k": "v"}, "description": null})
        );
        let (t, data) = mlflow_event(
            &event(RegistryEventKind::ModelCreated, EventDetail::default()),
            false,
        )
        .unwrap();
        assert_eq!(t.as_str(), "registered_model.created");
        assert_eq!(data, json!({"name": "m", "tags": {}, "description": ""}));
        let tag = EventDetail {
            tag: Some(Tag::new("k", "v")),
            ..EventDetail::default()
        };
        let (t, data) =
            mlflow_event(&event(RegistryEventKind::VersionTagSet, tag.clone()), true).unwrap();
        assert_eq!(t.as_str(), "prompt_version_tag.set");
        assert_eq!(
            data,
            json!({"name": "m", "version": "2", "key": "k", "value": "v"})
        );
        let (t, data) = mlflow_event(
            &event(RegistryEventKind::AliasSet, EventDetail::default()),
            false,
        )
        .unwrap();
        assert_eq!(t.as_str(), "model_version_alias.created");
        assert_eq!(
            data,
            json!({"name": "m", "alias": "champion", "version": "2"})
        );
        let prompt = EventDetail {
            tags: vec![
                Tag::new(IS_PROMPT_TAG, "True"),
                Tag::new(PROMPT_TEXT_TAG, "Hi {{x}}"),
                Tag::new("k", "v"),
            ],
            ..EventDetail::default()
        };
        assert!(is_prompt(&prompt.tags));
        let (t, data) =
            mlflow_event(&event(RegistryEventKind::VersionCreated, prompt), true).unwrap();
        assert_eq!(t.as_str(), "prompt_version.created");
        assert_eq!(data["template"], "Hi {{x}}");
        assert_eq!(data["tags"], json!({"k": "v"}));
        for silent in [
            RegistryEventKind::ModelRenamed,
            RegistryEventKind::ModelDeleted,
            RegistryEventKind::VersionDeleted,
            RegistryEventKind::StageChanged,
        ] {
            assert!(mlflow_event(&event(silent, EventDetail::default()), false).is_none());
        }
    }

    #[test]
    fn every_event_has_an_example_and_a_body_in_pythons_json() {
        for name in MLFLOW_EVENTS {
            let event = MlflowEvent::parse(name).unwrap();
            let body = mlflow_body(event, example_payload(event));
            let parsed: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed["entity"], event.entity());
            assert_eq!(parsed["action"], event.action());
            assert!(parsed["data"].is_object(), "{name}");
            assert!(body.contains("\"data\": {"), "Python's separators: {body}");
        }
    }

    #[tokio::test]
    async fn reach_refuses_other_schemes_and_private_hosts_unless_allowed() {
        let strict = Reach {
            schemes: vec!["https".into()],
            allow_private: false,
        };
        for url in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest",
            "https://2130706433/hook",
            "https://localhost/hook",
            "https:///hook",
            "",
        ] {
            let err = strict.check(url).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "{url}");
        }
        assert!(strict.check("https://93.184.216.34/hook").await.is_ok());
        let open = Reach {
            schemes: vec!["http".into(), "https".into()],
            allow_private: true,
        };
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
    }

    #[tokio::test]
    async fn a_guarded_transport_does_not_connect_to_a_private_literal() {
        let err = HttpTransport::guarded(false)
            .post("http://127.0.0.1:9/hook", &[], b"{}")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a public IP address"), "{err}");
    }
}

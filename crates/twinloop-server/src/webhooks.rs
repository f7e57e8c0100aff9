//! Delivers registry events to webhooks through the signed-webhook contract of
//! `twinloop_core::webhook` (signature, bounded retries with backoff, one warning per event no
//! attempt delivered), writing every attempt to the store's delivery log; a webhook removed
//! during the retries gets no further attempt. Also the HTTP transport of that contract, which
//! the monitors' alert webhooks are given too.
//!
//! Events reach this process through the store's in-process broadcast, so each replica delivers
//! the events it committed. An event committed just before a crash may miss its webhooks; the
//! event log (`/api/twinloop/v1/registry/events?after=`) is the durable record.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast::error::RecvError;
use twinloop_core::registry::{RegistryEvent, Webhook, WebhookDelivery};
use twinloop_core::time::now_ms;
use twinloop_core::webhook::{self, Attempt, DeliveryLog, NoAnswer, Outcome, WebhookTransport};
use twinloop_meta::{RegistryStore, WebhookStore};

use crate::native::event_json;

/// Webhook POSTs over reqwest, each within `webhook::TIMEOUT`.
#[derive(Clone)]
pub struct HttpTransport {
    http: reqwest::Client,
}

impl Default for HttpTransport {
    fn default() -> HttpTransport {
        HttpTransport {
            http: reqwest::Client::builder()
                .timeout(webhook::TIMEOUT)
                .build()
                .unwrap_or_default(),
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
        let mut request = self.http.post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(NoAnswer(Box::new(e))),
        }
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
        }
    });
}

/// The delivery log of one event to one webhook.
struct Deliveries {
    store: Arc<dyn WebhookStore>,
    webhook_id: i64,
    event_id: i64,
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

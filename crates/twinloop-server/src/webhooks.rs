//! Delivers registry events to webhooks: each matching event is POSTed as JSON with an
//! HMAC-SHA256 signature of the body (`X-Twinloop-Signature-256: sha256=<hex>`), tried at most
//! `MAX_ATTEMPTS` times with exponential backoff, and every attempt is written to the delivery
//! log. An event that no attempt delivered is one warning, however many attempts it took; a
//! webhook removed during the retries gets no further attempt.
//!
//! Events reach this process through the store's in-process broadcast, so each replica delivers
//! the events it committed. An event committed just before a crash may miss its webhooks; the
//! event log (`/api/twinloop/v1/registry/events?after=`) is the durable record.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::broadcast::error::RecvError;
use twinloop_core::registry::{RegistryEvent, Webhook, WebhookDelivery};
use twinloop_core::time::now_ms;
use twinloop_meta::{RegistryStore, WebhookStore};

use crate::native::event_json;

pub const MAX_ATTEMPTS: i64 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The hex HMAC-SHA256 of `body` under `secret`, as sent in `X-Twinloop-Signature-256`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Follows committed registry events and hands each to the webhooks that want it.
pub fn spawn(registry: Arc<dyn RegistryStore>, webhooks: Arc<dyn WebhookStore>) {
    let mut events = registry.subscribe_registry_events();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default();
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
                tokio::spawn(deliver(webhooks.clone(), http.clone(), hook, event.clone()));
            }
        }
    });
}

async fn deliver(
    store: Arc<dyn WebhookStore>,
    http: reqwest::Client,
    hook: Webhook,
    event: RegistryEvent,
) {
    let body = event_json(&event).to_string();
    let signature = format!("sha256={}", sign(&hook.secret, body.as_bytes()));
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            if !still_subscribed(store.as_ref(), hook.id).await {
                return;
            }
        }
        let sent = http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-twinloop-event", event.kind.as_str())
            .header("x-twinloop-delivery", format!("{}-{}", hook.id, event.id))
            .header("x-twinloop-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        let (status_code, error) = match sent {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16() as i64), None)
            }
            Ok(response) => (
                Some(response.status().as_u16() as i64),
                Some(format!("HTTP {}", response.status())),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivered = error.is_none();
        if let Some(e) = &error {
            last_error.clone_from(e);
        }
        let record = WebhookDelivery {
            id: 0,
            webhook_id: hook.id,
            event_id: event.id,
            attempt,
            status_code,
            error,
            delivered,
            time: now_ms(),
        };
        if let Err(e) = store.record_delivery(&record).await {
            tracing::error!(error = %e, "cannot record a webhook delivery");
        }
        if delivered {
            return;
        }
    }
    tracing::warn!(
        webhook = hook.id,
        url = %hook.url,
        event = event.id,
        attempts = MAX_ATTEMPTS,
        last_error,
        "webhook delivery failed after every attempt; this event is dropped (`twinloop webhooks rm ID` removes a webhook)"
    );
}

/// Whether webhook `id` still exists; on a store error, assume it does (a retry too many is
/// better than a delivery lost).
async fn still_subscribed(store: &dyn WebhookStore, id: i64) -> bool {
    match store.list_webhooks().await {
        Ok(hooks) => hooks.iter().any(|h| h.id == id),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

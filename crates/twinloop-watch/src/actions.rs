//! What an alert transition does: it is recorded as an `alert_<state>` event, and its rule's
//! actions run — a signed webhook (every attempt a `webhook_delivery` event), a rollback of the
//! deployment (a `rollback` event), a `retrain_requested` event for pipelines.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use twinloop_core::webhook::{self, Attempt, DeliveryLog, Outcome, WebhookTransport};

use crate::alerts::Transition;
use crate::spec::{Action, AlertRule, MonitorSpec};

/// Why a rollback did not happen, in the deployment manager's words.
pub type RollbackError = Box<dyn std::error::Error + Send + Sync>;

/// What monitors need of the deployments: the server implements it with its deployment manager.
#[async_trait]
pub trait Deployments: Send + Sync {
    /// The rollback action: what was done, in words.
    async fn rollback(&self, deployment: &str) -> Result<String, RollbackError>;
    /// The registered model and version answering most of the deployment's traffic.
    fn serving(&self, deployment: &str) -> Option<(String, String)>;
}

/// Where a monitor's events go (the metadata store; a recording fake in tests).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// `payload` is JSON. A failure to record is the log's to report: actions go on.
    async fn record(&self, monitor: &str, kind: &str, payload: &str);
}

// The payloads' fields are declared in alphabetical order: they were written through
// `serde_json::Value` maps, which sort keys, and webhook receivers sign-check the exact bytes.

/// An alert transition: the event's payload and the webhook's body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub deployment: String,
    pub metric: String,
    pub monitor: String,
    pub op: String,
    pub rule: String,
    pub state: &'static str,
    pub threshold: f64,
    pub value: f64,
    pub window_end_us: i64,
    pub window_start_us: i64,
}

impl Alert {
    pub fn new(
        spec: &MonitorSpec,
        rule: &AlertRule,
        transition: Transition,
        value: f64,
        window: (i64, i64),
    ) -> Alert {
        Alert {
            deployment: spec.deployment.clone(),
            metric: rule.metric.clone(),
            monitor: spec.name.clone(),
            op: rule.op.clone(),
            rule: rule.name.clone(),
            state: transition.as_str(),
            threshold: rule.threshold,
            value,
            window_end_us: window.1,
            window_start_us: window.0,
        }
    }
}

#[derive(Serialize)]
struct Delivery<'a> {
    attempt: i64,
    delivered: bool,
    error: Option<&'a str>,
    rule: &'a str,
    state: &'a str,
    status_code: Option<i64>,
    url: &'a str,
}

#[derive(Serialize)]
struct Rollback<'a> {
    deployment: &'a str,
    message: String,
    ok: bool,
    rule: &'a str,
}

fn json(payload: &impl Serialize) -> String {
    // Plain structs of strings and numbers: serialising them cannot fail.
    serde_json::to_string(payload).unwrap_or_default()
}

/// Carries out alert transitions.
pub struct Actions {
    pub events: Arc<dyn EventLog>,
    pub deployments: Arc<dyn Deployments>,
    pub webhooks: Arc<dyn WebhookTransport>,
}

impl Actions {
    /// Records the transition and runs the rule's actions: webhooks on firing and resolved,
    /// rollback and retraining on firing; a pending alert is only recorded.
    pub async fn act(&self, rule: &AlertRule, transition: Transition, alert: &Alert) {
        let body = json(alert);
        self.events
            .record(
                &alert.monitor,
                &format!("alert_{}", transition.as_str()),
                &body,
            )
            .await;
        if transition == Transition::Pending {
            return;
        }
        for action in &rule.actions {
            match action {
                Action::Webhook { url, secret } => self.deliver(url, secret, alert, &body).await,
                Action::Rollback if transition == Transition::Firing => {
                    let outcome = self.deployments.rollback(&alert.deployment).await;
                    let payload = Rollback {
                        deployment: &alert.deployment,
                        ok: outcome.is_ok(),
                        message: outcome.unwrap_or_else(|e| e.to_string()),
                        rule: &rule.name,
                    };
                    self.events
                        .record(&alert.monitor, "rollback", &json(&payload))
                        .await;
                }
                Action::Retrain if transition == Transition::Firing => {
                    self.events
                        .record(&alert.monitor, "retrain_requested", &body)
                        .await;
                }
                Action::Rollback | Action::Retrain => {}
            }
        }
    }

    /// POSTs the alert through the signed-webhook contract (`twinloop_core::webhook`): every
    /// attempt is a `webhook_delivery` event, and an alert no attempt delivered is one log line.
    async fn deliver(&self, url: &str, secret: &str, alert: &Alert, body: &str) {
        // Receivers written before alerts were signed like registry events read this name.
        let headers = [(
            "x-twinloop-signature",
            webhook::signature(secret, body.as_bytes()),
        )];
        let log = AlertDeliveries {
            events: self.events.as_ref(),
            url,
            alert,
        };
        let outcome = webhook::deliver(
            self.webhooks.as_ref(),
            &log,
            url,
            secret,
            &headers,
            body.as_bytes(),
        )
        .await;
        if let Outcome::Failed { last_error } = outcome {
            tracing::warn!(monitor = %alert.monitor, url, rule = %alert.rule, attempts = webhook::ATTEMPTS, last_error, "alert webhook not delivered; giving up on this alert");
        }
    }
}

/// One alert's deliveries to one URL, kept as the monitor's `webhook_delivery` events.
struct AlertDeliveries<'a> {
    events: &'a dyn EventLog,
    url: &'a str,
    alert: &'a Alert,
}

#[async_trait]
impl DeliveryLog for AlertDeliveries<'_> {
    async fn record(&self, a: &Attempt) {
        let payload = Delivery {
            attempt: a.attempt,
            delivered: a.delivered,
            error: a.error.as_deref(),
            rule: &self.alert.rule,
            state: self.alert.state,
            status_code: a.status_code,
            url: self.url,
        };
        self.events
            .record(&self.alert.monitor, "webhook_delivery", &json(&payload))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, serde_json::Value)>>);

    #[async_trait]
    impl EventLog for Recorded {
        async fn record(&self, _monitor: &str, kind: &str, payload: &str) {
            let payload = serde_json::from_str(payload).unwrap();
            self.0.lock().unwrap().push((kind.to_string(), payload));
        }
    }

    impl Recorded {
        fn kinds(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|(k, _)| k.clone())
                .collect()
        }
    }

    struct FakeDeployments {
        refuse: bool,
    }

    #[async_trait]
    impl Deployments for FakeDeployments {
        async fn rollback(&self, deployment: &str) -> Result<String, RollbackError> {
            if self.refuse {
                Err("nothing to roll back".into())
            } else {
                Ok(format!("{deployment} rolled back"))
            }
        }
        fn serving(&self, _deployment: &str) -> Option<(String, String)> {
            None
        }
    }

    /// One POST as the transport saw it.
    struct Post {
        url: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    /// Answers every POST with `status`, keeping what was sent.
    struct FakeTransport {
        status: u16,
        sent: Mutex<Vec<Post>>,
    }

    #[async_trait]
    impl WebhookTransport for FakeTransport {
        async fn post(
            &self,
            url: &str,
            headers: &[(&str, String)],
            body: &[u8],
        ) -> Result<u16, webhook::NoAnswer> {
            let headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let body = String::from_utf8(body.to_vec()).unwrap();
            let url = url.to_string();
            self.sent.lock().unwrap().push(Post { url, headers, body });
            Ok(self.status)
        }
    }

    fn spec_and_rule(actions: serde_json::Value) -> (MonitorSpec, AlertRule) {
        let spec: MonitorSpec = serde_json::from_value(serde_json::json!({
            "name": "m", "deployment": "fraud", "reference": "r.csv", "window": {"rows": 10},
            "rules": [{"name": "drift", "metric": "share_of_drifted_columns", "op": ">=",
                       "threshold": 0.5, "actions": actions}]}))
        .unwrap();
        let rule = spec.rules[0].clone();
        (spec, rule)
    }

    fn actions(refuse: bool, status: u16) -> (Actions, Arc<Recorded>, Arc<FakeTransport>) {
        let events = Arc::new(Recorded::default());
        let transport = Arc::new(FakeTransport {
            status,
            sent: Mutex::default(),
        });
        let actions = Actions {
            events: events.clone(),
            deployments: Arc::new(FakeDeployments { refuse }),
            webhooks: transport.clone(),
        };
        (actions, events, transport)
    }

    #[tokio::test]
    async fn firing_rolls_back_and_requests_retraining_and_pending_only_records() {
        let (spec, rule) =
            spec_and_rule(serde_json::json!([{"type": "rollback"}, {"type": "retrain"}]));
        let (actions, events, _) = actions(false, 200);
        let alert = Alert::new(&spec, &rule, Transition::Pending, 0.6, (1, 2));
        actions.act(&rule, Transition::Pending, &alert).await;
        assert_eq!(events.kinds(), ["alert_pending"]);
        let alert = Alert::new(&spec, &rule, Transition::Firing, 0.7, (2, 3));
        actions.act(&rule, Transition::Firing, &alert).await;
        assert_eq!(
            events.kinds(),
            [
                "alert_pending",
                "alert_firing",
                "rollback",
                "retrain_requested"
            ]
        );
        let recorded = events.0.lock().unwrap().clone();
        assert_eq!(
            recorded[2].1,
            serde_json::json!({"deployment": "fraud", "message": "fraud rolled back", "ok": true, "rule": "drift"})
        );
        assert_eq!(recorded[3].1, recorded[1].1);
        assert_eq!(recorded[1].1["window_start_us"], 2);
        let alert = Alert::new(&spec, &rule, Transition::Resolved, 0.1, (3, 4));
        actions.act(&rule, Transition::Resolved, &alert).await;
        assert_eq!(events.kinds().last().unwrap(), "alert_resolved");
        assert_eq!(events.kinds().len(), 5);
    }

    #[tokio::test]
    async fn a_refused_rollback_is_recorded_with_the_reason() {
        let (spec, rule) = spec_and_rule(serde_json::json!([{"type": "rollback"}]));
        let (actions, events, _) = actions(true, 200);
        let alert = Alert::new(&spec, &rule, Transition::Firing, 0.7, (2, 3));
        actions.act(&rule, Transition::Firing, &alert).await;
        let recorded = events.0.lock().unwrap();
        assert_eq!(recorded[1].1["ok"], false);
        assert_eq!(recorded[1].1["message"], "nothing to roll back");
    }

    #[tokio::test]
    async fn a_webhook_is_signed_over_the_alert_and_its_attempt_recorded() {
        let (spec, rule) = spec_and_rule(serde_json::json!([
            {"type": "webhook", "url": "http://hooks.test/a", "secret": "s3cret-key"}]));
        let (actions, events, transport) = actions(false, 204);
        let alert = Alert::new(&spec, &rule, Transition::Firing, 0.7, (2, 3));
        actions.act(&rule, Transition::Firing, &alert).await;
        let sent = transport.sent.lock().unwrap();
        let Post { url, headers, body } = &sent[0];
        assert_eq!(url, "http://hooks.test/a");
        assert_eq!(body, &serde_json::to_string(&alert).unwrap());
        let signed = headers
            .iter()
            .find(|(k, _)| k == "x-twinloop-signature")
            .unwrap();
        assert_eq!(signed.1, webhook::signature("s3cret-key", body.as_bytes()));
        let recorded = events.0.lock().unwrap();
        assert_eq!(recorded[1].0, "webhook_delivery");
        assert_eq!(recorded[1].1["delivered"], true);
        assert_eq!(recorded[1].1["status_code"], 204);
        assert_eq!(recorded[1].1["state"], "firing");
    }

    #[test]
    fn payload_keys_are_in_the_order_they_were_always_sent() {
        let (spec, rule) = spec_and_rule(serde_json::json!([]));
        let alert = Alert::new(&spec, &rule, Transition::Firing, 0.7, (2, 3));
        let text = json(&alert);
        let sorted = serde_json::to_string(&serde_json::to_value(&alert).unwrap()).unwrap();
        assert_eq!(text, sorted);
    }
}

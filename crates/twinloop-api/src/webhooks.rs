//! Wire types of the native API: the registry's webhooks (`/registry/webhooks`).

use serde::{Deserialize, Serialize};

/// The body of `POST /registry/webhooks`. `url` and `secret` are required; they are optional
/// here so that the server, not the decoder, names the one missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWebhook {
    /// Event kinds to deliver (`ALIAS_SET`, …); empty means all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events of this registered model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A webhook as shown to callers: the secret is never echoed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub created_time: i64,
    pub events: Vec<String>,
    pub id: i64,
    pub model_name: Option<String>,
    pub url: String,
}

/// The answer of `POST /registry/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreated {
    pub webhook: Webhook,
}

/// The answer of `GET /registry/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// One attempt to deliver an event to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub attempt: i64,
    pub delivered: bool,
    pub error: Option<String>,
    pub event_id: i64,
    pub id: i64,
    /// The receiver's HTTP status; `null` when it could not be reached.
    pub status_code: Option<i64>,
    pub time: i64,
    pub webhook_id: i64,
}

/// The answer of `GET /registry/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn webhooks_and_deliveries_round_trip() {
        round_trips::<WebhookCreated>(
            r#"{"webhook":{"created_time":1764300000000,"events":["ALIAS_SET","VERSION_CREATED"],"id":12,"model_name":"fraud","url":"http://127.0.0.1:8000/"}}"#,
        );
        round_trips::<WebhookList>(
            r#"{"webhooks":[{"created_time":1764300000000,"events":[],"id":1,"model_name":null,"url":"http://ci.local/hook"}]}"#,
        );
        round_trips::<DeliveryList>(
            r#"{"deliveries":[{"attempt":1,"delivered":false,"error":"connection refused","event_id":7,"id":3,"status_code":null,"time":1764300000000,"webhook_id":1},{"attempt":2,"delivered":true,"error":null,"event_id":7,"id":4,"status_code":200,"time":1764300001000,"webhook_id":1}]}"#,
        );
    }

    #[test]
    fn a_new_webhook_leaves_out_what_is_not_set() {
        round_trips::<NewWebhook>(
            r#"{"events":["ALIAS_SET"],"secret":"s3cr3t-key","url":"http://x/"}"#,
        );
        let bare: NewWebhook = serde_json::from_str("{}").unwrap();
        assert_eq!((bare.url, bare.events), (None, Vec::new()));
    }
}

//! Wire types of the native API: the registry's event log (`/registry/events`, its stream, and
//! the bodies webhooks receive).

use serde::{Deserialize, Serialize};

/// A committed registry change. Fields in alphabetical order, as the bytes were when the server
/// built them as a sorted `serde_json::Value` (webhook signatures are made over these bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEvent {
    pub actor: String,
    pub after: Option<String>,
    pub alias: Option<String>,
    pub before: Option<String>,
    pub id: i64,
    /// `MODEL_CREATED`, `ALIAS_SET`, …
    pub kind: String,
    pub model_name: String,
    pub timestamp: i64,
    /// The version number as a string, as MLflow writes versions.
    pub version: Option<String>,
}

/// The answer of `GET /registry/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<RegistryEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn an_event_page_round_trips() {
        round_trips::<EventPage>(
            r#"{"events":[{"actor":"","after":"3","alias":"champion","before":null,"id":7,"kind":"ALIAS_SET","model_name":"fraud","timestamp":1764300000000,"version":"3"},{"actor":"ci","after":null,"alias":null,"before":null,"id":8,"kind":"MODEL_CREATED","model_name":"fraud","timestamp":1764300000001,"version":null}]}"#,
        );
    }
}

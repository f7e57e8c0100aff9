//! The native API's request and response bodies, defined once: `twinloop-server` encodes them,
//! the `twinloop` CLI decodes them. Plain serde types, no HTTP: a third-party client can use
//! this crate without pulling in the server.

use serde::{Deserialize, Serialize};

pub mod deployments;
pub mod error;
pub mod events;
pub mod lineage;
pub mod monitors;
pub mod pipelines;
pub mod run_columns;
pub mod series;
pub mod tokens;
pub mod webhooks;

/// `{}`: the answer of calls that only succeed or fail (deletes, lineage events), and the body
/// of POSTs that need none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Checks that `json`, as the server wrote it, decodes into `T` and encodes back to the same
/// bytes, and that those bytes have every object's keys sorted, as they were when the server
/// built its answers as `serde_json::Value`.
#[cfg(test)]
fn round_trips<T: Serialize + serde::de::DeserializeOwned>(json: &str) {
    let value: T = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&value).unwrap(), json);
    let sorted = serde_json::to_value(&value).unwrap();
    assert_eq!(serde_json::to_string(&sorted).unwrap(), json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_an_empty_object() {
        round_trips::<Empty>("{}");
    }
}

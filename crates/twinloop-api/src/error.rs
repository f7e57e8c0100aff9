//! Wire types of the native API: errors.

use serde::{Deserialize, Serialize};

/// Every error answer, native and MLflow alike: `{"error_code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Read leniently: a proxy or another MLflow-compatible server may answer with only a
    /// message, which a client should still show.
    #[serde(default)]
    pub error_code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn an_error_round_trips() {
        round_trips::<ErrorBody>(
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no deployment \"x\""}"#,
        );
    }

    #[test]
    fn a_message_without_a_code_still_reads() {
        let body: ErrorBody = serde_json::from_str(r#"{"message":"behind a proxy"}"#).unwrap();
        assert_eq!(body.message, "behind a proxy");
        assert_eq!(body.error_code, "");
    }
}

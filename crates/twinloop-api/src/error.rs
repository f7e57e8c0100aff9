//! Wire types of the native API: errors.

use serde::{Deserialize, Serialize};

/// Every error answer, native and MLflow alike: `{"error_code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
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
}

//! Wire types of the native API: API tokens (`/auth/tokens`), for servers run with `--auth`.

use serde::{Deserialize, Serialize};

/// The body of `POST /auth/tokens`. `scope` is required; it is optional here so that the
/// server, not the decoder, says it is missing. `username` defaults to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `read`, `write`, `deploy`, `admin` or `infer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub created_ms: i64,
    pub description: String,
    pub id: i64,
    pub scope: String,
    pub username: String,
}

/// The answer of `POST /auth/tokens`: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token: String,
    pub token_info: Token,
}

/// The answer of `GET /auth/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trips;

    #[test]
    fn tokens_round_trip() {
        round_trips::<TokenCreated>(
            r#"{"token":"tlp_abc","token_info":{"created_ms":1764300000000,"description":"ci","id":3,"scope":"write","username":"carol"}}"#,
        );
        round_trips::<TokenList>(
            r#"{"tokens":[{"created_ms":1764300000000,"description":"","id":1,"scope":"infer","username":"svc"}]}"#,
        );
        round_trips::<NewToken>(r#"{"description":"ci","scope":"read","username":"carol"}"#);
        round_trips::<NewToken>(r#"{}"#);
    }
}

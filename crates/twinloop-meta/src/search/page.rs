use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use twinloop_core::{Error, Result};

/// Page tokens are opaque to clients; like MLflow's, they are base64 of `{"offset": N}`.
pub fn encode_page_token(offset: u64) -> String {
    STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

pub fn decode_page_token(token: Option<&str>) -> Result<u64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let invalid = || Error::invalid(format!("Invalid page token {token:?}"));
    let bytes = STANDARD.decode(token).map_err(|_| invalid())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    value
        .get("offset")
        .and_then(|v| v.as_u64())
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(
            decode_page_token(Some(&encode_page_token(1234))).unwrap(),
            1234
        );
        assert_eq!(decode_page_token(None).unwrap(), 0);
        assert_eq!(decode_page_token(Some("")).unwrap(), 0);
    }

    #[test]
    fn rejects_forged_tokens() {
        assert!(decode_page_token(Some("not base64!")).is_err());
        assert!(decode_page_token(Some(&STANDARD.encode("{\"offset\": -1}"))).is_err());
    }
}

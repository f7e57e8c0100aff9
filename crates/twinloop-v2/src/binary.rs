//! The binary tensor data extension: a JSON header followed by raw tensor bytes.

/// The HTTP header that gives the JSON part's length when binary data follows it.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

use crate::{ProtocolError, Result};

/// `parameters.binary_data_size` of input `name`, when it carries its data in binary.
pub(crate) fn binary_size(
    name: &str,
    parameters: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<u64>> {
    let Some(size) = parameters.and_then(|p| p.get("binary_data_size")) else {
        return Ok(None);
    };
    size.as_u64().map(Some).ok_or_else(|| {
        ProtocolError::new(format!(
            "input {name:?}: binary_data_size is {size}, not a byte count"
        ))
    })
}

/// Whether `parameters` asks for binary data under `key` (`binary_data` on an output,
/// `binary_data_output` on the request).
pub(crate) fn flag(
    parameters: Option<&serde_json::Map<String, serde_json::Value>>,
    key: &str,
) -> Option<bool> {
    parameters?.get(key)?.as_bool()
}

//! The binary tensor data extension: a JSON header followed by raw tensor bytes.

/// The HTTP header that gives the JSON part's length when binary data follows it.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// `parameters.binary_data_size` of a tensor, when it carries its data in binary.
pub(crate) fn binary_size(
    parameters: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<u64> {
    parameters?.get("binary_data_size")?.as_u64()
}

/// Whether `parameters` asks for binary data under `key` (`binary_data` on an output,
/// `binary_data_output` on the request).
pub(crate) fn flag(
    parameters: Option<&serde_json::Map<String, serde_json::Value>>,
    key: &str,
) -> Option<bool> {
    parameters?.get(key)?.as_bool()
}

//! The Open Inference Protocol (KServe V2) front over twinloop-serving's `Engine`: the REST
//! body (JSON tensors flat or nested, tritonclient's binary tensor extension), the REST routes
//! (`http.rs`) and the gRPC service (`grpc.rs`, from `proto/inference.proto`). What comes in is
//! decoded into serving's typed requests, with errors that name the input.

mod binary;
mod elements;
pub mod grpc;
pub mod http;
mod request;
mod response;

pub use binary::HEADER_LENGTH;
pub use elements::{ElementCodec, element_count};
pub use request::{BinaryOutputs, RestRequest, decode_request};
pub use response::encode_response;

/// A request the client must fix: answered with HTTP 400 and `{"error": message}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ProtocolError(message.into())
    }
}

pub type Result<T> = std::result::Result<T, ProtocolError>;

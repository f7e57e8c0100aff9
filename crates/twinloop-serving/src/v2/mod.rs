//! The Open Inference Protocol's REST body: requests in, responses out.

mod binary;
mod datatype;
mod request;
mod response;
mod tensor;

pub use binary::HEADER_LENGTH;
pub use datatype::Datatype;
pub use request::{InferRequest, RequestedOutput, decode_request};
pub use response::{InferResponse, encode_response};
pub(crate) use tensor::show_shape;
pub use tensor::{MAX_ELEMENTS, Tensor, TensorData, element_count};

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

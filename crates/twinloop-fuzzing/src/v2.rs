//! The Open Inference Protocol's bodies (REST JSON, REST with binary tensors, gRPC
//! `ModelInfer`) and the native API's JSON bodies.

use prost::Message;
use serde::de::DeserializeOwned;
use twinloop_serving::infer::InferRequest;
use twinloop_serving::tensor::MAX_ELEMENTS;
use twinloop_v2::grpc::{decode_infer_request, proto::ModelInferRequest};
use twinloop_v2::{decode_request, element_count};

use crate::split_selector;

/// Every tensor decoded holds exactly the elements its shape declares, no more than the
/// server's bound, and no more than the bytes that carried them: each element costs at least
/// one byte on every wire, so a request cannot make the server allocate past its own size.
fn check_sizes(request: &InferRequest, received: usize) {
    for t in &request.inputs {
        assert_eq!(
            element_count(&t.name, &t.shape).ok(),
            Some(t.data.len()),
            "input {:?}: shape {:?}",
            t.name,
            t.shape
        );
        assert!(t.data.len() <= MAX_ELEMENTS);
        assert!(
            t.data.len() <= received,
            "input {:?}: {} elements from {received} bytes",
            t.name,
            t.data.len()
        );
    }
}

/// A REST infer body without the binary extension.
pub fn rest_json(body: &[u8]) {
    if let Ok(request) = decode_request(body, None) {
        check_sizes(&request.infer, body.len());
    }
}

/// A REST infer body with the binary extension. The first two bytes choose
/// `Inference-Header-Content-Length`, up to one past the body so the too-long case stays
/// reachable; the rest is the body.
pub fn rest_binary(input: &[u8]) {
    let Some((length, body)) = input.split_first_chunk::<2>() else {
        return;
    };
    let header_length = usize::from(u16::from_le_bytes(*length)) % (body.len() + 2);
    if let Ok(request) = decode_request(body, Some(header_length)) {
        check_sizes(&request.infer, body.len());
    }
}

/// A gRPC `ModelInfer` message as it arrives, decoded by prost as tonic does, then converted.
pub fn grpc_infer(message: &[u8]) {
    let Ok(decoded) = ModelInferRequest::decode(message) else {
        return;
    };
    if let Ok(request) = decode_infer_request(decoded) {
        check_sizes(&request, message.len());
    }
}

fn decodes<T: DeserializeOwned>(body: &[u8]) -> bool {
    serde_json::from_slice::<T>(body).is_ok()
}

/// A native API (`/api/twinloop/v1`) request body, as the type the first byte chooses. The
/// CLI decodes the answers through the same types, so answers are here too.
pub fn native_json(data: &[u8]) {
    use twinloop_api::{deployments, lineage, monitors, pipelines};
    let Some((kind, body)) = split_selector(data) else {
        return;
    };
    let decoders: [fn(&[u8]) -> bool; 12] = [
        decodes::<deployments::DeploymentSpec>,
        decodes::<deployments::Traffic>,
        decodes::<deployments::CanarySpec>,
        decodes::<monitors::MonitorSpec>,
        decodes::<Vec<monitors::Label>>,
        decodes::<monitors::AlertRule>,
        decodes::<lineage::NewNode>,
        decodes::<lineage::NewEvent>,
        decodes::<lineage::NewMembership>,
        decodes::<pipelines::ApplyPipeline>,
        decodes::<pipelines::StartRun>,
        decodes::<deployments::Deployment>,
    ];
    decoders[usize::from(kind) % decoders.len()](body);
}

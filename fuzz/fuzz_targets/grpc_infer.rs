//! A gRPC `ModelInfer` message, as tonic hands it over after protobuf decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use twinloop_serving::tensor::MAX_ELEMENTS;
use twinloop_v2::element_count;
use twinloop_v2::grpc::{decode_infer_request, proto::ModelInferRequest};

fuzz_target!(|message: &[u8]| {
    let Ok(message) = ModelInferRequest::decode(message) else {
        return;
    };
    if let Ok(request) = decode_infer_request(message) {
        for t in &request.inputs {
            assert_eq!(element_count(&t.name, &t.shape).ok(), Some(t.data.len()));
            assert!(t.data.len() <= MAX_ELEMENTS);
        }
    }
});

//! A gRPC `ModelInfer` message, as tonic hands it over after protobuf decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use twinloop_serving::grpc::{decode_infer_request, proto::ModelInferRequest};
use twinloop_serving::v2::{MAX_ELEMENTS, element_count};

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

//! A REST infer body with the binary extension: a JSON header, then raw tensor bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop_serving::tensor::MAX_ELEMENTS;
use twinloop_v2::{decode_request, element_count};

// The first two bytes choose `Inference-Header-Content-Length` (up to one past the body, so
// the too-long case stays reachable); the rest is the body.
fuzz_target!(|input: &[u8]| {
    let Some((length, body)) = input.split_first_chunk::<2>() else {
        return;
    };
    let header_length = usize::from(u16::from_le_bytes(*length)) % (body.len() + 2);
    if let Ok(request) = decode_request(body, Some(header_length)) {
        for t in &request.infer.inputs {
            assert_eq!(element_count(&t.name, &t.shape).ok(), Some(t.data.len()));
            assert!(t.data.len() <= MAX_ELEMENTS);
        }
    }
});

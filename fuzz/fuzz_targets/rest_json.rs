//! A REST infer body without the binary extension: JSON only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop_serving::tensor::MAX_ELEMENTS;
use twinloop_v2::{decode_request, element_count};

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = decode_request(body, None) {
        for t in &request.infer.inputs {
            assert_eq!(element_count(&t.name, &t.shape).ok(), Some(t.data.len()));
            assert!(t.data.len() <= MAX_ELEMENTS);
        }
    }
});

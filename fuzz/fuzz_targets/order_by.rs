#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| twinloop_fuzzing::order_by(data));

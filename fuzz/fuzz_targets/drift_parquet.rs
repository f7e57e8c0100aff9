#![no_main]

libfuzzer_sys::fuzz_target!(
    // `read_table` catches the parquet crate's panics on malformed metadata and answers a read
    // error, as the server and CLI see it; libfuzzer-sys's hook would abort on them before the
    // catch. Without it, a panic that escapes the target still aborts (libfuzzer-sys catches the
    // unwind), so the oracle's failures are still crashes.
    init: drop(std::panic::take_hook()),
    |data: &[u8]| twinloop_fuzzing::drift_parquet(data)
);

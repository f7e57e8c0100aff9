//! twinloop-features' integration tests, one binary: each file under `tests/` would be its own
//! binary, linking the whole dependency tree again. Each module is one former test file.
//! `s3_source.rs` stays a binary of its own: it sets the process's `AWS_*` variables, which is
//! sound only while no other test runs in the process (as under plain `cargo test`).

#[path = "../support/mod.rs"]
mod support;

mod online;
mod pit;

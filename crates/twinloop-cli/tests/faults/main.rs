//! The fault suite (issue 17 part 5; security.md §4.1 and §6, D1–D4): the real `twinloop`
//! binary under load while it is killed, its PostgreSQL is crashed, its disk fills up and its
//! fsyncs fail, judged by a client-side ledger of acknowledged writes (`ledger.rs`). Its own test
//! binary, `cargo nextest run -p twinloop-cli --test faults`, so the CLI suite's filters never
//! pick it up by accident and it can be run alone; docs/reliability.md says how to run each
//! fault, the long runs and what they measured.
//!
//! What a test needs and does not find (root for tmpfs mounts, `strace`, PostgreSQL's binaries)
//! skips it with a line on stderr, or fails it under `TWINLOOP_REQUIRE_ALL_BACKENDS=1`, as CI
//! runs.

#[path = "../cli/support/mod.rs"]
#[allow(
    dead_code,
    reason = "the CLI suite's helpers, of which the fault suite uses a few"
)]
mod support;

mod disk_full;
mod fsync;
mod harness;
mod kill9;
pub mod ledger;
mod pg_restart;

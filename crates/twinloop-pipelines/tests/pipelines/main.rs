//! Acceptance tests of the pipeline engine (section 13 of the design: A1–A10, A9's timeout and
//! cancel, A12 resume) against the library, with `sh` steps in a temporary repo.

mod support;

mod bless;
mod caching;
mod control;
mod data_builtins;
mod deploy_builtins;
mod example;
mod executors;
mod foreach;
mod gate;
mod metrics_gate;
mod parallel;
mod plan;
mod recording;
mod resume;
mod retries;
mod timeout;
mod validate;

//! twinloop-cli's integration tests, one binary: each file under `tests/` would be its own
//! binary, linking the whole dependency tree again, and these links were the slowest step of a
//! test build. Each module is one former test file; the tests start the real `twinloop` binary
//! as a child process, so none depends on having its process to itself.

mod support;

mod architecture;
mod artifact_root;
mod auth;
mod backup;
mod browser;
mod deploy;
mod deploy_manifests;
mod durability;
mod features;
mod features_spark;
mod first_run;
mod history_memory;
mod hostile_v2;
mod http_api;
mod listeners;
mod load;
mod mlflow_webhooks;
mod monitoring;
mod pipeline;
mod pipeline_crash;
mod pipeline_events;
mod pipeline_executors;
mod pipeline_gate;
mod pipeline_server;
mod pipeline_triggers;
mod predlog_flush;
mod quickstart;
mod redis_down;
mod registry_cli;
mod replicas;
mod role_matrix;
mod run_columns;
mod s3_faults;
mod security;
mod serve;
mod ui;
mod webhooks;

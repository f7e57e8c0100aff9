//! twinloop-meta's integration tests, one binary: each file under `tests/` would be its own
//! binary, linking the whole dependency tree again. Each module is one former test file.

#[macro_use]
mod support;

mod auth_suite;
mod deployments_suite;
mod features_suite;
mod leases_suite;
mod metric_order;
mod mlflow_webhooks;
mod monitors_suite;
mod pipelines;
mod registry_suite;
mod run_columns;
mod schema_agreement;
mod series_suite;
mod store_suite;

//! Production monitors for deployments: tumbling windows (by rows or by time) over the
//! prediction log; per window input and prediction drift and data quality (the
//! `twinloop-monitor` engine against a reference dataset), and live performance once labels
//! arrive; metric series in the metadata store; alert rules with pending / firing / resolved
//! states whose actions call webhooks, roll a deployment back or request retraining.

pub mod alerts;
pub mod frame;
pub mod log;
pub mod performance;
pub mod runner;
pub mod spec;

pub use runner::{Deployments, Monitors};
pub use spec::MonitorSpec;

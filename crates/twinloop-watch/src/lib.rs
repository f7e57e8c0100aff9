//! Production monitors for deployments: tumbling windows (by rows or by time) over the
//! prediction log; per window input and prediction drift and data quality (the
//! `twinloop-monitor` engine against a reference dataset), and live performance once labels
//! arrive; metric series in the metadata store; alert rules with pending / firing / resolved
//! states whose actions call webhooks, roll a deployment back or request retraining.

pub mod actions;
pub mod alerts;
pub mod error;
pub mod evaluate;
pub mod frame;
pub mod log;
pub mod monitors;
pub mod performance;
pub mod reference;
pub mod spec;
pub mod storage;
pub mod view;
pub mod windows;

pub use actions::{Deployments, RollbackError};
pub use error::MonitorError;
pub use monitors::{Monitors, Ticking};
pub use reference::TRAINING_REFERENCE;
pub use spec::MonitorSpec;
pub use storage::{Event, Label, MonitorState};
pub use view::{AlertHistory, ClosedWindow, MonitorStatus, MonitorSummary};

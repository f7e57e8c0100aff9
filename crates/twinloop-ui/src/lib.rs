//! twinloop's web UI as pure functions: domain values (twinloop-core's experiments, runs, metric
//! summaries) in, HTML out, plus the embedded assets the pages load. It knows no HTTP and no
//! SQL: `twinloop-server`'s `ui` module reads the store and serves what these functions render.
//!
//! Every page works as plain HTML (links and GET forms); htmx only turns navigation into body
//! swaps. Pages carry no inline script or style, so the server's CSP can forbid both, and every
//! interpolated value is escaped by maud; URLs from user data become links only when http(s).

pub mod assets;
mod experiments;
mod format;
mod href;
mod layout;
mod lifecycle;
mod run;
mod runs;

pub use experiments::{ExperimentSort, ExperimentsQuery, ExperimentsView, experiments_page};
pub use layout::{error_page, not_found_page};
pub use lifecycle::Lifecycle;
pub use maud::Markup;
pub use run::{RunView, run_page};
pub use runs::{PARENT_TAG, RunsQuery, RunsView, parent_id as parent_run_id, runs_page};

/// Page sizes and limits the server's queries must agree with.
pub mod limits {
    pub use crate::experiments::PAGE_SIZE as EXPERIMENTS_PAGE;
    pub use crate::runs::{MAX_COLUMNS, PAGE_SIZE as RUNS_PAGE};
}

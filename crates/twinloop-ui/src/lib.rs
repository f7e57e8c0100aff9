//! twinloop's web UI as pure functions: domain values (twinloop-core's experiments, runs, metric
//! summaries) in, HTML out, plus the embedded assets the pages load. It knows no HTTP and no
//! SQL: `twinloop-server`'s `ui` module reads the store and serves what these functions render.
//!
//! Every page works as plain HTML (links and GET forms); htmx only turns navigation into body
//! swaps. Pages carry no inline script or style, so the server's CSP can forbid both, and every
//! interpolated value is escaped by maud; URLs from user data become links only when http(s).

mod artifacts;
pub mod assets;
mod charts;
mod compare;
mod diff;
mod experiments;
mod format;
mod href;
mod layout;
mod lifecycle;
mod registry;
mod run;
mod runs;

pub use artifacts::{
    ArtifactNode, ArtifactsView, PREVIEW_MAX_BYTES, Preview, PreviewKind, TABLE_PREVIEW_ROWS,
    TEXT_PREVIEW_BYTES, TablePreview, artifacts_page,
};
pub use charts::{ChartConfig, MetricView, XAxis, metric_page};
pub use compare::{CompareQuery, CompareView, MAX_RUNS as MAX_COMPARED_RUNS, compare_page};
pub use diff::{ArtifactDiff, DIFF_MAX_BYTES, line_diff};
pub use experiments::{ExperimentSort, ExperimentsQuery, ExperimentsView, experiments_page};
pub use href::encode as encode_segment;
pub use layout::{error_page, not_found_page};
pub use lifecycle::Lifecycle;
pub use maud::Markup;
pub use registry::{
    AliasConfirmView, AliasForm, Deployed, EVENTS_PAGE, MODELS_PAGE, ModelView, ModelsQuery,
    ModelsView, MonitorWindow, Signature, SignatureField, VERSIONS_SHOWN, VersionMetric,
    VersionOnline, VersionView, alias_confirm_page, mlmodel_signature, model_page, models_page,
    version_page,
};
pub use run::{RunView, run_page};
pub use runs::{
    Columns, PARENT_TAG, RowsView, RunsQuery, RunsView, Stat, TreeNode, parent_id as parent_run_id,
    runs_page, runs_rows,
};

/// Page sizes and limits the server's queries must agree with.
pub mod limits {
    pub use crate::experiments::PAGE_SIZE as EXPERIMENTS_PAGE;
    pub use crate::runs::{
        MAX_COLUMNS, MAX_GROUPS, MAX_WINDOW as RUNS_WINDOW, PAGE_SIZE as RUNS_PAGE,
    };
}

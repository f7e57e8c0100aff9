//! What built-in steps and run recording reach outside the pipeline: the metadata store
//! (tracking, registry, lineage), the artifact store, the deployments, and the tracking server
//! steps' own `mlflow` clients talk to. A run without them still runs `run:` steps and the
//! built-ins that need nothing (the trainer, the gate with no baseline, data checks).

use std::sync::Arc;

use twinloop_artifacts::ArtifactStore;
use twinloop_core::webhook::WebhookTransport;
use twinloop_meta::StoreHandle;
use twinloop_serving::deploy::DeploymentManager;

#[derive(Clone)]
pub struct Services {
    pub store: StoreHandle,
    pub artifacts: ArtifactStore,
    /// Present when serving runs in this process (`twinloop server`, quickstart).
    pub deployments: Option<Arc<DeploymentManager>>,
    /// The HTTP address of the tracking server, given to steps as `MLFLOW_TRACKING_URI`.
    pub tracking_uri: Option<String>,
    /// How `notify.webhook` sends (the server's HTTP transport).
    pub webhooks: Option<Arc<dyn WebhookTransport>>,
}

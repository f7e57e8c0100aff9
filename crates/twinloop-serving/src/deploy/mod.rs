//! Deployments hosted by `twinloop server`: created, re-weighted, canaried, promoted and rolled
//! back through [`DeploymentManager`], kept in the metadata store, and following registry aliases.

mod canary;
mod manager;
mod state;
mod store_registry;

pub use manager::{DeploymentManager, LEASE};
pub use state::{
    CanaryState, CanaryStatus, CanaryStep, DeploymentEvent, DeploymentState, DeploymentStatus,
    MovedAlias, ServingRoute,
};
pub use store_registry::StoreRegistry;

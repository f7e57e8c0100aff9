//! Executors beyond the local machine. The pipeline engine runs one step attempt through an
//! [`Executor`]: it builds an [`AttemptSpec`] (what to run, where its inputs and outputs are,
//! how much CPU and memory it gets), `start`s it, `wait`s for its [`Outcome`], `cancel`s it on
//! a timeout or a cancel, reads its `logs`, and after a restart `reattach`es by the external id
//! it recorded. [`k8s`] runs an attempt as a Kubernetes Job, [`ray`] as a Ray job, both through
//! their REST APIs; [`render`] prints the Jobs a pipeline would create without running anything.

pub mod attempt;
pub mod error;
pub mod executor;
pub mod k8s;
mod quantity;
pub mod ray;
pub mod render;

pub use attempt::{AttemptSpec, Resources};
pub use error::ExecutorError;
pub use executor::{Executor, Handle, Outcome};

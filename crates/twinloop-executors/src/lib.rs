//! Executors beyond the local machine: the implementations of the pipeline engine's
//! [`Executor`] trait (defined in `twinloop_pipelines::exec::executor`, beside the engine that
//! calls it). The engine builds an [`AttemptSpec`] per attempt of a step whose `executor:` names
//! one of `twinloop.yaml`'s executors, `start`s it, `wait`s for its [`Outcome`], `cancel`s it on a
//! timeout or a cancel, reads its `logs`, and after a restart `reattach`es by the external id it
//! recorded. [`k8s`] runs an attempt as a Kubernetes Job, [`ray`] as a Ray job, both through
//! their REST APIs; [`config`] builds them from `twinloop.yaml`'s settings; [`render`] prints the
//! Jobs a pipeline would create without running anything.

pub mod config;
pub mod k8s;
pub mod ray;
pub mod render;

pub use twinloop_pipelines::exec::executor::{
    AttemptSpec, Cpu, Executor, ExecutorError, Executors, Handle, MAX_FAILED_POLLS, Memory,
    Outcome, Resources,
};

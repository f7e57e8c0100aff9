//! `twinloop pipeline render FILE --executor k8s`: print the Kubernetes Jobs a run would create,
//! one YAML document per `run:` step, without running anything or contacting a cluster (for
//! review, `kubectl apply --dry-run=server`, or GitOps).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use twinloop_executors::k8s::JobTemplate;
use twinloop_executors::render::{RenderError, RenderOptions, render_k8s};
use twinloop_pipelines::Error;
use twinloop_pipelines::spec::parse_param_override;

use super::{INVALID, fail};
use crate::output::outln;

#[derive(Args)]
pub struct RenderArgs {
    file: PathBuf,
    /// Whose manifests to print: only Kubernetes Jobs are manifests (a Ray job is one request).
    #[arg(long, value_enum)]
    executor: Target,
    /// The image the steps run in.
    #[arg(long, default_value = "python:3.12-slim")]
    image: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The image the init container copies the `twinloop` launcher from (default: twinloop's
    /// release image of this version).
    #[arg(long)]
    launcher_image: Option<String>,
    #[arg(long)]
    service_account: Option<String>,
    /// The steps' working directory in their image (where the repository's code is).
    #[arg(long)]
    working_dir: Option<String>,
    /// Override a param: -p lr=0.2 (the value reads as YAML, as for `pipeline run`).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// The run id the Jobs are named and labelled with.
    #[arg(long, default_value = "render")]
    run_id: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    K8s,
}

pub fn render(args: &RenderArgs) -> ExitCode {
    let params: Result<Vec<_>, Error> = args
        .params
        .iter()
        .map(|p| parse_param_override(p))
        .collect();
    let params = match params {
        Ok(params) => params,
        Err(e) => return fail(&e),
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(source) => {
            let path = args.file.clone();
            return fail(&Error::Read { path, source });
        }
    };
    let mut template = JobTemplate::new(args.image.clone());
    template.namespace.clone_from(&args.namespace);
    if let Some(image) = &args.launcher_image {
        template.launcher_image.clone_from(image);
    }
    template.service_account.clone_from(&args.service_account);
    template.working_dir.clone_from(&args.working_dir);
    let options = RenderOptions {
        run_id: args.run_id.clone(),
        params,
        template,
    };
    let Target::K8s = args.executor;
    match render_k8s(&args.file.display().to_string(), &text, &options) {
        Ok(yaml) => {
            outln!("{}", yaml.trim_end());
            ExitCode::SUCCESS
        }
        Err(RenderError::Invalid(invalid)) => fail(&Error::Invalid(invalid)),
        Err(RenderError::Pipeline(e)) => fail(&e),
        Err(e @ (RenderError::Placement { .. } | RenderError::Yaml { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(INVALID)
        }
    }
}

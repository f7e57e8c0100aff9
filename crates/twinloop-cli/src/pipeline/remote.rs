//! `twinloop pipeline run FILE --server URL`: the run happens on a server. The file is applied
//! (a new version only if it changed), a run is started with the `-p` overrides, and its state is
//! followed until it ends; the exit code is the local run's (0, 1, or 3 when rejected).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use twinloop_api::pipelines::{ApplyPipeline, PipelineApplied, PipelineRun, StartRun};

use super::apply::BASE;
use crate::client::{Api, ServerConnection};
use crate::output::outln;

const POLL: Duration = Duration::from_millis(250);

pub fn run(file: &Path, repo: &Path, params: &[(String, String)], server: &str) -> ExitCode {
    let Some(runtime) = crate::output::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(follow(file, repo, params, server)) {
        Ok(run) => match run.state.as_str() {
            "SUCCEEDED" => ExitCode::SUCCESS,
            "REJECTED" => ExitCode::from(3),
            _ => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn follow(
    file: &Path,
    repo: &Path,
    params: &[(String, String)],
    server: &str,
) -> Result<PipelineRun> {
    let api = Api::new(&ServerConnection::to(server))?;
    let spec =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let body = ApplyPipeline {
        file: Some(file.display().to_string()),
        repo: Some(repo.display().to_string()),
        spec: Some(spec),
    };
    let applied: PipelineApplied = api
        .post_as(&format!("{BASE}/pipelines"), &body, "apply the pipeline")
        .await?;
    let name = &applied.pipeline.name;
    let start = StartRun {
        params: params.iter().cloned().collect(),
    };
    let mut run: PipelineRun = api
        .post_as(
            &format!("{BASE}/pipelines/{name}/runs"),
            &start,
            "start the run",
        )
        .await?;
    outln!(
        "run {} of {name} (version {}) on {server}",
        run.id,
        applied.pipeline.version
    );
    let mut shown = String::new();
    loop {
        if run.state != shown {
            outln!("  {}", run.state);
            shown.clone_from(&run.state);
        }
        if matches!(
            run.state.as_str(),
            "SUCCEEDED" | "FAILED" | "CANCELED" | "REJECTED"
        ) {
            if let Some(reason) = &run.reason {
                outln!("  {reason}");
            }
            return Ok(run);
        }
        tokio::time::sleep(POLL).await;
        run = api
            .get_as(&format!("{BASE}/runs/{}", run.id), &[], "follow the run")
            .await?;
    }
}

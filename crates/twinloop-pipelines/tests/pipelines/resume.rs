//! A12: `--resume RUN_ID` reuses that run's succeeded and cached steps, even with `--no-cache`,
//! re-runs the rest under a new run id, and refuses a run it cannot resume.

use crate::support::{Repo, states};
use twinloop_pipelines::Error;
use twinloop_pipelines::cache::Cas;
use twinloop_pipelines::exec::run;
use twinloop_pipelines::plan::{Decision, PlanOptions, plan};
use twinloop_pipelines::state::StepState::{Cached, Failed, Skipped, Succeeded};

/// A source step, then B, C (a repo script) and D in a line; each appends its name to
/// `counter.txt` when it executes.
const PIPELINE: &str = r#"pipeline: resumable
steps:
  a:
    run: echo a >> counter.txt && echo a > "$TWINLOOP_OUTPUT_OUT"
    outputs: {out: {kind: file}}
  b:
    run: echo b >> counter.txt && echo b | cat "$TWINLOOP_INPUT_IN" - > "$TWINLOOP_OUTPUT_OUT"
    inputs: {in: "${{ steps.a.outputs.out }}"}
    outputs: {out: {kind: file}}
  c:
    run: sh src/c.sh
    inputs: {in: "${{ steps.b.outputs.out }}"}
    outputs: {out: {kind: file}}
  d:
    run: echo d >> counter.txt && cat "$TWINLOOP_INPUT_IN" > "$TWINLOOP_OUTPUT_OUT"
    inputs: {in: "${{ steps.c.outputs.out }}"}
    outputs: {out: {kind: file}}
"#;

const BROKEN_C: &str = "echo c >> counter.txt\nexit 1\n";
const FIXED_C: &str =
    "echo c >> counter.txt\ncat \"$TWINLOOP_INPUT_IN\" > \"$TWINLOOP_OUTPUT_OUT\"\n";

fn steps(states: &[(String, twinloop_pipelines::state::StepState)]) -> Vec<(&str, &str)> {
    states
        .iter()
        .map(|(step, state)| (step.as_str(), state.as_str()))
        .collect()
}

fn plan_options(repo: &Repo, resume: &str) -> PlanOptions {
    PlanOptions {
        repo: repo.path().to_owned(),
        home: repo.home(),
        params: Vec::new(),
        no_cache: true,
        refresh: Vec::new(),
        verify: false,
        resume: Some(resume.to_owned()),
    }
}

/// A run that failed at c, and c fixed since.
async fn failed_at_c(repo: &Repo) -> (twinloop_pipelines::spec::Pipeline, String) {
    let pipeline = repo.pipeline(PIPELINE);
    repo.write("src/c.sh", BROKEN_C);
    let first = repo.run(&pipeline).await;
    assert_eq!(
        steps(&states(&first)),
        [
            ("a", Succeeded.as_str()),
            ("b", Succeeded.as_str()),
            ("c", Failed.as_str()),
            ("d", Skipped.as_str())
        ]
    );
    repo.write("src/c.sh", FIXED_C);
    repo.write("counter.txt", "");
    (pipeline, first.run_id)
}

#[tokio::test]
async fn a12_resume_reuses_what_succeeded_even_without_the_cache_and_runs_the_rest() {
    let repo = Repo::new();
    let (pipeline, r1) = failed_at_c(&repo).await;

    let planned = plan(&pipeline, &plan_options(&repo, &r1)).unwrap();
    let decisions: Vec<_> = planned.iter().map(|p| p.decision.clone()).collect();
    assert_eq!(
        decisions[..2],
        [
            Decision::Cached {
                from_run: r1.clone()
            },
            Decision::Cached {
                from_run: r1.clone()
            }
        ]
    );
    assert!(
        matches!(decisions[2], Decision::Run { .. }),
        "{decisions:?}"
    );

    let second = repo
        .run_with(&pipeline, |o| {
            o.no_cache = true;
            o.resume = Some(r1.clone());
        })
        .await;
    assert_ne!(second.run_id, r1, "a resume is a new run");
    assert_eq!(
        steps(&states(&second)),
        [
            ("a", Cached.as_str()),
            ("b", Cached.as_str()),
            ("c", Succeeded.as_str()),
            ("d", Succeeded.as_str())
        ]
    );
    for reused in ["a", "b"] {
        assert_eq!(
            second.step(reused).unwrap().cached_from.as_deref(),
            Some(r1.as_str())
        );
    }
    assert_eq!(repo.read("counter.txt"), "c\nd\n", "only c and d executed");

    // The resumed run recorded its reused steps too, so it can be resumed in turn.
    let third = repo
        .run_with(&pipeline, |o| {
            o.no_cache = true;
            o.resume = Some(second.run_id.clone());
        })
        .await;
    assert_eq!(
        states(&third).iter().map(|s| s.1).collect::<Vec<_>>(),
        [Cached; 4]
    );
    assert_eq!(repo.read("counter.txt"), "c\nd\n", "nothing executed");
}

#[tokio::test]
async fn a12_a_reused_step_whose_output_is_gone_runs_again() {
    let repo = Repo::new();
    let (pipeline, r1) = failed_at_c(&repo).await;
    let index = twinloop_pipelines::cache::Index::open(&repo.home()).unwrap();
    let b = index.newest("resumable", "b").unwrap();
    Cas::new(&repo.home())
        .remove(&b.outputs["out"].digest)
        .unwrap();

    let second = repo
        .run_with(&pipeline, |o| o.resume = Some(r1.clone()))
        .await;
    assert_eq!(
        steps(&states(&second)),
        [
            ("a", Cached.as_str()),
            ("b", Succeeded.as_str()),
            ("c", Succeeded.as_str()),
            ("d", Succeeded.as_str())
        ]
    );
    assert_eq!(repo.read("counter.txt"), "b\nc\nd\n");
}

#[tokio::test]
async fn a12_an_unknown_run_or_a_run_of_another_pipeline_is_refused() {
    let repo = Repo::new();
    let (pipeline, r1) = failed_at_c(&repo).await;
    let resume = |run_id: &str| {
        let mut options = repo.options();
        options.resume = Some(run_id.to_owned());
        options
    };
    let unknown = run(&pipeline, resume("no-such-run")).await.unwrap_err();
    assert!(matches!(unknown, Error::UnknownRun(_)), "{unknown}");
    assert_eq!(
        unknown.to_string(),
        "no run \"no-such-run\" in the cache index: nothing to resume"
    );

    let other = repo.pipeline(&PIPELINE.replace("pipeline: resumable", "pipeline: other"));
    let refused = run(&other, resume(&r1)).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("run {r1} is a run of pipeline \"resumable\", not \"other\": nothing to resume")
    );
    let planned = plan(&other, &plan_options(&repo, &r1)).unwrap_err();
    assert!(matches!(planned, Error::ResumeOtherPipeline { .. }));
    assert_eq!(repo.read("counter.txt"), "", "nothing executed");
}

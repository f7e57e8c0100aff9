//! A7: `plan` says what would run and why, and creates no executions.

use crate::support::Repo;
use twinloop_pipelines::plan::{Decision, PlanOptions, plan};

#[tokio::test]
async fn a7_plan_names_the_changed_code_file() {
    let repo = Repo::new();
    repo.write("data/raw.csv", "a\n");
    repo.write("src/train.py", "print('v1')\n");
    let pipeline = repo.pipeline(
        r#"pipeline: pl
params: {lr: 0.1}
steps:
  prep:
    run: cp data/raw.csv "$TWINLOOP_OUTPUT_CLEAN"
    inputs: {raw: data/raw.csv}
    outputs: {clean: {kind: file}}
  train:
    run: python3 src/train.py ${{ params.lr }} > "$TWINLOOP_OUTPUT_MODEL"
    inputs:
      clean: ${{ steps.prep.outputs.clean }}
    outputs: {model: {kind: file}}
  eval:
    run: cat "$TWINLOOP_INPUT_MODEL" > "$TWINLOOP_OUTPUT_SCORE"
    inputs:
      model: ${{ steps.train.outputs.model }}
    outputs: {score: {kind: file}}
"#,
    );
    let options = |params: Vec<(String, String)>| PlanOptions {
        repo: repo.path().to_owned(),
        home: repo.home(),
        params,
        no_cache: false,
        refresh: Vec::new(),
        verify: false,
        resume: None,
    };
    let first = plan(&pipeline, &options(Vec::new())).unwrap();
    assert_eq!(
        first[0].decision,
        Decision::Run {
            reasons: vec!["never ran".into()]
        }
    );
    let run = repo.run(&pipeline).await;

    repo.write("src/train.py", "print('v2')\n");
    let executions = repo.executions();
    let planned = plan(&pipeline, &options(Vec::new())).unwrap();
    assert_eq!(repo.executions(), executions, "plan creates no executions");
    assert_eq!(
        planned[0].decision,
        Decision::Cached {
            from_run: run.run_id.clone()
        }
    );
    assert_eq!(
        planned[1].decision,
        Decision::Run {
            reasons: vec!["code: src/train.py changed".into()]
        }
    );
    assert!(
        matches!(&planned[2].decision, Decision::Unknown { reason } if reason.contains("train"))
    );

    let planned = plan(&pipeline, &options(vec![("lr".into(), "0.2".into())])).unwrap();
    assert_eq!(
        planned[1].decision,
        Decision::Run {
            reasons: vec![
                "param lr: 0.1 → 0.2".into(),
                "code: src/train.py changed".into()
            ]
        }
    );
}

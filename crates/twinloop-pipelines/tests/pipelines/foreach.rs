//! A11: `foreach:` runs a step once per element, at most `max_parallel` at once (told by the
//! timestamps the items write, not by how long the run took), collects its outputs in item
//! order, fans out over a list an earlier step produced, and caches each item on its own.

use serde_json::json;
use twinloop_pipelines::exec::RunReport;
use twinloop_pipelines::plan::{Decision, PlanOptions, plan};
use twinloop_pipelines::state::StepState::{Cached, Failed, Skipped, Succeeded};
use twinloop_pipelines::state::{RunStatus, StepState};

use crate::support::{Repo, state};

/// Each item counts itself, records when it started and ended (ns), sleeps, and writes a file
/// and a value; `gather` reads the collected file outputs and the collected values.
const FAN: &str = r#"pipeline: fan
params:
  items: [d, b, a, c]
steps:
  fan:
    foreach: ${{ params.items }}
    max_parallel: 2
    cache: true
    run: >-
      echo ${{ item }} >> counter.txt &&
      date +%s%N > "times/$TWINLOOP_ITEM.start" && sleep 0.5 &&
      date +%s%N > "times/$TWINLOOP_ITEM.end" &&
      echo "file ${{ item }}" > "$TWINLOOP_OUTPUT_F" &&
      echo "{\"output\": \"v\", \"value\": \"${{ item }}\"}" > "$TWINLOOP_MESSAGES"
    outputs:
      f: {kind: file}
      v: {kind: value}
  gather:
    run: >-
      ls "$TWINLOOP_INPUT_ALL" | while read -r f; do cat "$TWINLOOP_INPUT_ALL/$f"; done > gathered.txt &&
      echo '${{ steps.fan.outputs.v }}' > values.txt
    inputs: {all: "${{ steps.fan.outputs.f }}"}
"#;

fn item_states(report: &RunReport, step: &str) -> Vec<StepState> {
    report
        .step(step)
        .unwrap()
        .items
        .iter()
        .map(|i| i.state)
        .collect()
}

/// The most items running at one moment, from the (start, end) times they wrote.
fn most_at_once(repo: &Repo, items: &[&str]) -> usize {
    let mut edges: Vec<(u128, i32)> = Vec::new();
    for item in items {
        let read = |suffix: &str| -> u128 {
            repo.read(&format!("times/{item}.{suffix}"))
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("item {item} wrote no {suffix} time"))
        };
        edges.push((read("start"), 1));
        edges.push((read("end"), -1));
    }
    // At the same instant an end comes before a start: touching spans do not overlap.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    usize::try_from(most).unwrap()
}

#[tokio::test]
async fn a11_items_run_two_at_a_time_and_their_outputs_come_back_in_item_order() {
    let repo = Repo::new();
    repo.write("times/.keep", "");
    let pipeline = repo.pipeline(FAN);
    let report = repo.run_with(&pipeline, |o| o.max_parallel = 4).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(item_states(&report, "fan"), [Succeeded; 4]);
    assert_eq!(
        most_at_once(&repo, &["d", "b", "a", "c"]),
        2,
        "max_parallel: 2 of 4 run slots"
    );
    let mut counted: Vec<String> = repo.read("counter.txt").lines().map(Into::into).collect();
    counted.sort();
    assert_eq!(counted, ["a", "b", "c", "d"], "every item ran once");

    let fan = report.step("fan").unwrap();
    assert_eq!(fan.outputs["v"].value, Some(json!(["d", "b", "a", "c"])));
    let names: Vec<&str> = fan.items.iter().map(|i| i.step.as_str()).collect();
    assert_eq!(names, ["fan[0]", "fan[1]", "fan[2]", "fan[3]"]);
    assert_eq!(fan.items[2].item, Some(json!("a")));
    assert_eq!(
        repo.read("gathered.txt"),
        "file d\nfile b\nfile a\nfile c\n",
        "file outputs collected as one directory in item order"
    );
    assert_eq!(repo.read("values.txt").trim(), r#"["d","b","a","c"]"#);
    let log = &fan.items[1].attempts[0].stdout;
    assert!(
        log.ends_with(format!("runs/{}/fan/1/1/stdout.log", report.run_id)),
        "{}",
        log.display()
    );

    // Again: every item is a cache hit, so the collected outputs and `gather` are too.
    let again = repo.run(&pipeline).await;
    assert_eq!(item_states(&again, "fan"), [Cached; 4]);
    assert_eq!(state(&again, "fan"), Cached);
    assert_eq!(state(&again, "gather"), Cached);
    assert_eq!(repo.read("counter.txt").lines().count(), 4);

    // One element changes: only its item runs; the others are reused. Plan says so first.
    let plan_with = |items: &str| {
        let options = PlanOptions {
            repo: repo.path().to_owned(),
            home: repo.home(),
            params: vec![("items".into(), items.into())],
            no_cache: false,
            refresh: Vec::new(),
            verify: false,
            resume: None,
        };
        plan(&pipeline, &options)
            .unwrap()
            .into_iter()
            .map(|p| p.decision)
            .collect::<Vec<_>>()
    };
    let unchanged = plan_with("[d, b, a, c]");
    assert!(
        matches!(
            &unchanged[..],
            [Decision::Cached { .. }, Decision::Cached { .. }]
        ),
        "{unchanged:?}"
    );
    assert_eq!(
        plan_with("[d, b, e, c]")[0],
        Decision::Run {
            reasons: vec!["item 2 (e): env var TWINLOOP_ITEM changed".into()]
        }
    );
    let changed = repo
        .run_with(&pipeline, |o| {
            o.params = vec![("items".into(), "[d, b, e, c]".into())]
        })
        .await;
    assert_eq!(
        item_states(&changed, "fan"),
        [Cached, Cached, Succeeded, Cached]
    );
    assert_eq!(state(&changed, "fan"), Succeeded);
    assert_eq!(state(&changed, "gather"), Succeeded);
    assert_eq!(repo.read("counter.txt").lines().last(), Some("e"));
    assert_eq!(
        repo.read("gathered.txt"),
        "file d\nfile b\nfile e\nfile c\n"
    );

    // No element: the step succeeds with empty lists and its consumers run on them.
    let empty = repo
        .run_with(&pipeline, |o| {
            o.params = vec![("items".into(), "[]".into())]
        })
        .await;
    assert_eq!(empty.status, RunStatus::Succeeded, "{empty:#?}");
    assert_eq!(state(&empty, "fan"), Succeeded);
    assert_eq!(
        empty.step("fan").unwrap().outputs["v"].value,
        Some(json!([]))
    );
    assert_eq!(repo.read("values.txt").trim(), "[]");
}

#[tokio::test]
async fn a11_a_list_an_earlier_step_produced_fans_out() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        r#"pipeline: dynamic
steps:
  list:
    run: >-
      echo '{"output": "xs", "value": ["x", {"name": "y"}, 3]}' > "$TWINLOOP_MESSAGES"
    outputs: {xs: {kind: value}}
  each:
    foreach: ${{ steps.list.outputs.xs }}
    run: >-
      echo "$TWINLOOP_ITEM" >> seen.txt &&
      printf '{"output": "n", "value": "%s"}\n' "${{ item.name }}" > "$TWINLOOP_MESSAGES"
    outputs: {n: {kind: value}}
"#,
    );
    let report = repo.run(&pipeline).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(
        report.step("each").unwrap().outputs["n"].value,
        Some(json!(["", "y", ""]))
    );
    let mut seen: Vec<String> = repo.read("seen.txt").lines().map(Into::into).collect();
    seen.sort();
    assert_eq!(
        seen,
        ["3", "x", r#"{"name":"y"}"#],
        "TWINLOOP_ITEM: text, else JSON"
    );
    let context = repo
        .home()
        .join(format!("runs/{}/each/1/1/context.json", report.run_id));
    let context: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(context).unwrap()).unwrap();
    assert_eq!(context["item"], json!({"name": "y"}));
    assert_eq!(context["step"], json!("each"));
}

#[tokio::test]
async fn a11_a_failing_item_fails_its_step_and_fail_fast_starts_no_other() {
    let repo = Repo::new();
    let pipeline = repo.pipeline(
        r#"pipeline: failing
params:
  items: [ok, bad, later]
steps:
  each:
    foreach: ${{ params.items }}
    max_parallel: 1
    run: echo ${{ item }} >> ran.txt && test "${{ item }}" != bad
  after:
    run: 'true'
    needs: [each]
"#,
    );
    let report = repo.run(&pipeline).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(item_states(&report, "each"), [Succeeded, Failed, Skipped]);
    assert_eq!(state(&report, "each"), Failed);
    let reason = report.step("each").unwrap().reason.clone().unwrap();
    assert!(
        reason.starts_with("item each[1]: exited with 1"),
        "{reason}"
    );
    assert_eq!(state(&report, "after"), Skipped);
    assert_eq!(repo.read("ran.txt"), "ok\nbad\n");
}

#[tokio::test]
async fn a11_resume_reuses_the_items_that_succeeded_with_the_same_element() {
    let repo = Repo::new();
    repo.write("fail-b", "");
    let pipeline = repo.pipeline(
        r#"pipeline: resumable
params:
  items: [a, b, c]
steps:
  each:
    foreach: ${{ params.items }}
    max_parallel: 1
    run: echo ${{ item }} >> ran.txt && test ! -e "fail-${{ item }}"
"#,
    );
    let first = repo.run(&pipeline).await;
    assert_eq!(item_states(&first, "each"), [Succeeded, Failed, Skipped]);
    std::fs::remove_file(repo.path().join("fail-b")).unwrap();

    let resumed = repo
        .run_with(&pipeline, |o| o.resume = Some(first.run_id.clone()))
        .await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed:#?}");
    assert_eq!(
        item_states(&resumed, "each"),
        [Cached, Succeeded, Succeeded]
    );
    let reused = &resumed.step("each").unwrap().items[0];
    assert_eq!(reused.cached_from.as_deref(), Some(first.run_id.as_str()));
    assert_eq!(repo.read("ran.txt"), "a\nb\nb\nc\n");

    // Another element at index 0 is not the item that ran there: it runs.
    let other = repo
        .run_with(&pipeline, |o| {
            o.resume = Some(resumed.run_id.clone());
            o.params = vec![("items".into(), "[z, b, c]".into())];
        })
        .await;
    assert_eq!(item_states(&other, "each"), [Succeeded, Cached, Cached]);
}

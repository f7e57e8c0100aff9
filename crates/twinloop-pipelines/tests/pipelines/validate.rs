//! A1: invalid pipelines are refused before anything runs, each problem at `file:line: field`.

use twinloop_pipelines::spec::parse;

fn problems(text: &str) -> String {
    parse("p.yaml", text).unwrap_err().to_string()
}

#[test]
fn a1_each_problem_names_file_line_and_field() {
    let cycle = "pipeline: p\nsteps:\n  a:\n    run: x\n    needs: [c]\n  b:\n    run: y\n    needs: [a]\n  c:\n    run: z\n    needs: [b]\n";
    let text = problems(cycle);
    assert!(
        text.contains("p.yaml:5: steps[a].needs: dependency cycle among steps a, b, c"),
        "{text}"
    );
    assert!(
        text.contains("p.yaml:11: steps[c].needs: dependency cycle"),
        "{text}"
    );

    let unknown_step = "pipeline: p\nsteps:\n  a:\n    run: x\n    needs: [nope]\n";
    assert_eq!(
        problems(unknown_step),
        "p.yaml:5: steps[a].needs: unknown step \"nope\""
    );

    let unknown_output = "pipeline: p\nsteps:\n  a:\n    run: x\n    outputs:\n      m: {kind: file}\n  b:\n    run: y\n    inputs:\n      m: ${{ steps.a.outputs.model }}\n";
    assert_eq!(
        problems(unknown_output),
        "p.yaml:9: steps[b].inputs: input m: step \"a\" has no output \"model\""
    );

    let bad_expression =
        "pipeline: p\nparams: {lr: 1}\nsteps:\n  a:\n    run: x\n    when: ${{ params.lr >> 2 }}\n";
    assert_eq!(
        problems(bad_expression),
        "p.yaml:6: steps[a].when: unexpected `>` in expression \"params.lr >> 2\""
    );

    let unknown_builtin = "pipeline: p\nsteps:\n  gate:\n    uses: model.magic@1\n";
    assert!(
        problems(unknown_builtin)
            .starts_with("p.yaml:4: steps[gate].uses: unknown built-in \"model.magic\""),
        "{}",
        problems(unknown_builtin)
    );
    let no_thresholds = "pipeline: p\nsteps:\n  gate:\n    uses: model.evaluate@1\n    with:\n      candidate: m.onnx\n      data: h.parquet\n      label: y\n      metrics: {roc_auc: {greater_is_better: true}}\n";
    assert_eq!(
        problems(no_thresholds),
        "p.yaml:5: steps[gate].with: metrics.roc_auc: no threshold, min_absolute_change or min_relative_change; give at least one"
    );
    let empty_gate = "pipeline: p\nsteps:\n  gate:\n    uses: model.evaluate@1\n    with: {candidate: m.onnx, data: h.parquet, label: y, metrics: {}}\n";
    assert!(
        problems(empty_gate).contains("p.yaml:5: steps[gate].with: metrics"),
        "{}",
        problems(empty_gate)
    );
    let empty_metrics_gate = "pipeline: p\nsteps:\n  gate:\n    uses: model.gate@1\n    with: {candidate: m.json, metrics: {}}\n";
    assert!(
        problems(empty_metrics_gate)
            .starts_with("p.yaml:5: steps[gate].with: metrics: no metric to judge by"),
        "{}",
        problems(empty_metrics_gate)
    );
    let no_window =
        "pipeline: p\nsteps:\n  m:\n    uses: features.materialize@1\n    with: {views: [v]}\n";
    assert!(
        problems(no_window).starts_with(
            "p.yaml:5: steps[m].with: features.materialize@1 needs with.start and with.end"
        ),
        "{}",
        problems(no_window)
    );
    let unknown_arg = "pipeline: p\nsteps:\n  n:\n    uses: notify.webhook@1\n    with: {url: 'http://x', colour: red}\n";
    assert_eq!(
        problems(unknown_arg),
        "p.yaml:5: steps[n].with: notify.webhook@1 has no argument \"colour\" (it takes: body, secret, url)"
    );

    let duplicate = "pipeline: p\nsteps:\n  a:\n    run: x\nfinally:\n  a:\n    run: y\n";
    assert_eq!(
        problems(duplicate),
        "p.yaml:6: finally[a]: duplicate step id \"a\" (first in steps:)"
    );
}

#[test]
fn what_this_phase_does_not_run_is_refused_not_ignored() {
    let text = problems(
        "pipeline: p\ntriggers:\n  - cron: '0 3 * * *'\nsteps:\n  a:\n    run: x\n    executor: k8s\n    resources: {cpu: 1, gpu: 1}\n",
    );
    assert!(
        text.contains("p.yaml:8: steps[a].resources:") && text.contains("gpu"),
        "a resource the executors cannot honour is refused, not ignored: {text}"
    );
    assert!(
        !text.contains("executor"),
        "a named executor is checked against twinloop.yaml, not refused: {text}"
    );
    let text = problems(
        "pipeline: p\nsteps:\n  a:\n    uses: notify.webhook@1\n    with: {url: 'http://127.0.0.1:1/'}\n    resources: {cpu: 1}\n",
    );
    assert!(
        text.contains("steps[a].resources: a built-in runs inside the twinloop process"),
        "{text}"
    );
    let text =
        problems("pipeline: p\nsteps:\n  a:\n    run: x\n    outputs:\n      m: {kind: model}\n");
    assert!(
        text.contains("p.yaml:5: steps[a].outputs: output m: kind \"model\" is not supported yet"),
        "{text}"
    );
    let text = problems("pipeline: p\nsteps:\n  a:\n    run: x\n    timeout: 10\n");
    assert!(
        text.contains("p.yaml:5: steps[a].timeout: duration \"10\" needs a unit"),
        "{text}"
    );
    let text = problems("pipeline: p\nsteps:\n  a:\n    run: x\n    colour: red\n");
    assert!(
        text.contains("p.yaml:3: steps[a]: unknown field `colour`"),
        "{text}"
    );
}

"""A13: a pipeline step that uses the stock mlflow client lands in its step's run.

`twinloop pipeline run` opens the store and a tracking server on a loopback port for the run;
each step attempt gets MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_ID / MLFLOW_RUN_ID, so a plain
`mlflow.start_run()` resumes the step's run, nested under the pipeline run's parent run in the
pipeline's experiment. Checked afterwards through a `twinloop server` on the same store, with the
stock client. twinloop only: the real mlflow server has no pipelines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import _free_port, _kill_group, _target, _twinloop_bin_problem, _wait_healthy

STEP = """
import json, os, mlflow
with mlflow.start_run() as run:
    mlflow.log_metric("auc", 0.91)
    mlflow.log_param("from_step", "yes")
with open(os.environ["TWINLOOP_MESSAGES"], "a") as f:
    f.write(json.dumps({"output": "metrics", "value": {"loss": 0.25}}) + "\\n")
"""


@pytest.fixture
def twinloop_bin(request):
    if _target() != "twinloop":
        pytest.skip("pipelines are twinloop's own")
    # The suite's autouse fixture runs every test once per backend; this one opens its own store.
    if request.node.callspec.params.get("server") != "sqlite":
        pytest.skip("runs once, on its own SQLite store")
    problem = _twinloop_bin_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    return os.path.abspath(os.environ["TWINLOOP_BIN"].strip())


def test_mlflow_in_a_step_lands_in_the_step_run(twinloop_bin, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(STEP)
    (repo / "pipeline.yaml").write_text(
        "pipeline: a13-demo\n"
        "params: {lr: 0.1}\n"
        "steps:\n"
        "  train:\n"
        f"    run: {sys.executable} train.py --lr ${{{{ params.lr }}}}\n"
        "    outputs:\n"
        "      metrics: {kind: metrics}\n"
    )
    store = f"sqlite:///{tmp_path / 'twinloop.db'}"
    artifacts = str(tmp_path / "artifacts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    run = subprocess.run(
        [twinloop_bin, "pipeline", "--repo", str(repo), "run", str(repo / "pipeline.yaml"),
         "--backend-store-uri", store, "--artifacts-destination", artifacts, "--json"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    port = _free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [twinloop_bin, "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", store, "--artifacts-destination", artifacts],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path, 60.0, "twinloop server")
        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("a13-demo")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
        steps = [r for r in runs if r.data.tags.get("twinloop.step") == "train"]
        parents = [r for r in runs if "twinloop.step" not in r.data.tags]
        assert len(steps) == 1 and len(parents) == 1, [r.data.tags for r in runs]
        step, parent = steps[0], parents[0]
        assert step.data.metrics["auc"] == pytest.approx(0.91)
        assert step.data.metrics["loss"] == pytest.approx(0.25), "the step's metrics output"
        assert step.data.params["from_step"] == "yes"
        assert step.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert step.data.tags["twinloop.pipeline_run"] == parent.data.tags["twinloop.pipeline_run"]
        assert step.info.status == "FINISHED" and parent.info.status == "FINISHED"
        assert parent.data.params["lr"] == "0.1"
    finally:
        _kill_group(proc)


def test_quickstart_with_a_scikit_learn_trainer(twinloop_bin, tmp_path):
    """The same loop with `src/train.py` (scikit-learn + skl2onnx) as the train step: the
    script's mlflow calls land in the step's run, and the loop closes (v2 promoted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # The step runs `python3`: this interpreter, which has scikit-learn, skl2onnx and mlflow.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TWINLOOP_LOG"] = "warn"
    run = subprocess.run(
        [twinloop_bin, "quickstart", "--python", "--dir", str(tmp_path / "qs")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "The loop closed" in run.stdout
    train_py = (tmp_path / "qs" / "src" / "train.py").read_text()
    assert "skl2onnx" in train_py

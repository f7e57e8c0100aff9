"""Runs: lifecycle, nesting, params / metrics / tags, batches, history, inputs, delete / restore."""

import math
import os
import re
import time

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException

FLOAT_MAX = 1.7976931348623157e308


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_start_and_end_run(client, experiment):
    exp_id, _ = experiment
    before = _now_ms()
    with mlflow.start_run(run_name="first-run") as run:
        run_id = run.info.run_id
        assert re.fullmatch(r"[0-9a-f]{32}", run_id)
        live = client.get_run(run_id)
        assert live.info.status == "RUNNING"
        assert live.info.end_time is None
        assert live.info.lifecycle_stage == "active"
    after = _now_ms()

    r = client.get_run(run_id)
    assert r.info.run_id == run_id
    assert r.info.experiment_id == exp_id
    assert r.info.run_name == "first-run"
    assert r.info.status == "FINISHED"
    assert before - 5000 <= r.info.start_time <= after + 5000
    assert r.info.end_time is not None and r.info.end_time >= r.info.start_time
    assert r.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"
    assert r.info.lifecycle_stage == "active"
    tags = r.data.tags
    assert tags["mlflow.runName"] == "first-run"
    assert "mlflow.user" in tags
    assert "mlflow.source.name" in tags
    assert tags["mlflow.source.type"] == "LOCAL"
    assert mlflow.last_active_run().info.run_id == run_id


def test_end_run_statuses(client, experiment):
    for status in ("FAILED", "KILLED", "FINISHED"):
        run = mlflow.start_run()
        mlflow.end_run(status=status)
        assert client.get_run(run.info.run_id).info.status == status

    # an exception inside the context manager marks the run FAILED
    with pytest.raises(RuntimeError):
        with mlflow.start_run() as run:
            raise RuntimeError("boom")
    assert client.get_run(run.info.run_id).info.status == "FAILED"


def test_client_create_run_gets_generated_name(client, experiment):
    exp_id, _ = experiment
    run = client.create_run(exp_id)
    assert run.info.status == "RUNNING"
    name = run.info.run_name
    assert name  # server made one up
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.run_name == name
    assert fetched.data.tags["mlflow.runName"] == name

    client.update_run(run.info.run_id, name="renamed")
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.run_name == "renamed"
    assert fetched.data.tags["mlflow.runName"] == "renamed"

    client.set_terminated(run.info.run_id, status="KILLED")
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.status == "KILLED"
    assert fetched.info.end_time is not None


def test_create_run_with_explicit_start_time_and_tags(client, experiment):
    exp_id, _ = experiment
    run = client.create_run(exp_id, start_time=1_700_000_000_000, tags={"a": "1"}, run_name="explicit")
    r = client.get_run(run.info.run_id)
    assert r.info.start_time == 1_700_000_000_000
    assert r.data.tags["a"] == "1"
    assert r.data.tags["mlflow.runName"] == "explicit"


def test_nested_runs(client, experiment):
    exp_id, _ = experiment
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-1", nested=True) as c1:
            pass
        with mlflow.start_run(run_name="child-2", nested=True) as c2:
            with mlflow.start_run(run_name="grandchild", nested=True) as gc:
                pass
    pid = parent.info.run_id
    assert "mlflow.parentRunId" not in client.get_run(pid).data.tags
    assert client.get_run(c1.info.run_id).data.tags["mlflow.parentRunId"] == pid
    assert client.get_run(c2.info.run_id).data.tags["mlflow.parentRunId"] == pid
    assert client.get_run(gc.info.run_id).data.tags["mlflow.parentRunId"] == c2.info.run_id
    assert client.get_parent_run(c1.info.run_id).info.run_id == pid
    assert client.get_parent_run(pid) is None

    children = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{pid}'")
    assert {r.info.run_id for r in children} == {c1.info.run_id, c2.info.run_id}
    for r in (parent, c1, c2, gc):
        assert client.get_run(r.info.run_id).info.status == "FINISHED"


def test_params_metrics_tags(client, experiment):
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"depth": 5, "name": "abc", "flag": True})
        mlflow.log_metric("loss", 0.5)
        mlflow.log_metric("acc", 0.9, step=3)
        mlflow.log_metric("acc", 0.95, step=4, timestamp=1_700_000_000_123)
        mlflow.log_metrics({"m1": 1.0, "m2": 2.5}, step=7)
        mlflow.set_tag("stage", "dev")
        mlflow.set_tags({"owner": "me", "n": 3})
    r = client.get_run(run.info.run_id)
    assert r.data.params == {"lr": "0.01", "depth": "5", "name": "abc", "flag": "True"}
    assert r.data.metrics == {"loss": 0.5, "acc": 0.95, "m1": 1.0, "m2": 2.5}
    assert r.data.tags["stage"] == "dev"
    assert r.data.tags["owner"] == "me"
    assert r.data.tags["n"] == "3"

    hist = client.get_metric_history(run.info.run_id, "acc")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [(3, 0.9), (4, 0.95)]
    ts = {m.step: m.timestamp for m in hist}
    assert ts[4] == 1_700_000_000_123
    assert all(m.key == "acc" for m in hist)
    m1 = client.get_metric_history(run.info.run_id, "m1")
    assert [(m.step, m.value) for m in m1] == [(7, 1.0)]


def test_set_tag_overwrites_and_delete_tag(client, experiment):
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        mlflow.set_tag("t", "1")
        mlflow.set_tag("t", "2")
        assert client.get_run(run_id).data.tags["t"] == "2"
        mlflow.delete_tag("t")
        assert "t" not in client.get_run(run_id).data.tags
        client.set_tag(run_id, "u", "x")
        client.delete_tag(run_id, "u")
        assert "u" not in client.get_run(run_id).data.tags

        with pytest.raises(MlflowException) as ei:
            client.delete_tag(run_id, "never-set")
        assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_log_batch(client, experiment):
    exp_id, _ = experiment
    run = client.create_run(exp_id)
    run_id = run.info.run_id
    ts = _now_ms()
    client.log_batch(
        run_id,
        metrics=[Metric("b1", 1.5, ts, 0), Metric("b1", 2.5, ts + 1, 1), Metric("b2", -3.0, ts, 0)],
        params=[Param("p1", "v1"), Param("p2", "v2")],
        tags=[RunTag("t1", "x"), RunTag("t2", "y")],
    )
    r = client.get_run(run_id)
    assert r.data.metrics == {"b1": 2.5, "b2": -3.0}
    assert r.data.params == {"p1": "v1", "p2": "v2"}
    assert r.data.tags["t1"] == "x" and r.data.tags["t2"] == "y"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "b1")] == [(0, 1.5), (1, 2.5)]

    # an empty batch is fine
    client.log_batch(run_id, metrics=[], params=[], tags=[])

    # the same param key twice in one batch with different values is rejected
    with pytest.raises(MlflowException) as ei:
        client.log_batch(run_id, params=[Param("dup", "a"), Param("dup", "b")])
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"


def test_duplicate_param(client, experiment):
    with mlflow.start_run() as run:
        mlflow.log_param("p", "same")
        mlflow.log_param("p", "same")  # same value again is fine
        with pytest.raises(MlflowException) as ei:
            mlflow.log_param("p", "different")
        assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
        with pytest.raises(MlflowException) as ei:
            client.log_batch(run.info.run_id, params=[Param("p", "other")])
        assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run.info.run_id).data.params == {"p": "same"}


def test_non_finite_metrics(client, experiment):
    with mlflow.start_run() as run:
        mlflow.log_metric("nan", float("nan"))
        mlflow.log_metric("pinf", float("inf"))
        mlflow.log_metric("ninf", float("-inf"))
        mlflow.log_metric("big", FLOAT_MAX)
        client.log_batch(run.info.run_id, metrics=[Metric("bnan", float("nan"), _now_ms(), 0)])
    r = client.get_run(run.info.run_id)
    m = r.data.metrics
    assert math.isnan(m["nan"])
    assert math.isnan(m["bnan"])
    # MLflow's SQL store clamps +-inf to +-max float64; twinloop keeps the infinity that was
    # logged (both databases store it) and sends it as "Infinity", which the client parses.
    inf = FLOAT_MAX if os.environ.get("TWINLOOP_COMPAT_TARGET") == "mlflow" else math.inf
    assert m["pinf"] == inf
    assert m["ninf"] == -inf
    assert m["big"] == FLOAT_MAX
    (h,) = client.get_metric_history(run.info.run_id, "nan")
    assert math.isnan(h.value)
    (h,) = client.get_metric_history(run.info.run_id, "pinf")
    assert h.value == inf


def test_latest_metric_is_max_step_then_max_timestamp(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=5)
    client.log_metric(run_id, "m", 2.0, timestamp=9000, step=3)  # later but lower step
    assert client.get_run(run_id).data.metrics["m"] == 1.0
    client.log_metric(run_id, "m", 3.0, timestamp=2000, step=5)  # same step, later timestamp
    assert client.get_run(run_id).data.metrics["m"] == 3.0
    client.log_metric(run_id, "m", 4.0, timestamp=1500, step=5)  # same step, earlier timestamp
    assert client.get_run(run_id).data.metrics["m"] == 3.0
    client.log_metric(run_id, "m", -1.0, timestamp=10, step=6)  # higher step wins
    assert client.get_run(run_id).data.metrics["m"] == -1.0
    assert len(client.get_metric_history(run_id, "m")) == 5


def test_identical_metric_is_deduplicated(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    client.log_metric(run_id, "d", 1.0, timestamp=1000, step=1)
    client.log_metric(run_id, "d", 1.0, timestamp=1000, step=1)
    client.log_batch(run_id, metrics=[Metric("d", 1.0, 1000, 1)])
    assert [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, "d")] == [(1, 1.0, 1000)]


def test_metric_history_many_points(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    n = 3000
    base = 1_700_000_000_000
    metrics = [Metric("series", float(i) / 7, base + i, i) for i in range(n)]
    client.log_batch(run_id, metrics=metrics)  # the client chunks to 1000 per request
    hist = client.get_metric_history(run_id, "series")
    assert len(hist) == n
    # ordered by timestamp, then step
    assert [m.step for m in hist] == list(range(n))
    assert all(m.value == float(m.step) / 7 and m.timestamp == base + m.step for m in hist)
    assert client.get_run(run_id).data.metrics["series"] == float(n - 1) / 7


def test_missing_metric_history_is_empty(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    assert client.get_metric_history(run_id, "nothing-here") == []


def test_get_missing_run(client):
    with pytest.raises(MlflowException) as ei:
        client.get_run("0123456789abcdef0123456789abcdef")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_delete_and_restore_run(client, experiment):
    exp_id, _ = experiment
    keep = client.create_run(exp_id).info.run_id
    gone = client.create_run(exp_id).info.run_id

    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    def ids(view):
        return {r.info.run_id for r in client.search_runs([exp_id], run_view_type=view)}

    assert ids(ViewType.ACTIVE_ONLY) == {keep}
    assert ids(ViewType.DELETED_ONLY) == {gone}
    assert ids(ViewType.ALL) == {keep, gone}
    assert set(mlflow.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)["run_id"]) == {gone}

    # writes to a deleted run are rejected
    with pytest.raises(MlflowException) as ei:
        client.log_param(gone, "x", "1")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert ids(ViewType.ACTIVE_ONLY) == {keep, gone}
    assert ids(ViewType.DELETED_ONLY) == set()


def test_log_input_dataset(client, experiment):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "label": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(df, name="train-df", targets="label")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="train", tags={"extra": "yes"})
    r = client.get_run(run.info.run_id)
    inputs = r.inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    assert ds.name == "train-df"
    assert ds.digest == dataset.digest
    assert ds.source_type == dataset.source._get_source_type()
    assert ds.schema and "a" in ds.schema
    assert ds.profile and "num_rows" in ds.profile
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["mlflow.data.context"] == "train"
    assert tags["extra"] == "yes"

    # logging the same dataset again does not duplicate it
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_input(dataset, context="train")
    assert len(client.get_run(run.info.run_id).inputs.dataset_inputs) == 1


def test_run_status_enum_roundtrip(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.SCHEDULED))
    assert client.get_run(run_id).info.status == "SCHEDULED"
    client.update_run(run_id, status="RUNNING")
    assert client.get_run(run_id).info.status == "RUNNING"

"""Lineage end to end: a user's ordinary mlflow calls fill twinloop's lineage graph.

log_input a dataset, train, log the model with registered_model_name, then ask twinloop's native
lineage API: upstream of the model version reaches the run and the dataset; downstream of the
dataset reaches the model version. twinloop-only (the real MLflow server has no lineage API).
"""

from __future__ import annotations

import os
import uuid

import mlflow
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.skipif(
    os.environ.get("TWINLOOP_COMPAT_TARGET") == "mlflow", reason="twinloop's own lineage API"
)


def graph(server, node, direction, depth=10):
    r = requests.get(
        f"{server}/api/twinloop/v1/lineage/graph",
        params={"node": node, "direction": direction, "depth": depth},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def external_ids(g):
    return {n["external_id"] for n in g["nodes"] if n.get("external_id")}


def test_dataset_run_model_version_lineage(server, experiment):
    exp_id, _ = experiment
    name = f"lineage-{uuid.uuid4().hex[:10]}"
    df = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0], "y": [0, 1, 0, 1]})
    dataset = mlflow.data.from_pandas(df, name="toy", targets="y")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="train")
        model = LogisticRegression().fit(df[["x1", "x2"]], df["y"])
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    run_id = run.info.run_id

    up = graph(server, f"model_version:{name}/1", "upstream")
    ids = external_ids(up)
    assert f"run:{run_id}" in ids, ids
    dataset_ids = [i for i in ids if i.startswith(f"dataset:{exp_id}/toy@")]
    assert dataset_ids, ids
    assert any(i.startswith("logged_model:m-") for i in ids), ids
    # edges point the way data flows: dataset -INPUT-> run -OUTPUT-> model -> ... -> version
    by_id = {n["id"]: n for n in up["nodes"]}
    flows = {(by_id[e["source"]]["type"], e["type"], by_id[e["target"]]["type"]) for e in up["edges"]}
    assert ("dataset", "INPUT", "training_run") in flows, flows
    assert ("training_run", "OUTPUT", "model") in flows, flows

    down = graph(server, dataset_ids[0], "downstream")
    assert f"model_version:{name}/1" in external_ids(down)

    run_node = requests.get(f"{server}/api/twinloop/v1/lineage/nodes/run:{run_id}", timeout=30).json()
    assert run_node["node"]["kind"] == "execution"


def test_lineage_bad_input(server):
    base = f"{server}/api/twinloop/v1/lineage"
    r = requests.get(f"{base}/graph", params={"node": "run:does-not-exist"}, timeout=30)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = requests.get(f"{base}/graph", params={"node": "artifact:1", "depth": 10**9}, timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.post(f"{base}/events", json={"artifact": "x", "execution": "y", "type": "SIDEWAYS"}, timeout=30)
    assert 400 <= r.status_code < 500

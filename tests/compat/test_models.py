"""MLflow 3 models: sklearn log_model, pyfunc loading, LoggedModel get / search / metrics / tags."""

import time

import numpy as np
import mlflow
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from conftest import unique


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    return X, y, model


@pytest.fixture(scope="module")
def logged(server, iris):
    """One run with a logged sklearn model per server (read-only for the tests).

    Returns (exp_id, run_id, model_info)."""
    X, y, model = iris
    mlflow.set_tracking_uri(server)
    exp_id = mlflow.MlflowClient(server).create_experiment(unique("sk"))
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_param("C", model.C)
        mlflow.log_metric("train_acc", float(model.score(X, y)))
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:3])
    return exp_id, run.info.run_id, info


def test_sklearn_log_model_and_load(client, logged, iris, tmp_path):
    X, _, model = iris
    exp_id, run_id, info = logged
    expected = model.predict(X)

    assert info.model_id.startswith("m-")
    assert info.model_uri == f"models:/{info.model_id}"
    assert info.run_id == run_id

    # load by the returned models:/m-... URI
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(X), expected)

    # load by runs:/<run_id>/model (the server must resolve it via the logged model)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_array_equal(loaded.predict(X), expected)

    # native flavor
    sk = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(sk.predict(X), expected)
    np.testing.assert_allclose(sk.predict_proba(X), model.predict_proba(X))

    # the model's files live under the logged model's artifact location
    names = {a.path for a in mlflow.MlflowClient().list_logged_model_artifacts(info.model_id)}
    assert {"MLmodel", "input_example.json", "requirements.txt", "python_env.yaml", "conda.yaml"} <= names
    lm = mlflow.get_logged_model(info.model_id)
    local = mlflow.artifacts.download_artifacts(f"{lm.artifact_location}/MLmodel", dst_path=str(tmp_path))
    assert "sklearn" in open(local).read()
    assert info.model_id in open(local).read()


def test_logged_model_metadata(client, logged):
    exp_id, run_id, info = logged
    lm = mlflow.get_logged_model(info.model_id)
    assert lm.model_id == info.model_id
    assert lm.name == "model"
    assert lm.experiment_id == exp_id
    assert lm.source_run_id == run_id
    assert lm.status == LoggedModelStatus.READY
    assert lm.artifact_location == f"mlflow-artifacts:/{exp_id}/models/{info.model_id}/artifacts"
    assert lm.creation_timestamp > 0
    assert lm.last_updated_timestamp >= lm.creation_timestamp
    assert lm.params.get("C") == "1.0"  # the run's params are copied onto the model
    # the run's metrics are linked to the model (re-logged with model_id)
    by_key = {m.key: m for m in lm.metrics}
    assert "train_acc" in by_key
    assert by_key["train_acc"].run_id == run_id
    assert by_key["train_acc"].model_id == info.model_id

    # the run records the model as an output
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]
    assert outputs[0].step == 0


def test_log_metric_with_model_id(client, experiment):
    exp_id, _ = experiment
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        info = client.create_logged_model(exp_id, name="metric-model", source_run_id=run_id)
        mlflow.log_metric("val_acc", 0.97, model_id=info.model_id)
        mlflow.log_metric("val_loss", 0.12, step=2, model_id=info.model_id)
    other = client.create_logged_model(exp_id, name="no-metrics")
    lm = mlflow.get_logged_model(info.model_id)
    by_key = {m.key: m for m in lm.metrics}
    assert by_key["val_acc"].value == 0.97
    assert by_key["val_acc"].run_id == run_id
    assert by_key["val_loss"].value == 0.12
    assert by_key["val_loss"].step == 2
    # still an ordinary run metric too
    assert client.get_run(run_id).data.metrics["val_acc"] == 0.97

    found = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string="metrics.val_acc > 0.9", output_format="list"
    )
    assert [m.model_id for m in found] == [info.model_id]
    found = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string="metrics.val_acc > 0.99", output_format="list"
    )
    assert found == []


def test_search_logged_models(client, experiment):
    exp_id, _ = experiment
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        info = mlflow.initialize_logged_model(name="model", source_run_id=run_id)
    time.sleep(0.02)  # distinct creation timestamps for the default (newest first) order
    other = mlflow.initialize_logged_model(name="other-model")
    mlflow.finalize_logged_model(other.model_id, LoggedModelStatus.READY)

    found = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    assert {m.model_id for m in found} == {info.model_id, other.model_id}

    found = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string="name = 'model'", output_format="list"
    )
    assert [m.model_id for m in found] == [info.model_id]

    found = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    assert [m.model_id for m in found] == [info.model_id]

    found = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string="name = 'nope'", output_format="list"
    )
    assert found == []

    # newest first by default; explicit ordering on name
    found = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    assert [m.model_id for m in found] == [other.model_id, info.model_id]
    found = mlflow.search_logged_models(
        experiment_ids=[exp_id], order_by=[{"field_name": "name", "ascending": True}], output_format="list"
    )
    assert [m.name for m in found] == ["model", "other-model"]

    df = mlflow.search_logged_models(experiment_ids=[exp_id])
    assert set(df["model_id"]) == {info.model_id, other.model_id}

    # paging through the client
    page = client.search_logged_models(experiment_ids=[exp_id], max_results=1)
    assert len(page) == 1 and page.token
    page2 = client.search_logged_models(experiment_ids=[exp_id], max_results=1, page_token=page.token)
    assert len(page2) == 1
    assert {page[0].model_id, page2[0].model_id} == {info.model_id, other.model_id}


def test_logged_model_lifecycle(client, experiment):
    exp_id, _ = experiment
    lm = client.create_logged_model(exp_id, name="lifecycle", params={"p": "1"}, tags={"t": "a"})
    assert lm.status == LoggedModelStatus.PENDING
    assert lm.tags.get("t") == "a"
    assert lm.params == {"p": "1"}

    client.set_logged_model_tags(lm.model_id, {"t": "b", "u": "c"})
    client.delete_logged_model_tag(lm.model_id, "u")
    got = client.get_logged_model(lm.model_id)
    assert got.tags.get("t") == "b" and "u" not in got.tags

    done = client.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
    assert done.status == LoggedModelStatus.READY
    assert client.get_logged_model(lm.model_id).status == LoggedModelStatus.READY

    client.delete_logged_model(lm.model_id)
    with pytest.raises(MlflowException) as ei:
        client.get_logged_model(lm.model_id)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_get_missing_logged_model(client):
    with pytest.raises(MlflowException) as ei:
        mlflow.get_logged_model("m-0123456789abcdef0123456789abcdef")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"

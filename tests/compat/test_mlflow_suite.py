"""What MLflow's own server tests (tests/tracking/test_rest_tracking.py) check of tracking, on the
points where twinloop once answered differently: logged-model statuses and dataset filters, model
inputs of runs, the mlflow.modelVersions tag byte for byte, validation messages in MLflow's
words, artifact locations and URIs, and the order of a run's dataset inputs.
"""

import json
import uuid

import pytest
import requests
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput, LoggedModelStatus

API = "/api/2.0/mlflow"
DOCS = " See the API docs for more information about request parameters."


def _post(server, path, payload):
    return requests.post(f"{server}{API}{path}", json=payload, timeout=20)


def _bad_request(response, message):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
    assert message in body["message"], body
    return body["message"]


def test_a_failed_upload_finalizes_as_mlflows_status(server, client, experiment):
    exp_id, _ = experiment
    model = client.create_logged_model(experiment_id=exp_id)
    failed = client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    assert failed.status == LoggedModelStatus.FAILED
    assert client.get_logged_model(model.model_id).status == LoggedModelStatus.FAILED

    url = f"{server}{API}/logged-models/{model.model_id}"
    assert requests.get(url, timeout=20).json()["model"]["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"
    for status, name in [("LOGGED_MODEL_READY", "LOGGED_MODEL_READY"), (3, "LOGGED_MODEL_UPLOAD_FAILED")]:
        r = requests.patch(url, json={"model_id": model.model_id, "status": status}, timeout=20)
        assert r.status_code == 200, r.text
        assert r.json()["model"]["info"]["status"] == name


def test_search_logged_models_by_datasets(server, client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    models = [client.create_logged_model(experiment_id=exp_id) for _ in range(4)]
    for model, (dataset, digest, value) in zip(
        models, [("dataset1", "digest1", 0.9), ("dataset1", "digest2", 0.5), ("dataset2", "digest1", 0.95)]
    ):
        client.log_metric(run_id, "metric1", value, dataset_name=dataset, dataset_digest=digest,
                          model_id=model.model_id)
    # models[3] has a metric on no dataset at all
    client.log_metric(run_id, "metric1", 0.99, model_id=models[3].model_id)

    def found(filter_string=None, datasets=None):
        page = client.search_logged_models(experiment_ids=[exp_id], filter_string=filter_string,
                                           datasets=datasets)
        return {m.model_id for m in page}

    # With a digest each: a name alone matches no digest at all on MLflow's server (its handler
    # passes the missing digest on as None, compared IS NULL), where its store and its docs mean
    # any digest, as twinloop does (meta's store_suite checks that).
    d1 = {"dataset_name": "dataset1", "dataset_digest": "digest1"}
    d1b = {"dataset_name": "dataset1", "dataset_digest": "digest2"}
    d2 = {"dataset_name": "dataset2", "dataset_digest": "digest1"}
    ids = [m.model_id for m in models]
    assert found() == set(ids)
    assert found(datasets=[d1, d1b]) == {ids[0], ids[1]}
    assert found(datasets=[d1b]) == {ids[1]}
    assert found("metrics.metric1 >= 0.8", [d1, d1b]) == {ids[0]}
    assert found("metrics.metric1 >= 0.8", [d1, d1b, d2]) == {ids[0], ids[2]}
    assert found("metrics.metric1 >= 0.8") == {ids[0], ids[2], ids[3]}

    r = _post(server, "/logged-models/search",
              {"experiment_ids": [exp_id], "datasets": [{"dataset_digest": "digest1"}]})
    _bad_request(r, "`dataset_name` in the `datasets` clause must be specified.")


def test_log_inputs_keeps_models_as_model_inputs(server, client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    models = [client.create_logged_model(experiment_id=exp_id) for _ in range(2)]
    dataset = Dataset(name="name1", digest="digest1", source_type="source_type1", source="source1")
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(dataset=dataset, tags=[InputTag(key="mlflow.data.context", value="training")])],
        models=[LoggedModelInput(model_id=models[1].model_id)],
    )
    client.log_inputs(run_id, models=[LoggedModelInput(model_id=m.model_id) for m in models])
    # Once each (MLflow's inputs table is keyed by run and model); MLflow gives no order.
    run = client.get_run(run_id)
    assert sorted(m.model_id for m in run.inputs.model_inputs) == sorted(m.model_id for m in models)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["name1"]

    raw = requests.get(f"{server}{API}/runs/get", params={"run_id": run_id}, timeout=20).json()
    assert sorted(raw["run"]["inputs"]["model_inputs"], key=lambda m: m["model_id"]) == [
        {"model_id": m.model_id} for m in sorted(models, key=lambda m: m.model_id)]


def test_dataset_inputs_come_back_in_logged_order(client, experiment):
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    # Names and digests chosen so that no sort (by name or digest) gives the logged order.
    logged = [("m", "9"), ("z", "1"), ("a", "5")]
    client.log_inputs(run_id, datasets=[
        DatasetInput(dataset=Dataset(name=n, digest=d, source_type="local", source="s"))
        for n, d in logged[:2]])
    client.log_inputs(run_id, datasets=[
        DatasetInput(dataset=Dataset(name=n, digest=d, source_type="local", source="s"))
        for n, d in [logged[2], logged[0]]])
    run = client.get_run(run_id)
    assert [(i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs] == logged


def test_model_versions_tag_is_written_as_json_dumps(client, experiment):
    # test_rest_tracking.py::test_create_model_version_model_id compares these strings exactly.
    exp_id, _ = experiment
    name = f"model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    model = client.create_logged_model(experiment_id=exp_id)
    client.create_model_version(name=name, source=model.artifact_location, model_id=model.model_id)
    model = client.get_logged_model(model.model_id)
    assert model.tags["mlflow.modelVersions"] == json.dumps([{"name": name, "version": 1}])
    client.create_model_version(name=name, source=model.artifact_location, model_id=model.model_id)
    model = client.get_logged_model(model.model_id)
    assert model.tags["mlflow.modelVersions"] == (
        f'[{{"name": "{name}", "version": 1}}, {{"name": "{name}", "version": 2}}]')


def test_log_metric_validation_messages(server, client, experiment):
    # The payloads and texts of test_rest_tracking.py::test_log_metric_validation.
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    cases = [
        ({"run_id": 31, "key": "metric", "value": 41, "timestamp": 59, "step": 26},
         "Invalid value 31 for parameter 'run_id' supplied"),
        ({"run_id": run_id, "key": 31, "value": 41, "timestamp": 59, "step": 26},
         "Invalid value 31 for parameter 'key' supplied"),
        ({"run_id": run_id, "key": "foo", "value": 31, "timestamp": 59, "step": "foo"},
         "Invalid value \"foo\" for parameter 'step' supplied"),
        ({"run_id": run_id, "key": "foo", "value": 31, "timestamp": "foo", "step": 41},
         "Invalid value \"foo\" for parameter 'timestamp' supplied"),
        ({"run_id": None, "key": "foo", "value": 31, "timestamp": 59, "step": 41},
         "Missing value for required parameter 'run_id'"),
        ({"run_id": run_id, "value": 31, "timestamp": 59, "step": 41},
         "Missing value for required parameter 'key'"),
        ({"run_id": run_id, "key": None, "value": 31, "timestamp": 59, "step": 41},
         "Missing value for required parameter 'key'"),
    ]
    for payload, message in cases:
        _bad_request(_post(server, "/runs/log-metric", payload), message)
    # The whole text, as MLflow's _validate_param_against_schema writes it.
    message = _bad_request(_post(server, "/runs/log-metric", cases[0][0]), "")
    assert message == f"Invalid value 31 for parameter 'run_id' supplied:  Hint: Value was of type 'int'.{DOCS}"

    for payload, message in [
        ({"run_id": 31, "key": "param", "value": 41}, "Invalid value 31 for parameter 'run_id' supplied"),
        ({"run_id": run_id, "key": 31, "value": 41}, "Invalid value 31 for parameter 'key' supplied"),
    ]:
        _bad_request(_post(server, "/runs/log-parameter", payload), message)


def test_create_experiment_validation_messages(server):
    # test_rest_tracking.py::test_create_experiment_validation
    name = f"validation-{uuid.uuid4().hex[:8]}"
    for payload, message in [
        ({"name": 123}, "Invalid value 123 for parameter 'name'"),
        ({}, "Missing value for required parameter 'name'"),
        ({"name": name, "artifact_location": 9.0, "tags": [{"key": "key", "value": "value"}]},
         "Invalid value 9.0 for parameter 'artifact_location'"),
        ({"name": name, "artifact_location": "my_location", "tags": "5"},
         "Invalid value \"5\" for parameter 'tags'"),
    ]:
        _bad_request(_post(server, "/experiments/create", payload), message)


def test_log_inputs_without_run_id(server):
    r = _post(server, "/runs/log-inputs", {"datasets": [{"dataset": {
        "name": "name1", "digest": "digest1", "source_type": "source_type1", "source": "source1"}}]})
    _bad_request(r, "Missing value for required parameter 'run_id'")


def test_relative_artifact_location_is_made_absolute(server, client):
    # The server resolves it against its own working directory: the fixture's data dir.
    exp_id = client.create_experiment(f"relative-{uuid.uuid4().hex[:8]}", artifact_location="my_location")
    location = client.get_experiment(exp_id).artifact_location
    assert location == str(server.data_dir.resolve() / "my_location")


@pytest.mark.parametrize(
    "location, message",
    [
        ("s3://bucket/path#frag", "'artifact_location' URL can't include fragments or params."),
        ("my;location", "'artifact_location' URL can't include fragments or params."),
        ("s3://bucket/path?x=../y", "Invalid query string"),
        ("runs:/abc/model", "Artifact location cannot be a runs:/ URI."),
    ],
)
def test_artifact_locations_mlflow_refuses(server, location, message):
    name = f"refused-{uuid.uuid4().hex[:8]}"
    _bad_request(_post(server, "/experiments/create", {"name": name, "artifact_location": location}), message)


def test_get_experiment_with_a_negative_id_is_not_found(server):
    r = requests.get(f"{server}{API}/experiments/get", params={"experiment_id": "-1337"}, timeout=20)
    assert r.status_code == 404, r.text
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    "location, expected",
    [
        ("s3://bucket/path?versionId=1", "s3://bucket/path/{run_id}/artifacts?versionId=1"),
        # Under the server's data directory: twinloop refuses local locations outside its roots.
        ("file://{data}/x/", "file://{data}/x/{run_id}/artifacts"),
    ],
)
def test_run_artifact_uri_goes_into_the_location_path(server, client, location, expected):
    data = server.data_dir.resolve()
    location = location.format(data=data)
    exp_id = client.create_experiment(f"uri-{uuid.uuid4().hex[:8]}", artifact_location=location)
    run = client.create_run(exp_id)
    assert run.info.artifact_uri == expected.format(run_id=run.info.run_id, data=data)
    assert client.get_run(run.info.run_id).info.artifact_uri == run.info.artifact_uri

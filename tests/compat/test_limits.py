"""MLflow's length caps (mlflow/utils/validation.py), over raw HTTP: the limit itself is accepted,
one character more is INVALID_PARAMETER_VALUE with MLflow's message."""

import uuid

import requests

from conftest import credentials

API = "/api/2.0/mlflow"


def _post(server, path, body):
    return requests.post(f"{server}{API}/{path}", json=body, headers=credentials(server), timeout=60)


def _refused(reply, message):
    assert reply.status_code == 400, (reply.status_code, reply.text[:300])
    payload = reply.json()
    assert payload["error_code"] == "INVALID_PARAMETER_VALUE", payload
    assert payload["message"] == message, payload["message"][:300]


def _experiment(server):
    reply = _post(server, "experiments/create", {"name": f"limits-{uuid.uuid4().hex[:12]}"})
    assert reply.status_code == 200, reply.text
    return reply.json()["experiment_id"]


def test_experiment_names_are_capped_at_500_characters(server):
    stem = uuid.uuid4().hex
    ok = _post(server, "experiments/create", {"name": stem + "n" * (500 - len(stem))})
    assert ok.status_code == 200, ok.text
    _refused(
        _post(server, "experiments/create", {"name": stem + "n" * (501 - len(stem))}),
        "'name' exceeds the maximum length of 500 characters",
    )


def test_artifact_locations_are_capped_at_2048_characters(server):
    location = "s3://bucket/" + "/".join(["a" * 99] * 21)
    assert len(location) > 2048
    _refused(
        _post(
            server,
            "experiments/create",
            {"name": f"limits-{uuid.uuid4().hex[:12]}", "artifact_location": location},
        ),
        "Invalid artifact path length. The length of the artifact path cannot be greater than "
        "2048 characters. To configure this limit, please set the "
        "MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH environment variable.",
    )


def test_experiment_tag_values_are_capped_at_20000_characters(server):
    exp = _experiment(server)
    ok = _post(server, "experiments/set-experiment-tag", {"experiment_id": exp, "key": "k", "value": "v" * 20000})
    assert ok.status_code == 200, ok.text[:300]
    _refused(
        _post(server, "experiments/set-experiment-tag", {"experiment_id": exp, "key": "k", "value": "v" * 20001}),
        "'value' exceeds the maximum length of 20000 characters",
    )


def test_registry_tag_values_are_capped_at_100000_characters(server):
    name = f"limits-{uuid.uuid4().hex[:12]}"
    assert _post(server, "registered-models/create", {"name": name}).status_code == 200
    ok = _post(server, "registered-models/set-tag", {"name": name, "key": "k", "value": "v" * 100_000})
    assert ok.status_code == 200, ok.text[:300]
    _refused(
        _post(server, "registered-models/set-tag", {"name": name, "key": "k", "value": "v" * 100_001}),
        "'value' exceeds the maximum length of 100000 characters",
    )

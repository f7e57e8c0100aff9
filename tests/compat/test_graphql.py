"""MLflow's UI endpoints that its own tests (tests/tracking/test_rest_tracking.py) exercise and
twinloop once lacked: `/graphql` (the root fields MLflow's schema has, its LongString integers,
NaN metrics as null, its query limits and their messages) and `experiments/search-datasets`.
"""

import math
import uuid

import pytest
import requests
from mlflow.entities import Dataset, DatasetInput, InputTag

API = "/api/2.0/mlflow"


def _graphql(server, query, operation="testQuery"):
    response = requests.post(
        f"{server}/graphql",
        json={"query": query, "operationName": operation},
        headers={"content-type": "application/json; charset=utf-8"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _data(server, query, operation="testQuery"):
    body = _graphql(server, query, operation)
    assert body["errors"] is None, body
    return body["data"]


def _name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_graphql_echoes_and_answers_the_experiment(server, client):
    assert _data(server, 'query testQuery { test(inputString: "abc") { output } }') == {
        "test": {"output": "abc"}
    }
    name = _name("gql")
    exp_id = client.create_experiment(name)
    data = _data(
        server,
        'query testQuery @component(name: "Test") { mlflowGetExperiment(input: {experimentId: "'
        + exp_id
        + '"}) { experiment { name experimentId lifecycleStage } } }',
    )
    assert data["mlflowGetExperiment"]["experiment"] == {
        "name": name,
        "experimentId": exp_id,
        "lifecycleStage": "active",
    }


def test_graphql_run_with_its_experiment_and_model_versions(server, client):
    name = _name("gql-run")
    client.create_registered_model(name)
    exp_id = client.create_experiment(name)
    run = client.create_run(exp_id)
    run_id = run.info.run_id
    client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    client.log_metric(run_id, "normal", 123, timestamp=1, step=1)
    client.log_metric(run_id, "nan", math.nan, timestamp=2, step=2)

    data = _data(
        server,
        f"""query testQuery {{
            mlflowGetRun(input: {{runId: "{run_id}"}}) {{
                run {{
                    info {{ status runId startTime }}
                    experiment {{ name }}
                    modelVersions {{ name version }}
                    data {{ metrics {{ key value timestamp step }} }}
                }}
            }}
        }}""",
    )
    got = data["mlflowGetRun"]["run"]
    assert got["info"]["status"] == run.info.status
    assert got["info"]["runId"] == run_id
    # int64 fields are MLflow's LongString scalar: strings, so JavaScript does not round them.
    assert got["info"]["startTime"] == str(run.info.start_time)
    assert got["experiment"] == {"name": name}
    assert got["modelVersions"] == [{"name": name, "version": "1"}]
    metrics = {m["key"]: m for m in got["data"]["metrics"]}
    assert metrics["normal"] == {"key": "normal", "value": 123.0, "timestamp": "1", "step": "1"}
    assert metrics["nan"]["value"] is None


def test_graphql_metric_history_search_runs_and_artifacts(server, client, tmp_path):
    exp_id = client.create_experiment(_name("gql-more"))
    first = client.create_run(exp_id).info.run_id
    second = client.create_run(exp_id).info.run_id
    for i in range(10):
        client.log_metric(first, "m", i, step=i)

    data = _data(
        server,
        f"""query testQuery {{
            mlflowGetMetricHistoryBulkInterval(input: {{runIds: ["{first}"], metricKey: "m"}}) {{
                metrics {{ key value step }}
            }}
        }}""",
    )
    assert data["mlflowGetMetricHistoryBulkInterval"]["metrics"] == [
        {"key": "m", "value": i, "step": str(i)} for i in range(10)
    ]

    data = _data(
        server,
        f"""mutation testMutation {{
            mlflowSearchRuns(input: {{ experimentIds: ["{exp_id}"] }}) {{ runs {{ info {{ runId }} }} }}
        }}""",
        "testMutation",
    )
    assert data["mlflowSearchRuns"]["runs"] == [{"info": {"runId": second}}, {"info": {"runId": first}}]

    path = tmp_path / "test.txt"
    path.write_text("hello world")
    client.log_artifact(first, str(path))
    client.log_artifact(first, str(path), "testDir")
    query = """query testQuery {{
        files: mlflowListArtifacts(input: {{ runId: "{run}", {extra} }}) {{ files {{ path isDir fileSize }} }}
    }}"""
    data = _data(server, query.format(run=first, extra=""))
    assert data["files"]["files"] == [
        {"path": "test.txt", "isDir": False, "fileSize": "11"},
        {"path": "testDir", "isDir": True, "fileSize": "0"},
    ]
    data = _data(server, query.format(run=first, extra='path: "testDir"'))
    assert data["files"]["files"] == [{"path": "testDir/test.txt", "isDir": False, "fileSize": "11"}]


def test_graphql_failed_field_is_null_with_the_error(server):
    body = _graphql(server, 'query testQuery { mlflowGetRun(input: {runId: "0123456789abcdef0123456789abcdef"}) { run { info { status } } } }')
    assert body["data"] == {"mlflowGetRun": None}
    assert len(body["errors"]) == 1 and "0123456789abcdef0123456789abcdef" in body["errors"][0], body


@pytest.mark.parametrize(
    "query,message",
    [
        (
            "query testQuery {" + " ".join(f'k{i}: test(inputString: "a") {{ output }}' for i in range(12)) + "}",
            "GraphQL queries should have at most 10 root fields, got 12 root fields. To increase the "
            "limit, set the MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS environment variable.",
        ),
        (
            'query testQuery {mlflowGetExperiment(input: {experimentId: "123"}) {'
            + " ".join(f"e{i}: experiment {{ name }}" for i in range(12))
            + "}}",
            "GraphQL queries should have at most 10 aliases, got 12 aliases.",
        ),
        (
            'query testQuery { mlflowGetExperiment(input: {experimentId: "123"}) { experiment { '
            + "name { " * 12
            + "name"
            + " }" * 12
            + " } } }",
            "Query exceeds maximum depth of 10",
        ),
        (
            'query testQuery { mlflowGetExperiment(input: {experimentId: "123"}) { experiment { '
            + " ".join(f"f{i} {{ name }}" for i in range(1002))
            + " } } }",
            "Query exceeds maximum total selections of 1000",
        ),
    ],
    ids=["root-fields", "aliases", "depth", "selections"],
)
def test_graphql_limits_are_mlflows(server, query, message):
    body = _graphql(server, query)
    assert body["data"] is None
    assert message in body["errors"][0], body


def test_search_datasets(server, client):
    url = f"{server}/ajax-api/2.0/mlflow/experiments/search-datasets"
    for payload, message in [
        ({}, "SearchDatasets request must specify at least one experiment_id."),
        ({"experiment_ids": []}, "SearchDatasets request must specify at least one experiment_id."),
        ({"experiment_ids": [f"id_{i}" for i in range(1000)]}, "SearchDatasets request cannot specify more than"),
    ]:
        response = requests.post(url, json=payload, timeout=20)
        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in response.json()["message"]

    exp_id = client.create_experiment(_name("datasets"))
    run_id = client.create_run(exp_id).info.run_id
    training = Dataset(name="d1", digest="digest1", source_type="script", source="s")
    plain = Dataset(name="d2", digest="digest2", source_type="script", source="s")
    client.log_inputs(
        run_id,
        [
            DatasetInput(dataset=training, tags=[InputTag(key="mlflow.data.context", value="training")]),
            DatasetInput(dataset=plain, tags=[]),
        ],
    )
    response = requests.post(url, json={"experiment_ids": [exp_id]}, timeout=20)
    assert response.status_code == 200, response.text
    by_digest = sorted(response.json()["dataset_summaries"], key=lambda s: s["digest"])
    assert by_digest == [
        {"experiment_id": exp_id, "name": "d1", "digest": "digest1", "context": "training"},
        {"experiment_id": exp_id, "name": "d2", "digest": "digest2"},
    ]

    data = _data(
        server,
        f"""mutation testMutation {{
            mlflowSearchDatasets(input: {{experimentIds: ["{exp_id}"]}}) {{
                datasetSummaries {{ experimentId name digest context }}
            }}
        }}""",
        "testMutation",
    )
    # Through GraphQL an unset context reads as "" (a proto string's default), as MLflow's does.
    assert sorted(data["mlflowSearchDatasets"]["datasetSummaries"], key=lambda s: s["digest"]) == [
        {"experimentId": exp_id, "name": "d1", "digest": "digest1", "context": "training"},
        {"experimentId": exp_id, "name": "d2", "digest": "digest2", "context": ""},
    ]

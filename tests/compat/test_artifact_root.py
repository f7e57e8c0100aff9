"""A server that does not proxy artifacts (``--no-serve-artifacts --default-artifact-root DIR``,
as MLflow's own server tests start theirs): the stock client writes and reads the run's artifact
location itself, and the mlflow-artifacts routes answer 503 as MLflow's do. Also the UI's bulk
metric histories (``get-history-bulk``, ``get-history-bulk-interval`` and its sampling)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pytest
import requests

from conftest import _free_port, _kill_group, _target, _wait_healthy

DOCS = " See the API docs for more information about request parameters."
BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"


@pytest.fixture(scope="module")
def unproxied():
    """A second server, on SQLite, started with --no-serve-artifacts and a local artifact root."""
    data_dir = Path(tempfile.mkdtemp(prefix="tl-compat-noserve-"))
    root = data_dir / "root"
    if _target() == "twinloop":
        cmd = [os.path.abspath(os.environ["TWINLOOP_BIN"].strip()), "server"]
        timeout = 60.0
    else:
        cmd = [str(Path(sys.executable).parent / "mlflow"), "server"]
        timeout = 180.0
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd += [
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", f"sqlite:///{data_dir / 'db.sqlite'}",
        "--no-serve-artifacts",
        "--default-artifact-root", str(root),
    ]  # fmt: skip
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_healthy(url, proc, log_path, float(os.environ.get("TWINLOOP_STARTUP_TIMEOUT", timeout)),
                      "server without artifact serving")
        yield url, root
    finally:
        _kill_group(proc)
        if os.environ.get("TWINLOOP_KEEP_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def on_unproxied(server, unproxied, monkeypatch):
    if server.backend != "sqlite":
        pytest.skip("the unproxied server runs on SQLite only")
    url, root = unproxied
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    mlflow.set_tracking_uri(url)
    return url, root


def test_the_client_writes_and_reads_artifacts_under_the_root(on_unproxied, tmp_path):
    url, root = on_unproxied
    client = mlflow.MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment("noserve")
    assert client.get_experiment(exp_id).artifact_location == str(root / exp_id)
    mlflow.set_experiment(experiment_id=exp_id)
    src = tmp_path / "notes.txt"
    src.write_text("kept by the client")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), "docs")
    run_id = run.info.run_id
    assert run.info.artifact_uri == str(root / exp_id / run_id / "artifacts")
    assert (root / exp_id / run_id / "artifacts" / "docs" / "notes.txt").read_text() == "kept by the client"
    back = client.download_artifacts(run_id, "docs/notes.txt", str(tmp_path / "back"))
    assert Path(back).read_text() == "kept by the client"
    assert [f.path for f in client.list_artifacts(run_id, "docs")] == ["docs/notes.txt"]


def test_the_proxy_answers_503_without_serving(on_unproxied):
    url, _ = on_unproxied
    proxy = f"{url}/api/2.0/mlflow-artifacts/artifacts"
    for r in [requests.get(f"{proxy}/0/x.txt", timeout=20), requests.put(f"{proxy}/0/x.txt", data=b"x", timeout=20)]:
        assert r.status_code == 503
        assert r.json() == {
            "detail": "Artifact serving is disabled. Run `mlflow server` with `--serve-artifacts` to enable."
        }
    sentence = (
        "Endpoint: {} disabled due to the mlflow server running with `--no-serve-artifacts`. "
        "To enable artifacts server functionality, run `mlflow server` with `--serve-artifacts`"
    )
    r = requests.get(proxy, timeout=20)
    assert (r.status_code, r.text) == (503, sentence.format("/api/2.0/mlflow-artifacts/artifacts"))
    r = requests.delete(f"{proxy}/0/x.txt", timeout=20)
    assert (r.status_code, r.text) == (
        503, sentence.format("/api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>"),
    )  # fmt: skip


def _runs_with_history(client, experiment):
    exp_id, _ = experiment
    a = client.create_run(exp_id).info.run_id
    b = client.create_run(exp_id).info.run_id
    for s in range(10):
        client.log_metric(a, "m", s * 1.5, timestamp=100 + s, step=s)
    client.log_metric(a, "m", float("nan"), timestamp=200, step=10)
    client.log_metric(b, "m", 7.0, timestamp=5, step=3)
    client.log_metric(b, "other", 1.0, timestamp=5, step=3)
    return a, b


def _points(reply):
    return [(m["run_id"], m["step"], m["timestamp"], m["value"]) for m in reply.get("metrics", [])]


def _bad_request(r, message):
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["message"] == message


def test_get_history_bulk(server, client, experiment):
    a, b = _runs_with_history(client, experiment)
    first, second = sorted([a, b])

    def bulk(**params):
        return requests.get(f"{server}{BULK}", params={"metric_key": "m", **params}, timeout=20)

    r = bulk(run_id=[b, a, b], max_results=3)
    assert r.status_code == 200, r.text
    whole_a = [(a, s, 100 + s, s * 1.5) for s in range(3)]
    if first == a:
        assert _points(r.json()) == whole_a
    else:
        assert _points(r.json()) == [(b, 3, 5, 7.0)] + whole_a[:2]
    r = bulk(run_id=[second])
    assert r.status_code == 200
    assert len(r.json()["metrics"]) == (11 if second == a else 1)
    assert bulk(run_id=[a], metric_key="absent").json() == {"metrics": []}
    assert bulk(run_id=["0" * 32]).json() == {"metrics": []}

    _bad_request(requests.get(f"{server}{BULK}", params={"metric_key": "m"}, timeout=20),
                 "GetMetricHistoryBulk request must specify at least one run_id.")
    _bad_request(requests.get(f"{server}{BULK}", params={"run_id": a}, timeout=20),
                 "GetMetricHistoryBulk request must specify a metric_key.")
    _bad_request(bulk(run_id=["r"] * 101),
                 "GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received 101 run_ids.")
    # MLflow serves it to its UI only.
    assert requests.get(f"{server}/api/2.0/mlflow/metrics/get-history-bulk",
                        params={"run_id": a, "metric_key": "m"}, timeout=20).status_code == 404


@pytest.mark.parametrize("prefix", ["/ajax-api", "/api"])
def test_get_history_bulk_interval_samples_as_mlflow(server, client, experiment, prefix):
    a, b = _runs_with_history(client, experiment)
    url = f"{server}{prefix}/2.0/mlflow/metrics/get-history-bulk-interval"

    def interval(**params):
        r = requests.get(url, params={"metric_key": "m", **params}, timeout=20)
        assert r.status_code == 200, r.text
        return r.json()

    reply = interval(run_ids=[a, b], max_results=3)
    assert _points(reply) == [(a, 0, 100, 0.0), (a, 4, 104, 6.0), (a, 10, 200, "NaN"), (b, 3, 5, 7.0)]
    assert list(reply["metrics"][0]) == ["key", "value", "timestamp", "step", "run_id"]
    assert [p[1] for p in _points(interval(run_ids=[a], start_step=2, end_step=8, max_results=3))] == [2, 5, 8]
    assert [p[1] for p in _points(interval(run_ids=[a, a], max_results=2))] == [0, 10, 0, 10]
    assert [p[1] for p in _points(interval(run_ids=[a], max_results=1))] == [10]
    assert len(interval(run_ids=[a])["metrics"]) == 11
    assert interval(run_ids=[a], metric_key="absent") == {}
    assert interval(run_ids=["0" * 32]) == {}

    def refused(message, **params):
        _bad_request(requests.get(url, params=params, timeout=20), message)

    refused(f"Missing value for required parameter 'run_ids'.{DOCS}", metric_key="m")
    refused(f"Missing value for required parameter 'metric_key'.{DOCS}", run_ids=a)
    refused(f"GetMetricHistoryBulkInterval request must specify at most 100 run_ids. Received 101 run_ids.{DOCS}",
            run_ids=["r"] * 101, metric_key="m")
    refused("If either start step or end step are specified, both must be specified.",
            run_ids=a, metric_key="m", start_step=2)
    refused("end_step must be greater than start_step. Found start_step=5 and end_step=2.",
            run_ids=a, metric_key="m", start_step=5, end_step=2)
    for bad in [0, 2501]:
        refused(f"max_results must be between 1 and 2500.{DOCS}", run_ids=a, metric_key="m", max_results=bad)
    refused(f"Invalid value \"x\" for parameter 'max_results' supplied:  Hint: Value was of type 'str'.{DOCS}",
            run_ids=a, metric_key="m", max_results="x")


# --- What the server itself reads and writes in a location it does not proxy (issue 18) ---------

UPLOAD = "/ajax-api/2.0/mlflow/upload-artifact"
LOCAL_SOURCE = "To use a local path as a model version"


def _local_run(url):
    client = mlflow.MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment(f"local-{os.urandom(4).hex()}")
    return client, client.create_run(exp_id)


def test_a_relative_location_is_made_absolute_against_the_working_directory(on_unproxied):
    url, root = on_unproxied
    client = mlflow.MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment(f"relative-{os.urandom(4).hex()}", artifact_location="my_location")
    # The server's working directory is the root's parent (the fixture's data directory).
    assert client.get_experiment(exp_id).artifact_location == str(root.parent / "my_location")


def test_remote_locations_are_recorded_for_the_client(on_unproxied):
    url, _ = on_unproxied
    client = mlflow.MlflowClient(tracking_uri=url)
    for location in ["s3://bucketname/rootpath", "mysql://user:password@host:port/dbname?driver=mydriver"]:
        exp_id = client.create_experiment(f"remote-{os.urandom(4).hex()}", artifact_location=location)
        run = client.create_run(exp_id)
        scheme_and_path, _, query = location.partition("?")
        expected = f"{scheme_and_path}/{run.info.run_id}/artifacts" + (f"?{query}" if query else "")
        assert run.info.artifact_uri == expected
        if _target() == "twinloop":
            # Recorded, never read by the server: listing it is refused, not attempted.
            r = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id}, timeout=20)
            assert r.status_code == 400, r.text
            assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # A location whose repository would connect to the host it names is refused, as MLflow does.
    r = requests.post(
        f"{url}/api/2.0/mlflow/experiments/create",
        json={"name": "http-location", "artifact_location": "http://169.254.169.254/latest"},
        timeout=20,
    )
    assert r.status_code == 400, r.text


def test_a_local_source_must_lie_in_the_artifacts_of_its_run(on_unproxied):
    url, _ = on_unproxied
    client, run = _local_run(url)
    name = f"local-source-{os.urandom(4).hex()}"
    client.create_registered_model(name)
    create = f"{url}/api/2.0/mlflow/model-versions/create"
    uri = Path(run.info.artifact_uri).as_uri()
    for source in [run.info.artifact_uri, uri, f"{uri}/model", f"{uri}/.", f"{uri}/model/.."]:
        r = requests.post(create, json={"name": name, "source": source, "run_id": run.info.run_id}, timeout=20)
        assert r.status_code == 200, (source, r.text)
    for body in [
        {"source": run.info.artifact_uri},
        {"source": uri},
        {"source": "/tmp", "run_id": run.info.run_id},
        {"source": "file:///tmp"},
        {"source": f"{run.info.artifact_uri}/../..", "run_id": run.info.run_id},
    ]:
        r = requests.post(create, json={"name": name, **body}, timeout=20)
        assert r.status_code == 400, (body, r.text)
        assert LOCAL_SOURCE in r.json()["message"], r.text
    r = requests.post(
        create, json={"name": name, "source": "file:///x", "run_id": "0" * 32}, timeout=20,
    )  # fmt: skip
    assert r.status_code in (400, 404), r.text
    # A file URI naming another host: MLflow's words, but a 400 on twinloop where MLflow answers
    # 500 (which the stock client would retry for minutes).
    r = requests.post(
        create, json={"name": name, "source": "file://123.456.789.123/path/to/source", "run_id": run.info.run_id},
        timeout=20,
    )  # fmt: skip
    assert r.status_code == (500 if _target() == "mlflow" else 400), r.text
    assert "is not a valid remote uri" in r.json()["message"]


def test_the_server_reads_a_local_run_and_logged_model_under_its_root(on_unproxied, tmp_path):
    url, _ = on_unproxied
    client, run = _local_run(url)
    run_id = run.info.run_id
    src = tmp_path / "test.txt"
    src.write_text("hello world")
    client.log_artifact(run_id, str(src))
    client.log_artifact(run_id, str(src), "testDir")
    r = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}, timeout=20)
    assert r.status_code == 200, r.text
    assert [(f["path"], f["is_dir"]) for f in r.json()["files"]] == [("test.txt", False), ("testDir", True)]
    r = requests.get(f"{url}/get-artifact", params={"run_uuid": run_id, "path": "testDir/test.txt"}, timeout=20)
    assert (r.status_code, r.text) == (200, "hello world")
    r = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "../"}, timeout=20)
    assert r.status_code == 400, r.text

    model = client.create_logged_model(run.info.experiment_id)
    (tmp_path / "MLmodel").write_text(f"model_id: {model.model_id}\n")
    client.log_model_artifact(model.model_id, str(tmp_path / "MLmodel"))
    ajax = f"{url}/ajax-api/2.0/mlflow/logged-models/{model.model_id}/artifacts"
    r = requests.get(f"{ajax}/directories", timeout=20)
    assert r.status_code == 200, r.text
    assert [f["path"] for f in r.json()["files"]] == ["MLmodel"]
    r = requests.get(f"{ajax}/files", params={"artifact_file_path": "MLmodel"}, timeout=20)
    assert r.status_code == 200, r.text
    assert model.model_id in r.text


def test_links_and_locations_outside_the_roots_are_not_read(on_unproxied, tmp_path):
    if _target() != "twinloop":
        pytest.skip("twinloop's location policy: MLflow follows links and reads any local location")
    url, _ = on_unproxied
    client, run = _local_run(url)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    artifacts = Path(run.info.artifact_uri)
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "leak.txt").symlink_to(secret)
    (artifacts / "leakdir").symlink_to(tmp_path)
    for path in ["leak.txt", "leakdir/secret.txt"]:
        r = requests.get(f"{url}/get-artifact", params={"run_uuid": run.info.run_id, "path": path}, timeout=20)
        assert r.status_code == 404 and "SECRET" not in r.text, (path, r.text)
    r = requests.get(
        f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id, "path": "leakdir"}, timeout=20,
    )  # fmt: skip
    assert "secret.txt" not in r.text
    r = requests.post(
        f"{url}{UPLOAD}", params={"run_uuid": run.info.run_id, "path": "leakdir/new.txt"}, data="x", timeout=20,
    )  # fmt: skip
    assert r.status_code == 400 and not (tmp_path / "new.txt").exists(), r.text



def test_upload_artifact_rejects_invalid_requests(on_unproxied):
    url, _ = on_unproxied
    _, run = _local_run(url)
    run_id = run.info.run_id
    for params, message in [
        ({}, "Request must specify run_uuid."),
        ({"run_uuid": run_id}, "Request must specify path."),
        ({"run_uuid": run_id, "path": ""}, "Request must specify path."),
        ({"run_uuid": run_id, "path": "../test.txt"}, "Invalid path"),
        ({"run_uuid": run_id, "path": "test.txt"}, "Request must specify data."),
    ]:
        r = requests.post(f"{url}{UPLOAD}", params=params, timeout=20)
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in r.json()["message"], r.text


@pytest.mark.parametrize("proxied", [False, True], ids=["local", "proxied"])
def test_upload_artifact_writes_into_the_run(proxied, server, on_unproxied):
    url = str(server) if proxied else on_unproxied[0]
    _, run = _local_run(url)
    r = requests.post(f"{url}{UPLOAD}", params={"run_uuid": run.info.run_id, "path": "dir/test.txt"},
                      data="hello world", timeout=20)  # fmt: skip
    assert r.status_code == 200, r.text
    r = requests.get(f"{url}/get-artifact", params={"run_uuid": run.info.run_id, "path": "dir/test.txt"}, timeout=20)
    assert (r.status_code, r.text) == (200, "hello world")

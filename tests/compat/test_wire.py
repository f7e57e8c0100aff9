"""Raw HTTP checks the stock client would hide: hostile artifact paths, malformed input, error shape.

Requests with literal ``..`` segments go through http.client: requests/urllib3 would normalise
them away before sending.
"""

import http.client
import json
import time
import urllib.parse
import uuid
from pathlib import Path

import mlflow
import pytest
import requests

from conftest import credentials

ART = "/api/2.0/mlflow-artifacts/artifacts"
API = "/api/2.0/mlflow"
JSON = {"Content-Type": "application/json"}


def _raw(server, method, path, body=None, headers=None):
    u = urllib.parse.urlsplit(server)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers={**credentials(server), **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _error(status, headers, body, expect_status=None, expect_code=None):
    if expect_status is None:
        assert 400 <= status < 500, (status, body[:300])
    else:
        assert status == expect_status, (status, body[:300])
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("application/json"), (ctype, body[:300])
    payload = json.loads(body)
    assert isinstance(payload.get("error_code"), str) and payload["error_code"], payload
    assert "message" in payload, payload
    if expect_code is not None:
        assert payload["error_code"] == expect_code, payload
    return payload


def _assert_not_written(server, name):
    """No file called `name` anywhere the traversal could have reached."""
    candidates = [Path("/") / name, Path("/etc") / name, Path("/tmp") / name]
    root = server.artifact_root or server.data_dir
    for anc in [root, *root.parents]:
        candidates.append(anc / name)
    for c in candidates:
        assert not c.exists(), f"{c} was written"
    assert not list(server.data_dir.rglob(f"*{name}*")), "written somewhere under the server's data dir"
    if server.s3_bucket:
        s3 = server.s3_client()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=server.s3_bucket).get("Contents", [])]
        assert not [k for k in keys if name in k], keys


def test_health(server):
    r = requests.get(f"{server}/health", timeout=10)
    assert r.status_code == 200
    assert r.text.strip() == "OK"


@pytest.mark.parametrize(
    "query",
    ["../../etc", "..%2F..%2Fetc", "/etc", "1/../..", "../../../../../../../../etc", "%2e%2e/%2e%2e/etc"],
)
def test_list_traversal_rejected(server, query):
    status, headers, body = _raw(server, "GET", f"{ART}?path={query}")
    assert b"passwd" not in body and b"root:" not in body
    _error(status, headers, body)


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "0/../../../../etc/passwd"],
)
def test_get_traversal_rejected(server, path):
    status, headers, body = _raw(server, "GET", f"{ART}/{path}")
    assert b"root:" not in body
    assert 400 <= status < 500, (status, body[:300])


@pytest.mark.parametrize(
    "template",
    [
        "../../{n}",
        "%2e%2e/%2e%2e/{n}",
        "..%2F..%2F{n}",
        "1/%2e%2e/%2e%2e/%2e%2e/{n}",
        "1/2/../../../../{n}",
        "/tmp/{n}",
        "%2Ftmp%2F{n}",
    ],
)
def test_put_traversal_rejected(server, template):
    name = f"tl-escape-{uuid.uuid4().hex[:10]}"
    path = f"{ART}/{template.format(n=name)}"
    status, headers, body = _raw(server, "PUT", path, body=b"pwned", headers={"Content-Type": "text/plain"})
    assert 400 <= status < 500, (status, body[:300])
    _assert_not_written(server, name)


def test_put_then_get_roundtrip_raw(server, client, experiment):
    """The artifact routes are plain PUT / GET of bytes; the reply to PUT is a 200."""
    exp_id, _ = experiment
    run = client.create_run(exp_id)
    prefix = run.info.artifact_uri[len("mlflow-artifacts:/"):]
    data = b"raw bytes \x00\x01\x02"
    status, _, _ = _raw(server, "PUT", f"{ART}/{prefix}/raw%20dir/f%20one.bin", body=data,
                        headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    status, headers, body = _raw(server, "GET", f"{ART}/{prefix}/raw%20dir/f%20one.bin")
    assert status == 200 and body == data
    r = requests.get(f"{server}{ART}", params={"path": f"{prefix}/raw dir"}, timeout=20)
    assert r.status_code == 200
    assert r.json()["files"] == [{"path": "f one.bin", "is_dir": False, "file_size": len(data)}]
    # missing dir lists as an empty object, not a 404
    r = requests.get(f"{server}{ART}", params={"path": f"{prefix}/nope"}, timeout=20)
    assert r.status_code == 200 and r.json().get("files", []) == []
    # a missing file is a 404 JSON error
    status, headers, body = _raw(server, "GET", f"{ART}/{prefix}/nope.txt")
    if server.target == "mlflow" and server.backend == "s3" and status == 500:
        # Known real-mlflow wart: with an s3 destination it answers 500 INTERNAL_ERROR (the boto
        # HeadObject 404 leaks through). twinloop must give the local-disk answer, a 404.
        pytest.xfail("real mlflow answers 500 for a missing s3 artifact")
    _error(status, headers, body, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("body", [b"{not json", b'{"experiment_id": ', b"\xff\xfe"])
def test_malformed_json_is_400(server, body):
    status, headers, payload = _raw(server, "POST", f"{API}/runs/create", body=body, headers=JSON)
    _error(status, headers, payload, expect_status=400)


def test_wrong_field_type_is_400(server):
    body = json.dumps({"experiment_id": {"x": 1}}).encode()
    status, headers, payload = _raw(server, "POST", f"{API}/runs/create", body=body, headers=JSON)
    _error(status, headers, payload, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")


def test_non_json_content_type_rejected(server):
    body = json.dumps({"name": f"ct-{uuid.uuid4().hex}"}).encode()
    status, headers, payload = _raw(server, "POST", f"{API}/experiments/create", body=body,
                                    headers={"Content-Type": "text/plain"})
    _error(status, headers, payload)


def test_unknown_run_is_404(server):
    missing = "0123456789abcdef0123456789abcdef"
    r = requests.get(f"{server}{API}/runs/get", params={"run_id": missing}, timeout=20)
    _error(r.status_code, r.headers, r.content, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")

    r = requests.post(f"{server}{API}/runs/log-metric", timeout=20, json={
        "run_id": missing, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
    _error(r.status_code, r.headers, r.content, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")

    # ...but the real server answers a metric history of an unknown run with an empty 200
    r = requests.get(f"{server}{API}/metrics/get-history", params={"run_id": missing, "metric_key": "m"}, timeout=20)
    assert r.status_code == 200, r.text
    assert r.json().get("metrics", []) == []


def test_missing_required_param_is_400(server):
    r = requests.get(f"{server}{API}/runs/get", timeout=20)
    _error(r.status_code, r.headers, r.content, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")


def test_unknown_experiment(server):
    r = requests.get(f"{server}{API}/experiments/get", params={"experiment_id": "99999999"}, timeout=20)
    _error(r.status_code, r.headers, r.content, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")
    r = requests.get(f"{server}{API}/experiments/get-by-name",
                     params={"experiment_name": f"nope-{uuid.uuid4().hex}"}, timeout=20)
    _error(r.status_code, r.headers, r.content, expect_status=404, expect_code="RESOURCE_DOES_NOT_EXIST")
    r = requests.get(f"{server}{API}/experiments/get", params={"experiment_id": "abc"}, timeout=20)
    _error(r.status_code, r.headers, r.content, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")


def test_wire_leniency(server, client, experiment):
    """Things the real server accepts: int64 as strings, run_uuid alone, NaN as a string."""
    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    r = requests.post(f"{server}{API}/runs/log-metric", timeout=20, json={
        "run_id": run_id, "key": "s", "value": 2.5, "timestamp": "1700000000000", "step": "3"})
    assert r.status_code == 200, r.text
    r = requests.post(f"{server}{API}/runs/log-metric", timeout=20, json={
        "run_uuid": run_id, "key": "u", "value": "NaN", "timestamp": 1700000000001, "step": 0})
    assert r.status_code == 200, r.text
    r = requests.post(f"{server}{API}/runs/set-tag", timeout=20, json={"run_uuid": run_id, "key": "k", "value": "v"})
    assert r.status_code == 200, r.text

    r = requests.get(f"{server}{API}/runs/get", params={"run_id": run_id}, timeout=20)
    assert r.status_code == 200
    run = r.json()["run"]
    assert run["info"]["run_id"] == run_id and run["info"]["run_uuid"] == run_id
    assert run["info"]["experiment_id"] == exp_id
    assert isinstance(run["info"]["start_time"], int)
    metrics = {m["key"]: m for m in run["data"]["metrics"]}
    assert metrics["s"]["value"] == 2.5 and metrics["s"]["step"] == 3
    assert metrics["s"]["timestamp"] == 1700000000000
    assert metrics["u"]["value"] == "NaN"
    assert {"key": "k", "value": "v"} in run["data"]["tags"]
    assert "inputs" in run


def test_empty_search_reply(server, client):
    exp_id = client.create_experiment(f"empty-{uuid.uuid4().hex}")
    r = requests.post(f"{server}{API}/runs/search", json={"experiment_ids": [exp_id]}, timeout=20)
    assert r.status_code == 200
    assert r.json().get("runs", []) == []
    assert not r.json().get("next_page_token")


def test_errors_are_not_5xx_and_fast(server, client, experiment):
    """A deterministic error must come back quickly as a 4xx (the client retries 5xx for minutes)."""
    exp_id, _ = experiment
    t0 = time.monotonic()
    r = requests.post(f"{server}{API}/runs/search", timeout=20,
                      json={"experiment_ids": [exp_id], "filter": "metrics.x >>> 1"})
    _error(r.status_code, r.headers, r.content, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")
    r = requests.post(f"{server}{API}/experiments/search", timeout=20, json={"filter": "nonsense ~~ 1"})
    _error(r.status_code, r.headers, r.content, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")
    r = requests.post(f"{server}{API}/runs/search", timeout=20,
                      json={"experiment_ids": [exp_id], "page_token": "not-a-token"})
    _error(r.status_code, r.headers, r.content, expect_status=400, expect_code="INVALID_PARAMETER_VALUE")
    assert time.monotonic() - t0 < 15


def test_metric_history_paging_raw(server, client, experiment):
    """get-history honours max_results + page_token (the client follows next_page_token)."""
    from mlflow.entities import Metric

    exp_id, _ = experiment
    run_id = client.create_run(exp_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("s", float(i), 1000 + i, i) for i in range(2500)])
    token, sizes, steps = None, [], []
    while True:
        params = {"run_id": run_id, "metric_key": "s", "max_results": 1000}
        if token:
            params["page_token"] = token
        r = requests.get(f"{server}{API}/metrics/get-history", params=params, timeout=20)
        assert r.status_code == 200, r.text
        body = r.json()
        sizes.append(len(body.get("metrics", [])))
        steps.extend(int(m["step"]) for m in body.get("metrics", []))
        token = body.get("next_page_token")
        if not token:
            break
        assert len(sizes) < 10
    assert sizes == [1000, 1000, 500]
    assert steps == list(range(2500))

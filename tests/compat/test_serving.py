"""Model serving: ``twinloop serve`` driven by the stock Triton clients (tritonclient.http and
tritonclient.grpc, KServe V2 / Open Inference Protocol) plus raw HTTP for the error paths.

Small sklearn models (fixed seeds) are converted with skl2onnx, logged with
``mlflow.onnx.log_model(..., registered_model_name=NAME)`` to the session's tracking server,
given the alias ``champion``, and served together by one
``$TWINLOOP_BIN serve --tracking-uri URL --model models:/NAME@champion ... --port HP --grpc-port GP``
(see serving_fixtures.py). Every number is compared with what the Python onnxruntime computes on
the same ONNX model and rows (rtol 1e-5, atol 1e-6; labels exactly).

Runs on the sqlite backend only. Against TWINLOOP_COMPAT_TARGET=mlflow the tracking server is
the real mlflow server and the serve side still needs $TWINLOOP_BIN (skipped without it).
TWINLOOP_SERVE_TIMEOUT: seconds to wait for /v2/health/ready (default 60).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import mlflow
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import _target, _twinloop_bin_problem, unique
from serving_fixtures import (
    ONNX_PLATFORM,
    ModelCase,
    ServeProcess,
    log_version,
    make_alias_cases,
    make_cases,
)

# Serving needs only one tracking backend: run the module on sqlite (overrides the fixture's params).
pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

KEYS = ["lr", "lr_zipmap", "pipeline", "rf", "mlp"]
RTOL, ATOL = 1e-5, 1e-6


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cases() -> dict[str, ModelCase]:
    return make_cases()


@pytest.fixture(scope="module")
def alias_cases() -> tuple[ModelCase, ModelCase]:
    return make_alias_cases()


def _serve_binary() -> str:
    problem = _twinloop_bin_problem()
    if problem:
        if _target() == "mlflow":
            pytest.skip("serving needs `twinloop serve` even against the real mlflow server: set TWINLOOP_BIN")
        pytest.fail(problem, pytrace=False)
    return os.path.abspath(os.environ["TWINLOOP_BIN"].strip())


@pytest.fixture(scope="module")
def serve(server, cases, alias_cases):
    """Log + register every model, point `champion` at it, start `twinloop serve` on all of them."""
    binary = _serve_binary()
    mlflow.set_tracking_uri(server)
    client = mlflow.MlflowClient(tracking_uri=server)
    exp_id = client.create_experiment(unique("serve"))
    suffix = uuid.uuid4().hex[:8]

    for case in cases.values():
        case.name = f"serve-{case.key.replace('_', '-')}-{suffix}"
        version = log_version(exp_id, case, case.name)
        assert version == "1"
        client.set_registered_model_alias(case.name, "champion", version)

    # the alias model: v1 is champion first, then v2 is logged and the alias moves to it
    v1, v2 = alias_cases
    v1.name = v2.name = f"serve-alias-{suffix}"
    assert log_version(exp_id, v1, v1.name) == "1"
    client.set_registered_model_alias(v1.name, "champion", "1")
    assert log_version(exp_id, v2, v2.name) == "2"
    client.set_registered_model_alias(v2.name, "champion", "2")
    assert client.get_model_version_by_alias(v2.name, "champion").version == "2"

    names = [c.name for c in cases.values()] + [v2.name]
    proc = ServeProcess(binary, str(server), [f"models:/{n}@champion" for n in names])
    ok = False
    try:
        proc.wait_ready(float(os.environ.get("TWINLOOP_SERVE_TIMEOUT", "60")))
        yield proc
        if not proc.alive():
            pytest.fail(f"twinloop serve died during the tests (status {proc.proc.returncode}).\n{proc.log_tail()}")
        ok = True
    finally:
        proc.stop()
        if ok and os.environ.get("TWINLOOP_KEEP_DATA") != "1":
            shutil.rmtree(proc.data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _serve_still_up(request):
    """After each test that used the server: fail (with its log) if it is no longer running."""
    yield
    if "serve" in request.fixturenames:
        serve = request.getfixturevalue("serve")
        if not serve.alive():
            pytest.fail(f"twinloop serve is no longer running (status {serve.proc.returncode}).\n{serve.log_tail()}")


@pytest.fixture(scope="module")
def http(serve):
    c = httpclient.InferenceServerClient(url=f"127.0.0.1:{serve.http_port}", connection_timeout=30, network_timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc(serve):
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{serve.grpc_port}")
    yield c
    c.close()


# ------------------------------------------------------------------------------------ helpers


def _http_inputs(case: ModelCase, binary: bool = True, feeds=None) -> list:
    feeds = feeds or case.feeds
    out = []
    for name, datatype, _ in case.inputs:
        arr = feeds[name]
        inp = httpclient.InferInput(name, list(arr.shape), datatype)
        inp.set_data_from_numpy(arr, binary_data=binary)
        out.append(inp)
    return out


def _grpc_inputs(case: ModelCase, feeds=None) -> list:
    feeds = feeds or case.feeds
    out = []
    for name, datatype, _ in case.inputs:
        arr = feeds[name]
        inp = grpcclient.InferInput(name, list(arr.shape), datatype)
        inp.set_data_from_numpy(arr)
        out.append(inp)
    return out


def _check_output(case: ModelCase, name: str, got, expected=None, where: str = "") -> None:
    exp = (expected or case.expected)[name]
    assert got is not None, f"{where}: output {name!r} missing from the response"
    assert got.shape == exp.shape, f"{where}: output {name!r} has shape {got.shape}, onnxruntime gives {exp.shape}"
    if case.output_datatype(name) == "INT64":
        assert got.dtype == np.int64, f"{where}: output {name!r} came back as {got.dtype}"
        np.testing.assert_array_equal(got, exp, err_msg=f"{where}: {name}")
    else:
        assert got.dtype == np.float32, f"{where}: output {name!r} came back as {got.dtype}"
        np.testing.assert_allclose(got, exp, rtol=RTOL, atol=ATOL, err_msg=f"{where}: {name}")


def _check_response_outputs(case: ModelCase, outputs: list[dict], names: list[str], binary: bool | None) -> None:
    """The response's output descriptors (HTTP JSON part): names, datatypes, shapes, encoding."""
    assert sorted(o["name"] for o in outputs) == sorted(names), outputs
    for o in outputs:
        assert o["datatype"] == case.output_datatype(o["name"]), o
        assert list(o["shape"]) == list(case.expected[o["name"]].shape), o
        params = o.get("parameters") or {}
        if binary is True:
            assert "binary_data_size" in params and "data" not in o, f"asked for binary, got {o}"
        elif binary is False:
            assert "data" in o and "binary_data_size" not in params, f"asked for JSON, got {o}"


def _json_tensor(name: str, datatype: str, arr: np.ndarray) -> dict:
    if arr.dtype == np.object_:
        data = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.flatten()]
    else:
        data = arr.flatten().tolist()
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}


def _good_raw_request(serve: ServeProcess, case: ModelCase) -> None:
    """A plain JSON request on the lr model that must still work (after a bad one)."""
    assert serve.alive(), f"twinloop serve died.\n{serve.log_tail()}"
    feats = case.feeds["features"][:2]
    body = {"inputs": [_json_tensor("features", "FP32", feats)]}
    r = requests.post(f"{serve.http_url}/v2/models/{case.name}/infer", json=body, timeout=30)
    assert r.status_code == 200, f"good request after a bad one: HTTP {r.status_code} {r.text[:500]}"
    outs = {o["name"]: o for o in r.json()["outputs"]}
    got = np.array(outs["probabilities"]["data"], dtype=np.float32).reshape(outs["probabilities"]["shape"])
    np.testing.assert_allclose(got, case.expected["probabilities"][:2], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(np.array(outs["label"]["data"], dtype=np.int64), case.expected["label"][:2])


# --------------------------------------------------------------------- health and metadata


def test_mlp_is_logged_with_external_data(serve, cases):
    """Precondition of the mlp cases: its weights live in a separate .data file beside
    model.onnx (mlflow's save_as_external_data=True), so serving it proves the server fetches
    the whole model directory and loads model.onnx with its external data."""
    case = cases["mlp"]
    names = {a.path for a in mlflow.MlflowClient().list_logged_model_artifacts(case.model_id)}
    assert "model.onnx" in names and "MLmodel" in names, names
    assert any(n.endswith(".data") for n in names), names


def test_health_and_server_metadata_http(serve, http):
    for path in ("/v2/health/live", "/v2/health/ready"):
        r = requests.get(serve.http_url + path, timeout=10)
        assert r.status_code == 200, (path, r.status_code, r.text)
    assert http.is_server_live()
    assert http.is_server_ready()

    r = requests.get(serve.http_url + "/v2", timeout=10)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert isinstance(meta["name"], str) and meta["name"]
    assert isinstance(meta["version"], str) and meta["version"]
    assert isinstance(meta["extensions"], list)
    assert http.get_server_metadata() == meta


@pytest.mark.parametrize("key", KEYS)
def test_model_metadata_http(serve, http, cases, key):
    case = cases[key]
    for version in ("", "1"):
        meta = http.get_model_metadata(case.name, model_version=version)
        where = f"{case.name} version={version!r}"
        assert meta["name"] == case.name, (where, meta)
        assert meta["platform"] == ONNX_PLATFORM, (where, meta)
        if "versions" in meta:
            assert meta["versions"] == ["1"], (where, meta)
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
            (n, dt, s) for n, dt, s in case.inputs
        ], (where, meta["inputs"])
        got_outputs = [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]]
        assert [(n, dt) for n, dt, _ in got_outputs] == [(n, dt) for n, dt, _ in case.outputs], (where, got_outputs)
        for (n, _, shape), (_, _, want) in zip(got_outputs, case.outputs):
            assert shape in case.alt_output_shapes.get(n, [want]), (where, n, shape, want)

        # the same through the raw URL
        path = f"/v2/models/{case.name}" + (f"/versions/{version}" if version else "")
        r = requests.get(serve.http_url + path, timeout=10)
        assert r.status_code == 200 and r.json() == meta, (path, r.status_code, r.text)

    assert http.is_model_ready(case.name)
    assert http.is_model_ready(case.name, model_version="1")
    r = requests.get(f"{serve.http_url}/v2/models/{case.name}/ready", timeout=10)
    assert r.status_code == 200, r.text


def test_unknown_model_metadata_http(serve, http, cases):
    lr = cases["lr"]
    assert not http.is_model_ready("no-such-model")
    assert not http.is_model_ready(lr.name, model_version="99")
    for path in ("/v2/models/no-such-model", f"/v2/models/{lr.name}/versions/99"):
        r = requests.get(serve.http_url + path, timeout=10)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert isinstance(r.json().get("error"), str) and r.json()["error"], (path, r.text)
    for path in ("/v2/models/no-such-model/ready", f"/v2/models/{lr.name}/versions/99/ready"):
        r = requests.get(serve.http_url + path, timeout=10)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    with pytest.raises(InferenceServerException):
        http.get_model_metadata("no-such-model")


# ---------------------------------------------------------------------------- HTTP inference


@pytest.mark.parametrize("key", KEYS)
def test_infer_http_binary(serve, http, cases, key):
    """The client's defaults: binary tensors in, binary tensors out (binary_data_output)."""
    case = cases[key]
    result = http.infer(case.name, _http_inputs(case, binary=True))
    resp = result.get_response()
    assert resp["model_name"] == case.name
    assert resp["model_version"] == "1"
    _check_response_outputs(case, resp["outputs"], case.output_names, binary=True)
    for name in case.output_names:
        _check_output(case, name, result.as_numpy(name), where="http binary")


@pytest.mark.parametrize("key", KEYS)
def test_infer_http_json(serve, http, cases, key):
    """Pure JSON both ways: binary_data=False on every input and requested output."""
    case = cases[key]
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in case.output_names]
    result = http.infer(case.name, _http_inputs(case, binary=False), outputs=outputs)
    resp = result.get_response()
    assert resp["model_name"] == case.name
    assert resp["model_version"] == "1"
    _check_response_outputs(case, resp["outputs"], case.output_names, binary=False)
    for name in case.output_names:
        _check_output(case, name, result.as_numpy(name), where="http json")


def test_infer_http_output_subset_and_mixed_encoding(serve, http, cases):
    lr, zm = cases["lr"], cases["lr_zipmap"]
    # only the probabilities, binary
    result = http.infer(lr.name, _http_inputs(lr), outputs=[httpclient.InferRequestedOutput("probabilities")])
    _check_response_outputs(lr, result.get_response()["outputs"], ["probabilities"], binary=True)
    assert result.as_numpy("label") is None
    _check_output(lr, "probabilities", result.as_numpy("probabilities"), where="subset binary")
    # only the label, JSON
    result = http.infer(
        lr.name, _http_inputs(lr), outputs=[httpclient.InferRequestedOutput("label", binary_data=False)]
    )
    _check_response_outputs(lr, result.get_response()["outputs"], ["label"], binary=False)
    assert result.as_numpy("probabilities") is None
    _check_output(lr, "label", result.as_numpy("label"), where="subset json")
    # only the ZipMap output, as a tensor
    result = http.infer(
        zm.name, _http_inputs(zm, binary=False), outputs=[httpclient.InferRequestedOutput("output_probability")]
    )
    _check_response_outputs(zm, result.get_response()["outputs"], ["output_probability"], binary=True)
    _check_output(zm, "output_probability", result.as_numpy("output_probability"), where="zipmap subset")
    # one output binary, the other JSON, in one response
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=False),
        httpclient.InferRequestedOutput("probabilities", binary_data=True),
    ]
    result = http.infer(lr.name, _http_inputs(lr), outputs=outputs)
    by_name = {o["name"]: o for o in result.get_response()["outputs"]}
    assert "data" in by_name["label"], by_name
    assert "binary_data_size" in (by_name["probabilities"].get("parameters") or {}), by_name
    _check_output(lr, "label", result.as_numpy("label"), where="mixed")
    _check_output(lr, "probabilities", result.as_numpy("probabilities"), where="mixed")


def test_infer_http_request_id_and_version(serve, http, cases):
    case = cases["mlp"]
    result = http.infer(case.name, _http_inputs(case), request_id="req-42/α")
    assert result.get_response()["id"] == "req-42/α"
    assert result.get_response()["model_version"] == "1"
    # no id asked: twinloop names the request (a fresh UUID) so labels can be posted against it
    first = http.infer(case.name, _http_inputs(case)).get_response()["id"]
    second = http.infer(case.name, _http_inputs(case)).get_response()["id"]
    assert len(str(uuid.UUID(first))) == 36 and first != second
    # explicit version: POST /v2/models/NAME/versions/1/infer
    result = http.infer(case.name, _http_inputs(case, binary=False), model_version="1", request_id="v1")
    resp = result.get_response()
    assert resp["model_version"] == "1" and resp["id"] == "v1" and resp["model_name"] == case.name
    for name in case.output_names:
        _check_output(case, name, result.as_numpy(name), where="http version 1")


def test_infer_http_single_row(serve, http, cases):
    case = cases["lr_zipmap"]
    feeds = {"features": case.feeds["features"][4:5]}
    expected = {k: v[4:5] for k, v in case.expected.items()}
    result = http.infer(case.name, _http_inputs(case, feeds=feeds))
    for name in case.output_names:
        _check_output(case, name, result.as_numpy(name), expected=expected, where="single row")


def test_infer_http_raw_json(serve, cases):
    """The wire format itself, without tritonclient: JSON in, JSON out."""
    case = cases["lr"]
    body = {"id": "raw-1", "inputs": [_json_tensor("features", "FP32", case.feeds["features"])]}
    r = requests.post(f"{serve.http_url}/v2/models/{case.name}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    assert "Inference-Header-Content-Length" not in r.headers
    resp = r.json()
    assert resp["model_name"] == case.name and resp["model_version"] == "1" and resp["id"] == "raw-1"
    _check_response_outputs(case, resp["outputs"], case.output_names, binary=False)
    outs = {o["name"]: o for o in resp["outputs"]}
    _check_output(case, "label", np.array(outs["label"]["data"], dtype=np.int64).reshape(outs["label"]["shape"]))
    probs = np.array(outs["probabilities"]["data"], dtype=np.float32).reshape(outs["probabilities"]["shape"])
    _check_output(case, "probabilities", probs)


def test_infer_http_raw_binary(serve, cases):
    """Binary tensor extension by hand: header JSON + raw little-endian tensor bytes, both ways."""
    case = cases["lr"]
    feats = np.ascontiguousarray(case.feeds["features"], dtype="<f4")
    header = {
        "inputs": [
            {
                "name": "features",
                "shape": list(feats.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": feats.nbytes},
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    r = requests.post(
        f"{serve.http_url}/v2/models/{case.name}/infer",
        data=head + feats.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert r.status_code == 200, r.text[:500]
    hlen = int(r.headers["Inference-Header-Content-Length"])
    resp = json.loads(r.content[:hlen])
    assert [o["name"] for o in resp["outputs"]] == ["probabilities"], resp
    out = resp["outputs"][0]
    n = case.expected["probabilities"].size
    assert out["datatype"] == "FP32" and out["shape"] == list(case.expected["probabilities"].shape), out
    assert out["parameters"]["binary_data_size"] == 4 * n, out
    assert len(r.content) == hlen + 4 * n
    got = np.frombuffer(r.content[hlen:], dtype="<f4").reshape(out["shape"])
    _check_output(case, "probabilities", got, where="raw binary")


# ------------------------------------------------------------------------------- BYTES input


def test_bytes_input_all_paths(serve, http, grpc, cases):
    """The pipeline's string column (incl. non-ASCII "são paulo" and an unknown city): every
    transport must deliver the same strings, so every transport gets onnxruntime's numbers."""
    case = cases["pipeline"]
    city = case.feeds["city"]
    assert city.dtype == np.object_ and "são paulo".encode() in city.flatten().tolist()
    results = {
        "http binary": http.infer(case.name, _http_inputs(case, binary=True)),
        "http json": http.infer(
            case.name,
            _http_inputs(case, binary=False),
            outputs=[httpclient.InferRequestedOutput(n, binary_data=False) for n in case.output_names],
        ),
        "grpc": grpc.infer(case.name, _grpc_inputs(case)),
    }
    for where, result in results.items():
        for name in case.output_names:
            _check_output(case, name, result.as_numpy(name), where=where)
    # BYTES sent as a raw JSON request too, with the string written out literally in UTF-8
    body = {"inputs": [_json_tensor(n, dt, case.feeds[n]) for n, dt, _ in case.inputs]}
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    r = requests.post(
        f"{serve.http_url}/v2/models/{case.name}/infer",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    probs = np.array(outs["probabilities"]["data"], dtype=np.float32).reshape(outs["probabilities"]["shape"])
    _check_output(case, "probabilities", probs, where="raw utf-8 json")


# ---------------------------------------------------------------------------- bad requests

GOOD_FEATURES = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]
GOOD_FLAT = [x for row in GOOD_FEATURES for x in row]


def _lr_json(**tensor) -> dict:
    t = {"name": "features", "shape": [2, 4], "datatype": "FP32", "data": GOOD_FLAT}
    t.update(tensor)
    return {"inputs": [t]}


def _binary_request(header: dict, payload: bytes, header_len_delta: int = 0):
    head = json.dumps(header).encode()
    return head + payload, {
        "Inference-Header-Content-Length": str(len(head) + header_len_delta),
        "Content-Type": "application/octet-stream",
    }


_F32_2x4 = np.array(GOOD_FEATURES, dtype="<f4").tobytes()
_BIN_HEADER = {
    "inputs": [
        {"name": "features", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(_F32_2x4)}}
    ]
}


def _pipeline_json(city: dict | None) -> dict:
    inputs = [
        {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [30.0]},
        {"name": "income", "shape": [1, 1], "datatype": "FP32", "data": [45.0]},
    ]
    return {"json": {"inputs": inputs + ([city] if city else [])}}


def _truncated_header_request() -> dict:
    # Inference-Header-Content-Length points past the end of the body
    data, headers = _binary_request(_BIN_HEADER, _F32_2x4, header_len_delta=len(_F32_2x4) + 64)
    return {"data": data, "headers": headers}


def _truncated_tensor_request() -> dict:
    # the header promises 32 bytes of tensor data, the body has 20
    data, headers = _binary_request(_BIN_HEADER, _F32_2x4[:20])
    return {"data": data, "headers": headers}


# id: (model key, None = an unknown model; URL suffix; requests.post kwargs; status; the error names one of)
BAD_REQUESTS = {
    "unknown-input-name": ("lr", "/infer", lambda: {"json": _lr_json(name="no_such_input")}, 400,
                           ("no_such_input", "features")),
    "missing-input": ("pipeline", "/infer", lambda: _pipeline_json(None), 400, ("city",)),
    "fp64-for-fp32": ("lr", "/infer", lambda: {"json": _lr_json(datatype="FP64")}, 400, ("features",)),
    "bytes-for-fp32": ("lr", "/infer", lambda: {"json": _lr_json(datatype="BYTES", data=list("abcdefgh"))}, 400,
                       ("features",)),
    "fp32-for-bytes": ("pipeline", "/infer",
                       lambda: _pipeline_json({"name": "city", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}),
                       400, ("city",)),
    "strings-in-fp32-data": ("lr", "/infer", lambda: {"json": _lr_json(data=list("abcdefgh"))}, 400, ("features",)),
    "element-count-mismatch": ("lr", "/infer", lambda: {"json": _lr_json(data=GOOD_FLAT[:7])}, 400,
                               ("features",)),
    "incompatible-dims": ("lr", "/infer", lambda: {"json": _lr_json(shape=[2, 5], data=[1.0] * 10)}, 400,
                          ("features",)),
    "wrong-rank": ("lr", "/infer", lambda: {"json": _lr_json(shape=[8])}, 400, ("features",)),
    "malformed-json": ("lr", "/infer",
                       lambda: {"data": b'{"inputs": [', "headers": {"Content-Type": "application/json"}}, 400, ()),
    "header-length-past-body": ("lr", "/infer", _truncated_header_request, 400, ()),
    "binary-tensor-truncated": ("lr", "/infer", _truncated_tensor_request, 400, ("features",)),
    "unknown-model": (None, "/infer", lambda: {"json": _lr_json()}, 404, ()),
    "unknown-version": ("lr", "/versions/99/infer", lambda: {"json": _lr_json()}, 404, ()),
}  # fmt: skip


@pytest.mark.parametrize("key,suffix,make,status,names", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_bad_request_http(serve, cases, key, suffix, make, status, names):
    model = cases[key].name if key else "no-such-model"
    r = requests.post(f"{serve.http_url}/v2/models/{model}{suffix}", timeout=30, **make())
    assert r.status_code == status, f"expected HTTP {status}, got {r.status_code}: {r.text[:500]}"
    try:
        body = r.json()
    except ValueError:
        pytest.fail(f"error body is not JSON: {r.headers.get('content-type')} {r.text[:500]!r}")
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    if names:
        assert any(n in body["error"] for n in names), f"error should name {' or '.join(names)}: {body['error']!r}"
    # the server is still up and answers a good request
    _good_raw_request(serve, cases["lr"])


# ---------------------------------------------------------------------------------- gRPC


def test_health_and_metadata_grpc(serve, grpc, cases):
    assert grpc.is_server_live()
    assert grpc.is_server_ready()
    meta = grpc.get_server_metadata()
    assert meta.name and meta.version
    for case in cases.values():
        assert grpc.is_model_ready(case.name)
        assert grpc.is_model_ready(case.name, "1")
        for version in ("", "1"):
            m = grpc.get_model_metadata(case.name, model_version=version)
            assert m.name == case.name and m.platform == ONNX_PLATFORM, m
            assert [(t.name, t.datatype, list(t.shape)) for t in m.inputs] == [
                (n, dt, s) for n, dt, s in case.inputs
            ], m
            assert [(t.name, t.datatype) for t in m.outputs] == [(n, dt) for n, dt, _ in case.outputs], m
            for t, (n, _, want) in zip(m.outputs, case.outputs):
                assert list(t.shape) in case.alt_output_shapes.get(n, [want]), (n, list(t.shape))


@pytest.mark.parametrize("key", KEYS)
def test_infer_grpc(serve, grpc, cases, key):
    case = cases[key]
    result = grpc.infer(case.name, _grpc_inputs(case), request_id=f"g-{key}")
    resp = result.get_response()
    assert resp.model_name == case.name
    assert resp.model_version == "1"
    assert resp.id == f"g-{key}"
    assert sorted(o.name for o in resp.outputs) == sorted(case.output_names)
    assert len(resp.raw_output_contents) == len(resp.outputs), "outputs must come back in raw_output_contents"
    for o in resp.outputs:
        assert o.datatype == case.output_datatype(o.name), o
        assert list(o.shape) == list(case.expected[o.name].shape), o
    for name in case.output_names:
        _check_output(case, name, result.as_numpy(name), where="grpc")
    # explicit version, and a subset of the outputs
    first = case.output_names[-1]
    result = grpc.infer(
        case.name, _grpc_inputs(case), model_version="1", outputs=[grpcclient.InferRequestedOutput(first)]
    )
    resp = result.get_response()
    assert [o.name for o in resp.outputs] == [first] and resp.model_version == "1"
    _check_output(case, first, result.as_numpy(first), where="grpc subset")


def test_errors_grpc(serve, grpc, cases):
    lr = cases["lr"]
    with pytest.raises(InferenceServerException) as e:
        grpc.infer("no-such-model", _grpc_inputs(lr))
    assert e.value.status() == "StatusCode.NOT_FOUND", (e.value.status(), e.value.message())

    with pytest.raises(InferenceServerException) as e:
        grpc.infer(lr.name, _grpc_inputs(lr), model_version="99")
    assert e.value.status() == "StatusCode.NOT_FOUND", (e.value.status(), e.value.message())

    # FP64 where the model takes FP32
    inp = grpcclient.InferInput("features", [2, 4], "FP64")
    inp.set_data_from_numpy(np.array(GOOD_FEATURES, dtype=np.float64))
    with pytest.raises(InferenceServerException) as e:
        grpc.infer(lr.name, [inp])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT", (e.value.status(), e.value.message())
    assert "features" in (e.value.message() or ""), e.value.message()

    # dims the model cannot take
    inp = grpcclient.InferInput("features", [2, 5], "FP32")
    inp.set_data_from_numpy(np.ones((2, 5), dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        grpc.infer(lr.name, [inp])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT", (e.value.status(), e.value.message())

    # unknown input name
    inp = grpcclient.InferInput("no_such_input", [2, 4], "FP32")
    inp.set_data_from_numpy(np.array(GOOD_FEATURES, dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        grpc.infer(lr.name, [inp])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT", (e.value.status(), e.value.message())

    # still serving
    result = grpc.infer(lr.name, _grpc_inputs(lr))
    _check_output(lr, "probabilities", result.as_numpy("probabilities"), where="grpc after errors")
    assert serve.alive(), serve.log_tail()


# ------------------------------------------------------------------------------ alias


def test_champion_alias_resolves_to_version_2(serve, http, grpc, alias_cases):
    v1, v2 = alias_cases
    assert v2.name == v1.name and v2.version == "2"
    # the two versions really differ, so serving v1 could not pass
    assert not np.allclose(v1.expected["variable"], v2.expected["variable"], rtol=RTOL, atol=ATOL)

    result = http.infer(v2.name, _http_inputs(v2))
    assert result.get_response()["model_version"] == "2"
    _check_output(v2, "variable", result.as_numpy("variable"), where="alias http")

    result = grpc.infer(v2.name, _grpc_inputs(v2))
    assert result.get_response().model_version == "2"
    _check_output(v2, "variable", result.as_numpy("variable"), where="alias grpc")

    result = http.infer(v2.name, _http_inputs(v2, binary=False), model_version="2")
    assert result.get_response()["model_version"] == "2"
    _check_output(v2, "variable", result.as_numpy("variable"), where="alias http version 2")

    meta = http.get_model_metadata(v2.name)
    if "versions" in meta:
        assert meta["versions"] == ["2"], meta
    assert http.is_model_ready(v2.name, model_version="2")
    # version 1 exists in the registry but is not the one served
    assert not http.is_model_ready(v2.name, model_version="1")
    r = requests.post(
        f"{serve.http_url}/v2/models/{v2.name}/versions/1/infer",
        json={"inputs": [_json_tensor("features", "FP32", v2.feeds["features"])]},
        timeout=30,
    )
    assert r.status_code == 404, (r.status_code, r.text)


def test_serve_with_auth_takes_an_infer_token(server, serve, cases):
    """`twinloop serve --auth` against the session server's store: the stock tritonclient predicts
    with an `infer` token in its headers over HTTP and gRPC; without credentials (or with a forged
    token) it gets a 401 / UNAUTHENTICATED, and the `infer` token reads no metadata (403 /
    PERMISSION_DENIED)."""
    if not os.environ.get("TWINLOOP_COMPAT_AUTH") or server.target != "twinloop":
        pytest.skip("the session's server needs --auth (TWINLOOP_COMPAT_AUTH=basic|token)")
    case = cases["lr"]
    binary = _serve_binary()
    token = subprocess.run(
        [binary, "auth", "--backend-store-uri", server.store_uri,
         "token", "create", "--user", "admin", "--scope", "infer"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    proc = ServeProcess(
        binary,
        str(server),
        [f"models:/{case.name}@champion"],
        extra_args=("--auth", "--backend-store-uri", server.store_uri),
    )
    def headers() -> dict:
        # A fresh dict each call: tritonclient's HTTP infer adds its own entries to the one given.
        return {"authorization": f"Bearer {token}"}

    try:
        proc.wait_ready(float(os.environ.get("TWINLOOP_SERVE_TIMEOUT", "60")))
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{proc.http_port}")
        try:
            result = client.infer(case.name, _http_inputs(case), headers=headers())
            for name in case.output_names:
                _check_output(case, name, result.as_numpy(name), where="http with an infer token")
            with pytest.raises(InferenceServerException) as refused:
                client.infer(case.name, _http_inputs(case))
            assert refused.value.status() == "401", refused.value
        finally:
            client.close()
        rpc = grpcclient.InferenceServerClient(url=f"127.0.0.1:{proc.grpc_port}")
        try:
            assert rpc.is_server_live()
            result = rpc.infer(case.name, _grpc_inputs(case), headers=headers())
            for name in case.output_names:
                _check_output(case, name, result.as_numpy(name), where="grpc with an infer token")
            for refused_headers in (None, {"authorization": "Bearer tlp_forged"}):
                with pytest.raises(InferenceServerException) as refused:
                    rpc.infer(case.name, _grpc_inputs(case), headers=refused_headers)
                assert refused.value.status() == "StatusCode.UNAUTHENTICATED", refused.value
            with pytest.raises(InferenceServerException) as refused:
                rpc.get_model_metadata(case.name, headers=headers())
            assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
        finally:
            rpc.close()
    finally:
        proc.stop()
        shutil.rmtree(proc.data_dir, ignore_errors=True)

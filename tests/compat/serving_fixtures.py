"""Helpers for test_serving.py: small sklearn models as ONNX, their expected outputs, and
the ``twinloop serve`` process.

Everything here is deterministic (fixed seeds, fixed rows). The expected numbers come from the
Python ``onnxruntime`` (the same 1.32.0 build whose shared library the server loads) run on the
same ONNX model and the same rows, so the server is held to "what onnxruntime says", not to
sklearn's float64 arithmetic.

What the server must report for each model is spelled out in ``ModelCase.inputs`` /
``ModelCase.outputs`` (KServe V2 names, datatypes, shapes with -1 for the batch dimension).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import requests

from conftest import _free_port, _kill_group, _log_tail

# ----------------------------------------------------------------------------------- models

ONNX_PLATFORM = "onnx_onnxv1"


@dataclass
class ModelCase:
    """One model to serve: its ONNX graph, the rows to send, and what must come back."""

    key: str  # short id used in test ids: lr, lr_zipmap, pipeline, rf, mlp, alias
    onnx_model: onnx.ModelProto
    # the test rows, by input name, as a client sends them (BYTES inputs as object arrays of bytes)
    feeds: dict[str, np.ndarray]
    # (name, KServe datatype, shape with -1 for variable dims) as the server must report them
    inputs: list[tuple[str, str, list[int]]]
    outputs: list[tuple[str, str, list[int]]]
    # onnxruntime's answer for `feeds`, by output name (ZipMap outputs as FP32 [N, classes])
    expected: dict[str, np.ndarray] = field(default_factory=dict)
    # accepted alternatives for an output's reported shape (ZipMap: the class count may be -1)
    alt_output_shapes: dict[str, list[list[int]]] = field(default_factory=dict)
    name: str = ""  # registered model name, set when logged
    version: str = "1"  # the version the champion alias points at
    model_id: str = ""  # the LoggedModel id (m-...), set when logged

    @property
    def input_names(self) -> list[str]:
        return [n for n, _, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _, _ in self.outputs]

    def output_datatype(self, name: str) -> str:
        return next(dt for n, dt, _ in self.outputs if n == name)

    def input_datatype(self, name: str) -> str:
        return next(dt for n, dt, _ in self.inputs if n == name)


def _iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y.astype(np.int64)


# rows of iris sent in every request: a few of each class plus the extremes
IRIS_ROWS = [0, 1, 50, 51, 77, 100, 101, 133, 149]


def _ort_session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _zipmap_classlabels(model: onnx.ModelProto) -> list:
    """The ZipMap node's class labels, in column order (what the server's [N, classes] uses)."""
    for node in model.graph.node:
        if node.op_type == "ZipMap":
            for attr in node.attribute:
                if attr.name == "classlabels_int64s":
                    return list(attr.ints)
                if attr.name == "classlabels_strings":
                    return [s.decode() for s in attr.strings]
    raise AssertionError("model has no ZipMap node")


def ort_expected(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model with the Python onnxruntime; ZipMap (seq(map)) outputs become FP32 [N, C]."""
    sess = _ort_session(model)
    ort_feeds = {}
    for name, arr in feeds.items():
        if arr.dtype == np.object_:  # BYTES: onnxruntime takes str for tensor(string)
            arr = np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])(arr)
        ort_feeds[name] = arr
    names = [o.name for o in sess.get_outputs()]
    out = {}
    for meta, value in zip(sess.get_outputs(), sess.run(names, ort_feeds)):
        if meta.type.startswith("seq(map("):
            labels = _zipmap_classlabels(model)
            value = np.array([[row[k] for k in labels] for row in value], dtype=np.float32)
        out[meta.name] = np.asarray(value)
    return out


def _iris_classifier_case(key: str, estimator, zipmap: bool) -> ModelCase:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    X, y = _iris()
    estimator.fit(X, y)
    options = None if zipmap else {id(estimator): {"zipmap": False}}
    model = convert_sklearn(estimator, initial_types=[("features", FloatTensorType([None, 4]))], options=options)
    if zipmap:
        outputs = [("output_label", "INT64", [-1]), ("output_probability", "FP32", [-1, 3])]
        alt = {"output_probability": [[-1, 3], [-1, -1]]}
    else:
        outputs = [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 3])]
        alt = {}
    case = ModelCase(
        key=key,
        onnx_model=model,
        feeds={"features": X[IRIS_ROWS]},
        inputs=[("features", "FP32", [-1, 4])],
        outputs=outputs,
        alt_output_shapes=alt,
    )
    case.expected = ort_expected(model, case.feeds)
    return case


def make_lr_case() -> ModelCase:
    """(1) LogisticRegression, zipmap=False: label INT64 [N], probabilities FP32 [N, 3]."""
    from sklearn.linear_model import LogisticRegression

    return _iris_classifier_case("lr", LogisticRegression(max_iter=500, random_state=0), zipmap=False)


def make_lr_zipmap_case() -> ModelCase:
    """(2) The same kind of classifier with skl2onnx's default ZipMap output (seq(map(int64, float)))."""
    from sklearn.linear_model import LogisticRegression

    return _iris_classifier_case("lr_zipmap", LogisticRegression(C=0.5, max_iter=500, random_state=0), zipmap=True)


def _weights_as_raw_data(model: onnx.ModelProto) -> None:
    """Re-encode the initializers as raw_data (skl2onnx writes float_data), as torch/tf exporters
    do. Then mlflow.onnx.log_model's default save_as_external_data=True moves the large ones
    (>= 1 KiB) into a separate <uuid>.data file next to model.onnx, which the server must fetch too."""
    from onnx import numpy_helper

    for i, t in enumerate(list(model.graph.initializer)):
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))


def make_mlp_case() -> ModelCase:
    """(5) MLPClassifier, zipmap=False, with its 32x16 weight matrix stored as ONNX external data."""
    from sklearn.neural_network import MLPClassifier

    est = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=400, random_state=0)
    case = _iris_classifier_case("mlp", est, zipmap=False)
    _weights_as_raw_data(case.onnx_model)
    assert any(len(t.raw_data) >= 1024 for t in case.onnx_model.graph.initializer)
    case.expected = ort_expected(case.onnx_model, case.feeds)
    return case


def _rf_case(key: str, n_estimators: int, max_depth: int, seed: int) -> ModelCase:
    from sklearn.ensemble import RandomForestRegressor
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    X, _ = _iris()
    # predict petal width from the other three measurements
    est = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    est.fit(X[:, :3], X[:, 3])
    model = convert_sklearn(est, initial_types=[("features", FloatTensorType([None, 3]))])
    case = ModelCase(
        key=key,
        onnx_model=model,
        feeds={"features": np.ascontiguousarray(X[IRIS_ROWS, :3])},
        inputs=[("features", "FP32", [-1, 3])],
        outputs=[("variable", "FP32", [-1, 1])],
    )
    case.expected = ort_expected(model, case.feeds)
    return case


def make_rf_case() -> ModelCase:
    """(4) RandomForestRegressor: variable FP32 [N, 1]."""
    return _rf_case("rf", n_estimators=10, max_depth=4, seed=0)


def make_alias_cases() -> tuple[ModelCase, ModelCase]:
    """Two versions of one registered model (different forests): v1, then v2 = champion."""
    v1 = _rf_case("alias", n_estimators=3, max_depth=2, seed=1)
    v2 = _rf_case("alias", n_estimators=12, max_depth=6, seed=2)
    v2.version = "2"
    return v1, v2


# The pipeline's cities: "são paulo" is non-ASCII on purpose (UTF-8 must survive every path).
CITIES = ["paris", "tokyo", "são paulo"]


def make_pipeline_case() -> ModelCase:
    """(3) ColumnTransformer(StandardScaler on age+income, OneHotEncoder on city) + LogisticRegression,
    one ONNX input per column: age FP32 [N,1], income FP32 [N,1], city BYTES (tensor(string)) [N,1]."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    rng = np.random.default_rng(0)
    n = 300
    age = rng.normal(40, 10, n).astype(np.float32)
    income = rng.normal(50, 15, n).astype(np.float32)
    city = rng.choice(CITIES, n)
    logit = (
        0.08 * (age - 40)
        + 0.03 * (income - 50)
        + np.select([city == "paris", city == "tokyo", city == "são paulo"], [2.0, 4.0, -4.0])
    )
    y = (logit + rng.normal(0, 0.5, n) > 0).astype(np.int64)
    df = pd.DataFrame({"age": age, "income": income, "city": city.astype(object)})
    pipe = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["age", "income"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500, random_state=0)),
        ]
    ).fit(df, y)
    model = convert_sklearn(
        pipe,
        initial_types=[
            ("age", FloatTensorType([None, 1])),
            ("income", FloatTensorType([None, 1])),
            ("city", StringTensorType([None, 1])),
        ],
        options={id(pipe): {"zipmap": False}},
    )
    # rows 0-3 differ only in the city (the last one unknown to the encoder): if the strings are
    # mangled on the way in, the probabilities change
    rows_age = [30.0, 30.0, 30.0, 30.0, 61.5, 44.25]
    rows_income = [45.0, 45.0, 45.0, 45.0, 80.125, 20.5]
    rows_city = ["são paulo", "tokyo", "paris", "berlin", "tokyo", "são paulo"]
    feeds = {
        "age": np.array(rows_age, dtype=np.float32).reshape(-1, 1),
        "income": np.array(rows_income, dtype=np.float32).reshape(-1, 1),
        "city": np.array([c.encode("utf-8") for c in rows_city], dtype=np.object_).reshape(-1, 1),
    }
    case = ModelCase(
        key="pipeline",
        onnx_model=model,
        feeds=feeds,
        inputs=[("age", "FP32", [-1, 1]), ("income", "FP32", [-1, 1]), ("city", "BYTES", [-1, 1])],
        outputs=[("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 2])],
    )
    case.expected = ort_expected(model, feeds)
    probs = case.expected["probabilities"]
    # self-check: the test rows are sensitive to the city (else the BYTES tests prove nothing)
    for i in range(4):
        for j in range(i + 1, 4):
            assert abs(probs[i, 1] - probs[j, 1]) > 0.05, (rows_city[i], rows_city[j], probs[:4])
    assert len(set(case.expected["label"][:4].tolist())) == 2, case.expected["label"]
    return case


def make_cases() -> dict[str, ModelCase]:
    cases = [make_lr_case(), make_lr_zipmap_case(), make_pipeline_case(), make_rf_case(), make_mlp_case()]
    return {c.key: c for c in cases}


# ---------------------------------------------------------------------- tracking + registry


def log_version(exp_id: str, case: ModelCase, registered_name: str) -> str:
    """Log the case's ONNX model in a new run and register it; returns the new version."""
    import mlflow

    with mlflow.start_run(experiment_id=exp_id, run_name=f"serve-{case.key}"):
        info = mlflow.onnx.log_model(case.onnx_model, name="model", registered_model_name=registered_name)
    case.model_id = info.model_id
    return str(info.registered_model_version)


# ------------------------------------------------------------------------- the serve process


def ort_dylib_path() -> str:
    """libonnxruntime.so.1.32.0 shipped inside the onnxruntime wheel of this venv."""
    capi = Path(onnxruntime.__file__).parent / "capi"
    lib = capi / f"libonnxruntime.so.{onnxruntime.__version__}"
    if not lib.is_file():
        found = sorted(p.name for p in capi.glob("libonnxruntime.so*"))
        pytest.fail(f"no {lib.name} in {capi} (found {found}); onnxruntime {onnxruntime.__version__}", pytrace=False)
    return str(lib)


class ServeProcess:
    """``$TWINLOOP_BIN serve --tracking-uri URL --model models:/NAME@champion ... --host
    127.0.0.1 --port HP --grpc-port GP``, with ORT_DYLIB_PATH set; output goes to serve.log."""

    def __init__(
        self, binary: str, tracking_uri: str, model_uris: list[str], extra_args: tuple[str, ...] = ()
    ):
        self.data_dir = Path(tempfile.mkdtemp(prefix="tl-compat-serve-"))
        self.http_port = _free_port()
        self.grpc_port = _free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = _free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = self.data_dir / "serve.log"
        cmd = [binary, "serve", "--tracking-uri", tracking_uri]
        for uri in model_uris:
            cmd += ["--model", uri]
        cmd += ["--host", "127.0.0.1", "--port", str(self.http_port), "--grpc-port", str(self.grpc_port)]
        cmd += list(extra_args)
        self.cmd = cmd
        env = dict(os.environ)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
            env.pop(var, None)
        env["ORT_DYLIB_PATH"] = ort_dylib_path()
        with open(self.log_path, "wb") as log:
            log.write(("$ ORT_DYLIB_PATH=" + env["ORT_DYLIB_PATH"] + " " + " ".join(cmd) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self) -> str:
        return f"--- twinloop serve output ({self.log_path}) ---\n{_log_tail(self.log_path)}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        """Wait for GET /v2/health/ready == 200 and the gRPC port accepting connections."""
        deadline = time.monotonic() + timeout
        last = "no reply yet"
        http_ready = False
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"twinloop serve exited with status {rc} before it was ready.\n{self.log_tail()}", pytrace=False
                )
            if not http_ready:
                try:
                    r = requests.get(f"{self.http_url}/v2/health/ready", timeout=2)
                    http_ready = r.status_code == 200
                    last = f"GET /v2/health/ready: HTTP {r.status_code}: {r.text[:200]!r}"
                except requests.RequestException as e:
                    last = f"GET /v2/health/ready: {e!r}"
            if http_ready and not self.grpc_port:
                return
            if http_ready:
                try:
                    with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=2):
                        return
                except OSError as e:
                    last = f"HTTP ready, but the gRPC port {self.grpc_port} refuses connections: {e!r}"
            time.sleep(0.25)
        self.stop()
        pytest.fail(
            f"twinloop serve was not ready within {timeout:.0f}s (last: {last}).\n{self.log_tail()}", pytrace=False
        )

    def stop(self) -> None:
        _kill_group(self.proc)

"""The servers under test: how each one is started, asked whether it is ready, and spoken to.

Every server process serves one model, on free loopback ports, and runs alone on the machine
(the benchmark starts the next one only after stopping it). Two protocols:
  v2      KServe V2 / Open Inference Protocol JSON, POST /v2/models/<name>/infer (twinloop, MLServer)
  mlflow  the MLflow scoring server's `{"inputs": [[...]]}`, POST /invocations
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from models import N_FEATURES, ONNX_INPUT, ONNX_PROBA, Trained

VENV_BIN = Path(sys.executable).parent
TWINLOOP = "twinloop"
TWINLOOP_BATCHING = "twinloop+batching"
MLFLOW = "mlflow"
MLSERVER = "mlserver"
TWINLOOP_KINDS = (TWINLOOP, TWINLOOP_BATCHING)
PEER_KINDS = (MLFLOW, MLSERVER)
ALL_KINDS = TWINLOOP_KINDS + PEER_KINDS


class ServerError(RuntimeError):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Request bodies and replies
# --------------------------------------------------------------------------------------------
def _numbers(values) -> str:
    """float32 values as JSON numbers in their shortest exact form (str of np.float32): every
    server parses the same digits back to the same float32, and no body carries 17-digit noise."""
    return ",".join(str(v) for v in values)


def v2_body(rows: np.ndarray, output: str) -> str:
    tensor = f'{{"name":"{ONNX_INPUT}","shape":[{len(rows)},{N_FEATURES}],"datatype":"FP32",' \
             f'"data":[{_numbers(rows.ravel())}]}}'  # fmt: skip
    return f'{{"inputs":[{tensor}],"outputs":[{{"name":"{output}"}}]}}'


def mlflow_body(rows: np.ndarray) -> str:
    return '{"inputs":[' + ",".join(f"[{_numbers(r)}]" for r in rows) + "]}"


def v2_output(reply: bytes, output: str) -> np.ndarray:
    doc = json.loads(reply)
    for o in doc.get("outputs", []):
        if o["name"] == output:
            return np.asarray(o["data"], dtype=np.float64).reshape(o["shape"])
    raise ServerError(f"no output {output!r} in the reply: {reply[:300]!r}")


def mlflow_output(reply: bytes) -> np.ndarray:
    return np.asarray(json.loads(reply)["predictions"], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# The four servers
# --------------------------------------------------------------------------------------------
@dataclass
class Kind:
    """One way of serving a model: the command line for a model and ports, its readiness
    path, and the request it answers with class probabilities."""

    name: str
    argv: Callable[[Trained, dict], list]
    ready_path: str
    infer_path: Callable[[Trained], str]
    body: Callable[[np.ndarray], str]
    proba: Callable[[bytes], np.ndarray]
    env: dict = field(default_factory=dict)
    # (port name, environment variable) for ports given through the environment; "http" is
    # the one the benchmark talks to, others are only kept off other servers' ports.
    env_ports: tuple = ()


def twinloop_kind(name, tl_bin, batching_args=()):
    # The venv's onnxruntime wheel ships the libonnxruntime build twinloop pins (1.32.0): point
    # twinloop at it unless the caller chose a library.
    import onnxruntime

    lib = Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime.so.1.32.0"
    env = {} if os.environ.get("ORT_DYLIB_PATH") else {"ORT_DYLIB_PATH": str(lib)}
    return Kind(
        name=name,
        argv=lambda m, ports: [str(tl_bin), "serve", "--model", f"{m.name}={m.onnx_dir}", "--host", "127.0.0.1",
                               "--port", str(ports["http"]), "--grpc-port", "0", *batching_args],
        ready_path="/v2/health/ready",
        infer_path=lambda m: f"/v2/models/{m.name}/infer",
        body=lambda rows: v2_body(rows, ONNX_PROBA),
        proba=lambda reply: v2_output(reply, ONNX_PROBA),
        env=env,
    )  # fmt: skip


def mlflow_kind(workers):
    # Access logs off (here and for MLServer): a line per request written to a log file is work
    # the benchmark is not about.
    return Kind(
        name=MLFLOW,
        argv=lambda m, ports: [str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(m.sklearn_dir), "-h",
                               "127.0.0.1", "-p", str(ports["http"]), "--env-manager", "local",
                               *(["-w", str(workers)] if workers else [])],
        ready_path="/ping",
        infer_path=lambda m: "/invocations",
        body=mlflow_body,
        proba=mlflow_output,
        env={"UVICORN_ACCESS_LOG": "false"},
    )  # fmt: skip


def mlserver_kind(workers):
    # Its default debug=true logs every request; the gRPC and metrics servers it always starts
    # need ports of their own.
    env = {"MLSERVER_DEBUG": "false"}
    if workers:
        env["MLSERVER_PARALLEL_WORKERS"] = str(workers)
    return Kind(
        name=MLSERVER,
        argv=lambda m, ports: [str(VENV_BIN / "mlserver"), "start", str(m.mlserver_dir)],
        ready_path="/v2/health/ready",
        infer_path=lambda m: f"/v2/models/{m.name}/infer",
        body=lambda rows: v2_body(rows, "predict_proba"),
        proba=lambda reply: v2_output(reply, "predict_proba"),
        env=env,
        env_ports=(("http", "MLSERVER_HTTP_PORT"), ("grpc", "MLSERVER_GRPC_PORT"),
                   ("metrics", "MLSERVER_METRICS_PORT")),
    )  # fmt: skip


def kinds(selected, tl_bin, batching_args, peer_workers):
    make = {
        TWINLOOP: lambda: twinloop_kind(TWINLOOP, tl_bin),
        TWINLOOP_BATCHING: lambda: twinloop_kind(TWINLOOP_BATCHING, tl_bin, batching_args),
        MLFLOW: lambda: mlflow_kind(peer_workers),
        MLSERVER: lambda: mlserver_kind(peer_workers),
    }
    return [make[k]() for k in ALL_KINDS if k in selected]


# --------------------------------------------------------------------------------------------
# A running server
# --------------------------------------------------------------------------------------------
def _set_pdeathsig():
    """The server dies with the benchmark, even when the benchmark is killed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Server:
    """One server process for one model, in its own process group (the peers fork workers)."""

    def __init__(self, kind: Kind, model: Trained, log_path: Path, start_timeout: float):
        self.kind, self.model, self.log_path = kind, model, log_path
        ports = {"http": free_port(), **{p: free_port() for p, _ in kind.env_ports if p != "http"}}
        self.port = ports["http"]
        self.argv = kind.argv(model, ports)
        env = {**os.environ, **kind.env, **{var: str(ports[p]) for p, var in kind.env_ports}}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_set_pdeathsig)  # fmt: skip
        t0 = time.perf_counter()
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - t0

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind.name} exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                if self.request("GET", self.kind.ready_path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"{self.kind.name}: {self.kind.ready_path} not 200 after {timeout:.0f} s; "
                                  f"log:\n{self.log_tail()}")  # fmt: skip
            time.sleep(0.2)

    def request(self, method, path, body=None, timeout=30, conn=None):
        """(status, body bytes); uses conn (kept alive) when given."""
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if conn is None:
                c.close()

    def infer(self, rows: np.ndarray, conn=None) -> np.ndarray:
        status, reply = self.request("POST", self.kind.infer_path(self.model), self.kind.body(rows), conn=conn)
        if status != 200:
            raise ServerError(f"{self.kind.name} {self.model.name}: HTTP {status}: {reply[:300]!r}")
        return self.kind.proba(reply)

    def log_tail(self, n=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").strip().splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

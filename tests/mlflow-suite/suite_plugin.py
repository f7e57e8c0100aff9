"""pytest plugin (``-p suite_plugin``): MLflow's own tracking tests, judged against a real server.

Loaded into a run of MLflow's ``tests/`` checkout (never copied into this repository), it swaps
only the server fixture and leaves every test body as MLflow wrote it:

* ``ServerThread`` (the in-process uvicorn server of test_rest_tracking.py and
  test_model_registry.py), ``_init_server`` (a uvicorn subprocess) and test_mlflow_artifacts.py's
  ``_launch_server`` (an ``mlflow server`` subprocess) start ``twinloop server`` instead, on a
  fresh SQLite file and artifact directory. The root the test asked ``initialize_backend_stores``
  for becomes ``--default-artifact-root``; like MLflow's in-process server (which does not proxy
  artifacts) it runs with ``--no-serve-artifacts``, and with the proxy where the test launched
  ``mlflow server --artifacts-destination``.
* The client tests (test_tracking.py, test_client.py, fluent/test_fluent.py,
  test_model_registry_fluent.py) run against a local SQLite store in MLflow's suite; here the
  ``tracking_uri_mock`` fixture points them at a server started for each test instead.
* Tests matching tests/mlflow-suite/out_of_scope.txt are deselected and listed with their reason,
  in the terminal summary and in ``$MLFLOW_SUITE_OUT/deselected.json``.

``MLFLOW_SUITE_TARGET=mlflow`` is the control run: MLflow's own fixtures stay as they are (the
pinned mlflow server, in process or as ``mlflow server``) and only the client tests are routed,
through MLflow's in-process server on the test's fresh SQLite copy, so both runs route the same
tests through a server.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

TARGET = os.environ.get("MLFLOW_SUITE_TARGET", "twinloop")
HERE = Path(__file__).resolve().parent
CLIENT_FILES = (
    "tests/tracking/test_tracking.py",
    "tests/tracking/test_client.py",
    "tests/tracking/fluent/test_fluent.py",
    "tests/tracking/_model_registry/test_model_registry_fluent.py",
)
STARTUP_TIMEOUT_S = float(os.environ.get("MLFLOW_SUITE_STARTUP_TIMEOUT", "60"))

# The item whose fixtures are being set up: the routed tracking_uri_mock asks whose test it serves.
_current: list = [None]
# What the test last asked initialize_backend_stores for: (backend_uri, default_artifact_root).
_last_init: list = [None, None]
_deselected: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy within {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def twinloop_server(default_artifact_root: str | None, artifacts_destination: str | None = None,
                    port: int | None = None):
    """``twinloop server`` on a fresh SQLite file; yields its base URL."""
    binary = os.environ["TWINLOOP_BIN"]
    data = Path(tempfile.mkdtemp(prefix="tl-suite-"))
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        binary, "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{data / 'twinloop.db'}",
        "--artifacts-destination", artifacts_destination or str(data / "proxied"),
        "--workers", "2",
    ]
    if artifacts_destination is None:
        cmd.append("--no-serve-artifacts")
    if default_artifact_root:
        cmd += ["--default-artifact-root", default_artifact_root]
    log = data / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=os.getcwd())
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        _stop(proc)
        if os.environ.get("MLFLOW_SUITE_KEEP_DATA") != "1":
            shutil.rmtree(data, ignore_errors=True)


class TwinloopServerThread:
    """Stands in for MLflow's ``ServerThread(app, port)``: same constructor, same context use."""

    def __init__(self, app=None, port: int | None = None):
        self._port = port
        self._cm = None
        self.url = None

    def __enter__(self) -> str:
        import mlflow

        self._cm = twinloop_server(_last_init[1], port=self._port)
        self.url = self._cm.__enter__()
        # In MLflow's run the in-process server shares the test's SQLite file with the fluent API
        # and the CLI (the process-wide tracking URI); here they reach that store through the
        # server instead. tracking_uri_mock restores the URI when the test ends.
        mlflow.set_tracking_uri(self.url)
        return self.url

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        return None


@contextlib.contextmanager
def twinloop_init_server(backend_uri, root_artifact_uri, extra_env=None, app=None,
                         server_type="fastapi"):
    """Stands in for ``_init_server``: the test's artifact root, a fresh store."""
    import mlflow

    mlflow.set_tracking_uri(None)
    with twinloop_server(root_artifact_uri) as url:
        yield url


@contextlib.contextmanager
def twinloop_launch_server(host, port, backend_store_uri, default_artifact_root,
                           artifacts_destination):
    """Stands in for test_mlflow_artifacts.py's ``mlflow server`` launcher (with the proxy)."""
    dest = artifacts_destination.removeprefix("file://")
    with twinloop_server(default_artifact_root, artifacts_destination=dest, port=port):
        yield None


def _recording_initialize(real):
    def initialize_backend_stores(backend_store_uri=None, registry_store_uri=None,
                                  default_artifact_root=None, *args, **kwargs):
        _last_init[0], _last_init[1] = backend_store_uri, default_artifact_root
        if TARGET == "mlflow":
            return real(backend_store_uri, registry_store_uri, default_artifact_root,
                        *args, **kwargs)
        return None

    return initialize_backend_stores


def _is_client_test(item) -> bool:
    return item is not None and item.nodeid.split("::")[0] in CLIENT_FILES


def _routed_use_tracking_uri(real_use, real_initialize, real_server_thread):
    @contextlib.contextmanager
    def use(uri):
        item = _current[0]
        if not _is_client_test(item):
            with real_use(uri):
                yield
            return
        root = Path(tempfile.mkdtemp(prefix="suite-artifacts-"))
        try:
            if TARGET == "twinloop":
                server = twinloop_server(root.as_uri())
            else:
                from mlflow.server import handlers

                handlers._tracking_store = None
                handlers._model_registry_store = None
                real_initialize(uri, default_artifact_root=root.as_uri())
                server = real_server_thread(_fastapi_app(), _free_port())
            with server as url, real_use(url):
                yield
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return use


def _fastapi_app():
    from mlflow.server.fastapi_app import app

    return app


def _load_out_of_scope() -> list[tuple[str, str]]:
    rules = []
    for raw in (HERE / "out_of_scope.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition(" | ")
        if not reason:
            raise pytest.UsageError(f"out_of_scope.txt: no ' | reason' on line {raw!r}")
        rules.append((pattern.strip(), reason.strip()))
    return rules


def pytest_configure(config):
    if TARGET not in ("twinloop", "mlflow"):
        raise pytest.UsageError(f"MLFLOW_SUITE_TARGET must be twinloop or mlflow, not {TARGET!r}")
    if TARGET == "twinloop" and not os.access(os.environ.get("TWINLOOP_BIN", ""), os.X_OK):
        raise pytest.UsageError("TWINLOOP_BIN must name the twinloop binary")


def pytest_report_header(config):
    return [f"mlflow-suite target: {TARGET} {os.environ.get('TWINLOOP_BIN', '')}".rstrip()]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    rules = _load_out_of_scope()
    keep, dropped = [], []
    for item in items:
        reason = next((r for p, r in rules if fnmatch.fnmatchcase(item.nodeid, p)), None)
        if reason is None:
            keep.append(item)
        else:
            dropped.append(item)
            _deselected[item.nodeid] = reason
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    import mlflow.server.handlers as handlers

    import tests.conftest as root_conftest
    import tests.tracking.integration_test_utils as itu

    real_initialize = handlers.initialize_backend_stores
    real_server_thread = itu.ServerThread
    root_conftest._use_tracking_uri = _routed_use_tracking_uri(
        root_conftest._use_tracking_uri, real_initialize, real_server_thread
    )
    if TARGET == "twinloop":
        # Test modules bound these names at import, so each module's own binding is replaced.
        swaps = {
            "initialize_backend_stores": _recording_initialize(real_initialize),
            "ServerThread": TwinloopServerThread,
            "_init_server": twinloop_init_server,
            "_launch_server": twinloop_launch_server,
        }
        for module in {item.module for item in items if getattr(item, "module", None)} | {itu}:
            for name, swap in swaps.items():
                if hasattr(module, name):
                    setattr(module, name, swap)
        handlers.initialize_backend_stores = swaps["initialize_backend_stores"]

    out = os.environ.get("MLFLOW_SUITE_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, f"deselected-{TARGET}.json").write_text(json.dumps(_deselected, indent=1))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _current[0] = item


def pytest_terminal_summary(terminalreporter):
    if not _deselected:
        return
    by_reason: dict[str, int] = {}
    for reason in _deselected.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    terminalreporter.section("out of scope (deselected, see out_of_scope.txt)")
    for reason, n in sorted(by_reason.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{n:5d}  {reason}")

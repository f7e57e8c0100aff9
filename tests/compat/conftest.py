"""Fixtures for the twinloop compatibility suite.

The suite drives a tracking server with the stock MLflow Python client, exactly as a user does.

Which server:
  * default: the twinloop binary at $TWINLOOP_BIN (required), started as
    ``$TWINLOOP_BIN server --host 127.0.0.1 --port P --backend-store-uri URI --artifacts-destination DEST``
  * TWINLOOP_COMPAT_TARGET=mlflow: the real ``mlflow server`` from this interpreter's venv,
    which is how the tests themselves are validated.

Backends (the ``server`` fixture is parametrized, ids ``sqlite``, ``postgres``, ``s3``):
  * sqlite   always.
  * postgres when TWINLOOP_TEST_POSTGRES_URL is set (admin URL, e.g.
             postgresql://postgres@127.0.0.1:5432/postgres); a fresh database is created per session.
  * s3       when TWINLOOP_TEST_S3_ENDPOINT is set (a running moto server, e.g.
             http://127.0.0.1:5001); sqlite metadata + s3://BUCKET/prefix artifacts.
  TWINLOOP_REQUIRE_ALL_BACKENDS=1 turns a missing backend env var into a failure instead of a skip.

Auth: TWINLOOP_COMPAT_AUTH=basic|token starts twinloop with ``--auth`` (admin password from
TWINLOOP_ADMIN_PASSWORD) and signs the client in as that admin: ``basic`` through
MLFLOW_TRACKING_USERNAME/PASSWORD, ``token`` through MLFLOW_TRACKING_TOKEN (an ``admin``-scope
token made with ``twinloop auth token create``). Hand-built requests to the session's server
carry the same credentials (``credentials(url)``: ``requests`` calls get it automatically, raw
``http.client`` requests and the UI tests' browser pass it), so every test runs as the stock
client would with auth on.

Other knobs: TWINLOOP_STARTUP_TIMEOUT (seconds to wait for /health; default 60 for twinloop,
180 for the real mlflow server, which needs ~35 s on an idle 2-core machine),
TWINLOOP_KEEP_DATA=1 keeps the temp data dirs.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

# --- client-process environment -------------------------------------------------------------
# These must be in place before the client sends anything: no multi-minute retry loops on a
# 5xx, a short request timeout, and no telemetry (there is no network here).
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "20"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Never send loopback traffic through a proxy that may be configured on the machine.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var, ""), "127.0.0.1,localhost"]))
for _var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
    os.environ.pop(_var, None)

import mlflow  # noqa: E402  (after the env above)

BACKENDS = ("sqlite", "postgres", "s3")
S3_KEY = "testing"
COMPAT_ADMIN_PASSWORD = "compat-admin-pw"


def _auth_mode() -> str:
    mode = os.environ.get("TWINLOOP_COMPAT_AUTH", "").strip().lower()
    if mode not in ("", "basic", "token"):
        raise pytest.UsageError(f"TWINLOOP_COMPAT_AUTH={mode!r}: expected basic or token")
    return mode


# The servers signed in to, and the `Authorization` header each expects.
_SERVER_AUTH: dict[str, str] = {}
_plain_request = requests.Session.request


def credentials(url: str) -> dict[str, str]:
    """The headers that sign a hand-built request to `url` in as the session's admin: an
    `Authorization` header when `url` is an auth-on session server, else nothing."""
    for base, authorization in _SERVER_AUTH.items():
        if str(url).startswith(base):
            return {"Authorization": authorization}
    return {}


def _request_with_credentials(self, method, url, *args, **kwargs):
    """Raw test requests to an auth-on session server carry its admin's credentials, unless the
    test chose its own."""
    headers = kwargs.get("headers") or {}
    if kwargs.get("auth") is None and not any(k.lower() == "authorization" for k in headers):
        kwargs["headers"] = {**headers, **credentials(url)}
    return _plain_request(self, method, url, *args, **kwargs)


requests.Session.request = _request_with_credentials


def _target() -> str:
    target = os.environ.get("TWINLOOP_COMPAT_TARGET", "twinloop").strip().lower() or "twinloop"
    if target not in ("twinloop", "mlflow"):
        pytest.exit(f"TWINLOOP_COMPAT_TARGET must be 'twinloop' or 'mlflow', not {target!r}", returncode=4)
    return target


def _twinloop_bin_problem() -> str | None:
    bin_path = os.environ.get("TWINLOOP_BIN", "").strip()
    if not bin_path:
        return (
            "TWINLOOP_BIN is not set: point it at the twinloop binary "
            "(e.g. TWINLOOP_BIN=$CARGO_TARGET_DIR/debug/twinloop), or set TWINLOOP_COMPAT_TARGET=mlflow "
            "to run the suite against the real mlflow server."
        )
    if not (os.path.isfile(bin_path) and os.access(bin_path, os.X_OK)):
        return f"TWINLOOP_BIN={bin_path!r} is not an executable file"
    return None


def pytest_sessionstart(session):
    # Fail the whole run up front rather than erroring every test.
    if _target() == "twinloop" and not session.config.option.collectonly:
        problem = _twinloop_bin_problem()
        if problem:
            pytest.exit(problem, returncode=4)


def pytest_report_header(config):
    target = _target()
    extra = f"TWINLOOP_BIN={os.environ.get('TWINLOOP_BIN', '(unset)')}" if target == "twinloop" else ""
    return [f"twinloop compat target: {target} {extra}".rstrip()]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, limit: int = 8000) -> str:
    try:
        data = path.read_text(errors="replace")
    except OSError as e:
        return f"<could not read {path}: {e}>"
    return data[-limit:]


class Server(str):
    """The server's base URL (a str), with a few extras the raw-HTTP tests need."""

    backend: str
    target: str
    data_dir: Path
    artifact_root: Path | None  # local artifact root; None for s3
    s3_bucket: str | None
    s3_prefix: str | None
    s3_endpoint: str | None
    log_path: Path
    store_uri: str  # --backend-store-uri (the users and tokens of an auth-on server)

    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
            region_name="us-east-1",
        )


def _missing_backend(backend: str, var: str):
    if os.environ.get("TWINLOOP_REQUIRE_ALL_BACKENDS") == "1":
        pytest.fail(f"backend {backend!r} required (TWINLOOP_REQUIRE_ALL_BACKENDS=1) but {var} is not set")
    pytest.skip(f"backend {backend!r}: {var} not set")


def _psql(admin_url: str, sql: str) -> None:
    if not shutil.which("psql"):
        pytest.fail("psql not found on PATH (needed to create the postgres test database)")
    proc = subprocess.run(
        ["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed ({proc.returncode}): {proc.stderr.strip()}")


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    # The server was started in its own session: signal only that process group.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = "no reply yet"
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            pytest.fail(
                f"{what} exited with status {rc} before /health answered OK.\n"
                f"--- server output ({log_path}) ---\n{_log_tail(log_path)}",
                pytrace=False,
            )
        try:
            r = requests.get(f"{url}/health", timeout=2)
            if r.status_code == 200 and r.text.strip() == "OK":
                return
            last = f"HTTP {r.status_code}: {r.text[:200]!r}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.25)
    _kill_group(proc)
    pytest.fail(
        f"{what} did not answer GET /health == 'OK' within {timeout:.0f}s (last: {last}).\n"
        f"--- server output ({log_path}) ---\n{_log_tail(log_path)}",
        pytrace=False,
    )


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory):
    """Start one tracking server per backend for the whole session; yields its base URL."""
    backend = request.param
    target = _target()

    pg_admin = os.environ.get("TWINLOOP_TEST_POSTGRES_URL", "").strip()
    s3_endpoint = os.environ.get("TWINLOOP_TEST_S3_ENDPOINT", "").strip().rstrip("/")
    if backend == "postgres" and not pg_admin:
        _missing_backend(backend, "TWINLOOP_TEST_POSTGRES_URL")
    if backend == "s3" and not s3_endpoint:
        _missing_backend(backend, "TWINLOOP_TEST_S3_ENDPOINT")

    if target == "twinloop":
        problem = _twinloop_bin_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        # absolute: the server runs with its data dir as the working directory
        base_cmd = [os.path.abspath(os.environ["TWINLOOP_BIN"].strip()), "server"]
        default_timeout = 60.0
    else:
        mlflow_bin = Path(sys.executable).parent / "mlflow"
        if not mlflow_bin.exists():
            pytest.fail(f"mlflow CLI not found next to {sys.executable}; run scripts/venv.sh", pytrace=False)
        base_cmd = [str(mlflow_bin), "server"]
        default_timeout = 180.0
    timeout = float(os.environ.get("TWINLOOP_STARTUP_TIMEOUT", default_timeout))

    data_dir = Path(tempfile.mkdtemp(prefix=f"tl-compat-{backend}-"))
    env = dict(os.environ)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(var, None)
    # test_webhooks_mlflow.py's receiver listens on loopback over plain HTTP, which MLflow's
    # webhooks (and twinloop's MLflow webhooks) refuse by default; without the cache the real
    # server sees a new webhook at once instead of up to a minute later.
    env.setdefault("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    env.setdefault("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    env.setdefault("MLFLOW_WEBHOOK_CACHE_TTL", "0")
    # The real server's workers each make their own key for webhook secrets unless given one,
    # and then cannot read a secret another worker stored.
    env.setdefault("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", "dHdpbmxvb3AtY29tcGF0LXdlYmhvb2sta2V5LTMyYnk=")

    pg_db = None
    s3_bucket = s3_prefix = None
    artifact_root: Path | None = data_dir / "artifacts"

    if backend == "postgres":
        pg_db = f"tl_{uuid.uuid4().hex[:16]}"
        _psql(pg_admin, f"CREATE DATABASE {pg_db}")
        parts = urllib.parse.urlsplit(pg_admin)
        store_uri = urllib.parse.urlunsplit(parts._replace(path=f"/{pg_db}"))
    else:
        db_name = "mlflow.db" if target == "mlflow" else "twinloop.db"
        store_uri = f"sqlite:///{data_dir / db_name}"

    if backend == "s3":
        import boto3

        s3_bucket = f"tl-compat-{uuid.uuid4().hex[:12]}"
        s3_prefix = "prefix"
        boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
            region_name="us-east-1",
        ).create_bucket(Bucket=s3_bucket)
        artifacts_dest = f"s3://{s3_bucket}/{s3_prefix}"
        artifact_root = None
        env.update(
            AWS_ENDPOINT_URL=s3_endpoint,
            AWS_ACCESS_KEY_ID=S3_KEY,
            AWS_SECRET_ACCESS_KEY=S3_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ALLOW_HTTP="true",
            MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
        )
    else:
        artifact_root.mkdir(parents=True, exist_ok=True)
        artifacts_dest = str(artifact_root)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = base_cmd + [
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", store_uri,
        "--artifacts-destination", artifacts_dest,
    ]  # fmt: skip
    if target == "twinloop":
        # Tests name s3:// locations and sources the server never reads, and local locations
        # under its working directory (the data dir); twinloop allows locations outside its own
        # roots only when told to (mlflow allows any).
        cmd += ["--allowed-scheme", "s3", "--allowed-root", str(data_dir)]
        if _auth_mode():
            cmd += ["--auth"]
            env["TWINLOOP_ADMIN_PASSWORD"] = COMPAT_ADMIN_PASSWORD
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = False
    try:
        _wait_healthy(url, proc, log_path, timeout, f"{target} server ({backend})")
        started = True
        if target == "twinloop" and _auth_mode():
            _sign_in(url, store_uri)

        srv = Server(url)
        srv.backend = backend
        srv.target = target
        srv.data_dir = data_dir
        srv.artifact_root = artifact_root
        srv.s3_bucket = s3_bucket
        srv.s3_prefix = s3_prefix
        srv.s3_endpoint = s3_endpoint or None
        srv.log_path = log_path
        srv.store_uri = store_uri
        yield srv

        if proc.poll() is not None:
            pytest.fail(
                f"server exited during the session (status {proc.returncode}).\n{_log_tail(log_path)}",
                pytrace=False,
            )
    finally:
        _kill_group(proc)
        _SERVER_AUTH.pop(url, None)
        if pg_db:
            try:
                _psql(pg_admin, f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
            except Exception as e:  # best effort
                print(f"warning: could not drop {pg_db}: {e}", file=sys.stderr)
        # keep the data dir (and server.log) of a server that never came up, for debugging
        if started and os.environ.get("TWINLOOP_KEEP_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


def _sign_in(url: str, store_uri: str) -> None:
    """The client process signs in to the auth-on server as its admin."""
    if _auth_mode() == "basic":
        os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
        os.environ["MLFLOW_TRACKING_PASSWORD"] = COMPAT_ADMIN_PASSWORD
        basic = base64.b64encode(f"admin:{COMPAT_ADMIN_PASSWORD}".encode()).decode()
        _SERVER_AUTH[url] = f"Basic {basic}"
        return
    token = subprocess.run(
        [
            os.path.abspath(os.environ["TWINLOOP_BIN"].strip()),
            "auth", "--backend-store-uri", store_uri,
            "token", "create", "--user", "admin", "--scope", "admin",
        ],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    _SERVER_AUTH[url] = f"Bearer {token}"


@pytest.fixture(autouse=True)
def _tracking_uri(server, monkeypatch):
    """Point the stock client at the session's server for each test; leave no run active."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    mlflow.set_tracking_uri(server)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    # Forget the fluent API's active experiment: ids mean nothing on another backend's server.
    import mlflow.tracking.fluent as fluent

    fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@pytest.fixture
def client(server):
    return mlflow.MlflowClient(tracking_uri=server)


def unique(prefix: str = "tl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def experiment(client):
    """A fresh experiment, made active for the fluent API. Yields (experiment_id, name)."""
    name = unique("exp")
    exp_id = client.create_experiment(name)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id, name

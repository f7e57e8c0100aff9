#!/usr/bin/env python3
"""Tracking-server benchmark: the real MLflow server against twinloop, in one run.

Both servers are started here on free loopback ports, each with a fresh temporary directory
(SQLite backend + proxied artifacts), and the same workloads are driven against each with the
stock ``MlflowClient`` (one synchronous client thread) and, call for call, with raw HTTP through
a ``requests.Session`` carrying the JSON bodies the client sends. The difference between the two
is the client's own Python overhead; the raw figure is the server's share (plus ``requests``).

Workloads:
  (a) log_batch: N runs x 1,000 metrics, one log_batch per run          -> metrics/s, batch median
  (b) log_metric: N single calls                                           -> calls/s, median
  (c) search_runs over N runs of one experiment, ``metrics.m1 > 0.5`` ordered by
      ``metrics.m1 DESC``, 100 and 1,000 rows                              -> p50 / p95
      (the runs are set up with raw HTTP runs/create + runs/log-batch from 8 threads)
  (d) get_metric_history of one metric with N steps (logged with log_batch, 1,000 a chunk) -> p50

Nothing here asserts on a time. See README.md beside this file.
"""

from __future__ import annotations

import os

# The MLflow client and server send usage telemetry to a public host unless told not to; this
# machine must talk to loopback only. Set before mlflow is imported (and passed to the servers).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# The client retries 5xx replies for minutes by default; a benchmark should fail fast instead.
# Retries only ever happen on errors, so this changes no timing of a healthy server.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

import argparse
import atexit
import collections
import concurrent.futures
import datetime
import json
import math
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import requests
import urllib3
import urllib3.connectionpool

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, ViewType
from mlflow.protos.service_pb2 import GetMetricHistory, LogBatch, LogMetric, SearchRuns
from mlflow.utils.proto_json_utils import message_to_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

FULL = dict(
    batch_runs=200,  # (a) runs, one log_batch each
    batch_size=1000,  # (a) metrics per log_batch
    batch_keys=10,  # (a) distinct metric keys in a batch (batch_size / batch_keys steps each)
    metric_calls=2000,  # (b) single log_metric calls
    search_runs=5000,  # (c) runs in the searched experiment
    search_repeats=20,  # (c) timed calls, 100 rows
    search_repeats_1000=10,  # (c) timed calls, 1,000 rows
    history_steps=10000,  # (d) steps of the metric
    history_chunk=1000,  # (d) log_batch chunk size when setting it up
    history_repeats=10,  # (d) timed calls
    setup_threads=8,  # (c) raw-HTTP threads that create the runs
    warmup=3,  # untimed calls of each kind before timing
)
QUICK = dict(
    FULL,
    batch_runs=20,
    metric_calls=200,
    search_runs=500,
    search_repeats=10,
    search_repeats_1000=5,
    history_steps=2000,
    history_repeats=5,
)

SEARCH_FILTER = "metrics.m1 > 0.5"
SEARCH_ORDER = ["metrics.m1 DESC"]
HISTORY_PAGE = 25000  # what MlflowClient.get_metric_history asks for per page


# --------------------------------------------------------------------------------------------
# Counting the HTTP requests each phase really sends (below requests, so retries show up too)
# --------------------------------------------------------------------------------------------
_REQUESTS: collections.Counter = collections.Counter()
_LABEL: list = [None]
_orig_make_request = urllib3.connectionpool.HTTPConnectionPool._make_request


def _counting_make_request(self, conn, method, url, *args, **kwargs):
    label = _LABEL[0]
    if label is not None:
        _REQUESTS[(label, method, url.split("?", 1)[0])] += 1
    return _orig_make_request(self, conn, method, url, *args, **kwargs)


urllib3.connectionpool.HTTPConnectionPool._make_request = _counting_make_request


class label:
    """Attribute the requests sent inside the block to a phase (for the request census)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.prev = _LABEL[0]
        _LABEL[0] = self.name

    def __exit__(self, *exc):
        _LABEL[0] = self.prev


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------
def pct(values, q):
    """Percentile with linear interpolation (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ms(seconds):
    return seconds * 1000.0


def now_ms():
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_pdeathsig():
    # The direct child gets SIGTERM if this process dies without running its cleanup.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_LIVE_SERVERS: list = []


class Server:
    def __init__(self, name, argv_for, workdir, start_timeout):
        self.name = name
        self.argv_for = argv_for
        self.workdir = Path(workdir)
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.url = None
        self.log_path = self.workdir / f"{name}-server.log"
        self.start_seconds = None
        self.argv = None

    def start(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = self.argv_for(self.port, self.workdir)
        env = dict(os.environ)
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        env.setdefault("DO_NOT_TRACK", "true")
        log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
            start_new_session=True,  # its own process group: stop() ends all its workers
            preexec_fn=_set_pdeathsig,
        )
        log.close()
        _LIVE_SERVERS.append(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server exited with {self.proc.returncode} before /health "
                    f"answered; log tail:\n{self.log_tail()}"
                )
            try:
                r = requests.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} server: no 200 from /health within {self.start_timeout} s; "
                    f"log tail:\n{self.log_tail()}"
                )
            time.sleep(0.2)
        self.start_seconds = time.perf_counter() - t0
        return self

    def log_tail(self, n=30):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def processes(self):
        """(pid, rss bytes) of every process in the server's session (it and its workers)."""
        out = []
        if self.proc is None:
            return out
        page = os.sysconf("SC_PAGE_SIZE")
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                # fields[0] is state (field 3); session is field 6, rss is field 24
                if int(fields[3]) == self.proc.pid:
                    out.append((int(d), int(fields[21]) * page))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def stop(self):
        if self.proc is None:
            return
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        if self.proc.poll() is None or self.processes():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.processes():
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _stop_all_servers():
    for s in list(_LIVE_SERVERS):
        try:
            s.stop()
        except Exception:
            pass


atexit.register(_stop_all_servers)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def store_uri(name, workdir, postgres):
    """The backend store of one server: a SQLite file in its directory, or a fresh database on
    the PostgreSQL server at `postgres` (a URL of any database there, e.g. .../postgres)."""
    if not postgres:
        return f"sqlite:///{workdir}/{name}.db"
    # One database per server directory, however often the server is (re)started in it.
    if (name, workdir) not in _PG_DATABASES:
        db = f"bench_{name}_{os.getpid()}_{int(time.time())}"
        subprocess.run(["psql", postgres, "-qXc", f"CREATE DATABASE {db}"], check=True)
        _PG_DATABASES[(name, workdir)] = postgres.rsplit("/", 1)[0] + "/" + db
    return _PG_DATABASES[(name, workdir)]


_PG_DATABASES: dict = {}


def mlflow_argv_for(postgres=None):
    def argv(port, workdir):
        exe = Path(sys.executable).with_name("mlflow")
        head = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
        return head + [
            "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--backend-store-uri", mlflow_store_uri(store_uri("mlflow", workdir, postgres)),
            "--artifacts-destination", f"{workdir}/artifacts",
        ]  # fmt: skip

    return argv


def mlflow_store_uri(uri):
    """SQLAlchemy 2.1 (which mlflow 3.17.2 installs) reads a plain postgresql:// URL with the
    psycopg 3 driver, not installed here; the venv's driver is psycopg2, named explicitly."""
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg2://" + uri[len("postgresql://"):]
    return uri


def twinloop_argv_for(binary, postgres=None):
    def argv(port, workdir):
        return [
            str(binary),
            "server",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--backend-store-uri", store_uri("twinloop", workdir, postgres),
            "--artifacts-destination", f"{workdir}/artifacts",
        ]  # fmt: skip

    return argv


# --------------------------------------------------------------------------------------------
# Raw HTTP: the same JSON bodies the client sends (checked against the client's own encoder)
# --------------------------------------------------------------------------------------------
class HttpError(RuntimeError):
    pass


class Target:
    """One server, seen through MlflowClient and through a plain requests.Session."""

    def __init__(self, url):
        self.url = url
        self.api = url + "/api/2.0/mlflow/"
        self.client = MlflowClient(tracking_uri=url)
        self.session = requests.Session()
        self._local = threading.local()

    def _sess(self, threaded):
        if not threaded:
            return self.session
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        return s

    @staticmethod
    def _reply(path, r):
        if r.status_code != 200:
            raise HttpError(f"{r.request.method} {path}: HTTP {r.status_code}: {r.text[:400]}")
        return r.json() if r.content else {}

    def post(self, path, body, threaded=False):
        return self._reply(path, self._sess(threaded).post(self.api + path, json=body, timeout=600))

    def get(self, path, params, threaded=False):
        return self._reply(path, self._sess(threaded).get(self.api + path, params=params, timeout=600))

    # -- bodies ------------------------------------------------------------------------------
    @staticmethod
    def log_batch_body(run_id, metrics):
        return {
            "run_id": run_id,
            "metrics": [
                {"key": k, "value": v, "timestamp": ts, "step": st} for (k, v, ts, st) in metrics
            ],
        }

    @staticmethod
    def log_metric_body(run_id, key, value, timestamp, step):
        return {
            "run_uuid": run_id,
            "key": key,
            "value": value,
            "timestamp": timestamp,
            "step": step,
            "run_id": run_id,
        }

    @staticmethod
    def search_body(experiment_id, max_results, page_token=None):
        body = {
            "experiment_ids": [experiment_id],
            "run_view_type": "ACTIVE_ONLY",
            "filter": SEARCH_FILTER,
            "max_results": max_results,
            "order_by": list(SEARCH_ORDER),
        }
        if page_token:
            body["page_token"] = page_token
        return body

    @staticmethod
    def history_params(run_id, key, page_token=None):
        p = {"run_uuid": run_id, "metric_key": key, "run_id": run_id, "max_results": HISTORY_PAGE}
        if page_token:
            p["page_token"] = page_token
        return p

    # -- raw operations ----------------------------------------------------------------------
    def raw_create_experiment(self, name):
        return self.post("experiments/create", {"name": name})["experiment_id"]

    def raw_create_run(self, experiment_id, run_name, start_time=None, threaded=False):
        body = {
            "experiment_id": experiment_id,
            "user_id": "bench",
            "start_time": start_time or now_ms(),
            "tags": [
                {"key": "mlflow.user", "value": "bench"},
                {"key": "mlflow.source.name", "value": "bench.py"},
                {"key": "mlflow.source.type", "value": "LOCAL"},
            ],
            "run_name": run_name,
        }
        return self.post("runs/create", body, threaded=threaded)["run"]["info"]["run_id"]

    def raw_search(self, experiment_id, max_results):
        return self.post("runs/search", self.search_body(experiment_id, max_results)).get("runs", [])

    def raw_history(self, run_id, key):
        out, token = [], None
        while True:
            reply = self.get("metrics/get-history", self.history_params(run_id, key, token))
            out.extend(reply.get("metrics", []))
            token = reply.get("next_page_token")
            if not token:
                return out


def check_bodies():
    """Our raw bodies must equal what the client's own proto encoder produces."""
    problems = []
    ms_ = [("k0", 0.25, 1700000000000, 0), ("k1", 1.0, 1700000000001, 7)]
    want = json.loads(
        message_to_json(
            LogBatch(
                metrics=[Metric(k, v, ts, st).to_proto() for (k, v, ts, st) in ms_],
                params=[],
                tags=[],
                run_id="r1",
            )
        )
    )
    if want != Target.log_batch_body("r1", ms_):
        problems.append(f"log-batch: client sends {want}")
    want = json.loads(
        message_to_json(
            LogMetric(run_uuid="r1", run_id="r1", key="loss", value=0.5, timestamp=17, step=3)
        )
    )
    if want != Target.log_metric_body("r1", "loss", 0.5, 17, 3):
        problems.append(f"log-metric: client sends {want}")
    for n in (100, 1000):
        want = json.loads(
            message_to_json(
                SearchRuns(
                    experiment_ids=["5"],
                    filter=SEARCH_FILTER,
                    run_view_type=ViewType.to_proto(ViewType.ACTIVE_ONLY),
                    max_results=n,
                    order_by=SEARCH_ORDER,
                )
            )
        )
        if want != Target.search_body("5", n):
            problems.append(f"runs/search: client sends {want}")
    want = json.loads(
        message_to_json(
            GetMetricHistory(run_uuid="r1", run_id="r1", metric_key="h", max_results=HISTORY_PAGE)
        )
    )
    if want != Target.history_params("r1", "h"):
        problems.append(f"get-history: client sends {want}")
    return problems


# --------------------------------------------------------------------------------------------
# Workloads. Each returns a dict of figures; client and raw calls alternate in blocks (see
# alternate()) so that drifts in machine load hit both alike.
# --------------------------------------------------------------------------------------------
def uniq():
    return f"{int(time.time() * 1000)}-{random.randrange(1 << 30):x}"


def warm_up(t: Target, sz):
    with label("warmup"):
        exp = t.client.create_experiment(f"bench-warmup-{uniq()}")
        run = t.client.create_run(exp).info.run_id
        rraw = t.raw_create_run(exp, "warm-raw")
        batch = [("w", float(i), now_ms(), i) for i in range(100)]
        for i in range(sz["warmup"]):
            t.client.log_metric(run, "wm", float(i), step=i)
            t.post("runs/log-metric", t.log_metric_body(rraw, "wm", float(i), now_ms(), i))
            t.client.log_batch(run, metrics=[Metric(*m) for m in batch])
            t.post("runs/log-batch", t.log_batch_body(rraw, batch))
            t.client.search_runs([exp], SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=100)
            t.raw_search(exp, 100)
            t.client.get_metric_history(run, "w")
            t.raw_history(rraw, "w")


def alternate(tag, n, client_call, raw_call, client_primer=None, raw_primer=None, block=10):
    """Time n client calls and n raw calls, alternating in blocks of `block` calls.

    ``client_call(i)`` / ``raw_call(i)`` do any untimed preparation and return the zero-argument
    callable to time. Each block starts with an untimed primer call on the same connection, so
    that every timed call follows another request on its connection, as in a user's loop: TCP
    delayed-ACK state depends on that (see README), and strict call-by-call interleaving of the
    two connections would make one side look ~40 ms faster than it is in a loop against MLflow.
    Blocks rather than one long run each, so that drifts in machine load hit both sides alike.
    """
    tc, tr = [], []
    last_c = last_r = None
    for start in range(0, n, block):
        idx = range(start, min(n, start + block))
        for calls, primer, times, mode in (
            (client_call, client_primer, tc, "client"),
            (raw_call, raw_primer, tr, "raw"),
        ):
            if primer is not None:
                primer()
            for i in idx:
                fn = calls(i)
                with label(f"{tag}:{mode}"):
                    dt, out = timed(fn)
                times.append(dt)
                if mode == "client":
                    last_c = out
                else:
                    last_r = out
    return tc, tr, last_c, last_r


def wl_log_batch(t: Target, sz, seed):
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(sz["batch_keys"])]
    steps = sz["batch_size"] // len(keys)
    exp_c = t.client.create_experiment(f"bench-log-batch-client-{uniq()}")
    exp_r = t.raw_create_experiment(f"bench-log-batch-raw-{uniq()}")
    n = sz["batch_runs"]
    data = []
    for i in range(n):
        ts = now_ms()
        data.append([(k, rng.random(), ts, st) for st in range(steps) for k in keys])
    runs_c = []

    def client_call(i):
        # create_run (untimed) just before, on the same connection; Metric objects are built
        # outside the timing, like the raw body
        run = t.client.create_run(exp_c, run_name=f"lb-{i}").info.run_id
        runs_c.append(run)
        metrics = [Metric(*m) for m in data[i]]
        return lambda: t.client.log_batch(run, metrics=metrics)

    def raw_call(i):
        run = t.raw_create_run(exp_r, f"lb-{i}")
        body = t.log_batch_body(run, data[i])
        return lambda: t.post("runs/log-batch", body)

    tc, tr, _, _ = alternate("a", n, client_call, raw_call)
    # Read back one run to make sure the data landed.
    last = t.client.get_run(runs_c[-1]).data.metrics
    if len(last) != len(keys):
        raise RuntimeError(f"log_batch: run has {len(last)} latest metrics, expected {len(keys)}")
    n_metrics = sum(len(d) for d in data)
    return {
        "runs": n,
        "metrics_per_batch": len(data[0]),
        "client": {
            "metrics_per_s": n_metrics / sum(tc),
            "batch_median_ms": ms(statistics.median(tc)),
            "batch_p95_ms": ms(pct(tc, 0.95)),
        },
        "raw": {
            "metrics_per_s": n_metrics / sum(tr),
            "batch_median_ms": ms(statistics.median(tr)),
            "batch_p95_ms": ms(pct(tr, 0.95)),
        },
    }


def wl_log_metric(t: Target, sz, seed):
    rng = random.Random(seed)
    n = sz["metric_calls"]
    values = [rng.random() for _ in range(n)]
    exp = t.client.create_experiment(f"bench-log-metric-{uniq()}")
    run_c = t.client.create_run(exp, run_name="lm-client").info.run_id
    run_r = t.raw_create_run(exp, "lm-raw")
    primes = iter(range(10**9))

    def client_call(i):
        return lambda: t.client.log_metric(run_c, "loss", values[i], step=i)

    def raw_call(i):
        return lambda: t.post(
            "runs/log-metric", t.log_metric_body(run_r, "loss", values[i], now_ms(), i)
        )

    tc, tr, _, _ = alternate(
        "b",
        n,
        client_call,
        raw_call,
        client_primer=lambda: t.client.log_metric(run_c, "primer", 0.0, step=next(primes)),
        raw_primer=lambda: t.post(
            "runs/log-metric", t.log_metric_body(run_r, "primer", 0.0, now_ms(), next(primes))
        ),
    )
    got = len(t.client.get_metric_history(run_c, "loss"))
    if got != n:
        raise RuntimeError(f"log_metric: history has {got} points, expected {n}")
    return {
        "calls": n,
        "client": {
            "calls_per_s": n / sum(tc),
            "median_ms": ms(statistics.median(tc)),
            "p95_ms": ms(pct(tc, 0.95)),
        },
        "raw": {
            "calls_per_s": n / sum(tr),
            "median_ms": ms(statistics.median(tr)),
            "p95_ms": ms(pct(tr, 0.95)),
        },
    }


def search_setup(t: Target, sz, seed):
    """N runs in one experiment, created with raw HTTP from a thread pool (MLflow creates runs
    slowly; the client would take far longer). Same data on every server (seeded)."""
    rng = random.Random(seed)
    n = sz["search_runs"]
    base = now_ms()
    plan = []
    for i in range(n):
        plan.append(
            {
                "i": i,
                "metrics": [(f"m{j}", rng.random(), base + i, 0) for j in range(1, 6)],
                "params": [
                    {"key": "lr", "value": str(rng.choice([0.1, 0.01, 0.001]))},
                    {"key": "depth", "value": str(rng.randrange(2, 12))},
                    {"key": "model", "value": rng.choice(["rf", "gbm", "mlp"])},
                ],
                "tags": [{"key": "parity", "value": "even" if i % 2 == 0 else "odd"}],
            }
        )
    exp = t.raw_create_experiment(f"bench-search-{uniq()}")

    def make(p):
        rid = t.raw_create_run(exp, f"sr-{p['i']}", start_time=base + p["i"], threaded=True)
        body = t.log_batch_body(rid, p["metrics"])
        body["params"] = p["params"]
        body["tags"] = p["tags"]
        t.post("runs/log-batch", body, threaded=True)

    t0 = time.perf_counter()
    with label("c:setup"), concurrent.futures.ThreadPoolExecutor(sz["setup_threads"]) as ex:
        for f in [ex.submit(make, p) for p in plan]:
            f.result()
    elapsed = time.perf_counter() - t0
    # The rows every server must return at the top: same data, same order.
    expect = sorted((p["metrics"][0][1] for p in plan if p["metrics"][0][1] > 0.5), reverse=True)
    return exp, {"runs": n, "threads": sz["setup_threads"], "seconds": elapsed,
                 "runs_per_s": n / elapsed}, expect  # fmt: skip


def wl_search(t: Target, sz, exp, expect):
    out = {}
    for rows, reps in ((100, sz["search_repeats"]), (1000, sz["search_repeats_1000"])):
        want = min(rows, len(expect))
        def client_search():
            return t.client.search_runs(
                [exp], SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=rows
            )

        with label("c:warmup"):
            client_search()
            t.raw_search(exp, rows)
        tc, tr, res_c, res_r = alternate(
            f"c{rows}",
            reps,
            lambda i: client_search,
            lambda i: (lambda: t.raw_search(exp, rows)),
            client_primer=client_search,
            raw_primer=lambda: t.raw_search(exp, rows),
        )
        got_c = [r.data.metrics.get("m1") for r in res_c]
        got_r = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "m1") for r in res_r]
        if len(got_c) != want or len(got_r) != want:
            raise RuntimeError(
                f"search_runs {rows} rows: got {len(got_c)} (client) / {len(got_r)} (raw) rows, "
                f"expected {want}"
            )
        if any(abs(a - b) > 1e-12 for a, b in zip(got_c, expect)) or got_c != got_r:
            raise RuntimeError(f"search_runs {rows} rows: wrong rows or order (metrics.m1 DESC)")
        out[str(rows)] = {
            "rows_returned": want,
            "repeats": reps,
            "client": {"p50_ms": ms(pct(tc, 0.5)), "p95_ms": ms(pct(tc, 0.95))},
            "raw": {"p50_ms": ms(pct(tr, 0.5)), "p95_ms": ms(pct(tr, 0.95))},
        }
    return out


def wl_history(t: Target, sz, seed):
    rng = random.Random(seed)
    n, chunk = sz["history_steps"], sz["history_chunk"]
    exp = t.client.create_experiment(f"bench-history-{uniq()}")
    run = t.client.create_run(exp, run_name="history").info.run_id
    base = now_ms()
    t0 = time.perf_counter()
    with label("d:setup"):
        for s in range(0, n, chunk):
            t.client.log_batch(
                run,
                metrics=[Metric("hist", rng.random(), base + i, i) for i in range(s, min(n, s + chunk))],
            )
    setup = time.perf_counter() - t0
    with label("d:warmup"):
        t.client.get_metric_history(run, "hist")
        t.raw_history(run, "hist")
    tc, tr, res_c, res_r = alternate(
        "d",
        sz["history_repeats"],
        lambda i: (lambda: t.client.get_metric_history(run, "hist")),
        lambda i: (lambda: t.raw_history(run, "hist")),
        client_primer=lambda: t.client.get_metric_history(run, "hist"),
        raw_primer=lambda: t.raw_history(run, "hist"),
    )
    if len(res_c) != n or len(res_r) != n:
        raise RuntimeError(f"get_metric_history: got {len(res_c)}/{len(res_r)} points, expected {n}")
    return {
        "steps": n,
        "repeats": sz["history_repeats"],
        "setup_seconds": setup,
        "client": {"p50_ms": ms(pct(tc, 0.5)), "p95_ms": ms(pct(tc, 0.95))},
        "raw": {"p50_ms": ms(pct(tr, 0.5)), "p95_ms": ms(pct(tr, 0.95))},
    }


def short_error(e):
    msg = f"{type(e).__name__}: {e}"
    return msg if len(msg) < 800 else msg[:800] + "…"



def run_step(res, server, step, fn):
    """Times one workload and records its result or error; False when the server has died."""
    t0 = time.perf_counter()
    print(f"   {step} …", end="", flush=True)
    try:
        out = fn()
        if out is not None:
            res["workloads"][step] = out
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
    except Exception as e:  # record, go on with the next workload
        res["errors"][step] = short_error(e)
        print(f" FAILED after {time.perf_counter() - t0:.1f} s: {short_error(e)}", flush=True)
        if os.environ.get("TWINLOOP_BENCH_TRACEBACK"):
            traceback.print_exc()
        if server.proc.poll() is not None:
            res["errors"]["server"] = f"exited with {server.proc.returncode}"
            print(f"   server died; log tail:\n{server.log_tail()}", flush=True)
            return False
    return True


def finish_server(res, server, load0):
    """Records the server's footprint, the load and the request census, then stops it."""
    procs = server.processes()
    res["server_processes"] = len(procs)
    res["server_rss_mb"] = sum(r for _, r in procs) / 2**20
    res["loadavg_before"] = load0
    res["loadavg_after"] = os.getloadavg()
    res["requests"] = {
        f"{lab} {meth} {path}": n for (lab, meth, path), n in sorted(_REQUESTS.items())
    }
    server.stop()


def finish_report(name, args, meta, results, rows, over, markdown_report, quiet):
    """Prints the request census, errors and load note, writes the JSON and markdown reports
    (to bench/results/<name>-<time>.* unless --json/--markdown say where or --no-save), and
    returns the exit code: 1 when any workload failed."""
    for srv, r in results.items():
        for k, n in r.get("requests", {}).items():
            if not k.startswith(quiet):
                print(f"  {srv:8} {k}: {n}")
    for srv, r in results.items():
        for w, e in r.get("errors", {}).items():
            print(f"ERROR {srv} / {w}: {e}")
    busy = load_warning(results, meta)
    if busy:
        print(f"NOTE: {busy}")

    doc = {"meta": meta, "servers": results, "rows": rows, "client_overhead": over}
    md = markdown_report(meta, results, rows, over)
    json_path, md_path = args.json, args.markdown
    if not args.no_save:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        outdir = REPO / "bench" / "results"
        json_path = json_path or str(outdir / f"{name}-{stamp}.json")
        md_path = md_path or str(outdir / f"{name}-{stamp}.md")
    for path, text in ((json_path, json.dumps(doc, indent=2) + "\n"), (md_path, md)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
            print(f"wrote {path}")
    return 1 if any(r.get("errors") for r in results.values()) else 0

def bench_server(name, server: Server, sz, seed):
    res = {"name": name, "errors": {}, "workloads": {}}
    _REQUESTS.clear()
    load0 = os.getloadavg()
    print(f"\n== {name}: starting {shlex.join(server.argv_for(0, server.workdir))[:200]} …", flush=True)
    server.start()
    res["argv"] = server.argv
    res["start_seconds"] = server.start_seconds
    print(f"   healthy after {server.start_seconds:.1f} s on {server.url}", flush=True)
    t = Target(server.url)
    steps = [
        ("warmup", lambda: warm_up(t, sz)),
        ("log_batch", lambda: wl_log_batch(t, sz, seed)),
        ("log_metric", lambda: wl_log_metric(t, sz, seed)),
        ("search_setup", None),
        ("search_runs", None),
        ("get_metric_history", lambda: wl_history(t, sz, seed)),
    ]
    search_state = {}
    for step, fn in steps:
        if step == "search_setup":

            def fn():
                exp, info, expect = search_setup(t, sz, seed)
                search_state.update(exp=exp, expect=expect)
                return info

        elif step == "search_runs":
            if "exp" not in search_state:
                res["errors"][step] = "skipped: the search setup failed"
                continue

            def fn():
                return wl_search(t, sz, search_state["exp"], search_state["expect"])

        if not run_step(res, server, step, fn):
            break
    finish_server(res, server, load0)
    return res


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
# (workload label, path into a server's "workloads", unit, higher is better)
ROWS = [
    ("(a) log_batch throughput", ("log_batch", "{m}", "metrics_per_s"), "metrics/s", True),
    ("(a) log_batch, median per batch", ("log_batch", "{m}", "batch_median_ms"), "ms", False),
    ("(b) log_metric rate", ("log_metric", "{m}", "calls_per_s"), "calls/s", True),
    ("(b) log_metric, median per call", ("log_metric", "{m}", "median_ms"), "ms", False),
    ("(c) search_runs max_results 100, p50", ("search_runs", "100", "{m}", "p50_ms"), "ms", False),
    ("(c) search_runs max_results 100, p95", ("search_runs", "100", "{m}", "p95_ms"), "ms", False),
    ("(c) search_runs max_results 1,000, p50", ("search_runs", "1000", "{m}", "p50_ms"), "ms", False),
    ("(c) search_runs max_results 1,000, p95", ("search_runs", "1000", "{m}", "p95_ms"), "ms", False),
    ("(d) get_metric_history, p50", ("get_metric_history", "{m}", "p50_ms"), "ms", False),
]
# per-call medians for the "client overhead" table: (label, path with {m} = client / raw)
OVERHEAD = [
    ("(a) log_batch, per batch", ("log_batch", "{m}", "batch_median_ms")),
    ("(b) log_metric, per call", ("log_metric", "{m}", "median_ms")),
    ("(c) search_runs max_results 100, p50", ("search_runs", "100", "{m}", "p50_ms")),
    ("(c) search_runs max_results 1,000, p50", ("search_runs", "1000", "{m}", "p50_ms")),
    ("(d) get_metric_history, p50", ("get_metric_history", "{m}", "p50_ms")),
]


def dig(res, path, mode):
    cur = res.get("workloads", {}) if res else {}
    for p in path:
        p = p.format(m=mode)
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def fmt(v, unit):
    if v is None:
        return "—"
    if unit in ("metrics/s", "calls/s"):
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def build_rows(results):
    rows = []
    for mode, mode_name in (("client", "MlflowClient"), ("raw", "raw HTTP")):
        for name, path, unit, higher in ROWS:
            a = dig(results.get("mlflow"), path, mode)
            b = dig(results.get("twinloop"), path, mode)
            ratio = None
            if a and b:
                ratio = (b / a) if higher else (a / b)
            rows.append(
                {
                    "workload": name,
                    "mode": mode_name,
                    "unit": unit,
                    "higher_is_better": higher,
                    "mlflow": a,
                    "twinloop": b,
                    "ratio": ratio,
                }
            )
    return rows


def build_overhead(results):
    out = []
    for name, path in OVERHEAD:
        row = {"workload": name}
        for srv in ("mlflow", "twinloop"):
            c = dig(results.get(srv), path, "client")
            r = dig(results.get(srv), path, "raw")
            row[srv] = None if c is None or r is None else {"client_ms": c, "raw_ms": r,
                                                            "overhead_ms": c - r}  # fmt: skip
        out.append(row)
    return out


def table_lines(rows, md):
    head = ["workload", "mode", "unit", "mlflow", "twinloop", "ratio (twinloop speed / mlflow)"]
    body = []
    for r in rows:
        body.append(
            [
                r["workload"],
                r["mode"],
                r["unit"],
                fmt(r["mlflow"], r["unit"]),
                fmt(r["twinloop"], r["unit"]),
                "—" if r["ratio"] is None else f"{r['ratio']:.2f}×",
            ]
        )
    return render(head, body, md, right=(3, 4, 5))


def overhead_lines(over, md):
    head = ["per-call median", "mlflow client / raw (ms)", "mlflow client share",
            "twinloop client / raw (ms)", "twinloop client share"]  # fmt: skip
    body = []
    for r in over:
        line = [r["workload"]]
        for srv in ("mlflow", "twinloop"):
            v = r[srv]
            if v is None:
                line += ["—", "—"]
            else:
                share = v["overhead_ms"] / v["client_ms"] * 100 if v["client_ms"] else 0.0
                line += [f"{v['client_ms']:,.1f} / {v['raw_ms']:,.1f}", f"{share:.0f} %"]
        body.append(line)
    return render(head, body, md, right=(1, 2, 3, 4))


def render(head, body, md, right=()):
    if md:
        lines = ["| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return lines
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def line(row):
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        )

    return [line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in body]


def setup_lines(results, md):
    head = ["server", "start to /health", "processes", "RSS after run", "search setup (raw, threads)",
            "history setup (client log_batch)", "load avg before → after"]  # fmt: skip
    body = []
    for srv in ("mlflow", "twinloop"):
        r = results.get(srv)
        if not r:
            continue
        ss = r.get("workloads", {}).get("search_setup")
        hs = r.get("workloads", {}).get("get_metric_history")
        body.append(
            [
                srv,
                f"{r['start_seconds']:.1f} s" if r.get("start_seconds") else "—",
                str(r.get("server_processes", "—")),
                f"{r['server_rss_mb']:,.0f} MiB" if "server_rss_mb" in r else "—",
                f"{ss['runs']:,} runs in {ss['seconds']:.1f} s = {ss['runs_per_s']:,.0f} runs/s "
                f"({ss['threads']} threads)" if ss else "—",
                f"{hs['steps']:,} steps in {hs['setup_seconds']:.2f} s" if hs else "—",
                "{:.2f} → {:.2f}".format(r["loadavg_before"][0], r["loadavg_after"][0])
                if "loadavg_after" in r
                else "—",
            ]
        )
    return render(head, body, md)


def machine_info():
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        if rev.returncode != 0:
            return "no commit"
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "crates"],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
        return rev.stdout.strip() + (" (crates/ modified)" if dirty.stdout.strip() else "")
    except Exception:
        return "unknown"


def twinloop_version(binary):
    try:
        r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except Exception:
        pass
    return "unknown"


def rows_note(results):
    for r in results.values():
        got = [r.get("workloads", {}).get("search_runs", {}).get(k, {}).get("rows_returned")
               for k in ("100", "1000")]  # fmt: skip
        if all(got):
            return f" (returning {got[0]:,} and {got[1]:,} rows)"
    return ""


def markdown_report(meta, results, rows, over):
    database = "PostgreSQL" if meta.get("store") == "postgresql" else "SQLite"
    sz = meta["sizes"]
    m = meta["machine"]
    out = [
        f"### Tracking server: MLflow {meta['versions']['mlflow']} vs twinloop — {meta['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; Python {m['python']}, mlflow {meta['versions']['mlflow']}, "
        f"requests {meta['versions']['requests']}; twinloop {meta['versions']['twinloop']} "
        f"(git {meta['versions']['git']}, binary `{meta['twinloop_bin'] or '—'}`).",
        "",
        f"Command: `{meta['command']}`" + (" (quick sizes)" if meta["quick"] else "")
        + f"; backend store: {meta.get('store', 'sqlite')}.",
        "",
        f"Sizes: (a) {sz['batch_runs']} runs × {sz['batch_size']:,} metrics "
        f"({sz['batch_keys']} keys × {sz['batch_size'] // sz['batch_keys']} steps), one log_batch "
        f"per run; (b) {sz['metric_calls']:,} log_metric calls; (c) {sz['search_runs']:,} runs in "
        f"one experiment, `{SEARCH_FILTER}` order_by `{SEARCH_ORDER[0]}`, "
        f"{sz['search_repeats']} calls at max_results 100 and {sz['search_repeats_1000']} at "
        f"1,000{rows_note(results)} "
        f"(the runs were created with raw HTTP runs/create + runs/log-batch from "
        f"{sz['setup_threads']} threads, not with the client); (d) one metric of "
        f"{sz['history_steps']:,} steps (logged with log_batch, {sz['history_chunk']:,} a chunk), "
        f"{sz['history_repeats']} calls. One synchronous client thread; client and raw-HTTP calls "
        f"alternate in blocks of 10, each block after an untimed call on its connection; the servers ran one after the other, each on a fresh {database} database; "
        f"{sz['warmup']} warm-up calls of each kind first. Medians / percentiles of the timed calls.",
        "",
        "Both servers with their default settings: "
        + "; ".join(f"`{shlex.join(r['argv'])}`" for r in results.values() if r.get("argv"))
        + ".",
        "",
    ]
    out += table_lines(rows, md=True)
    out += [
        "",
        "Ratio > 1: twinloop is faster (for throughput: twinloop / mlflow; for times: mlflow / "
        "twinloop). *Raw HTTP* = the same requests with the same JSON bodies sent from a "
        "`requests.Session` (reply parsed with `.json()`), so it leaves out the MLflow client's "
        "own Python work (proto building, entity conversion).",
        "",
        "Where the time goes (client median vs raw-HTTP median; the share is the client's own "
        "Python overhead):",
        "",
    ]
    out += overhead_lines(over, md=True)
    out += ["", "Servers:", ""]
    out += setup_lines(results, md=True)
    busy = load_warning(results, meta)
    if busy:
        out += ["", f"**Note:** {busy}"]
    errs = [(s, w, e) for s, r in results.items() for w, e in r.get("errors", {}).items()]
    if errs:
        out += ["", "Errors:", ""]
        out += [f"- {s} / {w}: `{e}`" for s, w, e in errs]
    return "\n".join(out) + "\n"


def load_warning(results, meta):
    """A sentence when the machine was busy with other work during the run, else None."""
    n = meta["machine"]["nproc"] or 1
    worst = max(
        (max(r["loadavg_before"][0], r["loadavg_after"][0])
         for r in results.values() if "loadavg_after" in r),
        default=0.0,
    )  # fmt: skip
    # One synchronous client plus a server keep about one core busy; more than that is others'.
    if worst > max(1.5, 0.75 * n):
        return (f"the 1-minute load average reached {worst:.1f} on {n} cores during the run, so "
                f"other work shared the machine: the figures are noisy; rerun on a quiet machine.")
    return None


# --------------------------------------------------------------------------------------------
def default_twinloop_bin():
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/twinloop/target")
    return Path(target) / "release" / "twinloop"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["twinloop", "mlflow", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes for a smoke run")
    ap.add_argument("--twinloop-bin", help="twinloop binary (default: $TWINLOOP_BIN, else "
                    "$CARGO_TARGET_DIR or ~/.cache/twinloop/target, release/twinloop)")  # fmt: skip
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    ap.add_argument("--markdown", metavar="FILE", help="write a markdown section here")
    ap.add_argument("--no-save", action="store_true",
                    help="don't write the default bench/results/tracking-<time>.{json,md}")  # fmt: skip
    ap.add_argument("--search-runs", type=int, metavar="N", help="runs for (c)")
    ap.add_argument("--batch-runs", type=int, metavar="N", help="runs for (a)")
    ap.add_argument("--metric-calls", type=int, metavar="N", help="calls for (b)")
    ap.add_argument("--history-steps", type=int, metavar="N", help="steps for (d)")
    ap.add_argument("--search-repeats", type=int, metavar="N", help="timed calls for (c), 100 rows")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for /health")
    ap.add_argument("--workdir", help="where the servers' temporary directories go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the servers' directories and logs")
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--postgres", metavar="URL",
                    help="run both servers on PostgreSQL: a URL of any database of a server the "
                         "bench may CREATE DATABASE on (default: SQLite files)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sz = dict(QUICK if args.quick else FULL)
    for opt, key in (("search_runs", "search_runs"), ("batch_runs", "batch_runs"),
                     ("metric_calls", "metric_calls"), ("history_steps", "history_steps"),
                     ("search_repeats", "search_repeats")):  # fmt: skip
        v = getattr(args, opt)
        if v is not None:
            sz[key] = v
    which = ["mlflow", "twinloop"] if args.only == "both" else [args.only]

    problems = check_bodies()
    if problems:
        print("WARNING: raw-HTTP bodies differ from the client's:", *problems, sep="\n  ")

    tl_bin = None
    if "twinloop" in which:
        tl_bin = Path(args.twinloop_bin or os.environ.get("TWINLOOP_BIN") or default_twinloop_bin())
        if not (tl_bin.is_file() and os.access(tl_bin, os.X_OK)):
            sys.exit(f"twinloop binary not found at {tl_bin} (build it, or pass --twinloop-bin)")
        tl_bin = tl_bin.resolve()

    command = os.environ.get("TWINLOOP_BENCH_CMD") or shlex.join(
        ["python", os.path.relpath(__file__, REPO)] + (sys.argv[1:] if argv is None else argv)
    )
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "quick": args.quick,
        "only": args.only,
        "store": "postgresql" if args.postgres else "sqlite",
        "sizes": sz,
        "seed": args.seed,
        "machine": machine_info(),
        "versions": {
            "mlflow": mlflow.__version__,
            "requests": requests.__version__,
            "urllib3": urllib3.__version__,
            "twinloop": twinloop_version(tl_bin) if tl_bin else "—",
            "git": git_rev(),
        },
        "twinloop_bin": str(tl_bin) if tl_bin else None,
        "body_check": problems or "raw bodies equal the client's encoding",
    }
    print(f"twinloop tracking benchmark — {meta['date']}; sizes: {sz}")
    print(f"machine: {meta['machine']}; store: {meta['store']}")

    results = {}
    base = Path(args.workdir) if args.workdir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    dirs = []
    try:
        for name in which:
            d = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=base))
            dirs.append(d)
            argv_for = (
                mlflow_argv_for(args.postgres)
                if name == "mlflow"
                else twinloop_argv_for(tl_bin, args.postgres)
            )
            server = Server(name, argv_for, d, args.start_timeout)
            try:
                results[name] = bench_server(name, server, sz, args.seed)
            except Exception as e:
                results[name] = {"name": name, "errors": {"start": short_error(e)}, "workloads": {}}
                print(f"\n{name}: {short_error(e)}", flush=True)
            finally:
                server.stop()
    finally:
        _stop_all_servers()
        if args.keep:
            print("kept:", *map(str, dirs))
        else:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)

    rows = build_rows(results)
    over = build_overhead(results)
    print("\nResults (medians; ratio > 1 means twinloop is faster):\n")
    print("\n".join(table_lines(rows, md=False)))
    print("\nClient overhead (client median vs raw-HTTP median):\n")
    print("\n".join(overhead_lines(over, md=False)))
    print("\nServers:\n")
    print("\n".join(setup_lines(results, md=False)))
    print("\nClient requests per phase (census below requests, retries included):")
    return finish_report(
        "tracking", args, meta, results, rows, over, markdown_report,
        quiet=("warmup", "c:setup", "c:warmup", "d:warmup"),
    )


if __name__ == "__main__":
    sys.exit(main())

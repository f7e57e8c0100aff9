#!/usr/bin/env python3
"""Issue 14's targets on raw HTTP, on one twinloop server: each read timed to its last byte, with
no JSON parse in the figure, and the server's own CPU per call beside it.

    cargo build --release -p twinloop-cli
    python3 bench/tracking/targets.py --twinloop-bin PATH [--backend-store-uri postgresql://...]
        [--runs 5000] [--steps 10000] [--versions 10000] [--calls 50] [--batches 300] [--json FILE]

bench/tracking's raw-HTTP figures parse every reply with `requests` + `json` (what a Python
caller pays); a 900 KB search reply costs the client about as long to parse as the server takes
to write it. The targets are the server's, so this script reads each reply as bytes on a kept-
alive connection and also reports the server's CPU per call (user + system of all its threads,
from /proc), which moves least when other work shares the machine.

Shapes (as bench/tracking and bench/registry): search_runs over an experiment of 5,000 runs (5
metrics, 3 params, a tag each), `metrics.m1 > 0.5` ordered by `metrics.m1 DESC`, max_results
100 and 1,000; get-history of a 10,000-step metric; search_model_versions over 10,000 versions of
one model; log_batch of 1,000 metrics (10 keys x 100 steps) into a fresh run each, one client
thread. Standard library only; it measures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

API = "/api/2.0/mlflow/"
HEADERS = {"Content-Type": "application/json"}
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
TARGETS = {
    "search_runs 5,000 runs -> 100 rows": ("<= 10 ms", 10.0),
    "search_runs 5,000 runs -> 1,000 rows": ("<= 30 ms", 30.0),
    "get_metric_history, 10,000 steps": ("<= 10 ms", 10.0),
    "search_model_versions, 10,000 versions": ("<= 30 ms", 30.0),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ms(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


class Client:
    """One kept-alive connection per thread."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        return c

    def call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        try:
            r = self.send(method, path, body)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closes a connection left idle past its keep-alive timeout; a request
            # sent on it then never arrived, so it is sent once more on a new one.
            self.local.conn = None
            r = self.send(method, path, body)
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return data

    def send(self, method: str, path: str, body: bytes | None) -> http.client.HTTPResponse:
        c = self.conn()
        c.request(method, path, body=body, headers=HEADERS if body is not None else {})
        return c.getresponse()

    def post(self, endpoint: str, obj) -> dict:
        return json.loads(self.call("POST", API + endpoint, json.dumps(obj).encode()))


def seed(client: Client, a) -> dict:
    rng = random.Random(20261204)
    exp = client.post("experiments/create", {"name": "targets-search"})["experiment_id"]
    values = [[rng.random() for _ in range(5)] for _ in range(a.runs)]
    now = int(time.time() * 1000)

    def make_run(i):
        run = client.post("runs/create", {"experiment_id": exp, "start_time": now + i})["run"]["info"]["run_id"]
        client.post("runs/log-batch", {
            "run_id": run,
            "metrics": [{"key": f"m{k + 1}", "value": v, "timestamp": now, "step": 0} for k, v in enumerate(values[i])],
            "params": [{"key": f"p{k}", "value": str(rng.randrange(100))} for k in range(3)],
            "tags": [{"key": "bench", "value": "targets"}],
        })

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make_run, range(a.runs)))
    print(f"  {a.runs:,} runs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    hexp = client.post("experiments/create", {"name": "targets-history"})["experiment_id"]
    hrun = client.post("runs/create", {"experiment_id": hexp, "start_time": now})["run"]["info"]["run_id"]
    for lo in range(0, a.steps, 1000):
        client.post("runs/log-batch", {"run_id": hrun, "metrics": [
            {"key": "loss", "value": 1.0 / (1 + s), "timestamp": now + s, "step": s}
            for s in range(lo, min(a.steps, lo + 1000))]})

    client.post("registered-models/create", {"name": "targets-m"})
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.post("model-versions/create", {
            "name": "targets-m", "source": f"mlflow-artifacts:/models/{i}", "run_id": hrun}), range(a.versions)))
    print(f"  {a.versions:,} versions in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return {"exp": exp, "hrun": hrun}


def timed(client: Client, pid: int, calls: int, request) -> dict:
    """`request()` three times untimed, then `calls` times: wall per call and server CPU per call."""
    for _ in range(3):
        request()
    took, size = [], 0
    cpu0 = cpu_ms(pid)
    for _ in range(calls):
        t = time.perf_counter()
        size = len(request())
        took.append((time.perf_counter() - t) * 1e3)
    cpu = (cpu_ms(pid) - cpu0) / calls
    took.sort()
    return {"p50_ms": statistics.median(took), "min_ms": took[0], "p95_ms": took[int(len(took) * 0.95) - 1],
            "server_cpu_ms": cpu, "reply_bytes": size}


def log_batches(client: Client, pid: int, n: int) -> dict:
    rng = random.Random(7)
    exp = client.post("experiments/create", {"name": "targets-log-batch"})["experiment_id"]
    now = int(time.time() * 1000)

    def bodies(count):
        out = []
        for _ in range(count):
            run = client.post("runs/create", {"experiment_id": exp, "start_time": now})["run"]["info"]["run_id"]
            out.append(json.dumps({"run_id": run, "metrics": [
                {"key": f"k{k}", "value": rng.random(), "timestamp": now, "step": s}
                for s in range(100) for k in range(10)]}).encode())
        return out

    for body in bodies(50):
        client.call("POST", API + "runs/log-batch", body)
    timed_bodies = bodies(n)
    took, cpu0 = [], cpu_ms(pid)
    for body in timed_bodies:
        t = time.perf_counter()
        client.call("POST", API + "runs/log-batch", body)
        took.append((time.perf_counter() - t) * 1e3)
    cpu = (cpu_ms(pid) - cpu0) / n
    took.sort()
    return {"metrics_per_s": 1000 * n / (sum(took) / 1e3), "p50_ms": statistics.median(took),
            "p95_ms": took[int(n * 0.95) - 1], "server_cpu_ms": cpu, "metrics_per_s_of_cpu": 1000 * 1000 / cpu}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twinloop-bin", required=True)
    ap.add_argument("--backend-store-uri", help="default: a fresh SQLite file")
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--versions", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--json")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="targets-")
    port = free_port()
    store = a.backend_store_uri or f"sqlite:///{work}/db.sqlite"
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([a.twinloop_bin, "server", "--port", str(port), "--grpc-port", "0",
                               "--backend-store-uri", store, "--default-artifact-root", f"{work}/art"],
                              stdout=log, stderr=subprocess.STDOUT)
    client = Client(port)
    try:
        deadline = time.time() + 60
        while True:
            try:
                client.call("GET", "/health")
                break
            except (OSError, http.client.HTTPException):
                client.local.conn = None
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not answer /health")
                time.sleep(0.1)
        load0 = os.getloadavg()[0]
        ids = seed(client, a)
        search = {"experiment_ids": [ids["exp"]], "filter": "metrics.m1 > 0.5", "order_by": ["metrics.m1 DESC"]}
        history = API + "metrics/get-history?" + urllib.parse.urlencode(
            {"run_id": ids["hrun"], "metric_key": "loss", "max_results": 25000})
        versions = API + "model-versions/search?" + urllib.parse.urlencode(
            {"filter": "name='targets-m'", "max_results": 10000})
        reads = {
            "search_runs 5,000 runs -> 100 rows": lambda: client.call(
                "POST", API + "runs/search", json.dumps({**search, "max_results": 100}).encode()),
            "search_runs 5,000 runs -> 1,000 rows": lambda: client.call(
                "POST", API + "runs/search", json.dumps({**search, "max_results": 1000}).encode()),
            "get_metric_history, 10,000 steps": lambda: client.call("GET", history),
            "search_model_versions, 10,000 versions": lambda: client.call("GET", versions),
        }
        results = {name: timed(client, server.pid, a.calls, req) for name, req in reads.items()}
        lb = log_batches(client, server.pid, a.batches)
        load1 = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    backend = "PostgreSQL" if a.backend_store_uri else "SQLite"
    print(f"issue 14 targets, {backend}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load average {load0:.2f} -> {load1:.2f}, {a.calls} calls a read, "
          f"{a.batches} batches")
    print("| per call | target | wall p50 (min) | server CPU | reply |")
    print("|---|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {TARGETS[name][0]} | {r['p50_ms']:.1f} ({r['min_ms']:.1f}) ms | "
              f"{r['server_cpu_ms']:.1f} ms | {r['reply_bytes'] / 1000:,.0f} KB |")
    print(f"| log_batch, 1,000 metrics | >= 250k metrics/s | {lb['p50_ms']:.2f} ms = {lb['metrics_per_s']:,.0f} "
          f"metrics/s (p95 {lb['p95_ms']:.2f} ms) | {lb['server_cpu_ms']:.2f} ms = "
          f"{lb['metrics_per_s_of_cpu']:,.0f}/s | |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"backend": backend, "reads": results, "log_batch": lb, "load": [load0, load1]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

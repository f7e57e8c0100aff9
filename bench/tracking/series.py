#!/usr/bin/env python3
"""Metric series and a million-step history on one twinloop server (SQLite, or the store given).

Logs one metric of 1,000,000 steps (raw HTTP log-batch, 1,000 a call, a spike at step 654,321),
and the same on a second run with a NaN and an infinite point, then measures:

  * GET /api/twinloop/v1/metrics/series on the whole series at several bucket counts, zooms, on
    the step axis (rollup cells) and the time and relative axes (a walk down the rollup pyramid):
    median wall time of the call from this client on loopback, and the reply's size;
  * the plain-SQL alternative the series endpoint would otherwise be, the spec's GROUP BY over
    the metrics primary key, run by Python's sqlite3 on the server's database file;
  * GET /api/2.0/mlflow/metrics/get-history of all 1,000,000 steps: wall time, reply size and
    the server's peak RSS while serving it (VmHWM reset before the call, Linux only).

Standard library only. Nothing here asserts on a time; it prints what it measured.

    cargo build --release -p twinloop-cli
    python3 bench/tracking/series.py [--twinloop-bin PATH] [--steps N] [--calls N] [--json FILE]
        [--keep] [--backend-store-uri postgresql://...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

SPIKE_STEP = 654_321
T0 = 1_700_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def get_json(self, path: str, params: dict) -> tuple[bytes, float]:
        started = time.perf_counter()
        status, body = self.request("GET", f"{path}?{urllib.parse.urlencode(params)}")
        elapsed = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"GET {path} {params}: {status} {body[:300]!r}")
        return body, elapsed


def status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def spike_step(steps: int) -> int:
    """Step 654,321 as the UI's acceptance test has it, or two thirds in on a shorter series."""
    return SPIKE_STEP if steps > SPIKE_STEP else steps * 2 // 3


def value_at(step: int, spike: int, rng: random.Random) -> float:
    if step == spike:
        return 1e6
    # A training loss: decaying, noisy, full double precision as a client logs it.
    return 1.0 / math.sqrt(step + 1) + rng.gauss(0, 0.01)


def log_series(client: Client, run_id: str, steps: int, non_finite: bool = False) -> float:
    """Logs the series; with `non_finite`, step 1 is NaN and the last step +Infinity (the
    strings "NaN" and "Infinity", as MLflow's client sends them in protobuf's JSON)."""
    rng = random.Random(7)
    spike = spike_step(steps)
    started = time.perf_counter()
    for first in range(0, steps, 1000):
        metrics = [
            {"key": "loss", "value": value_at(s, spike, rng), "timestamp": T0 + s, "step": s}
            for s in range(first, min(first + 1000, steps))
        ]
        if non_finite:
            for m in metrics:
                if m["step"] == 1:
                    m["value"] = "NaN"
                elif m["step"] == steps - 1:
                    m["value"] = "Infinity"
        body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
        status, reply = client.request("POST", "/api/2.0/mlflow/runs/log-batch", body)
        if status != 200:
            raise SystemExit(f"log-batch: {status} {reply[:300]!r}")
    return time.perf_counter() - started


def timed(client: Client, path: str, params: dict, calls: int) -> tuple[float, int, dict]:
    client.get_json(path, params)  # warm-up
    times = []
    body = b""
    for _ in range(calls):
        body, elapsed = client.get_json(path, params)
        times.append(elapsed)
    return statistics.median(times) * 1000, len(body), json.loads(body)


def group_by_ms(db: str, run_id: str, lo: int, hi: int, buckets: int, calls: int) -> float:
    """The spec's first version: GROUP BY bucket over a range scan of the primary key."""
    sql = (
        "SELECT (step - ?) * ? / (? - ? + 1) AS b, MIN(value), MAX(value), COUNT(*), MAX(step) "
        "FROM metrics WHERE run_uuid = ? AND key = 'loss' AND step BETWEEN ? AND ? "
        "AND is_nan = 0 GROUP BY b"
    )
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    args = (lo, buckets, hi, lo, run_id, lo, hi)
    conn.execute(sql, args).fetchall()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        conn.execute(sql, args).fetchall()
        times.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(times) * 1000


def main() -> None:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/twinloop/target"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--twinloop-bin", default=os.environ.get("TWINLOOP_BIN", f"{target}/release/twinloop"))
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory (printed) instead of deleting it")
    parser.add_argument("--backend-store-uri", help="the server's store (default: SQLite in the data directory; the plain-SQL row needs SQLite)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="twinloop-series-")
    db = os.path.join(workdir, "twinloop.db")
    port = free_port()
    server = subprocess.Popen(
        [args.twinloop_bin, "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", args.backend_store_uri or f"sqlite:///{db}",
         "--artifacts-destination", os.path.join(workdir, "artifacts")],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                if Client(port).request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("the server did not become healthy")
            time.sleep(0.1)
        client = Client(port)
        status, reply = client.request(
            "POST", "/api/2.0/mlflow/runs/create", json.dumps({"experiment_id": "0"}).encode()
        )
        run_id = json.loads(reply)["run"]["info"]["run_id"]
        log_s = log_series(client, run_id, args.steps)
        results: dict = {
            "steps": args.steps,
            "log_batch_metrics_per_s": args.steps / log_s,
        }
        print(f"logged {args.steps:,} steps in {log_s:.1f} s ({args.steps / log_s:,.0f} metrics/s, raw HTTP, one client)")
        # The same series with a NaN and an infinite point: its time extent counts them too.
        status, reply = client.request(
            "POST", "/api/2.0/mlflow/runs/create", json.dumps({"experiment_id": "0"}).encode()
        )
        nan_run = json.loads(reply)["run"]["info"]["run_id"]
        log_series(client, nan_run, args.steps, non_finite=True)

        series = "/api/twinloop/v1/metrics/series"
        rows = []
        for label, params in [
            ("whole series, 1,000 buckets", {"buckets": 1000}),
            ("whole series, 2,000 buckets", {"buckets": 2000}),
            ("whole series, 4,000 buckets", {"buckets": 4000}),
            ("zoom 650,000-660,000, 1,000 buckets", {"buckets": 1000, "from": 650_000, "to": 660_000}),
            ("zoom 650,000-652,000, 4,000 buckets (raw)", {"buckets": 4000, "from": 650_000, "to": 652_000}),
            ("time axis, whole series, 1,000 buckets", {"buckets": 1000, "x": "time"}),
            ("time axis, whole series, 4,000 buckets", {"buckets": 4000, "x": "time"}),
            ("relative axis, whole series, 1,000 buckets", {"buckets": 1000, "x": "relative"}),
            ("time zoom 650,000-660,000 ms, 1,000 buckets",
             {"buckets": 1000, "x": "time", "from": T0 + 650_000, "to": T0 + 660_000}),
            ("time zoom 650,000-652,000 ms, 4,000 buckets (raw)",
             {"buckets": 4000, "x": "time", "from": T0 + 650_000, "to": T0 + 652_000}),
            ("time axis, whole series with NaN and +Inf points, 1,000 buckets",
             {"buckets": 1000, "x": "time", "run_ids": nan_run}),
            ("relative axis, whole series with NaN and +Inf points, 1,000 buckets",
             {"buckets": 1000, "x": "relative", "run_ids": nan_run}),
        ]:
            ms, size, answer = timed(client, series, {"run_ids": run_id, "key": "loss", **params}, args.calls)
            run = answer["runs"][0]
            shape = f"{len(run['points']['x'])} raw points" if run["raw"] else f"{len(run['buckets']['count'])} buckets"
            if not run["raw"] and "from" not in params:
                b = run["buckets"]
                # Each point's timestamp is T0 + its step.
                spike = spike_step(args.steps) + {"step": 0, "time": T0, "relative": 0}[params.get("x", "step")]
                i = max(i for i, n in enumerate(b["index"]) if answer["origin"] + n * answer["bucket_width"] <= spike)
                assert b["max"][i] == 1e6, "the spike is inside its bucket's band"
                assert sum(b["count"]) == args.steps - 2 * (params.get("run_ids") == nan_run)
            rows.append((label, ms, size, shape))
            results[label] = {"p50_ms": ms, "bytes": size, "shape": shape}

        if not args.backend_store_uri:
            gb_ms = group_by_ms(db, run_id, 0, args.steps - 1, 1000, max(3, args.calls // 4))
            results["plain SQL GROUP BY over the range, 1,000 buckets (sqlite3)"] = {"p50_ms": gb_ms}
            rows.append(("plain SQL GROUP BY over the range, 1,000 buckets (sqlite3, no HTTP)", gb_ms, 0, ""))

        pid = server.pid
        before = status_kib(pid, "VmRSS")
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            reset = True
        except OSError:
            reset = False
        started = time.perf_counter()
        body, _ = client.get_json(
            "/api/2.0/mlflow/metrics/get-history", {"run_id": run_id, "metric_key": "loss"}
        )
        history_s = time.perf_counter() - started
        peak = status_kib(pid, "VmHWM") if reset else None
        count = body.count(b'"step":')
        results["get-history"] = {
            "seconds": history_s, "bytes": len(body), "points": count,
            "rss_before_kib": before, "peak_rss_kib": peak,
        }
        rows.append(("get-history, all steps", history_s * 1000, len(body), f"{count:,} points"))

        print()
        print(f"{'call':<62} {'p50 ms':>9} {'bytes':>11}  answer")
        for label, ms, size, shape in rows:
            print(f"{label:<62} {ms:>9.1f} {size:>11,}  {shape}")
        if peak is not None and before is not None:
            print(f"\nserver RSS {before / 1024:.1f} MiB before get-history, peak {peak / 1024:.1f} MiB while serving it (+{(peak - before) / 1024:.1f} MiB)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        # A million points leave about 80 MB of database behind.
        if args.keep:
            print(f"data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

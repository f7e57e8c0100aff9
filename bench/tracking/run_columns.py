#!/usr/bin/env python3
"""The runs table's column reads on twinloop alone (MLflow has no counterpart):
GET /api/twinloop/v1/experiments/{id}/keys over an experiment with 12,000 metric keys, and
GET /api/twinloop/v1/metrics/summaries for every run and key of it.

    python3 bench/tracking/run_columns.py --twinloop-bin ~/.cache/twinloop/target/release/twinloop
    python3 bench/tracking/run_columns.py --keys 12000 --runs 20 --repeat 50

Starts its own server (SQLite, fresh temporary directory), seeds it through MLflow's REST API
(log-batch of 1,000 metrics) and reports p50 / p95 per read. It measures; it asserts nothing
about time. Needs only `requests`.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, workdir):
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "wb")
    proc = subprocess.Popen(
        [binary, "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir}/twinloop.db",
         "--artifacts-destination", f"{workdir}/artifacts"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    sys.exit("twinloop did not become healthy; see server.log")


def seed(s, url, keys, runs):
    mlflow = f"{url}/api/2.0/mlflow"
    exp = s.post(f"{mlflow}/experiments/create", json={"name": "run-columns"}).json()["experiment_id"]
    run_ids = []
    names = [f"layer{k // 100:03d}/metric_{k:05d}" for k in range(keys)]
    for r in range(runs):
        run = s.post(f"{mlflow}/runs/create", json={"experiment_id": exp, "start_time": r}).json()
        run_id = run["run"]["info"]["run_id"]
        # Every run has the first half of the keys, and every other run the rest too, so the
        # counts differ and the order by count means something.
        mine = names if r % 2 == 0 else names[: keys // 2]
        for i in range(0, len(mine), 1000):
            metrics = [{"key": k, "value": (r + 1) * 0.5, "timestamp": 1, "step": 0}
                       for k in mine[i:i + 1000]]
            s.post(f"{mlflow}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}).raise_for_status()
        run_ids.append(run_id)
    return exp, run_ids


def measure(s, url, repeat):
    def p(values, q):
        return sorted(values)[min(len(values) - 1, int(q * len(values)))]

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = s.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return statistics.median(times), p(times, 0.95), len(r.content)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twinloop-bin", default=os.path.expanduser("~/.cache/twinloop/target/release/twinloop"))
    ap.add_argument("--keys", type=int, default=12000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start(args.twinloop_bin, workdir)
        try:
            s = requests.Session()
            t0 = time.perf_counter()
            exp, run_ids = seed(s, url, args.keys, args.runs)
            print(f"seeded {args.keys} metric keys over {args.runs} runs in {time.perf_counter() - t0:.1f} s")
            native = f"{url}/api/twinloop/v1"
            reads = [
                ("keys, all (limit 1000)", f"{native}/experiments/{exp}/keys?kind=metric&limit=1000"),
                ("keys, all (limit 50000)", f"{native}/experiments/{exp}/keys?kind=metric&limit=50000"),
                ("keys, q=metric_0 (picker search)", f"{native}/experiments/{exp}/keys?kind=metric&q=metric_0&limit=100"),
                ("keys, q=LAYER119 (case-insensitive)", f"{native}/experiments/{exp}/keys?kind=metric&q=LAYER119&limit=100"),
                ("keys, q=nothing-matches", f"{native}/experiments/{exp}/keys?kind=metric&q=zzz&limit=100"),
                ("summaries, all runs x 10 keys",
                 f"{native}/metrics/summaries?run_ids={','.join(run_ids)}&keys="
                 + ",".join(f"layer000/metric_{k:05d}" for k in range(10))),
                ("summaries, 1 run x all keys", f"{native}/metrics/summaries?run_ids={run_ids[0]}"),
            ]
            print(f"{'read':40} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>10}")
            for name, read in reads:
                p50, p95, size = measure(s, read, args.repeat)
                print(f"{name:40} {p50:8.2f} {p95:8.2f} {size:10d}")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    main()

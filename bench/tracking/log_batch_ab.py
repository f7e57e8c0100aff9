"""log_batch A/B: two or more twinloop binaries, rounds interleaved, on bench/tracking's (a) shape.

usage: python3 bench/tracking/log_batch_ab.py [--rounds R] [--batches N] LABEL=BINARY ...

Each round starts every binary in turn on a fresh SQLite store, sends 200 untimed batches, then
N timed ones from one thread (raw HTTP, 1,000 metrics a batch: 10 keys x 100 steps, a run each),
and prints metrics/s, the median and p95 per batch, and the server's CPU per batch read from
/proc (user + system, all threads). Interleaving rounds spreads the machine's noise over every
binary; compare the CPU per batch first, it moves least with load.
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import time

import requests

HEADERS = {"Content-Type": "application/json"}
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def batches(session, api, n, seed):
    exp = session.post(api + "experiments/create", data=json.dumps({"name": f"ab-{time.time()}"}),
                       headers=HEADERS).json()["experiment_id"]
    rng, ts, bodies = random.Random(seed), int(time.time() * 1000), []
    for _ in range(n):
        run = session.post(api + "runs/create", data=json.dumps({"experiment_id": exp, "start_time": ts}),
                           headers=HEADERS).json()["run"]["info"]["run_id"]
        metrics = [{"key": f"k{k}", "value": rng.random(), "timestamp": ts, "step": s}
                   for s in range(100) for k in range(10)]
        bodies.append(json.dumps({"run_id": run, "metrics": metrics}))
    return bodies


def one(binary, n, seed):
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        server = subprocess.Popen(
            [binary, "server", "--port", str(port), "--grpc-port", "0",
             "--backend-store-uri", f"sqlite:///{d}/db.sqlite", "--default-artifact-root", f"{d}/art"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    if requests.get(url + "/health", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            session, api = requests.Session(), url + "/api/2.0/mlflow/"
            for body in batches(session, api, 200, seed):
                session.post(api + "runs/log-batch", data=body, headers=HEADERS).raise_for_status()
            timed = batches(session, api, n, seed + 1)
            took, cpu0 = [], cpu_ms(server.pid)
            for body in timed:
                t = time.perf_counter()
                session.post(api + "runs/log-batch", data=body, headers=HEADERS).raise_for_status()
                took.append(time.perf_counter() - t)
            cpu = (cpu_ms(server.pid) - cpu0) / n
        finally:
            server.terminate()
            server.wait()
    took.sort()
    return 1000 * n / sum(took), took[n // 2] * 1e3, took[int(n * 0.95)] * 1e3, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("binaries", nargs="+", metavar="LABEL=BINARY")
    a = ap.parse_args()
    pairs = [b.split("=", 1) for b in a.binaries]
    results = {label: [] for label, _ in pairs}
    for r in range(a.rounds):
        for label, binary in pairs:
            got = one(binary, a.batches, 20261204 + r)
            results[label].append(got)
            print(f"round {r + 1} {label}: {got[0]:,.0f} metrics/s, median {got[1]:.2f} ms, "
                  f"p95 {got[2]:.2f} ms, server CPU {got[3]:.2f} ms/batch", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    print("| binary | metrics/s (median of rounds) | median per batch | p95 per batch | server CPU per batch |")
    print("|---|---:|---:|---:|---:|")
    for label, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"| {label} | {med[0]:,.0f} | {med[1]:.2f} ms | {med[2]:.2f} ms | {med[3]:.2f} ms |")


if __name__ == "__main__":
    main()

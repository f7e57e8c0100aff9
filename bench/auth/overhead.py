#!/usr/bin/env python3
"""Auth overhead on log-batch throughput (issue 15): the same load against three twinloop
servers, one without --auth, one with --auth signed in by Basic (password) and one by a token.

All three run at once, each on its own SQLite database, and the load alternates between them
in blocks, so a machine whose load drifts (a shared one) slows all three alike. Each request is
`runs/log-batch` of --batch metrics to a run of its own, from --threads threads, over HTTP
keep-alive, as the stock client sends it. Prints metrics/s per mode and the ratio to no auth.

    python3 bench/auth/overhead.py [--binary PATH] [--batches 300] [--batch 1000] [--threads 4]

The binary defaults to the release build in $CARGO_TARGET_DIR (or ~/.cache/twinloop/target),
else the debug one. Needs only `requests`.
"""

import argparse
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ADMIN_PASSWORD = "bench-admin-pw"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_binary():
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/twinloop/target"))
    for profile in ("release", "debug"):
        path = target / profile / "twinloop"
        if path.exists():
            return str(path)
    sys.exit("no twinloop binary: build one or pass --binary")


class Server:
    def __init__(self, binary, mode, workdir):
        self.mode = mode
        self.dir = Path(workdir) / mode
        self.dir.mkdir()
        self.store = f"sqlite:///{self.dir}/db.sqlite"
        self.url = f"http://127.0.0.1:{free_port()}"
        argv = [binary, "server", "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1],
                "--backend-store-uri", self.store, "--artifacts-destination", str(self.dir / "a")]
        if mode != "none":
            argv.append("--auth")
        env = {**os.environ, "TWINLOOP_ADMIN_PASSWORD": ADMIN_PASSWORD}
        self.log = open(self.dir / "server.log", "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.binary = binary
        self.headers = {"Content-Type": "application/json"}

    def wait(self):
        for _ in range(600):
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            sys.exit(f"{self.mode}: server did not start; see {self.dir}/server.log")
        if self.mode == "basic":
            creds = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
            self.headers["Authorization"] = f"Basic {creds}"
        elif self.mode == "token":
            token = subprocess.run(
                [self.binary, "auth", "--backend-store-uri", self.store, "token", "create",
                 "--user", "admin", "--scope", "write"],
                capture_output=True, text=True, check=True).stdout.strip()
            self.headers["Authorization"] = f"Bearer {token}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


local = threading.local()


def session():
    if not hasattr(local, "s"):
        local.s = requests.Session()
    return local.s


def post(server, path, body):
    r = session().post(f"{server.url}/api/2.0/mlflow/{path}", json=body, headers=server.headers)
    if not r.ok:
        raise RuntimeError(f"{server.mode} {path}: {r.status_code} {r.text[:200]}")
    return r.json()


def prepare(server, runs):
    exp = post(server, "experiments/create", {"name": f"auth-bench-{time.time_ns()}"})
    ids = [post(server, "runs/create", {"experiment_id": exp["experiment_id"], "start_time": 0})
           ["run"]["info"]["run_id"] for _ in range(runs)]
    return ids


def batch_body(run_id, size, step):
    ts = int(time.time() * 1000)
    return {"run_id": run_id,
            "metrics": [{"key": f"m{i}", "value": i * 0.5, "timestamp": ts, "step": step}
                        for i in range(size)]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=None)
    ap.add_argument("--batches", type=int, default=300, help="log-batch requests per mode")
    ap.add_argument("--batch", type=int, default=1000, help="metrics per request")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--block", type=int, default=20, help="requests per mode before switching")
    args = ap.parse_args()
    binary = args.binary or default_binary()
    workdir = tempfile.mkdtemp(prefix="tl-auth-bench-")
    servers = [Server(binary, m, workdir) for m in ("none", "basic", "token")]
    try:
        for s in servers:
            s.wait()
        runs = {s.mode: prepare(s, args.batches) for s in servers}
        bodies = {s.mode: [batch_body(r, args.batch, 0) for r in runs[s.mode]] for s in servers}
        # Warm-up: connections, caches (the password's Argon2 check happens once here).
        for s in servers:
            for i in range(min(10, args.batches)):
                post(s, "runs/log-batch", batch_body(runs[s.mode][i], args.batch, 1))
        spent = {s.mode: 0.0 for s in servers}
        with ThreadPoolExecutor(args.threads) as pool:
            for start in range(0, args.batches, args.block):
                for s in servers:
                    chunk = bodies[s.mode][start:start + args.block]
                    t0 = time.perf_counter()
                    list(pool.map(lambda b, s=s: post(s, "runs/log-batch", b), chunk))
                    spent[s.mode] += time.perf_counter() - t0
        total = args.batches * args.batch
        base = total / spent["none"]
        print(f"binary {binary}; {args.batches} log-batch x {args.batch} metrics per mode, "
              f"{args.threads} threads, blocks of {args.block}")
        print(f"{'mode':<8}{'metrics/s':>12}{'vs none':>10}")
        for s in servers:
            rate = total / spent[s.mode]
            print(f"{s.mode:<8}{rate:>12,.0f}{rate / base:>10.3f}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

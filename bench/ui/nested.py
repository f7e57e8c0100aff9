"""The runs table's tree of nested runs in a large view, on one twinloop server (SQLite).

    python3 bench/ui/nested.py TWINLOOP_BINARY RUNS

Writes RUNS runs straight into the store (tests/compat/ui_seed.py), every run whose index is not
a multiple of 10 a child of the one that is (RUNS / 10 families), then asks for the first window
of the view (which takes the snapshot of its order and tree) and a window 50,000 rows in with a
parent expanded, in the default order and sorted by a metric, and prints each time and the
server's RSS after it. It measures; it asserts nothing about time. Standard library only.
"""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "compat"))
import ui_seed  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    d = tempfile.mkdtemp(prefix="nested-")
    base = f"http://127.0.0.1:{free_port()}"
    srv = subprocess.Popen(
        [binary, "server", "--port", base.rsplit(":", 1)[1], "--grpc-port", "0",
         "--backend-store-uri", f"sqlite:///{d}/db.sqlite", "--default-artifact-root", f"{d}/art"],
        stdout=open(os.path.join(d, "server.log"), "w"), stderr=subprocess.STDOUT)

    def get(path):
        t = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=600) as r:
            body, headers = r.read(), dict(r.headers)
        return (time.perf_counter() - t) * 1e3, body, headers

    def rss():
        for line in open(f"/proc/{srv.pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024

    try:
        for _ in range(100):
            try:
                get("/health")
                break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(base + "/api/2.0/mlflow/experiments/create",
                                     data=json.dumps({"name": "nested"}).encode(),
                                     headers={"Content-Type": "application/json"})
        exp = json.load(urllib.request.urlopen(req))["experiment_id"]
        t = time.perf_counter()
        ids = ui_seed.seed_twinloop(f"{d}/db.sqlite", exp, n, params=lambda i: {"optimizer": ("adam", "sgd")[i % 2]},
                                    metrics=lambda i: {"loss": 1.0 / (1 + i % 997)})
        con = sqlite3.connect(f"{d}/db.sqlite", timeout=120)
        with con:
            con.executemany("INSERT INTO tags (run_uuid, key, value) VALUES (?, 'mlflow.parentRunId', ?)",
                            ((ids[i], ids[i - i % 10]) for i in range(n) if i % 10))
        con.close()
        print(f"seeded {n:,} runs ({n // 10:,} parents of 9 children) in {time.perf_counter() - t:.0f} s; "
              f"rss {rss()} MiB")
        deep = min(50_000, n // 20)
        for label, order in (("default order", ""), ("sorted by loss", "&order=metrics.%60loss%60%20DESC")):
            ms, _, h = get(f"/experiments/{exp}/rows?offset=0&limit=50&snap=new{order}")
            snap, total = h.get("x-rows-snapshot"), h.get("x-rows-total")
            print(f"{label}: first window {ms:.0f} ms (snapshot {snap}, {total} rows), rss {rss()} MiB")
            parent = ids[(n // 2) // 10 * 10]
            ms, body, h = get(f"/experiments/{exp}/rows?offset={deep}&limit=50&snap={snap}&expand={parent}{order}")
            print(f"{label}: window at {deep:,} from the snapshot, a parent expanded {ms:.0f} ms "
                  f"({h.get('x-rows-total')} rows, {body.count(b'<tr')} <tr>), rss {rss()} MiB")
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()

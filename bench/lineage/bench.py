#!/usr/bin/env python3
"""Lineage walks on a 100k-node graph: twinloop's /api/twinloop/v1/lineage/graph.

No peer serves this API, so this measures twinloop alone. The graph is written straight into a
fresh SQLite store (the API would take minutes for 100k nodes): a chain of `--levels` pipeline
steps, each reading the previous level's artifacts and writing `--width` new ones, plus one
extra input per step from an older level so walks meet shared ancestors.

    python3 bench/lineage/bench.py --twinloop-bin PATH [--levels 500] [--width 100]
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def build(db_path, levels, width):
    con = sqlite3.connect(db_path)
    now = int(time.time() * 1000)
    artifacts, executions, events = [], [], []
    art_id = exe_id = 0
    previous = []
    for level in range(levels):
        exe_id += 1
        executions.append((exe_id, "step", f"step-{level}", f"step:{level}", "{}", now))
        for a in previous:
            events.append((a, exe_id, "INPUT", now))
        if level > 10:
            events.append((random.randint(1, art_id - width * 5), exe_id, "INPUT", now))
        current = []
        for i in range(width):
            art_id += 1
            artifacts.append((art_id, "dataset", f"d-{level}-{i}", f"ds:{level}/{i}", "{}", now))
            events.append((art_id, exe_id, "OUTPUT", now))
            current.append(art_id)
        previous = current[:3]
    con.executemany(
        "INSERT INTO lineage_artifacts (id, type, name, external_id, properties, create_time) VALUES (?,?,?,?,?,?)",
        artifacts,
    )
    con.executemany(
        "INSERT INTO lineage_executions (id, type, name, external_id, properties, create_time) VALUES (?,?,?,?,?,?)",
        executions,
    )
    con.executemany("INSERT OR IGNORE INTO lineage_events VALUES (?,?,?,?)", events)
    con.commit()
    con.close()
    return len(artifacts) + len(executions), len(events)


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--twinloop-bin", required=True)
    p.add_argument("--levels", type=int, default=990)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="bench-lineage-")
    db = os.path.join(work, "twinloop.db")
    port = 5000 + random.randint(1000, 20000)
    cmd = [args.twinloop_bin, "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{db}",
           "--artifacts-destination", os.path.join(work, "artifacts")]
    # First start creates the schema; stop, fill, start again.
    for phase in ("schema", "bench"):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            if phase == "schema":
                proc.terminate()
                proc.wait(timeout=30)
                nodes, edges = build(db, args.levels, args.width)
                continue
            print(f"graph: {nodes:,} nodes, {edges:,} edges ({args.levels} levels x {args.width})")
            top = args.levels - 1
            cases = [
                ("upstream, depth 10, from the newest artifact", f"ds:{top}/0", "upstream", 10),
                ("upstream, depth 100", f"ds:{top}/0", "upstream", 100),
                ("downstream, depth 10, from an early artifact", "ds:5/0", "downstream", 10),
                ("both, depth 4, from a middle step", f"step:{top // 2}", "both", 4),
            ]
            print(f"{'walk':<48} {'nodes':>7} {'edges':>7} {'p50 ms':>8} {'p95 ms':>8}")
            for label, node, direction, depth in cases:
                url = f"{base}/api/twinloop/v1/lineage/graph?node={node}&direction={direction}&depth={depth}"
                times, graph = [], None
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    graph = get(url)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(f"{label:<48} {len(graph['nodes']):>7} {len(graph['edges']):>7} "
                      f"{statistics.median(times):>8.1f} {p95:>8.1f}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

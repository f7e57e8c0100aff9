#!/usr/bin/env python3
"""The point-in-time join on Spark beside the embedded engine and DuckDB, on the feature
benchmark's data, with the Spark output checked against the embedded one row by row.

  python bench/features/spark.py --twinloop BIN --spark-submit SPARK_SUBMIT \
      [--embedded-twinloop BIN] [--duckdb-python PY] [--scale medium] [--repeat 3] \
      [--data-dir DIR] [--workdir DIR]

Run it with a Python that has pyarrow and numpy (the compat venv, which also has pyspark):
the data come from gen_data.py (cached per scale in ~/.cache/twinloop/bench-features-data), the
twinloop repo is bench/features/repo/twinloop.yaml next to a `data/` link. Each run is a child
process timed from start to exit; peak memory is the largest single process of its tree
(wait4's ru_maxrss: twinloop, or Spark's JVM). Tools are interleaved; the median is reported.
DuckDB runs `peers.py duckdb` with --duckdb-python (a Python with duckdb) when given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "customer_profile:current_balance",
    "customer_profile:avg_passenger_count",
    "customer_profile:lifetime_trip_count",
]


def timed(cmd, env=None, log=None):
    """Wall seconds and the peak RSS (MiB) of the largest process of the child's tree."""
    start = time.perf_counter()
    with open(log or os.devnull, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(map(str, cmd))}; see {log}")
    return wall, usage.ru_maxrss / 1024


def differences(a_path, b_path):
    """(rows, per-column count of differing cells, examples); same schema required."""
    a, b = pq.read_table(a_path), pq.read_table(b_path)
    if a.schema != b.schema:
        sys.exit(f"schemas differ:\n{a.schema}\n---\n{b.schema}")
    if a.num_rows != b.num_rows:
        sys.exit(f"{a.num_rows} rows against {b.num_rows}")
    diffs, examples = {}, []
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        bad = [i for i, (p, q) in enumerate(zip(x, y)) if p != q]
        diffs[name] = len(bad)
        examples += [(name, i, x[i], y[i]) for i in bad[:3]]
    return a.num_rows, diffs, examples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twinloop", required=True)
    ap.add_argument("--embedded-twinloop", help="the binary for the embedded runs (default: --twinloop)")
    ap.add_argument("--spark-submit", required=True)
    ap.add_argument("--duckdb-python")
    ap.add_argument("--scale", default="medium")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data-dir", default=str(Path.home() / ".cache/twinloop/bench-features-data"))
    ap.add_argument("--workdir")
    a = ap.parse_args(argv)

    sys.path.insert(0, str(HERE))
    import gen_data

    data = Path(a.data_dir) / f"{a.scale}-seed42-v{gen_data.GEN_VERSION}"
    if not (data / "meta.json").exists():
        subprocess.run([sys.executable, HERE / "gen_data.py", "--scale", a.scale, "--out", data], check=True)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "runs.log"
    entities = str(data / "entities.parquet")
    spark_env = dict(os.environ, TWINLOOP_SPARK_SUBMIT=a.spark_submit)

    def applied_repo(name, binary):
        """A repo applied by `binary` (each build keeps its own registry: migrations differ)."""
        repo = work / name
        if repo.exists():
            shutil.rmtree(repo)
        repo.mkdir()
        shutil.copy(HERE / "repo/twinloop.yaml", repo / "twinloop.yaml")
        (repo / "data").symlink_to(data)
        timed([binary, "features", "--repo", str(repo), "apply"], log=log)
        return repo

    def get_historical(binary, repo, out, *extra):
        return [binary, "features", "--repo", str(repo), "get-historical", "--entities", entities,
                "--features", ",".join(FEATURES), "--output", str(work / out), *extra]  # fmt: skip

    # The repo names no offline_store, so the embedded engine is the default: any build runs it.
    embedded = a.embedded_twinloop or a.twinloop
    repo = applied_repo("twinloop-repo", a.twinloop)
    embedded_repo = repo if embedded == a.twinloop else applied_repo("embedded-repo", embedded)
    tools = {
        "twinloop embedded": (get_historical(embedded, embedded_repo, "embedded.parquet"), None),
        "twinloop --engine spark": (
            get_historical(a.twinloop, repo, "spark.parquet", "--engine", "spark"),
            spark_env,
        ),
    }
    if a.duckdb_python:
        tools["duckdb ASOF JOIN"] = (
            [a.duckdb_python, str(HERE / "peers.py"), "duckdb", "--data", str(data),
             "--entities", entities, "--out", str(work / "duckdb.parquet")],  # fmt: skip
            None,
        )
    results = {name: [] for name in tools}
    for _ in range(a.repeat):
        for name, (cmd, env) in tools.items():
            results[name].append(timed(cmd, env=env, log=log))

    rows, diffs, examples = differences(work / "embedded.parquet", work / "spark.parquet")
    print("| tool | median wall | runs | peak RSS (largest process) |")
    print("|---|---:|---|---:|")
    for name, runs in results.items():
        walls = [w for w, _ in runs]
        print(f"| {name} | {statistics.median(walls):.2f} s | "
              f"{', '.join(f'{w:.2f}' for w in walls)} | {max(m for _, m in runs):.0f} MiB |")  # fmt: skip
    differing = sum(diffs.values())
    print(f"\nSpark against embedded: {rows} rows x {len(diffs)} columns, {differing} cells differ")
    for name, i, x, y in examples:
        print(f"  {name} row {i}: embedded {x!r}, spark {y!r}")
    print(f"(work dir {work}, logs in {log})")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Feature-store benchmark: twinloop against DuckDB and Feast (duckdb offline store), in one run.

For each scale (gen_data.py: small ~10k+2k source rows / 1k entity rows, medium ~1M+200k / 100k,
large ~10M+2M / 1M):

  1. Point-in-time join, file to file, each tool in its own child process (wall time and peak RSS
     of the process tree):
       twinloop  `twinloop features get-historical --repo R --entities E --features ... --output O`
       duckdb    the `duckdb_asof` query (peers.py duckdb): ASOF JOIN on {ts, created}, TTL after
       feast     FeatureStore.get_historical_features(...).to_arrow() on the duckdb offline store
  2. Correctness (small and medium; --check-scales): twinloop's output against duckdb's row by row
     (by row_id; twinloop keeps input order, so row i must be row_id i), and Feast's against
     duckdb's. At small a brute-force pandas reference checks the duckdb query itself.
  3. Materialization: `twinloop features --repo R materialize START END` into the embedded store
     against `feast materialize START END` into sqlite (Feast at small and medium by default;
     --feast-materialize-large adds large, ~2 min).
  4. Online serving (--serve-scale, medium): the sources moved forward in time so that they end
     now (twinloop applies the TTL on reads, Feast does not), applied and materialized by both;
     `twinloop features serve` against `feast serve -w 1 --max-requests 0 --no-access-log`, POST
     /get-online-features with Feast's JSON; sequential keep-alive latency p50/p99 for 1 and 100
     entity rows, and `wrk` throughput (8 connections, 10 s) for both sizes. Online values are
     checked against the latest source row per key and between the two servers.

Nothing here asserts on a time; the report says which of the issue's targets were met.
See README.md beside this file.
"""

from __future__ import annotations

import os

os.environ.setdefault("FEAST_USAGE", "False")
os.environ.setdefault("DO_NOT_TRACK", "true")

import argparse
import datetime
import http.client
import json
import math
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import gen_data  # noqa: E402
from peers import FEATURES, VIEWS  # noqa: E402

PY = sys.executable
VENV_BIN = Path(sys.executable).parent
FEAST_EXE = str(VENV_BIN / "feast")
MAT_START, MAT_END = "2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"
FEAT_COLS = [f.split(":", 1)[1] for f in FEATURES]
FLOAT_COLS = {"conv_rate", "acc_rate", "current_balance", "avg_passenger_count"}
ENTITY_COLS = ["row_id", "driver_id", "customer_id", "event_timestamp", "label"]


# --------------------------------------------------------------------------------------------
# Child processes: wall time and peak memory
# --------------------------------------------------------------------------------------------
def _set_pdeathsig():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def tree_rss(proc: psutil.Process):
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(argv, cwd=None, env=None, timeout=3600, log=None):
    """Runs argv as a child; returns wall_s, peak_rss_mb (max of the tree's summed RSS, polled
    every 20 ms, and the kernel's ru_maxrss from wait4), rc, stdout, stderr."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_f,
                         stderr=err_f, preexec_fn=_set_pdeathsig)  # fmt: skip
    peak = [0]
    done = threading.Event()

    def poll():
        try:
            pp = psutil.Process(p.pid)
        except psutil.Error:
            return
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(pp))
            done.wait(0.02)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    timer = threading.Timer(timeout, lambda: p.kill())
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0), err_f.seek(0)
    stdout = out_f.read().decode(errors="replace")
    stderr = err_f.read().decode(errors="replace")
    if log:
        Path(log).write_text(f"$ {shlex.join(map(str, argv))}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return {
        "wall_s": wall,
        "peak_rss_mb": max(peak[0], ru.ru_maxrss * 1024) / 2**20,
        "rc": p.returncode,
        "stdout": stdout,
        "stderr": stderr,
    }


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return {}


def tail(text, n=15):
    return "\n".join(text.strip().splitlines()[-n:])


class ToolError(RuntimeError):
    pass


def check_rc(name, r):
    if r["rc"] != 0:
        raise ToolError(f"{name} exited with {r['rc']}: {tail(r['stderr'] or r['stdout'])}")


# --------------------------------------------------------------------------------------------
# Data and repositories
# --------------------------------------------------------------------------------------------
def ensure_data(data_root: Path, scale, seed):
    d = data_root / f"{scale}-seed{seed}-v{gen_data.GEN_VERSION}"
    meta = d / "meta.json"
    if meta.exists():
        return d, json.loads(meta.read_text())
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"   generating {scale} data into {d} …", flush=True)
    r = run_measured([PY, str(HERE / "gen_data.py"), "--scale", scale, "--out", str(tmp),
                      "--seed", str(seed)])  # fmt: skip
    check_rc("gen_data", r)
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    print("   " + r["stdout"].strip().replace(str(tmp), str(d)), flush=True)
    return d, json.loads(meta.read_text())


def make_twinloop_repo(work: Path, data: Path):
    repo = work / "twinloop-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    shutil.copy(HERE / "repo" / "twinloop.yaml", repo / "twinloop.yaml")
    (repo / "data").symlink_to(data)
    return repo


def twinloop_apply(ctx):
    """`twinloop features apply` records the definitions in the repo's default registry
    (sqlite in DIR/.twinloop/registry.db); get-historical and materialize need it."""
    argv = [str(ctx["tl_bin"]), "features", "apply", "--repo", str(ctx["tl_repo"])]
    r = run_measured(argv, timeout=600, log=ctx["work"] / "twinloop-apply.log")
    check_rc("twinloop features apply", r)
    return r["wall_s"]


def feast_env(data: Path):
    env = dict(os.environ)
    env.update(FEAST_USAGE="False", DO_NOT_TRACK="true", FEAST_BENCH_DATA=str(data),
               PYTHONWARNINGS="ignore")  # fmt: skip
    return env


def make_feast_repo(work: Path, data: Path):
    repo = work / "feast-repo"
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "data").mkdir(parents=True)
    shutil.copy(HERE / "repo" / "feature_store.yaml", repo / "feature_store.yaml")
    shutil.copy(HERE / "repo" / "feast_repo.py", repo / "feast_repo.py")
    r = run_measured([FEAST_EXE, "apply"], cwd=repo, env=feast_env(data), timeout=600,
                     log=work / "feast-apply.log")  # fmt: skip
    check_rc("feast apply", r)
    return repo, r["wall_s"]


# --------------------------------------------------------------------------------------------
# 1. Point-in-time join
# --------------------------------------------------------------------------------------------
def twinloop_pit_argv(tl_bin, repo, ent, out):
    return [str(tl_bin), "features", "get-historical", "--repo", str(repo), "--entities", str(ent),
            "--features", ",".join(FEATURES), "--output", str(out)]  # fmt: skip


def pit_run(tool, ctx, out):
    ent = ctx["data"] / "entities.parquet"
    if out.exists():
        out.unlink()
    if tool == "twinloop":
        argv = twinloop_pit_argv(ctx["tl_bin"], ctx["tl_repo"], ent, out)
        env = None
    elif tool == "duckdb":
        argv = [PY, str(HERE / "peers.py"), "duckdb", "--data", str(ctx["data"]), "--entities",
                str(ent), "--out", str(out)]  # fmt: skip
        env = None
    else:
        argv = [PY, str(HERE / "peers.py"), "feast", "--repo", str(ctx["feast_repo"]),
                "--entities", str(ent), "--out", str(out)]  # fmt: skip
        env = feast_env(ctx["data"])
    r = run_measured(argv, env=env, timeout=ctx["timeout"], log=ctx["work"] / f"pit-{tool}.log")
    check_rc(f"{tool} get-historical", r)
    if not out.exists():
        raise ToolError(f"{tool} wrote no {out}")
    inner = last_json_line(r["stdout"]) if tool != "twinloop" else {"summary": r["stdout"].strip()[:2000]}
    inner.pop("sql", None)
    return {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "argv": argv, **inner}


def summarize_runs(runs):
    walls = sorted(x["wall_s"] for x in runs)
    rss = sorted(x["peak_rss_mb"] for x in runs)
    out = {"runs": runs, "n": len(runs), "wall_s": walls[len(walls) // 2],
           "wall_min_s": walls[0], "peak_rss_mb": rss[len(rss) // 2], "peak_rss_max_mb": rss[-1]}  # fmt: skip
    if all("query_s" in x for x in runs):
        q = sorted(x["query_s"] for x in runs)
        out["query_s"] = q[len(q) // 2]
    return out


# --------------------------------------------------------------------------------------------
# 2. Correctness
# --------------------------------------------------------------------------------------------
def col_values(t: pa.Table, name):
    """(valid mask, numpy values) for a feature column; float32 columns as float32, ints as int64."""
    a = t.column(name).combine_chunks() if name in t.column_names else None
    if a is None:
        return None, None
    valid = np.asarray(a.is_valid().to_numpy(zero_copy_only=False), bool)
    if name in FLOAT_COLS:
        v = pc.fill_null(pc.cast(a, pa.float32(), safe=False), 0).to_numpy(zero_copy_only=False)
    else:
        if pa.types.is_floating(a.type):  # Feast through pandas may hand ints back as float64
            a = pc.cast(pc.fill_null(a, 0), pa.int64(), safe=False)
        v = pc.fill_null(pc.cast(a, pa.int64(), safe=False), 0).to_numpy(zero_copy_only=False)
    return valid, v


def fmt_val(valid, v):
    if not valid:
        return None
    return float(v) if isinstance(v, (np.floating, float)) else int(v)


def compare_tables(expected: pa.Table, got: pa.Table, cases: dict, label, max_examples=12):
    """Both tables sorted by row_id with the same rows. Returns a summary with examples."""
    n = expected.num_rows
    res = {"pair": label, "rows": n, "mismatched_rows": 0, "columns": {}, "by_case": {},
           "examples": [], "problems": []}  # fmt: skip
    bad_any = np.zeros(n, bool)
    per_col_bad = {}
    for c in FEAT_COLS:
        ev, e = col_values(expected, c)
        gv, g = col_values(got, c)
        if gv is None:
            res["problems"].append(f"column {c} missing")
            bad = np.ones(n, bool)
        else:
            bad = (ev != gv) | (ev & gv & (e != g))
        per_col_bad[c] = (bad, ev, e, gv, g)
        res["columns"][c] = int(bad.sum())
        bad_any |= bad
    res["mismatched_rows"] = int(bad_any.sum())
    rid = expected.column("row_id").to_numpy()
    ents = {k: expected.column(k).to_pylist() for k in ("driver_id", "customer_id")}
    ts = expected.column("event_timestamp").cast(pa.timestamp("us", tz="UTC")).to_pylist()
    for i in np.nonzero(bad_any)[0]:
        case = cases.get(int(rid[i]), "ordinary")
        res["by_case"][case] = res["by_case"].get(case, 0) + 1
    shown = set()
    # examples: first the edge cases (one per case), then ordinary rows
    order = sorted(np.nonzero(bad_any)[0], key=lambda i: (cases.get(int(rid[i])) is None, i))
    for i in order:
        case = cases.get(int(rid[i]), "ordinary")
        if case in shown and len(res["examples"]) >= max_examples // 2:
            continue
        if len(res["examples"]) >= max_examples:
            break
        shown.add(case)
        cols = {}
        for c, (bad, ev, e, gv, g) in per_col_bad.items():
            if bad[i]:
                cols[c] = {"expected": fmt_val(ev[i], e[i]),
                           "got": None if gv is None else fmt_val(gv[i], g[i])}  # fmt: skip
        res["examples"].append({"row_id": int(rid[i]), "case": case,
                                "driver_id": ents["driver_id"][i],
                                "customer_id": ents["customer_id"][i],
                                "event_timestamp": ts[i].isoformat(), "columns": cols})  # fmt: skip
    return res


def check_twinloop_shape(ent: pa.Table, got: pa.Table):
    """Every input row once, in input order, input columns unchanged, then the features."""
    problems = []
    want_cols = ent.column_names + FEAT_COLS
    if got.column_names != want_cols:
        problems.append(f"columns {got.column_names} != expected {want_cols}")
    if got.num_rows != ent.num_rows:
        problems.append(f"{got.num_rows} rows != {ent.num_rows} input rows")
        return problems
    for c in ent.column_names:
        if c not in got.column_names:
            continue
        a, b = ent.column(c), got.column(c)
        if a.type != b.type:
            problems.append(f"input column {c}: type {b.type} != {a.type}")
            try:
                b = b.cast(a.type)
            except Exception:
                continue
        if not a.equals(b):
            neq = pc.sum(pc.cast(pc.invert(pc.fill_null(pc.equal(a, b), False)), pa.int64())).as_py()
            problems.append(f"input column {c} changed in {neq} rows (order or values)")
    for c in FEAT_COLS:
        if c in got.column_names:
            want = pa.float32() if c in FLOAT_COLS else pa.int64()
            if got.schema.field(c).type != want:
                problems.append(f"feature {c}: type {got.schema.field(c).type} != {want}")
    return problems


def brute_force_reference(data: Path, ent: pa.Table):
    """Plain pandas reference of the PIT semantics (small scale only): per entity row and view,
    the source rows with key equal and ts in [e.ts - ttl, e.ts]; winner = max (ts, created)."""
    import pandas as pd

    e = ent.to_pandas()
    out = e[ENTITY_COLS].copy()
    for view, (fname, key, ttl, feats) in VIEWS.items():
        src = pq.read_table(data / fname).to_pandas()
        m = e[["row_id", key, "event_timestamp"]].merge(src, on=key, suffixes=("", "_f"))
        m = m[(m["event_timestamp_f"] <= m["event_timestamp"])
              & (m["event_timestamp_f"] >= m["event_timestamp"] - pd.Timedelta(seconds=ttl))]  # fmt: skip
        m = m.sort_values(["row_id", "event_timestamp_f", "created"]).drop_duplicates("row_id", keep="last")
        out = out.merge(m[["row_id"] + feats], on="row_id", how="left")
    out = out.sort_values("row_id")
    t = pa.Table.from_pandas(out, preserve_index=False)
    cols = []
    for c in t.column_names:
        a = t.column(c)
        if c in FEAT_COLS and c not in FLOAT_COLS:
            a = pc.cast(a, pa.int64())  # NaN-free: from_pandas turns NaN into null
        cols.append(a)
    return pa.table(dict(zip(t.column_names, cols)))


def correctness(ctx, outputs):
    data = ctx["data"]
    ent = pq.read_table(data / "entities.parquet")
    ct = pq.read_table(data / "cases.parquet")
    cases = dict(zip(ct.column("row_id").to_pylist(), ct.column("case").to_pylist()))
    res = {"comparisons": [], "shape_problems": {}}
    if "duckdb" not in outputs:
        res["note"] = "no duckdb output to compare against"
        return res
    ref = pq.read_table(outputs["duckdb"]).sort_by("row_id")
    if ref.num_rows != ent.num_rows:
        res["shape_problems"]["duckdb"] = [f"{ref.num_rows} rows != {ent.num_rows}"]
    if ctx["scale"] == "small":
        bf = brute_force_reference(data, ent)
        res["comparisons"].append(compare_tables(bf, ref, cases, "duckdb vs brute-force reference"))
    if "twinloop" in outputs:
        got = pq.read_table(outputs["twinloop"])
        res["shape_problems"]["twinloop"] = check_twinloop_shape(ent, got)
        if got.num_rows == ref.num_rows and "row_id" in got.column_names:
            # row i must be row_id i; compare positionally against the reference sorted by row_id
            res["comparisons"].append(compare_tables(ref, got, cases, "twinloop vs duckdb"))
    if "feast" in outputs:
        got = pq.read_table(outputs["feast"])
        probs = []
        if got.num_rows != ent.num_rows:
            probs.append(f"{got.num_rows} rows != {ent.num_rows} input rows")
        res["shape_problems"]["feast"] = probs
        if got.num_rows == ref.num_rows:
            res["comparisons"].append(compare_tables(ref, got.sort_by("row_id"), cases, "feast vs duckdb"))
    return res


def twinloop_cli_variants(ctx, spill_limit):
    """At small: `--service ride_model_v1` must give the same table as the feature list, and
    `--full-feature-names` the same values under `<view>__<feature>` names; `--timestamp-column
    event_timestamp` (the default) must change nothing. At larger scales: a run with a small
    `--memory-limit` (so that the join partitions spill to disk) must give the same table."""
    base = pq.read_table(ctx["work"] / "out" / "twinloop.parquet")
    ent = ctx["data"] / "entities.parquet"
    res = {}
    full = {f.split(":")[1]: f.replace(":", "__") for f in FEATURES}
    base_argv = twinloop_pit_argv(ctx["tl_bin"], ctx["tl_repo"], ent, None)[:-2]  # without --output
    if ctx["scale"] == "small":
        service_argv = [a for a in base_argv if a != ",".join(FEATURES)]
        service_argv[service_argv.index("--features")] = "--service"
        service_argv.insert(service_argv.index("--service") + 1, "ride_model_v1")
        variants = {
            "--service ride_model_v1": service_argv,
            "--full-feature-names": base_argv + ["--full-feature-names"],
            "--timestamp-column event_timestamp": base_argv + ["--timestamp-column", "event_timestamp"],
        }
    else:
        variants = {f"--memory-limit {spill_limit}": base_argv + ["--memory-limit", spill_limit]} if spill_limit else {}
    for name, argv in variants.items():
        out = ctx["work"] / "out" / f"twinloop-variant-{len(res)}.parquet"
        argv = argv + ["--output", str(out)]
        r = run_measured(argv, timeout=ctx["timeout"], log=ctx["work"] / f"pit-twinloop-variant-{len(res)}.log")
        if r["rc"] != 0:
            res[name] = f"exit {r['rc']}: " + " / ".join(tail(r["stderr"] or r["stdout"], 3).splitlines())
            continue
        extra = ""
        if "memory-limit" in name:
            m = re.search(r"spilled [^\n(]*", r["stdout"])
            extra = (f" (wall {f_time(r['wall_s'])}, peak RSS {f_mem(r['peak_rss_mb'])}, "
                     f"{m.group(0).strip() if m else 'no spill reported'})")
        got = pq.read_table(out)
        want = base
        if name == "--full-feature-names":
            want = base.rename_columns([full.get(c, c) for c in base.column_names])
        if got.column_names != want.column_names:
            res[name] = f"columns {got.column_names} != {want.column_names}" + extra
        elif not got.equals(want):
            res[name] = "same columns, different values or types" + extra
        else:
            res[name] = "ok" + extra
    return res


# --------------------------------------------------------------------------------------------
# 3. Materialization
# --------------------------------------------------------------------------------------------
def materialize(tool, ctx):
    if tool == "twinloop":
        repo = ctx["tl_repo"]
        shutil.rmtree(repo / ".twinloop" / "online", ignore_errors=True)  # keep the registry
        argv = [str(ctx["tl_bin"]), "features", "--repo", str(repo), "materialize", MAT_START, MAT_END]
        r = run_measured(argv, timeout=ctx["timeout"], log=ctx["work"] / "materialize-twinloop.log")
    else:
        repo = ctx["feast_repo"]
        argv = [FEAST_EXE, "materialize", MAT_START.rstrip("Z"), MAT_END.rstrip("Z")]
        r = run_measured(argv, cwd=repo, env=feast_env(ctx["data"]), timeout=ctx["timeout"],
                         log=ctx["work"] / "materialize-feast.log")  # fmt: skip
    check_rc(f"{tool} materialize", r)
    rows = ctx["meta"]["driver_rows"] + ctx["meta"]["customer_rows"]
    out = {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "source_rows": rows,
           "rows_per_s": rows / r["wall_s"], "argv": argv}  # fmt: skip
    if tool == "twinloop":
        out["store_bytes"] = dir_size(repo / ".twinloop" / "online")
    else:
        out["store_bytes"] = dir_size(repo / "data" / "online_store.db")
    return out


def dir_size(p: Path):
    if p.is_file():
        return p.stat().st_size
    total = 0
    for root, _, files in os.walk(p):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# --------------------------------------------------------------------------------------------
# 4. Online serving
# --------------------------------------------------------------------------------------------
def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIVE: list = []


class Server:
    def __init__(self, name, argv_for, cwd, env, log_path, start_timeout):
        self.name, self.argv_for, self.cwd, self.env = name, argv_for, cwd, env
        self.log_path, self.start_timeout = log_path, start_timeout
        self.proc = None

    def start(self):
        self.port = free_port()
        self.argv = self.argv_for(self.port)
        log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_set_pdeathsig)  # fmt: skip
        log.close()
        _LIVE.append(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise ToolError(f"{self.name} server exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                st = c.getresponse().status
                c.close()
                if st == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ToolError(f"{self.name}: no 200 from /health in {self.start_timeout} s; log:\n{self.log_tail()}")
            time.sleep(0.1)
        self.start_s = time.perf_counter() - t0
        return self

    def log_tail(self, n=20):
        try:
            return tail(Path(self.log_path).read_text(errors="replace"), n)
        except OSError:
            return "(no log)"

    def rss_mb(self):
        try:
            return tree_rss(psutil.Process(self.proc.pid)) / 2**20
        except psutil.Error:
            return None

    def nprocs(self):
        try:
            return 1 + len(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            return None

    def stop(self):
        if self.proc is None:
            return
        if self in _LIVE:
            _LIVE.remove(self)
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def _stop_all():
    for s in list(_LIVE):
        try:
            s.stop()
        except Exception:
            pass


import atexit  # noqa: E402

atexit.register(_stop_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda signum, frame: sys.exit(128 + signum))


def online_body(drivers, customers):
    return json.dumps({"features": FEATURES,
                       "entities": {"driver_id": [int(x) for x in drivers],
                                    "customer_id": [int(x) for x in customers]}})  # fmt: skip


def post(conn, body):
    conn.request("POST", "/get-online-features", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def seq_latency(port, bodies, n, warmup):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    errors = 0
    for i in range(warmup):
        post(conn, bodies[i % len(bodies)])
    lat = []
    t_all = time.perf_counter()
    for i in range(n):
        b = bodies[(warmup + i) % len(bodies)]
        t0 = time.perf_counter()
        st, _ = post(conn, b)
        lat.append(time.perf_counter() - t0)
        if st != 200:
            errors += 1
    total = time.perf_counter() - t_all
    conn.close()
    return {"n": n, "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3,
            "max_ms": max(lat) * 1e3, "mean_ms": sum(lat) / n * 1e3, "rps": n / total,
            "errors": errors}  # fmt: skip


WRK_LUA = """-- generated by bench/features/bench.py
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {
%s
}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/get-online-features", nil, bodies[i])
end
"""


def run_wrk(port, bodies, work: Path, tag, conns, seconds, threads=2):
    script = work / f"wrk-{tag}.lua"
    script.write_text(WRK_LUA % ",\n".join("[[" + b + "]]" for b in bodies))
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(script),
            f"http://127.0.0.1:{port}/get-online-features"]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    (work / f"wrk-{tag}.txt").write_text(r.stdout + r.stderr)
    out = {"argv": argv, "connections": conns, "seconds": seconds}
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    out["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", r.stdout)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", r.stdout)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", r.stdout)
    out["socket_errors"] = m.group(1).strip() if m else None
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", r.stdout, re.M)
        if m:
            v = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            out[f"p{q}_ms"] = v
    if r.returncode != 0 or out["rps"] is None:
        raise ToolError(f"wrk failed ({r.returncode}): {tail(r.stdout + r.stderr)}")
    return out


def parse_online(data):
    """Feast's column-major reply -> {feature_name: [(value, status), ...]}."""
    doc = json.loads(data)
    names = doc["metadata"]["feature_names"]
    return {n: list(zip(res["values"], res["statuses"])) for n, res in zip(names, doc["results"])}


def online_reference(data: Path, drivers, customers):
    """What an online store must hold after materializing everything: per key the row with the
    greatest (event_timestamp, created), and that row's event time (µs since the epoch)."""
    import duckdb

    con = duckdb.connect()
    ref = {}
    for view, (fname, key, _ttl, feats) in VIEWS.items():
        keys = drivers if key == "driver_id" else customers
        con.execute("CREATE OR REPLACE TEMP TABLE k AS SELECT unnest(?::BIGINT[]) AS k", [list(keys)])
        rows = con.execute(
            f"SELECT {key}, epoch_us(event_timestamp), {', '.join(feats)} FROM read_parquet(?) "
            f"JOIN k ON {key} = k.k "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC, created DESC) = 1",
            [str(data / fname)],
        ).fetchall()
        for r in rows:
            ref[(key, r[0])] = (r[1], dict(zip(feats, r[2:])))
    return ref


def same_value(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return np.float32(a) == np.float32(b) if (isinstance(a, float) or isinstance(b, float)) else a == b
    return a == b


def online_compare(ports, data: Path, rng, n=300):
    """One-row requests for sampled keys (and two unknown ones) to every server; each reply is
    checked against the reference (latest row per key) and the servers against each other."""
    drv = pc.unique(pq.read_table(data / "driver_hourly_stats.parquet", columns=["driver_id"]).column(0)).to_pylist()
    cus = pc.unique(pq.read_table(data / "customer_profile.parquet", columns=["customer_id"]).column(0)).to_pylist()
    keys = [(rng.choice(drv), rng.choice(cus)) for _ in range(n)]
    keys += [(gen_data.UNKNOWN_DRIVER_BASE + 7, rng.choice(cus)), (rng.choice(drv), gen_data.UNKNOWN_CUSTOMER_BASE + 7)]
    ref = online_reference(data, [d for d, _ in keys], [c for _, c in keys])
    conns = {k: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for k, p in ports.items()}
    res = {"requests": len(keys), "errors": 0,
           "vs_reference": {k: {"mismatched_requests": 0, "examples": [], "values": 0, "stale_values": 0,
                                "stale_outside_max_age": 0} for k in ports}}  # fmt: skip
    now_us = int(time.time() * 1e6)
    if len(ports) == 2:
        res["mismatched_requests"], res["examples"] = 0, []
    for d, c in keys:
        body = online_body([d], [c])
        want, stale = {}, set()
        for key, val in (("driver_id", d), ("customer_id", c)):
            want[key] = (val, "PRESENT")
            row = ref.get((key, val))
            _, _, ttl, feats = VIEWS["driver_hourly_stats"] if key == "driver_id" else VIEWS["customer_profile"]
            for f in feats:
                want[f] = (row[1][f], "PRESENT") if row is not None else (None, "NOT_FOUND")
                if row is not None and row[0] < now_us - ttl * 1_000_000:
                    stale.add(f)
        replies = {}
        for k, conn in conns.items():
            st, raw = post(conn, body)
            try:
                if st != 200:
                    raise ValueError(f"HTTP {st}")
                replies[k] = {name: vs[0] for name, vs in parse_online(raw).items()}
            except Exception as e:  # malformed reply or error status
                res["errors"] += 1
                replies[k] = {"_error": f"{type(e).__name__}: {e}; body {raw[:300].decode(errors='replace')}"}
        for k, got in replies.items():
            diffs = {}
            rr = res["vs_reference"][k]
            for name, (wv, ws) in want.items():
                gv, gs = got.get(name, (None, None))
                if name in FEAT_COLS:
                    rr["values"] += 1
                    if name in stale:
                        rr["stale_values"] += 1
                        if gv is None and gs == "OUTSIDE_MAX_AGE":  # TTL applied at read time
                            rr["stale_outside_max_age"] += 1
                            continue
                if not same_value(wv, gv) or ws != gs:
                    diffs[name] = {"expected": [wv, ws], "got": [gv, gs]}
            if "_error" in got:
                diffs = {"_error": got["_error"]}
            if diffs:
                r = res["vs_reference"][k]
                r["mismatched_requests"] += 1
                if len(r["examples"]) < 6:
                    r["examples"].append({"driver_id": d, "customer_id": c, "diffs": diffs})
        if len(replies) == 2:
            f, t = replies.get("feast", {}), replies.get("twinloop", {})
            diffs = {}
            for name in [n for n in want if n not in stale]:
                fv, tv = f.get(name, (None, None)), t.get(name, (None, None))
                if not same_value(fv[0], tv[0]) or fv[1] != tv[1]:
                    diffs[name] = {"feast": list(fv), "twinloop": list(tv)}
            if diffs:
                res["mismatched_requests"] += 1
                if len(res["examples"]) < 6:
                    res["examples"].append({"driver_id": d, "customer_id": c, "diffs": diffs})
    for conn in conns.values():
        conn.close()
    return res


def shift_sources(src: Path, dst: Path):
    """Copies the sources with event_timestamp and created moved forward by whole hours so that
    the data end at the current hour: online rows are then as fresh as in production (twinloop
    applies the TTL when it reads; Feast does not). Returns the shift in hours."""
    end = gen_data.START + 7 * 24 * gen_data.HOUR
    now_hour = int(time.time() * 1e6) // gen_data.HOUR * gen_data.HOUR
    shift = now_hour - end
    dst.mkdir(parents=True, exist_ok=True)
    for fname in ("driver_hourly_stats.parquet", "customer_profile.parquet"):
        pf = pq.ParquetFile(src / fname)
        w = pq.ParquetWriter(dst / fname, pf.schema_arrow)
        try:
            for b in pf.iter_batches(batch_size=1 << 20):
                cols = []
                for name, col in zip(b.schema.names, b.columns):
                    if name in ("event_timestamp", "created"):
                        col = pc.cast(pc.add(pc.cast(col, pa.int64()), shift), gen_data.TS)
                    cols.append(col)
                w.write_batch(pa.RecordBatch.from_arrays(cols, schema=b.schema))
        finally:
            w.close()
    return shift // gen_data.HOUR


def prepare_serve(ctx, tools, res):
    """Fresh repos on the shifted data, applied and materialized (not timed as step 3)."""
    work = ctx["work"] / "serve"
    shutil.rmtree(work, ignore_errors=True)
    sdata = work / "data"
    hours = shift_sources(ctx["data"], sdata)
    sctx = dict(ctx, data=sdata, work=work)
    setup = {"shift_hours": hours}
    ok = []
    if "twinloop" in tools:
        try:
            sctx["tl_repo"] = make_twinloop_repo(work, sdata)
            twinloop_apply(sctx)
            setup["twinloop_materialize"] = materialize("twinloop", sctx)
            ok.append("twinloop")
        except Exception as e:
            res["errors"]["serve_setup_twinloop"] = short_error(e)
    if "feast" in tools:
        try:
            sctx["feast_repo"], _ = make_feast_repo(work, sdata)
            setup["feast_materialize"] = materialize("feast", sctx)
            ok.append("feast")
        except Exception as e:
            res["errors"]["serve_setup_feast"] = short_error(e)
    res["serve_setup"] = setup
    return sctx, ok


def serve_bench(ctx, tools, args):
    data, work = ctx["data"], ctx["work"]
    rng = random.Random(args.seed)
    drv = pc.unique(pq.read_table(data / "driver_hourly_stats.parquet", columns=["driver_id"]).column(0)).to_pylist()
    cus = pc.unique(pq.read_table(data / "customer_profile.parquet", columns=["customer_id"]).column(0)).to_pylist()
    bodies = {
        1: [online_body([rng.choice(drv)], [rng.choice(cus)]) for _ in range(1000)],
        100: [online_body(rng.sample(drv, 100), rng.sample(cus, 100)) for _ in range(200)],
    }
    servers = {}
    if "twinloop" in tools:
        servers["twinloop"] = Server(
            "twinloop",
            lambda port: [str(ctx["tl_bin"]), "features", "--repo", str(ctx["tl_repo"]), "serve",
                          "--host", "127.0.0.1", "--port", str(port)],  # fmt: skip
            None, None, work / "serve-twinloop.log", args.start_timeout)
    if "feast" in tools:
        servers["feast"] = Server(
            "feast",
            lambda port: [FEAST_EXE, "serve", "-h", "127.0.0.1", "-p", str(port), "-w", "1",
                          "--max-requests", "0", "--no-access-log"],  # fmt: skip
            ctx["feast_repo"], feast_env(data), work / "serve-feast.log", args.start_timeout)
    res = {"scale": ctx["scale"], "servers": {}}
    started = {}
    try:
        # both up at once for the value comparison; timed phases run one server at a time
        for name, s in servers.items():
            try:
                s.start()
                started[name] = s
                res["servers"][name] = {"argv": s.argv, "start_s": s.start_s, "errors": {}}
            except Exception as e:
                res["servers"][name] = {"errors": {"start": short_error(e)}}
                print(f"   {name} serve: {short_error(e)}", flush=True)
        if started:
            print("   online values vs the latest source rows …", end="", flush=True)
            try:
                oc = online_compare({k: s.port for k, s in started.items()}, data, rng)
                res["online_compare"] = oc
                print(" " + "; ".join(f"{k}: {v['mismatched_requests']} of {oc['requests']} requests differ "
                                      f"({v['stale_values']} values past TTL, {v['stale_outside_max_age']} "
                                      "OUTSIDE_MAX_AGE)" for k, v in oc["vs_reference"].items()), flush=True)
                for k, v in oc["vs_reference"].items():
                    for ex in v["examples"][:3]:
                        print(f"      {k}: driver {ex['driver_id']} customer {ex['customer_id']}: "
                              f"{json.dumps(ex['diffs'], default=str)[:300]}", flush=True)
            except Exception as e:
                res["online_compare"] = {"error": short_error(e)}
                print(f" FAILED: {short_error(e)}", flush=True)
        for name, s in started.items():
            r = res["servers"][name]
            for k in (1, 100):
                n = args.seq_requests if k == 1 else args.seq_requests_100
                step = f"seq_{k}"
                print(f"   {name}: sequential {n} × {k} entit{'y' if k == 1 else 'ies'} …", end="", flush=True)
                try:
                    r[step] = seq_latency(s.port, bodies[k], n, args.warmup)
                    print(f" p50 {r[step]['p50_ms']:.2f} ms, p99 {r[step]['p99_ms']:.2f} ms", flush=True)
                except Exception as e:
                    r["errors"][step] = short_error(e)
                    print(f" FAILED: {short_error(e)}", flush=True)
            if shutil.which("wrk"):
                for k in (1, 100):
                    step = f"wrk_{k}"
                    print(f"   {name}: wrk {args.wrk_connections} conns {args.wrk_seconds} s × {k} …",
                          end="", flush=True)  # fmt: skip
                    try:
                        r[step] = run_wrk(s.port, bodies[k], work, f"{name}-{k}", args.wrk_connections,
                                          args.wrk_seconds)  # fmt: skip
                        print(f" {r[step]['rps']:,.0f} req/s (non-2xx {r[step]['non_2xx']})", flush=True)
                    except Exception as e:
                        r["errors"][step] = short_error(e)
                        print(f" FAILED: {short_error(e)}", flush=True)
            else:
                r["errors"]["wrk"] = "wrk not installed (apt-get install wrk)"
            r["rss_mb"] = s.rss_mb()
            r["processes"] = s.nprocs()
    finally:
        for s in servers.values():
            s.stop()
    return res


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------
def short_error(e):
    msg = f"{type(e).__name__}: {e}"
    return msg if len(msg) < 1500 else msg[:1500] + "…"


def step(res, key, label, fn):
    t0 = time.perf_counter()
    print(f"   {label} …", end="", flush=True)
    try:
        out = fn()
        res[key] = out
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
        return out
    except Exception as e:
        res.setdefault("errors", {})[key] = short_error(e)
        print(f" FAILED: {short_error(e)}", flush=True)
        if os.environ.get("TWINLOOP_BENCH_TRACEBACK"):
            traceback.print_exc()
        return None


def bench_scale(scale, args, tools, tl_bin, data_root, work_root):
    print(f"\n== {scale}", flush=True)
    data, meta = ensure_data(data_root, scale, args.seed)
    work = work_root / scale
    (work / "out").mkdir(parents=True, exist_ok=True)
    ctx = {"scale": scale, "data": data, "meta": meta, "work": work, "tl_bin": tl_bin,
           "timeout": args.tool_timeout}  # fmt: skip
    res = {"data": meta, "data_dir": str(data), "pit": {}, "materialize": {}, "errors": {}}
    if "twinloop" in tools:
        ctx["tl_repo"] = make_twinloop_repo(work, data)
        step(res, "twinloop_apply_s", "twinloop features apply", lambda: twinloop_apply(ctx))
    feast_pit = "feast" in tools and (scale != "large" or not args.skip_feast_large)
    feast_mat = "feast" in tools and (scale != "large" or args.feast_materialize_large)
    feast_serve = "feast" in tools and scale == args.serve_scale
    if feast_pit or feast_mat or feast_serve:
        out = step(res, "feast_apply", "feast apply", lambda: make_feast_repo(work, data))
        if out:
            ctx["feast_repo"], res["feast_apply_s"] = out
            del res["feast_apply"]
        else:
            feast_pit = feast_mat = feast_serve = False
    pit_tools = [t for t in ("twinloop", "duckdb", "feast") if t in tools and (t != "feast" or feast_pit)]
    reps = args.repeat_large if scale == "large" else args.repeat
    outputs = {}
    if not args.skip_pit:
        runs = {t: [] for t in pit_tools}
        for rep in range(reps):
            for t in pit_tools:
                if t in res["errors"].get("pit", {}):
                    continue
                out = work / "out" / f"{t}.parquet"
                label = f"PIT {t} (run {rep + 1}/{reps})"
                r = step(runs, t + "_last", label, lambda: pit_run(t, ctx, out))
                if r is None:
                    res["errors"].setdefault("pit", {})[t] = runs["errors"][t + "_last"]
                    continue
                print(f"      wall {r['wall_s']:.2f} s, peak RSS {r['peak_rss_mb']:,.0f} MiB", flush=True)
                runs[t].append(r)
                outputs[t] = out
        for t in pit_tools:
            if runs.get(t):
                res["pit"][t] = summarize_runs(runs[t])
        if scale in args.check_scales and outputs:
            c = step(res, "correctness", "correctness", lambda: correctness(ctx, outputs))
            if c:
                print_correctness(c)
            if "twinloop" in outputs:
                v = step(res, "twinloop_cli_variants", "twinloop CLI variants",
                         lambda: twinloop_cli_variants(ctx, args.spill_limit))
                for k, msg in (v or {}).items():
                    print(f"      {k}: {msg}")
    if not args.skip_materialize:
        for t in ("twinloop", "feast"):
            if t not in tools or (t == "feast" and not feast_mat):
                continue
            r = step(res["materialize"], t, f"materialize {t}", lambda: materialize(t, ctx))
            if r:
                print(f"      {r['source_rows']:,} rows in {r['wall_s']:.2f} s = {r['rows_per_s']:,.0f} rows/s, "
                      f"peak RSS {r['peak_rss_mb']:,.0f} MiB", flush=True)  # fmt: skip
        if res["materialize"].get("errors"):
            res["errors"]["materialize"] = res["materialize"].pop("errors")
    if not args.skip_serve and scale == args.serve_scale:
        serve_tools = [t for t in ("twinloop", "feast") if t in tools and (t != "feast" or feast_serve)]
        print(f"   serve set-up: data shifted to end now, apply + materialize ({', '.join(serve_tools)}) …",
              end="", flush=True)  # fmt: skip
        t0 = time.perf_counter()
        sctx, serve_tools = prepare_serve(ctx, serve_tools, res)
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
        if serve_tools:
            res["serve"] = serve_bench(sctx, serve_tools, args)
        else:
            res["errors"]["serve"] = "no store could be set up to serve"
    return res


def print_correctness(c):
    for name, probs in c.get("shape_problems", {}).items():
        for p in probs:
            print(f"      {name} output: {p}")
    for comp in c.get("comparisons", []):
        print(f"      {comp['pair']}: {comp['mismatched_rows']:,} of {comp['rows']:,} rows differ"
              + (f" (by column {comp['columns']}; by case {comp['by_case']})" if comp["mismatched_rows"] else ""))
        for ex in comp["examples"][:6]:
            print(f"        row_id {ex['row_id']} [{ex['case']}] driver {ex['driver_id']} customer "
                  f"{ex['customer_id']} ts {ex['event_timestamp']}: "
                  + "; ".join(f"{k} expected {v['expected']} got {v['got']}" for k, v in ex["columns"].items()))


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def render(head, body, md, right=()):
    if md:
        lines = ["| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return lines
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def line(row):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))  # fmt: skip

    return [line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in body]


def f_time(s):
    if s is None:
        return "—"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def f_mem(mb):
    if mb is None:
        return "—"
    return f"{mb:.1f} MiB" if mb < 10 else (f"{mb:,.0f} MiB" if mb < 10240 else f"{mb / 1024:.1f} GiB")


def ratio(a, b):
    return None if not a or not b else a / b


def f_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def pit_lines(results, md):
    head = ["scale", "source / entity rows", "twinloop", "duckdb ASOF", "feast (duckdb store)",
            "duckdb ÷ twinloop time", "duckdb ÷ twinloop RSS"]  # fmt: skip
    body = []
    for scale, r in results.items():
        m = r["data"]
        p = r.get("pit", {})

        def cell(t):
            x = p.get(t)
            if not x:
                e = r.get("errors", {}).get("pit", {}).get(t)
                return "error" if e else "—"
            extra = f" (query {f_time(x['query_s'])})" if "query_s" in x else ""
            return f"{f_time(x['wall_s'])} / {f_mem(x['peak_rss_mb'])}{extra}"

        tl, dk = p.get("twinloop"), p.get("duckdb")
        body.append([scale, f"{m['driver_rows'] + m['customer_rows']:,} / {m['entity_rows']:,}",
                     cell("twinloop"), cell("duckdb"), cell("feast"),
                     f_ratio(ratio(dk and dk["wall_s"], tl and tl["wall_s"])),
                     f_ratio(ratio(dk and dk["peak_rss_mb"], tl and tl["peak_rss_mb"]))])  # fmt: skip
    return render(head, body, md, right=(5, 6))


def correctness_lines(results, md):
    head = ["scale", "comparison", "rows", "rows that differ", "by column", "by case"]
    body = []
    for scale, r in results.items():
        c = r.get("correctness")
        if not c:
            continue
        for name, probs in c.get("shape_problems", {}).items():
            for pr in probs:
                body.append([scale, f"{name} output shape", "—", pr, "—", "—"])
        for comp in c.get("comparisons", []):
            cols = ", ".join(f"{k} {v}" for k, v in comp["columns"].items() if v) or "—"
            cases = ", ".join(f"{k} {v}" for k, v in sorted(comp["by_case"].items(), key=lambda kv: -kv[1])) or "—"
            body.append([scale, comp["pair"], f"{comp['rows']:,}", f"{comp['mismatched_rows']:,}", cols, cases])
    return render(head, body, md, right=(2, 3))


def example_lines(results):
    out = []
    for scale, r in results.items():
        for comp in (r.get("correctness") or {}).get("comparisons", []):
            for ex in comp["examples"]:
                out.append(f"- {scale}, {comp['pair']}: row_id {ex['row_id']} ({ex['case']}; driver "
                           f"{ex['driver_id']}, customer {ex['customer_id']}, ts {ex['event_timestamp']}): "
                           + "; ".join(f"`{k}` expected {v['expected']} got {v['got']}"
                                       for k, v in ex["columns"].items()))  # fmt: skip
    return out


def materialize_lines(results, md):
    head = ["scale", "source rows", "twinloop (embedded)", "feast (sqlite, CLI)", "twinloop ÷ feast rows/s"]
    body = []
    for scale, r in results.items():
        m = r.get("materialize", {})
        if not m:
            continue

        def cell(t):
            x = m.get(t)
            if not x:
                return "error" if t in r.get("errors", {}).get("materialize", {}) else "—"
            return (f"{f_time(x['wall_s'])}, {x['rows_per_s']:,.0f} rows/s, {f_mem(x['peak_rss_mb'])}, "
                    f"store {f_mem(x['store_bytes'] / 2**20)}")  # fmt: skip

        tl, fe = m.get("twinloop"), m.get("feast")
        body.append([scale, f"{r['data']['driver_rows'] + r['data']['customer_rows']:,}", cell("twinloop"),
                     cell("feast"), f_ratio(ratio(tl and tl["rows_per_s"], fe and fe["rows_per_s"]))])  # fmt: skip
    return render(head, body, md, right=(1, 4))


def serve_rows(s):
    rows = []
    sv = s.get("servers", {})
    for key, label, metric, higher in (
        ("seq_1", "sequential, 1 entity row: p50", "p50_ms", False),
        ("seq_1", "sequential, 1 entity row: p99", "p99_ms", False),
        ("seq_1", "sequential, 1 entity row: req/s", "rps", True),
        ("seq_100", "sequential, 100 entity rows: p50", "p50_ms", False),
        ("seq_100", "sequential, 100 entity rows: p99", "p99_ms", False),
        ("seq_100", "sequential, 100 entity rows: req/s", "rps", True),
        ("wrk_1", "wrk, 1 entity row: req/s", "rps", True),
        ("wrk_1", "wrk, 1 entity row: p99", "p99_ms", False),
        ("wrk_100", "wrk, 100 entity rows: req/s", "rps", True),
        ("wrk_100", "wrk, 100 entity rows: p99", "p99_ms", False),
    ):
        a = (sv.get("twinloop") or {}).get(key, {}).get(metric)
        b = (sv.get("feast") or {}).get(key, {}).get(metric)
        rat = ratio(a, b) if higher else ratio(b, a)
        rows.append({"workload": label, "unit": "req/s" if metric == "rps" else "ms",
                     "twinloop": a, "feast": b, "ratio": rat})  # fmt: skip
    return rows


def serve_lines(s, md):
    head = ["workload", "twinloop", "feast", "twinloop advantage"]
    body = []
    for r in serve_rows(s):
        def f(v, unit=r["unit"]):
            return "—" if v is None else (f"{v:,.0f} req/s" if unit == "req/s" else f"{v:.2f} ms")

        body.append([r["workload"], f(r["twinloop"]), f(r["feast"]), f_ratio(r["ratio"])])
    for name, x in s.get("servers", {}).items():
        if x.get("rss_mb") is not None:
            body.append([f"{name}: start to /health, processes, RSS after the run", "", "", ""])
            idx = 1 if name == "twinloop" else 2
            body[-1][idx] = f"{x['start_s']:.1f} s, {x['processes']}, {f_mem(x['rss_mb'])}"
    return render(head, body, md, right=(1, 2, 3))


def targets(results):
    out = []
    lg = results.get("large", {})
    tl, dk = lg.get("pit", {}).get("twinloop"), lg.get("pit", {}).get("duckdb")
    if tl and dk:
        out.append({"target": "large PIT: faster than DuckDB ASOF", "measured":
                    f"{f_time(tl['wall_s'])} vs {f_time(dk['wall_s'])}", "met": tl["wall_s"] < dk["wall_s"]})
        out.append({"target": "large PIT: less peak memory than DuckDB ASOF", "measured":
                    f"{f_mem(tl['peak_rss_mb'])} vs {f_mem(dk['peak_rss_mb'])}",
                    "met": tl["peak_rss_mb"] < dk["peak_rss_mb"]})  # fmt: skip
    for scale, r in results.items():
        m = r.get("materialize", {}).get("twinloop")
        if m and scale != "small":
            out.append({"target": f"{scale} materialize ≥ 1M rows/s", "measured": f"{m['rows_per_s']:,.0f} rows/s",
                        "met": m["rows_per_s"] >= 1e6})  # fmt: skip
        s = r.get("serve")
        if s:
            t1 = (s["servers"].get("twinloop") or {}).get("seq_1")
            if t1:
                out.append({"target": f"{scale} online p99 < 1 ms, one entity (sequential)",
                            "measured": f"{t1['p99_ms']:.3f} ms", "met": t1["p99_ms"] < 1.0})  # fmt: skip
            for k in (1, 100):
                a = (s["servers"].get("twinloop") or {}).get(f"wrk_{k}", {}).get("rps")
                b = (s["servers"].get("feast") or {}).get(f"wrk_{k}", {}).get("rps")
                if a and b:
                    out.append({"target": f"{scale} online throughput ≥ 20× Feast ({k} entit{'y' if k == 1 else 'ies'}, wrk)",
                                "measured": f"{a / b:.1f}× ({a:,.0f} vs {b:,.0f} req/s)", "met": a / b >= 20})  # fmt: skip
    for scale, r in results.items():
        c = r.get("correctness")
        if c:
            for comp in c.get("comparisons", []):
                if comp["pair"].startswith("twinloop"):
                    probs = c.get("shape_problems", {}).get("twinloop") or []
                    out.append({"target": f"{scale} PIT output equals DuckDB's row by row",
                                "measured": f"{comp['mismatched_rows']:,} rows differ"
                                + (f"; {len(probs)} shape problems" if probs else ""),
                                "met": comp["mismatched_rows"] == 0 and not probs})  # fmt: skip
        v = r.get("twinloop_cli_variants")
        if v:
            bad = [k for k, m in v.items() if not m.startswith("ok")]
            out.append({"target": f"{scale} get-historical variants ({', '.join(k.split()[0] for k in v)}) agree",
                        "measured": "all equal" if not bad else "differ: " + ", ".join(bad), "met": not bad})
    return out


def machine_info():
    mem = psutil.virtual_memory().total
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "cpu": cpu,
            "kernel": platform.release(), "python": platform.python_version()}  # fmt: skip


def versions(tl_bin):
    import duckdb
    import pandas

    v = {"duckdb": duckdb.__version__, "pyarrow": pa.__version__, "pandas": pandas.__version__,
         "psutil": psutil.__version__}  # fmt: skip
    try:
        from importlib.metadata import version

        v["feast"] = version("feast")
        v["ibis-framework"] = version("ibis-framework")
    except Exception:
        v["feast"] = "unknown"
    try:
        r = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
        v["wrk"] = (r.stdout + r.stderr).split("[")[0].replace("wrk", "").strip() or "unknown"
    except Exception:
        v["wrk"] = "not installed"
    v["twinloop"] = "—"
    if tl_bin:
        try:
            r = subprocess.run([str(tl_bin), "--version"], capture_output=True, text=True, timeout=20)
            v["twinloop"] = r.stdout.strip() or "unknown"
        except Exception:
            v["twinloop"] = "unknown"
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "crates"], capture_output=True,
                               text=True, timeout=10).stdout.strip()  # fmt: skip
        v["git"] = (rev or "no commit") + (" (crates/ modified)" if dirty else "")
    except Exception:
        v["git"] = "unknown"
    return v


def markdown_report(meta, results):
    m, v = meta["machine"], meta["versions"]
    out = [
        f"### Feature store: twinloop vs DuckDB {v['duckdb']} and Feast {v['feast']} — {meta['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {m['python']}, feast {v['feast']} (ibis {v.get('ibis-framework', '?')}), duckdb {v['duckdb']}, "
        f"pyarrow {v['pyarrow']}, pandas {v['pandas']}, wrk {v['wrk']}; twinloop {v['twinloop']} "
        f"(git {v['git']}, binary `{meta['twinloop_bin'] or '—'}`).",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Data: gen_data.py, seed {meta['seed']}, 7 days hourly from 2024-01-01 (TTL driver 1 d, customer 2 d), "
        "with tied `created` timestamps, entity rows at exactly ts + TTL and 1 µs past it, unknown keys and "
        "duplicate entity rows. Each tool runs in its own process, Parquet in, Parquet out; wall time of the "
        f"process and peak RSS of its process tree (median of {meta['repeat']} runs; large: {meta['repeat_large']}).",
        "",
        "**Point-in-time join** (`get_historical_features`, 6 features from 2 views; wall / peak RSS):",
        "",
    ]
    out += pit_lines(results, True)
    out += ["", "DuckDB's query is `duckdb_asof` from feast.md 1.3 (ASOF on `{ts, created}`, TTL after); its "
            "output is not in input order, twinloop's is. Feast includes ~4 s of imports and registry load.", ""]
    if any(r.get("correctness") for r in results.values()):
        out += ["**Correctness** (features compared row by row, by `row_id`; float32 exact, nulls must match):", ""]
        out += correctness_lines(results, True)
        for scale, r in results.items():
            v = r.get("twinloop_cli_variants") or {}
            if v:
                out.append("")
            for k, msg in v.items():
                out.append(f"- {scale}: twinloop `{k}` against the `--features` output: {msg}")
        ex = example_lines(results)
        if ex:
            out += ["", "Examples of differing rows:", ""] + ex
        out.append("")
    if any(r.get("materialize") for r in results.values()):
        out += ["**Materialization** (all source rows, 2020–2030 window; rows/s = source rows ÷ CLI wall):", ""]
        out += materialize_lines(results, True)
        out.append("")
    for scale, r in results.items():
        s = r.get("serve")
        if not s:
            continue
        shift = (r.get("serve_setup") or {}).get("shift_hours")
        out += [f"**Online serving** ({scale} store, its sources moved forward by {shift} h so that the newest "
                "rows are from the current hour, then materialized by each tool; "
                "`POST /get-online-features`, 6 features from 2 views, "
                "random existing keys; sequential = one keep-alive `http.client` connection, "
                f"{meta['serve']['seq_requests']} requests (1 row) / {meta['serve']['seq_requests_100']} "
                f"(100 rows) after {meta['serve']['warmup']} warm-up; wrk = {meta['serve']['wrk_connections']} "
                f"connections, 2 threads, {meta['serve']['wrk_seconds']} s; the client shares the "
                f"{m['nproc']} cores with the server):", ""]
        out += serve_lines(s, True)
        oc = s.get("online_compare")
        if oc and "requests" in oc:
            out += ["", f"Online values ({oc['requests']} one-row requests, two with unknown keys) against the "
                    "latest source row per key (greatest event_timestamp, then created); a value whose row is "
                    "older than the view's TTL may be returned (Feast) or be null with `OUTSIDE_MAX_AGE`: "
                    + "; ".join(f"{k}: {v['mismatched_requests']} requests differ ({v['stale_values']} of "
                                f"{v['values']} values past TTL, {v['stale_outside_max_age']} of them "
                                "OUTSIDE_MAX_AGE)" for k, v in oc["vs_reference"].items())
                    + (f"; twinloop vs feast: {oc['mismatched_requests']} differ" if "mismatched_requests" in oc else "")
                    + "."]
            for k, v in oc["vs_reference"].items():
                for ex in v["examples"][:4]:
                    out.append(f"- {k}: driver {ex['driver_id']}, customer {ex['customer_id']}: "
                               f"`{json.dumps(ex['diffs'], default=str)[:400]}`")
        out += ["", "Servers: " + "; ".join(f"`{shlex.join(x['argv'])}`" for x in s["servers"].values() if x.get("argv")), ""]
    t = targets(results)
    if t:
        out += ["**Targets** (from the issue):", ""]
        out += render(["target", "measured", "met"],
                      [[x["target"], x["measured"], "yes" if x["met"] else "**no**"] for x in t], True)
        out.append("")
    notes = run_notes(meta)
    if notes:
        for n in notes:
            out += [f"**Note:** {n}", ""]
    errs = [(s, k, e) for s, r in results.items() for k, e in flatten_errors(r.get("errors", {}))]
    if errs:
        out += ["Errors:", ""] + [f"- {s} / {k}: `{e[:500]}`" for s, k, e in errs] + [""]
    return "\n".join(out)


def run_notes(meta):
    notes = []
    b = meta.get("twinloop_bin") or ""
    if "/debug/" in b:
        notes.append("twinloop is a debug build: its timings do not count (harness and correctness check only).")
    n = meta["machine"]["nproc"] or 1
    worst = max(meta["loadavg_before"][0], meta.get("loadavg_after", (0,))[0])
    if worst > max(1.5, 0.75 * n):
        notes.append(f"the 1-minute load average reached {worst:.1f} on {n} cores around the run, so other "
                     "work shared the machine: the figures are noisy; rerun on a quiet machine.")
    return notes


def flatten_errors(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flatten_errors(v, prefix + k + "/")
        else:
            yield prefix + k, str(v)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="small,medium", help="comma-separated: small,medium,large")
    ap.add_argument("--only", default="twinloop,duckdb,feast", help="tools, comma-separated")
    ap.add_argument("--twinloop-bin", help="twinloop binary (default $TWINLOOP_BIN, else "
                    "$CARGO_TARGET_DIR/release/twinloop)")  # fmt: skip
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--no-save", action="store_true", help="don't write bench/results/features-<time>.*")
    ap.add_argument("--data-dir", default=str(Path.home() / ".cache/twinloop/bench-features-data"),
                    help="generated data is kept here and reused (per scale and seed)")  # fmt: skip
    ap.add_argument("--workdir", help="repos, outputs and logs (default: a fresh temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=3, help="PIT runs per tool at small/medium (median)")
    ap.add_argument("--repeat-large", type=int, default=1)
    ap.add_argument("--check-scales", default="small,medium", help="scales whose outputs are compared")
    ap.add_argument("--spill-limit", default="16M",
                    help="at medium/large check scales, also run twinloop get-historical with this "
                    "--memory-limit and compare ('' to skip)")  # fmt: skip
    ap.add_argument("--skip-feast-large", action="store_true", help="no Feast PIT at large (~30 s)")
    ap.add_argument("--feast-materialize-large", action="store_true", help="Feast materialize at large (~2 min)")
    ap.add_argument("--skip-pit", action="store_true")
    ap.add_argument("--skip-materialize", action="store_true")
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--serve-scale", default="medium")
    ap.add_argument("--seq-requests", type=int, default=2000)
    ap.add_argument("--seq-requests-100", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wrk-connections", type=int, default=8)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--tool-timeout", type=float, default=1800.0, help="seconds per child process")
    a = ap.parse_args(argv)
    a.scales = [s for s in a.scales.split(",") if s]
    bad = [s for s in a.scales if s not in gen_data.SCALES]
    if bad:
        ap.error(f"unknown scale(s) {bad}")
    a.only = [t for t in a.only.split(",") if t]
    a.check_scales = set(a.check_scales.split(","))
    return a


def main(argv=None):
    args = parse_args(argv)
    tools = args.only
    tl_bin = None
    if "twinloop" in tools:
        target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/twinloop/target")
        tl_bin = Path(args.twinloop_bin or os.environ.get("TWINLOOP_BIN") or Path(target) / "release/twinloop")
        if not (tl_bin.is_file() and os.access(tl_bin, os.X_OK)):
            sys.exit(f"twinloop binary not found at {tl_bin} (build it, pass --twinloop-bin, or --only duckdb,feast)")
        tl_bin = tl_bin.resolve()
        r = subprocess.run([str(tl_bin), "features", "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"WARNING: `{tl_bin} features --help` failed: {tail(r.stderr, 3)}", flush=True)
    command = os.environ.get("TWINLOOP_BENCH_CMD") or shlex.join(
        ["python", os.path.relpath(__file__, REPO)] + (sys.argv[1:] if argv is None else argv))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command, "scales": args.scales, "tools": tools, "seed": args.seed,
        "repeat": args.repeat, "repeat_large": args.repeat_large,
        "machine": machine_info(), "versions": versions(tl_bin),
        "twinloop_bin": str(tl_bin) if tl_bin else None,
        "serve": {k: getattr(args, k) for k in ("seq_requests", "seq_requests_100", "warmup",
                                                 "wrk_connections", "wrk_seconds", "serve_scale")},
        "loadavg_before": os.getloadavg(),
    }  # fmt: skip
    print(f"twinloop feature-store benchmark — {meta['date']}; scales {args.scales}; tools {tools}")
    print(f"machine: {meta['machine']}\nversions: {meta['versions']}", flush=True)
    data_root = Path(args.data_dir)
    data_root.mkdir(parents=True, exist_ok=True)
    work_root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-features-"))
    work_root.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for scale in args.scales:
            results[scale] = bench_scale(scale, args, tools, tl_bin, data_root, work_root)
    finally:
        _stop_all()
        if args.keep or args.workdir:
            print(f"work directory kept: {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    meta["loadavg_after"] = os.getloadavg()

    print("\nPoint-in-time join (wall / peak RSS):\n")
    print("\n".join(pit_lines(results, False)))
    if any(r.get("correctness") for r in results.values()):
        print("\nCorrectness:\n")
        print("\n".join(correctness_lines(results, False)))
        for line in example_lines(results)[:20]:
            print(line)
    if any(r.get("materialize") for r in results.values()):
        print("\nMaterialization:\n")
        print("\n".join(materialize_lines(results, False)))
    for scale, r in results.items():
        if r.get("serve"):
            print(f"\nOnline serving ({scale}):\n")
            print("\n".join(serve_lines(r["serve"], False)))
    t = targets(results)
    if t:
        print("\nTargets:\n")
        print("\n".join(render(["target", "measured", "met"],
                               [[x["target"], x["measured"], "yes" if x["met"] else "NO"] for x in t], False)))
    errs = [(s, k, e) for s, r in results.items() for k, e in flatten_errors(r.get("errors", {}))]
    for s, k, e in errs:
        print(f"ERROR {s} / {k}: {e[:800]}")
    for n in run_notes(meta):
        print(f"NOTE: {n}")

    doc = {"meta": meta, "results": results, "targets": t,
           "serve_rows": {s: serve_rows(r["serve"]) for s, r in results.items() if r.get("serve")}}  # fmt: skip
    md = markdown_report(meta, results)
    json_path, md_path = args.json, args.markdown
    if not args.no_save:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        json_path = json_path or str(REPO / "bench" / "results" / f"features-{stamp}.json")
        md_path = md_path or str(REPO / "bench" / "results" / f"features-{stamp}.md")
    for path, text in ((json_path, json.dumps(doc, indent=2, default=str) + "\n"), (md_path, md)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
            print(f"wrote {path}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())

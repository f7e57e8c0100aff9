#!/usr/bin/env python3
"""Model-registry benchmark: the real MLflow server against twinloop, in one run.

Same harness as bench/tracking (imported from there: server start/stop, request census, block
alternation of client and raw-HTTP calls, machine info, report rendering). Both servers run on
free loopback ports with a fresh SQLite database each; every workload is timed through the stock
``MlflowClient`` (one synchronous client thread) and as raw HTTP with a ``requests.Session``
sending the same JSON bodies.

Workloads:
  (a) create_model_version: N versions of one model (one model for the client, one for raw)
                                                                    -> versions/s, median
  (b) set_registered_model_alias: N moves of one alias over the versions of (a)
                                                                    -> moves/s, median
  (c) get_model_version_by_alias                                    -> p50 / p95
  (d) search_model_versions("name = 'x'") over a model with N versions (set up with raw HTTP
      from a thread pool), one page of up to 10,000 rows as the client asks -> p50 / p95

Nothing here asserts on a time. See README.md beside this file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

sys.dont_write_bytecode = True  # leave no __pycache__ in bench/tracking
# The tracking benchmark's module: env defaults (no telemetry, no client retries), the urllib3
# request census, atexit/signal cleanup of servers, and the helpers reused below.
_spec = importlib.util.spec_from_file_location("tracking_bench", REPO / "bench" / "tracking" / "bench.py")
tb = importlib.util.module_from_spec(_spec)
sys.modules["tracking_bench"] = tb
_spec.loader.exec_module(tb)

import argparse  # noqa: E402
import logging  # noqa: E402
import concurrent.futures  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import mlflow  # noqa: E402
import requests  # noqa: E402
import urllib3  # noqa: E402
from mlflow.protos.model_registry_pb2 import (  # noqa: E402
    CreateModelVersion,
    GetRegisteredModel,
    GetModelVersionByAlias,
    SearchModelVersions,
    SetRegisteredModelAlias,
)
from mlflow.utils.proto_json_utils import message_to_json  # noqa: E402

from tracking_bench import alternate, label, ms, pct, short_error, uniq  # noqa: E402

# MlflowClient.create_model_version logs "Waiting up to 300 seconds for model version to finish
# creation" at INFO on every call (it returns at once: versions are READY); keep the output readable.
logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)

FULL = dict(
    versions=1000,  # (a) create_model_version calls per mode (client, raw), one model each
    alias_moves=1000,  # (b) set_registered_model_alias calls per mode
    alias_gets=200,  # (c) get_model_version_by_alias calls per mode
    search_versions=10000,  # (d) versions of the searched model
    search_repeats=10,  # (d) timed calls per mode
    setup_threads=8,  # (d) raw-HTTP threads that create the versions
    warmup=3,  # untimed calls of each kind before timing
)
QUICK = dict(
    FULL,
    versions=100,
    alias_moves=100,
    alias_gets=50,
    search_versions=1000,
    search_repeats=5,
)

SEARCH_PAGE = 10000  # what MlflowClient.search_model_versions asks for (one page)
ALIAS = "champion"


# --------------------------------------------------------------------------------------------
# Raw HTTP: the same JSON bodies the client sends (checked against the client's own encoder)
# --------------------------------------------------------------------------------------------
class RegTarget(tb.Target):
    @staticmethod
    def create_version_body(name, source, run_id):
        return {"name": name, "source": source, "run_id": run_id}

    @staticmethod
    def alias_body(name, alias, version):
        return {"name": name, "alias": alias, "version": str(version)}

    @staticmethod
    def alias_params(name, alias):
        return {"name": name, "alias": alias}

    @staticmethod
    def search_params(name):
        return {"filter": f"name = '{name}'", "max_results": SEARCH_PAGE}

    def raw_create_registered_model(self, name):
        return self.post("registered-models/create", {"name": name})["registered_model"]

    def raw_create_version(self, name, source, run_id, threaded=False):
        body = self.create_version_body(name, source, run_id)
        return self.post("model-versions/create", body, threaded=threaded)["model_version"]

    def raw_set_alias(self, name, alias, version):
        # MlflowClient.set_registered_model_alias first GETs the registered model (to refuse
        # prompts), then POSTs the alias: the raw side sends the same two requests.
        self.get("registered-models/get", {"name": name})
        return self.post("registered-models/alias", self.alias_body(name, alias, version))

    def raw_get_by_alias(self, name, alias):
        return self.get("registered-models/alias", self.alias_params(name, alias))["model_version"]

    def raw_search_versions(self, name):
        return self.get("model-versions/search", self.search_params(name)).get("model_versions", [])


def check_bodies():
    """Our raw bodies must equal what the client's own proto encoder produces."""
    problems = []
    want = json.loads(message_to_json(CreateModelVersion(name="m", source="runs:/r/model", run_id="r",
                                                         tags=[], description=None, run_link=None,
                                                         model_id=None)))  # fmt: skip
    if want != RegTarget.create_version_body("m", "runs:/r/model", "r"):
        problems.append(f"model-versions/create: client sends {want}")
    want = json.loads(message_to_json(SetRegisteredModelAlias(name="m", alias=ALIAS, version="7")))
    if want != RegTarget.alias_body("m", ALIAS, 7):
        problems.append(f"registered-models/alias POST: client sends {want}")
    want = json.loads(message_to_json(GetRegisteredModel(name="m")))
    if want != {"name": "m"}:
        problems.append(f"registered-models/get: client sends {want}")
    want = json.loads(message_to_json(GetModelVersionByAlias(name="m", alias=ALIAS)))
    if want != RegTarget.alias_params("m", ALIAS):
        problems.append(f"registered-models/alias GET: client sends {want}")
    want = json.loads(message_to_json(SearchModelVersions(filter="name = 'm'", max_results=SEARCH_PAGE,
                                                          order_by=None, page_token=None)))  # fmt: skip
    if want != RegTarget.search_params("m"):
        problems.append(f"model-versions/search: client sends {want}")
    return problems


# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------
def source_run(t: RegTarget):
    """An experiment and a run whose runs:/<run>/model is the source of every version."""
    exp = t.raw_create_experiment(f"bench-registry-{uniq()}")
    run = t.raw_create_run(exp, "registry-source")
    return run, f"runs:/{run}/model"


def warm_up(t: RegTarget, sz, run, source):
    with label("warmup"):
        name = f"bench-warmup-{uniq()}"
        t.client.create_registered_model(name)
        for _ in range(sz["warmup"]):
            t.client.create_model_version(name, source, run)
            t.raw_create_version(name, source, run)
        for i in range(sz["warmup"]):
            t.client.set_registered_model_alias(name, ALIAS, str(i + 1))
            t.raw_set_alias(name, ALIAS, i + 2)
            t.client.get_model_version_by_alias(name, ALIAS)
            t.raw_get_by_alias(name, ALIAS)
            t.client.search_model_versions(f"name = '{name}'")
            t.raw_search_versions(name)


def wl_create_versions(t: RegTarget, sz, run, source):
    n = sz["versions"]
    name_c, name_r = f"bench-mv-client-{uniq()}", f"bench-mv-raw-{uniq()}"
    t.client.create_registered_model(name_c)
    t.raw_create_registered_model(name_r)
    got_c, got_r = [], []

    def client_call(i):
        def call():
            got_c.append(t.client.create_model_version(name_c, source, run).version)

        return call

    def raw_call(i):
        body = t.create_version_body(name_r, source, run)

        def call():
            got_r.append(t.post("model-versions/create", body)["model_version"]["version"])

        return call

    tc, tr, _, _ = alternate("a", n, client_call, raw_call)
    want = [str(i) for i in range(1, n + 1)]
    if got_c != want or got_r != want:
        raise RuntimeError(f"create_model_version: versions are not 1..{n} in order")
    return {
        "versions": n,
        "client": {"per_s": n / sum(tc), "median_ms": ms(statistics.median(tc)),
                   "p95_ms": ms(pct(tc, 0.95))},
        "raw": {"per_s": n / sum(tr), "median_ms": ms(statistics.median(tr)),
                "p95_ms": ms(pct(tr, 0.95))},
    }, (name_c, name_r)  # fmt: skip


def wl_alias_moves(t: RegTarget, sz, names, n_versions):
    n = sz["alias_moves"]
    name_c, name_r = names
    # each move points the alias at another existing version (1..n_versions, cycling)
    target = [str(i % n_versions + 1) for i in range(n)]
    tc, tr, _, _ = alternate(
        "b",
        n,
        lambda i: (lambda: t.client.set_registered_model_alias(name_c, ALIAS, target[i])),
        lambda i: (lambda: t.raw_set_alias(name_r, ALIAS, target[i])),
    )
    for nm in names:
        if t.client.get_registered_model(nm).aliases.get(ALIAS) != target[-1]:
            raise RuntimeError(f"set_registered_model_alias: {nm}@{ALIAS} is not version {target[-1]}")
    return {
        "moves": n,
        "client": {"per_s": n / sum(tc), "median_ms": ms(statistics.median(tc)),
                   "p95_ms": ms(pct(tc, 0.95))},
        "raw": {"per_s": n / sum(tr), "median_ms": ms(statistics.median(tr)),
                "p95_ms": ms(pct(tr, 0.95))},
    }, target[-1]  # fmt: skip


def wl_alias_get(t: RegTarget, sz, names, expect_version):
    n = sz["alias_gets"]
    name_c, name_r = names
    tc, tr, res_c, res_r = alternate(
        "c",
        n,
        lambda i: (lambda: t.client.get_model_version_by_alias(name_c, ALIAS)),
        lambda i: (lambda: t.raw_get_by_alias(name_r, ALIAS)),
    )
    if res_c.version != expect_version or res_r["version"] != expect_version:
        raise RuntimeError(f"get_model_version_by_alias: got {res_c.version} / {res_r['version']}, "
                           f"expected {expect_version}")  # fmt: skip
    if ALIAS not in res_c.aliases or ALIAS not in res_r.get("aliases", []):
        raise RuntimeError("get_model_version_by_alias: the reply lacks the alias")
    return {
        "calls": n,
        "client": {"p50_ms": ms(pct(tc, 0.5)), "p95_ms": ms(pct(tc, 0.95))},
        "raw": {"p50_ms": ms(pct(tr, 0.5)), "p95_ms": ms(pct(tr, 0.95))},
    }


def search_setup(t: RegTarget, sz, run, source):
    """One model with N versions, created with raw HTTP from a thread pool (concurrent
    model-versions/create on one model). MLflow answers a lost version-number race with a 500
    after its own 3 retries; that version was not created, so it is sent again (counted)."""
    n = sz["search_versions"]
    name = f"bench-search-{uniq()}"
    t.raw_create_registered_model(name)
    resent = [0]

    def make(_):
        for attempt in range(20):
            try:
                return t.raw_create_version(name, source, run, threaded=True)["version"]
            except tb.HttpError as e:
                if ": HTTP 5" not in str(e) or attempt == 19:
                    raise
                resent[0] += 1
                time.sleep(0.05 * (attempt + 1))

    t0 = time.perf_counter()
    with label("d:setup"), concurrent.futures.ThreadPoolExecutor(sz["setup_threads"]) as ex:
        got = list(ex.map(make, range(n)))
    elapsed = time.perf_counter() - t0
    if sorted(map(int, got)) != list(range(1, n + 1)):
        raise RuntimeError(f"search setup: the {n} versions are not numbered 1..{n} without gaps")
    return name, {"versions": n, "threads": sz["setup_threads"], "seconds": elapsed,
                  "versions_per_s": n / elapsed, "resent_after_5xx": resent[0]}  # fmt: skip


def wl_search(t: RegTarget, sz, name):
    n = sz["search_versions"]
    want = min(n, SEARCH_PAGE)
    filt = f"name = '{name}'"
    with label("d:warmup"):
        t.client.search_model_versions(filt)
        t.raw_search_versions(name)
    tc, tr, res_c, res_r = alternate(
        "d",
        sz["search_repeats"],
        lambda i: (lambda: t.client.search_model_versions(filt)),
        lambda i: (lambda: t.raw_search_versions(name)),
        client_primer=lambda: t.client.search_model_versions(filt),
        raw_primer=lambda: t.raw_search_versions(name),
    )
    if len(res_c) != want or len(res_r) != want:
        raise RuntimeError(f"search_model_versions: got {len(res_c)} (client) / {len(res_r)} (raw) "
                           f"rows, expected {want}")  # fmt: skip
    if {v.version for v in res_c} != {v["version"] for v in res_r}:
        raise RuntimeError("search_model_versions: client and raw rows differ")
    return {
        "versions": n,
        "rows_returned": want,
        "repeats": sz["search_repeats"],
        "client": {"p50_ms": ms(pct(tc, 0.5)), "p95_ms": ms(pct(tc, 0.95))},
        "raw": {"p50_ms": ms(pct(tr, 0.5)), "p95_ms": ms(pct(tr, 0.95))},
    }


def bench_server(name, server: tb.Server, sz):
    res = {"name": name, "errors": {}, "workloads": {}}
    tb._REQUESTS.clear()
    load0 = os.getloadavg()
    print(f"\n== {name}: starting {shlex.join(server.argv_for(0, server.workdir))[:200]} …", flush=True)
    server.start()
    res["argv"] = server.argv
    res["start_seconds"] = server.start_seconds
    print(f"   healthy after {server.start_seconds:.1f} s on {server.url}", flush=True)
    t = RegTarget(server.url)
    state = {}

    def setup():
        state["run"], state["source"] = source_run(t)

    def a():
        out, state["names"] = wl_create_versions(t, sz, state["run"], state["source"])
        return out

    def b():
        out, state["alias_version"] = wl_alias_moves(t, sz, state["names"], sz["versions"])
        return out

    def c():
        return wl_alias_get(t, sz, state["names"], state["alias_version"])

    def d_setup():
        state["search_name"], info = search_setup(t, sz, state["run"], state["source"])
        return info

    def d():
        return wl_search(t, sz, state["search_name"])

    steps = [
        ("source_run", setup, ()),
        ("warmup", lambda: warm_up(t, sz, state["run"], state["source"]), ("run",)),
        ("create_model_version", a, ("run",)),
        ("set_alias", b, ("names",)),
        ("get_by_alias", c, ("alias_version",)),
        ("search_setup", d_setup, ("run",)),
        ("search_model_versions", d, ("search_name",)),
    ]
    for step, fn, needs in steps:
        missing = [k for k in needs if k not in state]
        if missing:
            res["errors"][step] = f"skipped: an earlier step failed ({', '.join(missing)} missing)"
            print(f"   {step} … skipped", flush=True)
            continue
        if not tb.run_step(res, server, step, fn):
            break
    tb.finish_server(res, server, load0)
    return res


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
# (workload label, path into a server's "workloads" ({m} = client / raw), unit, higher is better)
ROWS = [
    ("(a) create_model_version rate", ("create_model_version", "{m}", "per_s"), "versions/s", True),
    ("(a) create_model_version, median", ("create_model_version", "{m}", "median_ms"), "ms", False),
    ("(b) set_registered_model_alias rate", ("set_alias", "{m}", "per_s"), "moves/s", True),
    ("(b) set_registered_model_alias, median", ("set_alias", "{m}", "median_ms"), "ms", False),
    ("(c) get_model_version_by_alias, p50", ("get_by_alias", "{m}", "p50_ms"), "ms", False),
    ("(c) get_model_version_by_alias, p95", ("get_by_alias", "{m}", "p95_ms"), "ms", False),
    ("(d) search_model_versions, p50", ("search_model_versions", "{m}", "p50_ms"), "ms", False),
    ("(d) search_model_versions, p95", ("search_model_versions", "{m}", "p95_ms"), "ms", False),
]
OVERHEAD = [
    ("(a) create_model_version, median", ("create_model_version", "{m}", "median_ms")),
    ("(b) set_registered_model_alias, median", ("set_alias", "{m}", "median_ms")),
    ("(c) get_model_version_by_alias, p50", ("get_by_alias", "{m}", "p50_ms")),
    ("(d) search_model_versions, p50", ("search_model_versions", "{m}", "p50_ms")),
]


def fmt(v, unit):
    if v is None:
        return "—"
    if unit.endswith("/s"):
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def build_rows(results):
    rows = []
    for mode, mode_name in (("client", "MlflowClient"), ("raw", "raw HTTP")):
        for name, path, unit, higher in ROWS:
            a = tb.dig(results.get("mlflow"), path, mode)
            b = tb.dig(results.get("twinloop"), path, mode)
            ratio = None
            if a and b:
                ratio = (b / a) if higher else (a / b)
            rows.append({"workload": name, "mode": mode_name, "unit": unit,
                         "higher_is_better": higher, "mlflow": a, "twinloop": b,
                         "ratio": ratio})  # fmt: skip
    return rows


def build_overhead(results):
    out = []
    for name, path in OVERHEAD:
        row = {"workload": name}
        for srv in ("mlflow", "twinloop"):
            c = tb.dig(results.get(srv), path, "client")
            r = tb.dig(results.get(srv), path, "raw")
            row[srv] = None if c is None or r is None else {"client_ms": c, "raw_ms": r,
                                                            "overhead_ms": c - r}  # fmt: skip
        out.append(row)
    return out


def table_lines(rows, md):
    head = ["workload", "mode", "unit", "mlflow", "twinloop", "ratio (twinloop speed / mlflow)"]
    body = [[r["workload"], r["mode"], r["unit"], fmt(r["mlflow"], r["unit"]),
             fmt(r["twinloop"], r["unit"]),
             "—" if r["ratio"] is None else f"{r['ratio']:.2f}×"] for r in rows]  # fmt: skip
    return tb.render(head, body, md, right=(3, 4, 5))


def setup_lines(results, md):
    head = ["server", "start to /health", "processes", "RSS after run",
            "search setup (raw, threads)", "load avg before → after"]  # fmt: skip
    body = []
    for srv in ("mlflow", "twinloop"):
        r = results.get(srv)
        if not r:
            continue
        ss = r.get("workloads", {}).get("search_setup")
        body.append([
            srv,
            f"{r['start_seconds']:.1f} s" if r.get("start_seconds") else "—",
            str(r.get("server_processes", "—")),
            f"{r['server_rss_mb']:,.0f} MiB" if "server_rss_mb" in r else "—",
            f"{ss['versions']:,} versions in {ss['seconds']:.1f} s = {ss['versions_per_s']:,.0f}/s "
            f"({ss['threads']} threads, {ss['resent_after_5xx']} resent after a 5xx)" if ss else "—",
            "{:.2f} → {:.2f}".format(r["loadavg_before"][0], r["loadavg_after"][0])
            if "loadavg_after" in r else "—",
        ])  # fmt: skip
    return tb.render(head, body, md)


def markdown_report(meta, results, rows, over):
    database = "PostgreSQL" if meta.get("store") == "postgresql" else "SQLite"
    sz = meta["sizes"]
    m = meta["machine"]
    out = [
        f"### Model registry: MLflow {meta['versions']['mlflow']} vs twinloop — {meta['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}; Python {m['python']}, mlflow {meta['versions']['mlflow']}, "
        f"requests {meta['versions']['requests']}; twinloop {meta['versions']['twinloop']} "
        f"(git {meta['versions']['git']}, binary `{meta['twinloop_bin'] or '—'}`).",
        "",
        f"Command: `{meta['command']}`" + (" (quick sizes)" if meta["quick"] else "")
        + f"; backend store: {meta.get('store', 'sqlite')}.",
        "",
        f"Sizes: (a) {sz['versions']:,} `create_model_version` calls into one model per mode "
        f"(source `runs:/<run>/model` with its run_id); (b) {sz['alias_moves']:,} "
        f"`set_registered_model_alias` moves of one alias over those versions; (c) "
        f"{sz['alias_gets']:,} `get_model_version_by_alias` calls; (d) `search_model_versions"
        f"(\"name = 'x'\")` over a model of {sz['search_versions']:,} versions (one page, "
        f"max_results {SEARCH_PAGE:,} as the client asks), {sz['search_repeats']} calls (the "
        f"versions were created with raw HTTP from {sz['setup_threads']} threads, not with the "
        f"client). One synchronous client thread; client and raw-HTTP calls alternate in blocks "
        f"of 10; the servers ran one after the other, each on a fresh {database} database; "
        f"{sz['warmup']} warm-up calls of each kind first.",
        "",
        "Both servers with their default settings: "
        + "; ".join(f"`{shlex.join(r['argv'])}`" for r in results.values() if r.get("argv"))
        + ".",
        "",
    ]
    out += table_lines(rows, md=True)
    out += [
        "",
        "Ratio > 1: twinloop is faster (for rates: twinloop / mlflow; for times: mlflow / "
        "twinloop). *Raw HTTP* = the same requests with the same JSON bodies sent from a "
        "`requests.Session`, so it leaves out the MLflow client's own Python work.",
        "",
        "Where the time goes (client median vs raw-HTTP median):",
        "",
    ]
    out += tb.overhead_lines(over, md=True)
    out += ["", "Servers:", ""]
    out += setup_lines(results, md=True)
    busy = tb.load_warning(results, meta)
    if busy:
        out += ["", f"**Note:** {busy}"]
    errs = [(s, w, e) for s, r in results.items() for w, e in r.get("errors", {}).items()]
    if errs:
        out += ["", "Errors:", ""]
        out += [f"- {s} / {w}: `{e}`" for s, w, e in errs]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["twinloop", "mlflow", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes for a smoke run")
    ap.add_argument("--twinloop-bin", help="twinloop binary (default: $TWINLOOP_BIN, else "
                    "$CARGO_TARGET_DIR or ~/.cache/twinloop/target, release/twinloop)")  # fmt: skip
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    ap.add_argument("--markdown", metavar="FILE", help="write a markdown section here")
    ap.add_argument("--no-save", action="store_true",
                    help="don't write the default bench/results/registry-<time>.{json,md}")  # fmt: skip
    ap.add_argument("--versions", type=int, metavar="N", help="create_model_version calls for (a)")
    ap.add_argument("--alias-moves", type=int, metavar="N", help="alias moves for (b)")
    ap.add_argument("--alias-gets", type=int, metavar="N", help="get-by-alias calls for (c)")
    ap.add_argument("--search-versions", type=int, metavar="N", help="versions of the model searched in (d)")
    ap.add_argument("--search-repeats", type=int, metavar="N", help="timed calls for (d)")
    ap.add_argument("--setup-threads", type=int, metavar="N", help="raw-HTTP threads for the (d) setup")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for /health")
    ap.add_argument("--workdir", help="where the servers' temporary directories go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the servers' directories and logs")
    ap.add_argument("--postgres", metavar="URL",
                    help="run both servers on PostgreSQL: a URL of any database of a server the "
                         "bench may CREATE DATABASE on (default: SQLite files)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sz = dict(QUICK if args.quick else FULL)
    for key in ("versions", "alias_moves", "alias_gets", "search_versions", "search_repeats",
                "setup_threads"):  # fmt: skip
        v = getattr(args, key)
        if v is not None:
            sz[key] = v
    if sz["versions"] < 1 or sz["alias_moves"] < 1 or sz["alias_gets"] < 1 or sz["search_versions"] < 1:
        sys.exit("sizes must be at least 1")
    which = ["mlflow", "twinloop"] if args.only == "both" else [args.only]

    problems = check_bodies()
    if problems:
        print("WARNING: raw-HTTP bodies differ from the client's:", *problems, sep="\n  ")

    tl_bin = None
    if "twinloop" in which:
        tl_bin = Path(args.twinloop_bin or os.environ.get("TWINLOOP_BIN") or tb.default_twinloop_bin())
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
        "machine": tb.machine_info(),
        "versions": {
            "mlflow": mlflow.__version__,
            "requests": requests.__version__,
            "urllib3": urllib3.__version__,
            "twinloop": tb.twinloop_version(tl_bin) if tl_bin else "—",
            "git": tb.git_rev(),
        },
        "twinloop_bin": str(tl_bin) if tl_bin else None,
        "body_check": problems or "raw bodies equal the client's encoding",
    }
    print(f"twinloop registry benchmark — {meta['date']}; sizes: {sz}")
    print(f"machine: {meta['machine']}; store: {meta['store']}")

    results = {}
    base = Path(args.workdir) if args.workdir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    dirs = []
    try:
        for name in which:
            d = Path(tempfile.mkdtemp(prefix=f"bench-registry-{name}-", dir=base))
            dirs.append(d)
            argv_for = (
                tb.mlflow_argv_for(args.postgres)
                if name == "mlflow"
                else tb.twinloop_argv_for(tl_bin, args.postgres)
            )
            server = tb.Server(name, argv_for, d, args.start_timeout)
            try:
                results[name] = bench_server(name, server, sz)
            except Exception as e:
                results[name] = {"name": name, "errors": {"start": short_error(e)}, "workloads": {}}
                print(f"\n{name}: {short_error(e)}", flush=True)
            finally:
                server.stop()
    finally:
        tb._stop_all_servers()
        if args.keep:
            print("kept:", *map(str, dirs))
        else:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)

    rows = build_rows(results)
    over = build_overhead(results)
    print("\nResults (ratio > 1 means twinloop is faster):\n")
    print("\n".join(table_lines(rows, md=False)))
    print("\nClient overhead (client median vs raw-HTTP median):\n")
    print("\n".join(tb.overhead_lines(over, md=False)))
    print("\nServers:\n")
    print("\n".join(setup_lines(results, md=False)))
    print("\nClient requests per phase (census below requests, retries included):")
    return tb.finish_report(
        "registry", args, meta, results, rows, over, markdown_report,
        quiet=("warmup", "d:setup", "d:warmup"),
    )


if __name__ == "__main__":
    sys.exit(main())
